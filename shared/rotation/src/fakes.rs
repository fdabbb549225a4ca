//! Enabled by the `fakes` feature, for the function crates' shell tests only (the tests crate has the
//! full in-memory kit, but it depends on the functions, so they cannot use it).
//!
//! In-memory ports for the shell tests: a store that carries out the rules' pure model, and a
//! host agent, a CA and alerts that answer what the test scripted. One error can be scripted
//! per store operation; everything called is counted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::alerts::{Alert, Alerts};
use crate::ca::{CertificateAuthority, Fetched};
use crate::error::AwsError;
use crate::hosts::{CsrBatch, DeployBatch, Document, HostAgent, Invocation, Reachability};
use state::plan::DueWindow;
use state::ports::{FleetReader, FleetScan, PendingCertificates, StoreError, Transitions};
use state::rules::{apply_to_record, Change};
use state::{HostId, HostRecord};
use time::OffsetDateTime;

/// An error a store or service call answers with.
pub fn store_error(retryable: bool) -> StoreError {
    StoreError::Backend {
        operation: "UpdateItem",
        code: Some(code(retryable).into()),
        message: "scripted".into(),
        retryable,
        source: "scripted".into(),
    }
}

/// An AWS error, retryable or not.
pub fn aws_error(retryable: bool) -> AwsError {
    AwsError {
        service: "Fake",
        operation: "Call",
        code: Some(code(retryable).into()),
        message: "scripted".into(),
        retryable,
        source: None,
    }
}

fn code(retryable: bool) -> &'static str {
    if retryable {
        "ThrottlingException"
    } else {
        "AccessDeniedException"
    }
}

/// The state table.
#[derive(Default)]
pub struct Store {
    /// The records.
    pub records: Mutex<HashMap<HostId, HostRecord>>,
    /// The next `host` read answers this.
    pub read_error: Mutex<Option<StoreError>>,
    /// The next transition named so (`Change::name`) answers this.
    pub write_errors: Mutex<HashMap<&'static str, StoreError>>,
}

impl Store {
    /// A store holding `record`.
    pub fn with(record: HostRecord) -> Store {
        let store = Store::default();
        store
            .records
            .lock()
            .unwrap()
            .insert(record.host.clone(), record);
        store
    }

    /// `host`'s record now.
    pub fn record(&self, host: &HostId) -> HostRecord {
        self.records.lock().unwrap()[host].clone()
    }
}

impl FleetReader for Store {
    async fn candidates(&self, _window: DueWindow) -> Result<FleetScan, StoreError> {
        Ok(FleetScan::default())
    }

    async fn all_hosts(&self) -> Result<FleetScan, StoreError> {
        Ok(FleetScan::default())
    }

    async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        if let Some(e) = self.read_error.lock().unwrap().take() {
            return Err(e);
        }
        Ok(self.records.lock().unwrap().get(host).cloned())
    }
}

impl Transitions for Store {
    async fn transition(
        &self,
        host: &HostId,
        change: Change,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        if let Some(e) = self.write_errors.lock().unwrap().remove(change.name()) {
            return Err(e);
        }
        let mut records = self.records.lock().unwrap();
        let current = records
            .get(host)
            .ok_or(StoreError::NotFound(host.clone()))?;
        let next = apply_to_record(current, &change, now)?;
        records.insert(host.clone(), next.clone());
        Ok(next)
    }
}

impl PendingCertificates for Store {
    async fn host_waiting_for(&self, cert_arn: &str) -> Result<Option<HostId>, StoreError> {
        if let Some(e) = self.read_error.lock().unwrap().take() {
            return Err(e);
        }
        let records = self.records.lock().unwrap();
        Ok(records.values().find_map(|r| match &r.state {
            // As the index: the pending certificate stays recorded while DEPLOYING.
            state::RotationState::Issuing { cert_arn: a, .. }
            | state::RotationState::Deploying { cert_arn: a, .. }
                if a == cert_arn =>
            {
                Some(r.host.clone())
            }
            _ => None,
        }))
    }
}

