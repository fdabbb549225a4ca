//! Rotation end to end: CertCheck → GenerateCsr (real bash + openssl on emulated hosts) →
//! CertIssue → Private CA → CertDeploy → DeployCert → DEPLOYED, and its failure paths.

use std::path::Path;
use std::process::Command;

use pki::KeyAlgorithm;
use serde_json::json;
use state::plan::PlanPolicy;
use state::ports::FleetReader;
use state::record::{HostOverrides, RotationState, StateKind};
use state::{HostId, HostPath};
use tests::emulators::ssm::HostSpec;
use tests::stack::{Delivery, HostFiles, LocalStack, DEPLOY_CERT_DOCUMENT, GENERATE_CSR_DOCUMENT};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xc0ffee000 + i)
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What a user checks on a host after a rotation.
fn assert_host_pair(
    stack: &LocalStack,
    h: &str,
    f: &HostFiles,
    algorithm: KeyAlgorithm,
) -> pki::CertificateFacts {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&f.key)
        .unwrap_or_else(|e| panic!("{h}: key {}: {e}", f.key.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400, "{h}: key mode");
    let (ok, cert_pub) = openssl(&["x509", "-in", path(&f.cert), "-noout", "-pubkey"]);
    assert!(ok, "{h}: {cert_pub}");
    let (ok, key_pub) = openssl(&["pkey", "-in", path(&f.key), "-pubout"]);
    assert!(ok, "{h}: {key_pub}");
    assert_eq!(cert_pub, key_pub, "{h}: certificate carries the host's key");
    let (ok, out) = openssl(&["verify", "-CAfile", path(&f.chain), path(&f.cert)]);
    assert!(ok, "{h}: chain verifies: {out}");
    let pem = std::fs::read_to_string(&f.cert).unwrap();
    let facts = pki::parse_certificate_pem(&pem).unwrap();
    assert_eq!(facts.subject_cn.as_deref(), Some(h));
    // Private CA back-dates NotBefore by an hour; the 7 days run from issuance.
    let left = facts.not_after - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::days(7)
            && left > time::Duration::days(7) - time::Duration::minutes(15),
        "{h}: 7-day validity, {left} left"
    );
    assert!(
        facts.has_client_auth && facts.has_digital_signature && !facts.is_ca,
        "{h}: Roles Anywhere end-entity"
    );
    assert_eq!(
        facts.key_kind.and_then(|k| k.key_algorithm()),
        Some(algorithm),
        "{h}: key type"
    );
    let ca = stack.pca.ca_certificate_pem();
    pki::certificate_signed_by(&pem, &ca).expect("signed by our CA");
    facts
}

