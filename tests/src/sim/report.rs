//! What a run observed, and the report written from it (`target/sim/<scenario>.json`).
//!
//! Why these figures: they are the issue's targets (minutes to deploy a wave, issuance rate
//! against the quota, rotations per schedule run, IssueCertificate per rotation, calls per
//! rotation by service, throttling, timeouts, dropped events, alerts, the simulator's own
//! speed, and cost), so a run answers them without reading its trace.

use std::collections::BTreeMap;

use rotation::alerts::{Alert, AlertKind};
use serde::Serialize;
use time::OffsetDateTime;

use crate::sim::cost::{self, Cost};
use crate::sim::engine::{Sim, Violation};
use crate::sim::lambda::FunctionStats;

/// The fleet at one point of virtual time.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Minutes since the start.
    pub minute: f64,
    /// Hosts by state.
    pub states: BTreeMap<String, i64>,
    /// Hosts offline.
    pub offline: u64,
    /// Events waiting in each function's queue.
    pub queued: BTreeMap<String, u64>,
}

/// One schedule run's window (until the next).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunWindow {
    /// Rotations the run itself started.
    pub started: u64,
    /// Certificates issued in the window.
    pub issued: u64,
}

/// Alerts published.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertFigures {
    /// Messages published.
    pub count: u64,
    /// Of them, digests.
    pub digests: u64,
    /// By kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The first digests' subjects and reasons.
    pub first_digests: Vec<String>,
}

/// What the event loop counted.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Hosts in the fleet.
    pub fleet: u64,
    /// Samples of the fleet's state.
    pub samples: Vec<Sample>,
    /// Schedule-run windows.
    pub runs: Vec<RunWindow>,
    /// New certificates per minute of virtual time.
    pub issued_per_minute: Vec<u32>,
    /// GenerateCsr commands sent.
    pub rotations_started: u64,
    /// Commands that timed out waiting for their host.
    pub delivery_timeouts: u64,
    /// Hosts that rebooted mid-command.
    pub reboots: u64,
    /// Events EventBridge lost.
    pub events_lost: u64,
    /// Events delivered twice.
    pub events_duplicated: u64,
    /// Certificates that expired on online hosts.
    pub expired: u64,
    /// Certificates that expired while their host was offline.
    pub expired_offline: u64,
    /// Certificates that expired on a host back online for less than a reconcile pass and a
    /// rotation (it came back too late to be rotated in time: alerted, not a broken invariant).
    pub expired_on_return: u64,
    /// Alerts.
    pub alerts: AlertFigures,
    /// Function errors and kills, by their first words.
    pub errors: BTreeMap<String, u64>,
}

impl Observed {
    /// Nothing yet, for a fleet of `fleet`.
    pub fn new(fleet: u64) -> Self {
        Observed {
            fleet,
            ..Observed::default()
        }
    }

    /// A certificate issued at `at`.
    pub fn issued(&mut self, at: OffsetDateTime, origin: OffsetDateTime) {
        let minute = ((at - origin).as_seconds_f64() / 60.0).max(0.0) as usize;
        if self.issued_per_minute.len() <= minute {
            self.issued_per_minute.resize(minute + 1, 0);
        }
        self.issued_per_minute[minute] += 1;
    }

    /// An alert published.
    pub fn alert(&mut self, alert: &Alert) {
        self.alerts.count += 1;
        let kind = format!("{:?}", alert.kind);
        *self.alerts.by_kind.entry(kind).or_default() += 1;
        if alert.kind == AlertKind::Digest {
            self.alerts.digests += 1;
            if self.alerts.first_digests.len() < 5 {
                let reason: String = alert.reason.chars().take(300).collect();
                self.alerts.first_digests.push(reason);
            }
        }
    }

    /// A function error or kill.
    pub fn note(&mut self, what: String) {
        if self.errors.len() < 50 || self.errors.contains_key(&what) {
            *self.errors.entry(what).or_default() += 1;
        }
    }
}

/// Rotations per schedule run.
#[derive(Debug, Clone, Serialize)]
pub struct PerRun {
    /// Runs counted (the first, a wave's, is left out when there are more than two).
    pub runs: usize,
    /// Most rotations one run started.
    pub max_started: u64,
    /// Mean rotations a run started.
    pub mean_started: f64,
    /// Most certificates issued in one run's window.
    pub max_issued: u64,
    /// Mean certificates issued per window.
    pub mean_issued: f64,
    /// max_issued / mean_issued (target: at most 1.3 in steady state).
    pub peak_to_mean_issued: f64,
}

