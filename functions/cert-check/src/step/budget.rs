//! A run's time budget: until when it may start work.
//!
//! Why: a run that starts rotations until Lambda's timeout cuts it off leaves a host claimed
//! with no command recorded, and answers nothing (no summary, no metrics). So a run stops
//! starting rotations a margin before the invocation's deadline, finishes the ones in flight,
//! and reports the hosts it left; its answer asks for a continuation (`continue`), which the
//! stack's EventBridge rule delivers as the same request again (see the README). Hosts already
//! started are in flight by then, so the continuation starts only the ones left.

use time::{Duration, OffsetDateTime};

/// Time kept back before the invocation's deadline: the rotations in flight finish, the alerts
/// and the summary go out.
pub const DEADLINE_MARGIN: Duration = Duration::seconds(60);

/// Until when a run that began at `started` may start work: `started + run_budget` when the
/// configuration sets one, else the invocation's `deadline` less [`DEADLINE_MARGIN`]; no bound
/// when neither is known (a direct call, a test without a budget).
pub fn budget_until(
    run_budget: Option<Duration>,
    started: OffsetDateTime,
    deadline: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    match (run_budget, deadline) {
        (Some(b), _) => Some(started + b),
        (None, Some(d)) => Some(d - DEADLINE_MARGIN),
        (None, None) => None,
    }
}

pub use rotation::budget::lambda_deadline;

/// Why a host was not started.
pub const LEFT_REASON: &str = "left for the continuation: the run's time budget was spent";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    #[test]
    fn the_configured_budget_wins_then_the_deadline_less_the_margin() {
        let deadline = Some(T + Duration::minutes(15));
        assert_eq!(
            budget_until(Some(Duration::seconds(30)), T, deadline),
            Some(T + Duration::seconds(30))
        );
        assert_eq!(
            budget_until(None, T, deadline),
            Some(T + Duration::minutes(14))
        );
        assert_eq!(budget_until(None, T, None), None);
    }
}
