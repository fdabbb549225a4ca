//! From records to a plan, and from the plan to what the run does.
//!
//! [`plan_actions`] is where a plan becomes effects: which stuck rotations to reconcile (asked
//! about and moved on by [`super::reconcile`]), which hosts to note as skipped, which rotations to start (with their
//! rotation ID and GenerateCsr parameters), which expired certificates to alert on, and the
//! summary as far as it is known before any effect. A dry run gets the plan and no effect.

use rotation::alerts::{Alert, AlertKind, HostAlert};
use rotation::Config;
use state::plan::{alert_due, plan_host, DueReason, Plan, PlanItem, PlanPolicy};
use state::ports::FleetScan;
use state::record::{AlertLevel, RotationState, StateKind};
use state::{HostId, HostRecord};
use time::OffsetDateTime;

use super::error::CheckError;
use super::start::Start;
use super::summary::{describe, HostNote, Summary};

/// The plan a run works on, with what loading it found out.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Each host with what it needs.
    pub plan: Plan,
    /// Items DynamoDB read.
    pub items_read: u64,
    /// Table rows refused by validation.
    pub rejected_rows: Vec<HostNote>,
    /// The revocation carried out (or, on a dry run, that would be).
    pub revoked: Option<HostNote>,
    /// The release carried out (or, on a dry run, that would be).
    pub released: Option<HostNote>,
}

/// The schedule's plan: every candidate the scan returned, planned at `now`.
pub fn fleet(scan: FleetScan, now: OffsetDateTime, policy: &PlanPolicy) -> Loaded {
    Loaded {
        items_read: scan.items_read,
        rejected_rows: scan
            .rejected
            .iter()
            .map(|r| HostNote::new(&r.key, r.reason.to_string()))
            .collect(),
        plan: Plan::build(scan.records, now, policy),
        revoked: None,
        released: None,
    }
}

/// A named host's plan item: refused if it is not enrolled; due (`forced`) when `force` and no
/// rotation is in flight; otherwise what the planner says.
pub fn named_item(
    host: &HostId,
    record: Option<HostRecord>,
    force: bool,
    now: OffsetDateTime,
    policy: &PlanPolicy,
) -> Result<(HostRecord, PlanItem), CheckError> {
    let record =
        record.ok_or_else(|| CheckError::BadRequest(format!("host {host} is not enrolled")))?;
    let held = matches!(record.state, RotationState::Revoked { held: Some(_), .. });
    let item = if force && !record.state.kind().in_flight() && !held {
        PlanItem::Due(DueReason::Forced)
    } else {
        plan_host(&record, now, policy)
    };
    Ok((record, item))
}

/// What the run does with its plan.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// The summary before any effect: due, expired, skipped, rows read and refused, the
    /// revocation, and on a dry run the plan.
    pub summary: Summary,
    /// Hours left on the soonest NotAfter of the plan's certificates.
    pub soonest_expiry_hours: Option<f64>,
    /// Alerts the plan calls for (expired certificates; under a day left on a failed host),
    /// raised after the rotations started so they never delay one.
    pub alerts: Vec<HostAlert>,
    /// Hosts whose rotation is stuck in flight, to reconcile.
    pub stuck: Vec<HostRecord>,
    /// Rotations to start, if their host is reachable.
    pub start: Vec<Start>,
    /// Hosts of the plan whose rotation is failed: above a few, the run's alerts go out as one
    /// digest ([`rotation::alerts::outgoing`]).
    pub failing: usize,
}

/// Why a held host is skipped.
pub const HELD: &str = "revoked; held until an operator releases it";

/// Why a host is skipped, for the items that neither start nor fail a rotation and are not
/// simply not due.
pub fn skip_reason(item: &PlanItem) -> Option<&'static str> {
    match item {
        PlanItem::InFlight => Some("rotation in flight"),
        PlanItem::Backoff { .. } => Some("failed; waiting for the retry backoff"),
        PlanItem::RevokedHeld => Some("revoked; re-issue is off"),
        PlanItem::Held => Some(HELD),
        _ => None,
    }
}

