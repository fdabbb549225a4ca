//! The running invocation as the AWS models see it: its virtual time, its deadline, the calls
//! it made, and what they set in motion.
//!
//! Why: a handler runs as one atomic step of the event loop, but a real invocation takes time
//! (each call's latency, the SDK's backoff, the handler's own waits), and the quotas are per
//! second. So every modelled call advances the invocation's own cursor (in CertCheck's
//! concurrent section by 1/16 of its latency, as 16 rotations start at once), the token buckets
//! are asked at the cursor's time, and a call that would start past the function's timeout kills
//! the invocation there, as Lambda does: what happened before it stays, the rest never runs.
//! What a call sets in motion (a command sent, a certificate issued, an alert) is recorded as an
//! [`Effect`] for the event loop to play out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotation::alerts::Alert;
use state::HostId;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use crate::sim::bucket::TokenBucket;
use crate::sim::scenario::Scenario;

/// The four functions (the CRL processor is not driven by the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Func {
    /// CertCheck (schedule runs and reconcile passes).
    Check,
    /// CertIssue.
    Issue,
    /// CertDeploy, on the DeployCert status events (asynchronous invocation).
    Deploy,
    /// CertDeploy, on the issuance events its SQS queue batches.
    DeployQueue,
}

impl Func {
    /// The function's name as the report spells it.
    pub fn name(self) -> &'static str {
        match self {
            Func::Check => "cert-check",
            Func::Issue => "cert-issue",
            Func::Deploy => "cert-deploy",
            Func::DeployQueue => "cert-deploy-queue",
        }
    }
}

/// Which Run Command document a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// GenerateCsr.
    Csr,
    /// DeployCert.
    Deploy,
}

/// Something a call set in motion, for the event loop.
#[derive(Debug, Clone)]
pub enum Effect {
    /// SendCommand succeeded.
    Sent {
        /// The command.
        command_id: String,
        /// Its host.
        host: HostId,
        /// Its document.
        document: Document,
        /// When SendCommand answered.
        at: OffsetDateTime,
    },
    /// Private CA issued a new certificate (not a token replay).
    Issued {
        /// Its ARN.
        arn: String,
        /// When GetCertificate answers it (and the issuance event is sent).
        ready_at: OffsetDateTime,
    },
    /// An alert was published.
    Alerted(Alert),
}

/// Calls made, by service and operation, and those throttled.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallCounts {
    /// Calls that reached the service (each SDK attempt counts).
    pub calls: BTreeMap<String, u64>,
    /// Attempts refused by a quota.
    pub throttled: BTreeMap<String, u64>,
    /// Calls the handler saw fail with throttling (after the SDK's attempts).
    pub throttled_after_retries: BTreeMap<String, u64>,
    /// DynamoDB read request units.
    pub ddb_read_units: f64,
    /// DynamoDB write request units.
    pub ddb_write_units: f64,
}

/// A call that would start after the function's timeout: the invocation is dead.
#[derive(Debug, Clone, Copy)]
pub struct Killed;

