//! Chaos on the local stack: every AWS API answers a share of calls with its throttling error or
//! a 5xx, events are lost, duplicated, delivered early, late and out of order, a share of handler
//! runs (events, schedule runs, reconcile passes) is killed mid-way and retried, and the fleet
//! still ends rotated within three schedule runs and their reconcile passes.
//!
//! Seeded: `CHAOS_SEED=<n>` replays a run (the seed is printed at the start and in every failed
//! assertion). `CHAOS_HOSTS` sets the fleet (CI runs a small one; `make chaos` the full 50),
//! `CHAOS_KILLS` the share of handler runs killed (2% unless set).
//! What a user would check is asserted: the table says DEPLOYED, the host's certificate and
//! key match and chain to the CA, the table's serial is the one on the host, one certificate
//! was issued per rotation, no host got more than one alert of a kind, and — after every single
//! delivery — no host that had a working pair is without one. Half the hosts keep certificate
//! and key in one directory (the swap is one rename), half in two (two renames and a journal).
//!
//! The same fleet also runs without faults, for the figures the chaos run is read against:
//! runs needed and AWS calls per rotation, by service (printed by both tests).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{json, Value};
use state::ports::FleetReader;
use state::record::{HostOverrides, RotationState};
use state::{HostId, HostPath};
use tests::emulators::ssm::HostSpec;
use tests::faults::delivery::{
    run_to_wait, settle_chaos_checked, Delivered, DeliveryPolicy, Rates,
};
use tests::faults::{Fault, FaultyStack, Rule};
use tests::pair::LivePair;
use tests::stack::LocalStack;
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

