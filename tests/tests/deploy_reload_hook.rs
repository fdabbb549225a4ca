//! The reload hook, end to end on the local stack: DeployCert runs the stack's `RELOAD_HOOK` on
//! the host after the swap, with the live certificate, key and chain as arguments.
//!
//! Why: the hook is how a service on the host picks up its new pair. A hook that fails leaves the
//! new pair in place (it is valid and verified), but the service may still present the old
//! certificate until someone reloads it, so the operator must hear of it: the rotation is
//! DEPLOYED and exactly one `RELOAD_HOOK_FAILED` alert names the host and the hook's exit status.
//! A hook that succeeds raises nothing. Run Command's output may lag its status event (the
//! emulator's does): the verdict is read before DEPLOYED is recorded, or the alert was lost.
//!
//! Needs the project's virtualenv (`make venv`; `MOTO_PYTHON` names its Python).

use std::os::unix::fs::PermissionsExt as _;

use serde_json::{json, Value};
use state::record::{HostOverrides, RotationState};
use tests::emulators::ssm::HostSpec;
use tests::pair::LivePair;
use tests::stack::{Delivery, LocalStack};

const HOOK: &str = "/usr/local/sbin/reload-certs";

fn host(i: u64) -> String {
    format!("mi-{:017x}", 0x0007_e10a_d000 + i)
}

/// Installs the hook in `h`'s sandbox: it records its arguments beside itself and exits `status`.
fn install_hook(stack: &LocalStack, h: &str, status: u8) -> std::path::PathBuf {
    let path = stack.ssm.host_root(h).join(HOOK.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let seen = path.with_extension("args");
    std::fs::write(
        &path,
        format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > '{}'\nexit {status}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_reload_hook_is_alerted_once_and_the_new_pair_stays() {
    let mut stack = LocalStack::start(&[("RELOAD_HOOK", HOOK)]).await.unwrap();
    let (failing, fine) = (host(1), host(2));
    let o = HostOverrides::default();
    for h in [&failing, &fine] {
        stack.enrol_host(h, &o, HostSpec::default()).await.unwrap();
    }
    let failing_args = install_hook(&stack, &failing, 3);
    let fine_args = install_hook(&stack, &fine, 0);

    // Every event twice: EventBridge delivers at least once, and a redelivered DeployCert status
    // must not alert again.
    stack.cert_check(json!({})).await.unwrap();
    stack
        .settle(Delivery {
            duplicate: true,
            ..Delivery::default()
        })
        .await
        .unwrap();

    for h in [&failing, &fine] {
        let r = stack.record(h).await;
        assert_eq!(r.state, RotationState::Deployed, "{h}: {r:?}");
        let LivePair::Matching(serial) = stack.host_files(h, &o).live_pair() else {
            panic!("{h}: no matching live pair");
        };
        assert_eq!(
            r.current.as_ref().and_then(|c| c.serial.clone()),
            Some(serial),
            "{h}: the table names the certificate on the host"
        );
        // The hook ran after the swap, on the live paths (as the host sees them).
        let args = std::fs::read_to_string(if h == &failing {
            &failing_args
        } else {
            &fine_args
        })
        .unwrap_or_else(|e| panic!("{h}: the hook did not run: {e}"));
        assert!(
            args.lines().next().unwrap().ends_with(&format!("{h}.crt")),
            "{h}: {args}"
        );
    }

    let alerts: Vec<Value> = stack
        .inbox
        .messages()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.message).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "one alert in all: {alerts:?}");
    assert_eq!(alerts[0]["kind"], "RELOAD_HOOK_FAILED", "{}", alerts[0]);
    assert_eq!(alerts[0]["host"], failing.as_str());
    assert!(
        alerts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("exited with 3"),
        "{}",
        alerts[0]
    );
}
