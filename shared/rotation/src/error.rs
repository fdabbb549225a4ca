//! One error type for every call to a service behind a port, keeping the service's code and
//! message (and the SDK error as its source) and saying whether a retry may succeed
//! (throttling, network, 5xx), so the handlers can map it without knowing any SDK.

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

/// Service error codes after which a later retry may succeed.
pub const RETRYABLE_CODES: &[&str] = &[
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
