//! An event router that delivers the local stack's events as badly as EventBridge may.
//!
//! Why: EventBridge delivers at least once and in no particular order, and a service's event can
//! reach a handler before the handler that caused it has finished writing (Private CA announces
//! an issuance while CertIssue is still recording ISSUING). `LocalStack::settle` delivers
//! politely: after the cause finished, one event at a time. [`settle_chaos`] delivers by a
//! seeded [`DeliveryPolicy`], each copy of each event with a [`Timing`]:
//!
//! - [`Timing::InOrder`] — as `settle` does, when nothing else is running;
//! - [`Timing::Early`] — the moment it is on the bus, concurrently with whatever runs, including
//!   the handler whose call produced it;
//! - [`Timing::Concurrent`] — when its turn comes, without waiting for running handlers;
//! - [`Timing::Late`] — held back until everything else is quiet, so after later events;
//! - [`Timing::Never`] — lost.
//!
//! and with a chance of a second copy (its own timing drawn again). A retryable handler error is
//! redelivered after 100 ms as Lambda's async retry would, at most five times (then the event is
//! recorded as exhausted, where Lambda would hand it to the failure destination). A share of
//! deliveries can be killed mid-way ([`DeliveryPolicy::kills`]): the handler's future is dropped
//! after a drawn delay, wherever it is (in the middle of an AWS call, between two writes), as a
//! Lambda timeout or crash stops it, and the event is redelivered as a retry. Every delivery
//! is logged with its timing and its start and end, so a test can show what really happened,
//! and [`settle_chaos_checked`] runs a check of the whole system after each one.
//!
//! Fates are drawn per event from the seed, the event's kind, its host (when the event names
//! one) and how many such events came before: the same seed gives the same fates to the same
//! hosts' events even when concurrent hosts interleave differently.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::time::Instant;

use crate::stack::LocalStack;

/// The kinds of event the stack routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Run Command status of a GenerateCsr invocation (to CertIssue).
    CsrStatus,
    /// Run Command status of a DeployCert invocation (to CertDeploy).
    DeployStatus,
    /// Private CA's certificate issuance (to CertDeploy).
    Issuance,
    /// A CRL object written to the CRL bucket (to CRLProcessor).
    CrlObject,
    /// Anything else (no rule matches it).
    Other,
}

impl EventKind {
    /// The kind of `event` under the stack's configuration. Run Command's command-level events
    /// and its intermediate invocation statuses (`Pending`, `InProgress`, …) match no rule of the
    /// stack: they are [`EventKind::Other`].
    pub fn of(event: &Value, config: &rotation::Config) -> EventKind {
        let document = event["detail"]["document-name"].as_str();
        let terminal = matches!(
            event["detail"]["status"].as_str(),
            Some(
                "Success"
                    | "Failed"
                    | "TimedOut"
                    | "Cancelled"
                    | "Undeliverable"
                    | "Terminated"
                    | "DeliveryTimedOut"
                    | "ExecutionTimedOut"
            )
        );
        let invocation =
            event["detail-type"].as_str() == Some(rotation::events::SSM_INVOCATION_STATUS);
        match event["source"].as_str().unwrap_or_default() {
            "aws.ssm" if !terminal || !invocation => EventKind::Other,
            "aws.ssm" if document == Some(config.generate_csr_document.as_str()) => {
                EventKind::CsrStatus
            }
            "aws.ssm" if document == Some(config.deploy_cert_document.as_str()) => {
                EventKind::DeployStatus
            }
            "aws.acm-pca" => EventKind::Issuance,
            "aws.s3" => EventKind::CrlObject,
            _ => EventKind::Other,
        }
    }

