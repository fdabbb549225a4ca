//! Starting rotations, one decision per I/O result.
//!
//! The shell first asks [`on_reachability`] whether each host can take GenerateCsr: an offline
//! or not-yet-registered host is not claimed and spends no attempt, it waits for the next pass
//! (alerted only once its certificate is under a day from expiry, [`waiting_alert`]). The
//! others are grouped by [`work`] into batches of up to 50 hosts with the same GenerateCsr
//! settings: one SendCommand per batch, because Run Command's SendCommand rate (AWS publishes
//! none; users see throttling at a few per second) and not Private CA would otherwise bound a
//! large fleet. Each host of a batch is claimed ([`Start::rotation`], conditional write); after
//! the batch's SendCommand, [`after_send`]
//! says whether to record the command, fail the rotation, or (throttled, or any retryable error
//! after the SDK's own retries) leave the host for the next pass without counting an attempt,
//! while the run goes on with the other hosts; [`after_claim`], [`after_failing`] and
//! [`after_recording`] turn the store's answers into the host's [`Started`] outcome.

use std::collections::HashMap;

use pki::KeyAlgorithm;
use rotation::alerts::{Alert, AlertKind, HostAlert};
use rotation::failure::RotationFailure;
use rotation::hosts::{CsrBatch, Reachability, MAX_HOSTS_PER_COMMAND};
use rotation::{AwsError, Config};
use state::plan::{alert_due, PlanItem};
use state::ports::StoreError;
use state::record::AlertLevel;
use state::record::FailureStage;
use state::{HostId, HostPath, HostRecord, RotationId};
use time::OffsetDateTime;

use super::error::CheckError;
use super::summary::HostNote;

/// A rotation to start: the host as planned, why, its new rotation ID and its GenerateCsr.
#[derive(Debug, Clone)]
pub struct Start {
    /// The host as planned (the claim expects exactly this version).
    pub record: HostRecord,
    /// Why it starts (due or retry).
    pub item: PlanItem,
    /// The new rotation.
    pub rotation: RotationId,
    /// The host's GenerateCsr settings.
    pub csr: CsrParams,
}

/// A host's GenerateCsr settings, owned (a [`CsrBatch`] borrows them): all a command's hosts
/// must share (each host's rotation goes in the command's list), so they group hosts ([`work`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CsrParams {
    /// Directory of the key (the host's override, else the stack's default).
    pub key_path: HostPath,
    /// Directory of the CSR file (the stack's default).
    pub csr_path: HostPath,
    /// The host's key algorithm (its override, else the stack's default).
    pub key_algorithm: KeyAlgorithm,
}

impl CsrParams {
    /// The command of a batch with these settings ([`work`]) for `rotations`.
    pub fn batch<'a>(&'a self, rotations: &'a [(HostId, RotationId)]) -> CsrBatch<'a> {
        CsrBatch {
            rotations,
            key_path: &self.key_path,
            csr_path: &self.csr_path,
            key_algorithm: self.key_algorithm,
        }
    }
}

/// A piece of a run's start work, for one task.
#[derive(Debug, Clone)]
pub enum Work {
    /// A host that cannot take GenerateCsr now: it waits, noted (and marked, at rest).
    Wait(Box<Start>, HostNote),
    /// Hosts to claim and send one GenerateCsr: same settings, at most
    /// [`MAX_HOSTS_PER_COMMAND`].
    Batch(Vec<Start>),
}

impl Work {
    /// The hosts this work is about.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Work::Wait(start, _) => vec![start.record.host.to_string()],
            Work::Batch(starts) => starts.iter().map(|s| s.record.host.to_string()).collect(),
        }
    }
}

/// The run's start work: waiting hosts one by one, online ones in batches of up to
/// `batch_size` (capped at [`MAX_HOSTS_PER_COMMAND`]) sharing their GenerateCsr settings, in
/// the plan's order (most urgent first) by each batch's first host.
pub fn work(
    starts: Vec<Start>,
    reach: &HashMap<HostId, Reachability>,
    batch_size: usize,
) -> Vec<Work> {
    let size = batch_size.clamp(1, MAX_HOSTS_PER_COMMAND);
    let mut out = Vec::new();
    // Index in `out` of the open batch of each settings.
    let mut open: HashMap<CsrParams, usize> = HashMap::new();
    for start in starts {
        if let HostStep::Wait(note) = on_reachability(&start, reach) {
            out.push(Work::Wait(Box::new(start), note));
            continue;
        }
        match open.get(&start.csr).map(|&i| &mut out[i]) {
            Some(Work::Batch(batch)) if batch.len() < size => batch.push(start),
            _ => {
                open.insert(start.csr.clone(), out.len());
                out.push(Work::Batch(vec![start]));
            }
        }
    }
    out
}

