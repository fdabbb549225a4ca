//! The deploy-status step: Run Command's status change of a DeployCert invocation.
//!
//! Success → DEPLOYED with serial, validity and the renewal point (placed once, here, from the
//! certificate's real validity); anything else → FAILED with the host's reason and an alert.
//! The host itself verifies before it swaps files, so a failure leaves its pair intact.
//!
//! Once DEPLOYED is recorded, the certificate the new one replaced is revoked as `SUPERSEDED`
//! ([`superseded`]). This is the point where that is safe: the host checked the new pair
//! (key, CN, chain, validity, and a session from the signing helper when the stack requires
//! it) before it swapped, the swap is complete and flushed, and DeployCert then removed the
//! previous pair from the host; the table names the new serial. Nothing uses the old
//! certificate any more, and revoking it earlier would cut the host off whenever the new pair
//! failed to install. A revocation that fails is alerted (`REVOCATION_FAILED`), not retried:
//! the old certificate expires within the stack's `CertValidityDays` anyway.
//!
//! After a successful swap DeployCert runs the reload hook; if the hook fails it prints
//! `RELOAD_HOOK_FAILED <exit code>` and still succeeds (the new pair is in place). On success,
//! when the stack has a reload hook, the invocation's output is read before DEPLOYED is recorded
//! ([`reload_hook_verdict`]): the rotation is DEPLOYED either way, and a failed hook raises one
//! alert ([`reload_hook_alert`]). Output that is not visible yet makes the event not ready (it
//! is retried) for [`WAIT_FOR_EVENT`](super::WAIT_FOR_EVENT); only after that, or on an error no retry cures, is the
//! deployment recorded without the hook's verdict.

use rotation::alerts::{Alert, AlertKind};
use rotation::error::{AwsError, EventError};
use rotation::events::{CommandInvocationDetail, Envelope, SSM_INVOCATION_STATUS};
use rotation::hosts::Invocation;
use rotation::revocation::Retirement;
use rotation::Config;
use state::ports::StoreError;
use state::record::{DeployedCert, FailureStage, RotationState};
use state::{HostId, HostRecord};
use time::OffsetDateTime;

use super::{failure, written, Outcome, Stop};

/// A DeployCert invocation the host's rotation waits for.
#[derive(Debug, Clone)]
pub struct Verify {
    /// The host.
    pub host: HostId,
    /// Its record, as loaded (DEPLOYING with this command).
    pub record: HostRecord,
    /// The DeployCert command.
    pub command_id: String,
    /// The invocation's final status.
    pub status: String,
    /// The certificate deployed.
    pub cert_arn: String,
}

impl Verify {
    fn fail(&self, reason: String) -> Stop {
        Stop::fail(&self.record, self.failure(reason))
    }

    fn failure(&self, reason: String) -> rotation::failure::RotationFailure {
        failure(
            FailureStage::Verify,
            reason,
            Some(&self.command_id),
            &self.cert_arn,
        )
    }
}

/// What the host's answer calls for.
#[derive(Debug, Clone)]
pub enum Verification {
    /// The document did not succeed: effect, read the invocation's output for the host's
    /// reason, then [`host_failed`].
    HostFailed(Verify),
    /// The host verified and swapped the pair: effect, record DEPLOYED with this certificate,
    /// then [`deployed_recorded`].
    Succeeded(Verify, DeployedCert),
}

/// The host a Run Command status change is about, if it is a finished DeployCert invocation of
/// a managed node.
pub fn deploy_event(
    event: &Envelope<CommandInvocationDetail>,
    config: &Config,
) -> Result<HostId, Stop> {
    let d = &event.detail;
    if event.detail_type != SSM_INVOCATION_STATUS || d.document_name != config.deploy_cert_document
    {
        return Err(Stop::Ignore(format!(
            "{} / {} is not a DeployCert status change",
            event.detail_type, d.document_name
        )));
    }
    d.finished_host().map_err(Stop::Ignore)
}

/// With the host's record, what the invocation's status calls for. A rotation whose DeployCert
/// command is not recorded yet is not ready (SendCommand answered, the write is coming).
pub fn deploy_status(
    event: &Envelope<CommandInvocationDetail>,
    host: &HostId,
    record: Option<HostRecord>,
    config: &Config,
) -> Result<Verification, Stop> {
    let d = &event.detail;
    let Some(record) = record else {
        return Err(Stop::Ignore(format!("host {host} is not enrolled")));
    };
    let (cert_arn, pending) = match &record.state {
        RotationState::Deploying {
            command_id: Some(c),
            cert_arn,
            pending,
            ..
        } if *c == d.command_id => (cert_arn.clone(), pending.clone()),
        RotationState::Deploying {
            command_id: None, ..
        } => {
            return Err(Stop::not_ready(
                "the DeployCert command is not recorded yet",
            ))
        }
        other => {
            return Err(Stop::Ignore(format!(
                "host is in {} (stale or duplicated event)",
                other.kind()
            )))
        }
    };
    let verify = Verify {
        host: host.clone(),
        command_id: d.command_id.clone(),
        status: d.status.clone(),
        cert_arn,
        record,
    };
    if d.status != "Success" {
        return Ok(Verification::HostFailed(verify));
    }
    let renew_at = config
        .plan
        .renewal
        .renewal_point(host, pending.not_before, pending.not_after);
    let cert = DeployedCert {
        cert_arn: Some(verify.cert_arn.clone()),
        renew_at: Some(renew_at),
        ..pending
    };
    Ok(Verification::Succeeded(verify, cert))
}