    /// What identifies the event's subject across runs: the instance of a Run Command event,
    /// the object key of an S3 event; empty when the event names nothing stable (an issuance
    /// names only a certificate ARN, which is new each run).
    fn key(event: &Value) -> String {
        let d = &event["detail"];
        d["instance-id"]
            .as_str()
            .or_else(|| d["object"]["key"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

/// When one copy of an event is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timing {
    /// When nothing else is running (as `LocalStack::settle`).
    InOrder,
    /// As soon as it is on the bus, concurrently with whatever runs.
    Early,
    /// When its turn comes, concurrently with the handlers still running.
    Concurrent,
    /// After everything else is quiet.
    Late,
    /// Lost.
    Never,
}

/// Chances for one kind of event, each in `0.0..=1.0`. `early + concurrent + late + never`
/// should not exceed 1; the rest is in order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// A copy is delivered early.
    pub early: f64,
    /// A copy is delivered concurrently.
    pub concurrent: f64,
    /// A copy is delivered late.
    pub late: f64,
    /// A copy is lost.
    pub never: f64,
    /// The event is delivered twice.
    pub twice: f64,
}

/// How [`settle_chaos`] treats events: rates per kind, a default, and a seed.
#[derive(Clone, Debug, Default)]
pub struct DeliveryPolicy {
    seed: u64,
    default: Rates,
    kinds: HashMap<EventKind, Rates>,
    kill: f64,
}

/// How many times a handler of a kind not seen finishing yet is taken to wait (a kill is drawn
/// within them).
const FIRST_GUESS: u32 = 20;

impl DeliveryPolicy {
    /// Every event once, in order, until rates are set.
    pub fn seeded(seed: u64) -> Self {
        DeliveryPolicy {
            seed,
            ..Self::default()
        }
    }

    /// Rates for kinds that have none of their own.
    pub fn all(mut self, rates: Rates) -> Self {
        self.default = rates;
        self
    }

    /// Rates for one kind.
    pub fn kind(mut self, kind: EventKind, rates: Rates) -> Self {
        self.kinds.insert(kind, rates);
        self
    }

    /// Kills this share (`0.0..=1.0`) of deliveries mid-way, retries included.
    pub fn kills(mut self, rate: f64) -> Self {
        self.kill = rate;
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether the run named `what` (an event's kind, key, copy and attempt; or a scheduled
    /// run's name) is killed, and at which of its waits: a share of `typical`, how many times
    /// such a run has been waiting (on AWS calls, mostly) before it finished. A handler dies at
    /// a wait as a frozen Lambda does: what it wrote stays, the rest never happens. Counting
    /// waits rather than time makes a drawn kill land in a fast handler as in a slow one (a
    /// kill drawn in time let most fire after a fast handler had finished). Whether, and at
    /// which share, is drawn from the seed and the name only.
    pub fn kill_at(&self, what: &str, typical: u32) -> Option<u32> {
        if self.kill <= 0.0 {
            return None;
        }
        let mut h = Fnv::new(self.seed);
        h.write(format!("kill/{what}").as_bytes());
        let mut rng = StdRng::seed_from_u64(h.0);
        (rng.random::<f64>() < self.kill)
            .then(|| ((f64::from(typical.max(1)) * rng.random_range(0.0..0.9)) as u32).max(1))
    }

    /// The timings of the copies of the `nth` (0-based) event of `kind` about `key`.
    pub fn fates(&self, kind: EventKind, key: &str, nth: u64) -> Vec<Timing> {
        let r = self.kinds.get(&kind).copied().unwrap_or(self.default);
        let mut h = Fnv::new(self.seed);
        h.write(format!("{kind:?}/{key}/{nth}").as_bytes());
        let mut rng = StdRng::seed_from_u64(h.0);
        let copies = if rng.random::<f64>() < r.twice { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let u: f64 = rng.random();
                let steps = [
                    (r.early, Timing::Early),
                    (r.concurrent, Timing::Concurrent),
                    (r.late, Timing::Late),
                    (r.never, Timing::Never),
                ];
                let mut edge = 0.0;
                for (p, t) in steps {
                    edge += p;
                    if u < edge {
                        return t;
                    }
                }
                Timing::InOrder
            })
            .collect()
    }
}

/// FNV-1a, seeded: a hash that is the same in every build (std's is not promised to be).
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Self {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.write(&seed.to_le_bytes());
        h
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What became of one delivery.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The handler returned this.
    Handled(Value),
    /// No rule routes the event.
    NoRule,
    /// The handler failed retryably; the event is redelivered.
    Retried(String),
    /// The handler failed retryably once too often; Lambda would give up here.
    Exhausted(String),
    /// The copy was lost ([`Timing::Never`]).
    Lost,
    /// The handler was stopped this long after it started (a timeout or crash); the event is
    /// redelivered.
    Killed(Duration),
}

/// One delivery of one copy of an event.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The event's `id`.
    pub event_id: String,
    /// Its kind.
    pub kind: EventKind,
    /// Its host or object key (empty for issuances).
    pub key: String,
    /// How many events of this kind and key came before it (what its fate was drawn for).
    pub nth: u64,
    /// 0 for the first copy, 1 for the duplicate.
    pub copy: u8,
    /// When the copy was delivered.
    pub timing: Timing,
    /// 0 for the first delivery, then Lambda's retries.
    pub attempt: u32,
    /// When the handler started, since the router started (equal to `finished` for lost copies).
    pub started: Duration,
    /// When it finished.
    pub finished: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything [`settle_chaos`] delivered, in the order deliveries finished.
#[derive(Clone, Debug, Default)]
pub struct DeliveryReport {
    /// The deliveries.
    pub deliveries: Vec<Delivered>,
}

impl DeliveryReport {
    /// The deliveries of one kind.
    pub fn of(&self, kind: EventKind) -> Vec<&Delivered> {
        self.deliveries.iter().filter(|d| d.kind == kind).collect()
    }

    /// The first deliveries' timings by kind, key and copy, sorted: what the policy drew.
    pub fn fates(&self) -> Vec<(EventKind, String, u8, Timing)> {
        let mut f: Vec<_> = self
            .deliveries
            .iter()
            .filter(|d| d.attempt == 0)
            .map(|d| (d.kind, d.key.clone(), d.copy, d.timing))
            .collect();
        f.sort();
        f
    }
}

/// One copy waiting for its delivery.
struct Pending {
    event: Value,
    kind: EventKind,
    key: String,
    nth: u64,
    copy: u8,
    timing: Timing,
    attempt: u32,
    not_before: Instant,
}

struct Finished {
    pending: Pending,
    started: Instant,
    /// None: the handler was killed.
    result: Option<Result<Option<Value>, lambda_runtime::Error>>,
    /// How many times the handler waited.
    waits: u32,
}

type Running<'a> = Vec<Pin<Box<dyn Future<Output = Finished> + 'a>>>;

/// Lambda's async retries of one event, as `LocalStack::settle` counts them.
const MAX_RETRIES: u32 = 5;

/// Delivers events until the system is quiet, by `policy`; the handlers' outcomes are appended
/// to `stack.outcomes` as `settle` does.
pub async fn settle_chaos(
    stack: &mut LocalStack,
    policy: &DeliveryPolicy,
) -> anyhow::Result<DeliveryReport> {
    settle_chaos_checked(stack, policy, &mut |_, _| Ok(())).await
}

/// What [`settle_chaos_checked`] runs after every delivery: the stack, and the delivery that
/// just finished. An error stops the settling and is returned, naming the delivery.
pub type Check<'c> = dyn FnMut(&LocalStack, &Delivered) -> anyhow::Result<()> + 'c;

/// [`settle_chaos`], running `check` after every delivery (lost copies included), so a test
/// can assert what must hold at every moment, not only at the end.
pub async fn settle_chaos_checked(
    stack: &mut LocalStack,
    policy: &DeliveryPolicy,
    check: &mut Check<'_>,
) -> anyhow::Result<DeliveryReport> {
    let report = route(stack, policy, check).await?;
    stack
        .outcomes
        .extend(report.deliveries.iter().filter_map(|d| match &d.outcome {
            Outcome::Handled(v) => Some(v.clone()),
            _ => None,
        }));
    Ok(report)
}

async fn route(
    stack: &LocalStack,
    policy: &DeliveryPolicy,
    check: &mut Check<'_>,
) -> anyhow::Result<DeliveryReport> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(300);
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut late: Vec<Pending> = Vec::new();
    let mut running: Running<'_> = Vec::new();
    let mut seen: HashMap<(EventKind, String), u64> = HashMap::new();
    let mut report = DeliveryReport::default();
    let mut typical = Typical::default();
    let since = |t: Instant| t.duration_since(t0);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "events never settled");
        for event in stack.bus.drain() {
            let kind = EventKind::of(&event, &stack.config);
            let key = EventKind::key(&event);
            let count = seen.entry((kind, key.clone())).or_default();
            let nth = *count;
            *count += 1;
            let fates = policy.fates(kind, &key, nth);
            for (copy, timing) in fates.into_iter().enumerate() {
                let p = Pending {
                    event: event.clone(),
                    kind,
                    key: key.clone(),
                    nth,
                    copy: copy as u8,
                    timing,
                    attempt: 0,
                    not_before: Instant::now(),
                };
                match timing {
                    Timing::Early => start(stack, policy, &typical, p, &mut running),
                    Timing::Late => late.push(p),
                    Timing::Never => {
                        let now = since(Instant::now());
                        let d = delivered(&p, now, now, Outcome::Lost);
                        checked(stack, check, &d)?;
                        report.deliveries.push(d);
                    }
                    Timing::InOrder | Timing::Concurrent => queue.push_back(p),
                }
            }
        }
        // Start what may start: concurrent copies at once, in-order ones when nothing runs.
        while let Some(head) = queue.front() {
            let go = head.not_before <= Instant::now()
                && (head.timing == Timing::Concurrent || running.is_empty());
            if !go {
                break;
            }
            if let Some(p) = queue.pop_front() {
                start(stack, policy, &typical, p, &mut running);
            }
        }
        if running.is_empty() && queue.is_empty() {
            // Quiet, unless a host command is still running: its status event is to come.
            tokio::select! {
                _ = stack.ssm.wait_idle() => {}
                _ = stack.bus.wait_for(Duration::from_secs(3600), |_| true) => continue,
            }
            if !stack.bus.is_empty() {
                continue;
            }
            if late.is_empty() {
                return Ok(report);
            }
            queue.extend(late.drain(..));
            continue;
        }
        let wake = queue
            .front()
            .map(|p| p.not_before)
            .filter(|t| *t > Instant::now());
        tokio::select! {
            done = next_finished(&mut running), if !running.is_empty() => {
                let Finished { mut pending, started, result, waits } = done;
                let (s, f) = (since(started), since(Instant::now()));
                if result.is_some() {
                    typical.finished(pending.kind, waits);
                }
                let outcome = match result {
                    None => Outcome::Killed(f.saturating_sub(s)),
                    Some(Ok(Some(v))) => Outcome::Handled(v),
                    Some(Ok(None)) => Outcome::NoRule,
                    Some(Err(e)) if pending.attempt >= MAX_RETRIES => Outcome::Exhausted(e.to_string()),
                    Some(Err(e)) => Outcome::Retried(e.to_string()),
                };
                let again = matches!(outcome, Outcome::Killed(_) | Outcome::Retried(_));
                let d = delivered(&pending, s, f, outcome);
                checked(stack, check, &d)?;
                report.deliveries.push(d);
                if again {
                    pending.attempt += 1;
                    pending.timing = Timing::InOrder;
                    pending.not_before = Instant::now() + Duration::from_millis(100);
                    queue.push_back(pending);
                }
            }
            _ = stack.bus.wait_for(Duration::from_secs(3600), |_| true) => {}
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
    }
}

/// How many times the handlers of each kind of event have been waiting before they finished: a
/// moving average of the deliveries that ran to their end.
#[derive(Default)]
struct Typical(HashMap<EventKind, f64>);

impl Typical {
    fn of(&self, kind: EventKind) -> u32 {
        self.0.get(&kind).map_or(FIRST_GUESS, |w| w.round() as u32)
    }

