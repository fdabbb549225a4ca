//! Alerts to the operators' SNS topic: a readable subject and a JSON body an operator (or a
//! ticketing integration) can act on. Alerts never carry key material or whole command outputs.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use serde::Serialize;
use state::record::AlertLevel;
use state::HostId;

use crate::error::AwsError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertKind {
    /// A rotation failed (first failure of an episode).
    RotationFailed,
    /// A host still failing or offline has under 24 hours of validity left.
    ExpiresSoon,
    /// A host's certificate has expired.
    CertificateExpired,
    /// A CRL was refused (foreign CA, replayed, corrupt).
    CrlRefused,
    /// A CRL of our CA is larger than Roles Anywhere accepts: the trust anchor keeps the last
    /// one, and revocations after it are not enforced until the CRL shrinks.
    CrlTooLarge,
    /// `UpdateCrl` or `ImportCrl` failed (access denied, a deleted trust anchor, throttling).
    CrlImportFailed,
    /// A certificate was revoked by an operator.
    CertificateRevoked,
    /// A host installed its new certificate but its reload hook failed.
    ReloadHookFailed,
    /// A certificate the service revokes on its own (superseded, or one that never reached a
    /// host) could not be revoked.
    RevocationFailed,
    /// A function's run failed for a reason that retrying will not fix (access denied, a
    /// validation error): nothing was rotated by it.
    RunFailed,
    /// One alert for many hosts at once (an outage of the CA, IAM or SSM): counts by reason and
    /// the first hosts by name, instead of one message per host.
    Digest,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// The host, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The stage that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// Failed attempts in this episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The SSM command involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The certificate involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
}

impl Alert {
    /// An alert of `kind` with `reason` and nothing else set.
    pub fn new(kind: AlertKind, reason: impl Into<String>) -> Self {
        Alert {
            kind,
            host: None,
            stage: None,
            reason: reason.into(),
            attempt: None,
            command_id: None,
            certificate_arn: None,
        }
    }

    /// The email subject: short, ASCII, under SNS's 100-character limit.
    pub fn subject(&self) -> String {
        let what = match self.kind {
            AlertKind::RotationFailed => "certificate rotation failed",
            AlertKind::ExpiresSoon => "certificate expires within a day",
            AlertKind::CertificateExpired => "certificate expired",
            AlertKind::CrlRefused => "CRL refused",
            AlertKind::CrlTooLarge => "CRL too large for the trust anchor",
            AlertKind::CrlImportFailed => "CRL not imported to the trust anchor",
            AlertKind::CertificateRevoked => "certificate revoked",
            AlertKind::ReloadHookFailed => "reload hook failed",
            AlertKind::RevocationFailed => "superseded certificate not revoked",
            AlertKind::RunFailed => "run failed",
            AlertKind::Digest => "many hosts need attention",
        };
        let mut s = match (&self.host, &self.stage) {
            (Some(h), Some(st)) => format!("[cert-rotation] {h}: {what} at {st}"),
            (Some(h), None) => format!("[cert-rotation] {h}: {what}"),
            _ => format!("[cert-rotation] {what}"),
        };
        s.retain(|c| c.is_ascii() && !c.is_ascii_control());
        s.truncate(99);
        s
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| self.reason.clone())
    }
}

/// Raising alerts.
pub trait Alerts: Send + Sync {
    /// Publishes one alert.
    fn raise(&self, alert: &Alert) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// Publishes `alert`; a failure to publish is logged (with the alert's kind and host) and never
/// undoes what the caller already recorded. Returns whether the alert went out.
pub async fn raise_or_log<A: Alerts>(alerts: &A, alert: &Alert) -> bool {
    match alerts.raise(alert).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                kind = ?alert.kind,
                host = alert.host.as_deref().unwrap_or(""),
                error = %e,
                "could not publish the alert"
            );
            false
        }
    }
}

/// A host's alert with the escalation level it records once raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlert {
    /// The host.
    pub host: HostId,
    /// The level to record on the host's item once the alert went out.
    pub level: AlertLevel,
    /// The alert.
    pub alert: Alert,
}

/// Above this many host alerts in one run, one digest goes out instead.
pub const DIGEST_ABOVE: usize = 10;

/// Hosts named in a digest.
pub const DIGEST_HOSTS: usize = 10;

/// One alert per host: of several for the same host in one run (its expired certificate and its
/// failed retry), the highest level; at the same level the later one (a failure carries the
/// stage and reason). Hosts keep the order of their first alert.
pub fn one_per_host(alerts: Vec<HostAlert>) -> Vec<HostAlert> {
    let mut index: HashMap<HostId, usize> = HashMap::new();
    let mut out: Vec<HostAlert> = Vec::new();
    for a in alerts {
        match index.get(&a.host) {
            Some(&i) if out[i].level <= a.level => out[i] = a,
            Some(_) => {}
            None => {
                index.insert(a.host.clone(), out.len());
                out.push(a);
            }
        }
    }
    out
}

