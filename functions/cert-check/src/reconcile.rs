//! The reconciler's shell: each stuck rotation asked about, then moved on by the very step its
//! lost event would have run (CertIssue's or CertDeploy's, called with the event rebuilt from
//! the record and the answer), or failed, or left in flight. Every decision is in
//! [`crate::step::reconcile`]; this module only makes the calls.
//!
//! One rotation at a time: stuck rotations are the few whose events were lost, and the handlers
//! called here make at most a handful of calls each.

use std::time::Duration as StdDuration;

use rotation::alerts::Alerts;
use rotation::ca::{CertificateAuthority, Fetched};
use rotation::failure::RotationFailure;
use rotation::hosts::{HostAgent, Invocation};
use state::ports::{DeploymentRecorder, FleetReader, PendingCertificates, RotationStarter};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::step::reconcile::{self as decide, Decision, Document, Found, Probe, Reconciled, Stuck};
use crate::step::summary::{HostNote, Summary};
use crate::{Budget, CheckError, Deps};

/// Waits before each question to Run Command or Private CA while the answer is still pending
/// or a retryable error (four questions over 1.7 s): a command just made visible, or a
/// throttled call, is not taken for one still running.
pub const PROBE_DELAYS_MS: [u64; 4] = [0, 200, 500, 1000];

/// Reconciles each stuck rotation, adding what came of it to `summary` (moved on: `reconciled`;
/// failed: `failed`; left in flight: `skipped`).
pub(crate) async fn reconcile_stuck<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    stuck: &[state::HostRecord],
    summary: &mut Summary,
    budget: &Budget,
    now: OffsetDateTime,
) -> Result<(), CheckError>
where
    S: FleetReader + RotationStarter + PendingCertificates,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    for (i, s) in stuck.iter().enumerate() {
        if budget.spent() {
            // Still in flight: the continuation (or the next pass) reconciles them.
            summary.budget_spent = true;
            for s in &stuck[i..] {
                summary
                    .skipped
                    .push(HostNote::new(&s.host, crate::step::budget::LEFT_REASON));
            }
            break;
        }
        let stuck = decide::probe(s.clone());
        let span = tracing::info_span!("rotation", host = %stuck.record.host, stage = "reconcile");
        match reconcile_one(deps, &stuck, now).instrument(span).await? {
            Reconciled::Moved(note) => {
                tracing::info!(host = %note.host, reason = %note.reason, "stuck rotation moved on");
                summary.reconciled.push(note)
            }
            Reconciled::Failed(note) => summary.failed.push(note),
            Reconciled::Left(note) => {
                tracing::info!(host = %note.host, reason = %note.reason, "stuck rotation left in flight");
                summary.skipped.push(note)
            }
        }
    }
    Ok(())
}

async fn reconcile_one<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    stuck: &Stuck,
    now: OffsetDateTime,
) -> Result<Reconciled, CheckError>
where
    S: FleetReader + RotationStarter + PendingCertificates,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let decision = match &stuck.probe {
        Probe::Fail(failure) => return fail_stuck(deps, stuck, failure.clone(), now).await,
        Probe::Find { document, rotation } => {
            let mut answer = Ok(None);
            for delay in PROBE_DELAYS_MS {
                tokio::time::sleep(StdDuration::from_millis(delay)).await;
                answer = deps
                    .hosts
                    .command_for(&stuck.record.host, *document, rotation)
                    .await;
                if !decide::ask_again(&answer, |_| false) {
                    break;
                }
            }
            match decide::after_find(stuck, *document, answer, &deps.config, now) {
                Found::Leave(note) => return Ok(Reconciled::Left(note)),
                Found::Fail(failure) => return fail_stuck(deps, stuck, failure, now).await,
                Found::Deploy(event) => Decision::Deploy(event),
                Found::Command(command_id) => {
                    if let Err(e) =
                        record_command(deps, stuck, *document, rotation, &command_id, now).await
                    {
                        return decide::after_recording(stuck, &command_id, e);
                    }
                    ask_invocation(deps, stuck, &command_id, *document, now).await
                }
            }
        }
        Probe::Invocation {
            command_id,
            document,
        } => ask_invocation(deps, stuck, command_id, *document, now).await,
        Probe::Certificate { cert_arn } => {
            let mut answer = Ok(Fetched::Pending);
            for delay in PROBE_DELAYS_MS {
                tokio::time::sleep(StdDuration::from_millis(delay)).await;
                answer = deps.ca.fetch(cert_arn).await;
                if !decide::ask_again(&answer, |f| *f == Fetched::Pending) {
                    break;
                }
            }
            decide::after_fetch(stuck, cert_arn, answer, &deps.config)
        }
    };
    match decision {
        Decision::Leave(note) => Ok(Reconciled::Left(note)),
        Decision::Fail(failure) => fail_stuck(deps, stuck, failure, now).await,
        Decision::Issue(event) => {
            let what = format!("GenerateCsr had finished ({})", event.detail.status);
            let answer = cert_issue::on_csr_ready(deps, &event, now).await;
            decide::after_handler(stuck, &what, answer.map(decide::issue_handled))
        }
        Decision::Deploy(event) => {
            let answer = cert_deploy::on_issued(deps, &event, now).await;
            let what = "the certificate had been issued";
            decide::after_handler(stuck, what, answer.map(decide::deploy_handled))
        }
        Decision::DeployStatus(event) => {
            let what = format!("DeployCert had finished ({})", event.detail.status);
            let answer = cert_deploy::on_deploy_status(deps, &event, now).await;
            decide::after_handler(stuck, &what, answer.map(decide::deploy_handled))
        }
    }
}

/// Asks Run Command about `command_id` on the stuck host, and decides.
async fn ask_invocation<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    stuck: &Stuck,
    command_id: &str,
    document: Document,
    now: OffsetDateTime,
) -> Decision
where
    H: HostAgent,
{
    let mut answer = Ok(Invocation::Pending);
    for delay in PROBE_DELAYS_MS {
        tokio::time::sleep(StdDuration::from_millis(delay)).await;
        answer = deps.hosts.invocation(command_id, &stuck.record.host).await;
        if !decide::ask_again(&answer, |i| *i == Invocation::Pending) {
            break;
        }
    }
    decide::after_invocation(stuck, command_id, document, answer, &deps.config, now)
}

/// Records the command found for a rotation whose claim was written without it, as the
/// function that sent it would have.
async fn record_command<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    stuck: &Stuck,
    document: Document,
    rotation: &state::RotationId,
    command_id: &str,
    now: OffsetDateTime,
) -> Result<(), state::StoreError>
where
    S: RotationStarter + PendingCertificates,
{
    let host = &stuck.record.host;
    match document {
        Document::GenerateCsr => {
            deps.store
                .csr_requested(host, rotation, command_id, now)
                .await?
        }
        Document::DeployCert => {
            deps.store
                .deploy_requested(host, rotation, command_id, now)
                .await?
        }
    };
    Ok(())
}

async fn fail_stuck<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    stuck: &Stuck,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Reconciled, CheckError>
where
    S: RotationStarter,
    A: Alerts,
{
    let failed = crate::fail(deps, &stuck.record, failure.clone(), now).await;
    decide::after_failing(stuck, &failure, failed)
}
