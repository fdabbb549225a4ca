//! Why a run stopped, and the kind of failure Lambda records for it.
//!
//! A caller's mistake is a [`FailureKind::BadRequest`]; a store or AWS error is
//! [`FailureKind::Retryable`] when a retry may cure it (throttling, 5xx, network) and
//! [`FailureKind::Permanent`] otherwise (access denied, validation), so a table CertCheck may not
//! read fails the invocation visibly; a task that panicked or was cancelled is retryable. A
//! revocation refused for what it names is the one refusal answered rather than failed (see
//! [`CheckError::Refused`]).

use rotation::alerts::{Alert, AlertKind};
use rotation::error::{FailureKind, FunctionError};
use rotation::AwsError;
use state::ports::StoreError;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The payload is not a valid request: the invocation fails with `BadRequest`.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// A revocation refused for what it names (a host that is no managed-node ID or is not
    /// enrolled, an unknown reason, nothing to revoke). Answered `{"error": …}` rather than
    /// failed: operators and the end-to-end suite read the refusal from the answer.
    #[error("invalid request: {0}")]
    Refused(String),
    /// What the request needs is not there yet (a pending certificate still being issued):
    /// nothing changed, asking again later may succeed.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The state table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A rotation's task panicked or was cancelled.
    #[error("task failed: {0}")]
    LostTask(String),
}

impl CheckError {
    /// How Lambda should see this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            CheckError::BadRequest(_) | CheckError::Refused(_) => FailureKind::BadRequest,
            CheckError::NotReady(_) => FailureKind::NotReady,
            CheckError::Store(e) if e.is_retryable() => FailureKind::Retryable,
            CheckError::Aws(e) if e.retryable => FailureKind::Retryable,
            CheckError::Store(_) | CheckError::Aws(_) => FailureKind::Permanent,
            CheckError::LostTask(_) => FailureKind::Retryable,
        }
    }
}

impl From<CheckError> for FunctionError {
    fn from(e: CheckError) -> Self {
        match &e {
            CheckError::LostTask(what) => FunctionError::lost_task(what),
            _ => FunctionError::new(e.kind(), &e),
        }
    }
}

/// The one alert of a run that failed for a reason a retry will not fix (access denied, a
/// validation error): it names the cause. Retryable failures are retried by Lambda and alarmed
/// on by their metric; a caller's mistake is answered to the caller.
pub fn run_failed_alert<T>(result: &Result<T, CheckError>) -> Option<Alert> {
    match result {
        Err(e) if e.kind() == FailureKind::Permanent => Some(Alert::new(
            AlertKind::RunFailed,
            format!("CertCheck stopped before finishing its run, nothing more will rotate until this is fixed: {e}"),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::{aws_error, backend_error};

    #[test]
    fn bad_requests_and_refusals_are_bad_requests() {
        let e = FunctionError::from(CheckError::BadRequest("force needs a list of hosts".into()));
        assert_eq!(e.kind, FailureKind::BadRequest);
        assert_eq!(e.message, "invalid request: force needs a list of hosts");
        assert_eq!(
            CheckError::Refused("x".into()).kind(),
            FailureKind::BadRequest
        );
    }

    #[test]
    fn retryable_store_errors_are_retryable_others_permanent() {
        let e = FunctionError::from(CheckError::Store(backend_error(
            "ThrottlingException",
            true,
        )));
        assert_eq!(e.kind, FailureKind::Retryable);
        assert!(e.message.contains("ThrottlingException"), "{}", e.message);
        let e = FunctionError::from(CheckError::Store(backend_error(
            "AccessDeniedException",
            false,
        )));
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e.message.contains("AccessDeniedException"), "{}", e.message);
        let conflict = StoreError::NotFound(crate::step::fixtures::host(1));
        assert_eq!(CheckError::Store(conflict).kind(), FailureKind::Permanent);
    }

    #[test]
    fn retryable_aws_errors_are_retryable_others_permanent() {
        assert_eq!(
            CheckError::Aws(aws_error("ThrottlingException", true)).kind(),
            FailureKind::Retryable
        );
        let e = FunctionError::from(CheckError::Aws(aws_error("AccessDeniedException", false)));
        assert_eq!(e.kind, FailureKind::Permanent);
        assert!(e.message.contains("SendCommand"), "{}", e.message);
    }

    #[test]
    fn a_lost_task_is_retryable_never_a_bad_request() {
        let e = FunctionError::from(CheckError::LostTask("task 7 panicked".into()));
        assert_eq!(e, FunctionError::lost_task("task 7 panicked"));
        assert_eq!(e.kind, FailureKind::Retryable);
    }

    #[test]
    fn only_a_permanent_failure_raises_a_run_failed_alert_naming_its_cause() {
        use crate::step::fixtures::backend_error;
        let denied: Result<(), CheckError> =
            Err(backend_error("AccessDeniedException", false).into());
        let a = run_failed_alert(&denied).unwrap();
        assert_eq!(a.kind, AlertKind::RunFailed);
        assert!(a.reason.contains("AccessDeniedException"), "{}", a.reason);
        assert_eq!(a.host, None);
        let throttled: Result<(), CheckError> =
            Err(backend_error("ThrottlingException", true).into());
        assert_eq!(run_failed_alert(&throttled), None);
        let bad: Result<(), CheckError> = Err(CheckError::BadRequest("x".into()));
        assert_eq!(run_failed_alert(&bad), None);
        assert_eq!(run_failed_alert(&Ok::<(), CheckError>(())), None);
    }
}
