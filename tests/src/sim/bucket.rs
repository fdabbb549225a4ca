//! A token bucket as AWS applies its request quotas: a steady rate and a burst.
//!
//! Written as GCRA (the theoretical arrival time): one number of state, and calls may come at
//! times slightly out of order (invocations overlap in virtual time) without breaking it. Time is
//! kept in integer nanoseconds: as seconds in an `f64`, an epoch time carries only about 0.2 µs of
//! precision, and a burst's edge came out one token short.

use time::OffsetDateTime;

/// A rate limiter: `rate` calls per second on average, `burst` at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// When the bucket will be full again, nanoseconds since the epoch.
    tat: i128,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate: rate.max(1e-9),
            burst: burst.max(1.0),
            tat: i128::MIN,
        }
    }

    /// Takes one token at `at` if there is one (`scale` multiplies the rate, e.g. during a
    /// throttling storm); false means the call is throttled.
    pub fn take(&mut self, at: OffsetDateTime, scale: f64) -> bool {
        let now = at.unix_timestamp_nanos();
        let interval = (1e9 / (self.rate * scale.max(1e-9))).round() as i128;
        let tat = self.tat.max(now);
        if tat - now > interval * (self.burst - 1.0).round() as i128 {
            return false;
        }
        self.tat = tat + interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = crate::kit::clock::DEFAULT_START;
        let mut b = TokenBucket::new(5.0, 10.0);
        let burst = (0..20).filter(|_| b.take(t0, 1.0)).count();
        assert_eq!(burst, 10);
        // One token every 200 ms after the burst: at 200, 400, 600, 800 and 1,000 ms.
        let over_a_second = (0..=100)
            .filter(|i| b.take(t0 + Duration::milliseconds(10 * i), 1.0))
            .count();
        assert_eq!(over_a_second, 5, "5 per second after the burst");
    }
}
