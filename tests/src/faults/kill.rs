//! Stopping a handler at its Nth AWS call, as a Lambda timeout or crash does, and redelivering
//! the event as Lambda's retry would.
//!
//! Why on the wire: a Lambda that times out is frozen mid-call; what it wrote before stays
//! written, what it was about to do never happens, and the same event comes back later. The
//! [`KillSwitch`] counts the requests reaching the stack's services (through the proxy and the
//! emulators, so the SDK's own retries count too); the Nth is held, the switch fires, and
//! [`run_killable`], which runs the handler under `tokio::select!`, drops the handler's future.
//! [`KillPoint`] picks whether the Nth call was applied by the service before the crash (its
//! answer lost: the write landed, the handler never knew) or never reached it.
//!
//! Calls are counted across every handler: kill one handler at a time (as [`deliver_with_crash`]
//! does).

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::{Call, FaultPlan};
use crate::emulators::lock;
use crate::stack::LocalStack;

/// Where, in the Nth call, the handler dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillPoint {
    /// The call never reaches the service.
    BeforeSending,
    /// The service applies the call; the handler dies before it reads the answer.
    AfterApplying,
}

struct KillInner {
    nth: u64,
    operation: Option<String>,
    point: KillPoint,
    seen: std::sync::Mutex<u64>,
    fired: watch::Sender<Option<String>>,
    released: watch::Sender<bool>,
}

/// An armed kill switch (see [`FaultPlan::arm_kill`]). Cloning shares it.
#[derive(Clone)]
pub struct KillSwitch {
    inner: Arc<KillInner>,
}

impl std::fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillSwitch")
            .field("nth", &self.inner.nth)
            .field("point", &self.inner.point)
            .field("fired_at", &self.fired_at())
            .finish()
    }
}

/// A call held by a fired switch until [`KillSwitch::release`].
#[derive(Debug)]
pub struct Hold(KillSwitch);

impl Hold {
    /// Where the handler dies in this call.
    pub fn point(&self) -> KillPoint {
        self.0.inner.point
    }

    /// Waits until the switch is released (the handler is gone by then).
    pub async fn wait(&self) {
        let mut rx = self.0.inner.released.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}

impl KillSwitch {
    pub(crate) fn new(nth: u64, operation: Option<&str>, point: KillPoint) -> Self {
        KillSwitch {
            inner: Arc::new(KillInner {
                nth: nth.max(1),
                operation: operation.map(str::to_owned),
                point,
                seen: std::sync::Mutex::new(0),
                fired: watch::Sender::new(None),
                released: watch::Sender::new(false),
            }),
        }
    }

    /// Counts `call`; the Nth matching one fires the switch and is held.
    pub(crate) fn check(&self, call: &Call) -> Option<Hold> {
        if self
            .inner
            .operation
            .as_deref()
            .is_some_and(|p| !call.answers_to(p))
        {
            return None;
        }
        let mut seen = lock(&self.inner.seen);
        *seen += 1;
        if *seen != self.inner.nth {
            return None;
        }
        self.inner.fired.send_replace(Some(call.operation.clone()));
        Some(Hold(self.clone()))
    }

    /// The operation of the call the switch fired on, once it fired.
    pub fn fired_at(&self) -> Option<String> {
        self.inner.fired.borrow().clone()
    }

    /// Calls counted so far.
    pub fn calls(&self) -> u64 {
        *lock(&self.inner.seen)
    }

    /// Waits until the switch fires.
    pub async fn fired(&self) {
        let mut rx = self.inner.fired.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Lets the held call go: its connection is dropped without an answer.
    pub fn release(&self) {
        self.inner.released.send_replace(true);
    }
}

/// How a killable run ended.
#[derive(Debug)]
pub enum Run<T> {
    /// The handler finished before its Nth call.
    Completed(T),
    /// The handler was dropped at the call of this operation.
    Killed(String),
}

/// Runs `fut` until it completes or `switch` fires; on firing the future is dropped (as Lambda
/// drops a timed-out invocation) and the held call released.
pub async fn run_killable<F: Future>(switch: &KillSwitch, fut: F) -> Run<F::Output> {
    let out = tokio::select! {
        biased;
        _ = switch.fired() => None,
        out = fut => Some(out),
    };
    switch.release();
    match out {
        Some(out) => Run::Completed(out),
        None => Run::Killed(switch.fired_at().unwrap_or_default()),
    }
}

/// A crashed delivery and its retry.
#[derive(Debug)]
pub struct Crash {
    /// The operation of the call the handler died in (None: it never got there).
    pub killed_at: Option<String>,
    /// Calls the switch counted before it fired (including that one).
    pub calls: u64,
    /// Deliveries made, the killed one and every retry included.
    pub deliveries: u32,
    /// The last delivery's outcome (as `LocalStack::deliver`).
    pub retry: Result<Option<Value>, lambda_runtime::Error>,
}

/// Lambda's async retries of one event, as `LocalStack::settle` counts them.
const MAX_DELIVERIES: u32 = 6;

/// Delivers `event` with the handler killed at its `nth` call (counting only calls answering
/// to `operation` when given; at `point`), then delivers it again as Lambda's retry of a
/// timed-out or crashed invocation does. A retryable failure is redelivered after 100 ms
/// either side of the crash, as `LocalStack::settle` does. Run it with no other handler
/// running: the switch counts every call under `plan`.
pub async fn deliver_with_crash(
    stack: &LocalStack,
    plan: &FaultPlan,
    event: &Value,
    (nth, operation): (u64, Option<&str>),
    point: KillPoint,
) -> Crash {
    let switch = plan.arm_kill(nth, operation, point);
    let mut deliveries = 0;
    let mut killed_at = None;
    let retry = loop {
        deliveries += 1;
        let out = if killed_at.is_none() {
            match run_killable(&switch, stack.deliver(event)).await {
                Run::Completed(out) => out,
                Run::Killed(op) => {
                    plan.disarm();
                    killed_at = Some(op);
                    continue;
                }
            }
        } else {
            stack.deliver(event).await
        };
        if out.is_ok() || deliveries >= MAX_DELIVERIES {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    plan.disarm();
    Crash {
        killed_at,
        calls: switch.calls(),
        deliveries,
        retry,
    }
}
