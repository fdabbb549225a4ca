//! CertCheck: the scheduler's entry point and the reconciler.
//!
//! Twice a day (EventBridge Scheduler delivers the schedule's input, `{}`) or on demand
//! (`aws lambda invoke` with `{"hosts": [...], "force": true, "dryRun": true}` or
//! `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}`, or
//! `{"release": {"host": "mi-…"}}` for a host its revocation's reason holds), it reads every
//! page of the table, plans each host, and:
//! - starts due rotations on hosts that are online: check reachability, then claim each host with
//!   a conditional write, then send one GenerateCsr to up to 50 claimed hosts sharing their
//!   settings (each host finds its own rotation in the command), then record the command on each
//!   (so two runs never start two rotations); an offline or unregistered host is not claimed and spends no attempt:
//!   it waits ("offline, waiting") and rotates on the first pass that finds it online;
//! - reconciles rotations stuck in flight (events are best effort): asks the host (Run
//!   Command's invocation) or Private CA where each really stands and carries out what the lost
//!   event would have (CertIssue's or CertDeploy's own step), failing only what cannot be moved
//!   on (see [`step::reconcile`]); retries failed ones after their capped backoff, for as long
//!   as it takes (retries never give up);
//! - alerts once per level per episode (first failure, under a day left, expired), after the
//!   rotations started, as one digest when more than ten hosts need one;
//! - returns a JSON summary (every count, the first hosts of each list) and prints metrics (also
//!   when the run fails after reading the table).
//!
//! A throttled SendCommand (after the SDK's retries) hands its hosts' claims back without
//! counting an attempt and the run goes on with the others; one refused for good is sent again
//! host by host, so a host SSM will not take fails only its own rotation. A send that timed out but reached
//! the host runs GenerateCsr with a command ID this run never recorded: its status event finds no
//! matching rotation and is dropped, the host is retried on the next pass (a new key); spotting
//! that command later is left to the reconcile pass. A host SSM refuses to describe (an ID it
//! calls malformed, deregistered) is asked about alone and, still refused, waits as unknown. A run that fails for a reason a
//! retry will not fix (access denied, a validation error) raises one `RUN_FAILED` alert.
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

mod operator;
mod reconcile;
pub mod step;

use std::collections::HashMap;
use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use rotation::alerts::{one_per_host, outgoing, raise_or_log, Alerts, HostAlert};
use rotation::ca::CertificateAuthority;
use rotation::error::{FailureKind, FunctionError};
use rotation::failure::{record_failure, record_level, Recorded, RotationFailure};
use rotation::hosts::{HostAgent, Reachability, MAX_HOSTS_PER_COMMAND};
use state::plan::DueWindow;
use state::ports::{
    FleetReader, OnlineWaiter as _, PendingCertificates, RevocationRecorder, RotationStarter,
    StoreError,
};
use state::rules::Change;
use state::HostId;
use time::OffsetDateTime;
use tracing::Instrument;

use step::plan::{Actions, Loaded};
use step::request::{Request, Scope};
use step::start::{AfterSend, Claim, Start, Started, Work};

pub use rotation::Deps;
pub use step::error::CheckError;
pub use step::request::{CheckRequest, RevokeRequest};
pub use step::summary::{HostNote, Summary};

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
    let now = OffsetDateTime::now_utc();
    let until = step::budget::budget_until(
        deps.config.run_budget,
        now,
        step::budget::lambda_deadline(event.context.deadline),
    );
    let budget = Budget::on_system_clock(until);
    let result = match step::request::parse_request(event.payload) {
        Ok(request) => run_within(deps.clone(), request, now, budget).await,
        Err(e) => Err(e),
    };
    if let Some(alert) = step::error::run_failed_alert(&result) {
        raise_or_log(&deps.alerts, &alert).await;
    }
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

pub use rotation::budget::Budget;

/// One run of a valid request at `now`, bounded by `RUN_BUDGET_SECONDS` on the system clock
/// when the config sets it.
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
    let until = step::budget::budget_until(deps.config.run_budget, OffsetDateTime::now_utc(), None);
    run_within(deps, request, now, Budget::on_system_clock(until)).await
}

