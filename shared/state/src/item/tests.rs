//! The row mapping, on rows as people, the original sample and this service write them.

use super::*;
use crate::host::HostId;
use crate::record::{Attempts, DeployedCert, FailureStage, RotationId};
use time::macros::datetime;

fn host() -> HostId {
    HostId::parse("mi-0123456789abcdef0").unwrap()
}

#[test]
fn original_sample_rows_are_read_as_they_are() {
    let mut item = Item::new();
    item.insert(attr::HOST_ID.into(), Attr::s("mi-0123456789abcdef0"));
    item.insert(attr::EXPIRY.into(), Attr::s("2026-12-08 10:00:00"));
    item.insert(attr::SERIAL.into(), Attr::s("0a:1b"));
    item.insert(attr::STATUS.into(), Attr::s("ISSUED"));
    item.insert(attr::RENEWAL_DATE.into(), Attr::s("2026-12-07 10:00:00"));
    let r = record_from_item(&item).unwrap();
    assert_eq!(r.state, RotationState::Idle);
    assert_eq!(r.version, None);
    let c = r.current.unwrap();
    assert_eq!(c.not_after, datetime!(2026-12-08 10:00:00 UTC));
    assert_eq!(c.serial.as_deref(), Some("0a:1b"));
    assert_eq!(c.not_before, None);
}

#[test]
fn wrong_types_and_unsafe_values_are_refused_with_the_attribute_named() {
    let base = enrolment_item(&host(), &HostOverrides::default());
    let cases = [
        (attr::VERSION, Attr::s("1"), "version"),
        (attr::EXPIRY, Attr::n(5), "expiry"),
        (attr::ATTEMPTS, Attr::s("many"), "attempts"),
        (attr::CERT_PATH, Attr::s("../etc"), "certPath"),
        (attr::STATE, Attr::s("DANCING"), "rotationState"),
        (attr::COMMAND_ID, Attr::s("a;b"), "commandId"),
        (attr::KEY_PATH, Attr::Other("BOOL"), "keyPath"),
    ];
    for (name, value, named) in cases {
        let mut item = base.clone();
        item.insert(name.into(), value.clone());
        let (key, why) = record_from_item(&item).expect_err(name);
        assert_eq!(key, "\"mi-0123456789abcdef0\"");
        assert!(why.to_string().contains(named), "{name}: {why}");
    }
    let mut no_key = base.clone();
    no_key.insert(attr::HOST_ID.into(), Attr::n(1));
    assert!(record_from_item(&no_key).is_err());
}

#[test]
fn in_flight_states_need_their_attributes() {
    let mut item = enrolment_item(&host(), &HostOverrides::default());
    item.insert(attr::STATE.into(), Attr::s("ISSUING"));
    item.insert(attr::ROTATION_ID.into(), Attr::s("r1"));
    let (_, why) = record_from_item(&item).unwrap_err();
    assert!(why.to_string().contains(attr::PENDING_CERT_ARN), "{why}");
}

#[test]
fn records_round_trip_through_items() {
    let nb = datetime!(2026-12-01 00:00:00 UTC);
    let current = Some(DeployedCert {
        serial: Some("0a:0b".into()),
        not_before: Some(nb),
        not_after: nb + time::Duration::days(7),
        renew_at: Some(nb + time::Duration::days(5)),
        cert_arn: Some("arn:aws:acm-pca:us-east-1:1:certificate-authority/x/certificate/y".into()),
    });
    let rotation = RotationId("r-1".into());
    let states = [
        RotationState::Idle,
        RotationState::Deployed,
        RotationState::CsrRequested {
            rotation: rotation.clone(),
            command_id: Some("c-1".into()),
        },
        RotationState::Issuing {
            rotation: rotation.clone(),
            cert_arn: "arn:c".into(),
            key_fingerprint: "ff".into(),
        },
        RotationState::Deploying {
            rotation: rotation.clone(),
            cert_arn: "arn:c".into(),
            command_id: None,
            pending: DeployedCert {
                serial: Some("01".into()),
                not_before: Some(nb),
                not_after: nb + time::Duration::days(7),
                renew_at: None,
                cert_arn: None,
            },
        },
        RotationState::Failed {
            rotation: Some(rotation.clone()),
            stage: FailureStage::Verify,
            reason: "chain did not verify".into(),
        },
        RotationState::Revoked {
            serial: "0a:0b".into(),
            held: None,
        },
    ];
    for state in states {
        let record = HostRecord {
            host: host(),
            overrides: HostOverrides::default(),
            version: Some(3),
            state,
            state_since: Some(nb),
            current: current.clone(),
            attempts: Attempts {
                failed: 2,
                next_attempt_at: Some(nb),
                ..Attempts::default()
            },
        };
        let back = record_from_item(&item_from_record(&record)).unwrap();
        assert_eq!(back, record);
    }
}

#[test]
fn numbers_compare_by_value() {
    assert!(Attr::N("1".into()).same_as(&Attr::N("1.0".into())));
    assert!(!Attr::N("1".into()).same_as(&Attr::s("1")));
}