impl Start {
    /// The start of `record`'s rotation for `item` at `now`: a rotation ID unique per host,
    /// record version and instant, and the host's effective settings.
    pub fn new(record: HostRecord, item: PlanItem, config: &Config, now: OffsetDateTime) -> Start {
        let rotation = RotationId::new(&record.host, record.version.unwrap_or(0), now);
        let settings = config.host_settings(&record);
        let csr = CsrParams {
            key_path: settings.key_path,
            csr_path: settings.csr_path,
            key_algorithm: settings.key_algorithm,
        };
        Start {
            record,
            item,
            rotation,
            csr,
        }
    }

    /// Whether this start retries a failed rotation.
    pub fn is_retry(&self) -> bool {
        matches!(self.item, PlanItem::Retry { .. })
    }
}

/// How one host's start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// GenerateCsr sent.
    Yes {
        /// The host.
        host: String,
        /// Whether it retries a failed rotation.
        retry: bool,
    },
    /// Not started (another run claimed it).
    Skipped(HostNote),
    /// The rotation was failed.
    Failed(HostNote),
}

/// The claim's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This run owns the rotation: go on with the claimed record.
    Won(Box<HostRecord>),
    /// Another run claimed the host first: skip it.
    Lost(Started),
}

/// After the claim: go on with the claimed record, or skip the host because another run
/// claimed it first, or stop on the store's error.
pub fn after_claim(
    start: &Start,
    result: Result<HostRecord, StoreError>,
) -> Result<Claim, CheckError> {
    match result {
        Ok(claimed) => Ok(Claim::Won(Box::new(claimed))),
        Err(StoreError::Conflict(_)) => Ok(Claim::Lost(Started::Skipped(HostNote::new(
            &start.record.host,
            "another run started this rotation",
        )))),
        Err(e) => Err(e.into()),
    }
}

/// What to do with a due host given the reachability of the fleet, before claiming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStep {
    /// Claim it and send GenerateCsr.
    Send,
    /// Leave it as it is (no claim, no attempt spent) until a pass finds it online.
    Wait(HostNote),
}

/// Online hosts get GenerateCsr; offline ones and ones SSM does not know (absent from the map:
/// not registered yet, deregistered, or an ID SSM refuses) wait, noted as skipped.
pub fn on_reachability(start: &Start, reach: &HashMap<HostId, Reachability>) -> HostStep {
    let reason = match reach.get(&start.record.host) {
        Some(Reachability::Online) => return HostStep::Send,
        Some(Reachability::Offline(status)) => {
            format!("offline, waiting (SSM ping status {status})")
        }
        Some(Reachability::Unknown) | None => {
            "offline, waiting (not registered with Systems Manager)".into()
        }
    };
    HostStep::Wait(HostNote::new(&start.record.host, reason))
}

/// Whether a host that waits must be marked for the reconcile pass: one at rest (IDLE or
/// DEPLOYED). A failed host is in the pass's index already, by its state.
pub fn mark_waiting(start: &Start) -> bool {
    matches!(
        start.record.state.kind(),
        state::record::StateKind::Idle | state::record::StateKind::Deployed
    )
}

/// The alert for a waiting host: only once its certificate has under a day left (expired
/// certificates are alerted by the plan, whatever the host does), once per episode.
pub fn waiting_alert(start: &Start, note: &HostNote, now: OffsetDateTime) -> Option<HostAlert> {
    match alert_due(&start.record, true, now)? {
        AlertLevel::Urgent => Some(HostAlert {
            host: start.record.host.clone(),
            level: AlertLevel::Urgent,
            alert: Alert {
                host: Some(start.record.host.to_string()),
                ..Alert::new(
                    AlertKind::ExpiresSoon,
                    format!(
                        "the certificate expires within a day and the host cannot be reached: {}",
                        note.reason
                    ),
                )
            },
        }),
        _ => None,
    }
}

