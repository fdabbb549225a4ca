//! Revocation that sticks, end to end: a revocation in flight cancels the rotation and revokes
//! its pending certificate (later events of it change nothing); the reason holds the host until
//! an operator releases it, or re-issues it; a deployment revokes the certificate it replaced
//! and leaves no previous pair on the host; a certificate that never reached its host is
//! revoked; a CRL entry's reason code holds the host as an operator's would.

use serde_json::{json, Value};
use state::record::{HostOverrides, RotationState};
use state::HostPath;
use tests::emulators::ssm::HostSpec;
use tests::faults::delivery::EventKind;
use tests::stack::{Delivery, LocalStack};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x5e7000 + i)
}

/// Host `i`'s paths: host 0 keeps its certificate and key in one directory (published names
/// are symlinks into generations), the others in two (the stack's defaults).
fn layout(i: u64) -> HostOverrides {
    if i != 0 {
        return HostOverrides::default();
    }
    let p = |s: &str| Some(HostPath::parse("path", s).unwrap());
    HostOverrides {
        cert_path: p("/srv/pki/pair"),
        key_path: p("/srv/pki/pair"),
        cacert_path: p("/srv/pki/ca"),
        ..HostOverrides::default()
    }
}

/// A local stack with hosts `0..n` enrolled and rotated once.
async fn rotated(n: u64) -> LocalStack {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    for i in 0..n {
        stack
            .enrol_host(&host(i), &layout(i), HostSpec::default())
            .await
            .unwrap();
    }
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    stack
}

async fn serial(stack: &LocalStack, h: &str) -> String {
    stack.record(h).await.current.unwrap().serial.unwrap()
}

/// The serial as the PCA emulator records it (hex without separators).
fn bare(serial: &str) -> String {
    pki::normalize_serial(serial).unwrap().replace(':', "")
}

/// The reasons the PCA emulator recorded for `serial`, in order.
fn revocations(stack: &LocalStack, serial: &str) -> Vec<String> {
    let bare = bare(serial);
    stack
        .pca
        .revoked()
        .into_iter()
        .filter(|r| r.serial.trim_start_matches('0') == bare.trim_start_matches('0'))
        .map(|r| r.reason)
        .collect()
}

/// Delivers events as the stack's rules do until the system is quiet, holding back those of
/// `held`'s kind (returned, undelivered) and keeping a copy of every issuance event delivered.
async fn settle_holding(stack: &mut LocalStack, held: EventKind) -> (Vec<Value>, Vec<Value>) {
    let (mut kept, mut issuances) = (Vec::new(), Vec::new());
    for _round in 0..50 {
        stack.ssm.wait_idle().await;
        let events = stack.bus.drain();
        if events.is_empty() {
            return (kept, issuances);
        }
        for event in events {
            let kind = EventKind::of(&event, &stack.config);
            if kind == held {
                kept.push(event);
                continue;
            }
            if kind == EventKind::Issuance {
                issuances.push(event.clone());
            }
            if stack.deliver(&event).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                stack.bus.push(event);
            }
        }
    }
    panic!("events never settled")
}