/// Turns the loaded plan into the run's actions at `now`.
pub fn plan_actions(
    loaded: Loaded,
    dry_run: bool,
    config: &Config,
    now: OffsetDateTime,
) -> Actions {
    let Loaded {
        plan,
        items_read,
        rejected_rows,
        revoked,
        released,
    } = loaded;
    let mut summary = Summary {
        due: plan.starting().count(),
        expired: plan
            .items
            .iter()
            .filter(|(_, i)| *i == PlanItem::Due(DueReason::Expired))
            .map(|(r, _)| r.host.to_string())
            .collect(),
        rejected_rows,
        revoked,
        released,
        items_read,
        dry_run,
        ..Summary::default()
    };
    let soonest_expiry_hours = plan
        .soonest_expiry()
        .map(|soonest| (soonest - now).as_seconds_f64() / 3600.0);
    if dry_run {
        summary.plan = Some(
            plan.items
                .iter()
                .map(|(r, i)| HostNote::new(&r.host, describe(i)))
                .collect(),
        );
        return Actions {
            summary,
            soonest_expiry_hours,
            ..Actions::default()
        };
    }
    let alerts = plan
        .items
        .iter()
        .filter_map(|(record, item)| plan_alert(record, item, now))
        .collect();
    let failing = plan
        .items
        .iter()
        .filter(|(record, item)| not_going_well(record, item))
        .count();
    let mut stuck = Vec::new();
    let mut start = Vec::new();
    for (record, item) in plan.items {
        if let PlanItem::Stuck { .. } = item {
            stuck.push(record);
        } else if let Some(reason) = skip_reason(&item) {
            summary.skipped.push(HostNote::new(&record.host, reason));
        } else if item.starts_rotation() {
            start.push(Start::new(record, item, config, now));
        }
    }
    Actions {
        summary,
        soonest_expiry_hours,
        alerts,
        stuck,
        start,
        failing,
    }
}

/// Whether `record`'s rotation is failing, or stuck in flight past the in-flight timeout (a
/// Private CA outage holds rotations there, where nothing fails them): either way its
/// certificate is not being renewed, and the alerts escalate with the time left.
fn not_going_well(record: &HostRecord, item: &PlanItem) -> bool {
    record.state.kind() == StateKind::Failed || matches!(item, PlanItem::Stuck { .. })
}

/// The alert the plan calls for on `record` (planned as `item`), once per level per episode:
/// its certificate has expired (whatever the host does), or its rotation is failing or stuck
/// with under a day left.
pub fn plan_alert(record: &HostRecord, item: &PlanItem, now: OffsetDateTime) -> Option<HostAlert> {
    let failing = not_going_well(record, item);
    let (level, alert) = match alert_due(record, failing, now)? {
        AlertLevel::Expired => (AlertLevel::Expired, expired_alert(record.host.as_str())),
        AlertLevel::Urgent => (
            AlertLevel::Urgent,
            Alert {
                host: Some(record.host.to_string()),
                ..Alert::new(
                    AlertKind::ExpiresSoon,
                    "the certificate expires within a day and its rotation keeps failing or is stuck; retries go on",
                )
            },
        ),
        AlertLevel::Failed => return None,
    };
    Some(HostAlert {
        host: record.host.clone(),
        level,
        alert,
    })
}