/// The shared invocation context. Clones share it.
#[derive(Clone)]
pub struct Env {
    inner: Arc<Mutex<EnvState>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// What [`Env`] holds.
pub struct EnvState {
    /// The scenario's numbers.
    pub params: Scenario,
    /// Run start (outage and storm windows are measured from it).
    pub origin: OffsetDateTime,
    /// The invocation's start.
    pub start: OffsetDateTime,
    /// Modelled busy time so far, seconds.
    pub busy_s: f64,
    /// The tokio instant at the start (the handler's own sleeps advance tokio's paused clock).
    pub tokio_start: tokio::time::Instant,
    /// Seconds from the start after which no call runs.
    pub deadline_s: f64,
    /// Which function runs.
    pub func: Func,
    /// Whether the invocation was killed at its timeout.
    pub killed: bool,
    /// Woken when the invocation is killed.
    pub kill: Arc<Notify>,
    /// IssueCertificate's quota.
    pub pca_issue: TokenBucket,
    /// GetCertificate's quota.
    pub pca_get: TokenBucket,
    /// RevokeCertificate's quota.
    pub pca_revoke: TokenBucket,
    /// SendCommand's rate.
    pub ssm_send: TokenBucket,
    /// The models' own randomness (DynamoDB throttling).
    pub rng: StdRng,
    /// Calls so far.
    pub counts: CallCounts,
    /// What the calls set in motion, not yet played out.
    pub effects: Vec<Effect>,
    /// Broken invariants the models saw (the event loop adds the step).
    pub violations: Vec<String>,
    /// The host each rotation's commands went to (CSR names are checked against it).
    pub rotation_hosts: BTreeMap<String, HostId>,
    /// New certificates per idempotency token (= rotation).
    pub issued_per_token: BTreeMap<String, u32>,
    /// IssueCertificate calls whose token was replayed.
    pub token_replays: u64,
}

impl Env {
    /// A context for `params`, starting at `origin`.
    pub fn new(params: Scenario, origin: OffsetDateTime) -> Self {
        let s = &params;
        let state = EnvState {
            pca_issue: TokenBucket::new(s.pca_issue_rate, s.pca_issue_rate),
            pca_get: TokenBucket::new(s.pca_get_rate, s.pca_get_rate),
            pca_revoke: TokenBucket::new(s.pca_revoke_rate, s.pca_revoke_rate),
            ssm_send: TokenBucket::new(s.ssm_send_rate, s.ssm_send_burst),
            rng: StdRng::seed_from_u64(s.seed ^ 0xe4f_5eed),
            origin,
            start: origin,
            busy_s: 0.0,
            tokio_start: tokio::time::Instant::now(),
            deadline_s: f64::MAX,
            func: Func::Check,
            killed: false,
            kill: Arc::new(Notify::new()),
            counts: CallCounts::default(),
            effects: Vec::new(),
            violations: Vec::new(),
            rotation_hosts: BTreeMap::new(),
            issued_per_token: BTreeMap::new(),
            token_replays: 0,
            params,
        };
        Env {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, EnvState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begins an invocation of `func` at `now` with `timeout_s`; returns what wakes on a kill.
    pub fn begin(&self, func: Func, now: OffsetDateTime, timeout_s: f64) -> Arc<Notify> {
        let mut s = self.lock();
        s.func = func;
        s.start = now;
        s.busy_s = s.params.lambda_overhead_ms / 1000.0;
        s.tokio_start = tokio::time::Instant::now();
        s.deadline_s = timeout_s;
        s.killed = false;
        s.kill = Arc::new(Notify::new());
        s.kill.clone()
    }

    /// Ends the invocation: its modelled duration, seconds (the timeout if it was killed).
    pub fn end(&self) -> (f64, bool) {
        let s = self.lock();
        if s.killed {
            return (s.deadline_s, true);
        }
        (s.elapsed_s(), false)
    }

    /// Takes the effects recorded since the last call.
    pub fn take_effects(&self) -> Vec<Effect> {
        std::mem::take(&mut self.lock().effects)
    }

    /// Accounts one attempt of `service`'s `op` taking `latency_ms` (divided by 16 inside
    /// CertCheck's concurrent section when `concurrent`); returns the attempt's virtual time.
    pub fn call(
        &self,
        service: &str,
        op: &str,
        latency_ms: f64,
        concurrent: bool,
    ) -> Result<OffsetDateTime, Killed> {
        let mut s = self.lock();
        let at_s = s.elapsed_s();
        if at_s > s.deadline_s {
            if !s.killed {
                s.killed = true;
                s.kill.notify_one();
            }
            return Err(Killed);
        }
        let share = if concurrent && s.func == Func::Check {
            16.0
        } else {
            1.0
        };
        s.busy_s += latency_ms / 1000.0 / share;
        *s.counts.calls.entry(format!("{service}:{op}")).or_default() += 1;
        Ok(s.start + Duration::seconds_f64(at_s))
    }

    /// The invocation's current virtual time.
    pub fn now(&self) -> OffsetDateTime {
        let s = self.lock();
        s.start + Duration::seconds_f64(s.elapsed_s())
    }

    /// Waits `seconds` of SDK backoff inside the invocation.
    pub fn backoff(&self, seconds: f64) {
        let mut s = self.lock();
        let share = if s.func == Func::Check { 16.0 } else { 1.0 };
        s.busy_s += seconds / share;
    }

    /// Counts an attempt refused by a quota.
    pub fn throttled(&self, service: &str, op: &str) {
        *self
            .lock()
            .counts
            .throttled
            .entry(format!("{service}:{op}"))
            .or_default() += 1;
    }

    /// Counts a call that failed with throttling after every SDK attempt.
    pub fn throttled_after_retries(&self, service: &str, op: &str) {
        *self
            .lock()
            .counts
            .throttled_after_retries
            .entry(format!("{service}:{op}"))
            .or_default() += 1;
    }

    /// Records an effect.
    pub fn effect(&self, effect: Effect) {
        self.lock().effects.push(effect);
    }

    /// Records a broken invariant.
    pub fn violation(&self, what: String) {
        self.lock().violations.push(what);
    }

    /// Whether `at` falls in the window starting `start_hours` after the origin, `hours` long.
    pub fn in_window(&self, at: OffsetDateTime, start_hours: f64, hours: f64) -> bool {
        if start_hours < 0.0 || hours <= 0.0 {
            return false;
        }
        let h = (at - self.lock().origin).as_seconds_f64() / 3600.0;
        h >= start_hours && h < start_hours + hours
    }

    /// A uniform draw in [0, 1) from the models' own generator.
    pub fn draw(&self) -> f64 {
        self.lock().rng.random::<f64>()
    }
}

impl EnvState {
    /// Seconds since the invocation began: modelled calls plus the handler's own waits.
    fn elapsed_s(&self) -> f64 {
        self.busy_s + self.tokio_start.elapsed().as_secs_f64()
    }
}

/// Returns from an async port method with a future that never finishes once the invocation is
/// killed (the event loop drops it when the kill wakes).
#[macro_export]
macro_rules! sim_call {
    ($env:expr, $service:expr, $op:expr, $latency:expr, $concurrent:expr) => {
        match $env.call($service, $op, $latency, $concurrent) {
            Ok(at) => at,
            Err($crate::sim::env::Killed) => std::future::pending().await,
        }
    };
}
