//! CertDeploy: gets an issued certificate onto the host that asked for it, and records the result.
//!
//! Two events start it:
//! - Private CA's issuance event. It acts only for a certificate ARN that a pending rotation is
//!   waiting for, from our CA; a foreign, stale or duplicated event is ignored with a log line.
//!   It fetches the certificate (retrying while Private CA is still issuing), checks that it is for
//!   that host, carries the key of the CSR the host made, is a client-auth end-entity certificate
//!   signed by the chain, claims the deployment with a conditional write (so a duplicated event
//!   deploys once), and sends DeployCert.
//! - Run Command's status-change event of that DeployCert invocation: success → DEPLOYED with
//!   serial, validity and the renewal point; anything else → FAILED with the host's reason and
//!   an alert. The host itself verifies before it swaps files, so a failure leaves its pair intact.

use std::time::Duration as StdDuration;

use lambda_runtime::LambdaEvent;
use rotation::alerts::Alerts;
use rotation::ca::{CertificateAuthority, Fetched};
use rotation::events::{
    CommandInvocationDetail, Envelope, IssuanceDetail, PCA_ISSUANCE, SSM_INVOCATION_STATUS,
};
use rotation::failure::{fail_rotation, RotationFailure};
use rotation::hosts::{DeployRequest, HostAgent, Invocation};
use rotation::telemetry::Metrics;
use serde::Serialize;
use state::ports::{DeploymentRecorder, FleetReader, StoreError};
use state::record::{DeployedCert, FailureStage, RotationState};
use state::{HostId, HostRecord};
use time::OffsetDateTime;
use tracing::Instrument;

pub use rotation::error::EventError as DeployError;
pub use rotation::Deps;

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

/// The Lambda handler: dispatches on the event's source.
pub async fn handle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let now = OffsetDateTime::now_utc();
    let source = event
        .payload
        .get("source")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_owned();
    let result = match source.as_str() {
        "aws.acm-pca" => match serde_json::from_value::<Envelope<IssuanceDetail>>(event.payload) {
            Ok(ev) => {
                let span = tracing::info_span!(
                    "rotation",
                    stage = "deploy",
                    certificate_arn = ev.resources.get(1).map(String::as_str).unwrap_or("")
                );
                on_issued(deps, &ev, now).instrument(span).await
            }
            Err(e) => Ok(Outcome::Ignored {
                reason: format!("malformed issuance event: {e}"),
            }),
        },
        "aws.ssm" => {
            match serde_json::from_value::<Envelope<CommandInvocationDetail>>(event.payload) {
                Ok(ev) => {
                    let span = tracing::info_span!("rotation", host = %ev.detail.instance_id, stage = "verify", command_id = %ev.detail.command_id);
                    on_deploy_status(deps, &ev, now).instrument(span).await
                }
                Err(e) => Ok(Outcome::Ignored {
                    reason: format!("malformed Run Command event: {e}"),
                }),
            }
        }
        other => Ok(Outcome::Ignored {
            reason: format!("unexpected event source {other:?}"),
        }),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "retryable; Lambda will retry the event");
            return Err(Box::new(e));
        }
        Err(e) => Outcome::Ignored {
            reason: e.to_string(),
        },
    };
    let mut metrics = Metrics::default();
    match &outcome {
        Outcome::Ignored { reason } => tracing::info!(reason, "event ignored"),
        Outcome::Deployed { .. } => {
            metrics.count("RotationsSucceeded", 1);
        }
        Outcome::Failed { .. } => {
            metrics.count("RotationsFailed", 1);
        }
        Outcome::DeploySent { .. } => {}
    }
    metrics.emit("CertDeploy");
    Ok(serde_json::to_value(outcome)?)
}

/// Waits before each request to Private CA for a certificate that is still being issued (four
/// requests over 1.7 s; then the event is retried by Lambda).
const FETCH_DELAYS_MS: [u64; 4] = [0, 200, 500, 1000];