/// Odd hosts keep certificate and key in one directory.
fn overrides(i: usize) -> HostOverrides {
    if i % 2 == 1 {
        HostOverrides {
            key_path: Some(HostPath::parse("keyPath", "/etc/pki/rolesanywhere").unwrap()),
            ..HostOverrides::default()
        }
    } else {
        HostOverrides::default()
    }
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

/// A scheduled CertCheck invocation (a schedule run or a reconcile pass at `now`), killed after
/// the policy's delay when it draws one and then retried, as Lambda retries a timed-out
/// asynchronous invocation. A failed run is left to the next one, as its schedule would.
/// `typical` is how many times the last complete run waited (the kill is drawn within them);
/// answers 1 when the run was killed.
async fn scheduled_run(
    stack: &FaultyStack,
    policy: &DeliveryPolicy,
    typical: &mut u32,
    name: &str,
    payload: Value,
    now: OffsetDateTime,
) -> usize {
    let request = cert_check::step::request::parse_request(payload).expect("a CertCheck request");
    let run = || cert_check::run(stack.check.clone(), request.clone(), now);
    let mut killed = 0;
    if let Some(at) = policy.kill_at(name, *typical) {
        if let (None, _) = run_to_wait(run(), Some(at)).await {
            eprintln!("{name}: killed at its wait {at}, retried");
            killed = 1;
        }
    }
    let (result, waits) = run_to_wait(run(), None).await;
    if let Some(Err(e)) = result {
        eprintln!("{name} failed (the next one goes on): {e}");
    }
    *typical = waits;
    killed
}

/// What one run of the fleet needed.
struct Figures {
    /// (schedule run, reconcile pass) after which every host was DEPLOYED, if it came.
    all_deployed_after: Option<(i64, i64)>,
    certificates: usize,
    calls: BTreeMap<String, u64>,
    faults: usize,
    kills: usize,
    deliveries: usize,
    alerts: usize,
}

impl Figures {
    fn print(&self, label: &str, hosts: usize) {
        let per = |n: u64| n as f64 / self.certificates.max(1) as f64;
        let total: u64 = self.calls.values().sum();
        let by: Vec<String> = self
            .calls
            .iter()
            .map(|(s, n)| format!("{s} {:.1}", per(*n)))
            .collect();
        eprintln!(
            "{label}: {hosts} hosts, all DEPLOYED after {}; {} certificates; AWS calls per rotation {:.1} ({}); \
             {} faults injected, {} handler runs killed, {} deliveries, {} alerts",
            match self.all_deployed_after {
                Some((r, 0)) => format!("schedule run {}", r + 1),
                Some((r, p)) => format!("schedule run {} and reconcile pass {p}", r + 1),
                None => "never".into(),
            },
            self.certificates,
            per(total),
            by.join(", "),
            self.faults,
            self.kills,
            self.deliveries,
            self.alerts,
        );
    }
}

/// Whether every host's table item says DEPLOYED.
async fn all_deployed(stack: &LocalStack, names: &[String]) -> bool {
    for h in names {
        let record = stack
            .store
            .host(&HostId::parse(h).unwrap())
            .await
            .ok()
            .flatten();
        if record.map(|r| r.state) != Some(RotationState::Deployed) {
            return false;
        }
    }
    true
}

/// No host that had a working pair is without one: what must hold after every delivery.
fn pairs_hold(
    stack: &LocalStack,
    names: &[String],
    had: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    for (i, h) in names.iter().enumerate() {
        match stack.host_files(h, &overrides(i)).live_pair() {
            LivePair::Matching(_) => {
                had.insert(h.clone());
            }
            LivePair::Swapping => {}
            LivePair::Absent if !had.contains(h) => {}
            LivePair::Absent => anyhow::bail!("{h}: its pair is gone"),
            LivePair::Broken(why) => anyhow::bail!("{h}: no working pair: {why}"),
        }
    }
    Ok(())
}

/// Three schedule runs, each followed by two reconcile passes, with events delivered by
/// `policy`, the pairs on every host checked after every delivery.
async fn run_fleet(
    stack: &mut FaultyStack,
    policy: &DeliveryPolicy,
    names: &[String],
    at: &dyn Fn(&str) -> String,
) -> Figures {
    let mut had = BTreeSet::new();
    let mut figures = Figures {
        all_deployed_after: None,
        certificates: 0,
        calls: BTreeMap::new(),
        faults: 0,
        kills: 0,
        deliveries: 0,
        alerts: 0,
    };
    let start = OffsetDateTime::now_utc();
    // How many times a schedule run and a reconcile pass wait, counted as they run (kills land
    // within).
    let mut typical_run = 50;
    let mut typical_pass = 10;
    for round in 0..3i64 {
        for pass in 0..=2i64 {
            if pass == 0 {
                figures.kills += scheduled_run(
                    stack,
                    policy,
                    &mut typical_run,
                    &format!("schedule run {round}"),
                    json!({}),
                    start + Duration::hours(12 * round),
                )
                .await;
            } else {
                // The reconcile schedule fires every ten minutes; the pass acts on rotations older
                // than the in-flight timeout, so it runs as it would an hour on.
                let now = start + Duration::hours(12 * round) + Duration::minutes(65 * pass);
                figures.kills += scheduled_run(
                    stack,
                    policy,
                    &mut typical_pass,
                    &format!("reconcile pass {round}.{pass}"),
                    json!({"reconcile": true}),
                    now,
                )
                .await;
            }
            let mut check = |s: &LocalStack, _: &Delivered| pairs_hold(s, names, &mut had);
            let report = settle_chaos_checked(stack, policy, &mut check)
                .await
                .unwrap_or_else(|e| panic!("{}", at(&format!("{e:#}"))));
            figures.deliveries += report.deliveries.len();
            figures.kills += report
                .deliveries
                .iter()
                .filter(|d| matches!(d.outcome, tests::faults::delivery::Outcome::Killed(_)))
                .count();
            if figures.all_deployed_after.is_none() && all_deployed(stack, names).await {
                figures.all_deployed_after = Some((round, pass));
            }
        }
    }
    figures.certificates = stack.pca.issued().len();
    figures.calls = stack.plan.calls_by_service();
    figures.faults = stack.plan.injected().len();
    figures
}

async fn enrolled_stack(names: &[String]) -> FaultyStack {
    let stack = FaultyStack::start(&[])
        .await
        .expect("the local stack starts");
    for (i, h) in names.iter().enumerate() {
        stack
            .enrol_host(h, &overrides(i), HostSpec::default())
            .await
            .expect("enrolment");
    }
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_free_run_for_comparison() {
    let hosts: usize = env_or("CHAOS_HOSTS", 8);
    let names: Vec<String> = (0..hosts).map(host).collect();
    let mut stack = enrolled_stack(&names).await;
    let policy = DeliveryPolicy::seeded(0);
    let figures = run_fleet(&mut stack, &policy, &names, &|w| w.to_owned()).await;
    figures.print("fault-free", hosts);
    assert_eq!(
        figures.all_deployed_after,
        Some((0, 0)),
        "without faults the first run rotates every host"
    );
    assert_eq!(figures.certificates, hosts, "one certificate per host");
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

    let names: Vec<String> = (0..hosts).map(host).collect();
    let mut stack = enrolled_stack(&names).await;
    // 10% of every API's calls: half its own throttling error, half a 503.
    stack
        .plan
        .add(Rule::any().rate(0.05, seed).fault(Fault::Throttle));
    stack.plan.add(
        Rule::any()
            .rate(0.05, seed ^ 0x5eed)
            .fault(Fault::Status(503)),
    );
    let policy = DeliveryPolicy::seeded(seed)
        .all(Rates {
            early: 0.1,
            concurrent: 0.3,
            late: 0.2,
            never: 0.1,
            twice: 0.1,
        })
        .kills(env_or("CHAOS_KILLS", 0.02));
    let mut figures = run_fleet(&mut stack, &policy, &names, &at).await;

    let ca = stack.pca.ca_certificate_pem();
    let ca_file = std::env::temp_dir().join(format!("chaos-ca-{seed}.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    for (i, h) in names.iter().enumerate() {
        let record = stack.record(h).await;
        assert_eq!(
            record.state,
            RotationState::Deployed,
            "{}",
            at(&format!("{h}: {record:?}"))
        );
        let files = stack.host_files(h, &overrides(i));
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
    figures.alerts = alerts.values().sum::<usize>();
    figures.print(&format!("chaos (CHAOS_SEED={seed})"), hosts);
}
