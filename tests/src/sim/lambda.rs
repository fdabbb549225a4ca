//! How events reach a function: Lambda's asynchronous invocation, or an SQS queue read by an
//! event source mapping.
//!
//! Asynchronous, as documented: an event waits while the function is at its concurrency
//! (throttled invocations are retried until the event's maximum age, then sent to the failure
//! destination, which the simulator counts as dropped); a function error (or a timeout) is
//! retried `MaximumRetryAttempts` times, one minute and then two minutes later.
//!
//! SQS, as documented: the mapping runs at most its `MaximumConcurrency` invocations, each with
//! a batch of up to `BatchSize` messages, gathered for up to `MaximumBatchingWindowInSeconds`;
//! a message the function names in `batchItemFailures` (or every message of a failed
//! invocation) is visible again after the visibility timeout, moves to the dead-letter queue
//! at `maxReceiveCount` receives, and is deleted past the retention period. Nothing ages out
//! while waiting for a slot.

use std::collections::VecDeque;

use time::{Duration, OffsetDateTime};

use crate::sim::driver::Payload;

/// An event in a function's asynchronous queue, or a message in its SQS queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// What the function is invoked with.
    pub payload: Payload,
    /// When Lambda (or SQS) first received it (its age counts from here).
    pub received: OffsetDateTime,
    /// Retries already made after function errors (SQS: earlier receives).
    pub retries: u32,
}

/// An SQS queue in front of a function, as the template sets it up.
#[derive(Debug, Clone, Copy)]
pub struct SqsSource {
    /// Messages per invocation at most (`BatchSize`).
    pub batch_size: usize,
    /// How long a batch is gathered (`MaximumBatchingWindowInSeconds`).
    pub window: Duration,
    /// How long a received message stays invisible (`VisibilityTimeout`).
    pub visibility: Duration,
    /// Receives before the dead-letter queue (`maxReceiveCount`).
    pub max_receives: u32,
    /// How long a message lives (`MessageRetentionPeriod`).
    pub retention: Duration,
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
    /// SQS messages moved to the dead-letter queue (`maxReceiveCount` receives).
    pub dead_lettered: u64,
    /// Events (SQS messages) handled, counting each of a batch.
    pub messages: u64,
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
    sqs: Option<SqsSource>,
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
            sqs: None,
            queue: VecDeque::new(),
            stats: FunctionStats::default(),
        }
    }

    /// A function fed by an SQS queue: at most `concurrency` batches at once.
    pub fn with_queue(concurrency: u32, sqs: SqsSource) -> Self {
        FunctionModel {
            sqs: Some(sqs),
            ..FunctionModel::new(concurrency, sqs.retention, 0)
        }
    }

    /// Lambda received `event`.
    pub fn enqueue(&mut self, event: Queued) {
        self.queue.push_back(event);
        self.stats.max_queue = self.stats.max_queue.max(self.queue.len());
    }

    /// The next invocation's events at `now` (one, or an SQS batch), taking a concurrency
    /// slot, dropping the ones too old.
    pub fn next_batch(&mut self, now: OffsetDateTime) -> Option<Vec<Queued>> {
        if self.running >= self.concurrency {
            return None;
        }
        while let Some(front) = self.queue.front() {
            if now - front.received <= self.max_age {
                break;
            }
            self.queue.pop_front();
            self.stats.dropped_age += 1;
        }
        let size = self.sqs.map_or(1, |q| q.batch_size.max(1));
        if self.queue.is_empty() || (self.queue.len() < size && self.gathering(now).is_some()) {
            return None;
        }
        let batch: Vec<Queued> = self
            .queue
            .drain(..size.min(self.queue.len()))
            .filter(|e| now - e.received <= self.max_age)
            .collect();
        if batch.is_empty() {
            return None;
        }
        self.running += 1;
        Some(batch)
    }

    /// While an SQS batch is still being gathered at `now`: when its window closes.
    pub fn gathering(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let sqs = self.sqs?;
        let front = self.queue.front()?;
        let closes = front.received + sqs.window;
        (front.retries == 0 && closes > now).then_some(closes)
    }

    /// An invocation ended; its slot is free.
    pub fn release(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Accounts an invocation of `messages` events that took `seconds`.
    pub fn ran(&mut self, messages: usize, seconds: f64, failed: bool, killed: bool) {
        self.stats.invocations += 1;
        self.stats.messages += messages as u64;
        self.stats.busy_seconds += seconds;
        self.stats.max_seconds = self.stats.max_seconds.max(seconds);
        self.stats.errors += u64::from(failed || killed);
        self.stats.past_timeout += u64::from(killed);
    }

    /// After a failed invocation (or a message named in `batchItemFailures`) at `now`: when
    /// it is delivered again, or `None` (dropped, or dead-lettered).
    pub fn retry(
        &mut self,
        mut event: Queued,
        now: OffsetDateTime,
    ) -> Option<(OffsetDateTime, Queued)> {
        if let Some(sqs) = self.sqs {
            event.retries += 1;
            if event.retries >= sqs.max_receives {
                self.stats.dead_lettered += 1;
                return None;
            }
            return Some((now + sqs.visibility, event));
        }
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
        assert!(f.next_batch(t0).is_some());
        assert!(f.next_batch(t0).is_none(), "at its concurrency");
        f.release();
        assert!(f.next_batch(t0 + Duration::minutes(61)).is_none());
        assert_eq!(f.stats.dropped_age, 1);
    }

    fn sqs() -> SqsSource {
        SqsSource {
            batch_size: 3,
            window: Duration::seconds(5),
            visibility: Duration::seconds(360),
            max_receives: 2,
            retention: Duration::days(4),
        }
    }

    #[test]
    fn an_sqs_batch_is_gathered_for_its_window_or_until_full() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut f = FunctionModel::with_queue(1, sqs());
        f.enqueue(event(t0));
        f.enqueue(event(t0));
        assert!(f.next_batch(t0).is_none(), "gathering");
        assert_eq!(f.gathering(t0), Some(t0 + Duration::seconds(5)));
        assert_eq!(f.next_batch(t0 + Duration::seconds(5)).unwrap().len(), 2);
        f.release();
        for _ in 0..4 {
            f.enqueue(event(t0 + Duration::seconds(6)));
        }
        let full = f.next_batch(t0 + Duration::seconds(6)).unwrap();
        assert_eq!(full.len(), 3, "a full batch goes at once");
        assert!(f.next_batch(t0 + Duration::hours(2)).is_none(), "one slot");
        f.release();
        assert_eq!(
            f.next_batch(t0 + Duration::hours(2)).unwrap().len(),
            1,
            "waiting never ages out in an hour"
        );
    }

    #[test]
    fn a_failed_message_is_visible_again_after_the_timeout_then_dead_lettered() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut f = FunctionModel::with_queue(1, sqs());
        let (at, e) = f.retry(event(t0), t0).unwrap();
        assert_eq!(at, t0 + Duration::seconds(360));
        assert!(f.retry(e, at).is_none());
        assert_eq!(f.stats.dead_lettered, 1);
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
