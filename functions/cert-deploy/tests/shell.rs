//! The shell: `handle` with in-memory ports. The steps' branches are tested beside them; these
//! check that the shell carries out each kind of decision (record, send, fail with one alert,
//! ignore, fail the invocation with the right error type).

use rotation::fakes;

use fakes::{aws_error, store_error, Ca, Hosts, Inbox, Store};
use lambda_runtime::{Diagnostic, LambdaEvent};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rotation::ca::Fetched;
use rotation::hosts::Invocation;
use rotation::{Config, Deps};
use serde_json::Value;
use state::record::{Attempts, DeployedCert, HostOverrides, StateKind};
use state::{HostId, HostRecord, RotationId, RotationState};
use time::{Duration, OffsetDateTime};

const ISSUED: &str = include_str!("fixtures/events/pca-certificate-issuance-success.json");
const INVOCATION: &str = include_str!("fixtures/events/ssm-command-invocation-status-change.json");
const CA_ARN: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566";
const CERT_ARN: &str = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11223344-1234-1122-2233-112233445566/certificate/e8cbd2bedb122329f97706bcfec990f8";
const HOST: &str = "mi-0a1b2c3d4e5f60718";
const COMMAND: &str = "9b3c2d1e-0f4a-4b5c-8d6e-7f8091a2b3c4";

fn config() -> Config {
    config_with(None)
}

/// The stack's config, with `RELOAD_HOOK` when given.
fn config_with(reload_hook: Option<&'static str>) -> Config {
    Config::from_lookup(|k| {
        let v = match k {
            "RELOAD_HOOK" => reload_hook?,
            "TABLE_NAME" => "t",
            "ALERT_TOPIC_ARN" => "arn:aws:sns:us-east-1:111122223333:alerts",
            "CA_ARN" => CA_ARN,
            "GENERATE_CSR_DOCUMENT" => "certrotation-GenerateCsr",
            "DEPLOY_CERT_DOCUMENT" => "certrotation-DeployCert",
            _ => return None,
        };
        Some(v.to_owned())
    })
    .unwrap()
}

fn host() -> HostId {
    HostId::parse(HOST).unwrap()
}

fn deps(state: RotationState) -> Deps<Store, Hosts, Ca, Inbox> {
    let record = HostRecord {
        host: host(),
        overrides: HostOverrides::default(),
        version: Some(5),
        state,
        state_since: Some(OffsetDateTime::now_utc()),
        current: None,
        attempts: Attempts::default(),
    };
    Deps {
        store: Store::with(record),
        hosts: Hosts::default(),
        ca: Ca::default(),
        alerts: Inbox::default(),
        config: config(),
    }
}

/// A CA's certificate (the chain), a certificate for the host signed by it, and the SHA-256 of
/// the host key's SubjectPublicKeyInfo.
fn certificate() -> (String, String, String) {
    let now = OffsetDateTime::now_utc();
    let name = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = name("Example CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let chain = ca.self_signed(&ca_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name = name(HOST);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.not_before = now - Duration::hours(1);
    leaf.not_after = now + Duration::days(7);
    let cert = leaf
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .unwrap()
        .pem();
    let fingerprint = pki::parse_certificate_pem(&cert).unwrap().spki_sha256;
    (cert, chain, fingerprint)
}

fn issuing(fingerprint: &str) -> RotationState {
    RotationState::Issuing {
        rotation: RotationId("r-1".into()),
        cert_arn: CERT_ARN.into(),
        key_fingerprint: fingerprint.into(),
    }
}

fn deploying() -> RotationState {
    let now = OffsetDateTime::now_utc();
    RotationState::Deploying {
        rotation: RotationId("r-1".into()),
        cert_arn: CERT_ARN.into(),
        command_id: Some(COMMAND.into()),
        pending: DeployedCert {
            serial: Some("0a:0b".into()),
            not_before: Some(now - Duration::hours(1)),
            not_after: now + Duration::days(7),
            renew_at: None,
            cert_arn: None,
        },
    }
}

async fn handle(deps: &Deps<Store, Hosts, Ca, Inbox>, payload: Value) -> Result<Value, Diagnostic> {
    let event = LambdaEvent {
        payload,
        context: Default::default(),
    };
    cert_deploy::handle(deps, event)
        .await
        .map_err(Diagnostic::from)
}

fn issued() -> Value {
    serde_json::from_str(ISSUED).unwrap()
}

fn deploy_status(status: &str) -> Value {
    let mut v: Value = serde_json::from_str(INVOCATION).unwrap();
    v["detail"]["document-name"] = "certrotation-DeployCert".into();
    v["detail"]["status"] = status.into();
    v
}

fn alerts(deps: &Deps<Store, Hosts, Ca, Inbox>) -> usize {
    deps.alerts.alerts.lock().unwrap().len()
}

#[tokio::test]
async fn a_checked_certificate_is_claimed_and_sent() {
    let (cert, chain, fingerprint) = certificate();
    let deps = deps(issuing(&fingerprint));
    deps.ca
        .fetches
        .lock()
        .unwrap()
        .push_back(Ok(Fetched::Ready {
            certificate: cert,
            chain,
        }));
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "deploySent", "{out}");
    assert!(matches!(
        deps.store.record(&host()).state,
        RotationState::Deploying { command_id: Some(c), .. } if c == "deploy-command"
    ));
    assert_eq!(alerts(&deps), 0);
}

