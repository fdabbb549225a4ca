//! The rules on the happy path, on foreign values and on stale versions.

use super::*;
use crate::item::UNSETTLED_VALUE;
use crate::record::RotationState;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00:00 UTC);

fn enrolled() -> HostRecord {
    let item = crate::item::enrolment_item(
        &HostId::parse("mi-0123456789abcdef0").unwrap(),
        &Default::default(),
    );
    record_from_item(&item).unwrap()
}

fn r(id: &str) -> RotationId {
    RotationId(id.into())
}

fn pending() -> DeployedCert {
    DeployedCert {
        serial: Some("0a".into()),
        not_before: Some(NOW),
        not_after: NOW + time::Duration::days(7),
        renew_at: None,
        cert_arn: None,
    }
}

fn fail(from: StateKind, rotation: &str) -> Change {
    Change::Fail {
        from,
        rotation: r(rotation),
        stage: FailureStage::Deploy,
        reason: "x".repeat(2000),
        attempts: 1,
        next_attempt_at: NOW,
    }
}

fn revoke(
    from: StateKind,
    rotation: Option<&str>,
    current: Option<&str>,
    serial: &str,
    held: Option<&str>,
) -> Change {
    Change::Revoke {
        from,
        rotation: rotation.map(r),
        current: current.map(Into::into),
        serial: serial.into(),
        held: held.map(Into::into),
    }
}

/// The whole happy path, each step accepted once and refused when repeated.
#[test]
fn a_rotation_walks_the_chain_once() {
    let steps = [
        Change::Start {
            expected_version: None,
            rotation: r("a"),
        },
        Change::CsrSent {
            rotation: r("a"),
            command_id: "c1".into(),
        },
        Change::Issuing {
            rotation: r("a"),
            command_id: "c1".into(),
            cert_arn: "arn1".into(),
            key_fingerprint: "fp".into(),
        },
        Change::BeginDeploy {
            rotation: r("a"),
            cert_arn: "arn1".into(),
            pending: pending(),
        },
        Change::DeploySent {
            rotation: r("a"),
            command_id: "c2".into(),
        },
        Change::Deployed {
            command_id: "c2".into(),
            cert: pending(),
        },
    ];
    let mut rec = enrolled();
    for step in &steps {
        rec = apply_to_record(&rec, step, NOW).unwrap();
        assert!(apply_to_record(&rec, step, NOW).is_err(), "{step:?} twice");
    }
    assert_eq!(rec.state, RotationState::Deployed);
    assert_eq!(
        rec.version,
        Some(4),
        "start, issuing, deploying and deployed each bump it"
    );
    assert_eq!(rec.current.unwrap().serial.as_deref(), Some("0a"));
}

#[test]
fn guards_refuse_foreign_values() {
    let started = apply_to_record(
        &enrolled(),
        &Change::Start {
            expected_version: None,
            rotation: r("a"),
        },
        NOW,
    )
    .unwrap();
    let refused = [
        Change::Start {
            expected_version: started.version,
            rotation: r("b"),
        },
        Change::CsrSent {
            rotation: r("b"),
            command_id: "c".into(),
        },
        Change::Issuing {
            rotation: r("a"),
            command_id: "c".into(),
            cert_arn: "arn".into(),
            key_fingerprint: "f".into(),
        },
        fail(StateKind::CsrRequested, "b"),
        fail(StateKind::Issuing, "a"),
        revoke(StateKind::CsrRequested, Some("b"), None, "0a", None),
        revoke(StateKind::CsrRequested, None, None, "0a", None),
        revoke(StateKind::Deployed, None, None, "0a", None),
    ];
    for c in refused {
        assert!(apply_to_record(&started, &c, NOW).is_err(), "{c:?}");
    }
    let failed = apply_to_record(&started, &fail(StateKind::CsrRequested, "a"), NOW).unwrap();
    let RotationState::Failed { reason, .. } = &failed.state else {
        panic!("{failed:?}")
    };
    assert!(reason.len() <= MAX_REASON_BYTES + "…".len());
    assert_eq!(failed.attempts.failed, 1);
}

#[test]
fn a_stale_version_cannot_start_and_a_state_that_is_not_in_flight_cannot_fail() {
    let rec = enrolled();
    let stale = Change::Start {
        expected_version: Some(7),
        rotation: r("a"),
    };
    assert!(apply_to_record(&rec, &stale, NOW).is_err());
    let rule = Rule::for_change(&fail(StateKind::Deployed, "a"), NOW);
    assert!(rule.never_holds());
}

