//! CertCheck under faults (through the fault proxy): a run that cannot read the table fails
//! loudly and once; a throttled SendCommand slows one host down and never fails the run; many
//! hosts failing at once make one digest, not one message each.

use lambda_runtime::{Context, LambdaEvent};
use rotation::error::FailureKind;
use serde_json::{json, Value};
use state::ports::FleetReader;
use state::record::{HostOverrides, RotationState};
use state::HostId;
use tests::faults::{Fault, FaultyStack, Rule};
use tests::stack::{Delivery, LocalStack};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xc4ec000 + i)
}

async fn enrolled(stack: &LocalStack, hosts: &[String]) {
    for h in hosts {
        stack
            .enrol_host(h, &HostOverrides::default(), LocalStack::online())
            .await
            .unwrap();
    }
}

fn alert_bodies(stack: &mut FaultyStack) -> Vec<Value> {
    stack
        .inbox
        .messages()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.message).unwrap())
        .collect()
}

/// Scenario 1: the table refuses CertCheck (AccessDenied on Scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_the_table_refuses_fails_as_permanent_with_one_alert_naming_the_cause() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, &[host(1), host(2)]).await;
    stack
        .plan
        .add(Rule::on("DynamoDB.Scan").fault(Fault::Error {
            status: 400,
            code: "AccessDeniedException".into(),
        }));
    let e = cert_check::handle(
        stack.check.clone(),
        LambdaEvent {
            payload: json!({}),
            context: Context::default(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, FailureKind::Permanent, "{}", e.message);
    let bodies = alert_bodies(&mut stack);
    assert_eq!(bodies.len(), 1, "exactly one alert: {bodies:?}");
    assert_eq!(bodies[0]["kind"], "RUN_FAILED", "{:?}", bodies[0]);
    assert!(
        bodies[0]["reason"]
            .as_str()
            .unwrap()
            .contains("AccessDeniedException"),
        "{:?}",
        bodies[0]
    );
}

/// Scenario 7 (CertCheck's part): one host's SendCommand is throttled past the SDK's retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_send_leaves_that_host_for_the_next_pass_and_the_run_goes_on() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let hosts = [host(1), host(2), host(3)];
    // The first host keeps another key algorithm, so its GenerateCsr is a command of its own
    // (hosts share a command only with the same settings): the throttled command is its alone.
    let own = HostOverrides {
        key_algorithm: Some(pki::KeyAlgorithm::EcP384),
        ..HostOverrides::default()
    };
    stack
        .enrol_host(&hosts[0], &own, LocalStack::online())
        .await
        .unwrap();
    enrolled(&stack, &hosts[1..]).await;
    stack.plan.add(
        Rule::on("SSM.SendCommand")
            .host(&hosts[0])
            .fault(Fault::Throttle),
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"].as_array().unwrap().len(), 2, "{s}");
    assert!(s["failed"].as_array().unwrap().is_empty(), "{s}");
    assert!(
        s["skipped"].to_string().contains("left for the next pass"),
        "{s}"
    );
    stack.settle(Delivery::default()).await.unwrap();
    let throttled = HostId::parse(&hosts[0]).unwrap();
    let r = stack.store.host(&throttled).await.unwrap().unwrap();
    assert_eq!(r.attempts.failed, 0, "no attempt counted: {r:?}");
    for h in &hosts[1..] {
        let r = stack.record(h).await;
        assert_eq!(r.state, RotationState::Deployed, "{h}: {r:?}");
    }
    assert!(
        alert_bodies(&mut stack).is_empty(),
        "a throttle alerts no one"
    );
    // SSM recovers: the next pass starts it.
    stack.plan.clear();
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([hosts[0]]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.store.host(&throttled).await.unwrap().unwrap();
    assert_eq!(r.state, RotationState::Deployed, "{r:?}");
}

/// One host SSM refuses for good (here: a node it calls invalid) refuses the whole GenerateCsr
/// of its batch: the batch is sent again host by host, so only that host's rotation fails and
/// the others rotate in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_refused_for_one_host_is_sent_host_by_host_and_only_that_host_fails() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let hosts = [host(1), host(2), host(3)];
    enrolled(&stack, &hosts).await;
    stack.plan.add(
        Rule::on("SSM.SendCommand")
            .host(&hosts[1])
            .fault(Fault::Error {
                status: 400,
                code: "InvalidInstanceId".into(),
            }),
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["failed"].as_array().unwrap().len(), 1, "{s}");
    assert!(s["failed"].to_string().contains(&hosts[1]), "{s}");
    assert_eq!(s["started"].as_array().unwrap().len(), 2, "{s}");
    // One GenerateCsr for the batch, then one per host.
    assert_eq!(stack.plan.calls()["SSM.SendCommand"], 1 + 3);
    stack.settle(Delivery::default()).await.unwrap();
    for h in [&hosts[0], &hosts[2]] {
        let r = stack.record(h).await;
        assert_eq!(r.state, RotationState::Deployed, "{h}: {r:?}");
    }
    let r = stack.record(&hosts[1]).await;
    assert_eq!(r.state.kind(), state::record::StateKind::Failed, "{r:?}");
    assert_eq!(r.attempts.failed, 1, "{r:?}");
}

/// The table throttles CertIssue's ISSUING write past the SDK's retries, after Private CA has
/// issued the certificate: CertIssue writes it again at once, rather than leave it to a retry
/// of the event minutes later, past the idempotency token's window, that would have a second
/// certificate issued. One IssueCertificate, one certificate, the host DEPLOYED with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_issuing_write_is_written_again_before_any_second_issuance() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;
    // The local clients make 3 attempts: the first ISSUING write fails as a whole.
    stack.plan.add(
        Rule::on("DynamoDB.UpdateItem")
            .host("ISSUING")
            .times(3)
            .fault(Fault::Throttle),
    );
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(
        stack.plan.count("DynamoDB.UpdateItem", &Fault::Throttle),
        3,
        "the ISSUING write was throttled through the SDK's attempts"
    );
    assert_eq!(
        stack.capture.calls_of("ACMPCA.IssueCertificate"),
        1,
        "Private CA asked once"
    );
    assert_eq!(stack.pca.issued().len(), 1, "one certificate");
    let r = stack.record(&h).await;
    assert_eq!(r.state, RotationState::Deployed, "{r:?}");
    let serial = r
        .current
        .and_then(|c| c.serial)
        .expect("the serial on the host");
    let issued = stack.pca.issued()[0].serial.clone();
    assert_eq!(
        pki::canonical_serial(&serial),
        pki::canonical_serial(&issued),
        "the table names the one certificate issued"
    );
}

