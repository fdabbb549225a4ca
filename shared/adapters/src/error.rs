//! One error type for every AWS call, keeping the SDK error as its source and saying whether a
//! retry may succeed (throttling, network, 5xx) so Lambda handlers can map it.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

/// An AWS call failed.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct AwsError {
    /// Service name, e.g. `SSM`.
    pub service: &'static str,
    /// Operation name, e.g. `SendCommand`.
    pub operation: &'static str,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// The service's message, or the transport failure.
    pub message: String,
    /// Whether retrying later may succeed.
    pub retryable: bool,
    /// The SDK error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RateExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalFailure",
    "ServiceUnavailable",
    "ConcurrentModificationException",
    "RequestInProgressException",
];

impl AwsError {
    /// Wraps an SDK error.
    pub fn from_sdk<E, R>(service: &'static str, operation: &'static str, e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let (code, message, retryable) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().map(str::to_owned);
                let retryable = code
                    .as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c));
                (
                    code,
                    se.err().message().unwrap_or("no message").to_owned(),
                    retryable,
                )
            }
            SdkError::TimeoutError(_) => (None, "timed out".to_owned(), true),
            SdkError::DispatchFailure(d) => (None, format!("could not send: {d:?}"), true),
            SdkError::ResponseError(_) => (None, "unreadable response".to_owned(), true),
            other => (None, other.to_string(), false),
        };
        AwsError {
            service,
            operation,
            code,
            message,
            retryable,
            source: Some(Box::new(e)),
        }
    }

    /// A response the adapter could not use.
    pub fn malformed(
        service: &'static str,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        AwsError {
            service,
            operation,
            code: None,
            message: message.into(),
            retryable: false,
            source: None,
        }
    }
}

/// Why an event handler stopped. Lambda retries the event when [`EventError::is_retryable`];
/// otherwise the handler reports the event as ignored or refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The state table failed.
    #[error(transparent)]
    Store(#[from] state::ports::StoreError),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Not ready yet (command not recorded, output not visible, certificate still issuing).
    #[error("not ready yet: {0}")]
    NotReady(String),
}

impl EventError {
    /// Whether Lambda should retry the event.
    pub fn is_retryable(&self) -> bool {
        match self {
            EventError::Store(e) => e.is_retryable(),
            EventError::Aws(e) => e.retryable,
            EventError::NotReady(_) => true,
        }
    }
}
