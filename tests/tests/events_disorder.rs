//! CertIssue and CertDeploy on the local stack when events come in a bad order, twice, or while
//! a service refuses: no order of status event, issuance event and writes loses a rotation or
//! deploys twice; a throttle slows a rotation down, never fails it; a refusal fails the host
//! with the service's own error, alerted once.

use serde_json::json;
use state::ports::FleetReader;
use state::record::{HostOverrides, RotationState};
use state::HostId;
use tests::faults::delivery::{self, DeliveryPolicy, EventKind, Outcome, Rates, Timing};
use tests::faults::{Fault, FaultyStack, Rule};
use tests::stack::{Delivery, LocalStack, DEPLOY_CERT_DOCUMENT, GENERATE_CSR_DOCUMENT};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xd150_0000 + i)
}

async fn enrolled(stack: &LocalStack, hosts: &[String]) {
    for h in hosts {
        stack
            .enrol_host(h, &HostOverrides::default(), LocalStack::online())
            .await
            .unwrap();
    }
}

async fn state_of(stack: &LocalStack, h: &str) -> RotationState {
    let id = HostId::parse(h).unwrap();
    stack.store.host(&id).await.unwrap().unwrap().state
}

/// Every host DEPLOYED, one GenerateCsr command for the hosts (they share their settings, and
/// are fewer than 50), one DeployCert invocation per rotation (in as many commands as the events
/// came in batches), one certificate per rotation, no alert.
async fn assert_rotated_once(
    stack: &mut LocalStack,
    hosts: &[String],
    report: &impl std::fmt::Debug,
) {
    for h in hosts {
        let state = state_of(stack, h).await;
        assert_eq!(state, RotationState::Deployed, "{h}: {report:#?}");
    }
    let n = hosts.len();
    assert_eq!(
        stack.sent(GENERATE_CSR_DOCUMENT),
        (n, 1),
        "one GenerateCsr command for all"
    );
    let (deployed_hosts, deploy_commands) = stack.sent(DEPLOY_CERT_DOCUMENT);
    assert_eq!(deployed_hosts, n, "one DeployCert invocation per rotation");
    assert!((1..=n).contains(&deploy_commands), "{deploy_commands}");
    assert_eq!(
        stack.pca.issued().len(),
        hosts.len(),
        "one certificate per rotation"
    );
    let msgs = stack.inbox.messages().unwrap().to_vec();
    assert!(msgs.is_empty(), "no alert: {msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_issuance_event_before_issuing_is_recorded_is_not_lost() {
    let hosts = [host(1), host(2)];
    let mut stack = LocalStack::start(&[]).await.unwrap();
    enrolled(&stack, &hosts).await;
    stack.cert_check(json!({})).await.unwrap();
    // Private CA announces the certificate inside CertIssue's IssueCertificate call, before
    // CertIssue records ISSUING with the ARN.
    let policy = DeliveryPolicy::seeded(11).kind(
        EventKind::Issuance,
        Rates {
            early: 1.0,
            ..Rates::default()
        },
    );
    let report = delivery::settle_chaos(&mut stack, &policy).await.unwrap();
    let issuance = report.of(EventKind::Issuance);
    assert!(
        issuance
            .iter()
            .all(|d| d.attempt > 0 || d.timing == Timing::Early),
        "{report:#?}"
    );
    assert!(
        !issuance
            .iter()
            .any(|d| matches!(d.outcome, Outcome::Exhausted(_))),
        "{report:#?}"
    );
    assert_rotated_once(&mut stack, &hosts, &report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_issuance_event_delivered_by_hand_before_the_csr_status_waits_for_it() {
    let h = host(3);
    let mut stack = LocalStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    // The GenerateCsr status is on the bus; hold it, and first hand CertDeploy the issuance
    // event of the certificate CertIssue is about to request (no rotation records it yet).
    let events = stack.bus.drain();
    let record = stack.record(&h).await;
    assert!(matches!(record.state, RotationState::CsrRequested { .. }));
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let early = json!({
        "version": "0", "id": "early", "detail-type": "ACM Private CA Certificate Issuance",
        "source": "aws.acm-pca", "account": "111122223333", "time": now, "region": "us-east-1",
        "resources": [stack.config.ca_arn, format!("{}/certificate/0123456789abcdef0123456789abcdef", stack.config.ca_arn)],
        "detail": {"result": "success"}
    });
    let answer = stack.deliver(&early).await;
    assert!(
        answer.is_err(),
        "a fresh issuance event no rotation waits for yet is retried, not dropped: {answer:?}"
    );
    for e in events {
        stack.bus.push(e);
    }
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(state_of(&stack, &h).await, RotationState::Deployed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_and_early_events_deploy_each_rotation_once() {
    let hosts = [host(4), host(5), host(6)];
    let mut stack = LocalStack::start(&[]).await.unwrap();
    enrolled(&stack, &hosts).await;
    stack.cert_check(json!({})).await.unwrap();
    let policy = DeliveryPolicy::seeded(12)
        .kind(
            EventKind::CsrStatus,
            Rates {
                twice: 1.0,
                concurrent: 0.5,
                ..Rates::default()
            },
        )
        .kind(
            EventKind::Issuance,
            Rates {
                early: 0.5,
                concurrent: 0.25,
                twice: 1.0,
                ..Rates::default()
            },
        )
        .kind(
            EventKind::DeployStatus,
            Rates {
                early: 0.5,
                twice: 1.0,
                ..Rates::default()
            },
        );
    let report = delivery::settle_chaos(&mut stack, &policy).await.unwrap();
    assert!(
        !report
            .deliveries
            .iter()
            .any(|d| matches!(d.outcome, Outcome::Exhausted(_))),
        "{report:#?}"
    );
    assert_rotated_once(&mut stack, &hosts, &report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_deploy_cert_slows_the_rotation_down_and_never_fails_it() {
    let h = host(7);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    // GenerateCsr is sent: the next SendCommand is DeployCert.
    stack
        .plan
        .add(Rule::on("SSM.SendCommand").times(1).fault(Fault::Throttle));
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(stack.plan.count("SSM.SendCommand", &Fault::Throttle), 1);
    assert_eq!(state_of(&stack, &h).await, RotationState::Deployed);
    let msgs = stack.inbox.messages().unwrap().to_vec();
    assert!(msgs.is_empty(), "no alert: {msgs:?}");
}

/// `h` FAILED with `part` in its reason, and one alert naming it with `part` in its reason.
async fn assert_failed_once(stack: &mut LocalStack, h: &str, part: &str) {
    match state_of(stack, h).await {
        RotationState::Failed { reason, .. } => assert!(reason.contains(part), "{h}: {reason}"),
        other => panic!("{h}: expected FAILED, got {other:?}"),
    }
    let msgs = stack.inbox.messages().unwrap().to_vec();
    let mine: Vec<_> = msgs.iter().filter(|m| m.subject.contains(h)).collect();
    assert_eq!(mine.len(), 1, "{h}: exactly one alert: {msgs:?}");
    let body: serde_json::Value = serde_json::from_str(&mine[0].message).unwrap();
    assert!(
        body["reason"].as_str().unwrap_or_default().contains(part),
        "{body}"
    );
}

fn access_denied() -> Fault {
    Fault::Error {
        status: 400,
        code: "AccessDeniedException".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_issue_certificate_fails_the_host_with_the_service_s_error() {
    let h = host(8);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    stack
        .plan
        .add(Rule::on("ACMPCA.IssueCertificate").fault(access_denied()));
    stack.settle(Delivery::default()).await.unwrap();
    assert!(
        stack
            .plan
            .count("ACMPCA.IssueCertificate", &access_denied())
            >= 1
    );
    assert_failed_once(&mut stack, &h, "AccessDeniedException").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_deploy_cert_fails_the_host_with_the_service_s_error() {
    let h = host(9);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    stack
        .plan
        .add(Rule::on("SSM.SendCommand").fault(access_denied()));
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(stack.plan.count("SSM.SendCommand", &access_denied()), 1);
    assert_failed_once(&mut stack, &h, "AccessDeniedException").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_cert_throttled_throughout_is_sent_by_the_retry_after_the_claim_fence() {
    let h = host(10);
    let id = HostId::parse(&h).unwrap();
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    // Every DeployCert attempt of the first delivery is throttled.
    let sends = cert_deploy::SEND_DELAYS_MS.len() as u64 + 1;
    stack.plan.add(
        Rule::on("SSM.SendCommand")
            .times(sends)
            .fault(Fault::Throttle),
    );
    for _ in 0..20 {
        stack.settle_round(Delivery::default()).await.unwrap();
        if matches!(
            state_of(&stack, &h).await,
            RotationState::Deploying {
                command_id: None,
                ..
            }
        ) {
            break;
        }
    }
    assert_eq!(
        stack.plan.count("SSM.SendCommand", &Fault::Throttle),
        sends as usize
    );
    // The rotation is claimed, without a command, not failed; the event is being retried.
    assert!(matches!(
        state_of(&stack, &h).await,
        RotationState::Deploying {
            command_id: None,
            ..
        }
    ));
    // The issuance event stays in CertDeploy's queue, to be delivered again.
    assert_eq!(stack.deploy_queue.in_queue().unwrap(), 1);
    // A delivery right after the visibility timeout (or a concurrent duplicate) waits: the
    // claimer may still be sending.
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::from(tests::stack::ISSUE_VISIBILITY_S) * 1000 + 100,
    ))
    .await;
    assert!(stack.poll_deploy_queue().await.unwrap(), "delivered again");
    assert!(matches!(
        state_of(&stack, &h).await,
        RotationState::Deploying {
            command_id: None,
            ..
        }
    ));
    assert_eq!(stack.deploy_queue.in_queue().unwrap(), 1, "still queued");
    // SQS's next delivery comes minutes later (the template's visibility timeout is six
    // minutes): move the claim back past the fence.
    let since = time::OffsetDateTime::now_utc() - cert_deploy::step::issuance::CLAIM_FENCE;
    tests::aws::dynamodb(&stack.moto.url())
        .update_item()
        .table_name(&stack.config.table_name)
        .key(
            "hostID",
            aws_sdk_dynamodb::types::AttributeValue::S(h.clone()),
        )
        .update_expression("SET stateSince = :t")
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::N(since.unix_timestamp().to_string()),
        )
        .send()
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(state_of(&stack, &h).await, RotationState::Deployed);
    let record = stack.store.host(&id).await.unwrap().unwrap();
    assert!(record.current.is_some());
    assert_eq!(
        stack.sent(DEPLOY_CERT_DOCUMENT),
        (1, 1),
        "one DeployCert, sent by the retry"
    );
    assert_eq!(stack.deploy_queue.in_queue().unwrap(), 0);
    assert_eq!(stack.deploy_queue.dead_letters().unwrap(), 0);
    let msgs = stack.inbox.messages().unwrap().to_vec();
    assert!(msgs.is_empty(), "no alert: {msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_get_certificate_fails_the_host_with_the_service_s_error() {
    let h = host(11);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.cert_check(json!({})).await.unwrap();
    stack
        .plan
        .add(Rule::on("ACMPCA.GetCertificate").fault(access_denied()));
    stack.settle(Delivery::default()).await.unwrap();
    assert!(stack.plan.count("ACMPCA.GetCertificate", &access_denied()) >= 1);
    assert_failed_once(&mut stack, &h, "AccessDeniedException").await;
}
