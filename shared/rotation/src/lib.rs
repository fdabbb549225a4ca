//! The rotation domain: everything the four functions decide and the ports they decide over,
//! with no AWS SDK type in it.
//!
//! The state store's ports live with the record in `state`; this crate holds the other ports,
//! each one small trait named after what the domain needs, not after the AWS call:
//! - [`hosts`]: asking a host for a CSR, having it verify and install a pair, reachability;
//! - [`ca`]: issuing, fetching and revoking certificates;
//! - [`alerts`]: raising an alert an operator can act on;
//! - [`crl`]: where CRLs come from and the trust anchor they go to.
//!
//! Beside them: [`config`] (the one typed `Config::from_env()` read at cold start), [`events`]
//! (the event shapes the functions receive), [`failure`] (the failure and alert policy: one
//! alert per episode), [`revocation`] (which revocation reasons hold a host, and revoking the
//! certificates a newer one replaced), [`error`] (service errors, retryable or not, and event errors),
//! [`telemetry`] (embedded-metric-format metrics). The SDK-backed implementations are in the
//! `adapters` crate; the in-memory ones are in the tests crate.

pub mod again;
pub mod alerts;
pub mod budget;
pub mod ca;
pub mod config;
pub mod crl;
pub mod error;
pub mod events;
pub mod failure;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod hosts;
pub mod revocation;
pub mod telemetry;

pub use config::Config;
pub use error::AwsError;

/// A rotation function's dependencies: the state store, the hosts, the CA, alerts and the
/// config. Generic so that production (SDK adapters) and the tests' in-memory kit plug in alike.
pub struct Deps<S, H, C, A> {
    /// The state table.
    pub store: S,
    /// The hosts (Run Command).
    pub hosts: H,
    /// The certificate authority (Private CA).
    pub ca: C,
    /// Alerts (SNS).
    pub alerts: A,
    /// Configuration.
    pub config: Config,
}

/// CRLProcessor's dependencies: the store (hosts and the CRL ledger), where CRL objects are
/// read, the trust anchor's CRLs, the CA (its certificate verifies a CRL), alerts, the config.
pub struct CrlDeps<S, Src, Ra, C, A> {
    /// The state table (hosts and the CRL ledger).
    pub store: S,
    /// Where CRL objects are read.
    pub source: Src,
    /// The trust anchor's CRLs.
    pub anchor: Ra,
    /// The certificate authority.
    pub ca: C,
    /// Alerts.
    pub alerts: A,
    /// Configuration.
    pub config: Config,
}