#[tokio::test]
async fn a_claim_no_retry_cures_fails_the_rotation_not_ignored() {
    let (cert, chain, fingerprint) = certificate();
    let deps = deps(issuing(&fingerprint));
    deps.ca
        .fetches
        .lock()
        .unwrap()
        .push_back(Ok(Fetched::Ready {
            certificate: cert,
            chain,
        }));
    deps.store
        .write_errors
        .lock()
        .unwrap()
        .insert("begin deployment", store_error(false));
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "failed", "{out}");
    assert_eq!(deps.store.record(&host()).state.kind(), StateKind::Failed);
    assert_eq!(alerts(&deps), 1);
    assert!(
        deps.hosts.calls.lock().unwrap().is_empty(),
        "DeployCert not sent"
    );
}

#[tokio::test]
async fn a_fetch_refused_for_good_fails_the_rotation() {
    let deps = deps(issuing("ab"));
    deps.ca
        .fetches
        .lock()
        .unwrap()
        .push_back(Err(aws_error(false)));
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "failed", "{out}");
    assert_eq!(alerts(&deps), 1);
}

#[tokio::test]
async fn a_lookup_no_retry_cures_fails_the_invocation_as_permanent() {
    let deps = deps(issuing("ab"));
    *deps.store.read_error.lock().unwrap() = Some(store_error(false));
    let e = handle(&deps, issued()).await.unwrap_err();
    assert_eq!(e.error_type, "Permanent", "{}", e.error_message);
    let deps = self::deps(issuing("ab"));
    *deps.store.read_error.lock().unwrap() = Some(store_error(true));
    let e = handle(&deps, issued()).await.unwrap_err();
    assert_eq!(e.error_type, "Retryable", "{}", e.error_message);
}

#[tokio::test]
async fn a_young_issuance_event_no_rotation_waits_for_yet_is_retried() {
    // Private CA announced the certificate before CertIssue recorded ISSUING.
    let (cert, chain, _) = certificate();
    let deps = deps(RotationState::CsrRequested {
        rotation: RotationId("r-1".into()),
        command_id: Some("csr-command".into()),
    });
    fetch_ready(&deps, &cert, &chain);
    let mut event = issued();
    event["time"] = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    let e = handle(&deps, event).await.unwrap_err();
    assert_eq!(e.error_type, "NotReady", "{}", e.error_message);
    assert!(
        e.error_message.contains("no rotation is waiting"),
        "{}",
        e.error_message
    );
    assert!(deps.hosts.calls.lock().unwrap().is_empty());
    assert!(deps.ca.revoked.lock().unwrap().is_empty());
}

fn fetch_ready(deps: &Deps<Store, Hosts, Ca, Inbox>, cert: &str, chain: &str) {
    deps.ca
        .fetches
        .lock()
        .unwrap()
        .push_back(Ok(Fetched::Ready {
            certificate: cert.into(),
            chain: chain.into(),
        }));
}

#[tokio::test]
async fn a_throttled_deploy_cert_is_sent_again() {
    let (cert, chain, fingerprint) = certificate();
    let deps = deps(issuing(&fingerprint));
    fetch_ready(&deps, &cert, &chain);
    deps.hosts
        .deploys
        .lock()
        .unwrap()
        .push_back(Err(aws_error(true)));
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "deploySent", "{out}");
    assert_eq!(*deps.hosts.calls.lock().unwrap(), ["deploy", "deploy"]);
    assert_eq!(alerts(&deps), 0);
}

