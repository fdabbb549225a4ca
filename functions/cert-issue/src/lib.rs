//! CertIssue: turns a host's CSR into a certificate request, under the CSR policy.
//!
//! Started by the Run Command status-change event of a GenerateCsr invocation. It acts only if
//! the host's pending rotation is waiting for exactly that command; it reads the command's
//! output, accepts the CSR only if its signature verifies, its subject is exactly `CN=<the host
//! the command went to>`, it asks for no other names, and its key meets the policy (the original
//! sample let any host obtain a certificate for any name). Then it calls IssueCertificate with
//! an idempotency token derived from the rotation and records the certificate ARN and the CSR
//! key's fingerprint. CertDeploy continues from Private CA's issuance event.
//!
//! It is fed by an SQS queue (the EventBridge rule's target) through an event source mapping
//! whose maximum concurrency keeps IssueCertificate under Private CA's quota: each record's body
//! is the EventBridge event, and the answer names the records SQS must deliver again
//! (`batchItemFailures`): those whose step failed the invocation (throttled, not ready yet, or a
//! failure that could not be recorded). A record whose rotation failed for good (a refused CSR, a
//! Private CA refusal) is recorded FAILED, alerted, and deleted. A record delivered too often
//! goes to the dead-letter queue, whose alarm alerts. A direct EventBridge event (the reconciler,
//! an older stack) is handled as before.
//!
//! Decide in pure functions, act in a shell: every decision is in [`step`], a function of the
//! event, the record, the config, the time and the answers of earlier calls. This module only
//! loads the record, calls the steps, carries out the effect each one names through the ports
//! and records the result, so what it does is tested without any AWS service.

use lambda_runtime::LambdaEvent;
use rotation::again::ask_again;
use rotation::alerts::Alerts;
use rotation::budget::{lambda_deadline, Budget};
use rotation::ca::CertificateAuthority;
use rotation::error::{FailureKind, FunctionError};
use rotation::events::{CommandInvocationDetail, Envelope, SqsBatch};
use rotation::failure::fail_rotation;
use rotation::hosts::HostAgent;
use state::ports::{FleetReader, IssuanceRecorder};
use time::OffsetDateTime;
use tracing::Instrument;

pub mod step;

pub use rotation::error::EventError as IssueError;
pub use rotation::Deps;
pub use step::Outcome;
use step::Stop;

/// The Lambda handler: an SQS batch (answered with `batchItemFailures`) or one EventBridge
/// event. For an event, a retryable or not-ready error fails the invocation so that Lambda
/// retries it (`Retryable`, `NotReady`); an error no retry cures that could not be recorded on a
/// rotation fails it as `Permanent`. One metrics line per invocation.
pub async fn handle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError>
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let Some(batch) = SqsBatch::from_payload(&event.payload) else {
        let now = OffsetDateTime::now_utc();
        let result = Box::pin(handle_event(deps, event.payload, now)).await;
        let outcome = result?;
        step::metrics(std::slice::from_ref(&outcome))
            .stack(deps.config.stack_name.as_deref())
            .emit("CertIssue");
        return serde_json::to_value(outcome)
            .map_err(|e| FunctionError::new(FailureKind::Permanent, &e));
    };
    let until = lambda_deadline(event.context.deadline).map(|d| d - DEADLINE_MARGIN);
    let budget = Budget::on_system_clock(until);
    Ok(Box::pin(handle_batch(
        deps,
        &batch,
        &budget,
        OffsetDateTime::now_utc(),
    ))
    .await)
}

/// An SQS batch received at `now`, message after message until `budget` is spent: the answer
/// names the messages SQS must deliver again (retryable errors, and the messages not begun).
pub async fn handle_batch<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    batch: &SqsBatch,
    budget: &Budget,
    now: OffsetDateTime,
) -> serde_json::Value
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let mut outcomes = Vec::with_capacity(batch.records.len());
    let mut again = Vec::new();
    for record in &batch.records {
        if budget.spent() {
            again.push(record.message_id.as_str());
            continue;
        }
        let span = tracing::info_span!("message", message_id = %record.message_id);
        let payload = match serde_json::from_str::<serde_json::Value>(&record.body) {
            Ok(p) => p,
            Err(e) => {
                // Not an event: no delivery would make it one.
                let _in = span.enter();
                tracing::warn!(error = %e, "message body is not JSON; dropped");
                continue;
            }
        };
        let result = Box::pin(handle_event(deps, payload, now).instrument(span)).await;
        if step::deliver_again(&result) {
            again.push(record.message_id.as_str());
        }
        outcomes.extend(result.ok());
    }
    step::metrics(&outcomes)
        .stack(deps.config.stack_name.as_deref())
        .emit("CertIssue");
    rotation::events::batch_item_failures(again)
}

