//! CertCheck at fleet scale, over the in-memory kit: reachability asked a page at a time in
//! parallel, starts bounded by the configured concurrency, and a run bounded by its time budget
//! whose left-over hosts are started by the continuation. Every call to Run Command moves the
//! kit's clock on by a modelled latency, so the budget is spent in virtual time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rotation::error::AwsError;
use rotation::hosts::{CsrBatch, DeployBatch, HostAgent, Invocation, Reachability};
use rotation::Deps;
use state::ports::Enroller;
use state::record::{HostOverrides, StateKind};
use state::HostId;
use tests::kit::{Kit, ManualClock, MemoryAlerts, MemoryCa, MemoryHosts, MemoryStore};
use time::Duration;

fn host(i: usize) -> HostId {
    HostId::parse(&format!("mi-{:017x}", 0x5ca1e000 + i)).unwrap()
}

/// Calls in flight, and the most there ever were.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The kit's hosts behind a latency: each call yields to the other tasks for a moment (so calls
/// made at once overlap) and moves the virtual clock on by `latency`.
#[derive(Clone)]
struct Slow {
    inner: MemoryHosts,
    clock: ManualClock,
    latency: Duration,
    reach: Arc<Gauge>,
    sends: Arc<Gauge>,
}

impl Slow {
    async fn pause(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.clock.advance(self.latency);
    }
}

impl HostAgent for Slow {
    async fn reachability(
        &self,
        hosts: &[HostId],
    ) -> Result<HashMap<HostId, Reachability>, AwsError> {
        self.reach.enter();
        self.pause().await;
        self.reach.leave();
        self.inner.reachability(hosts).await
    }

    async fn request_csrs(&self, batch: &CsrBatch<'_>) -> Result<String, AwsError> {
        self.sends.enter();
        self.pause().await;
        self.sends.leave();
        self.inner.request_csrs(batch).await
    }

    async fn deploy(&self, batch: &DeployBatch<'_>) -> Result<String, AwsError> {
        self.inner.deploy(batch).await
    }

    async fn invocation(&self, command_id: &str, host: &HostId) -> Result<Invocation, AwsError> {
        self.inner.invocation(command_id, host).await
    }

    async fn command_for(
        &self,
        host: &HostId,
        document: rotation::hosts::Document,
        rotation: &state::RotationId,
    ) -> Result<Option<String>, AwsError> {
        self.inner.command_for(host, document, rotation).await
    }
}

type SlowDeps = Deps<MemoryStore, Slow, MemoryCa, MemoryAlerts>;

/// `n` enrolled, online hosts that were never issued (all due), and CertCheck's dependencies
/// over them with `env` applied; each Run Command call takes `latency` of virtual time.
async fn fleet(n: usize, env: &[(&str, &str)], latency: Duration) -> (Kit, Arc<SlowDeps>, Slow) {
    let kit = Kit::default();
    for i in 0..n {
        kit.store
            .enrol(&host(i), &HostOverrides::default())
            .await
            .unwrap();
        kit.hosts.add_host(&host(i));
    }
    let slow = Slow {
        inner: kit.hosts.clone(),
        clock: kit.clock.clone(),
        latency,
        reach: Arc::default(),
        sends: Arc::default(),
    };
    let d = kit.deps(Kit::config(env));
    let deps = Arc::new(Deps {
        store: d.store,
        hosts: slow.clone(),
        ca: d.ca,
        alerts: d.alerts,
        config: d.config,
    });
    (kit, deps, slow)
}

fn schedule() -> cert_check::step::request::Request {
    cert_check::step::request::parse_request(serde_json::json!({})).unwrap()
}

fn in_state(kit: &Kit, n: usize, kind: StateKind) -> usize {
    (0..n)
        .filter(|&i| kit.store.record(&host(i)).unwrap().unwrap().state.kind() == kind)
        .count()
}

