//! CertDeploy: gets an issued certificate onto the host that asked for it, and records the result.
//!
//! Two events start it:
//! - Private CA's issuance event. It acts only for a certificate ARN that a pending rotation is
//!   waiting for, from our CA; a stale or duplicated event is ignored with a log line. A
//!   certificate of our CA that no rotation waits for yet is not ready (Private CA may announce
//!   it before CertIssue records ISSUING, and the index on pendingCertArn is eventually
//!   consistent): Lambda retries the event, until it is older than 15 minutes (then ignored).
//!   It fetches the certificate (retrying while Private CA is still issuing), checks that it is for
//!   that host, carries the key of the CSR the host made, is a client-auth end-entity certificate
//!   signed by the chain, claims the deployment with a conditional write (so a duplicated event
//!   deploys once), and sends DeployCert. A certificate of our CA that no rotation waits for
//!   and that never reached its host (its rotation cancelled, failed or replaced) is revoked. A throttled DeployCert is sent again; if it stays
//!   throttled the rotation stays DEPLOYING without a command and the event is retried, and the
//!   retry (after the claim fence) sends it.
//! - Run Command's status-change event of that DeployCert invocation: success → DEPLOYED with
//!   serial, validity and the renewal point (and one alert if the output says the reload hook
//!   failed), then the certificate it replaced is revoked as `SUPERSEDED`; anything else → FAILED with the host's reason and an alert. The host itself verifies before it swaps files, so a failure leaves its pair intact.
//!
//! Decide in pure functions, act in a shell: every decision is in [`step`], a function of the
//! event, the record, the config, the time and the answers of earlier calls. This module only
//! loads, calls the steps, carries out the effect each one names through the ports (and the
//! timing of fetch retries, [`FETCH_DELAYS_MS`]) and records the result.

use std::time::Duration as StdDuration;

use lambda_runtime::LambdaEvent;
use rotation::alerts::{raise_or_log, Alerts};
use rotation::ca::{CertificateAuthority, Fetched};
use rotation::error::{FailureKind, FunctionError};
use rotation::events::{CommandInvocationDetail, Envelope, IssuanceDetail};
use rotation::failure::fail_rotation;
use rotation::hosts::HostAgent;
use rotation::revocation::retire;
use rotation::telemetry::Metrics;
use rotation::AwsError;
use state::ports::{DeploymentRecorder, FleetReader};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::Instrument;

pub mod step;

pub use rotation::error::EventError as DeployError;
pub use rotation::Deps;
use step::status::Verification;
pub use step::Outcome;
use step::{issuance, orphan, status, Stop};

