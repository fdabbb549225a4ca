//! How long an invocation may go on starting work, read on the clock it goes by.
//!
//! Why: a Lambda invocation that Lambda's timeout cuts off mid-step leaves work half done and
//! answers nothing. A function that works through a list (CertCheck's due hosts, a queue's
//! batch) stops starting items a margin before its deadline, finishes the ones in flight, and
//! hands the rest on (a continuation, `batchItemFailures`). The clock is injected so the
//! simulator's virtual time drives the same decision.

use std::sync::Arc;

use time::OffsetDateTime;

/// Until when an invocation may start work, read on the clock it goes by.
#[derive(Clone)]
pub struct Budget {
    until: Option<OffsetDateTime>,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl Budget {
    /// Spent once `clock` reads `until` or later (never, if `until` is `None`).
    pub fn new(
        until: Option<OffsetDateTime>,
        clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    ) -> Self {
        Budget { until, clock }
    }

    /// A budget on the system clock until `until`.
    pub fn on_system_clock(until: Option<OffsetDateTime>) -> Self {
        Budget::new(until, Arc::new(OffsetDateTime::now_utc))
    }

    /// A budget that is never spent.
    pub fn unbounded() -> Self {
        Budget::on_system_clock(None)
    }

    /// Whether the time is up.
    pub fn spent(&self) -> bool {
        self.until.is_some_and(|until| (self.clock)() >= until)
    }
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("until", &self.until)
            .finish()
    }
}

/// The deadline of a Lambda invocation from its context's milliseconds since the epoch (0: not
/// invoked by Lambda).
pub fn lambda_deadline(deadline_ms: u64) -> Option<OffsetDateTime> {
    if deadline_ms == 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(deadline_ms) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const T: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    #[test]
    fn lambda_deadlines_are_milliseconds_and_zero_is_none() {
        assert_eq!(lambda_deadline(0), None);
        let ms = (T.unix_timestamp() * 1000 + 250) as u64;
        assert_eq!(lambda_deadline(ms), Some(T + Duration::milliseconds(250)));
    }

    #[test]
    fn spent_on_its_own_clock() {
        let budget = Budget::new(Some(T), Arc::new(|| T - Duration::SECOND));
        assert!(!budget.spent());
        let budget = Budget::new(Some(T), Arc::new(|| T));
        assert!(budget.spent());
        assert!(!Budget::unbounded().spent());
    }
}