#[tokio::test]
async fn reachability_is_asked_a_page_at_a_time_in_parallel_and_starts_are_bounded() {
    let n = 1_000;
    let env = [
        ("REACHABILITY_CONCURRENCY", "4"),
        ("START_CONCURRENCY", "3"),
    ];
    let (kit, deps, slow) = fleet(n, &env, Duration::milliseconds(50)).await;
    let started = std::time::Instant::now();
    let summary = cert_check::run(deps, schedule(), kit.clock.now())
        .await
        .unwrap();
    println!(
        "{n} hosts: {} reachability calls (at most {} at once), {} sends (at most {} at once), {:?} of wall time",
        slow.reach.calls(),
        slow.reach.most(),
        slow.sends.calls(),
        slow.sends.most(),
        started.elapsed()
    );
    assert_eq!(summary.started.len(), n);
    assert_eq!(in_state(&kit, n, StateKind::CsrRequested), n);
    // 1,000 hosts are 20 pages of 50, each asked once, four at a time.
    assert_eq!(slow.reach.calls(), n / 50);
    assert_eq!(slow.reach.most(), 4);
    // One GenerateCsr per 50 hosts, three batches at a time.
    assert_eq!(slow.sends.calls(), n / 50);
    assert_eq!(slow.sends.most(), 3);
}

/// A budget of `seconds` on the kit's clock, from now.
fn budget(kit: &Kit, seconds: i64) -> cert_check::Budget {
    let clock = kit.clock.clone();
    cert_check::Budget::new(
        Some(kit.clock.now() + Duration::seconds(seconds)),
        Arc::new(move || clock.now()),
    )
}

#[tokio::test]
async fn a_run_stops_starting_when_its_budget_is_spent_and_the_continuation_starts_the_rest() {
    let n = 400;
    // Two batches at once, each call to Run Command taking 0.5 s (8 reachability pages take 4):
    // a 5 s budget starts a few batches.
    let env = [("START_CONCURRENCY", "2")];
    let (kit, deps, slow) = fleet(n, &env, Duration::milliseconds(500)).await;
    let first = cert_check::run_within(deps.clone(), schedule(), kit.clock.now(), budget(&kit, 5))
        .await
        .unwrap();
    println!(
        "first run: {} started, {} left in 5 s of virtual time",
        first.started.len(),
        first.left.len()
    );
    assert!(first.budget_spent);
    assert!(!first.started.is_empty() && !first.left.is_empty());
    assert_eq!(first.started.len() + first.left.len(), n);
    // Every started host has its command recorded; no host left is claimed.
    assert_eq!(
        in_state(&kit, n, StateKind::CsrRequested),
        first.started.len()
    );
    let answer = first.report();
    assert!(answer.continuation);
    assert_eq!(answer.counts.left, first.left.len());

    // The continuation: the same request again, each with a fresh budget, until it asks for no
    // more. The hosts started before are in flight and not started twice.
    let mut runs = 1;
    let mut last = first;
    while last.report().continuation {
        runs += 1;
        assert!(runs < 20, "the continuation never ends");
        last = cert_check::run_within(deps.clone(), schedule(), kit.clock.now(), budget(&kit, 5))
            .await
            .unwrap();
    }
    println!("{n} hosts started in {runs} runs of 5 s");
    assert!(last.left.is_empty() && !last.budget_spent);
    assert_eq!(in_state(&kit, n, StateKind::CsrRequested), n);
    assert_eq!(slow.sends.calls(), n / 50, "one GenerateCsr per 50 hosts");
}

#[tokio::test]
async fn a_budget_spent_before_any_start_leaves_every_host_and_asks_no_continuation() {
    let n = 60;
    let (kit, deps, _) = fleet(n, &[], Duration::milliseconds(50)).await;
    let s = cert_check::run_within(deps, schedule(), kit.clock.now(), budget(&kit, 0))
        .await
        .unwrap();
    assert_eq!(s.left.len(), n);
    assert!(s.started.is_empty());
    // No progress: no continuation loop; the next schedule run (or reconcile pass) goes on.
    assert!(!s.report().continuation);
    assert_eq!(in_state(&kit, n, StateKind::CsrRequested), 0);
}