/// IssueCertificate against its quota.
#[derive(Debug, Clone, Serialize)]
pub struct IssuanceRate {
    /// The quota, per second.
    pub quota_per_s: f64,
    /// Peak minute, per second.
    pub peak_per_s: f64,
    /// Mean over the minutes from the first issuance to the last of the first wave (the
    /// minutes until every host was first DEPLOYED), per second.
    pub sustained_per_s: f64,
    /// sustained / quota.
    pub sustained_share_of_quota: f64,
    /// Per minute, per second (the chart's series).
    pub per_minute: Vec<f64>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated minutes until every host had been DEPLOYED by the pipeline at least once
    /// (`null` if some never were).
    pub minutes_to_all_deployed: Option<f64>,
    /// Certificates that expired on online hosts.
    pub expired: u64,
    /// Certificates that expired while their host was offline.
    pub expired_offline: u64,
    /// Certificates that expired on a host back online for less than a reconcile pass and a
    /// rotation.
    pub expired_on_return: u64,
    /// For each fault window (outage, storm, offline) that ended: minutes from its end until
    /// the first sample with no host FAILED or never deployed (`null`: not within the run).
    pub settled_after: BTreeMap<String, Option<f64>>,
    /// The scenario as run (every parameter).
    pub scenario: crate::sim::scenario::Scenario,
    /// Hosts simulated.
    pub hosts: u64,
    /// SHA-256 of the event log: equal for equal seeds.
    pub digest: String,
    /// Events processed.
    pub steps: u64,
    /// Broken invariants (empty when all held).
    pub violations: Vec<Violation>,
    /// Rotations that reached DEPLOYED.
    pub rotations_deployed: u64,
    /// GenerateCsr commands sent.
    pub rotations_started: u64,
    /// Rotations that FAILED (each failure counts).
    pub rotations_failed: u64,
    /// Of them, failed for throttling.
    pub failed_by_throttling: u64,
    /// Claims CertCheck handed back for the next pass while SendCommand throttled (no attempt
    /// counted, no alert; the host starts again in the next pass).
    pub claims_handed_back: u64,
    /// Hosts DEPLOYED at the end.
    pub deployed_at_end: i64,
    /// IssueCertificate against the quota.
    pub issuance: IssuanceRate,
    /// Rotations per 12-hour run.
    pub per_run: PerRun,
    /// New certificates per deployed rotation (target 1.000).
    pub issue_certificate_per_rotation: f64,
    /// IssueCertificate calls (attempts, replays included) per deployed rotation.
    pub issue_calls_per_rotation: f64,
    /// Calls per deployed rotation, by service.
    pub calls_per_rotation: BTreeMap<String, f64>,
    /// Calls by service and operation.
    pub calls: BTreeMap<String, u64>,
    /// Attempts refused by a quota, by operation.
    pub throttled: BTreeMap<String, u64>,
    /// Calls that failed with throttling after the SDK's attempts.
    pub throttled_after_retries: BTreeMap<String, u64>,
    /// Invocations killed at their timeout, all functions.
    pub functions_past_timeout: u64,
    /// Events dropped (maximum age, retries exhausted, dead-lettered).
    pub events_dropped: u64,
    /// Events EventBridge lost (a fault parameter).
    pub events_lost: u64,
    /// Events delivered twice.
    pub events_duplicated: u64,
    /// Commands that timed out waiting for their host.
    pub delivery_timeouts: u64,
    /// Hosts that rebooted mid-command.
    pub reboots: u64,
    /// Per function.
    pub functions: BTreeMap<String, FunctionStats>,
    /// Function errors and kills, by their first words.
    pub errors: BTreeMap<String, u64>,
    /// Alerts.
    pub alerts: AlertFigures,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
    /// Deployed rotations per wall-clock second.
    pub rotations_per_wall_second: f64,
    /// Cost per 1,000 host-months.
    pub cost_per_1000_host_months: Cost,
    /// The fleet by state over time.
    pub samples: Vec<Sample>,
}

