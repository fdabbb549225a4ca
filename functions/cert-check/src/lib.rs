//! CertCheck: the scheduler's entry point and the reconciler.
//!
//! Twice a day (EventBridge Scheduler delivers the schedule's input, `{}`) or on demand
//! (`aws lambda invoke` with `{"hosts": [...], "force": true, "dryRun": true}` or
//! `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}`), it reads every
//! page of the table, plans each host, and:
//! - starts due rotations on hosts that are online: claim the host with a conditional write,
//!   then send GenerateCsr, then record the command (so two runs never start two rotations);
//! - reconciles rotations stuck in flight (events are best effort): asks the host (Run
//!   Command's invocation) or Private CA where each really stands and carries out what the lost
//!   event would have (CertIssue's or CertDeploy's own step), failing only what cannot be moved
//!   on (see [`step::reconcile`]); retries failed ones after their backoff; hosts that are
//!   offline fail with a reason and one alert;
//! - alerts on expired certificates;
//! - returns a JSON summary and prints metrics.
//!
//! It never waits on a host: CertIssue picks up from the GenerateCsr status-change event.
//!
//! `{"reconcile": true}` (a second schedule, every few minutes) is the same run over only the
//! hosts in flight or failed, read from their sparse index instead of scanning the fleet: the
//! in-flight timeout and the retry backoff are honoured at that cadence, cheaply.
//!
//! Decide in pure functions, act in the shell: every decision is a function in [`step`] of the
//! request, the records, the config, the time and the results of the I/O so far, unit-tested
//! branch by branch; this module only loads, calls those functions, carries out the effects
//! they return through the ports (store, hosts, CA, alerts) and records the results.
//!
//! Failures: a bad request fails the invocation as `BadRequest`; store and AWS errors as
//! `Retryable` or `Permanent`; a lost task as `Retryable`. A revocation refused for what it
//! names is answered `{"error": …}` instead (see [`step::error::CheckError::Refused`]).

mod reconcile;
pub mod step;

use std::collections::HashMap;
use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use rotation::alerts::{raise_or_log, Alerts};
use rotation::ca::CertificateAuthority;
use rotation::error::{FailureKind, FunctionError};
use rotation::failure::{fail_rotation, RotationFailure};
use rotation::hosts::HostAgent;
use state::plan::DueWindow;
use state::ports::{
    FleetReader, PendingCertificates, RevocationRecorder, RotationStarter, StoreError,
};
use state::HostId;
use time::OffsetDateTime;
use tracing::Instrument;

use step::plan::{Actions, Loaded};
use step::request::{Request, Scope};
use step::revoke::RevokeDecision;
use step::start::{AfterSend, Claim, HostStep, Start, Started};

pub use rotation::Deps;
pub use step::error::CheckError;
pub use step::request::{CheckRequest, RevokeRequest};
pub use step::summary::{HostNote, Summary};

/// Rotations started at once (each is three small calls; SSM's SendCommand allows far more).
const CONCURRENCY: usize = 16;

/// The Lambda handler: parse, run, answer. A failure's kind becomes Lambda's `errorType`.
pub async fn handle<S, H, C, A>(
    deps: Arc<Deps<S, H, C, A>>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, FunctionError>
where
    S: FleetReader + RotationStarter + PendingCertificates + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    let result = match step::request::parse_request(event.payload) {
        Ok(request) => run(deps, request, OffsetDateTime::now_utc()).await,
        Err(e) => Err(e),
    };
    match &result {
        Err(e @ CheckError::Refused(_)) => tracing::warn!(error = %e, "revocation refused"),
        Err(e) if e.kind() == FailureKind::Retryable => {
            tracing::error!(error = %e, "run failed; Lambda will retry")
        }
        Err(e) => tracing::error!(error = %e, kind = ?e.kind(), "run failed"),
        Ok(_) => {}
    }
    step::summary::answer(result)
}

/// One run of a valid request at `now`.
pub async fn run<S, H, C, A>(
    deps: Arc<Deps<S, H, C, A>>,
    request: Request,
    now: OffsetDateTime,
) -> Result<Summary, CheckError>
where
    S: FleetReader + RotationStarter + PendingCertificates + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    let loaded = load(&deps, request.scope, request.dry_run, now).await?;
    let Actions {
        mut summary,
        soonest_expiry_hours,
        alerts,
        stuck,
        start,
    } = step::plan::plan_actions(loaded, request.dry_run, &deps.config, now);
    if request.dry_run {
        return Ok(summary);
    }
    for alert in &alerts {
        raise_or_log(&deps.alerts, alert).await;
    }
    // Stuck rotations: moved on from what the host or the CA says; failed (and retried after
    // their backoff) only when that cannot be done.
    reconcile::reconcile_stuck(&deps, &stuck, &mut summary, now).await?;
    start_all(&deps, start, &mut summary, now).await?;
    let (summary, metrics) = summary.finish(soonest_expiry_hours);
    metrics.emit("CertCheck");
    tracing::info!(
        due = summary.due,
        started = summary.started.len(),
        failed = summary.failed.len(),
        reconciled = summary.reconciled.len(),
        skipped = summary.skipped.len(),
        "run complete"
    );
    Ok(summary)
}

