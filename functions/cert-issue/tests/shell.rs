//! The shell: `handle` with in-memory ports. The steps' branches are tested beside them; these
//! check that the shell carries out each kind of decision (record, fail with one alert, ignore,
//! fail the invocation with the right error type).

use rotation::fakes;

use fakes::{aws_error, store_error, Ca, Hosts, Inbox, Store};
use lambda_runtime::{Diagnostic, LambdaEvent};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rotation::error::FailureKind;
use rotation::hosts::Invocation;
use rotation::{Config, Deps};
use serde_json::Value;
use state::record::{Attempts, HostOverrides};
use state::{HostId, HostRecord, RotationId, RotationState};
use time::OffsetDateTime;

const SAMPLE: &str = include_str!("fixtures/events/ssm-command-invocation-status-change.json");
const HOST: &str = "mi-0a1b2c3d4e5f60718";
const COMMAND: &str = "9b3c2d1e-0f4a-4b5c-8d6e-7f8091a2b3c4";
const ROTATION: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

fn config() -> Config {
    Config::from_lookup(|k| {
        let v = match k {
            "TABLE_NAME" => "t",
            "ALERT_TOPIC_ARN" => "arn:aws:sns:us-east-1:111122223333:alerts",
            "CA_ARN" => "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x",
            "GENERATE_CSR_DOCUMENT" => "certrotation-GenerateCsr",
            "DEPLOY_CERT_DOCUMENT" => "certrotation-DeployCert",
            "STACK_NAME" => "certs-test",
            _ => return None,
        };
        Some(v.to_owned())
    })
    .unwrap()
}

fn host() -> HostId {
    HostId::parse(HOST).unwrap()
}

/// A stack whose host waits for the sample event's GenerateCsr command, and whose host printed
/// `stdout`.
fn deps(command_id: Option<&str>, stdout: Option<String>) -> Deps<Store, Hosts, Ca, Inbox> {
    let record = HostRecord {
        host: host(),
        overrides: HostOverrides::default(),
        version: Some(2),
        state: RotationState::CsrRequested {
            rotation: RotationId(ROTATION.into()),
            command_id: command_id.map(str::to_owned),
        },
        state_since: Some(OffsetDateTime::now_utc()),
        current: None,
        attempts: Attempts::default(),
    };
    let hosts = Hosts::default();
    if let Some(stdout) = stdout {
        hosts
            .invocations
            .lock()
            .unwrap()
            .push_back(Ok(Invocation::Finished {
                success: true,
                status: "Success".into(),
                stdout,
                stderr: String::new(),
            }));
    }
    Deps {
        store: Store::with(record),
        hosts,
        ca: Ca::default(),
        alerts: Inbox::default(),
        config: config(),
    }
}

/// What GenerateCsr prints for this rotation: the echo and a CSR for the host.
fn csr_output() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, HOST);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    format!("ROTATION {ROTATION}\n{csr}")
}

async fn handle(deps: &Deps<Store, Hosts, Ca, Inbox>) -> Result<Value, Diagnostic> {
    let event = LambdaEvent {
        payload: serde_json::from_str(SAMPLE).unwrap(),
        context: Default::default(),
    };
    cert_issue::handle(deps, event)
        .await
        .map_err(Diagnostic::from)
}