/// One EventBridge event: its outcome, or the invocation's error. Callers box its future: with
/// the SDK adapters' futures inside, its type is too deep for the compiler inside `handle`'s.
async fn handle_event<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    payload: serde_json::Value,
    now: OffsetDateTime,
) -> Result<Outcome, FunctionError>
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let outcome = match serde_json::from_value::<Envelope<CommandInvocationDetail>>(payload) {
        Err(e) => Outcome::Ignored {
            reason: format!("not a Run Command invocation status event: {e}"),
        },
        Ok(ev) => {
            let span = tracing::info_span!("rotation", host = %ev.detail.instance_id, stage = "issue", command_id = %ev.detail.command_id);
            // `on_csr_ready` in two awaits: one level less of nested futures keeps the handler's
            // future type (with the SDK adapters' futures inside) within the compiler's limit.
            let stopped = issue(deps, &ev, now).instrument(span.clone()).await;
            match settle(deps, stopped, now).instrument(span).await {
                Ok(o) => o,
                Err(e) => {
                    let error = FunctionError::from(e);
                    match error.kind {
                        FailureKind::Permanent | FailureKind::BadRequest => {
                            tracing::error!(error = %error.message, "event failed")
                        }
                        _ => {
                            tracing::warn!(error = %error.message, "the event will be delivered again")
                        }
                    }
                    return Err(error);
                }
            }
        }
    };
    if let Outcome::Ignored { reason } = &outcome {
        tracing::info!(reason, "event ignored");
    }
    Ok(outcome)
}

/// Handles one GenerateCsr status change at `now`: the steps of [`step`], in order, with the
/// calls between them.
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
    settle(deps, issue(deps, event, now).await, now).await
}

/// Turns the steps' result into the outcome: an ignored event, a failure recorded on the
/// rotation (and alerted once), or the invocation's error.
async fn settle<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    result: Result<Outcome, Stop>,
    now: OffsetDateTime,
) -> Result<Outcome, IssueError>
where
    S: IssuanceRecorder,
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

/// Waits before each further write of ISSUING while the table answers a retryable error:
/// the certificate exists from IssueCertificate's answer on, and a retry of the event minutes
/// later (SQS's visibility timeout, the reconciler's next pass) would be past the idempotency
/// token's 5 minutes and have a second certificate issued. So the write is tried again here,
/// over about 5 seconds, before the event is left to its retry.
pub const RECORD_DELAYS_MS: [u64; 3] = [250, 1_000, 4_000];

/// Waits before each further IssueCertificate while Private CA throttles (after the SDK's own
/// attempts; an outage is not waited out here), with the same idempotency token: the invocation
/// slows down to the quota instead of handing the message back to SQS, which would deliver it
/// again only after the visibility timeout (six minutes).
pub const ISSUE_DELAYS_MS: [u64; 3] = [1_000, 2_000, 4_000];

/// Time kept back before the invocation's deadline: messages not begun by then are handed back
/// to SQS (`batchItemFailures`), so that throttled waits never take the invocation to its
/// timeout with work half done; the message in hand (its waits included) and the answer fit.
pub const DEADLINE_MARGIN: time::Duration = time::Duration::seconds(20);

async fn issue<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    event: &Envelope<CommandInvocationDetail>,
    now: OffsetDateTime,
) -> Result<Outcome, Stop>
where
    S: FleetReader + IssuanceRecorder,
    H: HostAgent,
    C: CertificateAuthority,
{
    let host = step::csr_event(event, &deps.config)?;
    let record = deps.store.host(&host).await?;
    let pending = step::csr_ready(event, &host, record)?;
    let output = deps.hosts.invocation(&pending.command_id, &host).await;
    let request = step::csr_output(&pending, output, &deps.config)?;
    let issue = || {
        deps.ca.issue(
            &request.csr_pem,
            request.validity_days,
            &request.idempotency_token,
        )
    };
    let answer = ask_again(
        "IssueCertificate throttled",
        host.as_str(),
        &ISSUE_DELAYS_MS,
        rotation::again::throttled,
        issue,
    )
    .await;
    let cert_arn = step::issue_answer(&pending, answer)?;
    let record = || {
        deps.store.issuing(
            &host,
            &pending.rotation,
            &pending.command_id,
            &cert_arn,
            &request.key_fingerprint,
            now,
        )
    };
    let answer = ask_again(
        "recording ISSUING failed",
        host.as_str(),
        &RECORD_DELAYS_MS,
        rotation::again::store_refused_for_now,
        record,
    )
    .await;
    let outcome = step::issuing_recorded(&pending, &cert_arn, answer)?;
    tracing::info!(certificate_arn = %cert_arn, key = ?request.key_kind, "certificate requested");
    Ok(outcome)
}
