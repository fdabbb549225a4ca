//! One test per branch of the orphan decision.

use rotation::ca::Fetched;
use rotation::error::FailureKind;
use state::record::{DeployedCert, FailureStage, RotationState};
use state::RotationId;
use time::Duration;

use super::*;
use crate::step::testkit::*;
use crate::step::WAIT_FOR_EVENT;

fn facts(pki: &Pki) -> CertificateFacts {
    pki::parse_certificate_pem(&pki.certificate).unwrap()
}

fn with_current(mut r: HostRecord, serial: &str) -> HostRecord {
    r.current = Some(DeployedCert {
        serial: Some(serial.into()),
        ..pending_cert()
    });
    r
}

fn decide(
    pki: &Pki,
    record: Option<HostRecord>,
    sent: Option<OffsetDateTime>,
) -> Result<Retirement, Stop> {
    orphan(CERT_ARN, &facts(pki), &host(), record, sent, NOW)
}

#[test]
fn the_subject_names_the_host_or_the_certificate_is_not_ours() {
    let pki = Pki::new();
    assert_eq!(named_host(CERT_ARN, &facts(&pki)).unwrap(), host());
    let other = pki::parse_certificate_pem(&pki.issue("www.example.com", None)).unwrap();
    assert!(ignored(named_host(CERT_ARN, &other)).contains("names no host"));
}

#[test]
fn a_certificate_another_rotation_replaced_is_revoked() {
    let pki = Pki::new();
    let serial = facts(&pki).serial;
    let other_rotation = record(RotationState::Issuing {
        rotation: RotationId("r-2".into()),
        cert_arn: format!("{CA_ARN}/certificate/ff"),
        key_fingerprint: "fp".into(),
    });
    for r in [
        with_current(record(RotationState::Deployed), "0a:0b"),
        with_current(
            record(RotationState::Revoked {
                serial: "0a:0b".into(),
                held: Some("KEY_COMPROMISE".into()),
            }),
            "0a:0b",
        ),
        other_rotation,
        record(RotationState::Idle),
        record(RotationState::Failed {
            rotation: Some(rotation()),
            stage: FailureStage::Issue,
            reason: "refused".into(),
        }),
    ] {
        let got =
            decide(&pki, Some(r.clone()), Some(NOW)).unwrap_or_else(|e| panic!("{r:?}: {e:?}"));
        assert_eq!(
            got,
            Retirement {
                host: HOST.into(),
                serial: serial.clone(),
                cert_arn: Some(CERT_ARN.into()),
                what: "a certificate that never reached its host",
            }
        );
    }
    // A rotation still waiting for its CSR, once the wait is over.
    let csr = record(RotationState::CsrRequested {
        rotation: rotation(),
        command_id: Some(COMMAND.into()),
    });
    let old = NOW - WAIT_FOR_EVENT - Duration::minutes(1);
    decide(&pki, Some(csr), Some(old)).unwrap();
}

#[test]
fn a_certificate_a_rotation_may_still_record_is_not_ready() {
    let pki = Pki::new();
    let csr = record(RotationState::CsrRequested {
        rotation: rotation(),
        command_id: Some(COMMAND.into()),
    });
    // Events as old as the wait, unknown (synthesized), or from a clock ahead are young.
    for sent in [
        Some(NOW),
        Some(NOW - WAIT_FOR_EVENT),
        Some(NOW + Duration::minutes(5)),
        None,
    ] {
        assert_eq!(
            error_kind(decide(&pki, Some(csr.clone()), sent)),
            FailureKind::NotReady
        );
    }
    for waiting in [issuing("fp"), deploying(None)] {
        assert_eq!(
            error_kind(decide(&pki, Some(waiting), Some(NOW))),
            FailureKind::NotReady
        );
    }
}

#[test]
fn the_hosts_own_or_possibly_live_certificate_is_left_alone() {
    let pki = Pki::new();
    let serial = facts(&pki).serial;
    let current = with_current(record(RotationState::Deployed), &serial.to_uppercase());
    assert!(ignored(decide(&pki, Some(current), Some(NOW))).contains("current certificate"));
    let revoked = record(RotationState::Revoked {
        serial: serial.clone(),
        held: None,
    });
    assert!(ignored(decide(&pki, Some(revoked), Some(NOW))).contains("revoked certificate"));
    for stage in [FailureStage::Deploy, FailureStage::Verify] {
        let failed = record(RotationState::Failed {
            rotation: Some(rotation()),
            stage,
            reason: "host said no".into(),
        });
        assert!(ignored(decide(&pki, Some(failed), Some(NOW))).contains("may have reached"));
    }
    assert!(ignored(decide(&pki, None, Some(NOW))).contains("is not enrolled"));
}

#[test]
fn a_certificate_is_judged_once_it_can_be_read() {
    let pki = Pki::new();
    let ready = Ok(Fetched::Ready {
        certificate: pki.certificate.clone(),
        chain: pki.chain.clone(),
    });
    let old = Some(NOW - WAIT_FOR_EVENT - Duration::minutes(1));
    let fetch = |answer, sent| fetched(CERT_ARN, answer, sent, NOW);
    assert_eq!(fetch(ready, Some(NOW)).unwrap(), facts(&pki));
    assert_eq!(
        error_kind(fetch(Ok(Fetched::Pending), old)),
        FailureKind::NotReady
    );
    assert_eq!(
        error_kind(fetch(Err(aws(true)), old)),
        FailureKind::NotReady
    );
    // A refusal right after the announcement may be Private CA catching up: retried.
    for young in [Some(NOW), None] {
        assert_eq!(
            error_kind(fetch(Err(aws(false)), young)),
            FailureKind::NotReady
        );
    }
    assert!(ignored(fetch(Err(aws(false)), old)).contains("cannot be fetched"));
    let junk = Ok(Fetched::Ready {
        certificate: "junk".into(),
        chain: String::new(),
    });
    assert!(ignored(fetch(junk, Some(NOW))).contains("unreadable"));
}
