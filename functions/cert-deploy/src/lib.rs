//! CertDeploy: gets an issued certificate onto the host that asked for it, and records the result.
//!
//! Two events start it:
//! - Private CA's issuance event, in batches from the stack's SQS queue (a direct event is a
//!   batch of one). Each event is checked and its deployment claimed on its own; the claimed
//!   hosts that share their paths and chain then go out in as few DeployCert commands as
//!   Run Command takes (50 hosts, and the parameters' size: [`step::batch`]), each host picking
//!   its own certificate out of the command by its managed-node ID. An event that must be
//!   retried is named in `batchItemFailures`, so SQS delivers it again. It acts only for a certificate ARN that a pending rotation is
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
use rotation::events::{CommandInvocationDetail, Envelope, IssuanceDetail, SqsBatch};
use rotation::failure::fail_rotation;
use rotation::hosts::{DeployEntry, HostAgent};
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
use step::batch::{self, Shared};
use step::issuance::{Deploy, Issuance};
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
    if let Some(batch) = SqsBatch::from_payload(&event.payload) {
        return Ok(Box::pin(handle_batch(deps, &batch, now)).await);
    }
    let outcome = Box::pin(handle_event(deps, event.payload, now)).await?;
    metrics(std::slice::from_ref(&outcome)).emit("CertDeploy");
    serde_json::to_value(outcome).map_err(|e| FunctionError::new(FailureKind::Permanent, &e))
}

/// An SQS batch: its issuance events deployed together ([`on_issued_batch`]), anything else
/// one by one; the answer names the messages SQS must deliver again.
async fn handle_batch<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    batch: &SqsBatch,
    now: OffsetDateTime,
) -> serde_json::Value
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let mut outcomes = Vec::with_capacity(batch.records.len());
    let mut again = Vec::new();
    let mut issued = Vec::new();
    let mut issued_ids = Vec::new();
    for record in &batch.records {
        let span = tracing::info_span!("message", message_id = %record.message_id);
        let payload = match serde_json::from_str::<serde_json::Value>(&record.body) {
            Ok(p) => p,
            Err(e) => {
                // Not an event: no delivery would make it one.
                span.in_scope(|| tracing::warn!(error = %e, "message body is not JSON; dropped"));
                continue;
            }
        };
        if payload.get("source").and_then(|s| s.as_str()) == Some("aws.acm-pca") {
            match serde_json::from_value::<Envelope<IssuanceDetail>>(payload.clone()) {
                Ok(ev) => {
                    issued.push((ev, sent_at(&payload)));
                    issued_ids.push(record.message_id.as_str());
                }
                Err(e) => span
                    .in_scope(|| tracing::warn!(error = %e, "malformed issuance event; dropped")),
            }
            continue;
        }
        match Box::pin(handle_event(deps, payload, now).instrument(span)).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => again.push(record.message_id.as_str()),
        }
    }
    let results = Box::pin(on_issued_batch(deps, &issued, now)).await;
    for (id, result) in issued_ids.into_iter().zip(results) {
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                log_error(&FunctionError::from(e));
                again.push(id);
            }
        }
    }
    for outcome in &outcomes {
        if let Outcome::Ignored { reason } = outcome {
            tracing::info!(reason, "event ignored");
        }
    }
    metrics(&outcomes).emit("CertDeploy");
    rotation::events::batch_item_failures(again)
}

