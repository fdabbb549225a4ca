//! CertIssue behind its SQS queue, on the local stack: a throttled IssueCertificate is not a
//! failed rotation; it is asked again within the invocation, then handed back as a message SQS
//! delivers again; and a message that never succeeds ends in the dead-letter queue (whose alarm
//! alerts) instead of vanishing.

use serde_json::json;
use state::record::{HostOverrides, StateKind};
use state::HostId;
use tests::faults::{Fault, FaultyStack, Rule};
use tests::stack::{Delivery, LocalStack, ISSUE_MAX_RECEIVES};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x5e5000 + i)
}

async fn state_of(stack: &LocalStack, h: &str) -> StateKind {
    use state::ports::FleetReader;
    let record = stack.store.host(&HostId::parse(h).unwrap()).await.unwrap();
    record.unwrap().state.kind()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_issue_certificate_is_delivered_again_through_the_queue_and_deploys() {
    let h = host(1);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    stack
        .enrol_host(&h, &HostOverrides::default(), LocalStack::online())
        .await
        .unwrap();
    // One more throttle than a delivery asks (the first ask and one after each wait).
    let throttles = cert_issue::ISSUE_DELAYS_MS.len() + 2;
    stack.plan.add(
        Rule::on("ACMPCA.IssueCertificate")
            .times(throttles as u64)
            .fault(Fault::Throttle),
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([h]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(
        stack
            .plan
            .count("ACMPCA.IssueCertificate", &Fault::Throttle),
        throttles
    );
    assert_eq!(state_of(&stack, &h).await, StateKind::Deployed);
    assert_eq!(stack.pca.issued().len(), 1, "one certificate (one token)");
    println!("redeliveries: {}", stack.issue_redeliveries);
    // The first delivery asked until its waits ran out and handed the message back; SQS
    // delivered it again and the throttle had passed.
    assert!(
        stack.issue_redeliveries >= 1,
        "{}",
        stack.issue_redeliveries
    );
    assert_eq!(stack.issue_queue.dead_letters().unwrap(), 0);
    assert_eq!(stack.issue_queue.in_queue().unwrap(), 0);
    assert!(
        stack.inbox.messages().unwrap().is_empty(),
        "throttling is no failure: no alert"
    );
    let files = stack.host_files(&h, &HostOverrides::default());
    assert!(files.cert.exists() && files.key.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_that_never_succeeds_ends_in_the_dead_letter_queue() {
    let h = host(2);
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    stack
        .enrol_host(&h, &HostOverrides::default(), LocalStack::online())
        .await
        .unwrap();
    stack
        .plan
        .add(Rule::on("ACMPCA.IssueCertificate").fault(Fault::Throttle));
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    // Every receive that got that far asked once and once after each wait.
    let asks = cert_issue::ISSUE_DELAYS_MS.len() + 1;
    let throttled = stack
        .plan
        .count("ACMPCA.IssueCertificate", &Fault::Throttle);
    assert!(
        throttled % asks == 0 && (1..=ISSUE_MAX_RECEIVES as usize * asks).contains(&throttled),
        "{throttled}"
    );
    assert_eq!(stack.issue_queue.dead_letters().unwrap(), 1);
    assert_eq!(stack.issue_queue.in_queue().unwrap(), 0);
    // Still waiting: the reconciler asks where it stands after the in-flight timeout.
    assert_eq!(state_of(&stack, &h).await, StateKind::CsrRequested);
}