/// Handles a Private CA issuance event.
pub async fn on_issued<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<IssuanceDetail>,
    now: OffsetDateTime,
) -> Result<Outcome, DeployError>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let ignore = |reason: String| Ok(Outcome::Ignored { reason });
    if event.detail_type != PCA_ISSUANCE {
        return ignore(format!(
            "detail-type {} is not an issuance",
            event.detail_type
        ));
    }
    let (Some(ca), Some(cert_arn)) = (event.resources.first(), event.resources.get(1)) else {
        return ignore("issuance event without CA and certificate ARNs".into());
    };
    if *ca != deps.config.ca_arn || !cert_arn.starts_with(&format!("{ca}/certificate/")) {
        return ignore(format!("certificate {cert_arn} is not from our CA"));
    }
    let Some(host) = deps.store.host_waiting_for(cert_arn).await? else {
        return ignore(format!("no rotation is waiting for {cert_arn}"));
    };
    let Some(record) = deps.store.host(&host).await? else {
        return ignore(format!("host {host} is no longer enrolled"));
    };
    let (rotation, fingerprint) = match &record.state {
        RotationState::Issuing {
            rotation,
            cert_arn: waiting,
            key_fingerprint,
        } if waiting == cert_arn => (rotation.clone(), key_fingerprint.clone()),
        other => {
            return ignore(format!(
                "host {host} is in {} (stale or duplicated event)",
                other.kind()
            ))
        }
    };
    tracing::info!(%host, "issuance event for a pending rotation");
    let failure = |stage, reason: String| RotationFailure {
        certificate_arn: Some(cert_arn.clone()),
        ..RotationFailure::new(stage, reason)
    };
    if event.detail.result != "success" {
        return fail(
            deps,
            &record,
            failure(
                FailureStage::Issue,
                "Private CA reported that the issuance failed".into(),
            ),
            now,
        )
        .await;
    }

    let mut fetched = Fetched::Pending;
    for delay in FETCH_DELAYS_MS {
        tokio::time::sleep(StdDuration::from_millis(delay)).await;
        fetched = match deps.ca.fetch(cert_arn).await {
            Ok(f) => f,
            Err(e) if e.retryable => Fetched::Pending,
            Err(e) => {
                return fail(
                    deps,
                    &record,
                    failure(
                        FailureStage::Deploy,
                        format!("could not fetch the certificate: {e}"),
                    ),
                    now,
                )
                .await
            }
        };
        if matches!(fetched, Fetched::Ready { .. }) {
            break;
        }
    }
    let Fetched::Ready { certificate, chain } = fetched else {
        return Err(DeployError::NotReady(format!(
            "{cert_arn} is still being issued"
        )));
    };
    let facts = match check_certificate(&certificate, &chain, &host, &fingerprint, now) {
        Ok(f) => f,
        Err(reason) => {
            return fail(deps, &record, failure(FailureStage::Deploy, reason), now).await
        }
    };
    let pending = DeployedCert {
        serial: Some(facts.serial.clone()),
        not_before: Some(facts.not_before),
        not_after: facts.not_after,
        // Both are written on DEPLOYED (on_deploy_status), once the host has verified the pair.
        renew_at: None,
        cert_arn: None,
    };
    // Claim the deployment: a duplicated event stops here.
    let claimed = match deps
        .store
        .deploying(&host, &rotation, cert_arn, &pending, now)
        .await
    {
        Ok(r) => r,
        Err(StoreError::Conflict(c)) => return ignore(c.to_string()),
        Err(e) => return Err(e.into()),
    };
    let settings = deps.config.host_settings(&record);
    let request = DeployRequest {
        host: &host,
        cert_path: &settings.cert_path,
        key_path: &settings.key_path,
        cacert_path: &settings.cacert_path,
        signing_helper_path: &settings.signing_helper_path,
        certificate_pem: &certificate,
        chain_pem: &chain,
        roles_anywhere: &deps.config.roles_anywhere,
        reload_hook: deps.config.reload_hook.as_ref(),
        rotation: &rotation,
    };
    let command_id = match deps.hosts.deploy(&request).await {
        Ok(c) => c,
        Err(e) => {
            return fail(
                deps,
                &claimed,
                failure(
                    FailureStage::Deploy,
                    format!("could not send DeployCert: {e}"),
                ),
                now,
            )
            .await
        }
    };
    match deps
        .store
        .deploy_requested(&host, &rotation, &command_id, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(c)) => return ignore(c.to_string()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(%host, command_id, serial = %facts.serial, "DeployCert sent");
    Ok(Outcome::DeploySent {
        host: host.to_string(),
        command_id,
    })
}