#[tokio::test]
async fn a_deploy_cert_throttled_throughout_is_retried_and_the_retry_sends_it() {
    let (cert, chain, fingerprint) = certificate();
    let deps = deps(issuing(&fingerprint));
    fetch_ready(&deps, &cert, &chain);
    for _ in 0..=cert_deploy::SEND_DELAYS_MS.len() {
        deps.hosts
            .deploys
            .lock()
            .unwrap()
            .push_back(Err(aws_error(true)));
    }
    let e = handle(&deps, issued()).await.unwrap_err();
    assert_eq!(e.error_type, "Retryable", "{}", e.error_message);
    let r = deps.store.record(&host());
    assert!(
        matches!(
            r.state,
            RotationState::Deploying {
                command_id: None,
                ..
            }
        ),
        "{:?}",
        r.state
    );
    assert_eq!(alerts(&deps), 0);
    // A duplicate while the claim is young waits: the claiming delivery may still be sending.
    let e = handle(&deps, issued()).await.unwrap_err();
    assert_eq!(e.error_type, "NotReady", "{}", e.error_message);
    // Lambda's retry comes a minute or more later: it continues the claim.
    deps.store
        .records
        .lock()
        .unwrap()
        .get_mut(&host())
        .unwrap()
        .state_since = Some(OffsetDateTime::now_utc() - cert_deploy::step::issuance::CLAIM_FENCE);
    fetch_ready(&deps, &cert, &chain);
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "deploySent", "{out}");
    assert!(matches!(
        deps.store.record(&host()).state,
        RotationState::Deploying { command_id: Some(c), .. } if c == "deploy-command"
    ));
    assert_eq!(alerts(&deps), 0);
}

#[tokio::test]
async fn a_certificate_no_rotation_waits_for_is_revoked_as_an_orphan() {
    let (cert, chain, _) = certificate();
    let serial = pki::parse_certificate_pem(&cert).unwrap().serial;
    let deps = deps(RotationState::Deployed);
    fetch_ready(&deps, &cert, &chain);
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["outcome"], "retired", "{out}");
    assert_eq!(out["revoked"], true, "{out}");
    assert_eq!(
        *deps.ca.revoked.lock().unwrap(),
        [(serial, "SUPERSEDED".to_owned())]
    );
    assert!(deps.hosts.calls.lock().unwrap().is_empty(), "nothing sent");
    assert_eq!(deps.store.record(&host()).state, RotationState::Deployed);
    // A revocation Private CA refuses is alerted, and the event answered all the same.
    let deps = self::deps(RotationState::Deployed);
    fetch_ready(&deps, &cert, &chain);
    deps.ca
        .revokes
        .lock()
        .unwrap()
        .push_back(Err(aws_error(false)));
    let out = handle(&deps, issued()).await.unwrap();
    assert_eq!(out["revoked"], false, "{out}");
    assert_eq!(alerts(&deps), 1);
}

