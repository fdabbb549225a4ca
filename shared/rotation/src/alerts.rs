//! Alerts to the operators' SNS topic: a readable subject and a JSON body an operator (or a
//! ticketing integration) can act on. Alerts never carry key material or whole command outputs.

use std::future::Future;

use serde::Serialize;

use crate::error::AwsError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertKind {
    /// A rotation failed (first failure of an episode).
    RotationFailed,
    /// Retries are exhausted: an operator must act.
    RetriesExhausted,
    /// A host's certificate has expired.
    CertificateExpired,
    /// A CRL was refused (foreign CA, replayed, corrupt).
    CrlRefused,
    /// A certificate was revoked by an operator.
    CertificateRevoked,
    /// A host installed its new certificate but its reload hook failed.
    ReloadHookFailed,
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
            AlertKind::RetriesExhausted => "certificate rotation gave up",
            AlertKind::CertificateExpired => "certificate expired",
            AlertKind::CrlRefused => "CRL refused",
            AlertKind::CertificateRevoked => "certificate revoked",
            AlertKind::ReloadHookFailed => "reload hook failed",
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