/// The unsettled-index key is on the item exactly while a rotation is in flight or failed.
#[test]
fn the_unsettled_key_follows_the_state() {
    let host = HostId::parse("mi-0123456789abcdef0").unwrap();
    let on = |item: &Item| item.get(attr::UNSETTLED) == Some(&Attr::s(UNSETTLED_VALUE));
    let mut item = crate::item::enrolment_item(&host, &Default::default());
    assert!(!on(&item), "enrolled");
    let chain = [
        (
            Change::Start {
                expected_version: None,
                rotation: r("a"),
            },
            true,
        ),
        (
            Change::CsrSent {
                rotation: r("a"),
                command_id: "c1".into(),
            },
            true,
        ),
        (
            Change::Issuing {
                rotation: r("a"),
                command_id: "c1".into(),
                cert_arn: "arn1".into(),
                key_fingerprint: "fp".into(),
            },
            true,
        ),
        (
            Change::BeginDeploy {
                rotation: r("a"),
                cert_arn: "arn1".into(),
                pending: pending(),
            },
            true,
        ),
        (fail(StateKind::Deploying, "a"), true),
        (
            Change::Start {
                expected_version: Some(4),
                rotation: r("b"),
            },
            true,
        ),
        (
            Change::CsrSent {
                rotation: r("b"),
                command_id: "c2".into(),
            },
            true,
        ),
        (
            Change::Issuing {
                rotation: r("b"),
                command_id: "c2".into(),
                cert_arn: "arn2".into(),
                key_fingerprint: "fp".into(),
            },
            true,
        ),
        (
            Change::BeginDeploy {
                rotation: r("b"),
                cert_arn: "arn2".into(),
                pending: pending(),
            },
            true,
        ),
        (
            Change::DeploySent {
                rotation: r("b"),
                command_id: "c3".into(),
            },
            true,
        ),
        (
            Change::Deployed {
                command_id: "c3".into(),
                cert: pending(),
            },
            false,
        ),
        (
            revoke(StateKind::Deployed, None, Some("0a"), "0a", None),
            false,
        ),
    ];
    for (change, unsettled) in chain {
        item =
            apply(&host, Some(&item), &change, NOW).unwrap_or_else(|e| panic!("{change:?}: {e}"));
        assert_eq!(on(&item), unsettled, "after {change:?}");
        let record = record_from_item(&item).unwrap();
        let seeded = crate::item::item_from_record(&record);
        assert_eq!(on(&seeded), unsettled, "a seeded {change:?} agrees");
    }
}

/// A due host at rest that could not be reached joins the unsettled index until its rotation is
/// deployed; a host in another state is refused (in flight or failed it is there already).
#[test]
fn a_host_waiting_to_be_online_is_in_the_unsettled_index_until_deployed() {
    let host = HostId::parse("mi-0123456789abcdef0").unwrap();
    let on = |item: &Item| item.get(attr::UNSETTLED) == Some(&Attr::s(UNSETTLED_VALUE));
    let item = crate::item::enrolment_item(&host, &Default::default());
    let waiting = apply(&host, Some(&item), &Change::AwaitingOnline, NOW).unwrap();
    assert!(on(&waiting), "an enrolled host waiting");
    assert_eq!(
        waiting.get(attr::VERSION),
        item.get(attr::VERSION),
        "no version bump"
    );
    let chain = [
        Change::Start {
            expected_version: None,
            rotation: r("a"),
        },
        Change::CsrSent {
            rotation: r("a"),
            command_id: "c1".into(),
        },
        Change::Issuing {
            rotation: r("a"),
            command_id: "c1".into(),
            cert_arn: "arn1".into(),
            key_fingerprint: "fp".into(),
        },
        Change::BeginDeploy {
            rotation: r("a"),
            cert_arn: "arn1".into(),
            pending: pending(),
        },
        Change::DeploySent {
            rotation: r("a"),
            command_id: "c2".into(),
        },
        Change::Deployed {
            command_id: "c2".into(),
            cert: pending(),
        },
    ];
    let mut item = waiting;
    for change in &chain {
        item = apply(&host, Some(&item), change, NOW).unwrap_or_else(|e| panic!("{change:?}: {e}"));
    }
    assert!(!on(&item), "deployed, it leaves the index");
    let waiting = apply(&host, Some(&item), &Change::AwaitingOnline, NOW).unwrap();
    assert!(on(&waiting), "a deployed host waiting");
    let revoked = apply(
        &host,
        Some(&item),
        &revoke(StateKind::Deployed, None, Some("0a"), "0a", None),
        NOW,
    )
    .unwrap();
    assert!(apply(&host, Some(&revoked), &Change::AwaitingOnline, NOW).is_err());
}

