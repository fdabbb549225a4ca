//! Least privilege you can check: each function's IAM role in the template allows exactly the AWS
//! actions that function's code calls — derived by running the scenarios that reach every call
//! (rotation, offline host, failed deployment, forced rotation, revocation, CRL import) with an
//! SDK interceptor on each function's clients — no more, no fewer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use serde_yaml::Value;
use state::record::HostOverrides;
use tests::emulators::ssm::HostSpec;
use tests::faults::delivery::EventKind;

use crate::common::{reconcile_pass, settle_losing};
use tests::stack::{Delivery, LocalStack};

/// Statements Lambda itself uses with a function's role, never the function's code: writing its
/// logs, and the `Service…` ones (a destination's PutEvents, an event source mapping's queue reads).
fn used_by_lambda(sid: Option<&str>) -> bool {
    sid.is_some_and(|s| s == "WriteOwnLogs" || s.starts_with("Service"))
}

/// The template's role actions per function, leaving out the statements Lambda itself uses.
fn template_actions() -> BTreeMap<String, BTreeSet<String>> {
    let template = tests::table::template().unwrap();
    let mut out = BTreeMap::new();
    for f in ["CertCheck", "CertIssue", "CertDeploy", "CRLProcessor"] {
        let role = &template["Resources"][format!("{f}Role").as_str()]["Properties"];
        let mut actions = BTreeSet::new();
        for policy in role["Policies"].as_sequence().expect("inline policies") {
            for st in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .expect("statements")
            {
                if used_by_lambda(st["Sid"].as_str()) {
                    continue;
                }
                assert_eq!(st["Effect"].as_str(), Some("Allow"));
                match &st["Action"] {
                    Value::String(a) => {
                        actions.insert(a.clone());
                    }
                    Value::Sequence(list) => {
                        actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)))
                    }
                    other => panic!("{f}: unexpected Action {other:?}"),
                }
            }
        }
        out.insert(f.to_owned(), actions);
    }
    out
}

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x1a3000 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_allows_exactly_what_its_function_calls() {
    let mut stack = LocalStack::start(&[]).await.unwrap();
    // Three healthy hosts, one offline, one whose DeployCert will fail.
    for i in 0..5 {
        let spec = HostSpec {
            online: i != 3,
            has_openssl: true,
        };
        stack
            .enrol_host(&host(i), &HostOverrides::default(), spec)
            .await
            .unwrap();
    }
    stack.cert_check(json!({})).await.unwrap();
    // Round 1: GenerateCsr results reach CertIssue; then take host 4's staged key away so its
    // DeployCert fails on the host.
    stack.settle_round(Delivery::default()).await.unwrap();
    let staged = stack
        .host_files(&host(4), &HostOverrides::default())
        .key
        .with_extension("key.next");
    std::fs::remove_file(&staged).unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    // A forced rotation of a named host, a revocation with immediate re-issue, and its CRL.
    stack
        .cert_check(json!({"hosts": [host(0)], "force": true}))
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    stack
        .cert_check(json!({"revoke": {"host": host(1), "reason": "SUPERSEDED", "rotate": true}}))
        .await
        .unwrap();
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    // A second CRL: UpdateCrl rather than ImportCrl.
    stack.pca.publish_crl().await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();

    // The reconcile pass finishing rotations whose events were lost: host 0's GenerateCsr
    // status (the pass asks Run Command and issues), then its issuance (the pass asks Private
    // CA and sends DeployCert).
    stack
        .cert_check(json!({"hosts": [host(0)], "force": true}))
        .await
        .unwrap();
    assert_eq!(settle_losing(&mut stack, EventKind::CsrStatus).await, 1);
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(65);
    let s = reconcile_pass(&stack, later).await;
    assert_eq!(s.reconciled.len(), 1, "{s:?}");
    // (The pass also retried host 4, failed earlier and past its backoff: its issuance is lost too.)
    assert!(settle_losing(&mut stack, EventKind::Issuance).await >= 1);
    let s = reconcile_pass(&stack, later + time::Duration::minutes(65)).await;
    assert!(!s.reconciled.is_empty(), "{s:?}");
    stack.settle(Delivery::default()).await.unwrap();
    // A rotation claimed whose SendCommand answer was lost: the pass asks Run Command which
    // command was sent for it (none here, so it is failed).
    let lost = state::HostId::parse(&host(9)).unwrap();
    stack
        .enrol_host(
            lost.as_str(),
            &HostOverrides::default(),
            HostSpec::default(),
        )
        .await
        .unwrap();
    {
        use state::ports::{FleetReader, RotationStarter};
        let r = stack.store.host(&lost).await.unwrap().unwrap();
        let now = time::OffsetDateTime::now_utc();
        stack
            .store
            .start(&r, &state::RotationId("r-send-lost".into()), now)
            .await
            .unwrap();
    }
    let s = reconcile_pass(&stack, later + time::Duration::minutes(130)).await;
    assert!(s.failed.iter().any(|n| n.host == lost.as_str()), "{s:?}");
    stack.settle(Delivery::default()).await.unwrap();

    // Refusals alert from CertIssue and CRLProcessor: a CRL from another CA, then a host whose
    // CSR names another host (a tampered openssl, as in the rotation tests).
    let key = stack.pca.crl_key().unwrap();
    stack
        .pca
        .put_crl_object(&key, &stack.pca.foreign_crl_der())
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    stack.tamper_openssl(&host(2), "CN=mi-", "CN=xx-").unwrap();
    stack
        .cert_check(json!({"hosts": [host(2)], "force": true}))
        .await
        .unwrap();
    stack.settle(Delivery::default()).await.unwrap();
    let subjects: Vec<String> = stack
        .inbox
        .messages()
        .unwrap()
        .iter()
        .map(|m| m.subject.clone())
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains("CRL refused")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains(&host(2)) && s.contains("ISSUE")),
        "{subjects:?}"
    );

    let template = template_actions();
    let mut mismatches = Vec::new();
    for (function, allowed) in &template {
        let called = stack.recorder.iam_actions(function);
        let extra: Vec<_> = allowed.difference(&called).collect();
        let missing: Vec<_> = called.difference(allowed).collect();
        if !extra.is_empty() || !missing.is_empty() {
            mismatches.push(format!("{function}: allowed but never called {extra:?}; called but not allowed {missing:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
