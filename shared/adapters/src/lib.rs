//! Adapters between the domain and AWS, plus what every function shares at its edge.
//!
//! Ports are small traits named after what the domain needs ("ask a host for a CSR", "issue a
//! certificate", "raise an alert"), not after the AWS call. Each SDK-backed adapter only does I/O
//! and maps to domain types; no SDK type crosses into the handlers. What each function
//! really calls is recorded in the end-to-end tests and compared with its IAM role.
//!
//! - [`config`]: the one typed `Config::from_env()` each function reads at cold start.
//! - [`error`]: one error type for AWS calls, classified retryable or not.
//! - [`hosts`]: Run Command (GenerateCsr / DeployCert documents, host reachability).
//! - [`ca`]: Private CA (issue, fetch, CA certificate, revoke).
//! - [`crl`]: CRL objects in S3 and the trust anchor's CRL in Roles Anywhere.
//! - [`alerts`]: SNS alerts with a readable subject and a JSON body.
//! - [`events`]: the EventBridge event shapes the functions receive.
//! - [`failure`]: recording a failed rotation and alerting once per episode.
//! - [`telemetry`]: JSON logs and CloudWatch embedded-metric-format metrics.

pub mod alerts;
pub mod ca;
pub mod config;
pub mod crl;
pub mod error;
pub mod events;
pub mod failure;
pub mod hosts;
pub mod telemetry;
pub mod wiring;

pub use config::Config;
pub use error::AwsError;
pub use wiring::{AwsDeps, Deps};
