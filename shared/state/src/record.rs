//! The per-host record and the rotation state machine.
//!
//! The transitions themselves (guards and effects) are declared once, in [`crate::rules`].

use std::fmt;

use pki::KeyAlgorithm;
use time::OffsetDateTime;

use crate::host::{HostId, HostPath};

/// Identifies one rotation attempt of one host. Carried through every event of that attempt and
/// used to derive the Private CA idempotency token, so a retried step never issues twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RotationId(pub String);

impl RotationId {
    /// A new rotation ID for `host`, unique per (host, record version, time).
    pub fn new(host: &HostId, version: u64, now: OffsetDateTime) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!(
            "{}|{}|{}",
            host,
            version,
            now.unix_timestamp_nanos()
        ));
        let h = hex::encode(&digest[..16]);
        RotationId(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// The ID as text (UUID-shaped, 36 characters: fits PCA's idempotency token limit).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The step of a rotation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureStage {
    /// Checking the host or sending GenerateCsr.
    RequestCsr,
    /// Validating the CSR or requesting the certificate.
    Issue,
    /// Fetching the certificate or sending DeployCert.
    Deploy,
    /// The host refused or failed the DeployCert document.
    Verify,
}

impl FailureStage {
    /// Wire name used in the table and in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::RequestCsr => "REQUEST_CSR",
            FailureStage::Issue => "ISSUE",
            FailureStage::Deploy => "DEPLOY",
            FailureStage::Verify => "VERIFY",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            FailureStage::RequestCsr,
            FailureStage::Issue,
            FailureStage::Deploy,
            FailureStage::Verify,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for FailureStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The certificate a host has in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedCert {
    /// Serial as lower-case hex bytes joined by `:` (or as the original sample wrote it).
    pub serial: Option<String>,
    /// Start of validity, when known (the original sample did not record it).
    pub not_before: Option<OffsetDateTime>,
    /// End of validity (`expiry` in the original sample's items).
    pub not_after: OffsetDateTime,
    /// When to renew, as recorded at deployment (with the host's jitter).
    pub renew_at: Option<OffsetDateTime>,
    /// The certificate's ARN in Private CA, when known.
    pub cert_arn: Option<String>,
}

/// Where a host's rotation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationState {
    /// Enrolled, never rotated by us (or written by the original sample).
    Idle,
    /// GenerateCsr sent (or about to be: `command_id` is set once SendCommand answered).
    CsrRequested {
        /// This rotation.
        rotation: RotationId,
        /// The GenerateCsr command.
        command_id: Option<String>,
    },
    /// The CSR passed policy; Private CA is issuing.
    Issuing {
        /// This rotation.
        rotation: RotationId,
        /// The certificate being issued.
        cert_arn: String,
        /// SHA-256 of the CSR's SubjectPublicKeyInfo: the issued certificate must carry this key.
        key_fingerprint: String,
    },
    /// DeployCert sent (or about to be).
    Deploying {
        /// This rotation.
        rotation: RotationId,
        /// The certificate being deployed.
        cert_arn: String,
        /// The DeployCert command.
        command_id: Option<String>,
        /// The new certificate's facts, recorded when the host confirms.
        pending: DeployedCert,
    },
    /// The current certificate is in place.
    Deployed,
    /// The last rotation failed.
    Failed {
        /// The failed rotation.
        rotation: Option<RotationId>,
        /// The step that failed.
        stage: FailureStage,
        /// Why, in words an operator can act on.
        reason: String,
    },
    /// The current certificate (or, with none, the pending one) was revoked.
    Revoked {
        /// The revoked serial.
        serial: String,
        /// The revocation reason holding the host, if it holds (see
        /// `rotation::revocation`): no rotation starts until an operator releases it.
        held: Option<String>,
    },
}

/// The kind of a state, without its data: what conditional writes compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// See [`RotationState::Idle`].
    Idle,
    /// See [`RotationState::CsrRequested`].
    CsrRequested,
    /// See [`RotationState::Issuing`].
    Issuing,
    /// See [`RotationState::Deploying`].
    Deploying,
    /// See [`RotationState::Deployed`].
    Deployed,
    /// See [`RotationState::Failed`].
    Failed,
    /// See [`RotationState::Revoked`].
    Revoked,
}

