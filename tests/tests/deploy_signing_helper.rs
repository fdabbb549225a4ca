//! DeployCert with `RequireSigningHelper=true`, end to end on the local stack: the host's
//! `aws_signing_helper credential-process` (the stand-in on `iam-rolesanywhere-session`) trades
//! the staged pair for a session with the Roles Anywhere emulator before the swap.
//!
//! Why: the check exists so that a pair Roles Anywhere would refuse never replaces a working
//! one. A good pair is swapped in only after CreateSession accepted exactly that certificate; a
//! refused one leaves the host on its old pair, the rotation FAILED with the service's reason,
//! and one alert.
//!
//! Needs the project's virtualenv (`make venv`; `MOTO_PYTHON` names its Python).

use pki::KeyAlgorithm;
use serde_json::json;
use state::record::{HostOverrides, RotationState};
use tests::emulators::ssm::HostSpec;
use tests::stack::{Delivery, LocalStack};

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x0005_e551_0000 + i)
}

fn serial_of(cert: &std::path::Path) -> String {
    let pem = std::fs::read(cert).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_cert_proves_the_new_pair_with_create_session_before_the_swap() {
    let mut stack = LocalStack::start(&[("REQUIRE_SIGNING_HELPER", "true")])
        .await
        .unwrap();
    let hosts = [
        (host(1), HostOverrides::default()),
        (
            host(2),
            HostOverrides {
                key_algorithm: Some(KeyAlgorithm::EcP256),
                ..HostOverrides::default()
            },
        ),
    ];
    for (h, o) in &hosts {
        stack.enrol_host(h, o, HostSpec::default()).await.unwrap();
    }
    stack.cert_check(json!({})).await.unwrap();
    stack.settle(Delivery::default()).await.unwrap();

    // Each host got a session for exactly the certificate it now has live, before the swap.
    let sessions = stack.rolesanywhere.sessions();
    for (h, o) in &hosts {
        let r = stack.record(h).await;
        assert!(matches!(r.state, RotationState::Deployed), "{h}: {r:?}");
        let f = stack.host_files(h, o);
        let live = serial_of(&f.cert);
        let mine: Vec<_> = sessions.iter().filter(|s| s.serial == live).collect();
        assert_eq!(
            mine.len(),
            1,
            "{h}: one CreateSession for {live}: {sessions:?}"
        );
        assert!(mine[0].outcome.is_ok(), "{h}: {:?}", mine[0].outcome);
        assert_eq!(mine[0].subject, format!("CN={h}"));
        assert_eq!(mine[0].profile_arn, stack.config.roles_anywhere.profile_arn);
    }
    assert!(stack.inbox.messages().unwrap().is_empty(), "no alert");

    // The profile is disabled: the next pair is refused, and the host keeps the one it has.
    let (h, o) = &hosts[0];
    let f = stack.host_files(h, o);
    let before = [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap());
    let old_serial = serial_of(&f.cert);
    stack
        .rolesanywhere
        .set_profile_enabled(&stack.config.roles_anywhere.profile_arn, false);
    let s = stack
        .cert_check(json!({"hosts": [h], "force": true}))
        .await
        .unwrap();
    assert_eq!(s["started"], json!([h]), "{s}");
    stack.settle(Delivery::default()).await.unwrap();

    let attempt = stack.rolesanywhere.sessions().pop().unwrap();
    assert_ne!(
        attempt.serial, old_serial,
        "the staged certificate was presented"
    );
    let (code, message) = attempt.outcome.clone().expect_err("refused");
    assert_eq!(code, "AccessDeniedException");
    assert!(message.contains("is disabled"), "{message}");

    let r = stack.record(h).await;
    match &r.state {
        RotationState::Failed { reason, .. } => {
            assert!(
                reason.contains("aws_signing_helper credential-process failed")
                    && reason.contains("HTTP 403")
                    && reason.contains("is disabled"),
                "{reason}"
            );
        }
        other => panic!("{h}: expected FAILED, got {other:?}"),
    }
    assert_eq!(
        [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap()),
        before,
        "the live pair is untouched"
    );
    let msgs = stack.inbox.messages().unwrap().to_vec();
    let mine: Vec<_> = msgs
        .iter()
        .filter(|m| m.subject.contains(h.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{h}: exactly one alert: {msgs:?}");
    let body: serde_json::Value = serde_json::from_str(&mine[0].message).unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("is disabled"),
        "{body}"
    );

    // With the profile enabled again the old pair still works (it was never replaced).
    stack
        .rolesanywhere
        .set_profile_enabled(&stack.config.roles_anywhere.profile_arn, true);
    let creds = stack.host_credentials(h, o, &f.cert, &f.key).await.unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
}