/// A revocation in flight cancels the rotation: every later event of it is refused, the
/// pending certificate is recorded as the revoked one, and the host leaves the unsettled index.
#[test]
fn a_revocation_cancels_the_rotation_in_flight() {
    let mut rec = enrolled();
    let chain = [
        Change::Start {
            expected_version: None,
            rotation: r("a"),
        },
        Change::CsrSent {
            rotation: r("a"),
            command_id: "c1".into(),
        },
        Change::Issuing {
            rotation: r("a"),
            command_id: "c1".into(),
            cert_arn: "arn1".into(),
            key_fingerprint: "fp".into(),
        },
        Change::BeginDeploy {
            rotation: r("a"),
            cert_arn: "arn1".into(),
            pending: pending(),
        },
        Change::DeploySent {
            rotation: r("a"),
            command_id: "c2".into(),
        },
    ];
    for c in &chain {
        rec = apply_to_record(&rec, c, NOW).unwrap();
    }
    let before = rec.clone();
    let revoked = apply_to_record(
        &rec,
        &revoke(
            StateKind::Deploying,
            Some("a"),
            None,
            "0a",
            Some("KEY_COMPROMISE"),
        ),
        NOW,
    )
    .unwrap();
    assert_eq!(
        revoked.state,
        RotationState::Revoked {
            serial: "0a".into(),
            held: Some("KEY_COMPROMISE".into())
        }
    );
    let item = crate::item::item_from_record(&revoked);
    for a in IN_FLIGHT.iter().chain([&attr::UNSETTLED]) {
        assert!(!item.contains_key(*a), "{a} is gone");
    }
    let late = [
        Change::Deployed {
            command_id: "c2".into(),
            cert: pending(),
        },
        Change::DeploySent {
            rotation: r("a"),
            command_id: "c3".into(),
        },
        Change::BeginDeploy {
            rotation: r("a"),
            cert_arn: "arn1".into(),
            pending: pending(),
        },
        fail(StateKind::Deploying, "a"),
        revoke(StateKind::Revoked, None, None, "0a", None),
        Change::Start {
            expected_version: revoked.version,
            rotation: r("b"),
        },
    ];
    for c in &late {
        assert!(apply_to_record(&revoked, c, NOW).is_err(), "{c:?}");
    }
    // The caller's view must be the item's: another rotation, or a serial that changed, refuses.
    for stale in [
        revoke(StateKind::Deploying, Some("b"), None, "0a", None),
        revoke(StateKind::Deploying, Some("a"), Some("0b"), "0a", None),
        revoke(StateKind::Issuing, Some("a"), None, "0a", None),
    ] {
        assert!(apply_to_record(&before, &stale, NOW).is_err(), "{stale:?}");
    }
}

/// A held host is released only under the reason that holds it, and only then can start.
#[test]
fn a_held_host_starts_only_after_its_release() {
    let deployed = deployed_with("0a");
    let held = apply_to_record(
        &deployed,
        &revoke(
            StateKind::Deployed,
            None,
            Some("0a"),
            "0a",
            Some("KEY_COMPROMISE"),
        ),
        NOW,
    )
    .unwrap();
    let start = |v| Change::Start {
        expected_version: v,
        rotation: r("b"),
    };
    assert!(apply_to_record(&held, &start(held.version), NOW).is_err());
    let wrong = Change::Release {
        held: "SUPERSEDED".into(),
    };
    assert!(apply_to_record(&held, &wrong, NOW).is_err());
    let release = Change::Release {
        held: "KEY_COMPROMISE".into(),
    };
    let released = apply_to_record(&held, &release, NOW).unwrap();
    assert_eq!(
        released.state,
        RotationState::Revoked {
            serial: "0a".into(),
            held: None
        }
    );
    assert_eq!(released.version, held.version.map(|v| v + 1));
    assert!(apply_to_record(&released, &release, NOW).is_err(), "twice");
    assert!(apply_to_record(&held, &start(released.version), NOW).is_err());
    apply_to_record(&released, &start(released.version), NOW).unwrap();
    // A reason that does not hold re-issues as before.
    let superseded = apply_to_record(
        &deployed,
        &revoke(StateKind::Deployed, None, Some("0a"), "0a", None),
        NOW,
    )
    .unwrap();
    apply_to_record(&superseded, &start(superseded.version), NOW).unwrap();
}

fn deployed_with(serial: &str) -> HostRecord {
    HostRecord {
        state: RotationState::Deployed,
        version: Some(3),
        current: Some(DeployedCert {
            serial: Some(serial.into()),
            ..pending()
        }),
        ..enrolled()
    }
}
