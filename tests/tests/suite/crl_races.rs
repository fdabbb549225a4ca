//! CRLs that cannot go backwards, end to end: S3 events delivered concurrently in either order
//! and replayed, an oversized CRL, a failing `ImportCrl`, CRLs of others on the anchor, and a
//! half-done import finished by the next delivery.

use serde_json::{json, Value};
use state::crl_ledger::{claim_effect, settle_effect, CrlClaim, CLAIM_LEASE};
use state::ports::{CrlLedger, FleetReader};
use state::record::{HostOverrides, RotationState};
use state::HostId;
use tests::emulators::ssm::HostSpec;
use tests::stack::{Delivery, LocalStack};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xc7a000 + i)
}

/// The trust anchor's CRLs as (CRL number, name, enabled), each checked against our CA.
fn anchor(stack: &LocalStack) -> Vec<(u128, String, bool)> {
    let ta = stack.config.roles_anywhere.trust_anchor_arn.clone();
    stack
        .rolesanywhere
        .crls_for(&ta)
        .iter()
        .map(|c| {
            let facts = pki::check_crl(&c.der, &stack.pca.ca_certificate_pem())
                .expect("the anchor holds our CA's CRLs");
            (
                facts.crl_number.to_u128().unwrap(),
                c.name.clone(),
                c.enabled,
            )
        })
        .collect()
}

/// Delivers `event` as Lambda's asynchronous retries would: again after an error, up to 50 times.
/// A local stack with host `i` enrolled and rotated once: the stack, the host, its ID and the
/// serial it runs.
async fn rotated_host(i: u64) -> (LocalStack, String, HostId, String) {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let h = host(i);
    stack
        .enrol_host(&h, &HostOverrides::default(), HostSpec::default())
        .await
        .unwrap();
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let id = HostId::parse(&h).unwrap();
    let record = stack.store.host(&id).await.unwrap().unwrap();
    let serial = record.current.unwrap().serial.unwrap();
    (stack, h, id, serial)
}

