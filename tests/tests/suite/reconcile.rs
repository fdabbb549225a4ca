//! The reconciler on the local stack: a rotation whose event was lost is moved on from the truth
//! (Run Command's invocation, Private CA's certificate) by the reconcile pass, not failed; and
//! the pass reads only the hosts in flight or failed.
//!
//! An event is lost by draining the bus without delivering it. The pass runs at a time past the
//! in-flight timeout, as its schedule would fire an hour later.

use serde_json::json;
use state::item::item_from_record;
use state::ports::FleetReader;
use state::record::{Attempts, DeployedCert, HostOverrides, RotationState};
use state::{HostId, HostRecord};
use tests::emulators::ssm::HostSpec;
use tests::faults::delivery::EventKind;
use tests::faults::kill::{self, KillPoint, Run};
use tests::faults::FaultyStack;

use crate::common::{reconcile_pass, settle_losing};
use tests::stack::{Delivery, LocalStack};
use time::{Duration, OffsetDateTime};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x5ec0000 + i)
}

/// Past the in-flight timeout (60 minutes), before the hard limit of a pending command (75).
fn later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::minutes(65)
}

/// The serial of the certificate the host runs, read from its certificate file.
fn serial_on_host(stack: &LocalStack, h: &str) -> String {
    let f = stack.host_files(h, &HostOverrides::default());
    let pem = std::fs::read_to_string(&f.cert).unwrap_or_else(|e| panic!("{h}: {e}"));
    pki::parse_certificate_pem(&pem).unwrap().serial
}

fn assert_deployed_with_the_hosts_serial(stack: &LocalStack, h: &str, r: &HostRecord) {
    assert_eq!(r.state, RotationState::Deployed, "{h}: {r:?}");
    assert_eq!(
        r.current.as_ref().and_then(|c| c.serial.clone()),
        Some(serial_on_host(stack, h)),
        "{h}: the table names the serial the host runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_generate_csr_status_is_issued_by_the_reconcile_pass() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(1);
    stack
        .enrol_host(&h, &HostOverrides::default(), HostSpec::default())
        .await
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    let lost = settle_losing(&mut stack, EventKind::CsrStatus).await;
    assert_eq!(lost, 1, "GenerateCsr's status event");
    assert!(matches!(
        stack.record(&h).await.state,
        RotationState::CsrRequested { .. }
    ));

    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.reconciled.len(), 1, "{s:?}");
    assert!(
        s.reconciled[0]
            .reason
            .starts_with("GenerateCsr had finished (Success): certificate arn:"),
        "{s:?}"
    );
    assert!(s.failed.is_empty(), "{s:?}");
    assert!(matches!(
        stack.record(&h).await.state,
        RotationState::Issuing { .. }
    ));
    stack.settle(Delivery::default()).await.unwrap();
    assert_deployed_with_the_hosts_serial(&stack, &h, &stack.record(&h).await);
    assert_eq!(stack.pca.issued().len(), 1);
    assert!(stack.inbox.messages().unwrap().is_empty(), "no alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_issuance_event_is_deployed_by_the_reconcile_pass() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(2);
    stack
        .enrol_host(&h, &HostOverrides::default(), HostSpec::default())
        .await
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    // GenerateCsr's status reaches CertIssue; Private CA's issuance event is lost.
    let lost = settle_losing(&mut stack, EventKind::Issuance).await;
    assert_eq!(lost, 1, "the issuance event");
    assert!(matches!(
        stack.record(&h).await.state,
        RotationState::Issuing { .. }
    ));

    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.reconciled.len(), 1, "{s:?}");
    assert!(
        s.reconciled[0]
            .reason
            .starts_with("the certificate had been issued: DeployCert"),
        "{s:?}"
    );
    stack.settle(Delivery::default()).await.unwrap();
    assert_deployed_with_the_hosts_serial(&stack, &h, &stack.record(&h).await);
    assert!(stack.inbox.messages().unwrap().is_empty(), "no alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_deploy_cert_status_after_success_on_the_host_is_recorded_deployed() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(3);
    stack
        .enrol_host(&h, &HostOverrides::default(), HostSpec::default())
        .await
        .unwrap();
    // A first rotation, whole.
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let first = stack.record(&h).await;
    assert_deployed_with_the_hosts_serial(&stack, &h, &first);
    let old_serial = first.current.unwrap().serial.unwrap();

    // A second one whose DeployCert succeeds on the host, but its status event is lost.
    stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    let lost = settle_losing(&mut stack, EventKind::DeployStatus).await;
    assert_eq!(lost, 1, "DeployCert's status event");
    let new_serial = serial_on_host(&stack, &h);
    assert_ne!(new_serial, old_serial, "the host swapped to the new pair");
    let stuck = stack.record(&h).await;
    assert!(
        matches!(stuck.state, RotationState::Deploying { .. }),
        "{stuck:?}"
    );
    assert_eq!(
        stuck.current.unwrap().serial.as_deref(),
        Some(old_serial.as_str()),
        "the table still names the old serial"
    );

    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.reconciled.len(), 1, "{s:?}");
    assert_eq!(
        s.reconciled[0].reason,
        format!("DeployCert had finished (Success): deployed, serial {new_serial}")
    );
    assert!(s.failed.is_empty(), "{s:?}");
    let after = stack.record(&h).await;
    assert_deployed_with_the_hosts_serial(&stack, &h, &after);
    assert_eq!(
        after.current.unwrap().serial.as_deref(),
        Some(new_serial.as_str())
    );
    assert!(stack.inbox.messages().unwrap().is_empty(), "no alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_cert_sent_but_never_recorded_is_found_and_recorded_deployed() {
    let mut stack = FaultyStack::start(&[]).await.unwrap();
    let h = host(5);
    stack
        .enrol_host(&h, &HostOverrides::default(), HostSpec::default())
        .await
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    // CertDeploy dies right after Run Command accepted its DeployCert (a Lambda timeout before
    // the answer came back), and every retry of it is lost; so is DeployCert's status event.
    let mut killed = None;
    for _round in 0..50 {
        stack.ssm.wait_idle().await;
        let events = stack.bus.drain();
        if events.is_empty() {
            break;
        }
        for event in events {
            match EventKind::of(&event, &stack.config) {
                EventKind::Issuance if killed.is_none() => {
                    let switch =
                        stack
                            .plan
                            .arm_kill(1, Some("SSM.SendCommand"), KillPoint::AfterApplying);
                    let run = kill::run_killable(&switch, stack.deliver(&event)).await;
                    stack.plan.disarm();
                    killed = Some(matches!(run, Run::Killed(ref op) if op == "SSM.SendCommand"));
                }
                EventKind::Issuance | EventKind::DeployStatus => {}
                _ => {
                    if stack.deliver(&event).await.is_err() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        stack.bus.push(event);
                    }
                }
            }
        }
    }
    assert_eq!(killed, Some(true), "CertDeploy was killed in SendCommand");
    let stuck = stack.record(&h).await;
    assert!(
        matches!(
            stuck.state,
            RotationState::Deploying {
                command_id: None,
                ..
            }
        ),
        "claimed, its command never recorded: {stuck:?}"
    );
    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.reconciled.len(), 1, "{s:?}");
    assert!(s.failed.is_empty(), "{s:?}");
    assert!(
        s.reconciled[0]
            .reason
            .starts_with("DeployCert had finished (Success)"),
        "{s:?}"
    );
    let after = stack.record(&h).await;
    assert_deployed_with_the_hosts_serial(&stack, &h, &after);
    assert!(stack.inbox.messages().unwrap().is_empty(), "no alert");
}