/// What to do after SendCommand.
#[derive(Debug, Clone)]
pub enum AfterSend {
    /// Record the command on the host's item.
    Record {
        /// The GenerateCsr command.
        command_id: String,
    },
    /// Fail the rotation (it is retried after its backoff).
    Fail(RotationFailure),
    /// SSM is throttling (or failed in a way worth retrying) even after the SDK's retries: hand
    /// the claim back without counting an attempt (FAILED with the attempts unchanged and the
    /// retry due at once, so the next pass starts it again) and go on with the other hosts.
    Release(RotationFailure),
}

/// Decides after SendCommand answered.
pub fn after_send(result: Result<String, AwsError>) -> AfterSend {
    match result {
        Ok(command_id) => AfterSend::Record { command_id },
        Err(e) => {
            let failure = RotationFailure::new(
                FailureStage::RequestCsr,
                format!("could not send GenerateCsr: {e}"),
            );
            if e.retryable {
                AfterSend::Release(RotationFailure {
                    reason: format!("left for the next pass: {}", failure.reason),
                    ..failure
                })
            } else {
                AfterSend::Fail(failure)
            }
        }
    }
}

/// After failing a claimed rotation: failed, also when someone else moved the host first;
/// otherwise the store's error.
pub fn after_failing<T>(
    start: &Start,
    failure: &RotationFailure,
    result: Result<T, StoreError>,
) -> Result<Started, CheckError> {
    match result {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(Started::Failed(HostNote::new(
            &start.record.host,
            &failure.reason,
        ))),
        Err(e) => Err(e.into()),
    }
}

/// After handing the claim back: skipped (left for the next pass), also when someone else moved
/// the host first; otherwise the store's error (the reconciler fails the rotation after the
/// in-flight timeout if even this write is lost).
pub fn after_release<T>(
    start: &Start,
    failure: &RotationFailure,
    result: Result<T, StoreError>,
) -> Result<Started, CheckError> {
    match result {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(Started::Skipped(HostNote::new(
            &start.record.host,
            &failure.reason,
        ))),
        Err(e) => Err(e.into()),
    }
}