async fn deliver_until_answered(stack: &LocalStack, event: &Value) -> Value {
    for _ in 0..50 {
        match stack.deliver(event).await {
            Ok(Some(out)) => return out,
            Ok(None) => panic!("no rule took {event}"),
            Err(e) => {
                tracing::info!(error = %e, "retrying the event");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    panic!("the event was never answered")
}

/// Two CRL events delivered at the same time, `first` polled first.
async fn concurrently(stack: &LocalStack, first: &Value, second: &Value) -> (Value, Value) {
    tokio::join!(
        deliver_until_answered(stack, first),
        deliver_until_answered(stack, second)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_crl_events_in_either_order_and_replays_leave_one_crl_the_newest() {
    let stack = LocalStack::start(&[]).await.unwrap();
    let ours = format!(
        "cert-rotation-{}",
        crl_processor::ca_id(&stack.config.ca_arn)
    );
    let mut published = Vec::new();
    for _ in 0..6 {
        published.push(stack.pca.publish_crl().await.unwrap());
    }
    stack.bus.drain();
    let ev = |n: usize| published[n - 1].s3_event.clone();

    // Older first, then newer first, then newer first again on a non-empty anchor.
    for (first, second) in [(1, 2), (4, 3), (6, 5)] {
        let (a, b) = concurrently(&stack, &ev(first), &ev(second)).await;
        let newest = first.max(second) as u128;
        assert_eq!(
            anchor(&stack),
            [(newest, ours.clone(), true)],
            "after CRLs {first} and {second}: {a} {b}"
        );
    }
    // Replays, alone and concurrently with an older one: nothing moves back.
    let again = deliver_until_answered(&stack, &ev(6)).await;
    assert_eq!(again["outcome"], "alreadyImported", "{again}");
    let (a, b) = concurrently(&stack, &ev(2), &ev(6)).await;
    assert_eq!(a["outcome"], "refused", "{a}");
    assert!(a["reason"].as_str().unwrap().contains("not newer"), "{a}");
    assert_eq!(b["outcome"], "alreadyImported", "{b}");
    assert_eq!(anchor(&stack), [(6, ours.clone(), true)]);
    let calls = stack.capture.calls();
    assert_eq!(calls.get("RolesAnywhere.ImportCrl"), Some(&1), "{calls:?}");
    let entry = stack
        .store
        .crl_ledger(crl_processor::ca_id(&stack.config.ca_arn))
        .await
        .unwrap();
    assert_eq!((entry.applied.as_deref(), entry.claim), (Some("6"), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crl_over_300000_bytes_raises_an_alert_and_leaves_the_anchor_unchanged() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let before = anchor(&stack);
    assert_eq!(before.len(), 1);

    // A real CRL of our CA, number 2, listing enough serials to pass 301,000 bytes.
    let serials: Vec<String> = (1..=7_720u64).map(|i| format!("7{i:039x}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let der = stack.pca.crl_der_with_number(2, &refs);
    assert!(der.len() >= 301_000, "{} bytes", der.len());
    println!("oversized CRL: {} bytes, {} entries", der.len(), refs.len());
    let key = stack.pca.crl_key().unwrap();
    let event = stack.pca.put_crl_object(&key, &der).await.unwrap();
    stack.bus.drain();
    let out = deliver_until_answered(&stack, &event).await;
    assert_eq!(out["outcome"], "refused", "{out}");
    assert!(out["reason"].as_str().unwrap().contains("300000"), "{out}");
    assert_eq!(anchor(&stack), before, "the anchor keeps its CRL");
    let alerts = stack.inbox.messages().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].subject.contains("too large"), "{alerts:?}");
    assert!(alerts[0].message.contains("CRL_TOO_LARGE"), "{alerts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_our_enabled_crl_is_replaced_and_a_failed_import_alerts() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    let ta = stack.config.roles_anywhere.trust_anchor_arn.clone();
    let client = aws_sdk_rolesanywhere::Client::from_conf(
        aws_sdk_rolesanywhere::config::Builder::from(&tests::aws::sdk_config(
            &stack.rolesanywhere.url(),
            false,
        ))
        .build(),
    );
    // An operator's CRL (same CA, another name) is on the anchor first.
    let operator = stack.pca.crl_der_with_number(1, &[]);
    client
        .import_crl()
        .name("operator-list")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            operator.clone(),
        ))
        .trust_anchor_arn(&ta)
        .enabled(true)
        .send()
        .await
        .unwrap();
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let ours = format!(
        "cert-rotation-{}",
        crl_processor::ca_id(&stack.config.ca_arn)
    );
    assert_eq!(
        anchor(&stack),
        [
            (1, "operator-list".to_owned(), true),
            (1, ours.clone(), true)
        ]
    );
    // Ours disabled by an operator: not overwritten; the import of a new one fails (two CRLs
    // already), which raises an alert.
    let our_id = stack
        .rolesanywhere
        .crls_for(&ta)
        .into_iter()
        .find(|c| c.name == ours)
        .unwrap()
        .crl_id;
    client.disable_crl().crl_id(&our_id).send().await.unwrap();
    let p = stack.pca.publish_crl().await.unwrap();
    stack.bus.drain();
    let out = deliver_until_answered(&stack, &p.s3_event).await;
    assert_eq!(out["outcome"], "refused", "{out}");
    assert!(
        out["reason"].as_str().unwrap().contains("ImportCrl"),
        "{out}"
    );
    assert_eq!(
        anchor(&stack),
        [
            (1, "operator-list".to_owned(), true),
            (1, ours.clone(), false)
        ],
        "neither CRL touched"
    );
    let alerts = stack.inbox.messages().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].message.contains("CRL_IMPORT_FAILED"),
        "{alerts:?}"
    );
    // The claim was given back: once the operator deletes their CRL, the retry imports.
    let operator_id = stack
        .rolesanywhere
        .crls_for(&ta)
        .into_iter()
        .find(|c| c.name == "operator-list")
        .unwrap()
        .crl_id;
    client
        .delete_crl()
        .crl_id(&operator_id)
        .send()
        .await
        .unwrap();
    let out = deliver_until_answered(&stack, &p.s3_event).await;
    assert_eq!(out["outcome"], "imported", "{out}");
    assert_eq!(
        anchor(&stack),
        [(1, ours.clone(), false), (2, ours.clone(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_are_marked_revoked_when_an_earlier_attempt_stopped_half_way() {
    let (stack, h, id, serial) = rotated_host(1).await;
    // Revoked at the CA outside the service; the CRL reached the anchor and the ledger, but
    // the attempt stopped before marking the host.
    use rotation::ca::CertificateAuthority;
    stack
        .check
        .ca
        .revoke(&serial, "KEY_COMPROMISE")
        .await
        .unwrap();
    let p = stack.pca.publish_crl().await.unwrap();
    stack.bus.drain();
    let ca = crl_processor::ca_id(&stack.config.ca_arn).to_owned();
    let entry = stack.store.crl_ledger(&ca).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let claim = CrlClaim {
        number: p.number.to_string(),
        token: "earlier".into(),
        until: now + CLAIM_LEASE,
    };
    assert!(stack
        .store
        .write_crl_ledger(&ca, &claim_effect(&entry, &claim))
        .await
        .unwrap());
    assert!(stack
        .store
        .write_crl_ledger(
            &ca,
            &settle_effect(entry.version + 1, "earlier", &claim.number, "x", now)
        )
        .await
        .unwrap());
    let out = deliver_until_answered(&stack, &p.s3_event).await;
    assert_eq!(out["outcome"], "alreadyImported", "{out}");
    assert_eq!(out["revoked_hosts"], json!([h]), "{out}");
    let r = stack.store.host(&id).await.unwrap().unwrap();
    assert!(matches!(r.state, RotationState::Revoked { .. }), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serial_written_in_the_original_samples_notation_is_matched_on_the_crl() {
    let (mut stack, h, id, serial) = rotated_host(2).await;
    // The original sample's item: upper-case, colon-separated serial, no state or version.
    let legacy = serial.to_ascii_uppercase();
    let dynamodb = tests::aws::dynamodb(&stack.moto.url());
    dynamodb
        .put_item()
        .table_name(&stack.config.table_name)
        .item(
            "hostID",
            aws_sdk_dynamodb::types::AttributeValue::S(h.clone()),
        )
        .item(
            "serial",
            aws_sdk_dynamodb::types::AttributeValue::S(legacy.clone()),
        )
        .item(
            "expiry",
            aws_sdk_dynamodb::types::AttributeValue::S("2099-01-01 00:00:00".into()),
        )
        .send()
        .await
        .unwrap();
    use rotation::ca::CertificateAuthority;
    stack
        .check
        .ca
        .revoke(&serial, "KEY_COMPROMISE")
        .await
        .unwrap();
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.store.host(&id).await.unwrap().unwrap();
    let RotationState::Revoked { serial: marked, .. } = &r.state else {
        panic!("{legacy} on the item is {serial} on the CRL: {:?}", r.state)
    };
    assert_eq!(
        pki::normalize_serial(marked),
        pki::normalize_serial(&serial)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_host_can_be_revoked_and_its_serial_reaches_the_anchor() {
    let (mut stack, h, id, serial) = rotated_host(3).await;
    // The next rotation fails: the host's CSR names another host.
    stack.tamper_openssl(&h, "CN=mi-", "CN=xx-").unwrap();
    stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.store.host(&id).await.unwrap().unwrap();
    assert!(matches!(r.state, RotationState::Failed { .. }), "{r:?}");

    let out = stack
        .cert_check(json!({"revoke": {"host": h, "reason": "KEY_COMPROMISE"}}))
        .await
        .unwrap();
    assert!(
        out["revoked"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains(&serial),
        "{out}"
    );
    let r = stack.store.host(&id).await.unwrap().unwrap();
    assert_eq!(
        r.state,
        RotationState::Revoked {
            serial: serial.clone(),
            held: Some("KEY_COMPROMISE".into())
        }
    );
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let ta = stack.config.roles_anywhere.trust_anchor_arn.clone();
    let crls = stack.rolesanywhere.crls_for(&ta);
    assert_eq!(crls.len(), 1);
    let facts = pki::check_crl(&crls[0].der, &stack.pca.ca_certificate_pem()).unwrap();
    assert!(facts.revoked_serials.contains(&serial), "{facts:?}");
}
