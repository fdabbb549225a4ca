//! One test per branch of the issuance step.

use rcgen::KeyPair;
use rotation::ca::Fetched;
use rotation::error::FailureKind;
use state::record::{FailureStage, RotationState};
use time::Duration;

use super::*;
use crate::step::testkit::*;

fn issuance(pki: &Pki) -> Issuance {
    issuance_record(
        &issued(),
        CERT_ARN,
        &host(),
        Some(issuing(&pki.fingerprint)),
        NOW,
    )
    .unwrap()
}

fn ready(certificate: &str, chain: &str) -> Result<Fetched, AwsError> {
    Ok(Fetched::Ready {
        certificate: certificate.into(),
        chain: chain.into(),
    })
}

/// A checked certificate, claimed: the claim and the deployment as the store answered it.
fn deploy(pki: &Pki, i: &Issuance) -> Deploy {
    let claim = fetched(i, ready(&pki.certificate, &pki.chain), NOW).unwrap();
    claimed(i, claim, Ok(deploying(None)), &config()).unwrap()
}

#[test]
fn an_issuance_from_our_ca_names_its_certificate() {
    assert_eq!(issuance_event(&issued(), &config()).unwrap(), CERT_ARN);
}

#[test]
fn another_detail_type_is_ignored() {
    let e = issued_with(|v| v["detail-type"] = "ACM Private CA CRL Generation".into());
    let why = ignored(issuance_event(&e, &config()));
    assert!(why.contains("is not an issuance"), "{why}");
}

#[test]
fn an_event_without_both_arns_is_ignored() {
    let e = issued_with(|v| v["resources"] = serde_json::json!([CA_ARN]));
    let why = ignored(issuance_event(&e, &config()));
    assert!(why.contains("without CA and certificate ARNs"), "{why}");
}

#[test]
fn a_certificate_of_another_ca_is_ignored() {
    let other = CA_ARN.replace("11223344-1234", "99999999-1234");
    let e = issued_with(|v| v["resources"][0] = other.clone().into());
    let why = ignored(issuance_event(&e, &config()));
    assert!(why.contains("is not from our CA"), "{why}");
    // Our CA's ARN, but a certificate ARN under another CA.
    let e = issued_with(|v| v["resources"][1] = format!("{other}/certificate/00").into());
    let why = ignored(issuance_event(&e, &config()));
    assert!(why.contains("is not from our CA"), "{why}");
}

/// A DEPLOYING record of [`CERT_ARN`] without a command, claimed `ago`.
fn claimed_at(ago: Duration) -> HostRecord {
    HostRecord {
        state_since: Some(NOW - ago),
        ..deploying(None)
    }
}

#[test]
fn a_claim_whose_deploy_cert_was_not_sent_is_continued_after_the_fence() {
    for ago in [CLAIM_FENCE, CLAIM_FENCE + Duration::minutes(2)] {
        let i = issuance_record(&issued(), CERT_ARN, &host(), Some(claimed_at(ago)), NOW).unwrap();
        assert_eq!(i.claimed, Some(pending_cert()));
        assert_eq!(i.record, claimed_at(ago));
        assert_eq!(i.rotation, rotation());
    }
}

#[test]
fn a_claim_younger_than_the_fence_is_not_ready() {
    // The delivery that claimed may still be sending its DeployCert: a duplicate waits.
    for ago in [Duration::ZERO, CLAIM_FENCE - Duration::seconds(1)] {
        let r = issuance_record(&issued(), CERT_ARN, &host(), Some(claimed_at(ago)), NOW);
        assert_eq!(error_kind(r), FailureKind::NotReady, "{ago}");
    }
}

#[test]
fn a_claim_of_another_certificate_is_ignored() {
    let mut r = claimed_at(CLAIM_FENCE * 2);
    if let RotationState::Deploying { cert_arn, .. } = &mut r.state {
        *cert_arn = format!("{CA_ARN}/certificate/00");
    }
    let why = ignored(issuance_record(&issued(), CERT_ARN, &host(), Some(r), NOW));
    assert!(why.contains("(stale"), "{why}");
}

