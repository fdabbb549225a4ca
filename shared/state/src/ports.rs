//! The capabilities each function needs from the state store, one small trait each.
//!
//! CertCheck reads the fleet and starts rotations; CertIssue records issuance; CertDeploy finds
//! the host an issuance event belongs to and records deployment. Each handler is generic over
//! only the traits it uses, so a unit test's fake implements a handful of methods, and a reader
//! cannot write what it should not.

use std::future::Future;

use time::OffsetDateTime;

use crate::host::{HostId, InvalidRow};
use crate::plan::DueWindow;
use crate::record::{DeployedCert, FailureStage, HostOverrides, HostRecord, RotationId, StateKind};

/// A transition lost a race or arrived out of order: someone else moved this host first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host {host}: cannot {transition}: someone else moved this host (or the event is stale)")]
pub struct TransitionConflict {
    /// The host.
    pub host: HostId,
    /// What was attempted.
    pub transition: &'static str,
}

/// Errors from the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conditional write failed: the host is not in the state this transition expects.
    #[error(transparent)]
    Conflict(#[from] TransitionConflict),
    /// No item for this host.
    #[error("host {0} is not enrolled")]
    NotFound(HostId),
    /// The item exists but is invalid (hostile or malformed attributes).
    #[error("host item {key} is refused: {reason}")]
    InvalidRow {
        /// The item's key, escaped.
        key: String,
        /// Why.
        #[source]
        reason: InvalidRow,
    },
    /// DynamoDB failed.
    #[error("DynamoDB {operation} failed")]
    Backend {
        /// The operation.
        operation: &'static str,
        /// Whether retrying later may succeed (throttling, network, 5xx).
        retryable: bool,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Whether the caller may succeed by retrying later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// A row that could not be planned, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// The item's `hostID`, escaped and shortened (or a note that it had none).
    pub key: String,
    /// Why it was refused.
    pub reason: InvalidRow,
}

/// The result of reading the fleet for planning.
#[derive(Debug, Clone, Default)]
pub struct FleetScan {
    /// Valid records that may need work (every host whose renewal point has passed, every host
    /// with no certificate, in flight, failed or revoked).
    pub records: Vec<HostRecord>,
    /// Rows refused by validation; the other hosts go on.
    pub rejected: Vec<RejectedRow>,
    /// Items DynamoDB read to answer (its `ScannedCount`).
    pub items_read: u64,
    /// Scan pages fetched.
    pub pages: u64,
}

/// What CertCheck reads.
pub trait FleetReader: Send + Sync {
    /// Every host that may need work inside `window`, across all pages. It may return more
    /// (the planner decides), never fewer: a host left out is a host not rotated.
    fn candidates(
        &self,
        window: DueWindow,
    ) -> impl Future<Output = Result<FleetScan, StoreError>> + Send;

    /// Every host, valid or refused (reports, and CRLProcessor's serial lookup).
    fn all_hosts(&self) -> impl Future<Output = Result<FleetScan, StoreError>> + Send;

    /// One host's record (strongly consistent).
    fn host(
        &self,
        host: &HostId,
    ) -> impl Future<Output = Result<Option<HostRecord>, StoreError>> + Send;
}

/// Outcome of failing a rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct FailOutcome {
    /// The record after the write.
    pub record: HostRecord,
    /// Failed attempts in this episode, including this one.
    pub attempts: u32,
}

/// How a failure is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step that failed.
    pub stage: FailureStage,
    /// An operator-readable reason (no secrets).
    pub reason: String,
    /// When CertCheck may retry.
    pub next_attempt_at: OffsetDateTime,
}

/// The expected current state for a write: the write happens only if the item still matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The state kind.
    pub kind: StateKind,
    /// The rotation in flight, when there is one.
    pub rotation: Option<RotationId>,
}

/// Failing a rotation: every function may need it.
pub trait RotationFailer: Send + Sync {
    /// Moves an in-flight rotation to FAILED, counting the attempt.
    fn fail(
        &self,
        record: &HostRecord,
        failure: Failure,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<FailOutcome, StoreError>> + Send;
}

/// What CertCheck writes.
pub trait RotationStarter: RotationFailer {
    /// Claims the host for a new rotation if it is still exactly as `record` shows (same version).
    fn start(
        &self,
        record: &HostRecord,
        rotation: &RotationId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;

    /// Records the GenerateCsr command sent for the claimed rotation.
    fn csr_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;

    /// Marks the host's current certificate revoked (only if `serial` is still current).
    fn revoked(
        &self,
        record: &HostRecord,
        serial: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;
}

/// What CertIssue writes.
pub trait IssuanceRecorder: RotationFailer {
    /// Records the requested certificate for the rotation whose GenerateCsr command was `command_id`.
    fn issuing(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
        cert_arn: &str,
        key_fingerprint: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;
}

/// What CertDeploy reads and writes.
pub trait DeploymentRecorder: RotationFailer {
    /// The host whose pending rotation waits for `cert_arn`, if any.
    fn host_waiting_for(
        &self,
        cert_arn: &str,
    ) -> impl Future<Output = Result<Option<HostId>, StoreError>> + Send;

    /// Claims the deployment of `cert_arn` (ISSUING → DEPLOYING) with the new certificate's facts.
    fn deploying(
        &self,
        host: &HostId,
        rotation: &RotationId,
        cert_arn: &str,
        pending: &DeployedCert,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;

    /// Records the DeployCert command sent.
    fn deploy_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;

    /// The host verified and swapped the pair: DEPLOYED with the new certificate.
    fn deployed(
        &self,
        host: &HostId,
        command_id: &str,
        cert: &DeployedCert,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;
}

/// Enrolment (the demo, tests, and admin tooling; production admins usually `put-item`).
pub trait Enroller: Send + Sync {
    /// Adds a host with its overrides; refuses a host already enrolled.
    fn enrol(
        &self,
        host: &HostId,
        overrides: &HostOverrides,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The last CRL imported to the trust anchor, per CA (CRLProcessor only imports newer ones).
pub trait CrlLedger: Send + Sync {
    /// The last imported CRL number of `ca_id` (lower-case hex), if any.
    fn last_crl_number(
        &self,
        ca_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records `number` as imported if the ledger still holds `previous` (optimistic concurrency:
    /// a concurrent import of another CRL makes this a conflict).
    fn record_crl_number(
        &self,
        ca_id: &str,
        previous: Option<&str>,
        number: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
