//! Asking a service again after short waits, inside one invocation.
//!
//! Why here and not in the SDK's retry policy: the SDK's attempts come within a second or two,
//! and what to wait for differs by call (throttling only, for a quota the invocations share;
//! any retryable error, for a write whose loss costs a second certificate or a second alert).
//! Handing the work back instead costs a queue's visibility timeout or a reconcile pass.

use std::future::Future;
use std::time::Duration;

/// Calls `call`, then again after each of `delays_ms` while `again` says its last answer calls
/// for it (logged with `what`); returns the last answer.
pub async fn ask_again<T, E, Fut>(
    what: &str,
    delays_ms: &[u64],
    again: impl Fn(&Result<T, E>) -> bool,
    mut call: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut answer = call().await;
    for &delay in delays_ms {
        if !again(&answer) {
            break;
        }
        tracing::warn!(delay_ms = delay, "{what}; asking again");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        answer = call().await;
    }
    answer
}

/// Whether a service answered "slow down" (not unavailable, not refused): worth asking again.
pub fn throttled<T>(answer: &Result<T, crate::error::AwsError>) -> bool {
    matches!(answer, Err(e) if e.is_throttling())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Asks with two delays a service that answers `Ok(7)` from its `good_from`-th ask on (an
    /// error carrying the ask's number before); returns the answer and the number of asks.
    async fn ask_a_service_good_from(good_from: u32) -> (Result<u32, u32>, u32) {
        let calls = Cell::new(0);
        let answer = ask_again(
            "x",
            &[0, 0],
            |a: &Result<u32, u32>| a.is_err(),
            || {
                calls.set(calls.get() + 1);
                std::future::ready(if calls.get() < good_from {
                    Err(calls.get())
                } else {
                    Ok(7)
                })
            },
        )
        .await;
        (answer, calls.get())
    }

    #[tokio::test]
    async fn asks_while_the_answer_calls_for_it_and_no_more_than_the_delays() {
        assert_eq!(
            ask_a_service_good_from(u32::MAX).await,
            (Err(3), 3),
            "the first ask and one after each delay"
        );
        assert_eq!(
            ask_a_service_good_from(2).await,
            (Ok(7), 2),
            "stops at the first good answer"
        );
    }
}
