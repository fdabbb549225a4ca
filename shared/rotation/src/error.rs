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
    "SlowDown",
    "ServiceUnavailableException",
    "InternalServerException",
];

/// Service error codes that mean "slow down": the call would succeed at a lower rate.
pub const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RateExceeded",
    "SlowDown",
];

impl AwsError {
    /// Whether the service asked us to slow down (as opposed to being unavailable): worth
    /// asking again after a wait within the same invocation.
    pub fn is_throttling(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| THROTTLING_CODES.contains(&c))
    }

    /// The same failure for another caller of one shared call (one command's hosts): service,
    /// operation, code, message and verdict; the SDK error stays with the first.
    pub fn for_another(&self) -> AwsError {
        AwsError {
            service: self.service,
            operation: self.operation,
            code: self.code.clone(),
            message: self.message.clone(),
            retryable: self.retryable,
            source: None,
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

/// How an invocation failed, as Lambda and CloudWatch should see it. The kind becomes the
/// error type Lambda records (`errorType`), so a dashboard or a failure destination can tell a
/// caller's mistake from an outage from something that will clear by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request or event cannot be acted on as sent; retrying it changes nothing.
    BadRequest,
    /// Something the step needs is not there yet (output not visible, certificate still
    /// issuing, command not recorded); a retry will find it.
    NotReady,
    /// A dependency failed in a way a retry may cure (throttling, 5xx, network, a lost task).
    Retryable,
    /// A dependency refused in a way a retry will not cure (access denied, validation).
    Permanent,
}

impl FailureKind {
    /// The `errorType` Lambda records.
    pub fn error_type(self) -> &'static str {
        match self {
            FailureKind::BadRequest => "BadRequest",
            FailureKind::NotReady => "NotReady",
            FailureKind::Retryable => "Retryable",
            FailureKind::Permanent => "Permanent",
        }
    }
}

/// An invocation's failure: its kind and the whole causal chain as the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct FunctionError {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The error and its causes, outermost first.
    pub message: String,
}

impl FunctionError {
    /// A failure of `kind` described by `error` and its sources.
    pub fn new(kind: FailureKind, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        FunctionError { kind, message }
    }

    /// A failure of `kind` with a plain message.
    pub fn msg(kind: FailureKind, message: impl Into<String>) -> Self {
        FunctionError {
            kind,
            message: message.into(),
        }
    }

    /// A task that panicked or was cancelled: retryable, never the caller's fault.
    pub fn lost_task(what: impl std::fmt::Display) -> Self {
        FunctionError::msg(FailureKind::Retryable, format!("task failed: {what}"))
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind.error_type().to_owned(),
            error_message: e.message,
        }
    }
}

impl From<&EventError> for FailureKind {
    fn from(e: &EventError) -> Self {
        match e {
            EventError::NotReady(_) => FailureKind::NotReady,
            e if e.is_retryable() => FailureKind::Retryable,
            _ => FailureKind::Permanent,
        }
    }
}

impl From<EventError> for FunctionError {
    fn from(e: EventError) -> Self {
        FunctionError::new(FailureKind::from(&e), &e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_becomes_the_error_type_and_causes_stay_in_the_message() {
        let aws = AwsError {
            service: "SSM",
            operation: "SendCommand",
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
            retryable: true,
            source: None,
        };
        let e = FunctionError::from(EventError::Aws(aws));
        assert_eq!(e.kind, FailureKind::Retryable);
        assert!(e.message.contains("ThrottlingException"), "{}", e.message);
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "Retryable");
        let not_ready = FunctionError::from(EventError::NotReady("output".into()));
        assert_eq!(not_ready.kind, FailureKind::NotReady);
        assert_eq!(
            FunctionError::lost_task("panic").kind,
            FailureKind::Retryable
        );
    }
}