/// A deployed host of ours, not due for days.
fn deployed(h: &str, now: OffsetDateTime) -> HostRecord {
    HostRecord {
        host: HostId::parse(h).unwrap(),
        overrides: HostOverrides::default(),
        version: Some(4),
        state: RotationState::Deployed,
        state_since: Some(now),
        current: Some(DeployedCert {
            serial: Some("0a:0b".into()),
            not_before: Some(now),
            not_after: now + Duration::days(7),
            renew_at: Some(now + Duration::days(4)),
            cert_arn: None,
        }),
        attempts: Attempts::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconcile_pass_reads_only_the_hosts_in_flight_or_failed() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    // Two hosts whose GenerateCsr status events are lost ...
    let stuck = [host(10), host(11)];
    for h in &stuck {
        stack
            .enrol_host(h, &HostOverrides::default(), HostSpec::default())
            .await
            .unwrap();
    }
    stack.cert_check(json!({})).await.unwrap();
    assert_eq!(settle_losing(&mut stack, EventKind::CsrStatus).await, 2);
    // ... among 200 deployed hosts that need nothing.
    let now = OffsetDateTime::now_utc();
    let client = tests::aws::dynamodb(&stack.moto.url());
    let items = (0..200u64).map(|i| {
        state::dynamo::mapping::sdk_item(&item_from_record(&deployed(&host(1000 + i), now)))
    });
    tests::table::put_items(&client, &stack.config.table_name, items)
        .await
        .unwrap();
    assert_eq!(stack.store.all_hosts().await.unwrap().records.len(), 202);

    let scans = |stack: &LocalStack| {
        stack
            .recorder
            .snapshot()
            .get("CertCheck")
            .and_then(|ops| ops.get("DynamoDB.Scan").copied())
            .unwrap_or(0)
    };
    let scans_before = scans(&stack);
    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.items_read, 2, "only the two stuck hosts are read: {s:?}");
    assert_eq!(scans(&stack), scans_before, "no Scan");
    let mut moved: Vec<&str> = s.reconciled.iter().map(|n| n.host.as_str()).collect();
    moved.sort();
    assert_eq!(moved, [stuck[0].as_str(), stuck[1].as_str()], "{s:?}");

    // A full run reads the whole table.
    let full = stack.cert_check(json!({"dryRun": true})).await.unwrap();
    assert_eq!(full["itemsRead"], 202, "{full}");
    println!(
        "items read: reconcile pass {}, full run {}",
        s.items_read, full["itemsRead"]
    );

    stack.settle(Delivery::default()).await.unwrap();
    for h in &stuck {
        assert_deployed_with_the_hosts_serial(&stack, h, &stack.record(h).await);
    }
    // Settled hosts leave the index: the next pass reads nothing.
    let s = reconcile_pass(&stack, later()).await;
    assert_eq!(s.items_read, 0, "{s:?}");
}
