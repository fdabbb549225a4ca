//! Failing a rotation the same way everywhere: record FAILED with the attempt count and the next
//! retry time, and alert once per level per failure episode, never once per retry. Retries never
//! give up (the backoff is capped); the alerts escalate by the certificate's time left instead:
//! the first failure, under 24 hours left, expired ([`state::plan::alert_due`]). The level
//! raised is recorded on the item (`alertLevel`), so a rerun or a later failure never repeats it;
//! a successful deployment clears it.

use state::plan::alert_due;
use state::ports::{AlertRecorder, Failure, RotationFailer, StoreError};
use state::record::{AlertLevel, FailureStage};
use state::{HostId, HostRecord};
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

/// A failure recorded, with the alert it calls for (not raised yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Attempts in this episode, including this one.
    pub attempts: u32,
    /// The alert due, with its level.
    pub alert: Option<(AlertLevel, Alert)>,
}

/// The alert kind of each level.
pub fn alert_kind(level: AlertLevel) -> AlertKind {
    match level {
        AlertLevel::Failed => AlertKind::RotationFailed,
        AlertLevel::Urgent => AlertKind::ExpiresSoon,
        AlertLevel::Expired => AlertKind::CertificateExpired,
    }
}

/// Records the failure of `record`'s rotation and returns the alert its episode calls for, if
/// any, without raising it (CertCheck gathers a run's alerts into a digest when there are many).
/// A lost race (someone else moved the host) is returned as the store's conflict error.
pub async fn record_failure<S: RotationFailer>(
    store: &S,
    config: &Config,
    record: &HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Recorded, StoreError> {
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
    let alert = alert_due(record, true, now).map(|level| {
        let alert = Alert {
            kind: alert_kind(level),
            host: Some(record.host.to_string()),
            stage: Some(stage.to_string()),
            reason,
            attempt: Some(outcome.attempts),
            command_id,
            certificate_arn,
        };
        (level, alert)
    });
    Ok(Recorded {
        attempts: outcome.attempts,
        alert,
    })
}

/// Raises `alert` and records its `level` on `host`'s item. A lost alert or a failed write is
/// logged and never undoes what the caller recorded. Returns whether the alert went out.
pub async fn raise_and_record<S: AlertRecorder, A: Alerts>(
    store: &S,
    alerts: &A,
    host: &HostId,
    level: AlertLevel,
    alert: &Alert,
    now: OffsetDateTime,
) -> bool {
    let raised = raise_or_log(alerts, alert).await;
    if raised {
        record_level(store, host, level, now).await;
    }
    raised
}

/// Waits before each further write of an alert level while the table answers a retryable
/// error (throttling): an unrecorded level means the host's next failure alerts again.
pub const LEVEL_DELAYS_MS: [u64; 3] = [250, 1_000, 4_000];

/// Records that an alert of `level` went out for `host`, written again after each of
/// [`LEVEL_DELAYS_MS`] while the table answers a retryable error (logged if it still cannot be
/// written: the next run would then repeat the alert, never lose it).
pub async fn record_level<S: AlertRecorder>(
    store: &S,
    host: &HostId,
    level: AlertLevel,
    now: OffsetDateTime,
) {
    let answer = crate::again::ask_again(
        "recording the alert level failed",
        host.as_str(),
        &LEVEL_DELAYS_MS,
        crate::again::store_refused_for_now,
        || store.alerted(host, level, now),
    )
    .await;
    if let Err(e) = answer {
        tracing::warn!(%host, level = level.as_str(), error = %e, "could not record the alert level");
    }
}

/// Records the failure of `record`'s rotation and raises the alert its episode calls for (see
/// the module). A lost race is returned as the store's conflict error and nothing is alerted.
pub async fn fail_rotation<S: RotationFailer, A: Alerts>(
    store: &S,
    alerts: &A,
    config: &Config,
    record: &HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Failed, StoreError> {
    let recorded = record_failure(store, config, record, failure, now).await?;
    let alerted = match &recorded.alert {
        Some((level, alert)) => {
            raise_and_record(store, alerts, &record.host, *level, alert, now).await
        }
        None => false,
    };
    Ok(Failed {
        attempts: recorded.attempts,
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
