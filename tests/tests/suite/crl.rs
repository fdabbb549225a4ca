//! Revocation and CRLs end to end: CertCheck's revoke request → Private CA → CRL in S3 →
//! CRLProcessor → the Roles Anywhere trust anchor; re-issue; refusals.

use serde_json::json;
use state::ports::{Enroller, FleetReader};
use state::record::{HostOverrides, RotationState};
use state::HostId;
use tests::emulators::ssm::HostSpec;
use tests::stack::{Delivery, LocalStack};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0xc71000 + i)
}

async fn deployed_fleet(n: u64) -> LocalStack {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    for i in 0..n {
        stack
            .enrol_host(&host(i), &HostOverrides::default(), HostSpec::default())
            .await
            .unwrap();
    }
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    stack
}

async fn serial_of(stack: &LocalStack, h: &str) -> String {
    let r = stack
        .store
        .host(&HostId::parse(h).unwrap())
        .await
        .unwrap()
        .unwrap();
    r.current.unwrap().serial.unwrap()
}

/// The trust anchor's CRLs, each checked against our CA.
fn anchor_crls(stack: &LocalStack) -> Vec<pki::CrlFacts> {
    let ta = stack.config.roles_anywhere.trust_anchor_arn.clone();
    stack
        .rolesanywhere
        .crls_for(&ta)
        .iter()
        .map(|c| {
            pki::check_crl(&c.der, &stack.pca.ca_certificate_pem())
                .expect("the anchor holds our CA's CRL")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_host_reaches_the_anchor_and_is_reissued() {
    let mut stack = deployed_fleet(2).await;
    let (victim, other) = (host(0), host(1));
    let old_serial = serial_of(&stack, &victim).await;
    let other_serial = serial_of(&stack, &other).await;
    let old_key = std::fs::read(stack.host_files(&victim, &HostOverrides::default()).key).unwrap();

    let out = stack
        .cert_check(json!({"revoke": {"host": victim, "reason": "SUPERSEDED"}}))
        .await
        .unwrap();
    assert!(
        out["revoked"]["reason"]
            .as_str()
            .unwrap()
            .contains(&old_serial),
        "{out}"
    );
    let r = stack
        .store
        .host(&HostId::parse(&victim).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.state,
        RotationState::Revoked {
            serial: old_serial.clone(),
            held: None
        }
    );

    // Private CA writes the CRL; S3 announces it; CRLProcessor imports it.
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let crls = anchor_crls(&stack);
    assert_eq!(crls.len(), 1, "exactly one CRL on the trust anchor");
    assert!(
        crls[0].revoked_serials.contains(&old_serial),
        "{:?}",
        crls[0].revoked_serials
    );
    assert!(!crls[0].revoked_serials.contains(&other_serial));

    // The next run re-issues the revoked host: new key, new serial, a pair that verifies.
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([victim]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    let new_serial = serial_of(&stack, &victim).await;
    assert_ne!(new_serial, old_serial);
    let f = stack.host_files(&victim, &HostOverrides::default());
    assert_ne!(std::fs::read(&f.key).unwrap(), old_key, "new key");
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            f.chain.to_str().unwrap(),
            f.cert.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serial_of(&stack, &other).await,
        other_serial,
        "the other host is untouched"
    );
    let alerts = stack.inbox.messages().unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "one alert: the operator's revocation: {alerts:?}"
    );
    assert!(alerts[0].subject.contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_crls_leave_one_crl_holding_the_newest() {
    let mut stack = deployed_fleet(1).await;
    for _ in 0..5 {
        stack.pca.publish_crl().await.unwrap();
        stack.settle(Delivery::default()).await.unwrap();
    }
    let crls = anchor_crls(&stack);
    assert_eq!(
        crls.len(),
        1,
        "UpdateCrl replaces; ImportCrl only the first time"
    );
    assert_eq!(
        crls[0].crl_number.to_u128(),
        Some(stack.pca.last_crl_number() as u128)
    );
    let calls = stack.capture.calls();
    assert_eq!(calls.get("RolesAnywhere.ImportCrl"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("RolesAnywhere.UpdateCrl"), Some(&4), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_replayed_corrupt_and_non_crl_objects_are_refused() {
    let mut stack = deployed_fleet(1).await;
    stack.pca.publish_crl().await.unwrap();
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let before: Vec<Vec<u8>> = anchor_crls(&stack).into_iter().map(|c| c.der).collect();
    assert_eq!(before.len(), 1);
    let key = stack.pca.crl_key().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "foreign CA, same name",
            stack.pca.foreign_crl_der(),
            "CRL refused",
        ),
        (
            "foreign CA, other name",
            stack.pca.foreign_crl_der_other_name(),
            "CRL refused",
        ),
        (
            "replayed older CRL",
            stack.pca.crl_der_with_number(1, &[]),
            "not newer",
        ),
        (
            "corrupt object",
            b"\x30\x82\x01\x00garbage".to_vec(),
            "CRL refused",
        ),
    ];
    for (what, body, why) in &cases {
        let outcomes = stack.outcomes.len();
        stack.pca.put_crl_object(&key, body).await.unwrap();
        stack.settle(Delivery::default()).await.unwrap();
        let outcome = &stack.outcomes[outcomes];
        assert_eq!(outcome["outcome"], "refused", "{what}: {outcome}");
        assert!(
            outcome["reason"].as_str().unwrap().contains(why),
            "{what}: {outcome}"
        );
    }
    // A non-CRL object under the prefix: ignored, no alert.
    let outcomes = stack.outcomes.len();
    stack
        .pca
        .put_crl_object("crl/README.txt", b"hello")
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(stack.outcomes[outcomes]["outcome"], "ignored");

    let after: Vec<Vec<u8>> = anchor_crls(&stack).into_iter().map(|c| c.der).collect();
    assert_eq!(after, before, "the trust anchor is unchanged");
    let alerts = stack.inbox.messages().unwrap();
    assert_eq!(
        alerts.len(),
        cases.len(),
        "one alert per refused CRL: {alerts:?}"
    );
    assert!(alerts.iter().all(|a| a.subject.contains("CRL refused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_outside_the_prefix_makes_no_roles_anywhere_call() {
    let stack = LocalStack::start(&[]).await.unwrap();
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/events/s3-object-created-crl.json"
    ))
    .unwrap();
    event["detail"]["bucket"]["name"] = json!(tests::stack::CRL_BUCKET);
    event["detail"]["object"]["key"] = json!("exports/11223344.crl");
    let out = crl_processor::handle(
        &stack.crl,
        lambda_runtime::LambdaEvent {
            payload: event,
            context: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(out["outcome"], "ignored", "{out}");
    assert!(out["reason"]
        .as_str()
        .unwrap()
        .contains("outside the CRL prefix"));
    let calls = stack.recorder.snapshot();
    assert!(
        !calls.contains_key("CRLProcessor"),
        "no AWS call at all: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_revocation_requests_change_nothing() {
    let stack = deployed_fleet(1).await;
    stack
        .store
        .enrol(&HostId::parse(&host(9)).unwrap(), &HostOverrides::default())
        .await
        .unwrap();
    for (payload, why) in [
        (
            json!({"revoke": {"host": host(5), "reason": "KEY_COMPROMISE"}}),
            "not enrolled",
        ),
        (
            json!({"revoke": {"host": host(9), "reason": "KEY_COMPROMISE"}}),
            "no certificate to revoke",
        ),
        (
            json!({"revoke": {"host": host(0), "reason": "BECAUSE"}}),
            "invalid revocation reason",
        ),
        (
            json!({"revoke": {"host": "mi-1; reboot", "reason": "KEY_COMPROMISE"}}),
            "managed-node ID",
        ),
    ] {
        let out = stack.cert_check(payload).await.unwrap();
        assert!(out["error"].as_str().unwrap_or("").contains(why), "{out}");
    }
    assert_eq!(
        stack.capture.calls().get("ACMPCA.RevokeCertificate"),
        None,
        "nothing revoked"
    );
    let r = stack
        .store
        .host(&HostId::parse(&host(0)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, RotationState::Deployed);
}
