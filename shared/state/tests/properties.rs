//! Property tests of the state machine and the renewal point.

use proptest::prelude::*;
use state::plan::RenewalPolicy;
use state::record::{DeployedCert, FailureStage, RotationState, Transition};
use state::{HostId, RotationId};
use time::{Duration, OffsetDateTime};

fn transition() -> impl Strategy<Value = Transition> {
    let id = "[a-c]";
    prop_oneof![
        id.prop_map(|r| Transition::Start(RotationId(r))),
        id.prop_map(Transition::CsrSent),
        (id, id).prop_map(|(c, a)| Transition::Issued {
            command_id: c,
            cert_arn: a,
            key_fingerprint: "f".into()
        }),
        id.prop_map(|a| Transition::BeginDeploy {
            cert_arn: a,
            pending: DeployedCert {
                serial: Some("01".into()),
                not_before: None,
                not_after: OffsetDateTime::UNIX_EPOCH,
                renew_at: None,
                cert_arn: None
            }
        }),
        id.prop_map(Transition::DeploySent),
        id.prop_map(Transition::Deployed),
        Just(Transition::Fail(FailureStage::Deploy, "x".into())),
        id.prop_map(Transition::Revoke),
    ]
}

proptest! {
    /// No sequence of transitions, accepted or refused, ever replaces a rotation in flight with
    /// another: a rotation ID changes only by a start from a state with nothing in flight, and
    /// every successful step of an in-flight rotation keeps its ID.
    #[test]
    fn never_two_rotations_in_flight(steps in proptest::collection::vec(transition(), 0..60)) {
        let mut state = RotationState::Idle;
        for t in steps {
            let before = state.clone();
            if let Ok(next) = state.apply(t.clone()) {
                if before.kind().in_flight() && next.kind().in_flight() {
                    prop_assert_eq!(before.rotation(), next.rotation(), "{:?} on {:?}", t, before);
                }
                if matches!(t, Transition::Start(_)) {
                    prop_assert!(!before.kind().in_flight(), "start accepted while in flight: {:?}", before);
                }
                state = next;
            }
        }
    }

    /// Deployment only completes for the command that was recorded, and only after the
    /// certificate the rotation waited for was claimed.
    #[test]
    fn deployed_only_through_the_whole_chain(steps in proptest::collection::vec(transition(), 0..60)) {
        let mut state = RotationState::Idle;
        let mut seen_issuing = false;
        for t in steps {
            if let Ok(next) = state.apply(t) {
                if matches!(next, RotationState::Issuing { .. }) { seen_issuing = true; }
                if matches!(next, RotationState::Deployed) {
                    prop_assert!(seen_issuing);
                    seen_issuing = false;
                }
                if matches!(next, RotationState::CsrRequested { command_id: None, .. }) { seen_issuing = false; }
                state = next;
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
