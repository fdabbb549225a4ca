//! Failing a rotation the same way everywhere: record FAILED with the attempt count and the next
//! retry time, and alert once per failure episode (on its first failure, and again only when
//! retries are exhausted), never once per retry.

use state::ports::{Failure, RotationFailer, StoreError};
use state::record::FailureStage;
use state::HostRecord;
use time::OffsetDateTime;

use crate::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use crate::config::Config;

/// A rotation failure to record.
#[derive(Debug, Clone)]
pub struct RotationFailure {
    /// The step that failed.
    pub stage: FailureStage,
    /// Why, in words an operator can act on.
    pub reason: String,
    /// The SSM command involved.
    pub command_id: Option<String>,
    /// The certificate involved.
    pub certificate_arn: Option<String>,
}

/// What happened when failing.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// Attempts in this episode, including this one.
    pub attempts: u32,
    /// Whether an alert was raised.
    pub alerted: bool,
}

/// Records the failure of `record`'s rotation and alerts when this is the episode's first
/// failure or its last allowed attempt. A lost race (someone else moved the host) is returned
/// as the store's conflict error and nothing is alerted.
pub async fn fail_rotation<S: RotationFailer, A: Alerts>(
    store: &S,
    alerts: &A,
    config: &Config,
    record: &HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Failed, StoreError> {
    let RotationFailure {
        stage,
        reason,
        command_id,
        certificate_arn,
    } = failure;
    let attempts = record.attempts.failed + 1;
    let next = now + config.plan.backoff(attempts);
    let outcome = store
        .fail(
            record,
            Failure {
                stage,
                reason: reason.clone(),
                next_attempt_at: next,
            },
            now,
        )
        .await?;
    tracing::warn!(host = %record.host, stage = %stage, attempts = outcome.attempts, %reason, "rotation failed");
    let kind = if outcome.attempts >= config.plan.max_attempts {
        Some(AlertKind::RetriesExhausted)
    } else if outcome.attempts == 1 {
        Some(AlertKind::RotationFailed)
    } else {
        None
    };
    let alerted = match kind {
        Some(kind) => {
            let alert = Alert {
                kind,
                host: Some(record.host.to_string()),
                stage: Some(stage.to_string()),
                reason,
                attempt: Some(outcome.attempts),
                command_id,
                certificate_arn,
            };
            // The failure is recorded; a lost alert must not undo it. The log line carries it.
            raise_or_log(alerts, &alert).await
        }
        None => false,
    };
    Ok(Failed {
        attempts: outcome.attempts,
        alerted,
    })
}

impl RotationFailure {
    /// A failure at `stage` for `reason`, with no command or certificate attached.
    pub fn new(stage: FailureStage, reason: impl Into<String>) -> Self {
        RotationFailure {
            stage,
            reason: reason.into(),
            command_id: None,
            certificate_arn: None,
        }
    }
}