#[test]
fn a_continued_claim_deploys_only_the_claimed_certificate() {
    let pki = Pki::new();
    let i = issuance_record(
        &issued(),
        CERT_ARN,
        &host(),
        Some(claimed_at(CLAIM_FENCE)),
        NOW,
    )
    .unwrap();
    let serial = pki::parse_certificate_pem(&pki.certificate).unwrap().serial;
    let mut i = Issuance {
        claimed: Some(DeployedCert {
            serial: Some(serial.clone()),
            ..pending_cert()
        }),
        ..i
    };
    let claim = fetched(&i, ready(&pki.certificate, &pki.chain), NOW).unwrap();
    assert_eq!(claim.serial, serial);
    // Another certificate at that ARN (it cannot be, but the claim says which one passed).
    i.claimed = Some(pending_cert());
    let f = failing(fetched(&i, ready(&pki.certificate, &pki.chain), NOW));
    assert!(
        f.failure.reason.contains("is not the one claimed"),
        "{}",
        f.failure.reason
    );
    assert_eq!(f.record, claimed_at(CLAIM_FENCE));
}

#[test]
fn a_host_no_longer_enrolled_is_ignored() {
    let why = ignored(issuance_record(&issued(), CERT_ARN, &host(), None, NOW));
    assert!(why.contains("no longer enrolled"), "{why}");
}

#[test]
fn a_host_not_waiting_for_this_certificate_is_ignored() {
    let other = record(RotationState::Issuing {
        rotation: rotation(),
        cert_arn: format!("{CA_ARN}/certificate/00"),
        key_fingerprint: "ab".into(),
    });
    for r in [
        other,
        deploying(Some(COMMAND)),
        record(RotationState::Deployed),
    ] {
        let kind = r.state.kind();
        let why = ignored(issuance_record(&issued(), CERT_ARN, &host(), Some(r), NOW));
        assert!(why.contains(&format!("is in {kind} (stale")), "{why}");
    }
}

#[test]
fn a_failed_issuance_fails_the_rotation() {
    let r = issuance_record(&not_issued(), CERT_ARN, &host(), Some(issuing("ab")), NOW);
    let f = failing(r);
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert_eq!(
        f.failure.reason,
        "Private CA reported that the issuance failed"
    );
    assert_eq!(f.failure.certificate_arn.as_deref(), Some(CERT_ARN));
    assert_eq!(f.record, issuing("ab"));
}

#[test]
fn the_waiting_rotation_fetches_its_certificate() {
    let i = issuance_record(&issued(), CERT_ARN, &host(), Some(issuing("ab")), NOW).unwrap();
    assert_eq!(i.claimed, None);
    assert_eq!((i.host, i.rotation), (host(), rotation()));
    assert_eq!(
        (i.cert_arn.as_str(), i.key_fingerprint.as_str()),
        (CERT_ARN, "ab")
    );
}

#[test]
fn fetching_goes_on_while_issuing_or_after_errors_that_may_clear() {
    assert!(fetch_again(&Ok(Fetched::Pending)));
    assert!(fetch_again(&Err(aws(true))));
    assert!(!fetch_again(&Err(aws(false))));
    assert!(!fetch_again(&ready("c", "ch")));
}

#[test]
fn a_certificate_still_being_issued_is_not_ready() {
    let pki = Pki::new();
    let i = issuance(&pki);
    assert_eq!(
        error_kind(fetched(&i, Ok(Fetched::Pending), NOW)),
        FailureKind::NotReady
    );
    assert_eq!(
        error_kind(fetched(&i, Err(aws(true)), NOW)),
        FailureKind::NotReady
    );
}