/// One run of a valid request at `now` that starts no work once `budget` is spent: the due
/// hosts it did not reach are reported as `left` (the continuation starts them).
pub async fn run_within<S, H, C, A>(
    deps: Arc<Deps<S, H, C, A>>,
    request: Request,
    now: OffsetDateTime,
    budget: Budget,
) -> Result<Summary, CheckError>
where
    S: FleetReader + RotationStarter + PendingCertificates + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    let loaded = match load(&deps, request.scope, request.dry_run, now).await {
        Ok(loaded) => loaded,
        Err(e) => {
            step::summary::failed_run_metrics(None)
                .stack(deps.config.stack_name.as_deref())
                .emit("CertCheck");
            return Err(e);
        }
    };
    let Actions {
        mut summary,
        soonest_expiry_hours,
        alerts,
        stuck,
        start,
        failing,
    } = step::plan::plan_actions(loaded, request.dry_run, &deps.config, now);
    if request.dry_run {
        return Ok(summary);
    }
    // The plan's alerts first: of two for one host, the later (a failure's) wins a tie.
    let mut host_alerts = alerts;
    let result = act(
        &deps,
        stuck,
        start,
        &mut summary,
        &mut host_alerts,
        &budget,
        now,
    )
    .await;
    send_alerts(&deps, host_alerts, failing, now).await;
    if let Err(e) = result {
        step::summary::failed_run_metrics(soonest_expiry_hours)
            .stack(deps.config.stack_name.as_deref())
            .emit("CertCheck");
        return Err(e);
    }
    let (summary, mut metrics) = summary.finish(soonest_expiry_hours);
    metrics
        .stack(deps.config.stack_name.as_deref())
        .emit("CertCheck");
    tracing::info!(
        due = summary.due,
        started = summary.started.len(),
        failed = summary.failed.len(),
        reconciled = summary.reconciled.len(),
        skipped = summary.skipped.len(),
        left = summary.left.len(),
        "run complete"
    );
    Ok(summary)
}

/// Reconciles the stuck rotations and starts the due ones, gathering the alerts they call for.
async fn act<S, H, C, A>(
    deps: &Arc<Deps<S, H, C, A>>,
    stuck: Vec<state::HostRecord>,
    start: Vec<Start>,
    summary: &mut Summary,
    host_alerts: &mut Vec<HostAlert>,
    budget: &Budget,
    now: OffsetDateTime,
) -> Result<(), CheckError>
where
    S: FleetReader + RotationStarter + PendingCertificates + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    // Stuck rotations: moved on from what the host or the CA says; failed (and retried after
    // their backoff) only when that cannot be done.
    reconcile::reconcile_stuck(deps, &stuck, summary, budget, now).await?;
    start_all(deps, start, summary, host_alerts, budget, now).await
}

/// Raises the run's host alerts, one per host, as one digest when there are many or many hosts
/// are `failing`, and records each host's level so the next run does not repeat it. Runs after
/// the rotations started.
async fn send_alerts<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    host_alerts: Vec<HostAlert>,
    failing: usize,
    now: OffsetDateTime,
) where
    S: RotationStarter,
    A: Alerts,
{
    let host_alerts = one_per_host(host_alerts);
    let mut raised = true;
    for alert in outgoing(&host_alerts, failing) {
        raised &= raise_or_log(&deps.alerts, &alert).await;
    }
    if raised {
        for a in &host_alerts {
            record_level(&deps.store, &a.host, a.level, now).await;
        }
    }
}

/// The host alert a recorded failure calls for.
fn host_alert(host: &HostId, recorded: &Recorded) -> Option<HostAlert> {
    recorded.alert.as_ref().map(|(level, alert)| HostAlert {
        host: host.clone(),
        level: *level,
        alert: alert.clone(),
    })
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
        Scope::Revoke(revocation) => operator::revoke(deps, &revocation, dry_run, now).await,
        Scope::Release(host) => operator::release(deps, &host, dry_run, now).await,
    }
}

