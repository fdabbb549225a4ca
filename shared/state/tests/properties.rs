//! Property tests of the state machine and the renewal point.

use proptest::prelude::*;
use state::item::{enrolment_item, record_from_item};
use state::plan::RenewalPolicy;
use state::record::{DeployedCert, FailureStage, HostRecord, RotationState, StateKind};
use state::rules::{apply_to_record, Change};
use state::{HostId, RotationId};
use time::{Duration, OffsetDateTime};

/// A step an actor takes. `Start` and `Fail` are filled in from the record the actor holds (as
/// a handler fills them in from the record it read); the others carry random IDs.
#[derive(Debug, Clone)]
enum Step {
    Start(String),
    Fail,
    /// A revocation of the serial given (held or not), with the state, rotation and current
    /// serial the actor read.
    Revoke(String, bool),
    /// A release under the hold the actor read.
    Release,
    Change(Change),
}

fn step() -> impl Strategy<Value = Step> {
    let id = "[a-c]";
    let r = |s: String| RotationId(s);
    prop_oneof![
        id.prop_map(Step::Start),
        (id, id).prop_map(move |(ro, c)| Step::Change(Change::CsrSent {
            rotation: r(ro),
            command_id: c
        })),
        (id, id, id).prop_map(move |(ro, c, a)| Step::Change(Change::Issuing {
            rotation: r(ro),
            command_id: c,
            cert_arn: a,
            key_fingerprint: "f".into()
        })),
        (id, id).prop_map(move |(ro, a)| Step::Change(Change::BeginDeploy {
            rotation: r(ro),
            cert_arn: a,
            pending: DeployedCert {
                serial: Some("01".into()),
                not_before: None,
                not_after: OffsetDateTime::UNIX_EPOCH,
                renew_at: None,
                cert_arn: None
            }
        })),
        (id, id).prop_map(move |(ro, c)| Step::Change(Change::DeploySent {
            rotation: r(ro),
            command_id: c
        })),
        id.prop_map(|c| Step::Change(Change::Deployed {
            command_id: c,
            cert: DeployedCert {
                serial: Some("01".into()),
                not_before: None,
                not_after: OffsetDateTime::UNIX_EPOCH,
                renew_at: None,
                cert_arn: None
            }
        })),
        Just(Step::Fail),
        ("0[0-2]", any::<bool>()).prop_map(|(serial, held)| Step::Revoke(serial, held)),
        Just(Step::Release),
    ]
}

fn change_for(step: &Step, record: &HostRecord) -> Change {
    match step {
        Step::Start(id) => Change::Start {
            expected_version: record.version,
            rotation: RotationId(id.clone()),
        },
        Step::Fail => Change::Fail {
            from: record.state.kind(),
            rotation: record
                .state
                .rotation()
                .cloned()
                .unwrap_or(RotationId("none".into())),
            stage: FailureStage::Deploy,
            reason: "x".into(),
            attempts: record.attempts.failed + 1,
            next_attempt_at: OffsetDateTime::UNIX_EPOCH,
        },
        Step::Revoke(serial, held) => Change::Revoke {
            from: record.state.kind(),
            rotation: record
                .state
                .kind()
                .in_flight()
                .then(|| record.state.rotation().cloned())
                .flatten(),
            current: record.current.as_ref().and_then(|c| c.serial.clone()),
            serial: serial.clone(),
            held: held.then(|| "KEY_COMPROMISE".into()),
        },
        Step::Release => Change::Release {
            held: match &record.state {
                RotationState::Revoked { held: Some(h), .. } => h.clone(),
                _ => "none".into(),
            },
        },
        Step::Change(c) => c.clone(),
    }
}

fn enrolled() -> HostRecord {
    let host = HostId::parse("mi-0123456789abcdef0").unwrap();
    record_from_item(&enrolment_item(&host, &Default::default())).unwrap()
}

fn apply(record: &HostRecord, step: &Step) -> Option<(Change, HostRecord)> {
    let change = change_for(step, record);
    apply_to_record(record, &change, OffsetDateTime::UNIX_EPOCH)
        .ok()
        .map(|next| (change, next))
}

