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
///
/// Each wait is spread over half to one and a half times its delay, by a hash of `spread` (a
/// host ID, a serial): callers that met a quota together (the hosts of one command finishing
/// at once) then ask again apart instead of meeting it again. A hash rather than a random
/// draw keeps one host's waits the same from run to run, which the simulator's replay needs.
pub async fn ask_again<T, E, Fut>(
    what: &str,
    spread: &str,
    delays_ms: &[u64],
    again: impl Fn(&Result<T, E>) -> bool,
    mut call: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut answer = call().await;
    for (attempt, &delay) in delays_ms.iter().enumerate() {
        if !again(&answer) {
            break;
        }
        let delay = spread_delay(delay, spread, attempt);
        tracing::warn!(delay_ms = delay, "{what}; asking again");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        answer = call().await;
    }
    answer
}

/// `delay_ms` spread over `[delay/2, 3·delay/2)` by an FNV-1a hash of `key` and `attempt`.
fn spread_delay(delay_ms: u64, key: &str, attempt: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(attempt.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    delay_ms / 2 + hash % delay_ms.max(1)
}

/// Whether a service answered "slow down" (not unavailable, not refused): worth asking again.
pub fn throttled<T>(answer: &Result<T, crate::error::AwsError>) -> bool {
    matches!(answer, Err(e) if e.is_throttling())
}

/// Whether the table refused a write for now (throttled, unavailable), not for good: worth
/// writing again.
pub fn store_refused_for_now<T>(answer: &Result<T, state::ports::StoreError>) -> bool {
    matches!(answer, Err(e) if e.is_retryable())
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
            "host",
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

    #[test]
    fn waits_are_spread_around_their_delay_apart_for_different_keys_and_alike_for_one() {
        let waits =
            |key: &str| -> Vec<u64> { (0..3).map(|a| spread_delay(1000, key, a)).collect() };
        let many: std::collections::BTreeSet<u64> = (0..50)
            .map(|i| spread_delay(1000, &format!("mi-{i:017x}"), 0))
            .collect();
        assert!(many.iter().all(|w| (500..1500).contains(w)), "{many:?}");
        assert!(many.len() > 40, "fifty hosts wait apart: {many:?}");
        assert_eq!(waits("mi-1"), waits("mi-1"), "one key, the same waits");
        assert_ne!(waits("mi-1"), waits("mi-2"));
        assert_eq!(spread_delay(0, "mi-1", 0), 0, "no delay stays none");
    }
}