/// The alert for a host whose certificate has expired.
pub fn expired_alert(host: &str) -> Alert {
    Alert {
        host: Some(host.to_owned()),
        ..Alert::new(
            AlertKind::CertificateExpired,
            "the host's certificate has expired; a new one is requested as soon as the host can take it",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::*;
    use state::item::{record_from_item, Attr, Item};
    use state::ports::RejectedRow;
    use state::InvalidRow;
    use time::Duration;

    fn loaded(records: Vec<HostRecord>) -> Loaded {
        fleet(
            FleetScan {
                records,
                ..FleetScan::default()
            },
            NOW,
            &config().plan,
        )
    }

    #[test]
    fn the_scan_is_planned_with_its_refused_rows() {
        let scan = FleetScan {
            records: vec![deployed(1, NOW - Duration::days(6))],
            rejected: vec![RejectedRow {
                key: "\"mi-x\"".into(),
                reason: InvalidRow::HostId {
                    shown: "\"mi-x\"".into(),
                },
            }],
            items_read: 7,
            pages: 1,
        };
        let l = fleet(scan, NOW, &config().plan);
        assert_eq!(l.items_read, 7);
        assert_eq!(l.rejected_rows.len(), 1);
        assert!(l.rejected_rows[0].reason.contains("managed-node ID"));
        assert_eq!(l.plan.items[0].1, PlanItem::Due(DueReason::RenewalWindow));
        assert_eq!(l.revoked, None);
    }

    #[test]
    fn a_named_host_that_is_not_enrolled_is_a_bad_request() {
        match named_item(&host(4), None, false, NOW, &config().plan) {
            Err(CheckError::BadRequest(m)) => assert!(m.ends_with("is not enrolled"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_named_host_is_planned_or_forced_unless_in_flight() {
        let policy = config().plan;
        let fresh = deployed(1, NOW - Duration::hours(1));
        let (_, item) = named_item(&host(1), Some(fresh.clone()), false, NOW, &policy).unwrap();
        assert!(matches!(item, PlanItem::NotDue { .. }));
        let (r, item) = named_item(&host(1), Some(fresh.clone()), true, NOW, &policy).unwrap();
        assert_eq!((r, item), (fresh, PlanItem::Due(DueReason::Forced)));
        let busy = csr_requested(2, NOW - Duration::minutes(5));
        let (_, item) = named_item(&host(2), Some(busy), true, NOW, &policy).unwrap();
        assert_eq!(item, PlanItem::InFlight);
    }

    #[test]
    fn an_original_sample_item_without_expiry_is_forced_too() {
        let mut item = Item::new();
        item.insert("hostID".into(), Attr::s(host(3).as_str()));
        item.insert("serial".into(), Attr::s("0a:0b"));
        let record = record_from_item(&item).unwrap();
        let (_, planned) =
            named_item(&host(3), Some(record.clone()), false, NOW, &config().plan).unwrap();
        assert_eq!(planned, PlanItem::Due(DueReason::NeverIssued));
        let (_, forced) = named_item(&host(3), Some(record), true, NOW, &config().plan).unwrap();
        assert_eq!(forced, PlanItem::Due(DueReason::Forced));
    }

    #[test]
    fn stuck_rotations_are_handed_to_the_reconciler() {
        let old = NOW - Duration::hours(2);
        let mut issuing = csr_requested(2, old);
        issuing.state = state::RotationState::Issuing {
            rotation: state::RotationId("r-2".into()),
            cert_arn: "arn:cert".into(),
            key_fingerprint: "f".into(),
        };
        let a = plan_actions(
            loaded(vec![csr_requested(1, old), issuing]),
            false,
            &config(),
            NOW,
        );
        let hosts: Vec<HostId> = a.stuck.iter().map(|r| r.host.clone()).collect();
        assert_eq!(hosts, [host(1), host(2)]);
        assert!(a.start.is_empty() && a.summary.skipped.is_empty());
    }

    #[test]
    fn hosts_in_flight_backing_off_or_held_are_skipped_and_many_failures_still_retry() {
        let mut config = config();
        config.plan.reissue_revoked = false;
        let records = vec![
            csr_requested(1, NOW - Duration::minutes(5)),
            failed(2, 1, NOW + Duration::hours(1)),
            failed(3, 5, NOW - Duration::hours(1)),
            revoked(4),
            deployed(5, NOW - Duration::hours(1)),
        ];
        let l = fleet(
            FleetScan {
                records,
                ..FleetScan::default()
            },
            NOW,
            &config.plan,
        );
        let a = plan_actions(l, false, &config, NOW);
        let reasons: Vec<(String, String)> = a
            .summary
            .skipped
            .iter()
            .map(|n| (n.host.clone(), n.reason.clone()))
            .collect();
        assert_eq!(
            reasons,
            [
                (host(1).to_string(), "rotation in flight".to_string()),
                (
                    host(2).to_string(),
                    "failed; waiting for the retry backoff".into()
                ),
                (host(4).to_string(), "revoked; re-issue is off".into()),
            ]
        );
        assert!(a.stuck.is_empty() && a.alerts.is_empty());
        // Five failures no longer give up: host 3 retries.
        assert_eq!(a.start.len(), 1);
        assert_eq!(a.start[0].item, PlanItem::Retry { attempt: 6 });
        assert_eq!(a.summary.due, 1);
    }

    #[test]
    fn due_and_retried_hosts_start_and_expired_ones_alert() {
        let records = vec![
            deployed(1, NOW - Duration::days(8)),
            failed(2, 1, NOW - Duration::minutes(1)),
            enrolled(3),
            deployed(4, NOW - Duration::hours(1)),
        ];
        let a = plan_actions(loaded(records), false, &config(), NOW);
        assert_eq!(a.summary.due, 3);
        assert_eq!(a.summary.expired, [host(1).to_string()]);
        assert_eq!(a.alerts.len(), 1);
        assert_eq!(a.alerts[0].alert, expired_alert(host(1).as_str()));
        assert_eq!(a.alerts[0].alert.kind, AlertKind::CertificateExpired);
        assert_eq!(a.alerts[0].level, AlertLevel::Expired);
        let items: Vec<(HostId, PlanItem)> = a
            .start
            .iter()
            .map(|s| (s.record.host.clone(), s.item.clone()))
            .collect();
        assert_eq!(
            items,
            [
                (host(1), PlanItem::Due(DueReason::Expired)),
                (host(2), PlanItem::Retry { attempt: 2 }),
                (host(3), PlanItem::Due(DueReason::NeverIssued)),
            ]
        );
        assert!(a.summary.plan.is_none() && !a.summary.dry_run);
        // Certificates of hosts 1, 2, 4: host 1's expired a day ago.
        assert_eq!(a.soonest_expiry_hours, Some(-24.0));
    }

    #[test]
    fn expired_and_urgent_alerts_go_out_once_per_episode() {
        let mut expired = deployed(1, NOW - Duration::days(8));
        let a = plan_actions(loaded(vec![expired.clone()]), false, &config(), NOW);
        assert_eq!(a.alerts.len(), 1);
        // Already alerted as expired this episode: not again.
        expired.attempts.alerted = Some(AlertLevel::Expired);
        let a = plan_actions(loaded(vec![expired]), false, &config(), NOW);
        assert!(a.alerts.is_empty(), "{:?}", a.alerts);
        // A failed host with under a day left: urgent, once.
        let mut f = failed(2, 3, NOW + Duration::hours(1));
        f.current.as_mut().unwrap().not_after = NOW + Duration::hours(5);
        f.attempts.alerted = Some(AlertLevel::Failed);
        let a = plan_actions(loaded(vec![f.clone()]), false, &config(), NOW);
        assert_eq!(a.alerts.len(), 1);
        assert_eq!(a.alerts[0].level, AlertLevel::Urgent);
        assert_eq!(a.alerts[0].alert.kind, AlertKind::ExpiresSoon);
        f.attempts.alerted = Some(AlertLevel::Urgent);
        assert!(plan_actions(loaded(vec![f.clone()]), false, &config(), NOW)
            .alerts
            .is_empty());
        // A rotation stuck in flight (past the in-flight timeout: the CA out, say) with under
        // a day left is alerted as a failing one is.
        let mut stuck = deployed(4, NOW - Duration::days(6));
        stuck.state = RotationState::CsrRequested {
            rotation: state::RotationId("r-4".into()),
            command_id: Some("c-4".into()),
        };
        stuck.state_since = Some(NOW - Duration::hours(30));
        stuck.current.as_mut().unwrap().not_after = NOW + Duration::hours(5);
        let a = plan_actions(loaded(vec![stuck.clone()]), false, &config(), NOW);
        assert_eq!(a.alerts.len(), 1, "{:?}", a.alerts);
        assert_eq!(a.alerts[0].level, AlertLevel::Urgent);
        assert_eq!(a.failing, 1);
        // Within the in-flight timeout it is being rotated: no alert.
        stuck.state_since = Some(NOW - Duration::minutes(5));
        assert!(plan_actions(loaded(vec![stuck]), false, &config(), NOW)
            .alerts
            .is_empty());
        // A healthy host under a day from expiry is not alerted (it is being rotated).
        let mut healthy = deployed(3, NOW - Duration::days(6));
        healthy.current.as_mut().unwrap().not_after = NOW + Duration::hours(5);
        assert!(plan_actions(loaded(vec![healthy]), false, &config(), NOW)
            .alerts
            .is_empty());
    }

    #[test]
    fn a_dry_run_reports_the_plan_and_does_nothing() {
        let records = vec![
            deployed(1, NOW - Duration::days(8)),
            csr_requested(2, NOW - Duration::hours(3)),
            csr_requested(3, NOW - Duration::minutes(3)),
        ];
        let mut l = loaded(records);
        l.items_read = 3;
        let a = plan_actions(l, true, &config(), NOW);
        assert!(a.alerts.is_empty() && a.stuck.is_empty() && a.start.is_empty());
        assert!(a.summary.skipped.is_empty());
        assert!(a.summary.dry_run);
        assert_eq!(a.summary.due, 1);
        assert_eq!(a.summary.items_read, 3);
        assert_eq!(a.summary.expired, [host(1).to_string()]);
        let plan = a.summary.plan.unwrap();
        assert_eq!(plan[0], HostNote::new(host(1), "rotate: expired"));
        assert_eq!(
            plan[1].reason,
            "stuck in CSR_REQUESTED: will be reconciled from what the host or Private CA reports"
        );
        assert_eq!(plan[2].reason, "rotation in flight");
    }

    #[test]
    fn an_empty_plan_does_nothing() {
        let a = plan_actions(Loaded::default(), false, &config(), NOW);
        assert_eq!(a.summary, Summary::default());
        assert_eq!(a.soonest_expiry_hours, None);
    }
}