/// The Lambda handler: dispatches on the event's source. A retryable or not-ready error fails
/// the invocation so that Lambda retries the event (`Retryable`, `NotReady`); an error no retry
/// cures that could not be recorded on a rotation fails it as `Permanent`.
pub async fn handle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError>
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
    // Each branch is `on_issued` / `on_deploy_status` in two awaits: one level less of nested
    // futures keeps the handler's future type (with the SDK adapters' futures inside) within
    // the compiler's limit.
    // When EventBridge sent the event: an issuance event that no rotation waits for, or a
    // DeployCert success whose output is not visible yet, is retried only while it is young.
    let sent = event
        .payload
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let result = match source.as_str() {
        "aws.acm-pca" => match serde_json::from_value::<Envelope<IssuanceDetail>>(event.payload) {
            Ok(ev) => {
                let span = tracing::info_span!(
                    "rotation",
                    stage = "deploy",
                    certificate_arn = ev.resources.get(1).map(String::as_str).unwrap_or("")
                );
                let stopped = issued(deps, &ev, sent, now).instrument(span.clone()).await;
                settle(deps, stopped, now).instrument(span).await
            }
            Err(e) => Ok(Outcome::Ignored {
                reason: format!("malformed issuance event: {e}"),
            }),
        },
        "aws.ssm" => {
            match serde_json::from_value::<Envelope<CommandInvocationDetail>>(event.payload) {
                Ok(ev) => {
                    let span = tracing::info_span!("rotation", host = %ev.detail.instance_id, stage = "verify", command_id = %ev.detail.command_id);
                    let stopped = deploy_status(deps, &ev, sent, now)
                        .instrument(span.clone())
                        .await;
                    settle(deps, stopped, now).instrument(span).await
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
        Err(e) => {
            let error = FunctionError::from(e);
            match error.kind {
                FailureKind::Permanent | FailureKind::BadRequest => {
                    tracing::error!(error = %error.message, "event failed")
                }
                _ => tracing::warn!(error = %error.message, "Lambda will retry the event"),
            }
            return Err(error);
        }
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
        Outcome::Retired { revoked, .. } => {
            metrics.count("OrphansRevoked", u64::from(*revoked));
        }
        Outcome::DeploySent { .. } => {}
    }
    metrics.emit("CertDeploy");
    serde_json::to_value(outcome).map_err(|e| FunctionError::new(FailureKind::Permanent, &e))
}

/// Waits before each request to Private CA for a certificate that is still being issued (four
/// requests over 1.7 s; then the event is retried by Lambda).
pub const FETCH_DELAYS_MS: [u64; 4] = [0, 200, 500, 1000];

/// Waits before each DeployCert request that Run Command refused retryably (three requests over
/// 0.7 s; then the rotation stays DEPLOYING without a command and the event is retried).
pub const SEND_DELAYS_MS: [u64; 3] = [0, 200, 500];

/// Handles a Private CA issuance event at `now`. The event's age is not known here (a
/// synthesized event): a certificate no rotation waits for yet is not ready.
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
    settle(deps, issued(deps, event, None, now).await, now).await
}

/// Handles a DeployCert status change at `now`.
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
    settle(deps, deploy_status(deps, event, None, now).await, now).await
}

/// The issuance step's functions in order, with the calls between them.
async fn issued<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<IssuanceDetail>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Outcome, Stop>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let cert_arn = issuance::issuance_event(event, &deps.config)?;
    let Some(host) = deps.store.host_waiting_for(&cert_arn).await? else {
        return orphaned(deps, &cert_arn, sent, now).await;
    };
    let record = deps.store.host(&host).await?;
    let issuing = issuance::issuance_record(event, &cert_arn, &host, record, now)?;
    tracing::info!(%host, "issuance event for a pending rotation");

    let answer = fetch(deps, &cert_arn).await;
    let claim = issuance::fetched(&issuing, answer, now)?;

    // Claim the deployment: a duplicated event stops here. A claim whose DeployCert could not
    // be sent is continued as it is.
    let answer = match &issuing.claimed {
        Some(_) => Ok(issuing.record.clone()),
        None => {
            deps.store
                .deploying(&host, &issuing.rotation, &cert_arn, &claim.pending, now)
                .await
        }
    };
    let deploy = issuance::claimed(&issuing, claim, answer, &deps.config)?;
    let mut delays = SEND_DELAYS_MS.iter().peekable();
    let answer = loop {
        let delay = delays.next().copied().unwrap_or_default();
        tokio::time::sleep(StdDuration::from_millis(delay)).await;
        let answer = deps
            .hosts
            .deploy(&deploy.request(&issuing, &deps.config))
            .await;
        match &answer {
            Err(e) if issuance::send_again(&answer) && delays.peek().is_some() => {
                tracing::warn!(%host, error = %e, "DeployCert refused, sending again")
            }
            _ => break answer,
        }
    };
    let command_id = issuance::deploy_sent(&issuing, &deploy, answer)?;
    let answer = deps
        .store
        .deploy_requested(&host, &issuing.rotation, &command_id, now)
        .await;
    let outcome = issuance::deploy_recorded(&issuing, &deploy, command_id.clone(), answer)?;
    tracing::info!(%host, command_id, serial = %deploy.claim.serial, "DeployCert sent");
    Ok(outcome)
}