/// With the failed invocation's output, the failure to record: the host's error line. Right
/// after the status change the output may not be visible yet: not ready. An output that cannot
/// be read does not change the verdict (the host said it failed); the reason says so.
pub fn host_failed(verify: &Verify, output: Result<Invocation, AwsError>) -> Stop {
    let why = match output {
        Ok(Invocation::Finished { stderr, .. }) => rotation::hosts::host_error(&stderr).to_owned(),
        Ok(Invocation::Pending) => {
            return Stop::not_ready("the DeployCert output is not visible yet")
        }
        Err(e) => format!("output unavailable: {e}"),
    };
    verify.fail(format!("DeployCert {} on the host: {why}", verify.status))
}

/// With the store's answer to recording DEPLOYED, the outcome.
pub fn deployed_recorded(
    verify: &Verify,
    cert: &DeployedCert,
    answer: Result<HostRecord, StoreError>,
) -> Result<Outcome, Stop> {
    written(answer, &verify.record, |e| {
        verify.failure(format!("could not record the deployment: {e}"))
    })?;
    Ok(Outcome::Deployed {
        host: verify.host.to_string(),
        serial: cert.serial.clone().unwrap_or_default(),
    })
}

/// The certificate `cert` replaced on `verify`'s host, to revoke once DEPLOYED is recorded:
/// the record's current serial as loaded, unless it is the new one (a host that had none,
/// or a replayed success).
pub fn superseded(verify: &Verify, cert: &DeployedCert) -> Option<Retirement> {
    let previous = verify.record.current.as_ref()?;
    let serial = previous.serial.clone()?;
    if cert.serial.as_deref().map(pki::canonical_serial) == Some(pki::canonical_serial(&serial)) {
        return None;
    }
    Some(Retirement {
        host: verify.host.to_string(),
        serial,
        cert_arn: previous.cert_arn.clone(),
        what: "the previous certificate",
    })
}

/// The line DeployCert prints on stdout when the reload hook failed after the swap.
pub const RELOAD_HOOK_FAILED: &str = "RELOAD_HOOK_FAILED";

/// What the successful invocation says of the reload hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// No hook failed (none is configured, or it succeeded).
    Fine,
    /// The hook failed with this exit code (empty when the line named none).
    Failed(String),
    /// The output could not be read for good; the deployment is recorded all the same.
    Unknown(String),
}

/// With the successful invocation's output, the reload hook's verdict, read before DEPLOYED is
/// recorded: the `RELOAD_HOOK_FAILED <exit code>` line. Output not visible yet, or a call a
/// retry may cure, is not ready while the event (sent at `sent`; unknown for a rebuilt event) is
/// younger than [`WAIT_FOR_EVENT`](super::WAIT_FOR_EVENT); after that, or for an error no retry cures, the verdict is
/// unknown and the deployment is not held back (the pair on the host is valid and verified).
pub fn reload_hook_verdict(
    output: Result<Invocation, AwsError>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<HookVerdict, Stop> {
    // Recording DEPLOYED first would lose a failed hook's alert for good (a redelivery finds
    // the host DEPLOYED and ignores it), so the event is retried while it is young.
    let young = super::young(sent, now);
    match output {
        Ok(Invocation::Finished { stdout, .. }) => Ok(stdout
            .lines()
            .find_map(|l| {
                let rest = l.trim().strip_prefix(RELOAD_HOOK_FAILED)?;
                (rest.is_empty() || rest.starts_with(char::is_whitespace))
                    .then(|| HookVerdict::Failed(rest.trim().to_owned()))
            })
            .unwrap_or(HookVerdict::Fine)),
        Ok(Invocation::Pending) if young => {
            Err(Stop::not_ready("the DeployCert output is not visible yet"))
        }
        Ok(Invocation::Pending) => Ok(HookVerdict::Unknown(format!(
            "the DeployCert output was still not visible {} minutes after its status event",
            super::WAIT_FOR_EVENT.whole_minutes()
        ))),
        Err(e) if young && e.retryable => Err(Stop::Error(EventError::Aws(e))),
        Err(e) => Ok(HookVerdict::Unknown(format!("output unavailable: {e}"))),
    }
}

/// The alert for a reload hook that exited with `code` after `verify`'s certificate was
/// installed (raised once: after DEPLOYED was recorded by this delivery).
pub fn reload_hook_alert(verify: &Verify, code: &str) -> Alert {
    let code = if code.is_empty() { "unknown" } else { code };
    Alert {
        host: Some(verify.host.to_string()),
        stage: Some(FailureStage::Verify.to_string()),
        command_id: Some(verify.command_id.clone()),
        certificate_arn: Some(verify.cert_arn.clone()),
        ..Alert::new(
            AlertKind::ReloadHookFailed,
            format!(
                "the new certificate is installed but the reload hook exited with {code}: \
                 the service may still use the old certificate, which is revoked as superseded, \
                 until it is reloaded"
            ),
        )
    }
}

#[cfg(test)]
mod tests;
