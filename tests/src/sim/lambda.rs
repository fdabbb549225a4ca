//! Lambda's asynchronous invocation, per function: reserved concurrency, the internal queue,
//! retries of function errors, the event's maximum age, and the failure destination.
//!
//! As documented: an event waits while the function is at its concurrency (throttled
//! invocations are retried until the event's maximum age, then sent to the failure
//! destination, which the simulator counts as dropped); a function error (or a timeout) is
//! retried `MaximumRetryAttempts` times, one minute and then two minutes later.

use std::collections::VecDeque;

use time::{Duration, OffsetDateTime};

use crate::sim::driver::Payload;

/// An event in a function's asynchronous queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// What the function is invoked with.
    pub payload: Payload,
    /// When Lambda first received it (its age counts from here).
    pub received: OffsetDateTime,
    /// Retries already made after function errors.
    pub retries: u32,
}

/// What happened to one function's invocations.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FunctionStats {
    /// Invocations run.
    pub invocations: u64,
    /// Invocations that failed (function error or timeout).
    pub errors: u64,
    /// Invocations killed at the function's timeout.
    pub past_timeout: u64,
    /// Events dropped after waiting past their maximum age.
    pub dropped_age: u64,
    /// Events dropped after their last retry failed.
    pub dropped_retries: u64,
    /// Sum of modelled durations, seconds.
    pub busy_seconds: f64,
    /// Longest modelled duration, seconds.
    pub max_seconds: f64,
    /// Most events waiting at once.
    pub max_queue: usize,
}

/// One function's asynchronous queue and concurrency.
#[derive(Debug, Clone)]
pub struct FunctionModel {
    concurrency: u32,
    running: u32,
    max_age: Duration,
    max_retries: u32,
    queue: VecDeque<Queued>,
    /// What happened so far.
    pub stats: FunctionStats,
}

impl FunctionModel {
    /// A function with `concurrency`, events living `max_age`, `max_retries` retries.
    pub fn new(concurrency: u32, max_age: Duration, max_retries: u32) -> Self {
        FunctionModel {
            concurrency: concurrency.max(1),
            running: 0,
            max_age,
            max_retries,
            queue: VecDeque::new(),
            stats: FunctionStats::default(),
        }
    }

    /// Lambda received `event`.
    pub fn enqueue(&mut self, event: Queued) {
        self.queue.push_back(event);
        self.stats.max_queue = self.stats.max_queue.max(self.queue.len());
    }

    /// The next event to run at `now`, taking a concurrency slot, dropping the ones too old.
    pub fn next_ready(&mut self, now: OffsetDateTime) -> Option<Queued> {
        while self.running < self.concurrency {
            let event = self.queue.pop_front()?;
            if now - event.received > self.max_age {
                self.stats.dropped_age += 1;
                continue;
            }
            self.running += 1;
            return Some(event);
        }
        None
    }

    /// An invocation ended; its slot is free.
    pub fn release(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Accounts an invocation that took `seconds`.
    pub fn ran(&mut self, seconds: f64, failed: bool, killed: bool) {
        self.stats.invocations += 1;
        self.stats.busy_seconds += seconds;
        self.stats.max_seconds = self.stats.max_seconds.max(seconds);
        self.stats.errors += u64::from(failed || killed);
        self.stats.past_timeout += u64::from(killed);
    }

    /// After a failed invocation at `now`: when to retry it, or `None` (dropped).
    pub fn retry(
        &mut self,
        mut event: Queued,
        now: OffsetDateTime,
    ) -> Option<(OffsetDateTime, Queued)> {
        if event.retries >= self.max_retries {
            self.stats.dropped_retries += 1;
            return None;
        }
        event.retries += 1;
        let at = now + Duration::minutes(i64::from(event.retries));
        if at - event.received > self.max_age {
            self.stats.dropped_age += 1;
            return None;
        }
        Some((at, event))
    }

    /// Events waiting.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: OffsetDateTime) -> Queued {
        Queued {
            payload: Payload::Check { reconcile: true },
            received: at,
            retries: 0,
        }
    }

    #[test]
    fn throttled_events_wait_until_their_maximum_age() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut f = FunctionModel::new(1, Duration::hours(1), 2);
        f.enqueue(event(t0));
        f.enqueue(event(t0));
        assert!(f.next_ready(t0).is_some());
        assert!(f.next_ready(t0).is_none(), "at its concurrency");
        f.release();
        assert!(f.next_ready(t0 + Duration::minutes(61)).is_none());
        assert_eq!(f.stats.dropped_age, 1);
    }

    #[test]
    fn function_errors_are_retried_twice() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut f = FunctionModel::new(1, Duration::hours(1), 2);
        let (at, e) = f.retry(event(t0), t0).unwrap();
        assert_eq!(at, t0 + Duration::minutes(1));
        let (at, e) = f.retry(e, at).unwrap();
        assert_eq!(at, t0 + Duration::minutes(3));
        assert!(f.retry(e, at).is_none());
        assert_eq!(f.stats.dropped_retries, 1);
    }
}
