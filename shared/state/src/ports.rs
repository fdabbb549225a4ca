//! The capabilities each function needs from the state store, one small trait each.
//!
//! CertCheck reads the fleet and starts rotations; CertIssue records issuance; CertDeploy finds
//! the host an issuance event belongs to and records deployment; CRLProcessor marks revoked
//! hosts and keeps the CRL ledger. Every write goes through one port, [`Transitions`], which
//! carries out a rule of [`crate::rules`]; the named capability traits over it are what each
//! handler's bounds ask for, so a handler's signature says which transitions it can make.

use std::future::Future;

use time::OffsetDateTime;

use crate::crl_ledger::{LedgerEntry, LedgerWrite};
use crate::host::{HostId, InvalidRow};
use crate::plan::DueWindow;
use crate::record::{DeployedCert, FailureStage, HostOverrides, HostRecord, RotationId};
use crate::rules::Change;

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
    /// The store's backend failed; `code` and `message` are the service's own words.
    #[error("DynamoDB {operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Backend {
        /// The operation.
        operation: &'static str,
        /// The service's error code (`AccessDeniedException`, `ThrottlingException` …), if any.
        code: Option<String>,
        /// The service's message, or the transport failure.
        message: String,
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

    /// Every host with a rotation in flight or failed (the reconcile pass), across all pages.
    /// The stores read a sparse index that holds only those hosts
    /// ([`crate::item::attr::UNSETTLED`]), so `items_read` counts them and not the fleet. The
    /// default filters [`FleetReader::all_hosts`] (correct, not cheap) for readers with no index.
    fn in_flight(&self) -> impl Future<Output = Result<FleetScan, StoreError>> + Send {
        async {
            let mut scan = self.all_hosts().await?;
            scan.records
                .retain(|r| crate::item::is_unsettled(r.state.kind()));
            Ok(scan)
        }
    }

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

/// The one write port: carries out a transition under its rule ([`crate::rules`]), atomically.
/// The DynamoDB store and the in-memory store implement it; the capability traits below are
/// thin, named views over it, so each function's bounds say which transitions it makes.
pub trait Transitions: Send + Sync {
    /// Applies `change` to `host` if the rule's guard holds; a guard that does not hold is a
    /// [`StoreError::Conflict`].
    fn transition(
        &self,
        host: &HostId,
        change: Change,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send;
}

/// Failing a rotation: every rotation function may need it.
pub trait RotationFailer: Transitions {
    /// Moves an in-flight rotation to FAILED, counting the attempt.
    fn fail(
        &self,
        record: &HostRecord,
        failure: Failure,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<FailOutcome, StoreError>> + Send {
        async move {
            let conflict = || TransitionConflict {
                host: record.host.clone(),
                transition: "fail",
            };
            let rotation = record.state.rotation().cloned().ok_or_else(conflict)?;
            let attempts = record.attempts.failed + 1;
            let change = Change::Fail {
                from: record.state.kind(),
                rotation,
                stage: failure.stage,
                reason: failure.reason,
                attempts,
                next_attempt_at: failure.next_attempt_at,
            };
            let record = self.transition(&record.host, change, now).await?;
            Ok(FailOutcome { record, attempts })
        }
    }
}

/// Recording the alert level raised for a host's episode (every function that alerts on hosts).
pub trait AlertRecorder: Transitions {
    /// Records that an alert of `level` went out for `host`'s current episode.
    fn alerted(
        &self,
        host: &HostId,
        level: crate::record::AlertLevel,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        self.transition(host, Change::Alerted { level }, now)
    }
}

impl<T: Transitions> AlertRecorder for T {}

/// Marking a due host that could not be reached, so the reconcile pass finds it (CertCheck).
pub trait OnlineWaiter: Transitions {
    /// Puts `host` (at rest: IDLE or DEPLOYED) in the unsettled index until its next rotation.
    fn awaiting_online(
        &self,
        host: &HostId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        self.transition(host, Change::AwaitingOnline, now)
    }
}

impl<T: Transitions> OnlineWaiter for T {}

/// What CertCheck writes to start rotations.
pub trait RotationStarter: RotationFailer {
    /// Claims the host for a new rotation if it is still exactly as `record` shows (same version).
    fn start(
        &self,
        record: &HostRecord,
        rotation: &RotationId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::Start {
            expected_version: record.version,
            rotation: rotation.clone(),
        };
        self.transition(&record.host, change, now)
    }

