//! Planning a host: due, not due, retried, held.
use super::*;
use crate::record::{Attempts, DeployedCert, HostOverrides};
use time::macros::datetime;

fn host(n: u32) -> HostId {
    HostId::parse(&format!("mi-{n:017x}")).unwrap()
}

fn deployed(h: HostId, nb: OffsetDateTime, na: OffsetDateTime) -> HostRecord {
    HostRecord {
        host: h,
        overrides: HostOverrides::default(),
        version: Some(3),
        state: RotationState::Deployed,
        state_since: Some(nb),
        current: Some(DeployedCert {
            serial: Some("01".into()),
            not_before: Some(nb),
            not_after: na,
            renew_at: None,
            cert_arn: None,
        }),
        attempts: Attempts::default(),
    }
}

#[test]
fn renews_once_a_third_is_left_not_twice() {
    let p = RenewalPolicy {
        jitter_share: 0.0,
        ..RenewalPolicy::default()
    };
    let nb = datetime!(2026-11-01 00:00 UTC);
    let na = nb + Duration::days(6);
    // Lifetime 6 days, a third left = 2 days before NotAfter.
    assert_eq!(
        p.renewal_point(&host(1), Some(nb), na),
        datetime!(2026-11-05 00:00 UTC)
    );
}

#[test]
fn plan_states() {
    let policy = PlanPolicy::default();
    let nb = datetime!(2026-11-01 00:00 UTC);
    let r = deployed(host(1), nb, nb + Duration::days(7));
    assert!(matches!(
        plan_host(&r, nb + Duration::days(1), &policy),
        PlanItem::NotDue { .. }
    ));
    assert_eq!(
        plan_host(&r, nb + Duration::days(6), &policy),
        PlanItem::Due(DueReason::RenewalWindow)
    );
    assert_eq!(
        plan_host(&r, nb + Duration::days(8), &policy),
        PlanItem::Due(DueReason::Expired)
    );
    let mut no_expiry = r.clone();
    no_expiry.current = None;
    assert_eq!(
        plan_host(&no_expiry, nb, &policy),
        PlanItem::Due(DueReason::ExpiryRemoved)
    );
    let mut failed = r.clone();
    failed.state = RotationState::Failed {
        rotation: None,
        stage: crate::record::FailureStage::Verify,
        reason: "x".into(),
    };
    failed.attempts = Attempts {
        failed: 1,
        next_attempt_at: Some(nb + Duration::hours(1)),
        ..Attempts::default()
    };
    assert!(matches!(
        plan_host(&failed, nb, &policy),
        PlanItem::Backoff { .. }
    ));
    assert_eq!(
        plan_host(&failed, nb + Duration::hours(2), &policy),
        PlanItem::Retry { attempt: 2 }
    );
}

#[test]
fn a_revoked_host_is_re_issued_unless_its_reason_holds_it() {
    let policy = PlanPolicy::default();
    let nb = datetime!(2026-11-01 00:00 UTC);
    let mut r = deployed(host(1), nb, nb + Duration::days(7));
    r.state = RotationState::Revoked {
        serial: "0a".into(),
        held: None,
    };
    assert_eq!(
        plan_host(&r, nb, &policy),
        PlanItem::Due(DueReason::Revoked)
    );
    let off = PlanPolicy {
        reissue_revoked: false,
        ..PlanPolicy::default()
    };
    assert_eq!(plan_host(&r, nb, &off), PlanItem::RevokedHeld);
    r.state = RotationState::Revoked {
        serial: "0a".into(),
        held: Some("KEY_COMPROMISE".into()),
    };
    for p in [&policy, &off] {
        assert_eq!(
            plan_host(&r, nb, p),
            PlanItem::Held,
            "whatever the stack says"
        );
    }
    assert!(!PlanItem::Held.starts_rotation());
}

#[test]
fn retries_never_give_up_while_backing_off_capped() {
    let policy = PlanPolicy::default();
    let nb = datetime!(2026-11-01 00:00 UTC);
    let mut failed = deployed(host(1), nb, nb + Duration::days(7));
    failed.state = RotationState::Failed {
        rotation: None,
        stage: crate::record::FailureStage::RequestCsr,
        reason: "x".into(),
    };
    for n in [policy.max_attempts, policy.max_attempts + 1, 40] {
        failed.attempts = Attempts {
            failed: n,
            next_attempt_at: Some(nb + policy.backoff(n)),
            ..Attempts::default()
        };
        assert_eq!(
            plan_host(&failed, nb + Duration::hours(13), &policy),
            PlanItem::Retry { attempt: n + 1 },
            "after {n} failures"
        );
    }
    // Also once the certificate has expired: the host still needs one.
    assert_eq!(
        plan_host(&failed, nb + Duration::days(9), &policy),
        PlanItem::Retry { attempt: 41 }
    );
}

#[test]
fn alerts_escalate_by_time_left_once_per_level() {
    let nb = datetime!(2026-11-01 00:00 UTC);
    let na = nb + Duration::days(7);
    let mut r = deployed(host(1), nb, na);
    // A healthy host is alerted only once expired.
    assert_eq!(alert_due(&r, false, nb + Duration::days(6)), None);
    assert_eq!(alert_due(&r, false, na), Some(AlertLevel::Expired));
    // A host in trouble: first failure, then under a day left, then expired.
    assert_eq!(
        alert_due(&r, true, nb + Duration::days(5)),
        Some(AlertLevel::Failed)
    );
    r.attempts.alerted = Some(AlertLevel::Failed);
    assert_eq!(alert_due(&r, true, nb + Duration::days(5)), None);
    let urgent = na - Duration::hours(23);
    assert_eq!(alert_due(&r, true, urgent), Some(AlertLevel::Urgent));
    assert_eq!(alert_due(&r, false, urgent), None);
    r.attempts.alerted = Some(AlertLevel::Urgent);
    assert_eq!(alert_due(&r, true, urgent), None);
    assert_eq!(
        alert_due(&r, true, na + Duration::hours(1)),
        Some(AlertLevel::Expired)
    );
    r.attempts.alerted = Some(AlertLevel::Expired);
    assert_eq!(alert_due(&r, true, na + Duration::days(3)), None);
    // A first failure with under a day left goes straight to urgent.
    r.attempts.alerted = None;
    assert_eq!(alert_due(&r, true, urgent), Some(AlertLevel::Urgent));
    // No certificate yet: a failure is alerted once.
    r.current = None;
    assert_eq!(alert_due(&r, true, na), Some(AlertLevel::Failed));
    assert_eq!(alert_due(&r, false, na), None);
}

#[test]
fn backoff_doubles_and_caps() {
    let p = PlanPolicy::default();
    assert_eq!(p.backoff(1), Duration::minutes(30));
    assert_eq!(p.backoff(2), Duration::hours(1));
    assert_eq!(p.backoff(30), Duration::hours(12));
}
