//! SDK configuration for the local stack: dummy credentials, one region, and an endpoint per
//! service, exactly what `AWS_ENDPOINT_URL_<SERVICE>` gives the production binaries.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Base SDK config pointing at `endpoint` with test credentials. `retries: false` turns retries
/// off (for tests that may hit an operation moto lacks: it answers an HTML 500 the SDK retries).
pub fn sdk_config(endpoint: &str, retries: bool) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "local-stack"),
        ))
        .endpoint_url(endpoint)
        .retry_config(if retries {
            RetryConfig::standard().with_max_attempts(3)
        } else {
            RetryConfig::disabled()
        })
        .build()
}

/// A DynamoDB client for `endpoint`.
pub fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(endpoint, true))
}

/// An S3 client config for `endpoint` (see [`sdk_config`]) with path-style addressing, as moto
/// needs (`http://127.0.0.1:<port>/<bucket>/<key>`).
pub fn s3_config(endpoint: &str, retries: bool) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(&sdk_config(endpoint, retries)).force_path_style(true)
}