/// Starts the rotations: hosts that cannot take GenerateCsr wait, the others are claimed and
/// sent one GenerateCsr per batch of up to 50 ([`step::start::work`]), at most
/// `start_concurrency` batches at once, adding each outcome to `summary`.
async fn start_all<S, H, C, A>(
    deps: &Arc<Deps<S, H, C, A>>,
    starts: Vec<Start>,
    summary: &mut Summary,
    host_alerts: &mut Vec<HostAlert>,
    budget: &Budget,
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
    let reach = reachability(deps, &ids).await?;
    let work = step::start::work(starts, &reach, MAX_HOSTS_PER_COMMAND);
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = work.into_iter().peekable();
    // After an error no further work is started, but the batches in flight run to their end
    // (dropping them mid-way would leave hosts claimed with no command until the timeout).
    // Once the budget is spent, likewise: the rest is left for the continuation.
    let mut first_error = None;
    loop {
        while first_error.is_none() && tasks.len() < deps.config.start_concurrency.max(1) {
            if queue.peek().is_none() {
                break;
            }
            if budget.spent() {
                summary.budget_spent = true;
                summary.left.extend(queue.by_ref().flat_map(|w| w.hosts()));
                tracing::warn!(
                    left = summary.left.len(),
                    "time budget spent: hosts left for the continuation"
                );
                break;
            }
            let Some(work) = queue.next() else {
                break;
            };
            let deps = deps.clone();
            tasks.spawn(async move {
                match work {
                    Work::Wait(start, note) => Ok(vec![wait(&deps, &start, note, now).await]),
                    Work::Batch(starts) => start_batch(&deps, starts, now).await,
                }
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done.map_err(|e| CheckError::LostTask(e.to_string())) {
            Ok(Ok(outcomes)) => {
                for (started, alert) in outcomes {
                    summary.absorb(started);
                    host_alerts.extend(alert);
                }
            }
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = %e, "stopping the run after this error");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Hosts per DescribeInstanceInformation call: the most its `InstanceIds` filter takes.
pub const REACHABILITY_PAGE: usize = 50;

/// The reachability of `ids`, a page of [`REACHABILITY_PAGE`] hosts per call, at most
/// `reachability_concurrency` pages at once (one call after another, 2,000 pages of a
/// 100,000-host fleet would take minutes of the run's budget).
async fn reachability<S, H, C, A>(
    deps: &Arc<Deps<S, H, C, A>>,
    ids: &[HostId],
) -> Result<HashMap<HostId, Reachability>, CheckError>
where
    S: Send + Sync + 'static,
    H: HostAgent + 'static,
    C: Send + Sync + 'static,
    A: Send + Sync + 'static,
{
    let mut pages = ids.chunks(REACHABILITY_PAGE).map(<[HostId]>::to_vec);
    let limit = deps.config.reachability_concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut map = HashMap::with_capacity(ids.len());
    loop {
        while tasks.len() < limit {
            let Some(page) = pages.next() else { break };
            let deps = deps.clone();
            tasks.spawn(async move { reachability_page(&deps, &page).await });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        // A retryable error ends the run (its tasks are dropped: they only read).
        map.extend(done.map_err(|e| CheckError::LostTask(e.to_string()))??);
    }
    Ok(map)
}

/// The reachability of one page. If SSM refuses it for what it names (an ID it calls
/// malformed), each host is asked alone, and a host it still refuses is unknown (it waits):
/// one bad host never stops the run for the others.
async fn reachability_page<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    ids: &[HostId],
) -> Result<HashMap<HostId, Reachability>, CheckError>
where
    H: HostAgent,
{
    match deps.hosts.reachability(ids).await {
        Ok(map) => Ok(map),
        Err(e) if e.retryable => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "SSM refused the page; asking host by host");
            let mut map = HashMap::new();
            for id in ids {
                match deps.hosts.reachability(std::slice::from_ref(id)).await {
                    Ok(one) => map.extend(one),
                    Err(e) if e.retryable => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(host = %id, error = %e, "SSM does not know this host");
                        map.insert(id.clone(), Reachability::Unknown);
                    }
                }
            }
            Ok(map)
        }
    }
}

/// One host's outcome in a run, and the alert it calls for.
type Outcome = (Started, Option<HostAlert>);

/// A host that cannot take GenerateCsr: not claimed, no attempt spent. At rest, it joins the
/// reconcile pass's index: rotated minutes after it is back, not at the next schedule run. (In
/// flight or failed, it is there already.)
async fn wait<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    start: &Start,
    note: step::summary::HostNote,
    now: OffsetDateTime,
) -> Outcome
where
    S: RotationStarter,
{
    let alert = step::start::waiting_alert(start, &note, now);
    if step::start::mark_waiting(start) {
        if let Err(e) = deps.store.awaiting_online(&start.record.host, now).await {
            tracing::warn!(host = %start.record.host, error = %e, "could not mark the host as waiting to be online");
        }
    }
    (Started::Skipped(note), alert)
}

/// A batch of online hosts with the same settings: claim each, send one GenerateCsr to the
/// claimed ones, record the command on each. A batch SSM refuses for good (one host it will not
/// take refuses the whole command) is sent again host by host, so one bad host fails only its
/// own rotation.
async fn start_batch<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    starts: Vec<Start>,
    now: OffsetDateTime,
) -> Result<Vec<Outcome>, CheckError>
where
    S: FleetReader + RotationStarter,
    H: HostAgent,
    A: Alerts,
{
    let mut outcomes = Vec::with_capacity(starts.len());
    // Claim: of concurrent runs, only one gets past this for each host.
    let mut claimed = Vec::with_capacity(starts.len());
    for start in starts {
        let span =
            tracing::info_span!("rotation", host = %start.record.host, stage = "request_csr");
        let result = deps
            .store
            .start(&start.record, &start.rotation, now)
            .instrument(span)
            .await;
        match step::start::after_claim(&start, result)? {
            Claim::Won(record) => claimed.push((start, *record)),
            Claim::Lost(skipped) => outcomes.push((skipped, None)),
        }
    }
    if claimed.is_empty() {
        return Ok(outcomes);
    }
    let sent = send_csrs(deps, &claimed).await;
    match sent {
        AfterSend::Fail(failure) if claimed.len() > 1 => {
            tracing::warn!(hosts = claimed.len(), reason = %failure.reason, "GenerateCsr refused for the batch; sending host by host");
            for one in claimed.chunks(1) {
                let sent = send_csrs(deps, one).await;
                outcomes.push(record_sent(deps, &one[0], sent, now).await?);
            }
        }
        sent => {
            for one in &claimed {
                outcomes.push(record_sent(deps, one, sent.clone(), now).await?);
            }
        }
    }
    Ok(outcomes)
}