fn mixed(i: u64) -> HostOverrides {
    let p = |s: &str| Some(HostPath::parse("path", s).unwrap());
    let mut o = HostOverrides::default();
    if i % 2 == 1 {
        o.cert_path = p("/srv/pki/certs");
        o.key_path = p("/srv/pki/private");
        o.cacert_path = p("/srv/pki/ca");
    }
    o.key_algorithm = Some(if i % 3 == 0 {
        KeyAlgorithm::EcP256
    } else {
        KeyAlgorithm::Rsa2048
    });
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_hosts_rotate_then_nothing_is_due() {
    // Every log line of the handlers and the SDK, at debug level, kept to search for key material.
    let logs = LogBuffer::default();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(logs.clone())
        .try_init();
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let hosts: Vec<(String, HostOverrides)> = (0..20).map(|i| (host(i), mixed(i))).collect();
    for (h, o) in &hosts {
        stack.enrol_host(h, o, HostSpec::default()).await.unwrap();
    }
    let summary = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(
        summary["started"].as_array().unwrap().len(),
        20,
        "{summary}"
    );
    stack.settle(Delivery::default()).await.unwrap();

    for (h, o) in &hosts {
        let record = stack
            .store
            .host(&HostId::parse(h).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, RotationState::Deployed, "{h}: {record:?}");
        let f = stack.host_files(h, o);
        let facts = assert_host_pair(&stack, h, &f, o.key_algorithm.unwrap());
        let current = record.current.unwrap();
        assert_eq!(
            current.serial.as_deref(),
            Some(facts.serial.as_str()),
            "table serial = certificate serial"
        );
        assert_eq!(current.not_after, facts.not_after);
        assert!(current.renew_at.unwrap() < facts.not_after);
    }
    // The issuance events went through CertDeploy's queue in batches, and the hosts of a batch
    // that share their paths (two layouts here) shared a DeployCert command.
    let (deployed_hosts, deploy_commands) = stack.sent(DEPLOY_CERT_DOCUMENT);
    assert_eq!(deployed_hosts, 20, "one DeployCert invocation per host");
    assert!(
        (2..=6).contains(&deploy_commands),
        "20 hosts in two layouts: {deploy_commands} DeployCert commands"
    );
    assert_eq!(stack.deploy_queue.in_queue().unwrap(), 0);
    assert_eq!(stack.deploy_queue.dead_letters().unwrap(), 0);
    // The private keys never crossed the wire.
    assert!(
        stack.capture.find("PRIVATE KEY").is_empty(),
        "no key material in any request or response"
    );
    let logged = logs.text();
    assert!(
        logged.contains("certificate deployed"),
        "the handlers' logs were captured"
    );
    assert!(
        !logged.contains("PRIVATE KEY"),
        "no key material in any log line"
    );
    for (h, o) in &hosts {
        let key = std::fs::read_to_string(stack.host_files(h, o).key).unwrap();
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(
            !logged.contains(&body[..40]),
            "{h}: its key's bytes are not in the logs"
        );
    }
    assert!(!stack
        .outcomes
        .iter()
        .any(|o| o.to_string().contains("PRIVATE KEY")));
    let calls = stack.capture.calls();
    assert_eq!(calls.get("ACMPCA.IssueCertificate"), Some(&20), "{calls:?}");

    // A second run right after: nothing due, no command, no issuance.
    let summary = stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(summary["due"], 0, "{summary}");
    assert!(summary["started"].as_array().unwrap().is_empty());
    assert_eq!(
        stack.capture.calls(),
        calls,
        "zero SendCommand and zero IssueCertificate"
    );
    let msgs = stack.inbox.messages().unwrap();
    assert!(msgs.is_empty(), "no alerts: {msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_rotates_with_a_new_key_and_retires_the_previous_pair() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(1);
    let o = mixed(1);
    stack.enrol_host(&h, &o, HostSpec::default()).await.unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let f = stack.host_files(&h, &o);
    let first = assert_host_pair(&stack, &h, &f, KeyAlgorithm::Rsa2048);
    let first_key = std::fs::read(&f.key).unwrap();

    // Not due: a plain run does nothing; force does.
    let s = stack.cert_check(json!({"hosts": [h]})).await.unwrap();
    assert!(s["started"].as_array().unwrap().is_empty(), "{s}");
    let dry = stack
        .cert_check(json!({"hosts": [h], "force": true, "dryRun": true}))
        .await
        .unwrap();
    assert_eq!(dry["plan"][0]["reason"], "rotate: forced", "{dry}");
    assert!(stack.bus.is_empty(), "a dry run sends nothing");
    let s = stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    assert_eq!(s["started"], json!([h]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    let second = assert_host_pair(&stack, &h, &f, KeyAlgorithm::Rsa2048);
    assert_ne!(first.serial, second.serial, "new serial");
    assert_ne!(std::fs::read(&f.key).unwrap(), first_key, "new key");
    // The previous pair is gone from the host, and its certificate revoked as superseded.
    assert!(f.key.with_extension("key.prev").symlink_metadata().is_err());
    assert!(f
        .cert
        .with_extension("crt.prev")
        .symlink_metadata()
        .is_err());
    let superseded: Vec<_> = stack
        .pca
        .revoked()
        .into_iter()
        .map(|r| (r.serial.trim_start_matches('0').to_owned(), r.reason))
        .collect();
    let first_hex = first.serial.replace(':', "");
    assert_eq!(
        superseded,
        [(
            first_hex.trim_start_matches('0').to_owned(),
            "SUPERSEDED".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_and_reordered_events_deploy_once() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    for i in 0..3 {
        stack
            .enrol_host(&host(i), &mixed(i), HostSpec::default())
            .await
            .unwrap();
    }
    // Three concurrent CertCheck runs start each rotation once.
    let (a, b, c) = tokio::join!(
        stack.cert_check(json!({})),
        stack.cert_check(json!({})),
        stack.cert_check(json!({}))
    );
    let started: usize = [a, b, c]
        .iter()
        .map(|s| s.as_ref().unwrap()["started"].as_array().unwrap().len())
        .sum();
    assert_eq!(started, 3, "each rotation started once across three runs");
    stack
        .settle(Delivery {
            duplicate: true,
            reverse: true,
        })
        .await
        .unwrap();
    let calls = stack.capture.calls();
    // Each run sends one GenerateCsr to the hosts it claimed: 3 invocations in 1 to 3 commands.
    let (csr_hosts, csr_commands) = stack.sent(GENERATE_CSR_DOCUMENT);
    assert_eq!(csr_hosts, 3, "each host asked for one CSR");
    assert!((1..=3).contains(&csr_commands), "{csr_commands}");
    let (deployed_hosts, deploy_commands) = stack.sent(DEPLOY_CERT_DOCUMENT);
    assert_eq!(deployed_hosts, 3, "one DeployCert invocation per host");
    assert!((1..=3).contains(&deploy_commands), "{deploy_commands}");
    assert!(calls.get("ACMPCA.IssueCertificate").copied().unwrap_or(0) >= 3);
    assert_eq!(
        stack.pca.issued().len(),
        3,
        "one certificate per rotation (idempotency token)"
    );
    for i in 0..3 {
        let r = stack
            .store
            .host(&HostId::parse(&host(i)).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.state, RotationState::Deployed);
    }
    // An issuance event for a certificate no rotation waits for, which our CA never issued, is
    // ignored: asked of Private CA (is it an orphan to revoke?), nothing else is called.
    let foreign = json!({
        "version": "0", "id": "x", "detail-type": "ACM Private CA Certificate Issuance", "source": "aws.acm-pca",
        "account": "111122223333", "time": "2026-11-21T10:15:30Z", "region": "us-east-1",
        "resources": [stack.config.ca_arn, format!("{}/certificate/00000000000000000000000000000000", stack.config.ca_arn)],
        "detail": {"result": "success"}
    });
    let out = cert_deploy::handle(
        &stack.deploy,
        lambda_runtime::LambdaEvent {
            payload: foreign,
            context: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("no rotation is waiting"),
        "{out}"
    );
    let mut after = stack.capture.calls();
    let fetched = after.remove("ACMPCA.GetCertificate").unwrap_or(0);
    let mut before = calls.clone();
    let fetched_before = before.remove("ACMPCA.GetCertificate").unwrap_or(0);
    assert_eq!(
        fetched,
        fetched_before + 1,
        "one fetch of the unknown certificate"
    );
    assert_eq!(after, before, "nothing else called for a foreign event");
}

/// Fails one host's rotation a given way; checks FAILED with a reason, the live pair untouched
/// (or absent if it never had one), and exactly one alert naming the host.
async fn assert_failed_once(stack: &mut LocalStack, h: &str, reason_part: &str) {
    let r = stack
        .store
        .host(&HostId::parse(h).unwrap())
        .await
        .unwrap()
        .unwrap();
    match &r.state {
        RotationState::Failed { reason, .. } => {
            assert!(reason.contains(reason_part), "{h}: {reason}")
        }
        other => panic!("{h}: expected FAILED, got {other:?}"),
    }
    let msgs = stack.inbox.messages().unwrap().to_vec();
    let mine: Vec<_> = msgs.iter().filter(|m| m.subject.contains(h)).collect();
    assert_eq!(mine.len(), 1, "{h}: exactly one alert: {msgs:?}");
    let body: serde_json::Value = serde_json::from_str(&mine[0].message).unwrap();
    assert_eq!(body["host"], h);
    assert!(
        body["reason"].as_str().unwrap().contains(reason_part),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_without_openssl_fails_once_with_a_reason() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let no_ssl = host(2);
    stack
        .enrol_host(
            &no_ssl,
            &mixed(2),
            HostSpec {
                online: true,
                has_openssl: false,
            },
        )
        .await
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_failed_once(&mut stack, &no_ssl, "openssl not found").await;
    assert_eq!(
        stack.capture.calls().get("ACMPCA.IssueCertificate"),
        None,
        "nothing issued"
    );
    // The next run waits for the backoff: no second alert, no new command.
    let s = stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert!(s["started"].as_array().unwrap().is_empty(), "{s}");
    assert_failed_once(&mut stack, &no_ssl, "openssl not found").await;
    assert!(
        !stack.host_files(&no_ssl, &mixed(2)).key.exists(),
        "no key appeared"
    );
    let _ = PlanPolicy::default();
}

/// Scenario 4: an offline host is not claimed, spends no attempt and raises no alert while it
/// is away, and rotates on the first run after it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_host_waits_without_spending_attempts_and_rotates_when_back() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let off = host(1);
    stack
        .enrol_host(
            &off,
            &mixed(1),
            HostSpec {
                online: false,
                has_openssl: true,
            },
        )
        .await
        .unwrap();
    let id = HostId::parse(&off).unwrap();
    for run in 0..3 {
        let s = stack.cert_check(json!({})).await.unwrap();
        stack.settle(Delivery::default()).await.unwrap();
        assert!(
            s["started"].as_array().unwrap().is_empty(),
            "run {run}: {s}"
        );
        assert!(s["failed"].as_array().unwrap().is_empty(), "run {run}: {s}");
        let skipped = s["skipped"].to_string();
        assert!(skipped.contains("offline, waiting"), "run {run}: {s}");
        let r = stack.store.host(&id).await.unwrap().unwrap();
        assert_eq!(r.attempts.failed, 0, "run {run}: {r:?}");
        assert_ne!(r.state.kind(), StateKind::Failed, "run {run}: {r:?}");
        assert_ne!(
            r.state.kind(),
            StateKind::CsrRequested,
            "run {run}: not claimed"
        );
    }
    assert!(
        stack.inbox.messages().unwrap().is_empty(),
        "no alert while the certificate is valid"
    );
    stack.ssm.set_online(&off, true);
    let s = stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(s["started"].as_array().unwrap().len(), 1, "{s}");
    let r = stack.store.host(&id).await.unwrap().unwrap();
    assert_eq!(r.state, RotationState::Deployed, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn csr_for_another_host_is_refused_and_nothing_issued() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(1);
    let mut o = mixed(1);
    o.key_algorithm = Some(KeyAlgorithm::Rsa2048);
    stack.enrol_host(&h, &o, HostSpec::default()).await.unwrap();
    stack.ssm.host_root(&h);
    stack
        .tamper_openssl(&h, &format!("/CN={h}"), "/CN=mi-0000000000000bad0")
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_failed_once(&mut stack, &h, "CSR refused").await;
    assert_eq!(
        stack.capture.calls().get("ACMPCA.IssueCertificate"),
        None,
        "nothing issued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rsa_1024_csr_is_refused() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(1);
    let mut o = mixed(1);
    o.key_algorithm = Some(KeyAlgorithm::Rsa2048);
    stack.enrol_host(&h, &o, HostSpec::default()).await.unwrap();
    stack
        .tamper_openssl(&h, "rsa_keygen_bits:2048", "rsa_keygen_bits:1024")
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_failed_once(&mut stack, &h, "CSR refused").await;
    assert_eq!(
        stack.capture.calls().get("ACMPCA.IssueCertificate"),
        None,
        "nothing issued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_issuance_fails_the_rotation_once() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(4);
    stack
        .enrol_host(&h, &mixed(4), HostSpec::default())
        .await
        .unwrap();
    stack.pca.fail_next_issuance();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_failed_once(&mut stack, &h, "issuance failed").await;
    assert_eq!(
        stack.capture.calls().get("SSM.SendCommand"),
        Some(&1),
        "no DeployCert sent"
    );
    assert!(
        !stack.host_files(&h, &mixed(4)).cert.exists(),
        "no certificate installed"
    );
}

/// A shared in-memory log sink for `tracing_subscriber`.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_with_a_wrong_chain_leaves_the_live_pair_untouched() {
    use rotation::ca::{CertificateAuthority, Fetched};
    use rotation::hosts::{CsrBatch, DeployBatch, DeployEntry, HostAgent, Invocation};
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(7);
    let o = mixed(7);
    stack.enrol_host(&h, &o, HostSpec::default()).await.unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let f = stack.host_files(&h, &o);
    let live = |f: &HostFiles| [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap());
    let before = live(&f);

    // Drive the host by hand: a new staged key and CSR, a real certificate for it, and a chain
    // from another CA.
    let agent = &stack.check.hosts;
    let id = HostId::parse(&h).unwrap();
    let settings = stack.config.settings_for(&o);
    let rotation = state::RotationId("by-hand-0001".into());
    let cmd = agent
        .request_csrs(&CsrBatch {
            rotations: &[(id.clone(), rotation.clone())],
            key_path: &settings.key_path,
            csr_path: &settings.csr_path,
            key_algorithm: settings.key_algorithm,
        })
        .await
        .unwrap();
    stack.ssm.wait_idle().await;
    let mut out = Invocation::Pending;
    while out == Invocation::Pending {
        out = agent.invocation(&cmd, &id).await.unwrap();
    }
    let Invocation::Finished { stdout, .. } = out else {
        unreachable!()
    };
    let csr = pki::extract_csr_pem(&stdout).unwrap();
    let ca = &stack.check.ca;
    let arn = ca.issue(&csr, 7, "by-hand-0001").await.unwrap();
    let mut fetched = Fetched::Pending;
    while fetched == Fetched::Pending {
        fetched = ca.fetch(&arn).await.unwrap();
    }
    let Fetched::Ready { certificate, .. } = fetched else {
        unreachable!()
    };
    let other_ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem();
    let cmd = agent
        .deploy(&DeployBatch {
            entries: &[DeployEntry {
                host: id.clone(),
                rotation: rotation.clone(),
                certificate_pem: certificate,
            }],
            cert_path: &settings.cert_path,
            key_path: &settings.key_path,
            cacert_path: &settings.cacert_path,
            signing_helper_path: &settings.signing_helper_path,
            chain_pem: &other_ca,
            roles_anywhere: &stack.config.roles_anywhere,
            reload_hook: None,
        })
        .await
        .unwrap();
    stack.ssm.wait_idle().await;
    let mut out = Invocation::Pending;
    while out == Invocation::Pending {
        out = agent.invocation(&cmd, &id).await.unwrap();
    }
    let Invocation::Finished {
        success, stderr, ..
    } = out
    else {
        unreachable!()
    };
    assert!(!success, "DeployCert refuses a chain that does not verify");
    let why = rotation::hosts::host_error(&stderr);
    assert!(why.starts_with("ERROR: ") && why.contains("verif"), "{why}");
    assert_eq!(
        live(&f),
        before,
        "the live certificate, key and chain are byte for byte unchanged"
    );
    let (ok, out) = openssl(&["verify", "-CAfile", path(&f.chain), path(&f.cert)]);
    assert!(ok, "the live pair still verifies: {out}");
}

#[tokio::test]
async fn the_emulator_runs_the_template_documents_byte_for_byte() {
    let stack = LocalStack::start(&[]).await.unwrap();
    let template = tests::table::template().unwrap();
    for (logical, name) in [
        ("GenerateCsrDocument", tests::stack::GENERATE_CSR_DOCUMENT),
        ("DeployCertDocument", tests::stack::DEPLOY_CERT_DOCUMENT),
    ] {
        let content = &template["Resources"][logical]["Properties"]["Content"];
        assert_eq!(content["schemaVersion"].as_str(), Some("2.2"));
        let script = content["mainSteps"][0]["inputs"]["runCommand"][0]
            .as_str()
            .unwrap();
        assert_eq!(stack.ssm.document_script(name), script, "{logical}");
        assert!(script.len() > 1000, "{logical} is the real script");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_deployment_on_the_host_keeps_the_pair_and_alerts_once() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(8);
    let o = mixed(8);
    stack.enrol_host(&h, &o, HostSpec::default()).await.unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let f = stack.host_files(&h, &o);
    let before = [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap());

    // Rotate again, and lose the staged key on the host before DeployCert runs.
    stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    stack.settle_round(Delivery::default()).await.unwrap();
    std::fs::remove_file(f.key.with_extension("key.next")).unwrap();
    stack.settle(Delivery::default()).await.unwrap();

    assert_failed_once(&mut stack, &h, "staged").await;
    let r = stack
        .store
        .host(&HostId::parse(&h).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            r.state,
            RotationState::Failed {
                stage: state::record::FailureStage::Verify,
                ..
            }
        ),
        "{:?}",
        r.state
    );
    assert_eq!(
        [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap()),
        before,
        "live pair untouched"
    );
    let (ok, out) = openssl(&["verify", "-CAfile", path(&f.chain), path(&f.cert)]);
    assert!(ok, "the host still has a working pair: {out}");
}

/// Scenario 4: an offline host whose certificate has expired is alerted once as expired, spends
/// no attempt, and is not alerted again on later runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_host_with_an_expired_certificate_is_alerted_once() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let off = host(3);
    stack.add_host(
        &off,
        HostSpec {
            online: false,
            has_openssl: true,
        },
    );
    let expired = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let client =
        aws_sdk_dynamodb::Client::new(&tests::aws::sdk_config(&stack.endpoints.moto, true));
    tests::table::put_items(
        &client,
        &stack.config.table_name,
        [tests::table::item(&[
            (state::item::attr::HOST_ID, tests::table::s(&off)),
            (
                "expiry",
                tests::table::s(&state::item::legacy_time(expired)),
            ),
            ("serial", tests::table::s("4c:1f:aa:00:9e")),
        ])],
    )
    .await
    .unwrap();
    for run in 0..3 {
        let s = stack.cert_check(json!({})).await.unwrap();
        assert!(s["failed"].as_array().unwrap().is_empty(), "run {run}: {s}");
        assert!(
            s["skipped"].to_string().contains("offline, waiting"),
            "run {run}: {s}"
        );
        let msgs = stack.inbox.messages().unwrap().to_vec();
        assert_eq!(msgs.len(), 1, "run {run}: one alert: {msgs:?}");
        let body: serde_json::Value = serde_json::from_str(&msgs[0].message).unwrap();
        assert_eq!(body["kind"], "CERTIFICATE_EXPIRED", "{body}");
        assert_eq!(body["host"], off.as_str());
        let r = stack
            .store
            .host(&HostId::parse(&off).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.attempts.failed, 0, "run {run}: {r:?}");
    }
}