    fn finished(&mut self, kind: EventKind, waits: u32) {
        let avg = self.0.entry(kind).or_insert(f64::from(waits));
        *avg = *avg * 0.8 + f64::from(waits) * 0.2;
    }
}

/// Runs `fut` until it finishes, or drops it at its `kill_at`th wait (`None` then); with the
/// number of times it waited.
pub async fn run_to_wait<F: Future>(fut: F, kill_at: Option<u32>) -> (Option<F::Output>, u32) {
    let mut fut = std::pin::pin!(fut);
    let mut waits = 0u32;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready((Some(v), waits)),
        Poll::Pending => {
            waits += 1;
            if kill_at.is_some_and(|n| waits >= n) {
                Poll::Ready((None, waits))
            } else {
                Poll::Pending
            }
        }
    })
    .await
}

/// Starts delivering `p`, to be killed after a while when the policy says so.
fn start<'a>(
    stack: &'a LocalStack,
    policy: &DeliveryPolicy,
    typical: &Typical,
    p: Pending,
    running: &mut Running<'a>,
) {
    let kill = policy.kill_at(
        &format!("{:?}/{}/{}/{}/{}", p.kind, p.key, p.nth, p.copy, p.attempt),
        typical.of(p.kind),
    );
    running.push(Box::pin(async move {
        let started = Instant::now();
        let (result, waits) = run_to_wait(stack.deliver(&p.event), kill).await;
        Finished {
            pending: p,
            started,
            result,
            waits,
        }
    }));
}