/// Private CA's last answer for `cert_arn`, asked again after each of [`FETCH_DELAYS_MS`]
/// while it is still being issued.
async fn fetch<S, H, C, A>(deps: &Deps<S, H, C, A>, cert_arn: &str) -> Result<Fetched, AwsError>
where
    C: CertificateAuthority,
{
    let mut answer = Ok(Fetched::Pending);
    for delay in FETCH_DELAYS_MS {
        tokio::time::sleep(StdDuration::from_millis(delay)).await;
        answer = deps.ca.fetch(cert_arn).await;
        if !issuance::fetch_again(&answer) {
            break;
        }
    }
    answer
}

/// A certificate of our CA that no rotation waits for: revoked if it never reached its host
/// (see [`step::orphan`]).
async fn orphaned<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    cert_arn: &str,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Outcome, Stop>
where
    S: FleetReader,
    C: CertificateAuthority,
    A: Alerts,
{
    let facts = orphan::fetched(cert_arn, fetch(deps, cert_arn).await, sent, now)?;
    let host = orphan::named_host(cert_arn, &facts)?;
    let record = deps.store.host(&host).await?;
    let retirement = orphan::orphan(cert_arn, &facts, &host, record, sent, now)?;
    let revoked = retire(&deps.ca, &deps.alerts, &retirement).await;
    Ok(Outcome::Retired {
        host: retirement.host,
        serial: retirement.serial,
        revoked,
    })
}

/// The deploy-status step's functions in order, with the calls between them.
async fn deploy_status<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<CommandInvocationDetail>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Outcome, Stop>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let host = status::deploy_event(event, &deps.config)?;
    let record = deps.store.host(&host).await?;
    match status::deploy_status(event, &host, record, &deps.config)? {
        Verification::HostFailed(verify) => {
            let output = deps.hosts.invocation(&verify.command_id, &host).await;
            Err(status::host_failed(&verify, output))
        }
        Verification::Succeeded(verify, cert) => {
            // DeployCert reports a failed reload hook on stdout, read before DEPLOYED is
            // recorded (after, a redelivery would find DEPLOYED and the alert would be lost).
            let hook = match deps.config.reload_hook {
                Some(_) => status::reload_hook_verdict(
                    deps.hosts.invocation(&verify.command_id, &host).await,
                    sent,
                    now,
                )?,
                None => status::HookVerdict::Fine,
            };
            let answer = deps
                .store
                .deployed(&host, &verify.command_id, &cert, now)
                .await;
            let outcome = status::deployed_recorded(&verify, &cert, answer)?;
            tracing::info!(%host, serial = cert.serial.as_deref().unwrap_or(""), not_after = %cert.not_after, "certificate deployed");
            // Only the delivery that recorded DEPLOYED gets here: the old certificate goes once.
            if let Some(retirement) = status::superseded(&verify, &cert) {
                retire(&deps.ca, &deps.alerts, &retirement).await;
            }
            match hook {
                status::HookVerdict::Fine => {}
                status::HookVerdict::Failed(code) => {
                    tracing::warn!(%host, exit_code = %code, "the reload hook failed");
                    raise_or_log(&deps.alerts, &status::reload_hook_alert(&verify, &code)).await;
                    Metrics::default()
                        .count("ReloadHookFailures", 1)
                        .emit("CertDeploy");
                }
                status::HookVerdict::Unknown(why) => {
                    tracing::warn!(%host, why, "the reload hook's result is unknown")
                }
            }
            Ok(outcome)
        }
    }
}

/// Turns the steps' result into the outcome: an ignored event, a failure recorded on the
/// rotation (and alerted once), or the invocation's error.
async fn settle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    result: Result<Outcome, Stop>,
    now: OffsetDateTime,
) -> Result<Outcome, DeployError>
where
    S: DeploymentRecorder,
    A: Alerts,
{
    match result {
        Ok(outcome) => Ok(outcome),
        Err(Stop::Ignore(reason)) => Ok(Outcome::Ignored { reason }),
        Err(Stop::Error(e)) => Err(e),
        Err(Stop::Fail(failing)) => {
            let answer = fail_rotation(
                &deps.store,
                &deps.alerts,
                &deps.config,
                &failing.record,
                failing.failure.clone(),
                now,
            )
            .await;
            step::failed(&failing, answer)
        }
    }
}
