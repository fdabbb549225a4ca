//! CertDeploy's decisions, as pure functions: no port, no clock, no sleep.
//!
//! Why: whether an issuance event is ours, whether the certificate may go to the host, what to
//! record when the host answers, and what to do with each error are decisions on data the
//! handler already holds. Written as functions of the event, the record, the config, the time
//! and the answers of the calls made so far, each branch is a unit test on values; the shell in
//! `lib.rs` only loads, calls these, carries out the effect each one names through the ports
//! (including the timing of fetch retries) and records the result.
//!
//! The issuance step ([`issuance`]), each function taking what the previous effect returned:
//! [`issuance::issuance_event`] (our CA's certificate?) → look up the waiting host (none: the
//! [`orphan`] path, fetch it, [`orphan::fetched`] → [`orphan::named_host`] → load its record →
//! [`orphan::orphan`] → revoke it) → load its record → [`issuance::issuance_record`] (is that
//! rotation waiting for this certificate? did issuance succeed?) → fetch the certificate
//! ([`issuance::fetch_again`] while it is being issued) → [`issuance::fetched`] (ready, and
//! [`issuance::check_certificate`]) → claim the deployment → [`issuance::claimed`] → send
//! DeployCert → [`issuance::deploy_sent`] → record the command → [`issuance::deploy_recorded`].
//!
//! The deploy-status step ([`status`]): [`status::deploy_event`] → load the record →
//! [`status::deploy_status`] → either read the host's output and [`status::host_failed`], or
//! record DEPLOYED and [`status::deployed_recorded`], then revoke the certificate it replaced
//! ([`status::superseded`]).
//!
//! A step that does not go on returns a [`Stop`]; [`failed`] turns the answer of recording a
//! failure into the outcome.

use rotation::error::EventError;
use rotation::failure::{Failed, RotationFailure};
use serde::Serialize;
use state::ports::StoreError;
use state::record::FailureStage;
use state::HostRecord;
use time::{Duration, OffsetDateTime};

/// How long after its event a delivery is retried for something still on its way (the
/// rotation's ISSUING record or its index entry, DeployCert's output, which can lag the status
/// event); after that the event is judged without it.
pub const WAIT_FOR_EVENT: Duration = Duration::minutes(15);

/// Whether an event sent at `sent` is within [`WAIT_FOR_EVENT`] (unknown: a rebuilt or
/// synthesized event, taken as young).
pub fn young(sent: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    sent.is_none_or(|sent| now - sent <= WAIT_FOR_EVENT)
}

pub mod batch;
pub mod issuance;
pub mod orphan;
pub mod status;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// DeployCert was sent.
    DeploySent {
        /// The host.
        host: String,
        /// The DeployCert command.
        command_id: String,
    },
    /// The host installed the certificate.
    Deployed {
        /// The host.
        host: String,
        /// The new serial.
        serial: String,
    },
    /// A certificate that never reached its host, revoked (see [`orphan`]).
    Retired {
        /// The host it names.
        host: String,
        /// Its serial.
        serial: String,
        /// Whether the CA revoked it (otherwise it was alerted).
        revoked: bool,
    },
    /// Not ours, stale, or a duplicate: nothing changed.
    Ignored {
        /// Why.
        reason: String,
    },
    /// The rotation failed: recorded and alerted.
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

impl Stop {
    /// Stops by failing `record`'s rotation with `failure`.
    fn fail(record: &HostRecord, failure: RotationFailure) -> Stop {
        Stop::Fail(Box::new(Failing {
            record: record.clone(),
            failure,
        }))
    }

    /// Stops as not ready yet: Lambda retries the event.
    fn not_ready(what: &str) -> Stop {
        Stop::Error(EventError::NotReady(what.to_owned()))
    }
}

/// What a store write's answer means: the record written, or ignore (a conflict: someone else
/// moved the host first), retry (the store may answer later), or fail the rotation (`failure`
/// with the error) when no retry cures it.
fn written(
    answer: Result<HostRecord, StoreError>,
    record: &HostRecord,
    failure: impl FnOnce(String) -> RotationFailure,
) -> Result<HostRecord, Stop> {
    match answer {
        Ok(r) => Ok(r),
        Err(StoreError::Conflict(c)) => Err(Stop::Ignore(c.to_string())),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => Err(Stop::fail(record, failure(e.to_string()))),
    }
}

/// A failure at `stage` naming `command_id` and `certificate_arn`.
fn failure(
    stage: FailureStage,
    reason: String,
    command_id: Option<&str>,
    certificate_arn: &str,
) -> RotationFailure {
    RotationFailure {
        command_id: command_id.map(str::to_owned),
        certificate_arn: Some(certificate_arn.to_owned()),
        ..RotationFailure::new(stage, reason)
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

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
