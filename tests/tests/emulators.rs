//! The Run Command and Private CA emulators, driven through the real AWS SDK clients.
//!
//! Why: the end-to-end tests trust these emulators to behave like the services, so their own
//! behaviour is pinned here with the same SDK clients production uses (endpoint override, static
//! test credentials, retries off): error codes the SDK maps to typed errors, member names it
//! parses, the asynchrony (`InvocationDoesNotExist`, `RequestInProgressException`), real script
//! runs with bash and openssl, certificates that `openssl verify` accepts, and EventBridge events
//! shaped like the samples in `fixtures/events`. A last test sends the same PCA request shapes to
//! moto (when the project's virtualenv has it) to show AWS's own model accepts them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::{
    CommandInvocationStatus, CommandStatus, InstanceInformationFilter,
    InstanceInformationFilterKey, InstanceInformationStringFilter, PingStatus, ResourceType,
};
use base64::Engine as _;
use serde_json::Value;
use tests::emulators::pca::{self, CaKeyAlgorithm, PcaConfig};
use tests::emulators::ssm::{self, HostSpec, SsmConfig};
use tests::emulators::{Capture, EventBus};
use x509_parser::prelude::{
    FromDer, ParsedExtension, X509Certificate, X509CertificationRequest, X509Version,
};

mod emulator_common;

use emulator_common::{assert_envelope_values, fixture, keys, pem_der, sample_event};

const GEN: &str = "fixture-GenerateCsr";
const NOISY: &str = "fixture-Noisy";

fn ssm_client(h: &ssm::SsmHandle) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&tests::aws::sdk_config(&h.url(), false))
}

fn pca_client(h: &pca::PcaHandle) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::new(&tests::aws::sdk_config(&h.url(), false))
}

/// The command ID SendCommand answered.
fn command_id(out: &aws_sdk_ssm::operation::send_command::SendCommandOutput) -> String {
    out.command().unwrap().command_id().unwrap().to_string()
}

/// GetCommandInvocation once the invocation is visible: the emulator answers
/// `InvocationDoesNotExist` to the first call, as the service does right after SendCommand, so
/// that call is made and its answer thrown away.
async fn visible_invocation(
    c: &aws_sdk_ssm::Client,
    command_id: &str,
    instance_id: &str,
) -> aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput {
    let _ = c
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .send()
        .await;
    c.get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .send()
        .await
        .unwrap()
}

async fn fixture_ssm(bus: EventBus, capture: Capture) -> ssm::SsmHandle {
    let docs = ssm::load_documents(
        fixture("emulator-template.yaml"),
        &[("FixtureGenerateCsr", GEN), ("FixtureNoisy", NOISY)],
    )
    .expect("fixture template loads");
    ssm::start(SsmConfig {
        documents: docs,
        bus,
        capture,
        ..SsmConfig::default()
    })
    .await
    .expect("ssm emulator starts")
}

