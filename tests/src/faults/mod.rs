//! Faults for chaos tests: what real AWS does to a Lambda function on a bad day, on the local
//! stack's wire.
//!
//! Why on the wire: the functions reach every service through the production adapters and real
//! SDK clients, so a fault injected in the HTTP exchange goes through the SDK's own error parsing,
//! retry classification and retries, exactly as a real throttle or reset would. Mocking a port
//! would test our mock, not the SDK configuration the functions ship with.
//!
//! The pieces:
//!
//! - [`FaultPlan`]: the shared set of [`Rule`]s (which operation, which host, which call, how
//!   often — by count or at a seeded rate) and the log of every fault it injected
//!   ([`FaultPlan::injected`]). One plan serves moto and the emulators alike.
//! - [`proxy::FaultProxy`]: a fault-injecting HTTP proxy on 127.0.0.1 in front of moto
//!   (DynamoDB, SNS, S3, SQS), forwarding what passes and streaming the answers back.
//! - [`hook`]: the same plan inside our emulators (Run Command, Private CA, Roles Anywhere),
//!   called by `emulators::wire` for every request.
//! - [`kill`]: stopping a handler at its Nth AWS call, its future dropped as a Lambda timeout
//!   or crash drops it, then redelivering the event as Lambda's retry would.
//! - [`delivery`]: an event router that delivers events early, concurrently, twice, late or
//!   never, by a seeded policy (EventBridge's at-least-once, unordered delivery).
//! - [`FaultyStack`]: a [`LocalStack`] whose functions' moto clients go through a proxy and
//!   whose emulators apply the plan.
//!
//! Retries: the local stack's moto clients retry (standard mode, 3 attempts), its emulator
//! clients do not (`stack::Endpoints::deps`). A fault must persist for 3 calls on DynamoDB, SNS
//! or S3 before a handler sees it; one is enough on Run Command, Private CA and Roles Anywhere.
//! The plan counts wire requests, so it sees the SDK's retries.
//!
//! ```text
//! let mut stack = FaultyStack::start(&[]).await?;
//! stack.plan.add(Rule::on("DynamoDB.UpdateItem").host(host).times(3).fault(Fault::Throttle));
//! stack.plan.add(Rule::on("SSM.SendCommand").rate(0.2, seed).fault(Fault::Reset));
//! stack.cert_check(json!({})).await?;                 // LocalStack's methods, through Deref
//! let policy = DeliveryPolicy::seeded(seed).kind(EventKind::Issuance, Rates { early: 0.5, ..Rates::default() });
//! let report = delivery::settle_chaos(&mut stack, &policy).await?;
//! assert_eq!(stack.plan.count("DynamoDB.UpdateItem", &Fault::Throttle), 3);
//! let crash = kill::deliver_with_crash(&stack, &stack.plan, &event,
//!     (1, Some("ACMPCA.IssueCertificate")), KillPoint::AfterApplying).await;
//! assert!(crash.killed_at.is_some() && crash.retry.is_ok());
//! ```

pub mod delivery;
pub mod hook;
pub mod kill;
pub mod proxy;
pub mod rules;

use std::sync::{Arc, Mutex};

pub use rules::{Call, Fault, Rule, Service};

use crate::emulators::lock;
use crate::stack::LocalStack;

/// One injected fault, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The call's canonical operation name (`DynamoDB.UpdateItem`).
    pub operation: String,
    /// What was injected.
    pub fault: Fault,
    /// The HTTP status and error code answered, for faults that answer.
    pub answer: Option<(u16, String)>,
    /// Index of the rule that fired, in the order rules were added.
    pub rule: usize,
}

#[derive(Default)]
struct PlanInner {
    rules: Mutex<Vec<Rule>>,
    injected: Mutex<Vec<Injected>>,
    kill: Mutex<Option<kill::KillSwitch>>,
    calls: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// The fault rules of one test, shared by the proxy and the emulators (cloning shares it).
///
/// Rules are tried in the order they were added; the first that fires on a call decides it.
/// Rules can be added and cleared while the stack runs.
#[derive(Clone, Default)]
pub struct FaultPlan {
    inner: Arc<PlanInner>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPlan")
            .field("rules", &lock(&self.inner.rules).len())
            .field("injected", &lock(&self.inner.injected).len())
            .finish()
    }
}

/// What to do with one call, once the plan has decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// Let it through; hold its answer when a kill switch fired after applying it.
    Pass(Option<kill::Hold>),
    /// Answer this status and error code instead.
    Answer(u16, String),
    /// Drop the connection without answering.
    Reset,
}

impl FaultPlan {
    /// A plan with no rules: everything passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule (after the ones already there).
    pub fn add(&self, rule: Rule) -> &Self {
        lock(&self.inner.rules).push(rule);
        self
    }

    /// Removes every rule (the log of injected faults stays).
    pub fn clear(&self) {
        lock(&self.inner.rules).clear();
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<Injected> {
        lock(&self.inner.injected).clone()
    }

    /// Every call the plan decided, by canonical operation name (`DynamoDB.UpdateItem`): what
    /// the functions asked of AWS, the SDK's retries included.
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        lock(&self.inner.calls).clone()
    }

