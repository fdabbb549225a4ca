//! The fault means (`tests::faults`) do what real AWS would do to the production adapters.
//!
//! Each test runs the functions' own adapters (`state::DynamoStore`, `adapters::*`) through the
//! local stack with a fault plan, and checks what the SDK makes of the fault: the code a
//! throttle arrives with and whether it is retryable, that a reset is a dispatch failure, that
//! latency is latency, that a seeded rate replays, and that the event router and the kill switch
//! deliver, duplicate, delay, lose and crash as they say. Seeded tests print `FAULT_SEED=…`;
//! setting it replays the run.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rotation::alerts::{Alert, AlertKind, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::crl::{CrlSource, TrustAnchorCrls};
use rotation::hosts::HostAgent;
use rotation::AwsError;
use serde_json::json;
use state::ports::{FleetReader, RotationStarter, StoreError};
use state::record::{HostOverrides, RotationId, RotationState};
use state::HostId;
use tests::faults::delivery::{self, DeliveryPolicy, EventKind, Outcome, Rates, Timing};
use tests::faults::kill::{self, KillPoint, Run};
use tests::faults::{Fault, FaultyStack, Rule};
use tests::stack::{Delivery, LocalStack, CRL_BUCKET};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xfa017000 + i)
}

async fn enrolled(stack: &LocalStack, hosts: &[String]) {
    for h in hosts {
        stack
            .enrol_host(h, &HostOverrides::default(), LocalStack::online())
            .await
            .unwrap();
    }
}

/// The SDK error under a store error, as the store got it from UpdateItem.
fn update_item_error(e: &StoreError) -> &SdkError<UpdateItemError, HttpResponse> {
    let StoreError::Backend { source, .. } = e else {
        panic!("not a backend error: {e:?}");
    };
    source
        .downcast_ref::<SdkError<UpdateItemError, HttpResponse>>()
        .unwrap_or_else(|| panic!("not an UpdateItem SDK error: {source:?}"))
}

