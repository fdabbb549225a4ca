//! The event loop: timed events in virtual time, played out over the handlers and the models,
//! with the invariants checked after every step.
//!
//! Why one loop and one RNG: every random choice (event loss, delays, host failures) is drawn
//! here from one seeded generator in event order, the queue orders ties by insertion, the
//! handlers run one at a time on a paused single-thread runtime, and nothing reads the wall
//! clock: one seed gives one trace. Each step's line goes into a SHA-256 digest of the event
//! log, so two runs are compared by one hex string.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotation::alerts::AlertKind;
use sha2::{Digest, Sha256};
use state::ports::Enroller;
use state::record::{DeployedCert, HostOverrides, HostRecord, RotationState, StateKind};
use time::{Duration, OffsetDateTime};

use crate::kit::hosts::finished;
use crate::kit::{Kit, ManualClock};
use crate::sim::driver::{Driver, Payload, SimDeps};
use crate::sim::dynamo::SimStore;
use crate::sim::env::{Document, Effect, Env, Func};
use crate::sim::fleet::{host_id, host_index, Draws, HostBehaviour, Live, Ran, SimHost};
use crate::sim::lambda::{FunctionModel, Queued, SqsSource};
use crate::sim::pca::SimCa;
use crate::sim::report::{Observed, Sample};
use crate::sim::scenario::{Scenario, Start};
use crate::sim::sns::SimAlerts;
use crate::sim::ssm::SimHosts;

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone)]
enum Event {
    /// A schedule fires CertCheck.
    Schedule { reconcile: bool },
    /// An event reaches a function's asynchronous queue.
    Arrive(Queued),
    /// An invocation of `func` ended: its slot is free.
    SlotFree(Func),
    /// `func`'s SQS batching window closes: its event source mapping polls.
    Poll(Func),
    /// The agent runs a command on one of its hosts.
    HostRun(String, usize),
    /// A command's delivery timeout passes, on one of its hosts.
    DeliveryTimeout(String, usize),
    /// A host goes online or offline.
    Online { host: usize, online: bool },
    /// The fleet's state is sampled.
    Sample,
}

/// A broken invariant: what, at which step, under which seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Violation {
    /// The step (events processed before it).
    pub step: u64,
    /// Minutes of virtual time.
    pub minute: f64,
    /// The seed that replays it.
    pub seed: u64,
    /// What broke.
    pub what: String,
}

struct Command {
    document: Document,
    done: bool,
    /// When it finished on its host (the simulator forgets it some time after).
    done_at: Option<OffsetDateTime>,
}

/// Seconds a rotation takes once a returning host is reached (GenerateCsr, issuance, DeployCert),
/// with margin: a certificate that expires sooner after its host came back, plus a reconcile
/// pass, could not have been renewed on it.
const RETURN_GRACE_S: f64 = 300.0;

/// How long after they finish the simulator keeps commands and certificates.
const FORGET_AFTER: Duration = Duration::days(2);

/// One run of a scenario.
pub struct Sim {
    params: Scenario,
    origin: OffsetDateTime,
    end: OffsetDateTime,
    clock: ManualClock,
    env: Env,
    driver: Driver,
    store: SimStore,
    hosts: SimHosts,
    ca: crate::kit::MemoryCa,
    fleet: Vec<SimHost>,
    behaviour: HostBehaviour,
    queue: crate::sim::queue::EventQueue<Event>,
    functions: BTreeMap<Func, FunctionModel>,
    rng: StdRng,
    digest: Sha256,
    step: u64,
    /// Invocations by (command ID, host).
    commands: BTreeMap<(String, usize), Command>,
    expiries: BTreeSet<(i128, usize)>,
    episode_alerts: BTreeMap<usize, BTreeSet<String>>,
    violations: Vec<Violation>,
    trace: Option<String>,
    /// What the report is made of.
    pub observed: Observed,
    /// Called with the fraction of virtual time done (the progress bar).
    pub progress: Option<Box<dyn FnMut(f64)>>,
}