/// Run Command: invocations answer what was scripted (else `Pending`).
#[derive(Default)]
pub struct Hosts {
    /// Answers to `invocation`, in order.
    pub invocations: Mutex<VecDeque<Result<Invocation, AwsError>>>,
    /// Answers to `deploy`, in order (else a command ID).
    pub deploys: Mutex<VecDeque<Result<String, AwsError>>>,
    /// Answers to `command_for`, in order (else none found).
    pub found: Mutex<VecDeque<Result<Option<String>, AwsError>>>,
    /// Calls made, by name.
    pub calls: Mutex<Vec<&'static str>>,
}

impl HostAgent for Hosts {
    async fn reachability(
        &self,
        _hosts: &[HostId],
    ) -> Result<HashMap<HostId, Reachability>, AwsError> {
        Ok(HashMap::new())
    }

    async fn request_csrs(&self, _batch: &CsrBatch<'_>) -> Result<String, AwsError> {
        self.calls.lock().unwrap().push("request_csr");
        Ok("csr-command".into())
    }

    async fn deploy(&self, _batch: &DeployBatch<'_>) -> Result<String, AwsError> {
        self.calls.lock().unwrap().push("deploy");
        let next = self.deploys.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Ok("deploy-command".into()))
    }

    async fn invocation(&self, _command_id: &str, _host: &HostId) -> Result<Invocation, AwsError> {
        self.calls.lock().unwrap().push("invocation");
        let next = self.invocations.lock().unwrap().pop_front();
        next.unwrap_or(Ok(Invocation::Pending))
    }

    async fn command_for(
        &self,
        _host: &HostId,
        _document: Document,
        _rotation: &state::RotationId,
    ) -> Result<Option<String>, AwsError> {
        self.calls.lock().unwrap().push("command_for");
        let next = self.found.lock().unwrap().pop_front();
        next.unwrap_or(Ok(None))
    }
}

/// Private CA: answers what was scripted.
#[derive(Default)]
pub struct Ca {
    /// Answers to `issue`, in order (else an ARN).
    pub issues: Mutex<VecDeque<Result<String, AwsError>>>,
    /// Answers to `fetch`, in order (else `Pending`).
    pub fetches: Mutex<VecDeque<Result<Fetched, AwsError>>>,
    /// Idempotency tokens `issue` was called with.
    pub tokens: Mutex<Vec<String>>,
    /// Answers to `revoke`, in order (else `Ok`).
    pub revokes: Mutex<VecDeque<Result<(), AwsError>>>,
    /// The (serial, reason) pairs `revoke` was called with.
    pub revoked: Mutex<Vec<(String, String)>>,
}

impl CertificateAuthority for Ca {
    async fn issue(
        &self,
        _csr_pem: &str,
        _validity_days: i64,
        idempotency_token: &str,
    ) -> Result<String, AwsError> {
        self.tokens
            .lock()
            .unwrap()
            .push(idempotency_token.to_owned());
        let next = self.issues.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Ok("arn:fake:certificate".into()))
    }

    async fn fetch(&self, _cert_arn: &str) -> Result<Fetched, AwsError> {
        let next = self.fetches.lock().unwrap().pop_front();
        next.unwrap_or(Ok(Fetched::Pending))
    }

    async fn ca_certificate(&self) -> Result<String, AwsError> {
        Err(aws_error(false))
    }

    async fn revoke(&self, serial: &str, reason: &str) -> Result<(), AwsError> {
        self.revoked
            .lock()
            .unwrap()
            .push((serial.to_owned(), reason.to_owned()));
        let next = self.revokes.lock().unwrap().pop_front();
        next.unwrap_or(Ok(()))
    }
}

/// Alerts raised.
#[derive(Default)]
pub struct Inbox {
    /// Every alert.
    pub alerts: Mutex<Vec<Alert>>,
}

impl Alerts for Inbox {
    async fn raise(&self, alert: &Alert) -> Result<(), AwsError> {
        self.alerts.lock().unwrap().push(alert.clone());
        Ok(())
    }
}
