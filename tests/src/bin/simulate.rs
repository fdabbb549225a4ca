//! `make simulate`: runs fleet scenarios in virtual time and writes `target/sim/<scenario>.json`
//! and `.png`.
//!
//! `SCENARIO=<name>` (a file of `tests/sim/scenarios`, or a path; default: all of them), and
//! any scenario parameter by its upper-case name, from the environment or as `NAME=value`
//! arguments (arguments win): `simulate SCENARIO=outage SEED=7 HOSTS=20000 OUTAGE_HOURS=48`.
//! `SIM_OUT` sets the output folder. Exits non-zero if an invariant broke (after writing the
//! report, which names the seed and the step).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tests::sim::{chart, Report, Scenario};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sim/scenarios");

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIM_LOG").unwrap_or_else(|_| "off".into()),
        )
        .init();
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for name in Scenario::parameter_names() {
        if name == "NAME" {
            continue;
        }
        if let Ok(v) = std::env::var(&name) {
            if !v.is_empty() {
                settings.insert(name, v);
            }
        }
    }
    let mut scenario = std::env::var("SCENARIO").ok().filter(|s| !s.is_empty());
    let mut out = PathBuf::from(std::env::var("SIM_OUT").unwrap_or_else(|_| "target/sim".into()));
    for arg in std::env::args().skip(1) {
        let Some((k, v)) = arg.split_once('=') else {
            bail!("arguments are NAME=value, not {arg:?}");
        };
        if k.eq_ignore_ascii_case("SCENARIO") {
            scenario = Some(v.to_owned());
        } else if k.eq_ignore_ascii_case("SIM_OUT") {
            out = PathBuf::from(v);
        } else if !v.is_empty() {
            settings.insert(k.to_uppercase(), v.to_owned());
        }
    }
    let files = match scenario.as_deref() {
        None | Some("all") => {
            let mut all: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
                .with_context(|| format!("reading {SCENARIOS}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            all.sort();
            all
        }
        Some(s) if s.ends_with(".toml") => vec![PathBuf::from(s)],
        Some(s) => vec![Path::new(SCENARIOS).join(format!("{s}.toml"))],
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut broken = 0;
    for file in files {
        let params = Scenario::load(&file, &settings)?;
        let report = run_one(params)?;
        let json = out.join(format!("{}.json", report.scenario.name));
        std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let png = out.join(format!("{}.png", report.scenario.name));
        chart::draw(&report, &png)?;
        print_summary(&report, &json, &png);
        broken += report.violations.len();
    }
    if broken > 0 {
        bail!("{broken} invariant violations (see the reports' `violations`)");
    }
    Ok(())
}

fn run_one(params: Scenario) -> anyhow::Result<Report> {
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:40}] {percent:>3}% {elapsed_precise}")
            .context("the progress bar's template")?
            .progress_chars("=> "),
    );
    bar.set_prefix(params.name.clone());
    eprintln!(
        "{}: {} hosts, {} days, seed {} (SEED={} replays it)",
        params.name,
        params.fleet_size(),
        params.days,
        params.seed,
        params.seed
    );
    let ticker = bar.clone();
    let report = tests::sim::run(
        params,
        Some(Box::new(move |done| {
            ticker.set_position((done * 1000.0) as u64)
        })),
    );
    bar.finish();
    Ok(report)
}

fn print_summary(r: &Report, json: &Path, png: &Path) {
    let minutes = r
        .minutes_to_all_deployed
        .map_or("never".to_owned(), |m| format!("{m:.1}"));
    println!(
        "== {} ({} hosts, {} days, seed {})",
        r.scenario.name, r.hosts, r.scenario.days, r.scenario.seed
    );
    println!(
        "  minutes_to_all_deployed {minutes}; expired on online hosts {}, while offline {}, within a pass of coming back {}",
        r.expired, r.expired_offline, r.expired_on_return
    );
    println!(
        "  IssueCertificate: sustained {:.1}/s = {:.0}% of the {}/s quota, peak {:.1}/s; {:.3} per rotation",
        r.issuance.sustained_per_s,
        100.0 * r.issuance.sustained_share_of_quota,
        r.issuance.quota_per_s,
        r.issuance.peak_per_s,
        r.issue_certificate_per_rotation
    );
    println!(
        "  rotations: {} deployed, {} failed ({} by throttling), {} claims handed back to the next pass; per 12-h run max {} mean {:.0}, issued max/mean {:.2}",
        r.rotations_deployed,
        r.rotations_failed,
        r.failed_by_throttling,
        r.claims_handed_back,
        r.per_run.max_started,
        r.per_run.mean_started,
        r.per_run.peak_to_mean_issued
    );
    println!("  calls per rotation: {:?}", r.calls_per_rotation);
    println!(
        "  past timeout {}, events dropped {}, alerts {} ({} digests), violations {}",
        r.functions_past_timeout,
        r.events_dropped,
        r.alerts.count,
        r.alerts.digests,
        r.violations.len()
    );
    println!(
        "  wall {:.1} s, {:.0} rotations per wall-clock second; pipeline ${:.4} + Private CA ${:.2} per 1,000 host-months",
        r.wall_seconds,
        r.rotations_per_wall_second,
        r.cost_per_1000_host_months.pipeline_total,
        r.cost_per_1000_host_months.private_ca_certificates
    );
    println!(
        "  digest {}; {} and {}",
        r.digest,
        json.display(),
        png.display()
    );
}