#[tokio::test]
async fn an_accepted_csr_is_issued_and_recorded() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    let out = handle(&deps).await.unwrap();
    assert_eq!(out["outcome"], "issued", "{out}");
    assert_eq!(out["certificate_arn"], "arn:fake:certificate");
    assert_eq!(*deps.ca.tokens.lock().unwrap(), [ROTATION]);
    assert!(matches!(
        deps.store.record(&host()).state,
        RotationState::Issuing { cert_arn, .. } if cert_arn == "arn:fake:certificate"
    ));
    assert!(deps.alerts.alerts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_csr_fails_the_rotation_with_one_alert() {
    let deps = deps(
        Some(COMMAND),
        Some(format!("ROTATION {ROTATION}\nno csr\n")),
    );
    let out = handle(&deps).await.unwrap();
    assert_eq!(out["outcome"], "failed", "{out}");
    assert!(matches!(
        deps.store.record(&host()).state,
        RotationState::Failed { reason, .. } if reason.starts_with("CSR refused")
    ));
    assert_eq!(deps.alerts.alerts.lock().unwrap().len(), 1);
    assert!(deps.ca.tokens.lock().unwrap().is_empty(), "nothing issued");
}

/// The log lines written while `f` runs, debug level and up, as JSON (the metric documents
/// are logged, not printed, outside Lambda).
async fn logged<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<Value>) {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    drop(guard);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

/// The metric documents among `lines`.
fn metric_documents(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| l["fields"]["metrics"].as_str())
        .map(|m| serde_json::from_str(m).unwrap())
        .collect()
}

#[tokio::test]
async fn a_refused_csr_is_counted_as_a_failed_rotation_of_this_stack() {
    let deps = deps(
        Some(COMMAND),
        Some(format!("ROTATION {ROTATION}\nno csr\n")),
    );
    let (out, lines) = logged(handle(&deps)).await;
    assert_eq!(out.unwrap()["outcome"], "failed");
    let docs = metric_documents(&lines);
    assert_eq!(docs.len(), 1, "{lines:?}");
    assert_eq!(docs[0]["Function"], "CertIssue");
    assert_eq!(docs[0]["RotationsFailed"], 1.0);
    assert_eq!(docs[0]["StackName"], "certs-test");
    assert_eq!(
        docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["StackName"]])
    );
}

#[tokio::test]
async fn a_csr_that_failed_on_the_host_is_counted_as_a_failed_rotation() {
    let deps = deps(Some(COMMAND), None);
    deps.hosts
        .invocations
        .lock()
        .unwrap()
        .push_back(Ok(Invocation::Finished {
            success: false,
            status: "Failed".into(),
            stdout: String::new(),
            stderr: "ERROR: openssl: not found".into(),
        }));
    let (out, lines) = logged(handle(&deps)).await;
    assert_eq!(out.unwrap()["outcome"], "failed");
    let docs = metric_documents(&lines);
    assert_eq!(docs.len(), 1, "{lines:?}");
    assert_eq!(docs[0]["RotationsFailed"], 1.0);
}

#[tokio::test]
async fn an_issued_certificate_is_counted_and_no_failure() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    let (out, lines) = logged(handle(&deps)).await;
    assert_eq!(out.unwrap()["outcome"], "issued");
    let docs = metric_documents(&lines);
    assert_eq!(docs[0]["CertificatesRequested"], 1.0);
    assert!(docs[0].get("RotationsFailed").is_none());
}

#[tokio::test]
async fn a_throttle_that_clears_within_the_invocation_issues_with_the_same_token() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    deps.ca
        .issues
        .lock()
        .unwrap()
        .push_back(Err(aws_error(true)));
    let out = handle(&deps).await.unwrap();
    assert_eq!(out["outcome"], "issued", "{out}");
    let tokens = deps.ca.tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_eq!(
        tokens[0], tokens[1],
        "one idempotency token: one certificate"
    );
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        state::record::StateKind::Issuing
    );
}

