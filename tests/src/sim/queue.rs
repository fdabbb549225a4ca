//! The virtual-time event loop's queue: timed events, earliest first, ties in insertion order.
//!
//! Why a sequence number: two events at the same instant must come out in the same order on
//! every run (a `BinaryHeap` alone does not promise that), so the trace depends only on the seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use time::{Duration, OffsetDateTime};

/// Events ordered by time, then by when they were scheduled.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: i128,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue::default()
    }

    /// Schedules `event` at `at`.
    pub fn push(&mut self, at: OffsetDateTime, event: E) {
        self.next_seq += 1;
        self.heap.push(Reverse(Entry {
            at: at.unix_timestamp_nanos(),
            seq: self.next_seq,
            event,
        }));
    }

    /// Schedules `event` `after` past `now`.
    pub fn push_after(&mut self, now: OffsetDateTime, after: Duration, event: E) {
        self.push(now + after.max(Duration::ZERO), event);
    }

    /// The earliest event, if it is due by `until`.
    pub fn pop_until(&mut self, until: OffsetDateTime) -> Option<(OffsetDateTime, E)> {
        let due = self
            .heap
            .peek()
            .is_some_and(|Reverse(e)| e.at <= until.unix_timestamp_nanos());
        if !due {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| {
            let at = OffsetDateTime::from_unix_timestamp_nanos(e.at).unwrap_or(until);
            (at, e.event)
        })
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none are waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_insertion_order() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut q = EventQueue::new();
        q.push(t0 + Duration::SECOND, "late");
        q.push(t0, "first");
        q.push(t0, "second");
        assert_eq!(q.pop_until(t0 + Duration::MINUTE).unwrap().1, "first");
        assert_eq!(q.pop_until(t0 + Duration::MINUTE).unwrap().1, "second");
        assert!(q.pop_until(t0).is_none(), "not due yet");
        assert_eq!(q.pop_until(t0 + Duration::MINUTE).unwrap().1, "late");
    }
}
