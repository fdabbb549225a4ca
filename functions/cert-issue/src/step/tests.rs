//! One test per branch of every step: records built as values, events from the sample events,
//! CSRs made in-process with rcgen. No AWS service, no shell, no openssl.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rotation::error::{AwsError, EventError, FailureKind, FunctionError};
use rotation::events::{CommandInvocationDetail, Envelope};
use rotation::failure::Failed;
use rotation::hosts::Invocation;
use rotation::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};
use state::ports::{StoreError, TransitionConflict};
use state::record::{Attempts, FailureStage, HostOverrides, RotationState};
use state::{HostId, HostRecord, RotationId};
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

const SAMPLE: &str =
    include_str!("../../tests/fixtures/events/ssm-command-invocation-status-change.json");
const HOST: &str = "mi-0a1b2c3d4e5f60718";
const COMMAND: &str = "9b3c2d1e-0f4a-4b5c-8d6e-7f8091a2b3c4";
const ROTATION: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const NOW: OffsetDateTime = datetime!(2026-11-21 10:14:05 UTC);

fn config() -> Config {
    Config::from_lookup(|k| {
        let v = match k {
            "TABLE_NAME" => "certrotation-hosts",
            "ALERT_TOPIC_ARN" => "arn:aws:sns:us-east-1:111122223333:certrotation-alerts",
            "CA_ARN" => "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566",
            "GENERATE_CSR_DOCUMENT" => "certrotation-GenerateCsr",
            "DEPLOY_CERT_DOCUMENT" => "certrotation-DeployCert",
            "CERT_VALIDITY_DAYS" => "5",
            _ => return None,
        };
        Some(v.to_owned())
    })
    .unwrap()
}

/// The sample event with `edit` applied to its JSON.
fn event_with(edit: impl FnOnce(&mut Value)) -> Envelope<CommandInvocationDetail> {
    let mut v: Value = serde_json::from_str(SAMPLE).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn event() -> Envelope<CommandInvocationDetail> {
    event_with(|_| {})
}

fn host() -> HostId {
    HostId::parse(HOST).unwrap()
}

fn record(state: RotationState) -> HostRecord {
    HostRecord {
        host: host(),
        overrides: HostOverrides::default(),
        version: Some(4),
        state,
        state_since: Some(NOW),
        current: None,
        attempts: Attempts::default(),
    }
}

fn waiting(command_id: Option<&str>) -> HostRecord {
    record(RotationState::CsrRequested {
        rotation: RotationId(ROTATION.into()),
        command_id: command_id.map(str::to_owned),
    })
}

fn pending() -> CsrPending {
    csr_ready(&event(), &host(), Some(waiting(Some(COMMAND)))).unwrap()
}

/// A CSR for `CN=<cn>` with a new P-256 key, and the SHA-256 of the key's SubjectPublicKeyInfo.
fn csr(cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let spki = hex::encode(Sha256::digest(key.subject_public_key_info()));
    (pem, spki)
}

/// GenerateCsr's stdout as the document prints it.
fn stdout(rotation: Option<&str>, csr_pem: &str) -> String {
    let echo = rotation
        .map(|r| format!("ROTATION {r}\n"))
        .unwrap_or_default();
    format!("generating a P-256 key\n{echo}{csr_pem}done\n")
}

fn finished(stdout: String) -> Result<Invocation, AwsError> {
    Ok(Invocation::Finished {
        success: true,
        status: "Success".into(),
        stdout,
        stderr: String::new(),
    })
}

fn aws(retryable: bool) -> AwsError {
    AwsError {
        service: "ACMPCA",
        operation: "IssueCertificate",
        code: Some(code(retryable).into()),
        message: "no".into(),
        retryable,
        source: None,
    }
}

fn backend(retryable: bool) -> StoreError {
    StoreError::Backend {
        operation: "UpdateItem",
        code: Some(code(retryable).into()),
        message: "no".into(),
        retryable,
        source: "cause".into(),
    }
}

/// A service error code a retry may cure, or one it will not.
fn code(retryable: bool) -> &'static str {
    match retryable {
        true => "ThrottlingException",
        false => "AccessDeniedException",
    }
}

