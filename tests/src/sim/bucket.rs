//! A request quota as AWS applies it: a steady rate per second.
//!
//! Why one-second windows rather than a token bucket's single clock: the engine runs concurrent
//! invocations one after another, each to its end, so calls reach a quota out of order by as
//! much as an invocation lasts (a CertIssue batch runs for seconds). A token bucket (or GCRA)
//! fed that way charges the second invocation for the first one's future and throttles it,
//! though together they stay under the rate. Counting calls per one-second window of virtual
//! time does not depend on the order they arrive in: each window takes `rate` calls (a rate
//! under one per second gets one call per `1 / rate` seconds). The burst a token bucket allows
//! beyond that, across window edges, is not modelled: a little stricter than AWS. Time is kept
//! in integer nanoseconds (as seconds in an `f64`, an epoch time carries only about 0.2 µs of
//! precision).

use std::collections::BTreeMap;

use time::OffsetDateTime;

/// How far behind the newest call a window is kept (longer than any invocation runs).
const KEEP_NS: i128 = 3_600 * 1_000_000_000;

/// A rate limiter: `rate` calls per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    /// Calls taken, by (window width, window index).
    windows: BTreeMap<(i128, i128), u32>,
    newest: i128,
}

impl TokenBucket {
    /// A quota of `rate` calls per second (`_burst` is not modelled beyond one second's worth).
    pub fn new(rate: f64, _burst: f64) -> Self {
        TokenBucket {
            rate: rate.max(1e-9),
            windows: BTreeMap::new(),
            newest: i128::MIN,
        }
    }

    /// Takes one call at `at` if its window has room (`scale` multiplies the rate, e.g. during a
    /// throttling storm); false means the call is throttled.
    pub fn take(&mut self, at: OffsetDateTime, scale: f64) -> bool {
        let now = at.unix_timestamp_nanos();
        let rate = self.rate * scale.max(1e-9);
        // A window holds at least one call: under one per second, it is 1 / rate long.
        let width = if rate >= 1.0 {
            1_000_000_000
        } else {
            (1e9 / rate).round() as i128
        };
        let cap = (rate * width as f64 / 1e9).floor().max(1.0) as u32;
        let used = self
            .windows
            .entry((width, now.div_euclid(width)))
            .or_default();
        if *used >= cap {
            return false;
        }
        *used += 1;
        if now > self.newest {
            self.newest = now;
            let oldest = now - KEEP_NS;
            self.windows.retain(|(w, i), _| (i + 1) * w >= oldest);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn the_rate_in_each_second_whatever_the_order() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut b = TokenBucket::new(5.0, 10.0);
        let first = (0..20).filter(|_| b.take(t0, 1.0)).count();
        assert_eq!(first, 5);
        // Two invocations run one after the other over the same 3 seconds, 2 calls a second
        // each: 4 a second together, under the rate, none throttled.
        let mut b = TokenBucket::new(5.0, 10.0);
        for _invocation in 0..2 {
            for i in 0..6 {
                assert!(b.take(t0 + Duration::milliseconds(500 * i), 1.0));
            }
        }
        // A third one over the same seconds gets what is left: 1 a second.
        let third = (0..6)
            .filter(|i| b.take(t0 + Duration::milliseconds(500 * i), 1.0))
            .count();
        assert_eq!(third, 3);
    }

    #[test]
    fn under_one_per_second_a_call_per_window() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut b = TokenBucket::new(5.0, 10.0);
        // A storm at a tenth of the rate: one call per two seconds.
        let taken = (0..40)
            .filter(|i| b.take(t0 + Duration::milliseconds(250 * i), 0.1))
            .count();
        assert_eq!(taken, 5);
    }
}