/// An openssl-made key and CSR in `dir`; returns the CSR PEM.
fn openssl_csr(dir: &Path, cn: &str, rsa: bool) -> Vec<u8> {
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-new", "-nodes", "-sha256", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr);
    if rsa {
        cmd.args(["-newkey", "rsa:2048"]);
    } else {
        cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(csr).expect("csr written")
}

/// Same envelope and detail members as the sample, account/region/source/detail-type equal.
fn assert_event_shape(e: &Value, sample: &Value) {
    assert_eq!(keys(e), keys(sample), "envelope of {e}");
    assert_eq!(keys(&e["detail"]), keys(&sample["detail"]), "detail of {e}");
    assert_envelope_values(e, sample);
    assert!(e["resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    let id_re =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
            .unwrap();
    assert!(id_re.is_match(e["id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_command_validates_like_ssm() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = ssm::managed_instance_id(1);
    h.register_host(&host, HostSpec::default());
    let c = ssm_client(&h);
    let send = || {
        c.send_command()
            .document_name(GEN)
            .instance_ids(&host)
            .parameters("rotationId", vec!["r1".into()])
    };

    // A value breaking allowedPattern (shell injection attempt).
    let e = send()
        .parameters("hostId", vec![format!("{host}';rm -rf /;'")])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // A pattern-valid path with a quote is impossible: the pattern is anchored at both ends.
    let e = send()
        .parameters("hostId", vec![host.clone()])
        .parameters("keyPath", vec!["/etc/pki x".into()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // Missing required parameter, unknown parameter, two values for a String.
    let e = send().send().await.unwrap_err().into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    let e = send()
        .parameters("hostId", vec![host.clone()])
        .parameters("bogus", vec!["x".into()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    let e = send()
        .parameters("hostId", vec![host.clone(), host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameters(), "{e:?}");
    // Unknown document, unknown instance, duplicate instance, too many instances.
    let e = c
        .send_command()
        .document_name("nope")
        .instance_ids(&host)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_document(), "{e:?}");
    let e = send()
        .instance_ids(ssm::managed_instance_id(2))
        .parameters("hostId", vec![host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_instance_id(), "{e:?}");
    let e = send()
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_duplicate_instance_id(), "{e:?}");
    let mut many = c.send_command().document_name(GEN);
    for n in 0..51 {
        many = many.instance_ids(ssm::managed_instance_id(100 + n));
    }
    let e = many.send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    let e = c
        .send_command()
        .document_name(GEN)
        .instance_ids("host-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");

    // None of these ran anything.
    assert!(h.invocations().is_empty());
    assert_eq!(h.calls()["SSM.SendCommand"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_csr_runs_in_the_sandbox() {
    let bus = EventBus::new();
    let capture = Capture::new();
    let h = fixture_ssm(bus.clone(), capture.clone()).await;
    let host = ssm::managed_instance_id(0xa1);
    let root = h.register_host(&host, HostSpec::default());
    let c = ssm_client(&h);

    let out = c
        .send_command()
        .document_name(GEN)
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .parameters("rotationId", vec!["rot-1".into()])
        .timeout_seconds(600)
        .comment("fixture run")
        .send()
        .await
        .unwrap();
    let cmd = out.command().unwrap();
    assert_eq!(cmd.status(), Some(&CommandStatus::Pending));
    assert_eq!(cmd.document_name(), Some(GEN));
    assert_eq!(cmd.instance_ids(), std::slice::from_ref(&host));
    assert_eq!(cmd.target_count(), 1);
    assert_eq!(cmd.timeout_seconds(), Some(600));
    assert_eq!(cmd.parameters().unwrap()["hostId"], vec![host.clone()]);
    assert!(cmd.requested_date_time().is_some() && cmd.expires_after().is_some());
    let id = cmd.command_id().unwrap().to_string();
    assert_eq!(id.len(), 36);

    // Right after SendCommand the invocation does not exist yet.
    let e = c
        .get_command_invocation()
        .command_id(&id)
        .instance_id(&host)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invocation_does_not_exist(), "{e:?}");

    h.wait_idle().await;
    let inv = c
        .get_command_invocation()
        .command_id(&id)
        .instance_id(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(
        inv.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        inv.standard_error_content()
    );
    assert_eq!(inv.status_details(), Some("Success"));
    assert_eq!(inv.response_code(), 0);
    assert_eq!(inv.plugin_name(), Some("generateCsr"));
    assert_eq!(inv.document_name(), Some(GEN));
    assert_eq!(inv.comment(), Some("fixture run"));
    let ts = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    assert!(ts.is_match(inv.execution_start_date_time().unwrap()));
    assert!(ts.is_match(inv.execution_end_date_time().unwrap()));
    let stdout = inv.standard_output_content().unwrap();
    let csr_pem = stdout
        .strip_prefix("ROTATION rot-1\n")
        .expect("rotation line first");
    let csr_der = pem_der(csr_pem);
    let (_, csr) = X509CertificationRequest::from_der(&csr_der).unwrap();
    assert_eq!(
        csr.certification_request_info.subject.to_string(),
        format!("CN={host}")
    );

    // The key stayed in the host's sandbox (default keyPath /etc/pki/fixture), mode 0400.
    let key = root.join(format!("etc/pki/fixture/{host}.key.next"));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(
        capture.find("PRIVATE KEY").is_empty(),
        "a key crossed the wire"
    );

    // ListCommandInvocations with details carries the plugin output.
    let list = c
        .list_command_invocations()
        .command_id(&id)
        .details(true)
        .send()
        .await
        .unwrap();
    let ci = &list.command_invocations()[0];
    assert_eq!(ci.status(), Some(&CommandInvocationStatus::Success));
    let plugin = &ci.command_plugins()[0];
    assert_eq!(plugin.name(), Some("generateCsr"));
    assert_eq!(plugin.response_code(), 0);
    assert!(plugin.output().unwrap().starts_with("ROTATION rot-1"));
    assert!(plugin.response_finish_date_time().is_some());

    // Events: invocation InProgress then Success, command InProgress then Success.
    let events = bus.drain();
    let inv_sample = sample_event("ssm-command-invocation-status-change.json");
    let cmd_sample = sample_event("ssm-command-status-change.json");
    let inv_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == inv_sample["detail-type"])
        .collect();
    let cmd_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == cmd_sample["detail-type"])
        .collect();
    assert_eq!(events.len(), inv_events.len() + cmd_events.len());
    let statuses = |v: &[&Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["detail"]["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses(&inv_events), ["InProgress", "Success"]);
    assert_eq!(statuses(&cmd_events), ["InProgress", "Success"]);
    for e in &inv_events {
        assert_event_shape(e, &inv_sample);
        assert_eq!(e["detail"]["command-id"], id.as_str());
        assert_eq!(e["detail"]["instance-id"], host.as_str());
        assert_eq!(e["detail"]["document-name"], GEN);
        assert_eq!(
            e["resources"][0],
            format!("arn:aws:ec2:us-east-1:111122223333:instance/{host}").as_str()
        );
        assert!(ts.is_match(e["detail"]["requested-date-time"].as_str().unwrap()));
    }
    for e in &cmd_events {
        assert_event_shape(e, &cmd_sample);
        assert_eq!(e["detail"]["parameters"]["hostId"][0], host.as_str());
    }

    let calls = h.calls();
    assert_eq!(calls["SSM.SendCommand"], 1);
    assert_eq!(calls["SSM.GetCommandInvocation"], 2);
    assert_eq!(calls["SSM.ListCommandInvocations"], 1);
    assert_eq!(h.invocation(&id, &host).unwrap().status, "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_without_openssl_fails_with_the_scripts_error() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = ssm::managed_instance_id(0xb2);
    h.register_host(
        &host,
        HostSpec {
            online: true,
            has_openssl: false,
        },
    );
    let c = ssm_client(&h);
    let out = c
        .send_command()
        .document_name(GEN)
        .instance_ids(&host)
        .parameters("hostId", vec![host.clone()])
        .parameters("rotationId", vec!["r".into()])
        .send()
        .await
        .unwrap();
    h.wait_idle().await;
    let inv = visible_invocation(&c, &command_id(&out), &host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Failed));
    assert_eq!(inv.status_details(), Some("Failed"));
    assert_eq!(inv.response_code(), 3);
    assert_eq!(
        inv.standard_error_content(),
        Some("ERROR: openssl not found on this host\n")
    );
    let events = h.bus().drain();
    assert_eq!(events.last().unwrap()["detail"]["status"], "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_cut_and_timeouts_end_runs() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let host = "i-0123456789abcdef0";
    h.register_host(host, HostSpec::default());
    let c = ssm_client(&h);
    let p = |k: &str, v: &str| (k.to_string(), vec![v.to_string()]);
    let run = |params: Vec<(String, Vec<String>)>| {
        let mut b = c.send_command().document_name(NOISY).instance_ids(host);
        for (k, v) in params {
            b = b.parameters(k, v);
        }
        b.send()
    };
    let noisy = run(vec![p("chars", "30000"), p("exitCode", "7")])
        .await
        .unwrap();
    let slow = run(vec![p("sleepSeconds", "30"), p("executionTimeout", "1")])
        .await
        .unwrap();
    h.wait_idle().await;

    let inv = visible_invocation(&c, &command_id(&noisy), host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Failed));
    assert_eq!(inv.response_code(), 7);
    assert_eq!(inv.standard_output_content().unwrap().len(), 24_000);
    assert_eq!(inv.standard_error_content().unwrap().len(), 8_000);
    let list = c
        .list_command_invocations()
        .command_id(command_id(&noisy))
        .details(true)
        .send()
        .await
        .unwrap();
    let output = list.command_invocations()[0].command_plugins()[0]
        .output()
        .unwrap();
    assert_eq!(output.len(), 2_500);

    let started = std::time::Instant::now();
    let inv = visible_invocation(&c, &command_id(&slow), host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::TimedOut));
    assert_eq!(inv.status_details(), Some("ExecutionTimedOut"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_hosts_wait_then_time_out_or_run_when_back() {
    let bus = EventBus::new();
    let h = fixture_ssm(bus.clone(), Capture::new()).await;
    let host = ssm::managed_instance_id(0xc3);
    h.register_host(
        &host,
        HostSpec {
            online: false,
            has_openssl: true,
        },
    );
    let c = ssm_client(&h);
    let send = || {
        c.send_command()
            .document_name(GEN)
            .instance_ids(&host)
            .parameters("hostId", vec![host.clone()])
            .parameters("rotationId", vec!["r".into()])
            .send()
    };
    let first = command_id(&send().await.unwrap());
    h.wait_idle().await; // Offline invocations do not count.
    let inv = visible_invocation(&c, &first, &host).await;
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::Pending));
    assert_eq!(inv.response_code(), -1);
    assert_eq!(inv.execution_start_date_time(), Some(""));
    assert!(bus.is_empty());

    assert_eq!(h.expire_offline(), 1);
    let inv = c
        .get_command_invocation()
        .command_id(&first)
        .instance_id(&host)
        .send()
        .await
        .unwrap();
    assert_eq!(inv.status(), Some(&CommandInvocationStatus::TimedOut));
    assert_eq!(inv.status_details(), Some("DeliveryTimedOut"));
    let events = bus.drain();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["detail"]["status"], "TimedOut");
    assert_eq!(
        events[1]["detail-type"],
        "EC2 Command Status-change Notification"
    );
    assert_eq!(events[1]["detail"]["status"], "TimedOut");

    // A second command waits, then runs when the agent reconnects.
    let second = command_id(&send().await.unwrap());
    h.set_online(&host, true);
    h.wait_idle().await;
    assert_eq!(h.invocation(&second, &host).unwrap().status, "Success");
    assert_eq!(h.expire_offline(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_instance_information_reports_ping_status() {
    let h = fixture_ssm(EventBus::new(), Capture::new()).await;
    let online: Vec<String> = (1..=4).map(ssm::managed_instance_id).collect();
    let offline: Vec<String> = (5..=6).map(ssm::managed_instance_id).collect();
    let ec2 = "i-0fedcba9876543210".to_string();
    for id in &online {
        h.register_host(id, HostSpec::default());
    }
    for id in &offline {
        h.register_host(
            id,
            HostSpec {
                online: false,
                has_openssl: true,
            },
        );
    }
    h.register_host(&ec2, HostSpec::default());
    let c = ssm_client(&h);

    let out = c
        .describe_instance_information()
        .filters(
            InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .values(&online[0])
                .values(&offline[0])
                .values(&ec2)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let list = out.instance_information_list();
    assert_eq!(list.len(), 3);
    let by_id = |id: &str| list.iter().find(|i| i.instance_id() == Some(id)).unwrap();
    assert_eq!(by_id(&online[0]).ping_status(), Some(&PingStatus::Online));
    assert_eq!(
        by_id(&offline[0]).ping_status(),
        Some(&PingStatus::ConnectionLost)
    );
    assert_eq!(
        by_id(&online[0]).resource_type(),
        Some(&ResourceType::ManagedInstance)
    );
    assert_eq!(
        by_id(&ec2).resource_type(),
        Some(&ResourceType::Ec2Instance)
    );
    assert_eq!(
        by_id(&ec2).platform_type(),
        Some(&aws_sdk_ssm::types::PlatformType::Linux)
    );
    assert!(by_id(&offline[0]).last_ping_date_time().is_some());

    let out = c
        .describe_instance_information()
        .instance_information_filter_list(
            InstanceInformationFilter::builder()
                .key(InstanceInformationFilterKey::PingStatus)
                .value_set("ConnectionLost")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = out
        .instance_information_list()
        .iter()
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids, [offline[0].as_str(), offline[1].as_str()]);

    // Pagination: 7 hosts, pages of 5.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = c
            .describe_instance_information()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            out.instance_information_list()
                .iter()
                .map(|i| i.instance_id().unwrap().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 7);
    let e = c
        .describe_instance_information()
        .max_results(4)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
}

async fn issue(
    c: &aws_sdk_acmpca::Client,
    ca: &str,
    csr: &[u8],
    alg: SigningAlgorithm,
    validity: Validity,
    token: Option<&str>,
) -> Result<
    String,
    aws_sdk_acmpca::error::SdkError<
        aws_sdk_acmpca::operation::issue_certificate::IssueCertificateError,
    >,
> {
    c.issue_certificate()
        .certificate_authority_arn(ca)
        .csr(Blob::new(csr.to_vec()))
        .signing_algorithm(alg)
        .template_arn(pca::CLIENT_AUTH_TEMPLATE)
        .validity(validity)
        .set_idempotency_token(token.map(str::to_string))
        .send()
        .await
        .map(|o| o.certificate_arn().unwrap().to_string())
}

fn days(n: i64) -> Validity {
    Validity::builder()
        .value(n)
        .r#type(ValidityPeriodType::Days)
        .build()
        .unwrap()
}

fn openssl_verify(dir: &Path, chain: &str, cert: &str) -> std::process::Output {
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(dir.join("chain.pem"))
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_issues_client_auth_certificates() {
    let bus = EventBus::new();
    let capture = Capture::new();
    let h = pca::start(PcaConfig {
        bus: bus.clone(),
        capture: capture.clone(),
        ..PcaConfig::default()
    })
    .await
    .unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let host = ssm::managed_instance_id(0xd4);
    let csr = openssl_csr(dir.path(), &host, false);
    let ca = h.ca_arn();

    let before = time::OffsetDateTime::now_utc();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-1"),
    )
    .await
    .unwrap();
    let arn_re = regex::Regex::new(&format!(
        "^{}/certificate/[0-9a-f]{{32}}$",
        regex::escape(&ca)
    ))
    .unwrap();
    assert!(arn_re.is_match(&arn), "{arn}");

    // Not ready on the first call, as the service answers right after IssueCertificate.
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let e = get().await.unwrap_err().into_service_error();
    assert!(e.is_request_in_progress_exception(), "{e:?}");
    let got = get().await.unwrap();
    let cert_pem = got.certificate().unwrap();
    let chain_pem = got.certificate_chain().unwrap();
    assert_eq!(chain_pem, h.ca_certificate_pem());

    let v = openssl_verify(dir.path(), chain_pem, cert_pem);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    let der = pem_der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.subject().to_string(), format!("CN={host}"));
    assert_eq!(cert.version(), X509Version::V3);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );
    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    let expect_na = before + time::Duration::days(7);
    assert!(
        (na - expect_na).abs() < time::Duration::seconds(5),
        "{na} vs {expect_na}"
    );
    let expect_nb = before - time::Duration::hours(1);
    assert!((nb - expect_nb).abs() < time::Duration::seconds(5), "{nb}");
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    let ca_der = pem_der(&h.ca_certificate_pem());
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
    let ca_ski = ca_cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(aki, ca_ski);
    assert!(cert.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::SubjectKeyIdentifier(_)
    )));
    let serial = cert.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] < 0x80 && serial[0] > 0);
    assert!(arn.ends_with(&hex::encode(serial)));

    let issued = h.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].arn, arn);
    assert_eq!(issued[0].subject, format!("CN={host}"));
    assert_eq!(issued[0].serial, hex::encode(serial));
    assert_eq!(issued[0].not_after.unix_timestamp(), na.unix_timestamp());
    assert_eq!(issued[0].csr_pem.as_bytes(), csr.as_slice());

    // Same token and CSR: same ARN, nothing issued again, no second event.
    let again = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-1"),
    )
    .await
    .unwrap();
    assert_eq!(again, arn);
    assert_eq!(h.issued().len(), 1);
    // Another token: a new certificate.
    let other = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(2),
        Some("tok-2"),
    )
    .await
    .unwrap();
    assert_ne!(other, arn);
    assert_eq!(h.issued().len(), 2);

    let events = bus.drain();
    assert_eq!(events.len(), 2);
    let sample = sample_event("pca-certificate-issuance-success.json");
    for e in &events {
        assert_event_shape(e, &sample);
        assert_eq!(e["detail"]["result"], "success");
        assert_eq!(e["resources"][0], ca.as_str());
    }
    assert_eq!(events[0]["resources"][1], arn.as_str());
    assert_eq!(events[1]["resources"][1], other.as_str());

    // The CA certificate, and its description.
    let ca_out = c
        .get_certificate_authority_certificate()
        .certificate_authority_arn(&ca)
        .send()
        .await
        .unwrap();
    assert_eq!(ca_out.certificate(), Some(h.ca_certificate_pem().as_str()));
    assert_eq!(ca_out.certificate_chain(), None, "a root CA has no chain");
    let d = c
        .describe_certificate_authority()
        .certificate_authority_arn(&ca)
        .send()
        .await
        .unwrap();
    let d = d.certificate_authority().unwrap();
    assert_eq!(
        d.status(),
        Some(&aws_sdk_acmpca::types::CertificateAuthorityStatus::Active)
    );
    assert_eq!(
        d.usage_mode(),
        Some(&aws_sdk_acmpca::types::CertificateAuthorityUsageMode::ShortLivedCertificate)
    );
    assert_eq!(
        d.certificate_authority_configuration()
            .unwrap()
            .key_algorithm(),
        &aws_sdk_acmpca::types::KeyAlgorithm::EcPrime256v1
    );

    assert!(capture.find("PRIVATE KEY").is_empty());
    let calls = h.calls();
    assert_eq!(calls["ACMPCA.IssueCertificate"], 3);
    assert_eq!(calls["ACMPCA.GetCertificate"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_rejects_what_the_service_rejects() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0xe5), false);
    let ca = h.ca_arn();
    let ec = SigningAlgorithm::Sha256Withecdsa;

    let unknown_ca = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/00000000-0000-4000-8000-000000000000";
    let e = issue(&c, unknown_ca, &csr, ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = issue(&c, "not-an-arn", &csr, ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_arn_exception(), "{e:?}");
    let e = issue(&c, &ca, b"garbage", ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_csr_exception(), "{e:?}");
    // A CSR whose signature does not verify (one byte of the signature flipped).
    let mut der = pem_der(std::str::from_utf8(&csr).unwrap());
    let last = der.len() - 3;
    der[last] ^= 0x01;
    let bad = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let e = issue(&c, &ca, bad.as_bytes(), ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_csr_exception(), "{e:?}");
    let e = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withrsa,
        days(1),
        None,
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let e = issue(&c, &ca, &csr, ec.clone(), days(8), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let past = Validity::builder()
        .value(20200101000000)
        .r#type(ValidityPeriodType::EndDate)
        .build()
        .unwrap();
    let e = issue(&c, &ca, &csr, ec.clone(), past, None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    assert!(h.issued().is_empty());
    assert!(h.bus().is_empty());

    let e = c
        .get_certificate()
        .certificate_authority_arn(&ca)
        .certificate_arn(format!("{ca}/certificate/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    h.set_status("DISABLED");
    let e = issue(&c, &ca, &csr, ec, days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_state_exception(), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_failed_issuance() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0xf6), false);
    let ca = h.ca_arn();
    h.fail_next_issuance();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    let events = h.bus().drain();
    assert_eq!(events.len(), 1);
    assert_event_shape(
        &events[0],
        &sample_event("pca-certificate-issuance-failure.json"),
    );
    assert_eq!(events[0]["detail"]["result"], "failure");
    assert_eq!(events[0]["resources"][1], arn.as_str());
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    assert!(get()
        .await
        .unwrap_err()
        .into_service_error()
        .is_request_in_progress_exception());
    let e = get().await.unwrap_err().into_service_error();
    assert!(e.is_request_failed_exception(), "{e:?}");
    assert!(h.issued().is_empty());
    // Only the next one fails.
    let ok = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.issued()[0].arn, ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_rsa_ca_with_end_date() {
    let h = pca::start(PcaConfig {
        key_algorithm: CaKeyAlgorithm::Rsa2048,
        ..PcaConfig::default()
    })
    .await
    .unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let host = ssm::managed_instance_id(0x17);
    let csr = openssl_csr(dir.path(), &host, true);
    let ca = h.ca_arn();
    let end = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(3);
    let end_num: i64 = end
        .format(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap()
        .parse()
        .unwrap();
    let validity = Validity::builder()
        .value(end_num)
        .r#type(ValidityPeriodType::EndDate)
        .build()
        .unwrap();
    let e = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        validity.clone(),
        None,
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha384Withrsa,
        validity,
        None,
    )
    .await
    .unwrap();
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let _ = get().await;
    let got = get().await.unwrap();
    let v = openssl_verify(
        dir.path(),
        got.certificate_chain().unwrap(),
        got.certificate().unwrap(),
    );
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let der = pem_der(got.certificate().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.validity().not_after.to_datetime(), end);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA384WITHRSA
    );
}

/// The project's real documents, taken from the CloudFormation template, run end to end on one
/// emulated host: GenerateCsr → IssueCertificate → DeployCert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_documents_rotate_a_host() {
    let template = tests::table::template_path();
    if !template.exists() {
        eprintln!(
            "NOTE: {} absent; skipping the real-document run",
            template.display()
        );
        return;
    }
    use tests::stack::{DEPLOY_CERT_DOCUMENT as DEPLOY_DOC, GENERATE_CSR_DOCUMENT as GEN_DOC};
    let docs = ssm::load_documents(
        &template,
        &[
            ("GenerateCsrDocument", GEN_DOC),
            ("DeployCertDocument", DEPLOY_DOC),
        ],
    )
    .expect("the template's documents load");
    let bus = EventBus::new();
    let capture = Capture::new();
    let s = ssm::start(SsmConfig {
        documents: docs,
        bus: bus.clone(),
        capture: capture.clone(),
        ..SsmConfig::default()
    })
    .await
    .unwrap();
    let p = pca::start(PcaConfig {
        bus: bus.clone(),
        capture: capture.clone(),
        ..PcaConfig::default()
    })
    .await
    .unwrap();

    // The scripts are byte for byte the template's.
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    for (logical, name) in [
        ("GenerateCsrDocument", GEN_DOC),
        ("DeployCertDocument", DEPLOY_DOC),
    ] {
        let raw = yaml["Resources"][logical]["Properties"]["Content"]["mainSteps"][0]["inputs"]
            ["runCommand"][0]
            .as_str()
            .unwrap();
        assert_eq!(s.document_script(name), raw);
    }

    let host = ssm::managed_instance_id(0x2026);
    let root = s.register_host(&host, HostSpec::default());
    let sc = ssm_client(&s);
    let pc = pca_client(&p);
    let run = |doc: &'static str, params: Vec<(&'static str, String)>| {
        let sc = sc.clone();
        let host = host.clone();
        let s = &s;
        async move {
            let mut b = sc.send_command().document_name(doc).instance_ids(&host);
            for (k, v) in params {
                b = b.parameters(k, vec![v]);
            }
            let id = command_id(&b.send().await.unwrap());
            s.wait_idle().await;
            visible_invocation(&sc, &id, &host).await
        }
    };

    let gen = run(
        GEN_DOC,
        vec![
            ("hostId", host.clone()),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("csrPath", "/etc/pki/certrotation".into()),
            ("keyAlgorithm", "EC_prime256v1".into()),
            ("rotationId", "rot-42".into()),
        ],
    )
    .await;
    assert_eq!(
        gen.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        gen.standard_error_content()
    );
    let csr = gen
        .standard_output_content()
        .unwrap()
        .strip_prefix("ROTATION rot-42\n")
        .expect("rotation line")
        .to_string();

    let ca = p.ca_arn();
    let arn = issue(
        &pc,
        &ca,
        csr.as_bytes(),
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("rot-42"),
    )
    .await
    .unwrap();
    let get = || {
        pc.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let _ = get().await;
    let got = get().await.unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

    let deploy = run(
        DEPLOY_DOC,
        vec![
            ("hostId", host.clone()),
            ("certPath", "/etc/pki/certrotation".into()),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("cacertPath", "/etc/pki/certrotation".into()),
            ("signingHelperPath", "/usr/local/bin".into()),
            ("certificate", b64(got.certificate().unwrap())),
            ("chain", b64(got.certificate_chain().unwrap())),
            ("rotationId", "rot-42".into()),
        ],
    )
    .await;
    assert_eq!(
        deploy.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        deploy.standard_error_content()
    );
    let serial = p.issued()[0].serial.to_uppercase();
    assert!(
        deploy
            .standard_output_content()
            .unwrap()
            .contains(&format!("DEPLOYED serial={serial}")),
        "{:?}",
        deploy.standard_output_content()
    );
    let dir = root.join("etc/pki/certrotation");
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("{host}.crt")))
            .unwrap()
            .trim_end(),
        got.certificate().unwrap().trim_end()
    );
    let key_mode = std::fs::metadata(dir.join(format!("{host}.key")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o400);
    assert!(dir.join("ca_chain_certificate.crt").exists());

    assert!(
        capture.find("PRIVATE KEY").is_empty(),
        "a key crossed the wire"
    );
    let kinds: Vec<String> = bus
        .drain()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["source"].as_str().unwrap(),
                e["detail"]["status"]
                    .as_str()
                    .or(e["detail"]["result"].as_str())
                    .unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "aws.ssm:Success").count(),
        4,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"aws.acm-pca:success".to_string()));
}

/// The same IssueCertificate / GetCertificate request shapes sent to moto's ACM-PCA: AWS's own
/// service model (which moto is generated against) accepts them. Skipped when the project's
/// virtualenv has no moto server yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_accepts_the_same_pca_request_shapes() {
    let python = tests::moto::moto_python();
    if !python.exists() {
        eprintln!(
            "NOTE: no moto Python at {}; skipping the moto cross-check",
            python.display()
        );
        return;
    }
    let moto = tests::moto::MotoServer::start().expect("moto starts");
    let c = aws_sdk_acmpca::Client::new(&tests::aws::sdk_config(&moto.url(), false));
    let created = c
        .create_certificate_authority()
        .certificate_authority_type(aws_sdk_acmpca::types::CertificateAuthorityType::Root)
        .certificate_authority_configuration(
            aws_sdk_acmpca::types::CertificateAuthorityConfiguration::builder()
                .key_algorithm(aws_sdk_acmpca::types::KeyAlgorithm::EcPrime256v1)
                .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
                .subject(
                    aws_sdk_acmpca::types::Asn1Subject::builder()
                        .common_name("moto cross-check")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .usage_mode(aws_sdk_acmpca::types::CertificateAuthorityUsageMode::ShortLivedCertificate)
        .send()
        .await
        .expect("moto creates a CA");
    let ca = created.certificate_authority_arn().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0x3a), false);
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-moto"),
    )
    .await
    .expect("moto accepts our IssueCertificate shape");
    assert!(arn.starts_with(&format!("{ca}/certificate/")), "{arn}");
    let mut got = None;
    for _ in 0..5 {
        match c
            .get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
            .await
        {
            Ok(o) => {
                got = Some(o);
                break;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_request_in_progress_exception()) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("moto GetCertificate: {e:?}"),
        }
    }
    let got = got.expect("moto returns the certificate");
    let der = pem_der(got.certificate().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.subject().to_string().contains("CN=mi-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_revokes_by_serial() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0x4b), false);
    let ca = h.ca_arn();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    let serial = h.issued()[0].serial.clone();
    h.bus().drain();
    // As openssl prints it: uppercase, colon-separated.
    let colons = serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let revoke = |s: String| {
        c.revoke_certificate()
            .certificate_authority_arn(&ca)
            .certificate_serial(s)
            .revocation_reason(aws_sdk_acmpca::types::RevocationReason::KeyCompromise)
            .send()
    };
    revoke(colons.clone()).await.unwrap();
    let revoked = h.revoked();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].arn, arn);
    assert_eq!(revoked[0].reason, "KEY_COMPROMISE");
    let events = h.bus().drain();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["detail-type"],
        "ACM Private CA Certificate Revocation"
    );
    assert_eq!(events[0]["resources"][1], arn.as_str());
    let e = revoke(serial).await.unwrap_err().into_service_error();
    assert!(e.is_request_already_processed_exception(), "{e:?}");
    let e = revoke("0123456789abcdef".into())
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
}