/// Starts a rotation of `h` through CertCheck's store (UpdateItem).
async fn start_rotation(stack: &FaultyStack, h: &str) -> Result<(), StoreError> {
    let id = HostId::parse(h).unwrap();
    let record = stack.store.host(&id).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let rotation = RotationId::new(&id, record.version.unwrap_or(0), now);
    stack
        .check
        .store
        .start(&record, &rotation, now)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_update_item_reaches_the_store_as_a_retryable_throttle() {
    let stack = FaultyStack::start(&[]).await.unwrap();
    let hosts = [host(1), host(2), host(3)];
    enrolled(&stack, &hosts).await;
    // The moto clients retry (standard mode, 3 attempts): a throttle must last 3 attempts.
    for (h, fault, code) in [
        (&hosts[0], Fault::Throttle, "ThrottlingException"),
        (
            &hosts[1],
            Fault::provisioned_throughput(),
            "ProvisionedThroughputExceededException",
        ),
    ] {
        stack.plan.add(
            Rule::on("DynamoDB_20120810.UpdateItem")
                .host(h)
                .times(3)
                .fault(fault.clone()),
        );
        let e = start_rotation(&stack, h).await.unwrap_err();
        assert!(e.is_retryable(), "{e:?}");
        let sdk = update_item_error(&e);
        assert_eq!(sdk.code(), Some(code), "{sdk:?}");
        if fault == Fault::Throttle {
            assert!(
                matches!(sdk, SdkError::ServiceError(s) if s.err().is_throttling_exception()),
                "the SDK parsed DynamoDB's own ThrottlingException: {sdk:?}"
            );
        }
        assert_eq!(
            stack.plan.count("DynamoDB.UpdateItem", &fault),
            3,
            "three attempts"
        );
    }
    // Another host's write is untouched, and two throttles are hidden by the SDK's retries.
    start_rotation(&stack, &hosts[2]).await.unwrap();
    stack.plan.add(
        Rule::on("DynamoDB.UpdateItem")
            .host(&hosts[0])
            .times(2)
            .fault(Fault::Throttle),
    );
    start_rotation(&stack, &hosts[0]).await.unwrap();
    assert_eq!(stack.plan.count("DynamoDB.UpdateItem", &Fault::Throttle), 5);
    let record = stack.record(&hosts[0]).await;
    assert!(matches!(record.state, RotationState::CsrRequested { .. }));
}

fn assert_aws(e: &AwsError, code: &str) {
    assert_eq!(e.code.as_deref(), Some(code), "{e}");
    assert!(e.retryable, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulators_and_moto_throttle_with_each_service_s_own_error() {
    let stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;
    let id = HostId::parse(&h).unwrap();
    stack
        .plan
        .add(Rule::on("SSM.DescribeInstanceInformation").host(&h));
    stack
        .plan
        .add(Rule::on("ACMPrivateCA.GetCertificateAuthorityCertificate"));
    stack.plan.add(Rule::on("RolesAnywhere.*"));
    stack.plan.add(Rule::on("Action=Publish").times(3));
    stack.plan.add(Rule::on("S3.GET /*").times(3));

    // Towards the emulators the functions' clients do not retry: one throttle is seen.
    let e = stack.check.hosts.reachability(&[id]).await.unwrap_err();
    assert_aws(&e, "ThrottlingException");
    let e = stack.check.ca.ca_certificate().await.unwrap_err();
    assert_aws(&e, "ThrottlingException");
    let e = stack
        .crl
        .anchor
        .replace("crl", b"der", None)
        .await
        .unwrap_err();
    assert_aws(&e, "ThrottlingException");
    let ra = stack.capture.exchanges();
    let ra = ra
        .iter()
        .find(|x| x.operation.starts_with("RolesAnywhere."))
        .unwrap();
    assert_eq!(ra.status, 429, "Roles Anywhere throttles with 429");
    // SNS and S3 through the proxy: retried by the SDK, then seen with their own codes.
    let alert = Alert::new(AlertKind::CrlRefused, "test");
    let e = stack.check.alerts.raise(&alert).await.unwrap_err();
    assert_aws(&e, "Throttling");
    let e = stack
        .crl
        .source
        .fetch(CRL_BUCKET, "crl/x.crl", None)
        .await
        .unwrap_err();
    // The code S3 really sends, retryable for our classifier as for the SDK (which tried three
    // times first).
    assert_eq!(e.code.as_deref(), Some("SlowDown"), "{e}");
    assert!(e.retryable, "S3 SlowDown must be retryable: {e}");
    let injected = stack.plan.injected();
    let answers: Vec<(&str, u16, &str)> = injected
        .iter()
        .map(|i| {
            let (s, c) = i.answer.as_ref().unwrap();
            (i.operation.as_str(), *s, c.as_str())
        })
        .collect();
    assert_eq!(
        answers.len(),
        9,
        "1 SSM + 1 PCA + 1 Roles Anywhere + 3 SNS + 3 S3: {answers:?}"
    );
    assert!(answers.contains(&(
        "SSM.DescribeInstanceInformation",
        400,
        "ThrottlingException"
    )));
    assert!(answers.contains(&(
        "ACMPCA.GetCertificateAuthorityCertificate",
        400,
        "ThrottlingException"
    )));
    assert!(answers.contains(&("SNS.Publish", 400, "Throttling")));
    assert!(answers
        .iter()
        .any(|a| a.0.starts_with("S3.GET ") && a.1 == 503 && a.2 == "SlowDown"));
    // Once the rules are spent or cleared, the same calls go through.
    stack.plan.clear();
    stack.check.ca.ca_certificate().await.unwrap();
    stack.check.alerts.raise(&alert).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_retryable_with_the_service_s_code() {
    let stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack.plan.add(
        Rule::on("DynamoDB.UpdateItem")
            .times(3)
            .fault(Fault::Status(500)),
    );
    stack
        .plan
        .add(Rule::on("SSM.DescribeInstanceInformation").fault(Fault::Status(503)));
    let e = start_rotation(&stack, &h).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(update_item_error(&e).code(), Some("InternalServerError"));
    let e = stack
        .check
        .hosts
        .reachability(&[HostId::parse(&h).unwrap()])
        .await
        .unwrap_err();
    assert_aws(&e, "ServiceUnavailable");
    assert_eq!(stack.plan.count("DynamoDB.*", &Fault::Status(500)), 3);
    assert_eq!(stack.plan.count("SSM.*", &Fault::Status(503)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_connection_is_a_dispatch_failure() {
    let stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;
    stack
        .plan
        .add(Rule::on("DynamoDB.UpdateItem").times(3).fault(Fault::Reset));
    stack
        .plan
        .add(Rule::on("ACMPCA.*").times(1).fault(Fault::Reset));
    let e = start_rotation(&stack, &h).await.unwrap_err();
    assert!(e.is_retryable());
    let sdk = update_item_error(&e);
    assert!(matches!(sdk, SdkError::DispatchFailure(_)), "{sdk:?}");
    let e = stack.check.ca.ca_certificate().await.unwrap_err();
    assert!(e.retryable && e.code.is_none(), "{e}");
    assert!(e.message.starts_with("could not send"), "{e}");
    assert_eq!(stack.plan.count("DynamoDB.UpdateItem", &Fault::Reset), 3);
    // The next call opens a new connection and goes through.
    stack.check.ca.ca_certificate().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latency_delays_the_call_and_lets_it_through() {
    let stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;
    let id = HostId::parse(&h).unwrap();
    let delay = Duration::from_millis(400);
    stack.plan.add(
        Rule::on("DynamoDB.GetItem")
            .nth(1)
            .fault(Fault::Latency(delay)),
    );
    stack
        .plan
        .add(Rule::on("SSM.*").nth(1).fault(Fault::Latency(delay)));
    let t = Instant::now();
    let record = stack.check.store.host(&id).await.unwrap();
    assert!(record.is_some());
    assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
    let t = Instant::now();
    stack
        .check
        .hosts
        .reachability(std::slice::from_ref(&id))
        .await
        .unwrap();
    assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
    let t = Instant::now();
    stack.check.store.host(&id).await.unwrap();
    assert!(t.elapsed() < delay, "only the first GetItem is delayed");
    assert_eq!(stack.plan.count("*", &Fault::Latency(delay)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seeded_rate_replays_for_its_seed_and_differs_for_another() {
    let seed = tests::faults::seed_from_env();
    let stack = FaultyStack::start(&[]).await.unwrap();
    let id = HostId::parse(&host(1)).unwrap();
    let run = |seed: u64| {
        let stack = &stack;
        let id = id.clone();
        async move {
            stack.plan.clear();
            stack.plan.add(
                Rule::on("SSM.DescribeInstanceInformation")
                    .rate(0.5, seed)
                    .fault(Fault::Throttle),
            );
            let mut failed = Vec::new();
            for _ in 0..48 {
                let r = stack
                    .check
                    .hosts
                    .reachability(std::slice::from_ref(&id))
                    .await;
                failed.push(r.is_err());
            }
            failed
        }
    };
    let before = stack.plan.injected().len();
    let a = run(seed).await;
    let throttled = a.iter().filter(|f| **f).count();
    assert_eq!(stack.plan.injected().len() - before, throttled);
    assert!((8..=40).contains(&throttled), "about half: {throttled}");
    assert_eq!(run(seed).await, a, "same seed, same sequence");
    assert_ne!(
        run(seed.wrapping_add(1)).await,
        a,
        "another seed, another sequence"
    );
}

/// One host rotated with `policy`; returns the stack and the report.
async fn rotate(
    hosts: &[String],
    policy: &DeliveryPolicy,
) -> (LocalStack, delivery::DeliveryReport) {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    enrolled(&stack, hosts).await;
    stack.cert_check(json!({})).await.unwrap();
    let report = delivery::settle_chaos(&mut stack, policy).await.unwrap();
    (stack, report)
}

async fn state_of(stack: &LocalStack, h: &str) -> RotationState {
    let id = HostId::parse(h).unwrap();
    stack.store.host(&id).await.unwrap().unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_order_delivery_rotates_as_settle_does() {
    let hosts = [host(1), host(2)];
    let (stack, report) = rotate(&hosts, &DeliveryPolicy::seeded(1)).await;
    for h in &hosts {
        assert!(matches!(state_of(&stack, h).await, RotationState::Deployed));
    }
    assert!(report
        .deliveries
        .iter()
        .all(|d| d.timing == Timing::InOrder && d.copy == 0));
    // One at a time: no delivery starts before the previous one finished.
    let mut spans: Vec<_> = report
        .deliveries
        .iter()
        .map(|d| (d.started, d.finished))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
    let handled = report
        .deliveries
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Handled(_)))
        .count();
    assert_eq!(stack.outcomes.len(), handled);
    assert_eq!(
        handled,
        3 * hosts.len(),
        "CSR status, issuance, deploy status per host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_early_issuance_reaches_cert_deploy_while_cert_issue_still_runs() {
    let h = host(1);
    let policy = DeliveryPolicy::seeded(2).kind(
        EventKind::Issuance,
        Rates {
            early: 1.0,
            ..Rates::default()
        },
    );
    let (_stack, report) = rotate(std::slice::from_ref(&h), &policy).await;
    // CertIssue may be retried while the command's output is not visible yet: the delivery
    // that issued is the one that was handled.
    let issue: Vec<_> = report
        .of(EventKind::CsrStatus)
        .into_iter()
        .filter(|d| matches!(d.outcome, Outcome::Handled(_)))
        .collect();
    // An issuance that arrives before CertIssue recorded ISSUING is answered NotReady and
    // delivered again (as Lambda retries it), so there may be more than one delivery: the
    // first is the early one.
    let issuance = report.of(EventKind::Issuance);
    assert!(!issuance.is_empty(), "{report:#?}");
    assert_eq!(issuance[0].timing, Timing::Early);
    // Private CA announced the certificate inside CertIssue's IssueCertificate call: the
    // issuance was delivered before CertIssue returned.
    assert!(
        issuance[0].started < issue[0].finished,
        "issuance {:?} vs CertIssue {:?}",
        issuance[0],
        issue[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_late_and_lost_events_are_delivered_as_drawn() {
    let hosts = [host(1), host(2), host(3)];
    let policy = DeliveryPolicy::seeded(3)
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
                late: 1.0,
                ..Rates::default()
            },
        )
        .kind(
            EventKind::DeployStatus,
            Rates {
                never: 1.0,
                ..Rates::default()
            },
        );
    let (stack, report) = rotate(&hosts, &policy).await;
    let csr: Vec<_> = report
        .of(EventKind::CsrStatus)
        .into_iter()
        .filter(|d| d.attempt == 0)
        .collect();
    assert_eq!(csr.len(), 6, "every CSR status twice: {csr:#?}");
    for h in &hosts {
        assert_eq!(csr.iter().filter(|d| &d.key == h).count(), 2);
    }
    let last_csr = csr.iter().map(|d| d.finished).max().unwrap();
    let last_csr = report
        .of(EventKind::CsrStatus)
        .iter()
        .map(|d| d.finished)
        .max()
        .unwrap()
        .max(last_csr);
    let issuance = report.of(EventKind::Issuance);
    assert_eq!(issuance.len(), 3);
    assert!(
        issuance.iter().all(|d| d.started >= last_csr),
        "issuances held until every later CSR status was handled"
    );
    let lost = report.of(EventKind::DeployStatus);
    assert_eq!(lost.len(), 3);
    assert!(lost.iter().all(|d| matches!(d.outcome, Outcome::Lost)));
    for h in &hosts {
        // DeployCert ran, but its status never reached CertDeploy: not DEPLOYED.
        let state = state_of(&stack, h).await;
        assert!(!matches!(state, RotationState::Deployed), "{h}: {state:?}");
    }
}

#[tokio::test]
async fn delivery_fates_replay_for_their_seed() {
    let seed = tests::faults::seed_from_env();
    let rates = Rates {
        early: 0.2,
        concurrent: 0.2,
        late: 0.2,
        never: 0.1,
        twice: 0.3,
    };
    let draw = |seed| {
        let p = DeliveryPolicy::seeded(seed).all(rates);
        (0..400)
            .flat_map(|i| p.fates(EventKind::CsrStatus, &host(i % 7), i / 7))
            .collect::<Vec<_>>()
    };
    let a = draw(seed);
    assert_eq!(draw(seed), a);
    assert_ne!(draw(seed.wrapping_add(1)), a);
    let share = |t| a.iter().filter(|x| **x == t).count() as f64 / a.len() as f64;
    for (t, p) in [
        (Timing::Early, 0.2),
        (Timing::Late, 0.2),
        (Timing::Never, 0.1),
        (Timing::InOrder, 0.3),
    ] {
        assert!((share(t) - p).abs() < 0.1, "{t:?}: {} vs {p}", share(t));
    }
    // 400 events, 30% of them twice: 520 copies expected (5 standard deviations either side).
    assert!(
        (475..=565).contains(&a.len()),
        "about 30% twice: {}",
        a.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seeded_chaotic_run_settles_and_delivers_every_drawn_copy() {
    let seed = tests::faults::seed_from_env();
    let hosts: Vec<String> = (1..=3).map(host).collect();
    let policy = DeliveryPolicy::seeded(seed).all(Rates {
        early: 0.25,
        concurrent: 0.25,
        late: 0.2,
        never: 0.05,
        twice: 0.3,
    });
    let (_stack, report) = rotate(&hosts, &policy).await;
    // Every copy was delivered (or lost) as the policy drew it for its event.
    let firsts: Vec<_> = report
        .deliveries
        .iter()
        .filter(|d| d.attempt == 0)
        .collect();
    assert!(
        firsts.len() >= hosts.len(),
        "at least each CSR status: {report:#?}"
    );
    for d in firsts {
        let drawn = policy.fates(d.kind, &d.key, d.nth);
        assert_eq!(
            drawn.get(d.copy as usize),
            Some(&d.timing),
            "seed {seed}: {d:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kill_switch_drops_a_handler_at_its_nth_call_and_the_retry_runs_it_again() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(1);
    enrolled(&stack, std::slice::from_ref(&h)).await;

    // CertCheck dies at its 3rd call: its future is dropped, no call follows.
    let switch = stack.plan.arm_kill(3, None, KillPoint::BeforeSending);
    let run = kill::run_killable(&switch, stack.cert_check(json!({}))).await;
    stack.plan.disarm();
    let Run::Killed(at) = run else {
        panic!("CertCheck finished before its 3rd call: {run:?}");
    };
    let calls = stack.recorder.totals();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.recorder.totals(),
        calls,
        "killed at {at}: nothing ran on"
    );
    assert_eq!(switch.calls(), 3);
    // The schedule fires again (EventBridge Scheduler's retry): this time it runs to the end.
    stack.cert_check(json!({})).await.unwrap();
    stack.ssm.wait_idle().await;
    let events = stack.bus.drain();
    let csr = events
        .iter()
        .find(|e| EventKind::of(e, &stack.config) == EventKind::CsrStatus)
        .expect("GenerateCsr status");

    // CertIssue dies after Private CA issued the certificate, before it recorded ISSUING.
    let crash = kill::deliver_with_crash(
        &stack,
        &stack.plan,
        csr,
        (1, Some("ACMPCA.IssueCertificate")),
        KillPoint::AfterApplying,
    )
    .await;
    assert_eq!(
        crash.killed_at.as_deref(),
        Some("ACMPCA.IssueCertificate"),
        "{crash:?}"
    );
    crash.retry.expect("the retry ran CertIssue to the end");
    assert_eq!(
        stack.capture.calls_of("ACMPCA.IssueCertificate"),
        2,
        "issued, then asked again by the retry"
    );
    assert_eq!(
        stack.pca.issued().len(),
        1,
        "the idempotency token gave back the same certificate"
    );
    stack.settle(Delivery::default()).await.unwrap();
    assert!(matches!(
        state_of(&stack, &h).await,
        RotationState::Deployed
    ));
}