fn check_certificate(
    certificate: &str,
    chain: &str,
    host: &HostId,
    fingerprint: &str,
    now: OffsetDateTime,
) -> Result<pki::CertificateFacts, String> {
    let facts = pki::parse_certificate_pem(certificate)
        .map_err(|e| format!("issued certificate unreadable: {e}"))?;
    pki::check_issued_certificate(&facts, host.as_str(), fingerprint, now)
        .map_err(|e| format!("issued certificate refused: {e}"))?;
    // The chain's first certificate is the issuing CA.
    pki::certificate_signed_by(certificate, chain)
        .map_err(|e| format!("certificate does not chain to the CA: {e}"))?;
    Ok(facts)
}

/// Handles a DeployCert status change.
pub async fn on_deploy_status<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<CommandInvocationDetail>,
    now: OffsetDateTime,
) -> Result<Outcome, DeployError>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let ignore = |reason: String| Ok(Outcome::Ignored { reason });
    let d = &event.detail;
    if event.detail_type != SSM_INVOCATION_STATUS
        || d.document_name != deps.config.deploy_cert_document
    {
        return ignore(format!(
            "{} / {} is not a DeployCert status change",
            event.detail_type, d.document_name
        ));
    }
    let host = match d.finished_host() {
        Ok(h) => h,
        Err(why) => return ignore(why),
    };
    let Some(record) = deps.store.host(&host).await? else {
        return ignore(format!("host {host} is not enrolled"));
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
            return Err(DeployError::NotReady(
                "the DeployCert command is not recorded yet".into(),
            ))
        }
        other => {
            return ignore(format!(
                "host is in {} (stale or duplicated event)",
                other.kind()
            ))
        }
    };
    let failure = |reason: String| RotationFailure {
        command_id: Some(d.command_id.clone()),
        certificate_arn: Some(cert_arn.clone()),
        ..RotationFailure::new(FailureStage::Verify, reason)
    };
    if d.status != "Success" {
        let why = match deps.hosts.invocation(&d.command_id, &host).await {
            Ok(Invocation::Finished { stderr, .. }) => {
                rotation::hosts::host_error(&stderr).to_owned()
            }
            Ok(Invocation::Pending) => {
                // Right after the status change the invocation may not be visible yet: retry.
                return Err(DeployError::NotReady(
                    "the DeployCert output is not visible yet".into(),
                ));
            }
            Err(e) => format!("output unavailable: {e}"),
        };
        return fail(
            deps,
            &record,
            failure(format!("DeployCert {} on the host: {why}", d.status)),
            now,
        )
        .await;
    }
    // The renewal point is placed once, here, from the certificate's real validity.
    let renew_at =
        deps.config
            .plan
            .renewal
            .renewal_point(&host, pending.not_before, pending.not_after);
    let cert = DeployedCert {
        cert_arn: Some(cert_arn),
        renew_at: Some(renew_at),
        ..pending
    };
    match deps.store.deployed(&host, &d.command_id, &cert, now).await {
        Ok(_) => {
            let serial = cert.serial.clone().unwrap_or_default();
            tracing::info!(%host, serial, not_after = %cert.not_after, "certificate deployed");
            Ok(Outcome::Deployed {
                host: host.to_string(),
                serial,
            })
        }
        Err(StoreError::Conflict(c)) => ignore(c.to_string()),
        Err(e) => Err(e.into()),
    }
}

async fn fail<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    record: &HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Outcome, DeployError>
where
    S: DeploymentRecorder,
    A: Alerts,
{
    let reason = failure.reason.clone();
    match fail_rotation(
        &deps.store,
        &deps.alerts,
        &deps.config,
        record,
        failure,
        now,
    )
    .await
    {
        Ok(_) => Ok(Outcome::Failed {
            host: record.host.to_string(),
            reason,
        }),
        Err(StoreError::Conflict(c)) => Ok(Outcome::Ignored {
            reason: c.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}