    /// [`FaultPlan::calls`] summed by service (`DynamoDB`, `SSM`, …).
    pub fn calls_by_service(&self) -> std::collections::BTreeMap<String, u64> {
        let mut by = std::collections::BTreeMap::new();
        for (op, n) in self.calls() {
            let service = op.split('.').next().unwrap_or_default().to_owned();
            *by.entry(service).or_default() += n;
        }
        by
    }

    /// How many times `fault` was injected on calls named `operation` (canonical name, or a
    /// prefix ending in `*`).
    pub fn count(&self, operation: &str, fault: &Fault) -> usize {
        let prefix = operation.strip_suffix('*');
        lock(&self.inner.injected)
            .iter()
            .filter(|i| &i.fault == fault)
            .filter(|i| match prefix {
                Some(p) => i.operation.starts_with(p),
                None => i.operation == operation,
            })
            .count()
    }

    /// Arms a kill switch: the `nth` call from now (on any service under this plan, or only
    /// calls answering to `operation`) stops the handler making it (see [`kill`]).
    pub fn arm_kill(
        &self,
        nth: u64,
        operation: Option<&str>,
        point: kill::KillPoint,
    ) -> kill::KillSwitch {
        let switch = kill::KillSwitch::new(nth, operation, point);
        *lock(&self.inner.kill) = Some(switch.clone());
        switch
    }

    /// Disarms the kill switch, letting any call it holds go (as a reset).
    pub fn disarm(&self) {
        if let Some(k) = lock(&self.inner.kill).take() {
            k.release();
        }
    }

    /// Decides `call`, applying latency and kill holds itself.
    pub(crate) async fn step(&self, call: &Call) -> Step {
        *lock(&self.inner.calls)
            .entry(call.operation.clone())
            .or_default() += 1;
        let armed = lock(&self.inner.kill).clone();
        let mut after = None;
        if let Some(hold) = armed.and_then(|k| k.check(call)) {
            match hold.point() {
                kill::KillPoint::BeforeSending => {
                    hold.wait().await;
                    return Step::Reset;
                }
                kill::KillPoint::AfterApplying => after = Some(hold),
            }
        }
        let fired = {
            let mut rules = lock(&self.inner.rules);
            rules
                .iter_mut()
                .enumerate()
                .find_map(|(i, r)| r.fires(call).map(|f| (i, f)))
        };
        let Some((rule, fault)) = fired else {
            return Step::Pass(after);
        };
        let answer = call.service.error(&fault);
        tracing::debug!(operation = %call.operation, ?fault, "fault injected");
        lock(&self.inner.injected).push(Injected {
            operation: call.operation.clone(),
            fault: fault.clone(),
            answer: answer.clone(),
            rule,
        });
        match (fault, answer) {
            (_, Some((status, code))) => Step::Answer(status, code),
            (Fault::Latency(d), None) => {
                tokio::time::sleep(d).await;
                Step::Pass(after)
            }
            _ => Step::Reset,
        }
    }
}

/// The error a handler or the server plumbing returns to make hyper drop the connection without
/// answering: a reset, as a dead load balancer or a crashed front end gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for Reset {}

/// A [`LocalStack`] with faults: the functions' DynamoDB, SNS and S3 clients go through a
/// [`proxy::FaultProxy`] in front of moto, and the three emulators apply [`FaultyStack::plan`].
///
/// The test's own handles stay off the faulty path: `stack.store`, the alert inbox and the
/// emulators' own calls to moto (Private CA writing CRLs to S3) reach moto directly, so
/// assertions read the truth. Derefs to the [`LocalStack`], so `cert_check`, `settle`,
/// `enrol_host` … work as usual.
pub struct FaultyStack {
    /// The stack, its functions rewired through the proxy.
    pub stack: LocalStack,
    /// The rules every service of the stack applies.
    pub plan: FaultPlan,
    /// The proxy in front of moto.
    pub proxy: proxy::FaultProxy,
}

impl FaultyStack {
    /// Starts a local stack (`overrides` as [`LocalStack::start`]) with an empty plan.
    pub async fn start(overrides: &[(&str, &str)]) -> anyhow::Result<FaultyStack> {
        let mut stack = LocalStack::start(overrides).await?;
        let plan = FaultPlan::new();
        let proxy = proxy::FaultProxy::start(&stack.moto.url(), plan.clone()).await?;
        stack.route_moto_through(&proxy.url());
        for url in [stack.ssm.url(), stack.pca.url(), stack.rolesanywhere.url()] {
            hook::attach(&url, &plan)?;
        }
        Ok(FaultyStack { stack, plan, proxy })
    }
}

impl Drop for FaultyStack {
    fn drop(&mut self) {
        self.plan.disarm();
        for url in [
            self.stack.ssm.url(),
            self.stack.pca.url(),
            self.stack.rolesanywhere.url(),
        ] {
            hook::detach(&url);
        }
    }
}

impl std::ops::Deref for FaultyStack {
    type Target = LocalStack;
    fn deref(&self) -> &LocalStack {
        &self.stack
    }
}

impl std::ops::DerefMut for FaultyStack {
    fn deref_mut(&mut self) -> &mut LocalStack {
        &mut self.stack
    }
}

/// The seed of a seeded test: `FAULT_SEED` when set (to replay a failure), else a fresh one.
/// Printed either way, so a failing run's output names the seed that replays it.
pub fn seed_from_env() -> u64 {
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("FAULT_SEED={seed} (set FAULT_SEED to replay this run)");
    seed
}
