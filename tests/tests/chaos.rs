//! Chaos on the local stack: every AWS API answers a share of calls with its throttling error or
//! a 5xx, events are lost, duplicated, delivered early, late and out of order, and the fleet
//! still ends rotated within three schedule runs and their reconcile passes.
//!
//! Seeded: `CHAOS_SEED=<n>` replays a run (the seed is printed at the start and in every failed
//! assertion). `CHAOS_HOSTS` sets the fleet (CI runs a small one; `make chaos` the full 50).
//! What a user would check is asserted: the table says DEPLOYED, the host's certificate and
//! key match and chain to the CA, the table's serial is the one on the host, one certificate
//! was issued per rotation, and no host got more than one alert of a kind.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::json;
use state::ports::FleetReader;
use state::record::{HostOverrides, RotationState};
use state::HostId;
use tests::emulators::ssm::HostSpec;
use tests::faults::delivery::{settle_chaos, DeliveryPolicy, Rates};
use tests::faults::{Fault, FaultyStack, Rule};
use time::{Duration, OffsetDateTime};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn host(i: usize) -> String {
    format!("mi-{:017x}", 0xc4a05000 + i)
}

/// The public key of a PEM file as openssl prints it (`x509` or `pkey`).
fn public_key(kind: &str, path: &std::path::Path) -> String {
    let args: &[&str] = if kind == "x509" {
        &["x509", "-noout", "-pubkey", "-in"]
    } else {
        &["pkey", "-pubout", "-in"]
    };
    let out = Command::new("openssl")
        .args(args)
        .arg(path)
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn reconcile_pass(stack: &FaultyStack, now: OffsetDateTime) {
    let request = cert_check::step::request::parse_request(json!({"reconcile": true}))
        .expect("a reconcile request");
    if let Err(e) = cert_check::run(stack.check.clone(), request, now).await {
        // A pass that met a fault is retried by its schedule; the next pass goes on.
        eprintln!("reconcile pass failed (the next one goes on): {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_host_ends_rotated_whatever_the_faults() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random);
    let hosts: usize = env_or("CHAOS_HOSTS", 8);
    eprintln!("CHAOS_SEED={seed} CHAOS_HOSTS={hosts} (set them to replay this run)");
    let at = |what: &str| format!("{what} (replay with CHAOS_SEED={seed} CHAOS_HOSTS={hosts})");

    let mut stack = FaultyStack::start(&[])
        .await
        .expect("the local stack starts");
    let names: Vec<String> = (0..hosts).map(host).collect();
    for h in &names {
        stack
            .enrol_host(h, &HostOverrides::default(), HostSpec::default())
            .await
            .expect("enrolment");
    }
    // 10% of every API's calls: half its own throttling error, half a 503.
    stack
        .plan
        .add(Rule::any().rate(0.05, seed).fault(Fault::Throttle));
    stack.plan.add(
        Rule::any()
            .rate(0.05, seed ^ 0x5eed)
            .fault(Fault::Status(503)),
    );
    let policy = DeliveryPolicy::seeded(seed).all(Rates {
        early: 0.1,
        concurrent: 0.3,
        late: 0.2,
        never: 0.1,
        twice: 0.1,
    });

    let start = OffsetDateTime::now_utc();
    for round in 0..3i64 {
        if let Err(e) = stack.cert_check(json!({})).await {
            eprintln!("schedule run {round} failed (the next one goes on): {e}");
        }
        settle_chaos(&mut stack, &policy)
            .await
            .expect("events settle");
        for pass in 1..=2i64 {
            // The reconcile schedule fires every ten minutes; the pass acts on rotations older
            // than the in-flight timeout, so it runs as it would an hour on.
            reconcile_pass(&stack, start + Duration::minutes(65 * (2 * round + pass))).await;
            settle_chaos(&mut stack, &policy)
                .await
                .expect("events settle");
        }
    }

    let ca = stack.pca.ca_certificate_pem();
    let ca_file = std::env::temp_dir().join(format!("chaos-ca-{seed}.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    for h in &names {
        let record = stack
            .store
            .host(&HostId::parse(h).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.state,
            RotationState::Deployed,
            "{}",
            at(&format!("{h}: {record:?}"))
        );
        let files = stack.host_files(h, &HostOverrides::default());
        let cert_key = public_key("x509", &files.cert);
        assert!(
            !cert_key.is_empty(),
            "{}",
            at(&format!("{h}: no certificate"))
        );
        assert_eq!(
            cert_key,
            public_key("pkey", &files.key),
            "{}",
            at(&format!("{h}: pair"))
        );
        let verified = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca_file)
            .arg(&files.cert)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&verified.stdout).contains(": OK"),
            "{}",
            at(&format!("{h}: chain"))
        );
        let pem = std::fs::read_to_string(&files.cert).unwrap();
        let on_host = pki::parse_certificate_pem(&pem).unwrap().serial;
        assert_eq!(
            record.current.as_ref().and_then(|c| c.serial.clone()),
            Some(on_host),
            "{}",
            at(&format!("{h}: the table names the serial the host runs"))
        );
    }

    // One certificate per rotation: issuances the idempotency token did not deduplicate.
    let mut per_rotation: BTreeMap<(String, String), usize> = BTreeMap::new();
    for issued in stack.pca.issued() {
        let token = issued.idempotency_token.clone().unwrap_or_default();
        *per_rotation
            .entry((issued.subject.clone(), token))
            .or_default() += 1;
    }
    for ((subject, token), n) in &per_rotation {
        assert_eq!(
            *n,
            1,
            "{}",
            at(&format!("{subject}: {n} certificates for rotation {token}"))
        );
    }

    // At most one alert of a kind per host (no host failed more than one episode here).
    let mut alerts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in stack.inbox.messages().unwrap().to_vec() {
        let body: serde_json::Value = serde_json::from_str(&m.message).unwrap_or_default();
        let host = body["host"].as_str().unwrap_or("").to_owned();
        let kind = body["kind"].as_str().unwrap_or("").to_owned();
        *alerts.entry((host, kind)).or_default() += 1;
    }
    for ((host, kind), n) in &alerts {
        assert!(*n <= 1, "{}", at(&format!("{host}: {n} {kind} alerts")));
    }
    eprintln!(
        "chaos: {hosts} hosts deployed; {} faults injected; {} certificates issued; {} alerts",
        stack.plan.injected().len(),
        stack.pca.issued().len(),
        alerts.values().sum::<usize>()
    );
}