/// After recording the command: started, also when the rotation moved on before the record
/// (its result event was faster); otherwise the store's error.
pub fn after_recording<T>(
    start: &Start,
    result: Result<T, StoreError>,
) -> Result<Started, CheckError> {
    match result {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(Started::Yes {
            host: start.record.host.to_string(),
            retry: start.is_retry(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::*;
    use state::plan::DueReason;
    use state::record::HostOverrides;
    use time::Duration;

    fn start(n: u32) -> Start {
        Start::new(
            deployed(n, NOW - Duration::days(6)),
            PlanItem::Due(DueReason::RenewalWindow),
            &config(),
            NOW,
        )
    }

    fn reach(n: u32, r: Reachability) -> HashMap<HostId, Reachability> {
        HashMap::from([(host(n), r)])
    }

    fn wait_reason(step: HostStep) -> String {
        match step {
            HostStep::Wait(note) => {
                assert_eq!(note.host, host(1).to_string());
                note.reason
            }
            HostStep::Send => panic!("expected to wait"),
        }
    }

    #[test]
    fn a_start_carries_the_rotation_and_the_hosts_settings() {
        let config = config();
        let s = start(1);
        assert_eq!(s.rotation, RotationId::new(&host(1), 3, NOW));
        assert_eq!(s.csr.key_path, config.host_defaults.key_path);
        assert_eq!(s.csr.csr_path, config.host_defaults.csr_path);
        assert_eq!(s.csr.key_algorithm, KeyAlgorithm::Rsa2048);
        assert!(!s.is_retry());
        let rotations = [(host(1), s.rotation.clone())];
        let b = s.csr.batch(&rotations);
        assert_eq!(
            b.rotations_parameter(),
            format!("{}={}", host(1), s.rotation)
        );
        assert_eq!(b.key_path, &config.host_defaults.key_path);
    }

    fn batches(work: &[Work]) -> Vec<Vec<String>> {
        work.iter()
            .filter_map(|w| match w {
                Work::Batch(_) => Some(w.hosts()),
                Work::Wait(..) => None,
            })
            .collect()
    }

    #[test]
    fn online_hosts_go_in_batches_of_fifty_by_their_settings_and_offline_ones_wait() {
        let mut starts: Vec<Start> = (1..=120).map(start).collect();
        // Host 7 keeps its keys elsewhere: it cannot share the others' command.
        let mut odd = enrolled(7);
        odd.overrides.key_path = Some(HostPath::parse("keyPath", "/opt/keys").unwrap());
        starts[6] = Start::new(odd, PlanItem::Retry { attempt: 1 }, &config(), NOW);
        let mut reach: HashMap<HostId, Reachability> =
            (1..=120).map(|n| (host(n), Reachability::Online)).collect();
        reach.insert(host(3), Reachability::Offline("ConnectionLost".into()));
        reach.remove(&host(4));
        let work = work(starts, &reach, 50);
        let waiting: Vec<Vec<String>> = work
            .iter()
            .filter(|w| matches!(w, Work::Wait(..)))
            .map(Work::hosts)
            .collect();
        assert_eq!(waiting, [[host(3).to_string()], [host(4).to_string()]]);
        let b = batches(&work);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [50, 1, 50, 17]);
        assert_eq!(b[1], [host(7).to_string()]);
        assert_eq!(
            b[0][..3],
            [
                host(1).to_string(),
                host(2).to_string(),
                host(5).to_string()
            ]
        );
        // Every online host exactly once, in the plan's order within its settings.
        let mut all: Vec<String> = b.concat();
        assert_eq!(all.len(), 118);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 118);
        // A batch of hosts with one settings shares them; a smaller size is honoured.
        for w in &work {
            if let Work::Batch(starts) = w {
                assert!(starts.iter().all(|s| s.csr == starts[0].csr));
            }
        }
        let reach_all: HashMap<HostId, Reachability> =
            (1..=5).map(|n| (host(n), Reachability::Online)).collect();
        let small = work_of(5, &reach_all, 2);
        assert_eq!(
            batches(&small).iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            batches(&work_of(5, &reach_all, 0)).len(),
            5,
            "at least one host a command"
        );
        assert_eq!(batches(&work_of(5, &reach_all, 500))[0].len(), 5);
    }

    fn work_of(n: u32, reach: &HashMap<HostId, Reachability>, size: usize) -> Vec<Work> {
        work((1..=n).map(start).collect(), reach, size)
    }

    #[test]
    fn overrides_choose_the_key_path_and_algorithm_and_unversioned_hosts_use_zero() {
        let mut record = enrolled(2);
        record.overrides = HostOverrides {
            key_path: Some(HostPath::parse("keyPath", "/opt/app/keys").unwrap()),
            key_algorithm: Some(KeyAlgorithm::EcP384),
            ..HostOverrides::default()
        };
        let s = Start::new(record, PlanItem::Retry { attempt: 2 }, &config(), NOW);
        assert_eq!(s.rotation, RotationId::new(&host(2), 0, NOW));
        assert_eq!(s.csr.key_path.as_str(), "/opt/app/keys");
        assert_eq!(s.csr.key_algorithm, KeyAlgorithm::EcP384);
        assert!(s.is_retry());
    }

    #[test]
    fn after_the_claim() {
        let s = start(1);
        let claimed = HostRecord {
            version: Some(4),
            ..s.record.clone()
        };
        assert_eq!(
            after_claim(&s, Ok(claimed.clone())).unwrap(),
            Claim::Won(Box::new(claimed))
        );
        assert_eq!(
            after_claim(&s, Err(conflict(1))).unwrap(),
            Claim::Lost(Started::Skipped(HostNote::new(
                host(1),
                "another run started this rotation"
            )))
        );
        assert!(matches!(
            after_claim(&s, Err(backend_error("ThrottlingException", true))),
            Err(CheckError::Store(e)) if e.is_retryable()
        ));
    }

    #[test]
    fn online_hosts_get_generate_csr() {
        assert!(matches!(
            on_reachability(&start(1), &reach(1, Reachability::Online)),
            HostStep::Send
        ));
    }

    #[test]
    fn offline_hosts_wait_with_their_ping_status() {
        let step = on_reachability(
            &start(1),
            &reach(1, Reachability::Offline("ConnectionLost".into())),
        );
        assert_eq!(
            wait_reason(step),
            "offline, waiting (SSM ping status ConnectionLost)"
        );
    }

    #[test]
    fn unregistered_hosts_wait_whether_unknown_or_missing() {
        for map in [
            reach(1, Reachability::Unknown),
            reach(2, Reachability::Online),
        ] {
            assert_eq!(
                wait_reason(on_reachability(&start(1), &map)),
                "offline, waiting (not registered with Systems Manager)"
            );
        }
    }

    #[test]
    fn a_waiting_host_is_alerted_only_under_a_day_from_expiry_and_once() {
        let note = HostNote::new(host(1), "offline, waiting (SSM ping status ConnectionLost)");
        // Deployed 6 days ago, 7-day certificate: a day left, not under.
        assert_eq!(waiting_alert(&start(1), &note, NOW), None);
        let mut s = start(1);
        let na = s.record.current.as_ref().unwrap().not_after;
        let a = waiting_alert(&s, &note, na - Duration::hours(2)).unwrap();
        assert_eq!(a.level, AlertLevel::Urgent);
        assert_eq!(a.alert.kind, AlertKind::ExpiresSoon);
        assert!(
            a.alert.reason.ends_with("ConnectionLost)"),
            "{}",
            a.alert.reason
        );
        s.record.attempts.alerted = Some(AlertLevel::Urgent);
        assert_eq!(waiting_alert(&s, &note, na - Duration::hours(2)), None);
        // Expired: the plan's alert, not this one.
        s.record.attempts.alerted = None;
        assert_eq!(waiting_alert(&s, &note, na + Duration::hours(2)), None);
    }

    #[test]
    fn a_sent_command_is_recorded() {
        assert!(matches!(
            after_send(Ok("cmd-1".into())),
            AfterSend::Record { command_id } if command_id == "cmd-1"
        ));
    }

    #[test]
    fn a_refused_send_fails_the_rotation() {
        match after_send(Err(aws_error("InvalidDocument", false))) {
            AfterSend::Fail(f) => {
                assert_eq!(f.stage, FailureStage::RequestCsr);
                assert!(
                    f.reason.starts_with(
                        "could not send GenerateCsr: SSM SendCommand failed (InvalidDocument)"
                    ),
                    "{}",
                    f.reason
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_throttled_send_leaves_the_host_for_the_next_pass() {
        match after_send(Err(aws_error("ThrottlingException", true))) {
            AfterSend::Release(f) => {
                assert_eq!(f.stage, FailureStage::RequestCsr);
                assert!(
                    f.reason.starts_with("left for the next pass: "),
                    "{}",
                    f.reason
                );
                assert!(f.reason.contains("ThrottlingException"), "{}", f.reason);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn after_failing_the_rotation() {
        let s = start(1);
        let f = RotationFailure::new(FailureStage::RequestCsr, "offline");
        let failed = Started::Failed(HostNote::new(host(1), "offline"));
        assert_eq!(after_failing(&s, &f, Ok(())).unwrap(), failed);
        assert_eq!(
            after_failing::<()>(&s, &f, Err(conflict(1))).unwrap(),
            failed
        );
        assert!(matches!(
            after_failing::<()>(&s, &f, Err(backend_error("AccessDeniedException", false))),
            Err(CheckError::Store(_))
        ));
    }

    #[test]
    fn after_handing_the_claim_back() {
        let s = start(1);
        let f = RotationFailure::new(FailureStage::RequestCsr, "left for the next pass: x");
        let skipped = Started::Skipped(HostNote::new(host(1), "left for the next pass: x"));
        assert_eq!(after_release(&s, &f, Ok(())).unwrap(), skipped);
        assert_eq!(
            after_release::<()>(&s, &f, Err(conflict(1))).unwrap(),
            skipped
        );
        assert!(matches!(
            after_release::<()>(&s, &f, Err(backend_error("AccessDeniedException", false))),
            Err(CheckError::Store(_))
        ));
    }

    #[test]
    fn after_recording_the_command() {
        let s = start(1);
        let yes = Started::Yes {
            host: host(1).to_string(),
            retry: false,
        };
        assert_eq!(after_recording(&s, Ok(())).unwrap(), yes);
        assert_eq!(after_recording::<()>(&s, Err(conflict(1))).unwrap(), yes);
        assert!(matches!(
            after_recording::<()>(&s, Err(backend_error("InternalServerError", true))),
            Err(CheckError::Store(_))
        ));
        let retry = Start::new(
            failed(2, 1, NOW),
            PlanItem::Retry { attempt: 2 },
            &config(),
            NOW,
        );
        assert_eq!(
            after_recording(&retry, Ok(())).unwrap(),
            Started::Yes {
                host: host(2).to_string(),
                retry: true
            }
        );
    }
}
