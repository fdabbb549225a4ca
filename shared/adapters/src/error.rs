//! SDK errors to the domain's [`AwsError`]: the service's code and message kept, retryable or not.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use rotation::error::AwsError;

/// Wraps an SDK error, keeping its code and message.
pub fn aws_error<E, R>(
    service: &'static str,
    operation: &'static str,
    e: SdkError<E, R>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, message, retryable) = match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_owned);
            let retryable = code
                .as_deref()
                .is_some_and(|c| rotation::error::RETRYABLE_CODES.contains(&c));
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