/// What goes out for a run's host alerts, given how many hosts of the run are `failing` in all
/// (new alerts or not): each alert; or one digest, with the counts by kind and reason and the
/// first [`DIGEST_HOSTS`] hosts by name, when the run has more than [`DIGEST_ABOVE`] alerts or
/// more than [`DIGEST_ABOVE`] hosts are failing. The second case is an outage (of the CA, IAM or
/// SSM): its hosts cross the next level (a day left) a few at a time, pass after pass, and would
/// otherwise each send a message of their own.
pub fn outgoing(alerts: &[HostAlert], failing: usize) -> Vec<Alert> {
    if alerts.is_empty() {
        return Vec::new();
    }
    if alerts.len() <= DIGEST_ABOVE && failing <= DIGEST_ABOVE {
        return alerts.iter().map(|a| a.alert.clone()).collect();
    }
    let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for a in alerts {
        let kind = serde_json::to_value(a.alert.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *counts.entry((kind, a.alert.reason.as_str())).or_default() += 1;
    }
    let mut hosts: Vec<&str> = alerts.iter().map(|a| a.host.as_str()).collect();
    hosts.sort_unstable();
    let named = hosts.len().min(DIGEST_HOSTS);
    let by_reason: Vec<String> = counts
        .iter()
        .map(|((kind, reason), n)| format!("{n} × {kind}: {reason}"))
        .collect();
    let more = hosts.len() - named;
    let all = if failing > alerts.len() {
        format!(" {failing} hosts are failing in all.")
    } else {
        String::new()
    };
    let reason = format!(
        "{} hosts need attention.{all} By reason: {}. Hosts: {}{}",
        alerts.len(),
        by_reason.join("; "),
        hosts[..named].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    vec![Alert::new(AlertKind::Digest, reason)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u32) -> HostId {
        HostId::parse(&format!("mi-{n:017x}")).unwrap()
    }

    fn failed(n: u32, reason: &str) -> HostAlert {
        HostAlert {
            host: host(n),
            level: AlertLevel::Failed,
            alert: Alert {
                host: Some(host(n).to_string()),
                ..Alert::new(AlertKind::RotationFailed, reason)
            },
        }
    }

    #[test]
    fn up_to_ten_host_alerts_go_out_one_by_one() {
        let alerts: Vec<HostAlert> = (1..=10).map(|n| failed(n, "x")).collect();
        let out = outgoing(&alerts, 10);
        assert_eq!(out.len(), 10);
        assert_eq!(out[3], alerts[3].alert);
    }

    #[test]
    fn more_become_one_digest_with_counts_and_the_first_hosts() {
        let mut alerts: Vec<HostAlert> = (1..=12).rev().map(|n| failed(n, "CA down")).collect();
        alerts.extend((13..=15).map(|n| failed(n, "access denied")));
        let out = outgoing(&alerts, 0);
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!(d.kind, AlertKind::Digest);
        assert_eq!(d.host, None);
        assert!(
            d.reason.starts_with("15 hosts need attention."),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("12 × ROTATION_FAILED: CA down"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("3 × ROTATION_FAILED: access denied"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains(&format!("Hosts: {}, ", host(1))),
            "{}",
            d.reason
        );
        assert!(d.reason.contains(host(10).as_str()), "{}", d.reason);
        assert!(!d.reason.contains(host(11).as_str()), "{}", d.reason);
        assert!(d.reason.ends_with(" and 5 more"), "{}", d.reason);
        assert!(d.subject().len() < 100);
    }

    #[test]
    fn one_alert_per_host_the_highest_level() {
        let expired = HostAlert {
            level: AlertLevel::Expired,
            alert: Alert::new(AlertKind::CertificateExpired, "expired"),
            ..failed(1, "x")
        };
        let failure_at_expiry = HostAlert {
            level: AlertLevel::Expired,
            alert: Alert::new(AlertKind::CertificateExpired, "with the stage"),
            ..failed(1, "x")
        };
        let out = one_per_host(vec![
            expired.clone(),
            failed(2, "y"),
            failed(1, "lower"),
            failure_at_expiry.clone(),
        ]);
        assert_eq!(out, [failure_at_expiry, failed(2, "y")]);
    }

    #[test]
    fn while_many_hosts_fail_even_a_few_new_alerts_go_out_as_one_digest() {
        let alerts: Vec<HostAlert> = (1..=3).map(|n| failed(n, "CA down")).collect();
        assert_eq!(outgoing(&alerts, 10).len(), 3, "ten failing: one by one");
        let out = outgoing(&alerts, 11);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, AlertKind::Digest);
        assert!(
            out[0]
                .reason
                .starts_with("3 hosts need attention. 11 hosts are failing in all."),
            "{}",
            out[0].reason
        );
        assert!(outgoing(&[], 500).is_empty(), "nothing new, nothing sent");
    }
}