#[test]
fn a_fetch_refused_for_good_fails_the_rotation() {
    let pki = Pki::new();
    let f = failing(fetched(&issuance(&pki), Err(aws(false)), NOW));
    assert_eq!(f.failure.stage, FailureStage::Deploy);
    assert!(
        f.failure
            .reason
            .starts_with("could not fetch the certificate: "),
        "{}",
        f.failure.reason
    );
}

#[test]
fn a_checked_certificate_is_claimed_with_its_facts() {
    let pki = Pki::new();
    let claim = fetched(&issuance(&pki), ready(&pki.certificate, &pki.chain), NOW).unwrap();
    let facts = pki::parse_certificate_pem(&pki.certificate).unwrap();
    assert_eq!(claim.serial, facts.serial);
    assert_eq!(claim.pending.serial.as_deref(), Some(facts.serial.as_str()));
    assert_eq!(claim.pending.not_before, Some(NOW - Duration::hours(1)));
    assert_eq!(claim.pending.not_after, facts.not_after);
    // Both are written on DEPLOYED, once the host has verified the pair.
    assert_eq!(
        (claim.pending.renew_at, claim.pending.cert_arn),
        (None, None)
    );
    assert_eq!(
        (claim.certificate, claim.chain),
        (pki.certificate, pki.chain)
    );
}

#[test]
fn a_certificate_that_fails_the_checks_fails_the_rotation() {
    let pki = Pki::new();
    let f = failing(fetched(
        &issuance(&pki),
        ready(&pki.certificate, "junk"),
        NOW,
    ));
    assert_eq!(f.failure.stage, FailureStage::Deploy);
    assert!(
        f.failure.reason.starts_with("certificate does not chain"),
        "{}",
        f.failure.reason
    );
}

#[test]
fn the_checks_refuse_an_unreadable_certificate() {
    let pki = Pki::new();
    let why = check_certificate("junk", &pki.chain, &host(), &pki.fingerprint, NOW).unwrap_err();
    assert!(why.starts_with("issued certificate unreadable: "), "{why}");
}

#[test]
fn the_checks_refuse_a_certificate_for_another_host() {
    let pki = Pki::new();
    let other = pki.issue("mi-0000000000000bad0", None);
    let why = check_certificate(&other, &pki.chain, &host(), &pki.fingerprint, NOW).unwrap_err();
    assert!(
        why.starts_with("issued certificate refused: ") && why.contains("mi-0000000000000bad0"),
        "{why}"
    );
}

#[test]
fn the_checks_refuse_a_certificate_for_another_key() {
    let pki = Pki::new();
    let other = pki.issue(HOST, Some(&KeyPair::generate().unwrap()));
    let why = check_certificate(&other, &pki.chain, &host(), &pki.fingerprint, NOW).unwrap_err();
    assert!(why.contains("is not the CSR's key"), "{why}");
}

#[test]
fn the_checks_refuse_a_certificate_no_longer_valid() {
    let pki = Pki::new();
    let later = NOW + Duration::days(8);
    let why = check_certificate(
        &pki.certificate,
        &pki.chain,
        &host(),
        &pki.fingerprint,
        later,
    )
    .unwrap_err();
    assert!(why.starts_with("issued certificate refused: "), "{why}");
}

#[test]
fn the_checks_refuse_a_certificate_of_another_ca() {
    let (pki, other) = (Pki::new(), Pki::new());
    let why = check_certificate(
        &pki.certificate,
        &other.chain,
        &host(),
        &pki.fingerprint,
        NOW,
    )
    .unwrap_err();
    assert!(
        why.starts_with("certificate does not chain to the CA: "),
        "{why}"
    );
    check_certificate(&pki.certificate, &pki.chain, &host(), &pki.fingerprint, NOW).unwrap();
}