/// When EventBridge sent the event: an issuance event that no rotation waits for, or a
/// DeployCert success whose output is not visible yet, is retried only while it is young.
fn sent_at(payload: &serde_json::Value) -> Option<OffsetDateTime> {
    payload
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// One EventBridge event, dispatched on its source: its outcome, or the invocation's error (a
/// retryable or not-ready error, so that it is delivered again; or an error no retry cures
/// that could not be recorded on a rotation, as `Permanent`).
async fn handle_event<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    payload: serde_json::Value,
    now: OffsetDateTime,
) -> Result<Outcome, FunctionError>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let source = payload
        .get("source")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_owned();
    let sent = sent_at(&payload);
    let result = match source.as_str() {
        "aws.acm-pca" => match serde_json::from_value::<Envelope<IssuanceDetail>>(payload) {
            Ok(ev) => Box::pin(on_issued_batch(deps, &[(ev, sent)], now))
                .await
                .pop()
                .unwrap_or_else(|| Err(DeployError::NotReady("no result".into()))),
            Err(e) => Ok(Outcome::Ignored {
                reason: format!("malformed issuance event: {e}"),
            }),
        },
        "aws.ssm" => match serde_json::from_value::<Envelope<CommandInvocationDetail>>(payload) {
            Ok(ev) => {
                // `on_deploy_status` in two awaits: one level less of nested futures keeps the
                // handler's future type (with the SDK adapters' futures inside) within the
                // compiler's limit.
                let span = tracing::info_span!("rotation", host = %ev.detail.instance_id, stage = "verify", command_id = %ev.detail.command_id);
                let stopped = deploy_status(deps, &ev, sent, now)
                    .instrument(span.clone())
                    .await;
                settle(deps, stopped, now).instrument(span).await
            }
            Err(e) => Ok(Outcome::Ignored {
                reason: format!("malformed Run Command event: {e}"),
            }),
        },
        other => Ok(Outcome::Ignored {
            reason: format!("unexpected event source {other:?}"),
        }),
    };
    let outcome = result.map_err(|e| {
        let error = FunctionError::from(e);
        log_error(&error);
        error
    })?;
    if let Outcome::Ignored { reason } = &outcome {
        tracing::info!(reason, "event ignored");
    }
    Ok(outcome)
}

/// Logs an event's error at the level its kind deserves.
fn log_error(error: &FunctionError) {
    match error.kind {
        FailureKind::Permanent | FailureKind::BadRequest => {
            tracing::error!(error = %error.message, "event failed")
        }
        _ => tracing::warn!(error = %error.message, "the event will be delivered again"),
    }
}

/// One invocation's metrics: rotations deployed and failed, orphans revoked.
fn metrics(outcomes: &[Outcome]) -> Metrics {
    let mut metrics = Metrics::default();
    let count = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let deployed = count(|o| u64::from(matches!(o, Outcome::Deployed { .. })));
    let failed = count(|o| u64::from(matches!(o, Outcome::Failed { .. })));
    let revoked = count(|o| match o {
        Outcome::Retired { revoked, .. } => u64::from(*revoked),
        _ => 0,
    });
    if deployed > 0 {
        metrics.count("RotationsSucceeded", deployed);
    }
    if failed > 0 {
        metrics.count("RotationsFailed", failed);
    }
    if revoked > 0 {
        metrics.count("OrphansRevoked", revoked);
    }
    metrics
}

/// Waits before each request to Private CA for a certificate that is still being issued (four
/// requests over 1.7 s; then the event is retried by Lambda).
pub const FETCH_DELAYS_MS: [u64; 4] = [0, 200, 500, 1000];

/// Waits before each further DeployCert request that Run Command refused retryably (four
/// requests over about 7 s, so that concurrent invocations slow down to SendCommand's rate;
/// then the rotation stays DEPLOYING without a command and the event is retried).
pub const SEND_DELAYS_MS: [u64; 3] = [1_000, 2_000, 4_000];

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
    on_issued_batch(deps, &[(event.clone(), None)], now)
        .await
        .pop()
        .unwrap_or_else(|| Err(DeployError::NotReady("no result".into())))
}

