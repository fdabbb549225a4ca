use super::*;
use crate::step::fixtures::*;
use state::record::DeployedCert;
use state::RotationId;
use time::Duration;

fn revocation(n: u32, reason: &str, rotate: bool) -> Revocation {
    Revocation {
        host: host(n),
        reason: reason.into(),
        rotate,
    }
}

fn refusal(r: Result<RevokeDecision, CheckError>) -> String {
    match r {
        Err(CheckError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn decided(revocation: &Revocation, record: HostRecord) -> Revoke {
    match decide_revocation(revocation, Some(record), false).unwrap() {
        RevokeDecision::Revoke(r) => *r,
        other => panic!("expected a revocation, got {other:?}"),
    }
}

fn deploying(n: u32) -> HostRecord {
    HostRecord {
        state: RotationState::Deploying {
            rotation: RotationId("r-1".into()),
            cert_arn: "arn:pending".into(),
            command_id: Some("c-2".into()),
            pending: DeployedCert {
                serial: Some("0f:ee".into()),
                not_before: Some(NOW),
                not_after: NOW + Duration::days(7),
                renew_at: None,
                cert_arn: None,
            },
        },
        ..deployed(n, NOW - Duration::days(5))
    }
}

fn issuing(n: u32) -> HostRecord {
    HostRecord {
        state: RotationState::Issuing {
            rotation: RotationId("r-1".into()),
            cert_arn: "arn:pending".into(),
            key_fingerprint: "fp".into(),
        },
        ..deployed(n, NOW - Duration::days(5))
    }
}

#[test]
fn a_host_that_is_not_enrolled_is_refused() {
    let m = refusal(decide_revocation(
        &revocation(1, "KEY_COMPROMISE", false),
        None,
        false,
    ));
    assert_eq!(m, format!("host {} is not enrolled", host(1)));
}

#[test]
fn a_host_with_nothing_revocable_is_refused() {
    let first_rotation = HostRecord {
        current: None,
        ..csr_requested(2, NOW - Duration::minutes(1))
    };
    for (record, why) in [
        (enrolled(2), "has no certificate to revoke"),
        (first_rotation, "has no certificate to revoke"),
        (revoked(2), "is already revoked (serial 02:ab)"),
    ] {
        let m = refusal(decide_revocation(
            &revocation(2, "KEY_COMPROMISE", false),
            Some(record),
            false,
        ));
        assert!(m.ends_with(why), "{m}");
    }
}

#[test]
fn a_dry_run_reports_the_serial_and_the_hold() {
    let d = decide_revocation(
        &revocation(1, "KEY_COMPROMISE", false),
        Some(deployed(1, NOW - Duration::days(1))),
        true,
    )
    .unwrap();
    let note = HostNote::new(
        host(1),
        "revoked serial 01:ab (KEY_COMPROMISE); held (KEY_COMPROMISE) until released",
    );
    assert_eq!(d, RevokeDecision::Report(note.clone()));
    let l = reported(note.clone());
    assert_eq!(l.revoked, Some(note));
    assert!(l.plan.items.is_empty());
}

#[test]
fn the_reason_decides_the_hold_and_rotate_releases_at_once() {
    let record = deployed(1, NOW - Duration::days(1));
    for (reason, rotate, held) in [
        ("KEY_COMPROMISE", false, Some("KEY_COMPROMISE")),
        (
            "CESSATION_OF_OPERATION",
            false,
            Some("CESSATION_OF_OPERATION"),
        ),
        ("UNSPECIFIED", false, Some("UNSPECIFIED")),
        ("SUPERSEDED", false, None),
        ("KEY_COMPROMISE", true, None),
    ] {
        let r = decided(&revocation(1, reason, rotate), record.clone());
        assert_eq!(r.held.as_deref(), held, "{reason} rotate={rotate}");
    }
}

#[test]
fn a_deployed_host_is_revoked_with_an_alert() {
    let record = deployed(1, NOW - Duration::days(1));
    let r = decided(&revocation(1, "SUPERSEDED", false), record.clone());
    assert_eq!(r.record, record);
    assert_eq!(
        (r.current.as_deref(), r.pending.as_ref()),
        (Some("01:ab"), None)
    );
    assert_eq!(r.recorded_serial(None).as_deref(), Some("01:ab"));
    assert_eq!(
        pki::canonical_serial("01:AB"),
        "01:ab",
        "asked of the CA in the canonical form"
    );
    let alert = r.alert(None);
    assert_eq!(alert.kind, AlertKind::CertificateRevoked);
    assert_eq!(alert.host.as_deref(), Some(host(1).as_str()));
    assert_eq!(
        alert.reason,
        "revoked serial 01:ab (SUPERSEDED) by an operator"
    );
    let l = after_revoked(&r, r.note(None), revoked(1));
    assert!(l.plan.items.is_empty(), "no rotation unless asked");
    assert_eq!(l.revoked, Some(r.note(None)));
}

#[test]
fn a_failed_host_is_revoked() {
    let r = decided(
        &revocation(1, "KEY_COMPROMISE", false),
        failed(1, 2, NOW + Duration::hours(1)),
    );
    assert_eq!(
        (r.current.as_deref(), r.pending.as_ref()),
        (Some("01:ab"), None)
    );
}

#[test]
fn a_deploying_host_has_its_rotation_cancelled_and_its_pending_certificate_revoked() {
    let r = decided(&revocation(1, "KEY_COMPROMISE", false), deploying(1));
    assert_eq!(r.current.as_deref(), Some("01:ab"));
    assert_eq!(
        r.pending,
        Some(Pending::Claimed {
            cert_arn: "arn:pending".into(),
            serial: "0f:ee".into()
        })
    );
    assert_eq!(
        r.note(None).reason,
        "revoked serial 01:ab (KEY_COMPROMISE); rotation r-1 cancelled, its pending \
         certificate 0f:ee revoked; held (KEY_COMPROMISE) until released"
    );
    assert_eq!(
        r.alert(None).certificate_arn.as_deref(),
        Some("arn:pending")
    );
    // A first rotation: no current certificate, the pending one is what is recorded.
    let first = decided(
        &revocation(1, "KEY_COMPROMISE", false),
        HostRecord {
            current: None,
            ..deploying(1)
        },
    );
    assert_eq!(
        first.recorded_serial(Some("0f:ee")).as_deref(),
        Some("0f:ee")
    );
}

#[test]
fn an_issuing_host_has_its_pending_certificate_read_from_the_ca() {
    let r = decided(&revocation(1, "KEY_COMPROMISE", false), issuing(1));
    assert_eq!(
        r.pending,
        Some(Pending::Issuing {
            cert_arn: "arn:pending".into()
        })
    );
    // Still being issued: cancelled all the same, the certificate left to the orphan path.
    assert_eq!(pending_serial(Ok(Fetched::Pending)).unwrap(), None);
    assert_eq!(serial_to_record(&r, None).unwrap(), "01:ab");
    assert!(r.note(None).reason.contains(
        "its pending certificate arn:pending (still being issued) is revoked when its issuance \
         is announced"
    ));
    let first = decided(
        &revocation(1, "KEY_COMPROMISE", false),
        HostRecord {
            current: None,
            ..issuing(1)
        },
    );
    match serial_to_record(&first, None) {
        Err(e @ CheckError::NotReady(_)) => {
            assert_eq!(e.kind(), rotation::error::FailureKind::NotReady)
        }
        other => panic!("{other:?}"),
    }
    let unreadable = pending_serial(Ok(Fetched::Ready {
        certificate: "junk".into(),
        chain: String::new(),
    }));
    assert!(
        matches!(unreadable, Err(CheckError::Refused(_))),
        "{unreadable:?}"
    );
    let failed = pending_serial(Err(aws_error("ThrottlingException", true)));
    assert!(matches!(failed, Err(CheckError::Aws(_))), "{failed:?}");
}

#[test]
fn a_revocation_with_rotate_plans_the_replacement() {
    let mut original = deployed(1, NOW - Duration::days(1));
    original.state = RotationState::Idle;
    let r = decided(&revocation(1, "KEY_COMPROMISE", true), original);
    let l = after_revoked(&r, r.note(None), revoked(1));
    assert_eq!(
        l.plan.items,
        [(revoked(1), PlanItem::Due(DueReason::Revoked))]
    );
}
