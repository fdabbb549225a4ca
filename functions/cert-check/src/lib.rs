//! CertCheck: the scheduler's entry point and the reconciler.
//!
//! Twice a day (EventBridge Scheduler delivers the schedule's input, `{}`) or on demand
//! (`aws lambda invoke` with `{"hosts": [...], "force": true, "dryRun": true}` or
//! `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}`), it reads every
//! page of the table, plans each host, and:
//! - starts due rotations on hosts that are online: claim the host with a conditional write,
//!   then send GenerateCsr, then record the command (so two runs never start two rotations);
//! - fails rotations stuck in flight (events are best effort) and retries failed ones after
//!   their backoff; hosts that are offline fail with a reason and one alert;
//! - alerts on expired certificates;
//! - returns a JSON summary and prints metrics.
//!
//! It never waits on a host: CertIssue picks up from the GenerateCsr status-change event.

pub mod step;

use std::collections::HashMap;
use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use rotation::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use rotation::ca::{CertificateAuthority, REVOCATION_REASONS};
use rotation::failure::{fail_rotation, RotationFailure};
use rotation::hosts::{CsrRequest, HostAgent, Reachability};
use rotation::telemetry::Metrics;
use rotation::AwsError;
use serde::{Deserialize, Serialize};
use state::plan::{plan_host, DueReason, DueWindow, Plan, PlanItem};
use state::ports::{FleetReader, RevocationRecorder, RotationStarter, StoreError};
use state::record::{FailureStage, StateKind};
use state::{HostId, HostRecord, RotationId};
use time::OffsetDateTime;
use tracing::Instrument;

/// Rotations started at once (each is three small calls; SSM's SendCommand allows far more).
const CONCURRENCY: usize = 16;

pub use rotation::Deps;

/// The manual payload (the scheduler sends `{}`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    /// Only these hosts (all hosts when empty).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Rotate the named hosts now, whatever their renewal point.
    #[serde(default)]
    pub force: bool,
    /// Return the plan, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Revoke a host's current certificate.
    #[serde(default)]
    pub revoke: Option<RevokeRequest>,
}

/// `{"revoke": {"host": "mi-…", "reason": "KEY_COMPROMISE", "rotate": true}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevokeRequest {
    /// The host.
    pub host: String,
    /// A Private CA revocation reason.
    pub reason: String,
    /// Start the replacement at once.
    #[serde(default)]
    pub rotate: bool,
}

/// A host and a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostNote {
    /// The host (or the escaped key of a refused row).
    pub host: String,
    /// Why.
    pub reason: String,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Hosts due for a new certificate (including retries).
    pub due: usize,
    /// Rotations started (GenerateCsr sent).
    pub started: Vec<String>,
    /// Of those, retries of failed rotations.
    pub retried: Vec<String>,
    /// Hosts not started, with the reason.
    pub skipped: Vec<HostNote>,
    /// Rotations failed by this run (offline hosts, stuck rotations, send errors).
    pub failed: Vec<HostNote>,
    /// Hosts whose certificate has expired.
    pub expired: Vec<String>,
    /// Table rows refused by validation.
    pub rejected_rows: Vec<HostNote>,
    /// Revoked serial, when the request was a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<HostNote>,
    /// Items DynamoDB read.
    pub items_read: u64,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// The plan, on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<HostNote>>,
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The payload is not a valid request (not retryable).
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The state table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl CheckError {
    /// Whether Lambda should retry the invocation.
    pub fn is_retryable(&self) -> bool {
        match self {
            CheckError::BadRequest(_) => false,
            CheckError::Store(e) => e.is_retryable(),
            CheckError::Aws(e) => e.retryable,
        }
    }
}

/// The Lambda handler: parse, run, emit metrics, map errors (bad requests are answered, not retried).
pub async fn handle<S, H, C, A>(
    deps: Arc<Deps<S, H, C, A>>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    S: FleetReader + RotationStarter + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    let request: CheckRequest = match event.payload {
        serde_json::Value::Null => CheckRequest::default(),
        v => match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => {
                return Ok(serde_json::json!({ "error": format!("invalid request: {e}") }));
            }
        },
    };
    match run(deps, request, OffsetDateTime::now_utc()).await {
        Ok(summary) => Ok(serde_json::to_value(summary)?),
        Err(e) if !e.is_retryable() => {
            tracing::error!(error = %e, "request refused");
            Ok(serde_json::json!({ "error": e.to_string() }))
        }
        Err(e) => {
            tracing::error!(error = %e, "run failed; Lambda will retry");
            Err(Box::new(e))
        }
    }
}

