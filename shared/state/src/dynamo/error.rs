//! SDK errors to store errors. The service's error code and message travel with the error, so
//! logs, answers and alerts can tell access denied from throttling from a validation error.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// Error codes after which a later retry may succeed.
const RETRYABLE: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

pub(crate) fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

pub(crate) fn backend<E, R>(operation: &'static str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, message, retryable) = match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_owned);
            let retryable = code.as_deref().is_some_and(|c| RETRYABLE.contains(&c));
            let message = se.err().message().unwrap_or("no message").to_owned();
            (code, message, retryable)
        }
        SdkError::TimeoutError(_) => (None, "timed out".to_owned(), true),
        SdkError::DispatchFailure(d) => (None, format!("could not send: {d:?}"), true),
        SdkError::ResponseError(_) => (None, "unreadable response".to_owned(), true),
        other => (None, other.to_string(), false),
    };
    StoreError::Backend {
        operation,
        code,
        message,
        retryable,
        source: Box::new(e),
    }
}