#[test]
fn a_claimed_deployment_sends_deploy_cert_with_the_hosts_paths() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    assert_eq!(d.record, deploying(None));
    let entry = d.entry(&i);
    assert_eq!(entry.host, host());
    assert_eq!(entry.certificate_pem, pki.certificate);
    assert_eq!(entry.rotation, rotation());
    let shared = d.shared();
    assert_eq!(shared.cert_path.as_str(), "/srv/pki/certs");
    assert_eq!(shared.key_path.as_str(), "/etc/pki/rolesanywhere/private");
    assert_eq!(shared.chain_pem, pki.chain);
}

#[test]
fn a_claim_lost_to_a_duplicate_is_ignored() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let claim = fetched(&i, ready(&pki.certificate, &pki.chain), NOW).unwrap();
    let why = ignored(claimed(&i, claim, Err(conflict()), &config()));
    assert!(why.contains("someone else moved this host"), "{why}");
}

#[test]
fn a_claim_the_store_may_take_later_is_retried() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let claim = fetched(&i, ready(&pki.certificate, &pki.chain), NOW).unwrap();
    assert_eq!(
        error_kind(claimed(&i, claim, Err(backend(true)), &config())),
        FailureKind::Retryable
    );
}

#[test]
fn a_claim_the_store_refuses_for_good_fails_the_rotation() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let claim = fetched(&i, ready(&pki.certificate, &pki.chain), NOW).unwrap();
    let f = failing(claimed(&i, claim, Err(backend(false)), &config()));
    assert_eq!(f.failure.stage, FailureStage::Deploy);
    assert!(
        f.failure
            .reason
            .starts_with("could not claim the deployment: "),
        "{}",
        f.failure.reason
    );
    assert_eq!(
        f.record, i.record,
        "the claim was not written: the rotation is still ISSUING"
    );
}

#[test]
fn a_sent_deploy_cert_is_recorded() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    assert_eq!(deploy_sent(&i, &d, Ok(COMMAND.into())).unwrap(), COMMAND);
}

#[test]
fn deploy_cert_refused_for_good_fails_the_claimed_rotation_with_the_reason() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    assert!(!send_again(&Err(aws(false))));
    let f = failing(deploy_sent(&i, &d, Err(aws(false))));
    assert_eq!(f.failure.stage, FailureStage::Deploy);
    assert!(
        f.failure.reason.starts_with("could not send DeployCert: "),
        "{}",
        f.failure.reason
    );
    assert!(
        f.failure.reason.contains("AccessDeniedException"),
        "{}",
        f.failure.reason
    );
    assert_eq!(f.record, deploying(None));
}

#[test]
fn deploy_cert_throttled_is_sent_again_then_retried_and_never_fails_the_rotation() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    assert!(send_again(&Err(aws(true))));
    assert!(!send_again(&Ok(COMMAND.into())));
    assert_eq!(
        error_kind(deploy_sent(&i, &d, Err(aws(true)))),
        FailureKind::Retryable
    );
}

#[test]
fn a_recorded_deploy_cert_is_the_outcome() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    let o = deploy_recorded(&i, &d, COMMAND.into(), Ok(deploying(Some(COMMAND)))).unwrap();
    assert_eq!(
        o,
        Outcome::DeploySent {
            host: HOST.into(),
            command_id: COMMAND.into()
        }
    );
}

#[test]
fn recording_deploy_cert_answers_like_every_store_write() {
    let pki = Pki::new();
    let i = issuance(&pki);
    let d = deploy(&pki, &i);
    ignored(deploy_recorded(&i, &d, COMMAND.into(), Err(conflict())));
    let r = deploy_recorded(&i, &d, COMMAND.into(), Err(backend(true)));
    assert_eq!(error_kind(r), FailureKind::Retryable);
    let f = failing(deploy_recorded(&i, &d, COMMAND.into(), Err(backend(false))));
    assert!(
        f.failure
            .reason
            .starts_with("could not record the DeployCert command: "),
        "{}",
        f.failure.reason
    );
    assert_eq!(f.failure.command_id.as_deref(), Some(COMMAND));
    assert_eq!(f.record, deploying(None));
}