/// Runs `check` after delivery `d`, naming the delivery in its error.
fn checked(stack: &LocalStack, check: &mut Check<'_>, d: &Delivered) -> anyhow::Result<()> {
    check(stack, d).map_err(|e| {
        e.context(format!(
            "after delivery {} of {:?} about {} (copy {}, attempt {}, {:?}): {:?}",
            d.nth, d.kind, d.key, d.copy, d.attempt, d.timing, d.outcome
        ))
    })
}

fn delivered(p: &Pending, started: Duration, finished: Duration, outcome: Outcome) -> Delivered {
    Delivered {
        event_id: p.event["id"].as_str().unwrap_or_default().to_owned(),
        kind: p.kind,
        key: p.key.clone(),
        nth: p.nth,
        copy: p.copy,
        timing: p.timing,
        attempt: p.attempt,
        started,
        finished,
        outcome,
    }
}

/// The first of `running` to finish (removed from it). Pending forever when empty.
async fn next_finished(running: &mut Running<'_>) -> Finished {
    std::future::poll_fn(|cx| {
        for i in 0..running.len() {
            if let Poll::Ready(done) = running[i].as_mut().poll(cx) {
                drop(running.swap_remove(i));
                return Poll::Ready(done);
            }
        }
        Poll::Pending
    })
    .await
}