impl Sim {
    /// A fleet set up as `params` says, at the kit's start time.
    pub async fn new(params: Scenario) -> Sim {
        let clock = ManualClock::default();
        let origin = clock.now();
        let end = origin + Duration::seconds_f64(params.days * 86_400.0);
        let kit = Kit::new(clock.clone());
        let env = Env::new(params.clone(), origin);
        let store = SimStore::new(kit.store.clone(), env.clone());
        let hosts = SimHosts::new(kit.hosts.clone(), env.clone(), kit.store.clone());
        let ca = SimCa::new(kit.ca.clone(), env.clone());
        let alerts = SimAlerts::new(kit.alerts.clone(), env.clone());
        let validity = params.cert_validity_days.to_string();
        let config = Kit::config(&[("CERT_VALIDITY_DAYS", validity.as_str())]);
        let deps = SimDeps {
            store: store.clone(),
            hosts: hosts.clone(),
            ca,
            alerts,
            config,
        };
        let driver = Driver::new(deps, env.clone());
        let age = Duration::seconds_f64(params.max_event_age_s);
        let queue = |batch_size: u32, window_s: f64| SqsSource {
            batch_size: batch_size as usize,
            window: Duration::seconds_f64(window_s),
            visibility: Duration::seconds_f64(params.queue_visibility_s),
            max_receives: params.queue_max_receives,
            retention: Duration::seconds_f64(params.queue_retention_s),
        };
        let functions = [
            (
                Func::Check,
                FunctionModel::new(params.check_concurrency, age, params.max_retries),
            ),
            (
                Func::Issue,
                FunctionModel::with_queue(
                    params.issue_concurrency,
                    queue(params.issue_batch_size, params.issue_batch_window_s),
                ),
            ),
            (
                Func::Deploy,
                FunctionModel::new(params.deploy_concurrency, age, params.max_retries),
            ),
            (
                Func::DeployQueue,
                FunctionModel::with_queue(
                    params.deploy_queue_concurrency,
                    queue(params.deploy_batch_size, params.deploy_batch_window_s),
                ),
            ),
        ]
        .into_iter()
        .collect();
        let behaviour = HostBehaviour {
            reboot_rate: params.reboot_rate,
            openssl_failure: params.openssl_failure,
            foreign_csr: params.foreign_csr,
            verifies: params.host_verifies,
            real_crypto: params.real_crypto,
        };
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(params.seed),
            observed: Observed::new(params.fleet_size()),
            origin,
            end,
            clock,
            env,
            driver,
            store,
            hosts,
            ca: kit.ca.clone(),
            fleet: Vec::new(),
            behaviour,
            queue: crate::sim::queue::EventQueue::new(),
            functions,
            digest: Sha256::new(),
            step: 0,
            commands: BTreeMap::new(),
            expiries: BTreeSet::new(),
            episode_alerts: BTreeMap::new(),
            violations: Vec::new(),
            trace: std::env::var("SIM_TRACE").ok().filter(|t| !t.is_empty()),
            progress: None,
            params,
        };
        sim.populate().await;
        sim
    }

    /// Enrols the fleet, and schedules the schedules, the offline windows and the samples.
    async fn populate(&mut self) {
        let n = self.params.fleet_size() as usize;
        let policy = self.driver.config().plan.renewal;
        let lifetime = Duration::days(self.params.cert_validity_days);
        let renew_span = lifetime.as_seconds_f64() * (1.0 - policy.renew_share);
        for i in 0..n {
            let id = host_id(i);
            self.hosts.inner.add_host(&id);
            let mut host = SimHost::online();
            match self.params.start {
                Start::Enrolled => {
                    let _ = self.store.inner.enrol(&id, &HostOverrides::default()).await;
                    self.store.note_state(&id, StateKind::Idle);
                }
                Start::Deployed => {
                    let age = Duration::seconds_f64(self.rng.random::<f64>() * renew_span);
                    let not_before = self.origin - age;
                    let not_after = not_before + lifetime;
                    let serial = format!("{:x}", 0xa000_0000u64 + i as u64);
                    self.ca.adopt_serial(&serial);
                    let record = HostRecord {
                        host: id.clone(),
                        overrides: HostOverrides::default(),
                        version: Some(1),
                        state: RotationState::Deployed,
                        state_since: Some(not_before),
                        current: Some(DeployedCert {
                            serial: Some(serial),
                            not_before: Some(not_before),
                            not_after,
                            renew_at: Some(policy.renewal_point(&id, Some(not_before), not_after)),
                            cert_arn: None,
                        }),
                        attempts: Default::default(),
                    };
                    self.store.inner.put_record(&record);
                    self.store.note_state(&id, StateKind::Deployed);
                    let key = (i as u64).to_be_bytes().to_vec();
                    host.live = Some(Live {
                        key: key.clone(),
                        cert_key: key,
                        not_after,
                    });
                    self.expiries.insert((not_after.unix_timestamp_nanos(), i));
                }
            }
            if self.rng.random::<f64>() < self.params.offline_share {
                let off = self.origin + hours(self.params.offline_start_hours);
                self.queue.push(
                    off,
                    Event::Online {
                        host: i,
                        online: false,
                    },
                );
                let on = off + hours(self.params.offline_hours);
                self.queue.push(
                    on,
                    Event::Online {
                        host: i,
                        online: true,
                    },
                );
            }
            self.fleet.push(host);
        }
        // The schedule runs at 00:00 and 12:00 UTC; the reconcile pass every ten minutes.
        let since_midnight = self.origin.time().hour() as f64 * 3600.0
            + f64::from(self.origin.time().minute()) * 60.0;
        let period = self.params.schedule_hours * 3600.0;
        let first = (period - since_midnight.rem_euclid(period)).rem_euclid(period);
        self.queue.push(
            self.origin + Duration::seconds_f64(first),
            Event::Schedule { reconcile: false },
        );
        self.queue.push(
            self.origin + Duration::seconds_f64(self.params.reconcile_minutes * 60.0),
            Event::Schedule { reconcile: true },
        );
        self.queue.push(self.origin, Event::Sample);
    }

    /// Runs to the scenario's end.
    pub async fn run(&mut self) {
        let total = (self.end - self.origin).as_seconds_f64().max(1.0);
        let mut last_progress = 0.0;
        while let Some((at, event)) = self.queue.pop_until(self.end) {
            self.clock.advance_to(at);
            self.step += 1;
            let line = self.handle(event, at).await;
            // `SIM_TRACE=<text>`: the steps whose line contains it, to debug a seed step by step.
            if let Some(t) = &self.trace {
                if line.contains(t.as_str()) {
                    eprintln!("step {}: {line}", self.step);
                }
            }
            self.digest.update(line.as_bytes());
            self.digest.update(b"\n");
            self.check_expiries(at);
            let done = (at - self.origin).as_seconds_f64() / total;
            if done - last_progress >= 0.001 {
                last_progress = done;
                if let Some(p) = self.progress.as_mut() {
                    p(done);
                }
            }
            if self.params.stop_on_violation && !self.violations.is_empty() {
                break;
            }
        }
        self.clock.advance_to(self.end);
        self.check_expiries(self.end);
    }

    /// The hex SHA-256 of the event log so far.
    pub fn digest(&self) -> String {
        hex::encode(self.digest.clone().finalize())
    }

    /// Broken invariants so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Events processed.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The functions' figures.
    pub fn functions(&self) -> BTreeMap<Func, crate::sim::lambda::FunctionStats> {
        self.functions
            .iter()
            .map(|(f, m)| (*f, m.stats.clone()))
            .collect()
    }

    /// The models' call counts.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The store (hosts by state).
    pub fn store(&self) -> &SimStore {
        &self.store
    }

    /// The scenario.
    pub fn params(&self) -> &Scenario {
        &self.params
    }

    /// The start of virtual time.
    pub fn origin(&self) -> OffsetDateTime {
        self.origin
    }

    /// Hosts holding a certificate that is past its NotAfter at the end.
    pub fn expired_at_end(&self) -> usize {
        self.fleet
            .iter()
            .filter(|h| h.live.as_ref().is_none_or(|l| l.not_after <= self.end))
            .count()
    }

    fn violation(&mut self, at: OffsetDateTime, what: String) {
        tracing::error!(seed = self.params.seed, step = self.step, %what, "invariant broken");
        if self.violations.len() < 100 {
            self.violations.push(Violation {
                step: self.step,
                minute: (at - self.origin).as_seconds_f64() / 60.0,
                seed: self.params.seed,
                what,
            });
        }
    }

    async fn handle(&mut self, event: Event, now: OffsetDateTime) -> String {
        match event {
            Event::Schedule { reconcile } => {
                let every = if reconcile {
                    Duration::seconds_f64(self.params.reconcile_minutes * 60.0)
                } else {
                    hours(self.params.schedule_hours)
                };
                self.queue.push(now + every, Event::Schedule { reconcile });
                if !reconcile {
                    self.observed.runs.push(Default::default());
                }
                let q = Queued {
                    payload: Payload::Check { reconcile },
                    received: now,
                    retries: 0,
                };
                self.arrive(q, now).await;
                format!("{now} schedule reconcile={reconcile}")
            }
            Event::Arrive(q) => {
                let line = format!("{now} arrive {} retry={}", q.payload.describe(), q.retries);
                self.arrive(q, now).await;
                line
            }
            Event::SlotFree(func) => {
                if let Some(f) = self.functions.get_mut(&func) {
                    f.release();
                }
                self.dispatch(func, now).await;
                format!("{now} free {}", func.name())
            }
            Event::Poll(func) => {
                self.dispatch(func, now).await;
                format!("{now} poll {}", func.name())
            }
            Event::HostRun(id, host) => self.host_run(&id, host, now),
            Event::DeliveryTimeout(id, host) => {
                let Some(c) = self.commands.get_mut(&(id.clone(), host)) else {
                    return format!("{now} timeout {id} {host} gone");
                };
                if c.done {
                    return format!("{now} timeout {id} {host} done");
                }
                c.done = true;
                c.done_at = Some(now);
                let document = c.document;
                self.fleet[host].waiting.retain(|w| *w != id);
                let timed_out = finished(false, "DeliveryTimedOut", String::new(), "");
                self.hosts.inner.answer_on(&id, &host_id(host), timed_out);
                self.observed.delivery_timeouts += 1;
                let payload = Payload::status(&id, &host_id(host), document, "DeliveryTimedOut");
                self.emit(payload, now);
                format!("{now} timeout {id} {host}")
            }
            Event::Online { host, online } => {
                self.set_online(host, online, now);
                format!("{now} online {host} {online}")
            }
            Event::Sample => {
                self.sample(now);
                let every = Duration::seconds_f64(self.params.sample_minutes.max(1.0) * 60.0);
                self.queue.push(now + every, Event::Sample);
                format!("{now} sample")
            }
        }
    }

    fn set_online(&mut self, host: usize, online: bool, now: OffsetDateTime) {
        self.fleet[host].online = online;
        if online {
            self.fleet[host].online_since = Some(now);
        }
        self.hosts.inner.set_online(&host_id(host), online);
        if online {
            let run = Duration::seconds_f64(self.params.host_run_s);
            for id in std::mem::take(&mut self.fleet[host].waiting) {
                self.queue.push(now + run, Event::HostRun(id, host));
            }
        }
    }

    /// The agent runs command `id` on host `i`, if the host is online.
    fn host_run(&mut self, id: &str, i: usize, now: OffsetDateTime) -> String {
        let key = (id.to_owned(), i);
        let Some(c) = self.commands.get(&key) else {
            return format!("{now} run {id} {i} gone");
        };
        if c.done {
            return format!("{now} run {id} {i} done");
        }
        let document = c.document;
        if !self.fleet[i].online {
            self.fleet[i].waiting.push(id.to_owned());
            return format!("{now} run {id} {i} waits");
        }
        let Some(command) = self.hosts.inner.invocation_on(id, &host_id(i)) else {
            return format!("{now} run {id} {i} forgotten");
        };
        let draws = Draws {
            reboot: self.rng.random(),
            openssl: self.rng.random(),
            foreign: self.rng.random(),
        };
        let n = self.fleet.len();
        let (me, other) = (host_id(i), host_id((i + 1) % n));
        let ran = self.fleet[i].run(&me, &other, &command, &self.behaviour, draws);
        if let Some(c) = self.commands.get_mut(&key) {
            c.done = true;
            c.done_at = Some(now);
        }
        let (status, invocation) = match &ran {
            Ran::Success(stdout) => ("Success", finished(true, "Success", stdout.clone(), "")),
            Ran::Failed(stderr) => ("Failed", finished(false, "Failed", String::new(), stderr)),
            Ran::Rebooted => {
                let rebooted = "ERROR: the host rebooted mid-command";
                self.observed.reboots += 1;
                self.set_online(i, false, now);
                let back = Duration::seconds_f64(self.params.reboot_minutes * 60.0);
                self.queue.push(
                    now + back,
                    Event::Online {
                        host: i,
                        online: true,
                    },
                );
                ("Failed", finished(false, "Failed", String::new(), rebooted))
            }
        };
        self.hosts.inner.answer_on(id, &me, invocation);
        if document == Document::Deploy && matches!(ran, Ran::Success(_)) {
            self.episode_alerts.remove(&i);
            if let Some(live) = self.fleet[i].live.clone() {
                if live.key != live.cert_key {
                    self.violation(
                        now,
                        format!("live pair: {me} holds a certificate for another key"),
                    );
                }
                self.expiries
                    .insert((live.not_after.unix_timestamp_nanos(), i));
            }
        }
        self.emit(Payload::status(id, &me, document, status), now);
        format!("{now} run {id} {me} {status}")
    }

    /// EventBridge delivers `payload` best effort: lost, delayed, or twice.
    fn emit(&mut self, payload: Payload, now: OffsetDateTime) {
        if self.rng.random::<f64>() < self.params.event_loss {
            self.observed.events_lost += 1;
            return;
        }
        let copies = if self.rng.random::<f64>() < self.params.event_duplication {
            self.observed.events_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let u: f64 = self.rng.random();
            let delay = -self.params.event_delay_s * (1.0 - u).ln();
            let at = now + Duration::seconds_f64(delay);
            self.queue.push(
                at,
                Event::Arrive(Queued {
                    payload: payload.clone(),
                    received: at,
                    retries: 0,
                }),
            );
        }
    }

    async fn arrive(&mut self, q: Queued, now: OffsetDateTime) {
        let func = q.payload.target();
        if let Some(f) = self.functions.get_mut(&func) {
            f.enqueue(q);
        }
        self.dispatch(func, now).await;
    }

    /// Starts what `func`'s queue and concurrency allow at `now`; while an SQS batch is
    /// still being gathered, polls again when its window closes.
    async fn dispatch(&mut self, func: Func, now: OffsetDateTime) {
        loop {
            let Some(f) = self.functions.get_mut(&func) else {
                return;
            };
            let Some(batch) = f.next_batch(now) else {
                if let Some(at) = f.gathering(now) {
                    self.queue.push(at, Event::Poll(func));
                }
                return;
            };
            self.invoke(func, batch, now).await;
        }
    }

    /// One invocation at `now`: the handler, its modelled duration, its effects played out.
    async fn invoke(&mut self, func: Func, batch: Vec<Queued>, now: OffsetDateTime) {
        let timeout = match func {
            Func::Check => self.params.check_timeout_s,
            Func::Issue => self.params.issue_timeout_s,
            Func::Deploy | Func::DeployQueue => self.params.deploy_timeout_s,
        };
        let kill = self.env.begin(func, now, timeout);
        let payloads: Vec<Payload> = batch.iter().map(|q| q.payload.clone()).collect();
        let results = {
            let run = self.driver.invoke_batch(&payloads, now);
            tokio::select! {
                biased;
                r = run => Some(r),
                () = kill.notified() => None,
            }
        };
        let (seconds, killed) = self.env.end();
        let failed: Vec<bool> = match &results {
            Some(r) => r.iter().map(Result::is_err).collect(),
            None => vec![true; batch.len()],
        };
        if let Some(f) = self.functions.get_mut(&func) {
            f.ran(batch.len(), seconds, failed.iter().any(|f| *f), killed);
        }
        self.queue
            .push(now + Duration::seconds_f64(seconds), Event::SlotFree(func));
        let is_run = batch
            .iter()
            .any(|q| matches!(q.payload, Payload::Check { reconcile: false }));
        if killed {
            self.observed
                .note(format!("{} killed at its timeout", func.name()));
        } else if let Some(results) = &results {
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                self.observed
                    .note(format!("{}: {}", func.name(), first_words(e)));
            }
        }
        for (q, failed) in batch.into_iter().zip(failed) {
            if !failed {
                continue;
            }
            let retry = self.functions.get_mut(&func).and_then(|f| f.retry(q, now));
            if let Some((at, q)) = retry {
                self.queue.push(at, Event::Arrive(q));
            }
        }
        for effect in self.env.take_effects() {
            self.play(effect, now, is_run);
        }
        let broken = std::mem::take(&mut self.env.lock().violations);
        for what in broken {
            self.violation(now, what);
        }
    }

    fn play(&mut self, effect: Effect, now: OffsetDateTime, in_run: bool) {
        match effect {
            Effect::Sent {
                command_id,
                host,
                document,
                at,
            } => {
                let Some(i) = host_index(&host) else {
                    return;
                };
                if document == Document::Csr {
                    self.observed.rotations_started += 1;
                    if in_run {
                        if let Some(run) = self.observed.runs.last_mut() {
                            run.started += 1;
                        }
                    }
                }
                self.commands.insert(
                    (command_id.clone(), i),
                    Command {
                        document,
                        done: false,
                        done_at: None,
                    },
                );
                let at = at.max(now);
                let run = Duration::seconds_f64(self.params.host_run_s);
                self.queue
                    .push(at + run, Event::HostRun(command_id.clone(), i));
                let timeout = Duration::seconds_f64(self.params.delivery_timeout_s);
                self.queue
                    .push(at + timeout, Event::DeliveryTimeout(command_id, i));
            }
            Effect::Issued { arn, ready_at } => {
                self.observed.issued(
                    ready_at - Duration::seconds_f64(self.params.pca_issue_delay_s),
                    self.origin,
                );
                if let Some(run) = self.observed.runs.last_mut() {
                    run.issued += 1;
                }
                let at = ready_at.max(now);
                self.emit(Payload::Issued { cert_arn: arn }, at);
            }
            Effect::Alerted(alert) => {
                self.observed.alert(&alert);
                if alert.kind == AlertKind::Digest {
                    return;
                }
                let Some(i) = alert
                    .host
                    .as_deref()
                    .and_then(|h| state::HostId::parse(h).ok())
                    .and_then(|h| host_index(&h))
                else {
                    return;
                };
                let kind = format!("{:?}", alert.kind);
                if !self
                    .episode_alerts
                    .entry(i)
                    .or_default()
                    .insert(kind.clone())
                {
                    let host = host_id(i);
                    self.violation(
                        now,
                        format!("one alert per episode: {host} alerted {kind} twice"),
                    );
                }
            }
        }
    }

    /// Certificates whose NotAfter passed: on an online host, an invariant broken.
    fn check_expiries(&mut self, now: OffsetDateTime) {
        let limit = now.unix_timestamp_nanos();
        while let Some(&(at, i)) = self.expiries.first() {
            if at > limit {
                break;
            }
            self.expiries.pop_first();
            let host = &self.fleet[i];
            let current = host
                .live
                .as_ref()
                .is_some_and(|l| l.not_after.unix_timestamp_nanos() == at);
            if !current {
                continue;
            }
            // Back for less than a reconcile pass and a rotation: too late to be rotated in time.
            let grace =
                Duration::seconds_f64(self.params.reconcile_minutes * 60.0 + RETURN_GRACE_S);
            let just_back = host.online_since.is_some_and(|t| now - t < grace);
            if host.online && just_back {
                self.observed.expired_on_return += 1;
            } else if host.online {
                self.observed.expired += 1;
                let id = host_id(i);
                self.violation(now, format!("no online host's certificate expires: {id}"));
            } else {
                self.observed.expired_offline += 1;
            }
        }
    }

    fn sample(&mut self, now: OffsetDateTime) {
        let states = self.store.states();
        let counts = states
            .counts()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        drop(states);
        let offline = self.fleet.iter().filter(|h| !h.online).count() as u64;
        let waiting = self
            .functions
            .iter()
            .map(|(f, m)| (f.name().to_owned(), m.waiting() as u64))
            .collect();
        self.observed.samples.push(Sample {
            minute: (now - self.origin).as_seconds_f64() / 60.0,
            states: counts,
            offline,
            queued: waiting,
        });
        // A long run forgets commands finished, and certificates issued, more than two days
        // ago (memory: Run Command keeps them 30 days, but nothing the pipeline does asks about
        // one that old: the reconciler asks within hours, even after a 36-hour outage).
        if self.observed.samples.len() % 36 == 0 {
            let before = now - FORGET_AFTER;
            let old: Vec<(String, state::HostId)> = self
                .commands
                .iter()
                .filter(|(_, c)| c.done_at.is_some_and(|t| t < before))
                .map(|((id, i), _)| (id.clone(), host_id(*i)))
                .collect();
            self.hosts.inner.forget(&old);
            self.commands
                .retain(|_, c| c.done_at.is_none_or(|t| t >= before));
            self.ca.forget_issued_before(before);
        }
    }
}

fn hours(h: f64) -> Duration {
    Duration::seconds_f64(h * 3600.0)
}

fn first_words(e: &str) -> String {
    let cut: String = e.chars().take(80).collect();
    cut.split(|c: char| c.is_ascii_digit())
        .next()
        .unwrap_or("")
        .to_owned()
}