/// Scenario 9: fifteen hosts fail in one run (SSM refuses every send): one digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifteen_failing_hosts_make_one_digest_alert() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let hosts: Vec<String> = (1..=15).map(host).collect();
    enrolled(&stack, &hosts).await;
    stack
        .plan
        .add(Rule::on("SSM.SendCommand").fault(Fault::Error {
            status: 400,
            code: "InvalidDocument".into(),
        }));
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["failed"].as_array().unwrap().len(), 15, "{s}");
    let bodies = alert_bodies(&mut stack);
    assert_eq!(bodies.len(), 1, "one digest: {bodies:?}");
    let reason = bodies[0]["reason"].as_str().unwrap();
    assert_eq!(bodies[0]["kind"], "DIGEST", "{:?}", bodies[0]);
    assert!(reason.starts_with("15 hosts need attention."), "{reason}");
    assert!(reason.contains("15 × ROTATION_FAILED"), "{reason}");
    assert!(
        reason.contains(&hosts[0]) && reason.contains(&hosts[9]),
        "{reason}"
    );
    assert!(reason.ends_with(" and 5 more"), "{reason}");
    // Each host's level is recorded: a forced rerun that fails again repeats nothing.
    let s = stack
        .cert_check(json!({"hosts": hosts, "force": true}))
        .await
        .unwrap();
    assert_eq!(s["failed"].as_array().unwrap().len(), 15, "{s}");
    assert_eq!(alert_bodies(&mut stack).len(), 1, "no second alert");
}

/// Scenario 1: one host SSM refuses to describe (an ID it calls malformed) never stops the run
/// for the others: it waits, noted, and the others rotate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_ssm_refuses_waits_and_the_others_rotate() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let hosts = [host(1), host(2), host(3)];
    enrolled(&stack, &hosts).await;
    stack.plan.add(
        Rule::on("SSM.DescribeInstanceInformation")
            .host(&hosts[0])
            .fault(Fault::Error {
                status: 400,
                code: "InvalidInstanceId".into(),
            }),
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"].as_array().unwrap().len(), 2, "{s}");
    assert!(s["skipped"].to_string().contains("offline, waiting"), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.record(&hosts[0]).await;
    assert_eq!(r.attempts.failed, 0, "{r:?}");
    assert!(alert_bodies(&mut stack).is_empty());
}

/// Scenario 4, at the reconcile pass's cadence: a due host that a schedule run found offline is
/// marked, so the reconcile pass (every few minutes, reading only the unsettled index) rotates
/// it once it is back, instead of the next 12-hour run; hosts at rest and not due stay out of
/// that pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_back_online_is_rotated_by_the_next_reconcile_pass() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let (away, fine) = (host(41), host(42));
    enrolled(&stack, std::slice::from_ref(&fine)).await;
    stack
        .enrol_host(
            &away,
            &HostOverrides::default(),
            tests::emulators::ssm::HostSpec {
                online: false,
                has_openssl: true,
            },
        )
        .await
        .unwrap();
    let s = stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(s["started"], json!([fine]), "{s}");
    assert!(s["skipped"].to_string().contains("offline, waiting"), "{s}");
    assert_eq!(stack.record(&fine).await.state, RotationState::Deployed);

    stack.ssm.set_online(&away, true);
    let pass = stack.cert_check(json!({"reconcile": true})).await.unwrap();
    assert_eq!(pass["started"], json!([away]), "{pass}");
    assert_eq!(
        pass["itemsRead"], 1,
        "only the waiting host is read: {pass}"
    );
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(stack.record(&away).await.state, RotationState::Deployed);

    // Deployed, it leaves the index: the next pass reads nothing.
    let pass = stack.cert_check(json!({"reconcile": true})).await.unwrap();
    assert_eq!(pass["itemsRead"], 0, "{pass}");
}
