//! The AWS implementations of the domain's ports, and the one wiring that builds them.
//!
//! Each adapter only does I/O and maps to domain types; no SDK type crosses into the handlers.
//! What each function really calls is recorded in the end-to-end tests and compared with its
//! IAM role, and both each function's `main.rs` and the local stack build their dependencies
//! with [`wiring`], so that check covers the wiring production uses.
//!
//! - [`hosts`]: Run Command (GenerateCsr / DeployCert documents, host reachability).
//! - [`ca`]: Private CA (issue, fetch, CA certificate, revoke).
//! - [`crl`]: CRL objects in S3 and the trust anchor's CRL in Roles Anywhere.
//! - [`alerts`]: SNS alerts.
//! - [`error`]: SDK errors to the domain's service error.
//! - [`telemetry`]: JSON logs.
//! - [`wiring`]: SDK clients to the functions' dependencies.

pub mod alerts;
pub mod ca;
pub mod crl;
pub mod error;
pub mod hosts;
pub mod telemetry;
pub mod wiring;

pub use wiring::{AwsDeps, Clients};
