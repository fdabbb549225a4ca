//! CertIssue's decisions, as pure functions: no port, no clock, no sleep.
//!
//! Why: every branch of the CSR-ready step (a foreign or stale event, a command not recorded
//! yet, a host that failed GenerateCsr, a CSR for another host, a Private CA refusal, a lost
//! race) is a decision on data the handler already holds. Written as functions of the event,
//! the record, the config, the time and the answers of the calls made so far, each branch is a
//! unit test on values; the shell in `lib.rs` only loads, calls these, carries out the effect
//! each one names through the ports, and records the result.
//!
//! The step runs in this order, each function taking what the previous effect returned:
//! 1. [`csr_event`]: which host the event is about (or why it is not ours);
//! 2. [`csr_ready`]: with the host's record, the rotation that waits for this command (or
//!    ignore, or not ready): effect, read the command's output;
//! 3. [`csr_output`]: with the output, the certificate request to make (or fail the rotation):
//!    effect, IssueCertificate;
//! 4. [`issue_answer`]: with Private CA's answer, the certificate ARN to record (or fail, or
//!    retry): effect, record ISSUING;
//! 5. [`issuing_recorded`]: with the store's answer, the outcome.
//!
//! A step that does not go on returns a [`Stop`]; [`failed`] turns the answer of recording a
//! failure into the outcome.

use pki::KeyKind;
use rotation::error::{AwsError, EventError};
use rotation::events::{CommandInvocationDetail, Envelope, SSM_INVOCATION_STATUS};
use rotation::failure::{Failed, RotationFailure};
use rotation::hosts::Invocation;
use rotation::telemetry::Metrics;
use rotation::Config;
use serde::Serialize;
use state::ports::StoreError;
use state::record::{FailureStage, RotationState};
use state::{HostId, HostRecord, RotationId};

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// A certificate was requested.
    Issued {
        /// The host.
        host: String,
        /// The certificate ARN.
        certificate_arn: String,
    },
    /// The event is not ours, stale, or a duplicate: nothing changed.
    Ignored {
        /// Why.
        reason: String,
    },
    /// The rotation failed (CSR refused, command failed, issuance refused): recorded and alerted.
    Failed {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
}

/// Why a step does not go on.
#[derive(Debug)]
pub enum Stop {
    /// Not ours, stale or a duplicate: nothing changes.
    Ignore(String),
    /// Fail this rotation (record FAILED, alert once).
    Fail(Box<Failing>),
    /// Fail the invocation: Lambda retries it when the error is retryable (or not ready).
    Error(EventError),
}

/// A rotation to fail: the record as last seen and the failure to record.
#[derive(Debug, Clone)]
pub struct Failing {
    /// The host's record the failure applies to.
    pub record: HostRecord,
    /// What to record and alert.
    pub failure: RotationFailure,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Error(e.into())
    }
}

/// The rotation waiting for a GenerateCsr command that finished: effect, read its output.
#[derive(Debug, Clone)]
pub struct CsrPending {
    /// The host.
    pub host: HostId,
    /// Its record, as loaded.
    pub record: HostRecord,
    /// The rotation.
    pub rotation: RotationId,
    /// The GenerateCsr command whose output to read.
    pub command_id: String,
}

impl CsrPending {
    /// Stops by failing this rotation at `stage`.
    fn fail(&self, stage: FailureStage, reason: String) -> Stop {
        Stop::Fail(Box::new(Failing {
            record: self.record.clone(),
            failure: RotationFailure {
                command_id: Some(self.command_id.clone()),
                ..RotationFailure::new(stage, reason)
            },
        }))
    }
}

/// An accepted CSR: effect, IssueCertificate with these arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The CSR, canonical PEM.
    pub csr_pem: String,
    /// Validity in days.
    pub validity_days: i64,
    /// Private CA's idempotency token: the rotation, so a retry gets the same certificate.
    pub idempotency_token: String,
    /// SHA-256 of the CSR's SubjectPublicKeyInfo, recorded with the certificate ARN.
    pub key_fingerprint: String,
    /// The CSR key's type and size (for the log line).
    pub key_kind: KeyKind,
}

/// Step 1: the host a Run Command status change is about, if it is a finished GenerateCsr
/// invocation of a managed node.
pub fn csr_event(
    event: &Envelope<CommandInvocationDetail>,
    config: &Config,
) -> Result<HostId, Stop> {
    let d = &event.detail;
    if event.source != "aws.ssm" || event.detail_type != SSM_INVOCATION_STATUS {
        return Err(Stop::Ignore(format!(
            "unexpected event {} / {}",
            event.source, event.detail_type
        )));
    }
    if d.document_name != config.generate_csr_document {
        return Err(Stop::Ignore(format!(
            "document {} is not GenerateCsr",
            d.document_name
        )));
    }
    d.finished_host().map_err(Stop::Ignore)
}

/// Step 2: with `host`'s record, the rotation waiting for exactly this command. A rotation
/// whose command is not recorded yet is not ready (SendCommand answered, the write is coming).
pub fn csr_ready(
    event: &Envelope<CommandInvocationDetail>,
    host: &HostId,
    record: Option<HostRecord>,
) -> Result<CsrPending, Stop> {
    let d = &event.detail;
    let Some(record) = record else {
        return Err(Stop::Ignore(format!("host {host} is not enrolled")));
    };
    let RotationState::CsrRequested {
        rotation,
        command_id,
    } = &record.state
    else {
        return Err(Stop::Ignore(format!(
            "host is in {} (stale or duplicated event)",
            record.state.kind()
        )));
    };
    match command_id {
        Some(c) if *c == d.command_id => {}
        Some(c) => {
            return Err(Stop::Ignore(format!(
                "the rotation waits for command {c}, not {}",
                d.command_id
            )))
        }
        None => {
            return Err(Stop::Error(EventError::NotReady(
                "the GenerateCsr command is not recorded yet".into(),
            )))
        }
    }
    Ok(CsrPending {
        host: host.clone(),
        rotation: rotation.clone(),
        command_id: d.command_id.clone(),
        record,
    })
}