/// Delivers `event` until a handler answers it (Lambda's retries of a not-ready event).
async fn deliver(stack: &LocalStack, event: &Value) -> Value {
    for _ in 0..50 {
        // An issuance event is handed to CertDeploy as one EventBridge event (which it takes
        // besides its queue's batches), so the answer is the event's own outcome.
        let answer = if event["source"] == "aws.acm-pca" {
            cert_deploy::handle(
                &stack.deploy,
                lambda_runtime::LambdaEvent {
                    payload: event.clone(),
                    context: Default::default(),
                },
            )
            .await
            .map(Some)
            .map_err(|e| e.message)
        } else {
            stack.deliver(event).await.map_err(|e| e.to_string())
        };
        match answer {
            Ok(Some(out)) => return out,
            Ok(None) => panic!("no rule took {event}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("the event was never answered")
}

fn skipped_reason(summary: &Value, h: &str) -> String {
    summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["host"] == h)
        .map(|n| n["reason"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{h} not skipped: {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_while_deploying_revokes_the_pending_certificate_and_later_events_change_nothing()
{
    let mut stack = rotated(1).await;
    let h = host(0);
    let old = serial(&stack, &h).await;
    stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    // DeployCert ran on the host; its status event is held back.
    let (deploy_status, issuances) = settle_holding(&mut stack, EventKind::DeployStatus).await;
    assert_eq!(deploy_status.len(), 1);
    let RotationState::Deploying { pending, .. } = stack.record(&h).await.state else {
        panic!("not deploying")
    };
    let new = pending.serial.unwrap();

    let out = stack
        .cert_check(json!({"revoke": {"host": h, "reason": "KEY_COMPROMISE"}}))
        .await
        .unwrap();
    let note = out["revoked"]["reason"].as_str().unwrap();
    assert!(
        note.contains(&old) && note.contains(&new) && note.contains("cancelled"),
        "{out}"
    );
    let revoked = RotationState::Revoked {
        serial: old.clone(),
        held: Some("KEY_COMPROMISE".into()),
    };
    assert_eq!(stack.record(&h).await.state, revoked);
    assert_eq!(revocations(&stack, &old), ["KEY_COMPROMISE"]);
    assert_eq!(
        revocations(&stack, &new),
        ["KEY_COMPROMISE"],
        "the pending one too"
    );

    // The held DeployCert success, and the issuance replayed: neither resurrects the rotation.
    let answer = deliver(&stack, &deploy_status[0]).await;
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    for issuance in &issuances {
        let answer = deliver(&stack, issuance).await;
        assert_ne!(answer["outcome"], "deploySent", "{answer}");
    }
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.record(&h).await;
    assert_eq!(r.state, revoked);
    assert_eq!(r.current.unwrap().serial.as_deref(), Some(old.as_str()));
    assert_eq!(
        revocations(&stack, &new),
        ["KEY_COMPROMISE"],
        "revoked once"
    );
    // Held: the schedule does not start it.
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([]), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_compromise_holds_the_host_until_an_operator_releases_it() {
    let mut stack = rotated(1).await;
    let h = host(0);
    let old = serial(&stack, &h).await;
    stack
        .cert_check(json!({"revoke": {"host": h, "reason": "KEY_COMPROMISE"}}))
        .await
        .unwrap();
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([]), "{s}");
    assert!(skipped_reason(&s, &h).contains("held"), "{s}");
    // Not even a forced rotation starts a held host.
    let s = stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    assert_eq!(s["started"], json!([]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    assert!(matches!(
        stack.record(&h).await.state,
        RotationState::Revoked { held: Some(_), .. }
    ));

    let out = stack
        .cert_check(json!({"release": {"host": h}}))
        .await
        .unwrap();
    assert!(
        out["released"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("KEY_COMPROMISE"),
        "{out}"
    );
    let again = stack
        .cert_check(json!({"release": {"host": h}}))
        .await
        .unwrap();
    assert!(
        again["error"]
            .as_str()
            .unwrap_or("")
            .contains("is not held"),
        "{again}"
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([h]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    let r = stack.record(&h).await;
    assert_eq!(r.state, RotationState::Deployed);
    assert_ne!(r.current.unwrap().serial.unwrap(), old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_superseded_revocation_is_re_issued_on_the_next_run() {
    let mut stack = rotated(1).await;
    let h = host(0);
    let old = serial(&stack, &h).await;
    stack
        .cert_check(json!({"revoke": {"host": h, "reason": "SUPERSEDED"}}))
        .await
        .unwrap();
    assert_eq!(
        stack.record(&h).await.state,
        RotationState::Revoked {
            serial: old.clone(),
            held: None
        }
    );
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([h]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();
    assert_eq!(stack.record(&h).await.state, RotationState::Deployed);
    assert_ne!(serial(&stack, &h).await, old);
    assert_eq!(revocations(&stack, &old), ["SUPERSEDED"], "revoked once");
}

/// Every regular file under `dir` (not following symlinks).
fn regular_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.path().symlink_metadata().unwrap();
        if md.is_dir() {
            regular_files(&e.path(), out);
        } else if md.is_file() {
            out.push(e.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_revokes_the_previous_certificate_and_removes_it_from_the_host() {
    let mut stack = rotated(2).await;
    for i in 0..2 {
        let h = host(i);
        let f = stack.host_files(&h, &layout(i));
        let old = serial(&stack, &h).await;
        let old_key = std::fs::read(&f.key).unwrap();
        let old_cert = std::fs::read(&f.cert).unwrap();
        stack
            .cert_check(json!({"hosts": [h], "force": true}))
            .await
            .unwrap();
        stack.settle(Delivery::default()).await.unwrap();
        let new = serial(&stack, &h).await;
        assert_ne!(new, old);
        assert_eq!(revocations(&stack, &old), ["SUPERSEDED"], "{h}");
        assert!(
            revocations(&stack, &new).is_empty(),
            "{h}: the new one lives"
        );
        // No .prev name, and no file anywhere on the host holding the old key or certificate.
        for prev in [
            f.key.with_extension("key.prev"),
            f.cert.with_extension("crt.prev"),
        ] {
            assert!(prev.symlink_metadata().is_err(), "{}", prev.display());
        }
        let mut files = Vec::new();
        regular_files(&f.root, &mut files);
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            assert!(bytes != old_key && bytes != old_cert, "{}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_that_never_reached_its_host_is_revoked() {
    let mut stack = rotated(1).await;
    let h = host(0);
    let old = serial(&stack, &h).await;
    stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    // CertIssue recorded ISSUING; the issuance event is held back.
    let (issuance, _) = settle_holding(&mut stack, EventKind::Issuance).await;
    assert_eq!(issuance.len(), 1);
    let RotationState::Issuing { cert_arn, .. } = stack.record(&h).await.state else {
        panic!("not issuing")
    };
    // Private CA is still issuing it: the rotation is cancelled all the same.
    let out = stack
        .cert_check(json!({"revoke": {"host": h, "reason": "KEY_COMPROMISE"}}))
        .await
        .unwrap();
    assert!(
        out["revoked"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("still being issued"),
        "{out}"
    );
    let orphan = stack
        .pca
        .issued()
        .into_iter()
        .find(|c| c.arn == cert_arn)
        .unwrap();
    assert!(revocations(&stack, &orphan.serial).is_empty());

    let answer = deliver(&stack, &issuance[0]).await;
    assert_eq!(answer["outcome"], "retired", "{answer}");
    assert_eq!(revocations(&stack, &orphan.serial), ["SUPERSEDED"]);
    // The host's own certificate was revoked by the operator, and it stays held.
    assert_eq!(revocations(&stack, &old), ["KEY_COMPROMISE"]);
    assert_eq!(
        stack.record(&h).await.state,
        RotationState::Revoked {
            serial: old,
            held: Some("KEY_COMPROMISE".into())
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crl_entry_holds_the_host_by_its_reason_code() {
    use rotation::ca::CertificateAuthority;
    let mut stack = rotated(2).await;
    let (compromised, replaced) = (host(0), host(1));
    // Revoked at the CA outside the service.
    for (h, reason) in [(&compromised, "KEY_COMPROMISE"), (&replaced, "SUPERSEDED")] {
        let s = serial(&stack, h).await;
        stack.check.ca.revoke(&s, reason).await.unwrap();
    }
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    assert!(matches!(
        stack.record(&compromised).await.state,
        RotationState::Revoked { held: Some(ref r), .. } if r == "KEY_COMPROMISE"
    ));
    assert!(matches!(
        stack.record(&replaced).await.state,
        RotationState::Revoked { held: None, .. }
    ));
    let s = stack.cert_check(json!({})).await.unwrap();
    assert_eq!(s["started"], json!([replaced]), "{s}");
}