/// Reads what the request's scope needs and plans it (carrying out a revocation on the way).
async fn load<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    scope: Scope,
    dry_run: bool,
    now: OffsetDateTime,
) -> Result<Loaded, CheckError>
where
    S: FleetReader + RotationStarter + RevocationRecorder,
    C: CertificateAuthority,
    A: Alerts,
{
    let policy = &deps.config.plan;
    match scope {
        Scope::Fleet => {
            let scan = deps.store.candidates(DueWindow::at(now, policy)).await?;
            Ok(step::plan::fleet(scan, now, policy))
        }
        Scope::Hosts { hosts, force } => {
            let mut loaded = Loaded::default();
            for host in &hosts {
                let record = deps.store.host(host).await?;
                let item = step::plan::named_item(host, record, force, now, policy)?;
                loaded.plan.items.push(item);
            }
            Ok(loaded)
        }
        Scope::Reconcile => {
            let scan = deps.store.in_flight().await?;
            Ok(step::plan::fleet(scan, now, policy))
        }
        Scope::Revoke(revocation) => {
            let record = deps.store.host(&revocation.host).await?;
            match step::revoke::decide_revocation(&revocation, record, dry_run)? {
                RevokeDecision::Report(note) => Ok(step::revoke::reported(note)),
                RevokeDecision::Revoke(r) => {
                    deps.ca.revoke(&r.serial, &r.reason).await?;
                    let revoked = deps.store.revoked(&r.record, &r.serial, now).await?;
                    raise_or_log(&deps.alerts, &r.alert).await;
                    Ok(step::revoke::after_revoked(&r, revoked))
                }
            }
        }
    }
}

/// Starts the rotations, at most [`CONCURRENCY`] at once, adding each outcome to `summary`.
async fn start_all<S, H, C, A>(
    deps: &Arc<Deps<S, H, C, A>>,
    starts: Vec<Start>,
    summary: &mut Summary,
    now: OffsetDateTime,
) -> Result<(), CheckError>
where
    S: FleetReader + RotationStarter + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    if starts.is_empty() {
        return Ok(());
    }
    let ids: Vec<HostId> = starts.iter().map(|s| s.record.host.clone()).collect();
    let reach = Arc::new(deps.hosts.reachability(&ids).await?);
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = starts.into_iter();
    // After an error no further host is started, but the rotations in flight run to their end
    // (dropping them mid-way would leave hosts claimed with no command until the timeout).
    let mut first_error = None;
    loop {
        while first_error.is_none() && tasks.len() < CONCURRENCY {
            let Some(start) = queue.next() else {
                break;
            };
            let (deps, reach) = (deps.clone(), reach.clone());
            let span =
                tracing::info_span!("rotation", host = %start.record.host, stage = "request_csr");
            tasks.spawn(async move { start_one(&deps, start, &reach, now).await }.instrument(span));
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.map_err(|e| CheckError::LostTask(e.to_string())) {
            Ok(Ok(started)) => summary.absorb(started),
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = %e, "stopping the run after this error");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One host: claim, check reachability, send GenerateCsr, record the command.
async fn start_one<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    start: Start,
    reach: &HashMap<HostId, rotation::hosts::Reachability>,
    now: OffsetDateTime,
) -> Result<Started, CheckError>
where
    S: FleetReader + RotationStarter,
    H: HostAgent,
    A: Alerts,
{
    // Claim first: of concurrent runs, only one gets past this line for this host.
    let claimed = deps.store.start(&start.record, &start.rotation, now).await;
    let claimed = match step::start::after_claim(&start, claimed)? {
        Claim::Won(record) => *record,
        Claim::Lost(skipped) => return Ok(skipped),
    };
    if let HostStep::Fail(failure) = step::start::on_reachability(&start, reach) {
        let failed = fail(deps, &claimed, failure.clone(), now).await;
        return step::start::after_failing(&start, &failure, failed);
    }
    let sent = deps.hosts.request_csr(&start.csr.request()).await;
    let command_id = match step::start::after_send(sent) {
        AfterSend::Record { command_id } => command_id,
        AfterSend::Fail(failure) => {
            let failed = fail(deps, &claimed, failure.clone(), now).await;
            return step::start::after_failing(&start, &failure, failed);
        }
        AfterSend::FailAndRetry(failure, error) => {
            let _ = fail(deps, &claimed, failure, now).await;
            return Err(error.into());
        }
    };
    let recorded = deps
        .store
        .csr_requested(&start.record.host, &start.rotation, &command_id, now)
        .await;
    if let Err(StoreError::Conflict(_)) = &recorded {
        tracing::warn!(
            command_id,
            "rotation moved on before its command was recorded"
        );
    }
    let started = step::start::after_recording(&start, recorded)?;
    tracing::info!(command_id, rotation = %start.rotation, reason = %step::summary::describe(&start.item), "GenerateCsr sent");
    Ok(started)
}

/// Fails `record`'s rotation under the failure policy (one alert per episode).
async fn fail<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    record: &state::HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<rotation::failure::Failed, StoreError>
where
    S: RotationStarter,
    A: Alerts,
{
    fail_rotation(
        &deps.store,
        &deps.alerts,
        &deps.config,
        record,
        failure,
        now,
    )
    .await
}
