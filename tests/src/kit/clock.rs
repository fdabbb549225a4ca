//! Virtual time the caller advances.
//!
//! Why: the handlers take `now` as an argument, and the fakes that depend on time (the CA's
//! idempotency window and issuance delay, the pending index's lag, the trust anchor's update
//! times) read it from one shared clock. A test or a simulator moves time forward explicitly, so
//! a run is reproducible and a week of rotations takes no wall time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

/// Where a [`ManualClock::default`] starts: a fixed instant, so runs are deterministic.
pub const DEFAULT_START: OffsetDateTime = time::macros::datetime!(2026-12-01 12:00:00 UTC);

/// A shared virtual clock with nanosecond resolution. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Nanoseconds since the Unix epoch (an `i64` covers the years 1678 to 2262).
    nanos: Arc<AtomicI64>,
}

impl Default for ManualClock {
    /// A clock at [`DEFAULT_START`].
    fn default() -> Self {
        ManualClock::new(DEFAULT_START)
    }
}

impl ManualClock {
    /// A clock showing `start`.
    ///
    /// # Panics
    /// If `start` is outside the years 1678 to 2262.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicI64::new(to_nanos(start))),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> OffsetDateTime {
        from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    /// Moves time forward by `by` and returns the new time.
    ///
    /// # Panics
    /// If `by` is negative: time never runs backwards (the index lag and the CA's window rely
    /// on it).
    pub fn advance(&self, by: Duration) -> OffsetDateTime {
        assert!(!by.is_negative(), "a ManualClock never goes back ({by})");
        let step = i64::try_from(by.whole_nanoseconds()).expect("advance fits in i64 nanoseconds");
        from_nanos(self.nanos.fetch_add(step, Ordering::SeqCst) + step)
    }

    /// Moves time forward to `t` (no change if `t` is not later than now); returns the time.
    pub fn advance_to(&self, t: OffsetDateTime) -> OffsetDateTime {
        let target = to_nanos(t);
        from_nanos(self.nanos.fetch_max(target, Ordering::SeqCst).max(target))
    }
}

fn to_nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).expect("time within the years 1678 to 2262")
}

fn from_nanos(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).expect("in range by construction")
}