fn stage_of(kind: StateKind) -> FailureStage {
    match kind {
        StateKind::Issuing => FailureStage::Issue,
        StateKind::Deploying => FailureStage::Deploy,
        _ => FailureStage::RequestCsr,
    }
}

/// One run at `now`.
pub async fn run<S, H, C, A>(
    deps: Arc<Deps<S, H, C, A>>,
    request: CheckRequest,
    now: OffsetDateTime,
) -> Result<Summary, CheckError>
where
    S: FleetReader + RotationStarter + 'static,
    H: HostAgent + 'static,
    C: CertificateAuthority + 'static,
    A: Alerts + 'static,
{
    let mut summary = Summary {
        dry_run: request.dry_run,
        ..Summary::default()
    };
    let mut metrics = Metrics::default();
    let mut plan = if let Some(revoke) = &request.revoke {
        if !request.hosts.is_empty() || request.force {
            return Err(CheckError::BadRequest(
                "revoke cannot be combined with hosts or force".into(),
            ));
        }
        let (item, note) = revoke_host(&deps, revoke, request.dry_run, now).await?;
        summary.revoked = Some(note);
        Plan {
            items: item.into_iter().collect(),
        }
    } else if request.hosts.is_empty() {
        if request.force {
            return Err(CheckError::BadRequest("force needs a list of hosts".into()));
        }
        let scan = deps
            .store
            .candidates(DueWindow::at(now, &deps.config.plan))
            .await?;
        summary.items_read = scan.items_read;
        summary.rejected_rows = scan
            .rejected
            .iter()
            .map(|r| HostNote {
                host: r.key.clone(),
                reason: r.reason.to_string(),
            })
            .collect();
        Plan::build(scan.records, now, &deps.config.plan)
    } else {
        named_hosts(&deps, &request, now).await?
    };

    if let Some(soonest) = plan.soonest_expiry() {
        metrics.hours(
            "HoursToSoonestExpiry",
            (soonest - now).as_seconds_f64() / 3600.0,
        );
    }
    summary.due = plan.starting().count();
    summary.expired = plan
        .items
        .iter()
        .filter(|(_, i)| *i == PlanItem::Due(DueReason::Expired))
        .map(|(r, _)| r.host.to_string())
        .collect();

    if request.dry_run {
        summary.plan = Some(
            plan.items
                .iter()
                .map(|(r, i)| HostNote {
                    host: r.host.to_string(),
                    reason: describe(i),
                })
                .collect(),
        );
        return Ok(summary);
    }

    for host in &summary.expired {
        let alert = Alert {
            host: Some(host.clone()),
            ..Alert::new(
                AlertKind::CertificateExpired,
                "the host's certificate has expired; a new one is being requested",
            )
        };
        raise_or_log(&deps.alerts, &alert).await;
    }

    // Stuck rotations: fail them (they are retried after their backoff).
    for (record, item) in &plan.items {
        if let PlanItem::Stuck { state } = item {
            let reason = format!(
                "no progress for {} minutes in {state} (a status event was lost or the host did not answer)",
                deps.config.plan.in_flight_timeout.whole_minutes()
            );
            match fail_rotation(
                &deps.store,
                &deps.alerts,
                &deps.config,
                record,
                RotationFailure::new(stage_of(*state), reason.clone()),
                now,
            )
            .await
            {
                Ok(_) => summary.failed.push(HostNote {
                    host: record.host.to_string(),
                    reason,
                }),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for (record, item) in &plan.items {
        let note = match item {
            PlanItem::InFlight => Some("rotation in flight"),
            PlanItem::Backoff { .. } => Some("failed; waiting for the retry backoff"),
            PlanItem::GivenUp { .. } => Some("retries exhausted; force it once the host is fixed"),
            PlanItem::RevokedHeld => Some("revoked; re-issue is off"),
            _ => None,
        };
        if let Some(n) = note {
            summary.skipped.push(HostNote {
                host: record.host.to_string(),
                reason: n.into(),
            });
        }
    }

    // Start due rotations on reachable hosts.
    let starting: Vec<(HostRecord, PlanItem)> = std::mem::take(&mut plan.items)
        .into_iter()
        .filter(|(_, i)| i.starts_rotation())
        .collect();
    let ids: Vec<HostId> = starting.iter().map(|(r, _)| r.host.clone()).collect();
    let reach = if ids.is_empty() {
        HashMap::new()
    } else {
        deps.hosts.reachability(&ids).await?
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut queue = starting.into_iter();
    // After an error no further host is started, but the rotations in flight run to their end
    // (dropping them mid-way would leave hosts claimed with no command until the timeout).
    let mut first_error = None;
    loop {
        while first_error.is_none() && tasks.len() < CONCURRENCY {
            let Some((record, item)) = queue.next() else {
                break;
            };
            let reach = reach
                .get(&record.host)
                .cloned()
                .unwrap_or(Reachability::Unknown);
            let deps = deps.clone();
            let span = tracing::info_span!("rotation", host = %record.host, stage = "request_csr");
            tasks.spawn(
                async move { start_one(&deps, record, item, reach, now).await }.instrument(span),
            );
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let started = match done.map_err(|e| CheckError::BadRequest(format!("task failed: {e}"))) {
            Ok(Ok(started)) => started,
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = %e, "stopping the run after this error");
                first_error.get_or_insert(e);
                continue;
            }
        };
        match started {
            Started::Yes { host, retry } => {
                if retry {
                    summary.retried.push(host.clone());
                }
                summary.started.push(host);
            }
            Started::Skipped(n) => summary.skipped.push(n),
            Started::Failed(n) => summary.failed.push(n),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    summary.started.sort();
    metrics
        .count("RotationsStarted", summary.started.len() as u64)
        .count("RotationsFailed", summary.failed.len() as u64)
        .count("RejectedRows", summary.rejected_rows.len() as u64);
    metrics.emit("CertCheck");
    tracing::info!(
        due = summary.due,
        started = summary.started.len(),
        failed = summary.failed.len(),
        skipped = summary.skipped.len(),
        "run complete"
    );
    Ok(summary)
}

fn describe(item: &PlanItem) -> String {
    match item {
        PlanItem::Due(r) => format!("rotate: {}", r.as_str()),
        PlanItem::Retry { attempt } => format!("retry: attempt {attempt}"),
        PlanItem::Stuck { state } => format!("stuck in {state}: will be failed and retried"),
        PlanItem::NotDue { renew_at } => format!("not due until {renew_at}"),
        PlanItem::InFlight => "rotation in flight".into(),
        PlanItem::Backoff { until } => format!("failed; retry after {until}"),
        PlanItem::GivenUp { attempts } => format!("gave up after {attempts} attempts"),
        PlanItem::RevokedHeld => "revoked; re-issue is off".into(),
    }
}

enum Started {
    Yes { host: String, retry: bool },
    Skipped(HostNote),
    Failed(HostNote),
}

async fn start_one<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    record: HostRecord,
    item: PlanItem,
    reach: Reachability,
    now: OffsetDateTime,
) -> Result<Started, CheckError>
where
    S: FleetReader + RotationStarter,
    H: HostAgent,
    C: CertificateAuthority,
    A: Alerts,
{
    let host = record.host.to_string();
    let rotation = RotationId::new(&record.host, record.version.unwrap_or(0), now);
    // Claim first: of concurrent runs, only one gets past this line for this host.
    let claimed = match deps.store.start(&record, &rotation, now).await {
        Ok(r) => r,
        Err(StoreError::Conflict(_)) => {
            return Ok(Started::Skipped(HostNote {
                host,
                reason: "another run started this rotation".into(),
            }))
        }
        Err(e) => return Err(e.into()),
    };
    let fail = |reason: String| async {
        match fail_rotation(
            &deps.store,
            &deps.alerts,
            &deps.config,
            &claimed,
            RotationFailure::new(FailureStage::RequestCsr, reason.clone()),
            now,
        )
        .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(Started::Failed(HostNote {
                host: host.clone(),
                reason,
            })),
            Err(e) => Err(CheckError::from(e)),
        }
    };
    match reach {
        Reachability::Online => {}
        Reachability::Offline(status) => {
            return fail(format!("host is not online (SSM ping status {status})")).await
        }
        Reachability::Unknown => {
            return fail("host is not registered with Systems Manager".into()).await
        }
    }
    let settings = deps.config.host_settings(&record);
    let request = CsrRequest {
        host: &record.host,
        key_path: &settings.key_path,
        csr_path: &settings.csr_path,
        key_algorithm: settings.key_algorithm,
        rotation: &rotation,
    };
    let command_id = match deps.hosts.request_csr(&request).await {
        Ok(c) => c,
        Err(e) if e.retryable => {
            // Record the failure (retried after the backoff) and fail the run so Lambda
            // retries it; if even the record fails, the reconciler fails it after the timeout.
            let _ = fail(format!("could not send GenerateCsr: {e}")).await;
            return Err(e.into());
        }
        Err(e) => return fail(format!("could not send GenerateCsr: {e}")).await,
    };
    match deps
        .store
        .csr_requested(&record.host, &rotation, &command_id, now)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => tracing::warn!(
            command_id,
            "rotation moved on before its command was recorded"
        ),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(command_id, rotation = %rotation, reason = %describe(&item), "GenerateCsr sent");
    Ok(Started::Yes {
        host,
        retry: matches!(item, PlanItem::Retry { .. }),
    })
}

async fn named_hosts<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    request: &CheckRequest,
    now: OffsetDateTime,
) -> Result<Plan, CheckError>
where
    S: FleetReader,
{
    let mut items = Vec::new();
    for raw in &request.hosts {
        let host = HostId::parse(raw).map_err(|e| CheckError::BadRequest(e.to_string()))?;
        let record = deps
            .store
            .host(&host)
            .await?
            .ok_or_else(|| CheckError::BadRequest(format!("host {host} is not enrolled")))?;
        let planned = plan_host(&record, now, &deps.config.plan);
        let item = if request.force && !record.state.kind().in_flight() {
            PlanItem::Due(DueReason::Forced)
        } else {
            planned
        };
        items.push((record, item));
    }
    Ok(Plan { items })
}

async fn revoke_host<S, H, C, A>(
    deps: &Deps<S, H, C, A>,
    revoke: &RevokeRequest,
    dry_run: bool,
    now: OffsetDateTime,
) -> Result<(Option<(HostRecord, PlanItem)>, HostNote), CheckError>
where
    S: FleetReader + RotationStarter + RevocationRecorder,
    C: CertificateAuthority,
    A: Alerts,
{
    let host = HostId::parse(&revoke.host).map_err(|e| CheckError::BadRequest(e.to_string()))?;
    if !REVOCATION_REASONS.contains(&revoke.reason.as_str()) {
        return Err(CheckError::BadRequest(format!(
            "invalid revocation reason {:?}: expected one of {}",
            revoke.reason,
            REVOCATION_REASONS.join(", ")
        )));
    }
    let record = deps
        .store
        .host(&host)
        .await?
        .ok_or_else(|| CheckError::BadRequest(format!("host {host} is not enrolled")))?;
    let serial = record
        .revocable_serial()
        .map(str::to_owned)
        .ok_or_else(|| {
            CheckError::BadRequest(format!("host {host} has no deployed certificate to revoke"))
        })?;
    let note = HostNote {
        host: host.to_string(),
        reason: format!("revoked serial {serial} ({})", revoke.reason),
    };
    if dry_run {
        return Ok((None, note));
    }
    deps.ca.revoke(&serial, &revoke.reason).await?;
    let revoked = deps.store.revoked(&record, &serial, now).await?;
    let alert = Alert {
        host: Some(host.to_string()),
        ..Alert::new(
            AlertKind::CertificateRevoked,
            format!("serial {serial} revoked by an operator ({})", revoke.reason),
        )
    };
    raise_or_log(&deps.alerts, &alert).await;
    let item = revoke
        .rotate
        .then_some((revoked, PlanItem::Due(DueReason::Revoked)));
    Ok((item, note))
}