fn conflict() -> StoreError {
    StoreError::Conflict(TransitionConflict {
        host: host(),
        transition: "record issuance",
    })
}

fn ignored<T: std::fmt::Debug>(r: Result<T, Stop>) -> String {
    match r {
        Err(Stop::Ignore(why)) => why,
        other => panic!("expected ignore, got {other:?}"),
    }
}

fn error_kind<T: std::fmt::Debug>(r: Result<T, Stop>) -> FailureKind {
    match r {
        Err(Stop::Error(e)) => FunctionError::from(e).kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn failing<T: std::fmt::Debug>(r: Result<T, Stop>) -> Failing {
    match r {
        Err(Stop::Fail(f)) => *f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn the_sample_event_names_its_host() {
    assert_eq!(csr_event(&event(), &config()).unwrap(), host());
}

#[test]
fn another_event_type_is_ignored() {
    let e = event_with(|v| v["detail-type"] = "EC2 Command Status-change Notification".into());
    let why = ignored(csr_event(&e, &config()));
    assert!(why.contains("unexpected event"), "{why}");
    let why = ignored(csr_event(
        &event_with(|v| v["source"] = "aws.ec2".into()),
        &config(),
    ));
    assert!(why.contains("aws.ec2"), "{why}");
}

#[test]
fn another_document_is_ignored() {
    let e = event_with(|v| v["detail"]["document-name"] = "certrotation-DeployCert".into());
    let why = ignored(csr_event(&e, &config()));
    assert!(why.contains("is not GenerateCsr"), "{why}");
}

#[test]
fn an_unfinished_invocation_is_ignored() {
    let e = event_with(|v| v["detail"]["status"] = "InProgress".into());
    let why = ignored(csr_event(&e, &config()));
    assert!(why.contains("not final"), "{why}");
}

#[test]
fn an_instance_that_is_not_a_managed_node_is_ignored() {
    let e = event_with(|v| v["detail"]["instance-id"] = "mi-0A1B; reboot".into());
    let why = ignored(csr_event(&e, &config()));
    assert!(why.contains("not a managed-node ID"), "{why}");
}

#[test]
fn a_host_not_enrolled_is_ignored() {
    let why = ignored(csr_ready(&event(), &host(), None));
    assert!(why.contains("not enrolled"), "{why}");
}

#[test]
fn a_host_in_another_state_is_ignored() {
    let why = ignored(csr_ready(
        &event(),
        &host(),
        Some(record(RotationState::Deployed)),
    ));
    assert!(why.contains("DEPLOYED") && why.contains("stale"), "{why}");
}

#[test]
fn a_rotation_waiting_for_another_command_ignores_this_one() {
    let why = ignored(csr_ready(
        &event(),
        &host(),
        Some(waiting(Some("other-command"))),
    ));
    assert!(why.contains("waits for command other-command"), "{why}");
}

#[test]
fn a_command_not_recorded_yet_is_not_ready() {
    let r = csr_ready(&event(), &host(), Some(waiting(None)));
    assert_eq!(error_kind(r), FailureKind::NotReady);
}

#[test]
fn the_waiting_rotation_fetches_the_output_of_this_command() {
    let p = pending();
    assert_eq!(p.host, host());
    assert_eq!(p.rotation.as_str(), ROTATION);
    assert_eq!(p.command_id, COMMAND);
    assert_eq!(p.record, waiting(Some(COMMAND)));
}

#[test]
fn an_output_read_that_may_succeed_later_is_retried() {
    assert_eq!(
        error_kind(csr_output(&pending(), Err(aws(true)), &config())),
        FailureKind::Retryable
    );
}

#[test]
fn an_output_read_refused_for_good_fails_the_rotation() {
    let f = failing(csr_output(&pending(), Err(aws(false)), &config()));
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert!(
        f.failure
            .reason
            .starts_with("could not read the GenerateCsr output"),
        "{}",
        f.failure.reason
    );
    assert!(
        f.failure.reason.contains("AccessDeniedException"),
        "{}",
        f.failure.reason
    );
}

#[test]
fn an_output_not_visible_yet_is_not_ready() {
    let r = csr_output(&pending(), Ok(Invocation::Pending), &config());
    assert_eq!(error_kind(r), FailureKind::NotReady);
}

#[test]
fn generate_csr_failed_on_the_host_fails_with_the_hosts_error_line() {
    let out = Ok(Invocation::Finished {
        success: false,
        status: "Failed".into(),
        stdout: String::new(),
        stderr: "checking tools\nERROR: openssl not found\nexit 1\n".into(),
    });
    let f = failing(csr_output(&pending(), out, &config()));
    assert_eq!(f.failure.stage, FailureStage::RequestCsr);
    assert_eq!(
        f.failure.reason,
        "GenerateCsr Failed on the host: ERROR: openssl not found"
    );
    assert_eq!(f.failure.command_id.as_deref(), Some(COMMAND));
    assert_eq!(f.record, waiting(Some(COMMAND)));
}

#[test]
fn output_of_another_rotation_fails() {
    let (pem, _) = csr(HOST);
    let f = failing(csr_output(
        &pending(),
        finished(stdout(Some("old-rotation"), &pem)),
        &config(),
    ));
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert!(
        f.failure
            .reason
            .contains("belongs to rotation \"old-rotation\""),
        "{}",
        f.failure.reason
    );
    let f = failing(csr_output(
        &pending(),
        finished(stdout(None, &pem)),
        &config(),
    ));
    assert!(
        f.failure.reason.contains("rotation \"none\""),
        "{}",
        f.failure.reason
    );
}

#[test]
fn a_csr_for_another_host_is_refused() {
    let (pem, _) = csr("mi-0000000000000bad0");
    let f = failing(csr_output(
        &pending(),
        finished(stdout(Some(ROTATION), &pem)),
        &config(),
    ));
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert!(
        f.failure.reason.starts_with("CSR refused: "),
        "{}",
        f.failure.reason
    );
    assert!(
        f.failure.reason.contains("mi-0000000000000bad0"),
        "{}",
        f.failure.reason
    );
}

#[test]
fn an_output_without_a_csr_is_refused() {
    let f = failing(csr_output(
        &pending(),
        finished(stdout(Some(ROTATION), "")),
        &config(),
    ));
    assert!(
        f.failure
            .reason
            .starts_with("CSR refused: no CERTIFICATE REQUEST"),
        "{}",
        f.failure.reason
    );
}

#[test]
fn an_accepted_csr_is_issued_under_the_rotations_token() {
    let (pem, spki) = csr(HOST);
    let request = csr_output(
        &pending(),
        finished(stdout(Some(ROTATION), &pem)),
        &config(),
    )
    .unwrap();
    assert_eq!(request.csr_pem.trim(), pem.trim());
    assert_eq!(request.validity_days, 5);
    assert_eq!(request.idempotency_token, ROTATION);
    assert_eq!(request.key_fingerprint, spki);
    assert_eq!(
        request.key_kind,
        pki::KeyKind::Ec {
            curve: pki::EcCurve::P256
        }
    );
}

#[test]
fn an_issued_certificate_is_recorded() {
    assert_eq!(
        issue_answer(&pending(), Ok("arn:cert".into())).unwrap(),
        "arn:cert"
    );
}

#[test]
fn a_ca_error_that_may_clear_is_retried() {
    assert_eq!(
        error_kind(issue_answer(&pending(), Err(aws(true)))),
        FailureKind::Retryable
    );
}

#[test]
fn a_ca_refusal_fails_the_rotation() {
    let f = failing(issue_answer(&pending(), Err(aws(false))));
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert!(
        f.failure
            .reason
            .starts_with("Private CA refused the request: "),
        "{}",
        f.failure.reason
    );
}

#[test]
fn recorded_issuance_is_the_outcome() {
    let o = issuing_recorded(&pending(), "arn:cert", Ok(waiting(Some(COMMAND)))).unwrap();
    assert_eq!(
        o,
        Outcome::Issued {
            host: HOST.into(),
            certificate_arn: "arn:cert".into()
        }
    );
}

#[test]
fn a_duplicate_that_recorded_first_is_ignored() {
    let why = ignored(issuing_recorded(&pending(), "arn:cert", Err(conflict())));
    assert!(why.contains("someone else moved this host"), "{why}");
}

#[test]
fn a_store_error_that_may_clear_is_retried() {
    let r = issuing_recorded(&pending(), "arn:cert", Err(backend(true)));
    assert_eq!(error_kind(r), FailureKind::Retryable);
}

#[test]
fn a_store_error_no_retry_cures_fails_the_rotation() {
    let f = failing(issuing_recorded(
        &pending(),
        "arn:cert",
        Err(backend(false)),
    ));
    assert_eq!(f.failure.stage, FailureStage::Issue);
    assert!(
        f.failure
            .reason
            .contains("could not record the certificate request arn:cert"),
        "{}",
        f.failure.reason
    );
    assert!(
        f.failure.reason.contains("AccessDeniedException"),
        "{}",
        f.failure.reason
    );
}

#[test]
fn a_recorded_failure_is_the_outcome() {
    let f = failing(issue_answer(&pending(), Err(aws(false))));
    let o = failed(
        &f,
        Ok(Failed {
            attempts: 1,
            alerted: true,
        }),
    )
    .unwrap();
    assert_eq!(
        o,
        Outcome::Failed {
            host: HOST.into(),
            reason: f.failure.reason.clone()
        }
    );
}

#[test]
fn a_failure_that_lost_a_race_is_ignored() {
    let f = failing(issue_answer(&pending(), Err(aws(false))));
    assert!(matches!(
        failed(&f, Err(conflict())),
        Ok(Outcome::Ignored { .. })
    ));
}

#[test]
fn a_failure_that_cannot_be_recorded_fails_the_invocation() {
    let f = failing(issue_answer(&pending(), Err(aws(false))));
    let e = failed(&f, Err(backend(false))).unwrap_err();
    assert!(matches!(e, EventError::Store(_)));
    assert_eq!(FunctionError::from(e).kind, FailureKind::Permanent);
    let e = failed(&f, Err(backend(true))).unwrap_err();
    assert_eq!(FunctionError::from(e).kind, FailureKind::Retryable);
}

#[test]
fn refusals_and_host_failures_count_as_failed_rotations() {
    let failed = |reason: &str| Outcome::Failed {
        host: HOST.into(),
        reason: reason.into(),
    };
    let outcomes = [
        Outcome::Issued {
            host: HOST.into(),
            certificate_arn: "arn:cert".into(),
        },
        failed("CSR refused: subject is CN=mi-other"),
        failed("GenerateCsr Failed on the host: openssl: not found"),
        Outcome::Ignored {
            reason: "stale".into(),
        },
    ];
    let doc = metrics(&outcomes).document("CertIssue", 0);
    assert_eq!(doc["RotationsFailed"], 2.0);
    assert_eq!(doc["CertificatesRequested"], 1.0);
    let only_ignored = metrics(&outcomes[3..]).document("CertIssue", 0);
    assert!(only_ignored.get("RotationsFailed").is_none());
    assert_eq!(
        only_ignored["_aws"]["CloudWatchMetrics"][0]["Metrics"],
        serde_json::json!([])
    );
}

#[test]
fn errors_are_delivered_again_and_outcomes_are_not() {
    let failed = Outcome::Failed {
        host: HOST.into(),
        reason: "CSR refused".into(),
    };
    assert!(!deliver_again::<FunctionError>(&Ok(failed)));
    assert!(!deliver_again::<FunctionError>(&Ok(Outcome::Ignored {
        reason: "stale".into()
    })));
    let throttled = FunctionError {
        kind: FailureKind::Retryable,
        message: "ThrottlingException".into(),
    };
    assert!(deliver_again(&Err::<Outcome, _>(throttled)));
}