/// Handles issuance events together at `now` (each with when EventBridge sent it, if known):
/// each is checked and its deployment claimed on its own; the claimed hosts go out in as few
/// DeployCert commands as [`step::batch::commands`] makes of them; each command is recorded on
/// its hosts. One result per event, in order.
pub async fn on_issued_batch<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    events: &[(Envelope<IssuanceDetail>, Option<OffsetDateTime>)],
    now: OffsetDateTime,
) -> Vec<Result<Outcome, DeployError>>
where
    S: FleetReader + DeploymentRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let mut results: Vec<Option<Result<Outcome, Stop>>> = events.iter().map(|_| None).collect();
    let mut spans = Vec::with_capacity(events.len());
    let mut ready = Vec::new();
    for (i, (event, sent)) in events.iter().enumerate() {
        let span = tracing::info_span!(
            "rotation",
            stage = "deploy",
            host = tracing::field::Empty,
            certificate_arn = event.resources.get(1).map(String::as_str).unwrap_or("")
        );
        match claim(deps, event, *sent, now)
            .instrument(span.clone())
            .await
        {
            Ok(Claimed::Ready(claimed)) => {
                let (issuing, deploy) = *claimed;
                span.record("host", issuing.host.as_str());
                ready.push((i, issuing, deploy));
            }
            Ok(Claimed::Done(outcome)) => results[i] = Some(Ok(outcome)),
            Err(stop) => results[i] = Some(Err(stop)),
        }
        spans.push(span);
    }
    let shared: Vec<Shared> = ready.iter().map(|(_, _, d)| d.shared()).collect();
    let entries: Vec<DeployEntry> = ready.iter().map(|(_, i, d)| d.entry(i)).collect();
    let keys: Vec<(&Shared, &DeployEntry)> = shared.iter().zip(&entries).collect();
    for command in batch::commands(&keys) {
        let members: Vec<DeployEntry> = command.iter().map(|&k| entries[k].clone()).collect();
        let answers = match send(deps, &shared[command[0]], &members).await {
            // One host Run Command refuses (or a batch too large) refuses the whole command:
            // each host alone, so that only its own rotation fails.
            Err(e) if !e.retryable && command.len() > 1 => {
                tracing::warn!(hosts = command.len(), error = %e, "DeployCert refused for a batch; sending host by host");
                let mut answers = Vec::with_capacity(command.len());
                for &k in &command {
                    answers.push(send(deps, &shared[k], std::slice::from_ref(&entries[k])).await);
                }
                answers
            }
            Ok(command_id) => command.iter().map(|_| Ok(command_id.clone())).collect(),
            Err(e) => command.iter().map(|_| Err(e.for_another())).collect(),
        };
        for (&k, answer) in command.iter().zip(answers) {
            let (i, issuing, deploy) = &ready[k];
            let recorded = record_sent(deps, issuing, deploy, answer, now)
                .instrument(spans[*i].clone())
                .await;
            results[*i] = Some(recorded);
        }
    }
    let mut out = Vec::with_capacity(events.len());
    for (result, span) in results.into_iter().zip(spans) {
        let result = result.unwrap_or_else(|| {
            Err(Stop::Error(DeployError::NotReady(
                "the event was not handled".into(),
            )))
        });
        out.push(settle(deps, result, now).instrument(span).await);
    }
    out
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

/// What the issuance step comes to before DeployCert: a deployment claimed and ready to send,
/// or an outcome already (an orphan revoked).
enum Claimed {
    Ready(Box<(Issuance, Deploy)>),
    Done(Outcome),
}

/// The issuance step's functions in order, with the calls between them, up to the claimed
/// deployment.
async fn claim<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<IssuanceDetail>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Claimed, Stop>
where
    S: FleetReader + DeploymentRecorder,
    C: CertificateAuthority,
    A: Alerts,
{
    let cert_arn = issuance::issuance_event(event, &deps.config)?;
    let Some(host) = deps.store.host_waiting_for(&cert_arn).await? else {
        return orphaned(deps, &cert_arn, sent, now)
            .await
            .map(Claimed::Done);
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
    Ok(Claimed::Ready(Box::new((issuing, deploy))))
}

/// Sends one DeployCert to `entries` with `shared` settings, again after each of
/// [`SEND_DELAYS_MS`] while Run Command refuses retryably.
async fn send<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    shared: &Shared,
    entries: &[DeployEntry],
) -> Result<String, AwsError>
where
    H: HostAgent,
{
    let batch = shared.batch(
        entries,
        &deps.config.roles_anywhere,
        deps.config.reload_hook.as_ref(),
    );
    rotation::again::ask_again(
        "DeployCert refused, sending again",
        entries.first().map_or("", |e| e.host.as_str()),
        &SEND_DELAYS_MS,
        issuance::send_again,
        || deps.hosts.deploy(&batch),
    )
    .await
}

/// With Run Command's answer to the command that carried this host, records the command on
/// the rotation.
async fn record_sent<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    issuing: &Issuance,
    deploy: &Deploy,
    answer: Result<String, AwsError>,
    now: OffsetDateTime,
) -> Result<Outcome, Stop>
where
    S: DeploymentRecorder,
{
    let command_id = issuance::deploy_sent(issuing, deploy, answer)?;
    let answer = deps
        .store
        .deploy_requested(&issuing.host, &issuing.rotation, &command_id, now)
        .await;
    let outcome = issuance::deploy_recorded(issuing, deploy, command_id.clone(), answer)?;
    tracing::info!(host = %issuing.host, command_id, serial = %deploy.claim.serial, "DeployCert sent");
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