impl Report {
    /// The report of `sim` after its run, which took `wall_seconds`.
    pub fn of(sim: &Sim, wall_seconds: f64) -> Report {
        let o = &sim.observed;
        let p = sim.params();
        let states = sim.store().states();
        let env = sim.env().lock();
        let counts = env.counts.clone();
        drop(env);
        let deployed = states.deployed_rotations;
        let all = states.ever_deployed.len() as u64 >= o.fleet;
        let minutes_to_all_deployed = states
            .last_first_deployed
            .filter(|_| all)
            .map(|t| (t - sim.origin()).as_seconds_f64() / 60.0);
        let per_rotation = |n: f64| {
            if deployed == 0 {
                0.0
            } else {
                n / deployed as f64
            }
        };
        let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
        for (op, n) in &counts.calls {
            let service = op.split(':').next().unwrap_or("").to_owned();
            *by_service.entry(service).or_default() += *n as f64;
        }
        let calls_per_rotation = by_service
            .into_iter()
            .map(|(s, n)| (s, per_rotation(n)))
            .collect();
        let issued_total: u64 = o.issued_per_minute.iter().map(|&n| u64::from(n)).sum();
        let functions = sim.functions();
        let minutes = sim.params().days * 1440.0;
        let cost = cost::estimate(
            &counts,
            &functions,
            p,
            o.fleet,
            minutes,
            issued_total,
            o.alerts.count,
        );
        let report = Report {
            minutes_to_all_deployed,
            expired: o.expired,
            expired_offline: o.expired_offline,
            expired_on_return: o.expired_on_return,
            settled_after: settled_after(o, p),
            scenario: p.clone(),
            hosts: o.fleet,
            digest: sim.digest(),
            steps: sim.steps(),
            violations: sim.violations().to_vec(),
            rotations_deployed: deployed,
            rotations_started: o.rotations_started,
            rotations_failed: states.failed,
            failed_by_throttling: states.failed_throttled,
            claims_handed_back: states.released,
            deployed_at_end: states.counts().get("DEPLOYED").copied().unwrap_or(0),
            issuance: issuance_rate(o, p.pca_issue_rate, minutes_to_all_deployed),
            per_run: per_run(&o.runs),
            issue_certificate_per_rotation: per_rotation(issued_total as f64),
            issue_calls_per_rotation: per_rotation(
                counts
                    .calls
                    .get("ACMPCA:IssueCertificate")
                    .copied()
                    .unwrap_or(0) as f64,
            ),
            calls_per_rotation,
            calls: counts.calls.clone(),
            throttled: counts.throttled.clone(),
            throttled_after_retries: counts.throttled_after_retries.clone(),
            functions_past_timeout: functions.values().map(|f| f.past_timeout).sum(),
            events_dropped: functions
                .values()
                .map(|f| f.dropped_age + f.dropped_retries + f.dead_lettered)
                .sum(),
            events_lost: o.events_lost,
            events_duplicated: o.events_duplicated,
            delivery_timeouts: o.delivery_timeouts,
            reboots: o.reboots,
            functions: functions
                .into_iter()
                .map(|(f, s)| (f.name().to_owned(), s))
                .collect(),
            errors: o.errors.clone(),
            alerts: o.alerts.clone(),
            wall_seconds,
            rotations_per_wall_second: deployed as f64 / wall_seconds.max(1e-9),
            cost_per_1000_host_months: cost,
            samples: o.samples.clone(),
        };
        report
    }
}

fn settled_after(
    o: &Observed,
    p: &crate::sim::scenario::Scenario,
) -> BTreeMap<String, Option<f64>> {
    let windows = [
        ("outage", p.outage_start_hours, p.outage_hours),
        ("storm", p.storm_start_hours, p.storm_hours),
        ("offline", p.offline_start_hours, p.offline_hours),
    ];
    let mut out = BTreeMap::new();
    for (name, start, hours) in windows {
        if start < 0.0 || hours <= 0.0 || (name == "offline" && p.offline_share <= 0.0) {
            continue;
        }
        let end = (start + hours) * 60.0;
        if end > p.days * 1440.0 {
            continue;
        }
        let settled = o
            .samples
            .iter()
            .filter(|s| s.minute >= end)
            .find(|s| {
                let n = |k: &str| s.states.get(k).copied().unwrap_or(0);
                n("FAILED") == 0 && n("IDLE") == 0
            })
            .map(|s| s.minute - end);
        out.insert(name.to_owned(), settled);
    }
    out
}

fn issuance_rate(o: &Observed, quota: f64, wave_minutes: Option<f64>) -> IssuanceRate {
    let per_minute: Vec<f64> = o
        .issued_per_minute
        .iter()
        .map(|&n| f64::from(n) / 60.0)
        .collect();
    let peak = per_minute.iter().copied().fold(0.0, f64::max);
    let first = per_minute.iter().position(|&r| r > 0.0).unwrap_or(0);
    let last = wave_minutes
        .map(|m| (m as usize).min(per_minute.len().saturating_sub(1)))
        .unwrap_or(per_minute.len().saturating_sub(1));
    // Whole minutes only: the wave's last minute is partial.
    let span: Vec<f64> = per_minute
        .get(first..last.max(first + 1).min(per_minute.len()))
        .unwrap_or(&[])
        .to_vec();
    let sustained = if span.is_empty() {
        0.0
    } else {
        span.iter().sum::<f64>() / span.len() as f64
    };
    IssuanceRate {
        quota_per_s: quota,
        peak_per_s: peak,
        sustained_per_s: sustained,
        sustained_share_of_quota: sustained / quota.max(1e-9),
        per_minute,
    }
}

fn per_run(runs: &[RunWindow]) -> PerRun {
    // A run's window is complete only once the next run started; the first may be a wave.
    let complete = &runs[..runs.len().saturating_sub(1)];
    let counted: &[RunWindow] = if complete.len() > 2 {
        &complete[1..]
    } else {
        complete
    };
    let n = counted.len().max(1) as f64;
    let mean_started = counted.iter().map(|r| r.started as f64).sum::<f64>() / n;
    let mean_issued = counted.iter().map(|r| r.issued as f64).sum::<f64>() / n;
    let max_issued = counted.iter().map(|r| r.issued).max().unwrap_or(0);
    PerRun {
        runs: counted.len(),
        max_started: counted.iter().map(|r| r.started).max().unwrap_or(0),
        mean_started,
        max_issued,
        mean_issued,
        peak_to_mean_issued: if mean_issued > 0.0 {
            max_issued as f64 / mean_issued
        } else {
            0.0
        },
    }
}