impl StateKind {
    /// Wire name stored in `rotationState`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Idle => "IDLE",
            StateKind::CsrRequested => "CSR_REQUESTED",
            StateKind::Issuing => "ISSUING",
            StateKind::Deploying => "DEPLOYING",
            StateKind::Deployed => "DEPLOYED",
            StateKind::Failed => "FAILED",
            StateKind::Revoked => "REVOKED",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        use StateKind::*;
        [
            Idle,
            CsrRequested,
            Issuing,
            Deploying,
            Deployed,
            Failed,
            Revoked,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether a rotation is in flight in this state.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            StateKind::CsrRequested | StateKind::Issuing | StateKind::Deploying
        )
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RotationState {
    /// The kind of this state.
    pub fn kind(&self) -> StateKind {
        match self {
            RotationState::Idle => StateKind::Idle,
            RotationState::CsrRequested { .. } => StateKind::CsrRequested,
            RotationState::Issuing { .. } => StateKind::Issuing,
            RotationState::Deploying { .. } => StateKind::Deploying,
            RotationState::Deployed => StateKind::Deployed,
            RotationState::Failed { .. } => StateKind::Failed,
            RotationState::Revoked { .. } => StateKind::Revoked,
        }
    }

    /// The in-flight rotation, if any.
    pub fn rotation(&self) -> Option<&RotationId> {
        match self {
            RotationState::CsrRequested { rotation, .. }
            | RotationState::Issuing { rotation, .. }
            | RotationState::Deploying { rotation, .. } => Some(rotation),
            RotationState::Failed { rotation, .. } => rotation.as_ref(),
            _ => None,
        }
    }
}

/// Per-host settings an admin may put on the item; absent ones fall back to the stack's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOverrides {
    /// `certPath`: directory of `{host}.crt`.
    pub cert_path: Option<HostPath>,
    /// `keyPath`: directory of `{host}.key`.
    pub key_path: Option<HostPath>,
    /// `cacertPath`: directory of `ca_chain_certificate.crt`.
    pub cacert_path: Option<HostPath>,
    /// `signinghelperPath`: directory of `aws_signing_helper`.
    pub signing_helper_path: Option<HostPath>,
    /// `keyAlgorithm`: the host's key algorithm.
    pub key_algorithm: Option<KeyAlgorithm>,
}

/// Failure bookkeeping kept across retries of one failure episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Failed attempts in the current episode (reset when a rotation succeeds).
    pub failed: u32,
    /// Not before this time may CertCheck retry.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The highest alert raised in the current episode (`alertLevel`; reset when a rotation
    /// succeeds), so a rerun never repeats one.
    pub alerted: Option<AlertLevel>,
}

/// How loud a host's trouble has been made, in escalating order: one alert per level per
/// episode (first failure; under a day left; expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertLevel {
    /// The episode's first failure was alerted.
    Failed,
    /// Under 24 hours of validity left, with the host still failing or offline.
    Urgent,
    /// The certificate expired.
    Expired,
}

impl AlertLevel {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Failed => "FAILED",
            AlertLevel::Urgent => "URGENT",
            AlertLevel::Expired => "EXPIRED",
        }
    }

    /// The level a stored value names (unknown values read as none).
    pub fn parse(s: &str) -> Option<AlertLevel> {
        match s {
            "FAILED" => Some(AlertLevel::Failed),
            "URGENT" => Some(AlertLevel::Urgent),
            "EXPIRED" => Some(AlertLevel::Expired),
            _ => None,
        }
    }
}

/// One host's item, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// The managed-node ID (`hostID`).
    pub host: HostId,
    /// Per-host overrides.
    pub overrides: HostOverrides,
    /// Optimistic-concurrency version; `None` for items never written by this service.
    pub version: Option<u64>,
    /// Where the rotation stands.
    pub state: RotationState,
    /// When the current state was entered (absent on items not written by us).
    pub state_since: Option<OffsetDateTime>,
    /// The certificate in place, if any. For the original sample's items it comes from `expiry`
    /// and `serial`. `None` with a deployed state means `expiry` was removed: rotate now.
    pub current: Option<DeployedCert>,
    /// Failure bookkeeping.
    pub attempts: Attempts,
}

impl HostRecord {
    /// The current serial of a host at rest (deployed, or an original-sample item) or whose
    /// last rotation failed (its live pair is still the current one): what a CRL listing it
    /// marks revoked. A host in flight is left to its rotation, which replaces the serial (the
    /// CRL's reader cannot revoke the pending certificate a cancellation would orphan); an
    /// operator's revocation takes any state (see the `Revoke` rule).
    pub fn revocable_serial(&self) -> Option<&str> {
        if !matches!(
            self.state.kind(),
            StateKind::Deployed | StateKind::Idle | StateKind::Failed
        ) {
            return None;
        }
        self.current.as_ref()?.serial.as_deref()
    }
}