    /// Records the GenerateCsr command sent for the claimed rotation.
    fn csr_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::CsrSent {
            rotation: rotation.clone(),
            command_id: command_id.to_owned(),
        };
        self.transition(host, change, now)
    }
}

/// Marking a host's certificate revoked (CertCheck on an operator's request, CRLProcessor for
/// serials on a CRL) and releasing a held host (CertCheck).
pub trait RevocationRecorder: Transitions {
    /// Marks `record`'s current certificate `serial` revoked (only if it is still current and
    /// the host still in the state read), holding the host when `held` names the reason.
    fn revoked(
        &self,
        record: &HostRecord,
        serial: &str,
        held: Option<&str>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::Revoke {
            from: record.state.kind(),
            rotation: record
                .state
                .kind()
                .in_flight()
                .then(|| record.state.rotation().cloned())
                .flatten(),
            current: record.current.as_ref().and_then(|c| c.serial.clone()),
            serial: serial.to_owned(),
            held: held.map(str::to_owned),
        };
        self.transition(&record.host, change, now)
    }

    /// Releases a host held by the revocation reason `held`.
    fn released(
        &self,
        host: &HostId,
        held: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::Release {
            held: held.to_owned(),
        };
        self.transition(host, change, now)
    }
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
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::Issuing {
            rotation: rotation.clone(),
            command_id: command_id.to_owned(),
            cert_arn: cert_arn.to_owned(),
            key_fingerprint: key_fingerprint.to_owned(),
        };
        self.transition(host, change, now)
    }
}

/// Finding the host a certificate was requested for (an eventually consistent index).
pub trait PendingCertificates: Send + Sync {
    /// The host whose pending rotation waits for `cert_arn`, if any.
    fn host_waiting_for(
        &self,
        cert_arn: &str,
    ) -> impl Future<Output = Result<Option<HostId>, StoreError>> + Send;
}

/// What CertDeploy reads and writes.
pub trait DeploymentRecorder: RotationFailer + PendingCertificates {
    /// Claims the deployment of `cert_arn` (ISSUING → DEPLOYING) with the new certificate's facts.
    fn deploying(
        &self,
        host: &HostId,
        rotation: &RotationId,
        cert_arn: &str,
        pending: &DeployedCert,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::BeginDeploy {
            rotation: rotation.clone(),
            cert_arn: cert_arn.to_owned(),
            pending: pending.clone(),
        };
        self.transition(host, change, now)
    }

    /// Records the DeployCert command sent.
    fn deploy_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::DeploySent {
            rotation: rotation.clone(),
            command_id: command_id.to_owned(),
        };
        self.transition(host, change, now)
    }

    /// The host verified and swapped the pair: DEPLOYED with the new certificate.
    fn deployed(
        &self,
        host: &HostId,
        command_id: &str,
        cert: &DeployedCert,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<HostRecord, StoreError>> + Send {
        let change = Change::Deployed {
            command_id: command_id.to_owned(),
            cert: cert.clone(),
        };
        self.transition(host, change, now)
    }
}

impl<T: Transitions> RotationFailer for T {}
impl<T: Transitions> RotationStarter for T {}
impl<T: Transitions> RevocationRecorder for T {}
impl<T: Transitions> IssuanceRecorder for T {}
impl<T: Transitions + PendingCertificates> DeploymentRecorder for T {}

/// Enrolment (the demo, tests, and admin tooling; production admins usually `put-item`).
pub trait Enroller: Send + Sync {
    /// Adds a host with its overrides; refuses a host already enrolled.
    fn enrol(
        &self,
        host: &HostId,
        overrides: &HostOverrides,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The CRL ledger of each CA: what reached the trust anchor, and the claim that serialises
/// imports (see [`crate::crl_ledger`]).
pub trait CrlLedger: Send + Sync {
    /// The ledger of `ca_id` as it is now (strongly consistent).
    fn crl_ledger(
        &self,
        ca_id: &str,
    ) -> impl Future<Output = Result<LedgerEntry, StoreError>> + Send;

    /// Carries out `write` on the ledger of `ca_id` if its condition holds; `false` when it does
    /// not (someone else moved the ledger first).
    fn write_crl_ledger(
        &self,
        ca_id: &str,
        write: &LedgerWrite,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