#[tokio::test]
async fn a_command_not_recorded_yet_fails_the_invocation_as_not_ready() {
    let deps = deps(None, None);
    let e = handle(&deps).await.unwrap_err();
    assert_eq!(e.error_type, FailureKind::NotReady.error_type());
    assert!(deps.hosts.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_ca_error_that_may_clear_fails_the_invocation_as_retryable() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    for _ in 0..=cert_issue::ISSUE_DELAYS_MS.len() {
        deps.ca
            .issues
            .lock()
            .unwrap()
            .push_back(Err(aws_error(true)));
    }
    let e = handle(&deps).await.unwrap_err();
    let tokens = deps.ca.tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 4, "asked again after each wait: {tokens:?}");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one idempotency token"
    );
    assert_eq!(e.error_type, "Retryable", "{}", e.error_message);
    assert!(
        e.error_message.contains("ThrottlingException"),
        "{}",
        e.error_message
    );
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        state::record::StateKind::CsrRequested
    );
    assert!(deps.alerts.alerts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_store_write_no_retry_cures_fails_the_rotation_not_ignored() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    deps.store
        .write_errors
        .lock()
        .unwrap()
        .insert("record issuance", store_error(false));
    let out = handle(&deps).await.unwrap();
    assert_eq!(out["outcome"], "failed", "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("AccessDeniedException"),
        "{out}"
    );
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        state::record::StateKind::Failed
    );
    assert_eq!(deps.alerts.alerts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_read_no_retry_cures_fails_the_invocation_as_permanent() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    *deps.store.read_error.lock().unwrap() = Some(store_error(false));
    let e = handle(&deps).await.unwrap_err();
    assert_eq!(e.error_type, "Permanent", "{}", e.error_message);
    assert!(
        deps.alerts.alerts.lock().unwrap().is_empty(),
        "no rotation to fail"
    );
}

#[tokio::test]
async fn a_failure_that_cannot_be_recorded_fails_the_invocation() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    deps.ca
        .issues
        .lock()
        .unwrap()
        .push_back(Err(aws_error(false)));
    deps.store
        .write_errors
        .lock()
        .unwrap()
        .insert("fail", store_error(false));
    let e = handle(&deps).await.unwrap_err();
    assert_eq!(e.error_type, "Permanent", "{}", e.error_message);
    assert!(deps.alerts.alerts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_event_of_another_document_is_ignored() {
    let deps = deps(Some(COMMAND), None);
    let mut payload: Value = serde_json::from_str(SAMPLE).unwrap();
    payload["detail"]["document-name"] = "other".into();
    let out = cert_issue::handle(
        &deps,
        LambdaEvent {
            payload,
            context: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "ignored", "{out}");
}

/// `events` as an SQS event source mapping delivers them: one record per event, IDs `m-0`, ….
async fn handle_batch(deps: &Deps<Store, Hosts, Ca, Inbox>, events: &[Value]) -> Value {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::json!({
                "messageId": format!("m-{i}"), "receiptHandle": "r", "body": e.to_string(),
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q",
            })
        })
        .collect();
    cert_issue::handle(
        deps,
        LambdaEvent {
            payload: serde_json::json!({ "Records": records }),
            context: Default::default(),
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_throttled_record_of_an_sqs_batch_is_reported_for_redelivery() {
    let deps = deps(Some(COMMAND), Some(csr_output()));
    for _ in 0..=cert_issue::ISSUE_DELAYS_MS.len() {
        deps.ca
            .issues
            .lock()
            .unwrap()
            .push_back(Err(aws_error(true)));
    }
    let sample: Value = serde_json::from_str(SAMPLE).unwrap();
    let mut other = sample.clone();
    other["detail"]["document-name"] = "other".into();
    let out = handle_batch(&deps, &[other, sample]).await;
    assert_eq!(
        out,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
    );
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        state::record::StateKind::CsrRequested
    );
}

#[tokio::test]
async fn a_refused_csr_in_an_sqs_batch_fails_the_host_and_is_not_delivered_again() {
    let deps = deps(
        Some(COMMAND),
        Some(format!("ROTATION {ROTATION}\nno csr\n")),
    );
    let sample: Value = serde_json::from_str(SAMPLE).unwrap();
    let (out, lines) = logged(handle_batch(&deps, &[sample])).await;
    assert_eq!(out, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(
        deps.store.record(&host()).state.kind(),
        state::record::StateKind::Failed
    );
    assert_eq!(metric_documents(&lines)[0]["RotationsFailed"], 1.0);
}