proptest! {
    /// No sequence of transitions, accepted or refused, ever replaces a rotation in flight with
    /// another: a rotation ID changes only by a start from a state with nothing in flight, and
    /// every successful step of an in-flight rotation keeps its ID.
    #[test]
    fn never_two_rotations_in_flight(steps in proptest::collection::vec(step(), 0..60)) {
        let mut record = enrolled();
        for t in steps {
            let before = record.clone();
            if let Some((change, next)) = apply(&record, &t) {
                if before.state.kind().in_flight() && next.state.kind().in_flight() {
                    prop_assert_eq!(before.state.rotation(), next.state.rotation(), "{:?} on {:?}", change, before);
                }
                if matches!(change, Change::Start { .. }) {
                    prop_assert!(!before.state.kind().in_flight(), "start accepted while in flight: {:?}", before);
                    prop_assert!(
                        !matches!(before.state, RotationState::Revoked { held: Some(_), .. }),
                        "start accepted on a held host: {:?}", before
                    );
                }
                if matches!(change, Change::Revoke { .. }) {
                    prop_assert!(next.state.rotation().is_none(), "a revocation leaves nothing in flight: {:?}", next);
                }
                record = next;
            }
        }
    }

    /// Deployment only completes for the command that was recorded, and only after the
    /// certificate the rotation waited for was claimed.
    #[test]
    fn deployed_only_through_the_whole_chain(steps in proptest::collection::vec(step(), 0..60)) {
        let mut record = enrolled();
        let mut seen_issuing = false;
        for t in steps {
            if let Some((_, next)) = apply(&record, &t) {
                if matches!(next.state, RotationState::Issuing { .. }) { seen_issuing = true; }
                if matches!(next.state, RotationState::Deployed) {
                    prop_assert!(seen_issuing);
                    seen_issuing = false;
                }
                if matches!(next.state, RotationState::CsrRequested { command_id: None, .. }) { seen_issuing = false; }
                record = next;
            }
        }
    }

    /// A failure is recorded only for the rotation in flight, and counts every attempt.
    #[test]
    fn failures_count_and_belong_to_their_rotation(steps in proptest::collection::vec(step(), 0..60)) {
        let mut record = enrolled();
        for t in steps {
            if let Some((change, next)) = apply(&record, &t) {
                if next.state.kind() == StateKind::Failed && record.state.kind() != StateKind::Failed {
                    prop_assert!(record.state.kind().in_flight(), "{:?} failed from {:?}", change, record.state);
                    prop_assert_eq!(next.state.rotation(), record.state.rotation());
                    prop_assert_eq!(next.attempts.failed, record.attempts.failed + 1);
                }
                record = next;
            }
        }
    }

    /// The renewal point is always before NotAfter, never before NotBefore, and the jitter stays
    /// inside its window.
    #[test]
    fn renewal_point_inside_lifetime(
        host in 0u64..1_000_000,
        start in 1_600_000_000i64..2_000_000_000,
        lifetime_s in 3_600i64..(400 * 86_400),
        share in 0.01f64..0.99,
        jitter in 0.0f64..0.5,
        known_start in any::<bool>(),
    ) {
        let host = HostId::parse(&format!("mi-{host:017x}")).unwrap();
        let nb = OffsetDateTime::from_unix_timestamp(start).unwrap();
        let na = nb + Duration::seconds(lifetime_s);
        let p = RenewalPolicy { renew_share: share, jitter_share: jitter, assumed_lifetime: Duration::seconds(lifetime_s) };
        let point = p.renewal_point(&host, known_start.then_some(nb), na);
        prop_assert!(point < na);
        prop_assert!(point >= nb);
        let j = p.jitter(&host, na - nb);
        prop_assert!(j >= Duration::ZERO);
        prop_assert!(j.as_seconds_f64() <= (na - nb).as_seconds_f64() * jitter);
        // Deterministic: the same host always gets the same point.
        prop_assert_eq!(point, p.renewal_point(&host, known_start.then_some(nb), na));
    }

    /// A certificate with no recorded NotBefore is never due while its NotAfter lies past the
    /// listing window, so the store may leave such rows out.
    #[test]
    fn unscheduled_rows_past_the_window_are_not_due(
        host in 0u64..1_000_000,
        now_s in 1_600_000_000i64..2_000_000_000,
        ahead_s in -(30 * 86_400i64)..(400 * 86_400),
        lifetime_s in 0i64..(400 * 86_400),
        share in 0.0f64..1.0,
        jitter in 0.0f64..1.0,
    ) {
        let host = HostId::parse(&format!("mi-{host:017x}")).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(now_s).unwrap();
        let na = now + Duration::seconds(ahead_s);
        let p = RenewalPolicy { renew_share: share, jitter_share: jitter, assumed_lifetime: Duration::seconds(lifetime_s) };
        if p.renewal_point(&host, None, na) <= now {
            prop_assert!(na <= p.latest_due_not_after(now), "due at {now} but NotAfter {na} is past the window");
        }
    }
}
