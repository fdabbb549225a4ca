//! DynamoDB: the kit's store behind per-call latency, throttling, 1 MB scan pages and request
//! units.
//!
//! Why a wrapper: the kit's store already carries out the rules as DynamoDB's conditional writes
//! do; what the simulator adds is what a call costs (time, request units, throttling) and a
//! running count of hosts by state (for the chart) without reading 100,000 items per sample.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use state::plan::DueWindow;
use state::ports::{FleetReader, FleetScan, PendingCertificates, Transitions};
use state::record::StateKind;
use state::rules::Change;
use state::{HostId, HostRecord, StoreError};
use time::OffsetDateTime;

use crate::kit::MemoryStore;
use crate::sim::env::Env;

/// Bytes of one scan page.
const PAGE_BYTES: f64 = 1_048_576.0;

/// The store with DynamoDB's costs. Clones share it.
#[derive(Debug, Clone)]
pub struct SimStore {
    /// The kit's store.
    pub inner: MemoryStore,
    env: Env,
    states: Arc<Mutex<StateCounts>>,
}

/// Hosts by state, kept up to date on every write.
#[derive(Debug, Default, Clone)]
pub struct StateCounts {
    by_host: BTreeMap<HostId, StateKind>,
    counts: BTreeMap<&'static str, i64>,
    /// Hosts DEPLOYED by the pipeline at least once.
    pub ever_deployed: std::collections::BTreeSet<HostId>,
    /// When the last of them was first DEPLOYED.
    pub last_first_deployed: Option<OffsetDateTime>,
    /// Rotations that reached DEPLOYED.
    pub deployed_rotations: u64,
    /// Rotations FAILED for throttling.
    pub failed_throttled: u64,
    /// Rotations FAILED for any reason.
    pub failed: u64,
    /// Claims handed back for the next pass (SendCommand throttled).
    pub released: u64,
}

impl StateCounts {
    /// Hosts in each state.
    pub fn counts(&self) -> &BTreeMap<&'static str, i64> {
        &self.counts
    }

    /// The state of `host`.
    pub fn of(&self, host: &HostId) -> Option<StateKind> {
        self.by_host.get(host).copied()
    }

    fn set(&mut self, host: &HostId, kind: StateKind) {
        if let Some(old) = self.by_host.insert(host.clone(), kind) {
            *self.counts.entry(old.as_str()).or_default() -= 1;
        }
        *self.counts.entry(kind.as_str()).or_default() += 1;
    }
}

impl SimStore {
    /// `inner` with the costs of `env`'s scenario.
    pub fn new(inner: MemoryStore, env: Env) -> Self {
        SimStore {
            inner,
            env,
            states: Arc::default(),
        }
    }

    /// Records `host` as in `kind` (at enrolment).
    pub fn note_state(&self, host: &HostId, kind: StateKind) {
        self.states().set(host, kind);
    }

    /// Hosts by state.
    pub fn states(&self) -> MutexGuard<'_, StateCounts> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn latency(&self) -> f64 {
        self.env.lock().params.ddb_latency_ms
    }

    /// Throttled after the SDK's retries, at the scenario's rate.
    fn throttle(&self, op: &'static str) -> Result<(), StoreError> {
        let share = self.env.lock().params.ddb_throttle;
        if share > 0.0 && self.env.draw() < share {
            self.env.throttled_after_retries("DynamoDB", op);
            return Err(StoreError::Backend {
                operation: op,
                code: Some("ProvisionedThroughputExceededException".into()),
                message: "Throughput exceeds the current capacity (simulated)".into(),
                retryable: true,
                source: "simulated throttling".into(),
            });
        }
        Ok(())
    }

    /// A scan of every item: its pages, in `segments` parallel segments.
    fn scan_cost(&self, op: &str) -> Option<()> {
        let items = self.inner.len() as f64;
        let (bytes, latency, segments) = {
            let s = self.env.lock();
            (
                s.params.ddb_item_bytes,
                s.params.ddb_latency_ms,
                s.params.scan_segments.max(1.0),
            )
        };
        let pages = ((items * bytes) / PAGE_BYTES).ceil().max(1.0);
        for _ in 0..pages as u64 {
            self.env
                .call("DynamoDB", op, latency / segments, false)
                .ok()?;
        }
        // Eventually consistent: half a unit per 4 KB read.
        self.env.lock().counts.ddb_read_units += items * bytes / 4096.0 / 2.0;
        Some(())
    }
}

impl FleetReader for SimStore {
    async fn candidates(&self, window: DueWindow) -> Result<FleetScan, StoreError> {
        if self.scan_cost("Scan").is_none() {
            return std::future::pending().await;
        }
        self.throttle("Scan")?;
        self.inner.candidates(window).await
    }

    async fn all_hosts(&self) -> Result<FleetScan, StoreError> {
        if self.scan_cost("Scan").is_none() {
            return std::future::pending().await;
        }
        self.throttle("Scan")?;
        self.inner.all_hosts().await
    }

    async fn in_flight(&self) -> Result<FleetScan, StoreError> {
        let latency = self.latency();
        crate::sim_call!(self.env, "DynamoDB", "Query", latency, false);
        self.throttle("Query")?;
        let scan = self.inner.in_flight().await?;
        let bytes = self.env.lock().params.ddb_item_bytes;
        let n = scan.records.len() as f64;
        let pages = ((n * bytes) / PAGE_BYTES).floor() as u64;
        for _ in 0..pages {
            crate::sim_call!(self.env, "DynamoDB", "Query", latency, false);
        }
        self.env.lock().counts.ddb_read_units += (n * bytes / 4096.0 / 2.0).max(0.5);
        Ok(scan)
    }

    async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let latency = self.latency();
        crate::sim_call!(self.env, "DynamoDB", "GetItem", latency, true);
        self.throttle("GetItem")?;
        self.env.lock().counts.ddb_read_units += 1.0;
        self.inner.host(host).await
    }
}

impl Transitions for SimStore {
    async fn transition(
        &self,
        host: &HostId,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let latency = self.latency();
        crate::sim_call!(self.env, "DynamoDB", "UpdateItem", latency, true);
        self.throttle("UpdateItem")?;
        // A conditional write is charged its units whether it holds or not.
        self.env.lock().counts.ddb_write_units += 1.0;
        let record = self.inner.transition(host, change, now).await?;
        let kind = record.state.kind();
        let mut states = self.states();
        let before = states.of(host);
        states.set(host, kind);
        if before != Some(kind) {
            match &record.state {
                state::record::RotationState::Deployed => {
                    states.deployed_rotations += 1;
                    if states.ever_deployed.insert(host.clone()) {
                        states.last_first_deployed = Some(now);
                    }
                }
                // A claim handed back for the next pass (SendCommand throttled past the run's
                // waits) is written as FAILED with no attempt counted and no alert: not a
                // failed rotation.
                state::record::RotationState::Failed { reason, .. }
                    if reason.starts_with("left for the next pass") =>
                {
                    states.released += 1;
                }
                state::record::RotationState::Failed { reason, .. } => {
                    states.failed += 1;
                    let r = reason.to_lowercase();
                    if r.contains("throttl") || r.contains("rate exceeded") {
                        states.failed_throttled += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(record)
    }
}

impl PendingCertificates for SimStore {
    async fn host_waiting_for(&self, cert_arn: &str) -> Result<Option<HostId>, StoreError> {
        let latency = self.latency();
        crate::sim_call!(self.env, "DynamoDB", "Query", latency, false);
        self.throttle("Query")?;
        self.env.lock().counts.ddb_read_units += 0.5;
        self.inner.host_waiting_for(cert_arn).await
    }
}
