//! CertIssue: turns a host's CSR into a certificate request, under the CSR policy.
//!
//! Started by the Run Command status-change event of a GenerateCsr invocation. It acts only if
//! the host's pending rotation is waiting for exactly that command; it reads the command's
//! output, accepts the CSR only if its signature verifies, its subject is exactly `CN=<the host
//! the command went to>`, it asks for no other names, and its key meets the policy (the original
//! sample let any host obtain a certificate for any name). Then it calls IssueCertificate with
//! an idempotency token derived from the rotation and records the certificate ARN and the CSR
//! key's fingerprint. CertDeploy continues from Private CA's issuance event.

use lambda_runtime::LambdaEvent;
use rotation::alerts::Alerts;
use rotation::ca::CertificateAuthority;
use rotation::events::{CommandInvocationDetail, Envelope, SSM_INVOCATION_STATUS};
use rotation::failure::{fail_rotation, RotationFailure};
use rotation::hosts::{HostAgent, Invocation};
use serde::Serialize;
use state::ports::{FleetReader, IssuanceRecorder, StoreError};
use state::record::{FailureStage, RotationState};
use time::OffsetDateTime;
use tracing::Instrument;

pub use rotation::error::EventError as IssueError;
pub use rotation::Deps;

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

/// The Lambda handler.
pub async fn handle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let outcome = match serde_json::from_value::<Envelope<CommandInvocationDetail>>(event.payload) {
        Err(e) => Outcome::Ignored {
            reason: format!("not a Run Command invocation status event: {e}"),
        },
        Ok(ev) => {
            let span = tracing::info_span!("rotation", host = %ev.detail.instance_id, stage = "issue", command_id = %ev.detail.command_id);
            match on_csr_ready(deps, &ev, OffsetDateTime::now_utc())
                .instrument(span)
                .await
            {
                Ok(o) => o,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "retryable; Lambda will retry the event");
                    return Err(Box::new(e));
                }
                Err(e) => {
                    tracing::error!(error = %e, "event failed");
                    Outcome::Ignored {
                        reason: e.to_string(),
                    }
                }
            }
        }
    };
    if let Outcome::Ignored { reason } = &outcome {
        tracing::info!(reason, "event ignored");
    }
    Ok(serde_json::to_value(outcome)?)
}

/// Handles one GenerateCsr status change at `now`.
pub async fn on_csr_ready<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<CommandInvocationDetail>,
    now: OffsetDateTime,
) -> Result<Outcome, IssueError>
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let ignore = |reason: String| Ok(Outcome::Ignored { reason });
    let d = &event.detail;
    if event.source != "aws.ssm" || event.detail_type != SSM_INVOCATION_STATUS {
        return ignore(format!(
            "unexpected event {} / {}",
            event.source, event.detail_type
        ));
    }
    if d.document_name != deps.config.generate_csr_document {
        return ignore(format!("document {} is not GenerateCsr", d.document_name));
    }
    let host = match d.finished_host() {
        Ok(h) => h,
        Err(why) => return ignore(why),
    };
    let Some(record) = deps.store.host(&host).await? else {
        return ignore(format!("host {host} is not enrolled"));
    };
    let (rotation, sent) = match &record.state {
        RotationState::CsrRequested {
            rotation,
            command_id,
        } => (rotation.clone(), command_id.clone()),
        other => {
            return ignore(format!(
                "host is in {} (stale or duplicated event)",
                other.kind()
            ))
        }
    };
    match sent {
        Some(c) if c == d.command_id => {}
        Some(c) => {
            return ignore(format!(
                "the rotation waits for command {c}, not {}",
                d.command_id
            ))
        }
        None => {
            return Err(IssueError::NotReady(
                "the GenerateCsr command is not recorded yet".into(),
            ))
        }
    }
    let failure = |reason: String| RotationFailure {
        command_id: Some(d.command_id.clone()),
        ..RotationFailure::new(FailureStage::Issue, reason)
    };
    let fail = |f: RotationFailure| async {
        let reason = f.reason.clone();
        match fail_rotation(&deps.store, &deps.alerts, &deps.config, &record, f, now).await {
            Ok(_) => Ok(Outcome::Failed {
                host: host.to_string(),
                reason,
            }),
            Err(StoreError::Conflict(c)) => ignore(c.to_string()),
            Err(e) => Err(IssueError::from(e)),
        }
    };

    let stdout = match deps.hosts.invocation(&d.command_id, &host).await? {
        Invocation::Pending => {
            return Err(IssueError::NotReady(
                "the command output is not visible yet".into(),
            ))
        }
        Invocation::Finished {
            success: false,
            status,
            stderr,
            ..
        } => {
            let why = rotation::hosts::host_error(&stderr);
            return fail(RotationFailure {
                stage: FailureStage::RequestCsr,
                ..failure(format!("GenerateCsr {status} on the host: {why}"))
            })
            .await;
        }
        Invocation::Finished { stdout, .. } => stdout,
    };
    let echoed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROTATION "))
        .map(str::trim);
    if echoed != Some(rotation.as_str()) {
        return fail(failure(format!(
            "GenerateCsr output belongs to rotation {:?}, not {rotation}",
            echoed.unwrap_or("none")
        )))
        .await;
    }
    let accepted = match pki::extract_csr_pem(&stdout)
        .and_then(|pem| pki::check_csr(&pem, host.as_str(), &deps.config.csr_policy()))
    {
        Ok(a) => a,
        Err(e) => return fail(failure(format!("CSR refused: {e}"))).await,
    };
    let cert_arn = match deps
        .ca
        .issue(
            &accepted.pem,
            deps.config.cert_validity_days,
            rotation.as_str(),
        )
        .await
    {
        Ok(arn) => arn,
        Err(e) if e.retryable => return Err(e.into()),
        Err(e) => return fail(failure(format!("Private CA refused the request: {e}"))).await,
    };
    match deps
        .store
        .issuing(
            &host,
            &rotation,
            &d.command_id,
            &cert_arn,
            &accepted.key.spki_sha256,
            now,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(certificate_arn = %cert_arn, key = ?accepted.key.kind, "certificate requested");
            Ok(Outcome::Issued {
                host: host.to_string(),
                certificate_arn: cert_arn,
            })
        }
        // A duplicate delivery got here first; the idempotency token gave it the same ARN.
        Err(StoreError::Conflict(c)) => ignore(c.to_string()),
        Err(e) => Err(e.into()),
    }
}