/// Step 3: with the command's output, the certificate to request. The output must echo this
/// rotation and hold one CSR that passes the policy (`pki::check_csr`: signature, subject
/// exactly `CN=<host>`, no other names, key type and size).
pub fn csr_output(
    pending: &CsrPending,
    output: Result<Invocation, AwsError>,
    config: &Config,
) -> Result<IssueRequest, Stop> {
    let rotation = &pending.rotation;
    let stdout = match output {
        Err(e) if e.retryable => return Err(Stop::Error(e.into())),
        Err(e) => {
            return Err(pending.fail(
                FailureStage::Issue,
                format!("could not read the GenerateCsr output: {e}"),
            ))
        }
        Ok(Invocation::Pending) => {
            return Err(Stop::Error(EventError::NotReady(
                "the command output is not visible yet".into(),
            )))
        }
        Ok(Invocation::Finished {
            success: false,
            status,
            stderr,
            ..
        }) => {
            let why = rotation::hosts::host_error(&stderr);
            return Err(pending.fail(
                FailureStage::RequestCsr,
                format!("GenerateCsr {status} on the host: {why}"),
            ));
        }
        Ok(Invocation::Finished { stdout, .. }) => stdout,
    };
    let echoed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROTATION "))
        .map(str::trim);
    if echoed != Some(rotation.as_str()) {
        return Err(pending.fail(
            FailureStage::Issue,
            format!(
                "GenerateCsr output belongs to rotation {:?}, not {rotation}",
                echoed.unwrap_or("none")
            ),
        ));
    }
    let accepted = pki::extract_csr_pem(&stdout)
        .and_then(|pem| pki::check_csr(&pem, pending.host.as_str(), &config.csr_policy()))
        .map_err(|e| pending.fail(FailureStage::Issue, format!("CSR refused: {e}")))?;
    Ok(IssueRequest {
        csr_pem: accepted.pem,
        validity_days: config.cert_validity_days,
        idempotency_token: rotation.as_str().to_owned(),
        key_fingerprint: accepted.key.spki_sha256,
        key_kind: accepted.key.kind,
    })
}

/// Step 4: with Private CA's answer to IssueCertificate, the certificate ARN to record as
/// ISSUING. A refusal that a retry will not cure fails the rotation; any other is retried.
pub fn issue_answer(
    pending: &CsrPending,
    answer: Result<String, AwsError>,
) -> Result<String, Stop> {
    match answer {
        Ok(cert_arn) => Ok(cert_arn),
        Err(e) if e.retryable => Err(Stop::Error(e.into())),
        Err(e) => Err(pending.fail(
            FailureStage::Issue,
            format!("Private CA refused the request: {e}"),
        )),
    }
}

/// Step 5: with the store's answer to recording ISSUING, the outcome. A conflict is a
/// duplicate delivery that got there first (the idempotency token gave it the same ARN).
pub fn issuing_recorded(
    pending: &CsrPending,
    cert_arn: &str,
    answer: Result<HostRecord, StoreError>,
) -> Result<Outcome, Stop> {
    match answer {
        Ok(_) => Ok(Outcome::Issued {
            host: pending.host.to_string(),
            certificate_arn: cert_arn.to_owned(),
        }),
        Err(StoreError::Conflict(c)) => Err(Stop::Ignore(c.to_string())),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => Err(pending.fail(
            FailureStage::Issue,
            format!("could not record the certificate request {cert_arn}: {e}"),
        )),
    }
}

/// The outcome of recording `failing`: failed, or ignored when someone else moved the host
/// first; a store error fails the invocation.
pub fn failed(
    failing: &Failing,
    answer: Result<Failed, StoreError>,
) -> Result<Outcome, EventError> {
    match answer {
        Ok(_) => Ok(Outcome::Failed {
            host: failing.record.host.to_string(),
            reason: failing.failure.reason.clone(),
        }),
        Err(StoreError::Conflict(c)) => Ok(Outcome::Ignored {
            reason: c.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether SQS must deliver a record again, given what handling its event came to: yes for
/// every error of the invocation (throttled or unavailable, not ready yet, or a failure that
/// could not be recorded: redelivery retries it, and one that never clears ends in the
/// dead-letter queue, whose alarm alerts); no for every outcome (issued, ignored, or the
/// rotation failed for good and recorded: retrying a refused CSR changes nothing).
pub fn deliver_again<E>(result: &Result<Outcome, E>) -> bool {
    result.is_err()
}

/// The metrics of one invocation's outcomes: certificates requested, and rotations failed (a
/// refused CSR, a GenerateCsr that failed on the host, a Private CA refusal), as CertDeploy
/// counts its own failures, so the stack's `RotationsFailed` alarm sees every stage. Ignored
/// events count nothing; none at all means no line.
pub fn metrics(outcomes: &[Outcome]) -> Metrics {
    let (mut issued, mut failed) = (0, 0);
    for outcome in outcomes {
        match outcome {
            Outcome::Issued { .. } => issued += 1,
            Outcome::Failed { .. } => failed += 1,
            Outcome::Ignored { .. } => {}
        }
    }
    let mut metrics = Metrics::default();
    if issued > 0 {
        metrics.count("CertificatesRequested", issued);
    }
    if failed > 0 {
        metrics.count("RotationsFailed", failed);
    }
    metrics
}

#[cfg(test)]
mod tests;