#[tokio::test]
async fn a_deployment_revokes_the_certificate_it_replaced() {
    let deps = deps(deploying());
    let previous = DeployedCert {
        serial: Some("0C:0D".into()),
        not_before: None,
        not_after: OffsetDateTime::now_utc() + Duration::days(1),
        renew_at: None,
        cert_arn: None,
    };
    deps.store
        .records
        .lock()
        .unwrap()
        .get_mut(&host())
        .unwrap()
        .current = Some(previous);
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(
        *deps.ca.revoked.lock().unwrap(),
        [("0c:0d".to_owned(), "SUPERSEDED".to_owned())]
    );
    // The same success again changes nothing and revokes nothing more.
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert_eq!(deps.ca.revoked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_throttled_revocation_of_the_replaced_certificate_is_asked_again_not_alerted() {
    let deps = deps(deploying());
    deps.store
        .records
        .lock()
        .unwrap()
        .get_mut(&host())
        .unwrap()
        .current = Some(DeployedCert {
        serial: Some("0C:0D".into()),
        not_before: None,
        not_after: OffsetDateTime::now_utc() + Duration::days(1),
        renew_at: None,
        cert_arn: None,
    });
    // Private CA throttles the first ask (RevokeCertificate's quota is 20/s).
    deps.ca
        .revokes
        .lock()
        .unwrap()
        .push_back(Err(aws_error(true)));
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    let asked = deps.ca.revoked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "asked again after a wait: {asked:?}");
    assert_eq!(alerts(&deps), 0, "no REVOCATION_FAILED");
}

#[tokio::test]
async fn success_on_the_host_records_deployed_with_a_renewal_point() {
    let deps = deps(deploying());
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(out["serial"], "0a:0b");
    let r = deps.store.record(&host());
    assert_eq!(r.state, RotationState::Deployed);
    let current = r.current.unwrap();
    assert_eq!(current.cert_arn.as_deref(), Some(CERT_ARN));
    assert!(current.renew_at.unwrap() < current.not_after);
}

/// A stack with a reload hook, its host DEPLOYING.
fn deps_with_hook() -> Deps<Store, Hosts, Ca, Inbox> {
    Deps {
        config: config_with(Some("/usr/local/sbin/reload-certs")),
        ..deps(deploying())
    }
}

/// DeployCert's output, as Run Command will show it: the swap done, the reload hook failed.
fn hook_failed_with_3(deps: &Deps<Store, Hosts, Ca, Inbox>) {
    deps.hosts
        .invocations
        .lock()
        .unwrap()
        .push_back(Ok(Invocation::Finished {
            success: true,
            status: "Success".into(),
            stdout: "ROTATION r-1\nRELOAD_HOOK_FAILED 3\n".into(),
            stderr: String::new(),
        }));
}

/// A DeployCert status event EventBridge sent just now.
fn fresh_deploy_status(status: &str) -> Value {
    let mut v = deploy_status(status);
    v["time"] = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .into();
    v
}

#[tokio::test]
async fn a_failed_reload_hook_records_deployed_and_alerts_once() {
    let deps = deps_with_hook();
    hook_failed_with_3(&deps);
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(deps.store.record(&host()).state, RotationState::Deployed);
    let alerts = deps.alerts.alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].kind,
        rotation::alerts::AlertKind::ReloadHookFailed
    );
    assert!(
        alerts[0].reason.contains("exited with 3"),
        "{:?}",
        alerts[0]
    );
    // A duplicated status event finds the host DEPLOYED: no second alert.
    let out = handle(&deps, deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert_eq!(deps.alerts.alerts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_reload_hook_a_success_is_deployed_without_reading_the_output() {
    let deps = deps(deploying());
    let out = handle(&deps, fresh_deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(alerts(&deps), 0);
}

#[tokio::test]
async fn with_a_reload_hook_a_success_whose_output_is_not_visible_yet_is_retried() {
    let deps = deps_with_hook();
    let e = handle(&deps, fresh_deploy_status("Success"))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "NotReady", "{}", e.error_message);
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        StateKind::Deploying,
        "DEPLOYED waits for the hook's verdict"
    );
    // The output shows up: the retry records DEPLOYED and raises the hook's alert.
    hook_failed_with_3(&deps);
    let out = handle(&deps, fresh_deploy_status("Success")).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(alerts(&deps), 1);
}

#[tokio::test]
async fn with_a_reload_hook_an_old_event_whose_output_never_shows_is_deployed_all_the_same() {
    let deps = deps_with_hook();
    let mut event = deploy_status("Success");
    event["time"] = "2020-01-01T00:00:00Z".into();
    let out = handle(&deps, event).await.unwrap();
    assert_eq!(out["outcome"], "deployed", "{out}");
    assert_eq!(alerts(&deps), 0);
}

#[tokio::test]
async fn failure_on_the_host_fails_with_its_reason_and_one_alert() {
    let deps = deps(deploying());
    deps.hosts
        .invocations
        .lock()
        .unwrap()
        .push_back(Ok(Invocation::Finished {
            success: false,
            status: "Failed".into(),
            stdout: String::new(),
            stderr: "ERROR: staged key not found\n".into(),
        }));
    let out = handle(&deps, deploy_status("Failed")).await.unwrap();
    assert_eq!(out["outcome"], "failed", "{out}");
    assert_eq!(
        out["reason"],
        "DeployCert Failed on the host: ERROR: staged key not found"
    );
    assert_eq!(alerts(&deps), 1);
}

#[tokio::test]
async fn a_host_failure_not_visible_yet_fails_the_invocation_as_not_ready() {
    let deps = deps(deploying());
    let e = handle(&deps, deploy_status("Failed")).await.unwrap_err();
    assert_eq!(e.error_type, "NotReady", "{}", e.error_message);
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        StateKind::Deploying
    );
    assert_eq!(alerts(&deps), 0);
}