/// One GenerateCsr to the claimed hosts (same settings), and what to do next.
async fn send_csrs<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    claimed: &[(Start, state::HostRecord)],
) -> AfterSend
where
    H: HostAgent,
{
    let rotations: Vec<(HostId, state::RotationId)> = claimed
        .iter()
        .map(|(s, _)| (s.record.host.clone(), s.rotation.clone()))
        .collect();
    let batch = claimed[0].0.csr.batch(&rotations);
    let answer = rotation::again::ask_again(
        "GenerateCsr throttled",
        rotations[0].0.as_str(),
        &CSR_SEND_DELAYS_MS,
        rotation::again::throttled,
        || deps.hosts.request_csrs(&batch),
    )
    .await;
    step::start::after_send(answer)
}

/// Waits before each further GenerateCsr while Run Command throttles (after the SDK's own
/// attempts): the run slows down to SendCommand's rate instead of handing the claims back to
/// the next pass, ten minutes later. About 23 s in all: with 1, 2 and 4 s, a wave of 100,000
/// new hosts at SendCommand's assumed 5/s handed 8,000 claims back (the simulator; 1,600 with
/// these waits).
pub const CSR_SEND_DELAYS_MS: [u64; 5] = [1_000, 2_000, 4_000, 8_000, 8_000];

/// One claimed host after its GenerateCsr was sent (or not), as [`step::start::after_send`]
/// decided: record the command, fail the rotation, or hand the claim back.
async fn record_sent<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    (start, claimed): &(Start, state::HostRecord),
    sent: AfterSend,
    now: OffsetDateTime,
) -> Result<Outcome, CheckError>
where
    S: FleetReader + RotationStarter,
    A: Alerts,
{
    let span = tracing::info_span!("rotation", host = %start.record.host, stage = "request_csr");
    async move {
        let command_id = match sent {
            AfterSend::Record { command_id } => command_id,
            AfterSend::Fail(failure) => {
                let failed = fail(deps, claimed, failure.clone(), now).await;
                let alert = failed
                    .as_ref()
                    .ok()
                    .and_then(|r| host_alert(&claimed.host, r));
                return Ok((step::start::after_failing(start, &failure, failed)?, alert));
            }
            AfterSend::Release(failure) => {
                let released = release(deps, claimed, &failure, now).await;
                return Ok((
                    step::start::after_release(start, &failure, released)?,
                    None,
                ));
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
        let started = step::start::after_recording(start, recorded)?;
        tracing::info!(command_id, rotation = %start.rotation, reason = %step::summary::describe(&start.item), "GenerateCsr sent");
        Ok((started, None))
    }
    .instrument(span)
    .await
}

/// Hands a claimed rotation back without counting an attempt: FAILED with the attempts as they
/// were and the retry due now, so the next pass starts it again; no alert.
async fn release<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    claimed: &state::HostRecord,
    failure: &RotationFailure,
    now: OffsetDateTime,
) -> Result<state::HostRecord, StoreError>
where
    S: RotationStarter,
{
    let Some(rotation) = claimed.state.rotation().cloned() else {
        return Err(StoreError::Conflict(state::TransitionConflict {
            host: claimed.host.clone(),
            transition: "fail",
        }));
    };
    tracing::warn!(host = %claimed.host, reason = %failure.reason, "left for the next pass");
    let change = Change::Fail {
        from: claimed.state.kind(),
        rotation,
        stage: failure.stage,
        reason: failure.reason.clone(),
        attempts: claimed.attempts.failed,
        next_attempt_at: now,
    };
    deps.store.transition(&claimed.host, change, now).await
}

/// Fails `record`'s rotation under the failure policy, returning the alert it calls for.
async fn fail<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    record: &state::HostRecord,
    failure: RotationFailure,
    now: OffsetDateTime,
) -> Result<Recorded, StoreError>
where
    S: RotationStarter,
{
    record_failure(&deps.store, &deps.config, record, failure, now).await
}
