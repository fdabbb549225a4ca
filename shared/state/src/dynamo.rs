//! The DynamoDB repository: item mapping, paginated parallel scans, and conditional transitions.
//!
//! Attribute names keep the original sample's (`hostID`, `certPath`, `keyPath`, `cacertPath`,
//! `signinghelperPath`, `expiry`, `serial`, `renewalDate`, `status`) so its items are read as
//! they are; everything this service adds has its own name. Every transition is an `UpdateItem`
//! with a condition on the state (and rotation, command or version) it expects, so concurrent
//! schedulers and duplicated events cannot both win. Listing the fleet scans every page, in
//! parallel segments, with a server-side filter that drops hosts provably not due (deployed
//! hosts whose `renewAt` lies ahead, original-sample rows whose `expiry` lies past the
//! [`DueWindow`]): fewer bytes back, and the pure planner decides on what remains.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use aws_sdk_dynamodb::Client;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::host::{shown, HostId, HostPath, InvalidRow};
use crate::plan::DueWindow;
use crate::ports::{
    CrlLedger, DeploymentRecorder, Enroller, FailOutcome, Failure, FleetReader, FleetScan,
    IssuanceRecorder, RejectedRow, RotationFailer, RotationStarter, StoreError, TransitionConflict,
};
use crate::record::{
    Attempts, DeployedCert, FailureStage, HostOverrides, HostRecord, RotationId, RotationState,
    StateKind,
};

/// Attribute names, in one place.
pub mod attr {
    /// Partition key (original sample).
    pub const HOST_ID: &str = "hostID";
    /// Per-host certificate directory (original sample).
    pub const CERT_PATH: &str = "certPath";
    /// Per-host key directory (original sample).
    pub const KEY_PATH: &str = "keyPath";
    /// Per-host CA chain directory (original sample).
    pub const CACERT_PATH: &str = "cacertPath";
    /// Per-host signing helper directory (original sample).
    pub const SIGNING_HELPER_PATH: &str = "signinghelperPath";
    /// Per-host key algorithm override.
    pub const KEY_ALGORITHM: &str = "keyAlgorithm";
    /// Certificate end of validity, `YYYY-MM-DD HH:MM:SS` UTC (original sample). Removing it forces a rotation.
    pub const EXPIRY: &str = "expiry";
    /// Current certificate serial (original sample).
    pub const SERIAL: &str = "serial";
    /// Renewal date (original sample; we write the renewal point here, human-readable).
    pub const RENEWAL_DATE: &str = "renewalDate";
    /// Original sample's status text (read, never relied on).
    pub const STATUS: &str = "status";
    /// Rotation state (this service).
    pub const STATE: &str = "rotationState";
    /// Optimistic-concurrency version.
    pub const VERSION: &str = "version";
    /// When the state was entered (epoch seconds).
    pub const STATE_SINCE: &str = "stateSince";
    /// The rotation in flight.
    pub const ROTATION_ID: &str = "rotationId";
    /// The SSM command of the current step.
    pub const COMMAND_ID: &str = "commandId";
    /// The certificate being issued or deployed (GSI hash key).
    pub const PENDING_CERT_ARN: &str = "pendingCertArn";
    /// SHA-256 of the CSR's public key.
    pub const KEY_FINGERPRINT: &str = "csrKeyFingerprint";
    /// Pending certificate serial.
    pub const PENDING_SERIAL: &str = "pendingSerial";
    /// Pending certificate NotBefore (RFC 3339).
    pub const PENDING_NOT_BEFORE: &str = "pendingNotBefore";
    /// Pending certificate NotAfter (RFC 3339).
    pub const PENDING_NOT_AFTER: &str = "pendingNotAfter";
    /// Current certificate NotBefore (RFC 3339).
    pub const NOT_BEFORE: &str = "notBefore";
    /// Current certificate NotAfter (RFC 3339).
    pub const NOT_AFTER: &str = "notAfter";
    /// Renewal point (epoch seconds).
    pub const RENEW_AT: &str = "renewAt";
    /// Current certificate ARN.
    pub const CERT_ARN: &str = "certArn";
    /// Failed attempts in this episode.
    pub const ATTEMPTS: &str = "attempts";
    /// Stage of the last failure.
    pub const FAILED_STAGE: &str = "failedStage";
    /// Reason of the last failure.
    pub const FAILURE_REASON: &str = "failureReason";
    /// Earliest retry (epoch seconds).
    pub const NEXT_ATTEMPT_AT: &str = "nextAttemptAt";
    /// Revoked serial.
    pub const REVOKED_SERIAL: &str = "revokedSerial";
}

/// Keys of the service's own items in the table (not hosts): `crl#<CA id>` holds the CRL ledger.
/// A managed-node ID never starts with it, and scans skip these items silently.
pub const SERVICE_KEY_PREFIX: &str = "crl#";

/// The table's shape, as the CloudFormation template defines it.
pub struct TableSchema;

impl TableSchema {
    /// The GSI from a pending certificate ARN to its host (KEYS_ONLY).
    pub const CERT_ARN_INDEX: &str = "pendingCertArn-index";
}

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB-backed state store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    segments: u32,
}

impl DynamoStore {
    /// A store over `table`, scanning with `segments` parallel segments (1 to 64).
    pub fn new(client: Client, table: impl Into<String>, segments: u32) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            segments: segments.clamp(1, 64),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn scan(&self, due_at: Option<DueWindow>) -> Result<FleetScan, StoreError> {
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..self.segments {
            let this = self.clone();
            tasks.spawn(async move { this.scan_segment(segment, due_at).await });
        }
        let mut out = FleetScan::default();
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| StoreError::Backend {
                operation: "Scan",
                retryable: true,
                source: Box::new(e),
            })??;
            out.records.extend(part.records);
            out.rejected.extend(part.rejected);
            out.items_read += part.items_read;
            out.pages += part.pages;
        }
        out.records.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(out)
    }

    async fn scan_segment(
        &self,
        segment: u32,
        due_at: Option<DueWindow>,
    ) -> Result<FleetScan, StoreError> {
        let mut out = FleetScan::default();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take());
            if self.segments > 1 {
                req = req
                    .segment(segment as i32)
                    .total_segments(self.segments as i32);
            }
            if let Some(window) = due_at {
                // A row is left out only when it provably needs nothing at `now`: a deployed
                // host of ours whose renewal point lies ahead, or a hand-made / original-sample
                // row (no renewal point, no state, no NotBefore) whose `YYYY-MM-DD HH:MM:SS`
                // expiry lies past the window. Rows with attributes of the wrong type or shape
                // are kept, so the planner refuses them with a reason instead of the filter
                // hiding them. Comparisons sit behind `attribute_type` so no row compares a
                // number with a string. Cheap tests first: most rows are deployed, not due.
                req = req
                    .filter_expression(
                        "(attribute_type(#ra, :typeN) AND #ra <= :now) \
                         OR attribute_not_exists(#exp) \
                         OR (attribute_exists(#st) AND #st <> :deployed) \
                         OR (NOT attribute_type(#ra, :typeN) AND (attribute_exists(#st) \
                             OR attribute_exists(#nb) OR NOT attribute_type(#exp, :typeS) \
                             OR (attribute_type(#exp, :typeS) AND (#exp <= :dueBy \
                                 OR contains(#exp, :rfc3339) OR NOT begins_with(#exp, :century)))))",
                    )
                    .expression_attribute_names("#exp", attr::EXPIRY)
                    .expression_attribute_names("#st", attr::STATE)
                    .expression_attribute_names("#ra", attr::RENEW_AT)
                    .expression_attribute_names("#nb", attr::NOT_BEFORE)
                    .expression_attribute_values(":deployed", s(StateKind::Deployed.as_str()))
                    .expression_attribute_values(":now", num(window.now.unix_timestamp()))
                    .expression_attribute_values(":typeN", s("N"))
                    .expression_attribute_values(":typeS", s("S"))
                    .expression_attribute_values(
                        ":dueBy",
                        s(&legacy_time(window.unscheduled_due_by)),
                    )
                    // RFC 3339 times (`T` between date and time) do not compare as text with
                    // the legacy format, nor does anything not starting like a year 2000+ date.
                    .expression_attribute_values(":rfc3339", s("T"))
                    .expression_attribute_values(":century", s("2"));
            }
            let page = req.send().await.map_err(|e| backend("Scan", e))?;
            out.pages += 1;
            out.items_read += page.scanned_count().max(0) as u64;
            for item in page.items() {
                if let Some(AttributeValue::S(k)) = item.get(attr::HOST_ID) {
                    if k.starts_with(SERVICE_KEY_PREFIX) {
                        continue;
                    }
                }
                match record_from_item(item) {
                    Ok(r) => out.records.push(r),
                    Err((key, reason)) => {
                        tracing::warn!(host = %key, %reason, "refused table row");
                        out.rejected.push(RejectedRow { key, reason })
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn get(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::HOST_ID, AttributeValue::S(host.as_str().into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => record_from_item(item)
                .map(Some)
                .map_err(|(key, reason)| StoreError::InvalidRow { key, reason }),
        }
    }

    /// Runs one conditional transition and maps the new item back to a record.
    async fn transition(
        &self,
        host: &HostId,
        name: &'static str,
        u: Update,
    ) -> Result<HostRecord, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::HOST_ID, AttributeValue::S(host.as_str().into()))
            .update_expression(u.expression())
            .condition_expression(format!("attribute_exists(#hid) AND ({})", u.condition))
            .expression_attribute_names("#hid", attr::HOST_ID)
            .return_values(ReturnValue::AllNew);
        for (k, v) in u.names {
            req = req.expression_attribute_names(k, v);
        }
        for (k, v) in u.values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                record_from_item(&item)
                    .map_err(|(key, reason)| StoreError::InvalidRow { key, reason })
            }
            Err(e) if is_condition_failure(&e) => Err(TransitionConflict {
                host: host.clone(),
                transition: name,
            }
            .into()),
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}

/// An update expression under construction: `SET` and `REMOVE` clauses plus a condition.
#[derive(Default)]
struct Update {
    set: Vec<String>,
    remove: Vec<String>,
    condition: String,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Update {
    fn new(condition: &str) -> Self {
        Update {
            condition: condition.to_owned(),
            ..Update::default()
        }
    }

    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        if !self.names.iter().any(|(k, _)| *k == placeholder) {
            self.names.push((placeholder.clone(), attribute.to_owned()));
        }
        placeholder
    }

    fn value(mut self, placeholder: &str, v: AttributeValue) -> Self {
        self.values.push((placeholder.to_owned(), v));
        self
    }

    fn cond_names(mut self, attributes: &[&str]) -> Self {
        for a in attributes {
            self.name(a);
        }
        self
    }

    fn set(mut self, attribute: &str, v: AttributeValue) -> Self {
        let n = self.name(attribute);
        let p = format!(":v{}", self.values.len());
        self.set.push(format!("{n} = {p}"));
        self.values.push((p, v));
        self
    }

    fn set_opt(self, attribute: &str, v: Option<AttributeValue>) -> Self {
        match v {
            Some(v) => self.set(attribute, v),
            None => self.remove(&[attribute]),
        }
    }

    fn remove(mut self, attributes: &[&str]) -> Self {
        for a in attributes {
            let n = self.name(a);
            self.remove.push(n);
        }
        self
    }

    /// `version = version + 1` (or 1 for items never written by us), and the state's start time.
    fn bump(mut self, kind: StateKind, now: OffsetDateTime) -> Self {
        let v = self.name(attr::VERSION);
        self.set
            .push(format!("{v} = if_not_exists({v}, :zero) + :one"));
        self.values.push((":zero".into(), num(0)));
        self.values.push((":one".into(), num(1)));
        self.set(attr::STATE, s(kind.as_str()))
            .set(attr::STATE_SINCE, num(now.unix_timestamp()))
    }

    fn expression(&self) -> String {
        let mut e = format!("SET {}", self.set.join(", "));
        if !self.remove.is_empty() {
            e.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        e
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn rfc3339(t: OffsetDateTime) -> AttributeValue {
    s(&t.format(&Rfc3339).unwrap_or_default())
}

/// `YYYY-MM-DD HH:MM:SS` UTC, as the original sample writes `expiry`.
pub fn legacy_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

const IN_FLIGHT_PENDING: [&str; 7] = [
    attr::COMMAND_ID,
    attr::PENDING_CERT_ARN,
    attr::KEY_FINGERPRINT,
    attr::PENDING_SERIAL,
    attr::PENDING_NOT_BEFORE,
    attr::PENDING_NOT_AFTER,
    attr::ROTATION_ID,
];

impl FleetReader for DynamoStore {
    async fn candidates(&self, window: DueWindow) -> Result<FleetScan, StoreError> {
        self.scan(Some(window)).await
    }

    async fn all_hosts(&self) -> Result<FleetScan, StoreError> {
        self.scan(None).await
    }

    async fn host(&self, host: &HostId) -> Result<Option<HostRecord>, StoreError> {
        self.get(host).await
    }
}

impl RotationFailer for DynamoStore {
    async fn fail(
        &self,
        record: &HostRecord,
        failure: Failure,
        now: OffsetDateTime,
    ) -> Result<FailOutcome, StoreError> {
        let kind = record.state.kind();
        if !kind.in_flight() {
            // Only an in-flight rotation can fail; anything else is a stale or duplicated event.
            return Err(TransitionConflict {
                host: record.host.clone(),
                transition: "fail",
            }
            .into());
        }
        let attempts = record.attempts.failed + 1;
        let u = Update::new("#rotationState = :expected AND #rotationId = :rotation")
            .cond_names(&[attr::STATE, attr::ROTATION_ID])
            .value(":expected", s(kind.as_str()))
            .value(
                ":rotation",
                s(record.state.rotation().map(|r| r.as_str()).unwrap_or("")),
            )
            .bump(StateKind::Failed, now)
            .set(attr::ATTEMPTS, num(attempts as i64))
            .set(attr::FAILED_STAGE, s(failure.stage.as_str()))
            .set(attr::FAILURE_REASON, s(&truncate(&failure.reason, 1000)))
            .set(
                attr::NEXT_ATTEMPT_AT,
                num(failure.next_attempt_at.unix_timestamp()),
            )
            .remove(&[
                attr::COMMAND_ID,
                attr::PENDING_CERT_ARN,
                attr::PENDING_SERIAL,
                attr::PENDING_NOT_BEFORE,
                attr::PENDING_NOT_AFTER,
            ]);
        let record = self.transition(&record.host, "fail", u).await?;
        Ok(FailOutcome { record, attempts })
    }
}

impl RotationStarter for DynamoStore {
    async fn start(
        &self,
        record: &HostRecord,
        rotation: &RotationId,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        if record.state.kind().in_flight() {
            return Err(TransitionConflict {
                host: record.host.clone(),
                transition: "start",
            }
            .into());
        }
        let mut u = match record.version {
            Some(v) => {
                Update::new("#version = :expectedVersion").value(":expectedVersion", num(v as i64))
            }
            None => Update::new("attribute_not_exists(#version)"),
        };
        u = u.cond_names(&[attr::VERSION]);
        let u = u
            .bump(StateKind::CsrRequested, now)
            .set(attr::ROTATION_ID, s(rotation.as_str()))
            .remove(&[
                attr::COMMAND_ID,
                attr::PENDING_CERT_ARN,
                attr::KEY_FINGERPRINT,
                attr::PENDING_SERIAL,
                attr::PENDING_NOT_BEFORE,
                attr::PENDING_NOT_AFTER,
            ]);
        self.transition(&record.host, "start a rotation", u).await
    }

    async fn csr_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
    ) -> Result<HostRecord, StoreError> {
        let u = Update::new(
            "#rotationState = :csr AND #rotationId = :rotation AND attribute_not_exists(#commandId)",
        )
        .cond_names(&[attr::STATE, attr::ROTATION_ID, attr::COMMAND_ID])
        .value(":csr", s(StateKind::CsrRequested.as_str()))
        .value(":rotation", s(rotation.as_str()))
        .set(attr::COMMAND_ID, s(command_id));
        self.transition(host, "record the GenerateCsr command", u)
            .await
    }

    async fn revoked(
        &self,
        record: &HostRecord,
        serial: &str,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let u = Update::new("#serial = :serial AND (#rotationState = :deployed OR attribute_not_exists(#rotationState))")
            .cond_names(&[attr::SERIAL, attr::STATE])
            .value(":serial", s(serial))
            .value(":deployed", s(StateKind::Deployed.as_str()))
            .bump(StateKind::Revoked, now)
            .set(attr::REVOKED_SERIAL, s(serial));
        self.transition(&record.host, "mark revoked", u).await
    }
}

impl IssuanceRecorder for DynamoStore {
    async fn issuing(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
        cert_arn: &str,
        key_fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let u = Update::new(
            "#rotationState = :csr AND #rotationId = :rotation AND #commandId = :command",
        )
        .cond_names(&[attr::STATE, attr::ROTATION_ID, attr::COMMAND_ID])
        .value(":csr", s(StateKind::CsrRequested.as_str()))
        .value(":rotation", s(rotation.as_str()))
        .value(":command", s(command_id))
        .bump(StateKind::Issuing, now)
        .set(attr::PENDING_CERT_ARN, s(cert_arn))
        .set(attr::KEY_FINGERPRINT, s(key_fingerprint))
        .remove(&[attr::COMMAND_ID]);
        self.transition(host, "record issuance", u).await
    }
}

impl DeploymentRecorder for DynamoStore {
    async fn host_waiting_for(&self, cert_arn: &str) -> Result<Option<HostId>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TableSchema::CERT_ARN_INDEX)
            .key_condition_expression("#arn = :arn")
            .expression_attribute_names("#arn", attr::PENDING_CERT_ARN)
            .expression_attribute_values(":arn", s(cert_arn))
            .select(Select::AllProjectedAttributes)
            .send()
            .await
            .map_err(|e| backend("Query", e))?;
        let mut hosts = out
            .items()
            .iter()
            .filter_map(|i| i.get(attr::HOST_ID).and_then(|v| v.as_s().ok()))
            .filter_map(|h| HostId::parse(h).ok());
        Ok(hosts.next())
    }

    async fn deploying(
        &self,
        host: &HostId,
        rotation: &RotationId,
        cert_arn: &str,
        pending: &DeployedCert,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let u = Update::new(
            "#rotationState = :issuing AND #rotationId = :rotation AND #pendingCertArn = :arn",
        )
        .cond_names(&[attr::STATE, attr::ROTATION_ID, attr::PENDING_CERT_ARN])
        .value(":issuing", s(StateKind::Issuing.as_str()))
        .value(":rotation", s(rotation.as_str()))
        .value(":arn", s(cert_arn))
        .bump(StateKind::Deploying, now)
        .set_opt(attr::PENDING_SERIAL, pending.serial.as_deref().map(s))
        .set_opt(attr::PENDING_NOT_BEFORE, pending.not_before.map(rfc3339))
        .set(attr::PENDING_NOT_AFTER, rfc3339(pending.not_after))
        .remove(&[attr::COMMAND_ID]);
        self.transition(host, "begin deployment", u).await
    }

    async fn deploy_requested(
        &self,
        host: &HostId,
        rotation: &RotationId,
        command_id: &str,
    ) -> Result<HostRecord, StoreError> {
        let u = Update::new(
            "#rotationState = :deploying AND #rotationId = :rotation AND attribute_not_exists(#commandId)",
        )
        .cond_names(&[attr::STATE, attr::ROTATION_ID, attr::COMMAND_ID])
        .value(":deploying", s(StateKind::Deploying.as_str()))
        .value(":rotation", s(rotation.as_str()))
        .set(attr::COMMAND_ID, s(command_id));
        self.transition(host, "record the DeployCert command", u)
            .await
    }

    async fn deployed(
        &self,
        host: &HostId,
        command_id: &str,
        cert: &DeployedCert,
        now: OffsetDateTime,
    ) -> Result<HostRecord, StoreError> {
        let renew_at = cert.renew_at.unwrap_or(cert.not_after);
        let u = Update::new("#rotationState = :deploying AND #commandId = :command")
            .cond_names(&[attr::STATE, attr::COMMAND_ID])
            .value(":deploying", s(StateKind::Deploying.as_str()))
            .value(":command", s(command_id))
            .bump(StateKind::Deployed, now)
            .set_opt(attr::SERIAL, cert.serial.as_deref().map(s))
            .set_opt(attr::NOT_BEFORE, cert.not_before.map(rfc3339))
            .set(attr::NOT_AFTER, rfc3339(cert.not_after))
            .set(attr::EXPIRY, s(&legacy_time(cert.not_after)))
            .set(attr::RENEW_AT, num(renew_at.unix_timestamp()))
            .set(attr::RENEWAL_DATE, s(&legacy_time(renew_at)))
            .set_opt(attr::CERT_ARN, cert.cert_arn.as_deref().map(s))
            .remove(&IN_FLIGHT_PENDING)
            .remove(&[
                attr::ATTEMPTS,
                attr::FAILED_STAGE,
                attr::FAILURE_REASON,
                attr::NEXT_ATTEMPT_AT,
                attr::REVOKED_SERIAL,
            ]);
        self.transition(host, "complete deployment", u).await
    }
}

impl Enroller for DynamoStore {
    async fn enrol(&self, host: &HostId, overrides: &HostOverrides) -> Result<(), StoreError> {
        let mut item = Item::new();
        item.insert(attr::HOST_ID.into(), s(host.as_str()));
        let paths = [
            (attr::CERT_PATH, &overrides.cert_path),
            (attr::KEY_PATH, &overrides.key_path),
            (attr::CACERT_PATH, &overrides.cacert_path),
            (attr::SIGNING_HELPER_PATH, &overrides.signing_helper_path),
        ];
        for (name, value) in paths {
            if let Some(p) = value {
                item.insert(name.into(), s(p.as_str()));
            }
        }
        if let Some(k) = overrides.key_algorithm {
            item.insert(attr::KEY_ALGORITHM.into(), s(k.as_str()));
        }
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#hid)")
            .expression_attribute_names("#hid", attr::HOST_ID)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(TransitionConflict {
                host: host.clone(),
                transition: "enrol (already enrolled)",
            }
            .into()),
            Err(e) => Err(backend("PutItem", e)),
        }
    }
}

impl CrlLedger for DynamoStore {
    async fn last_crl_number(&self, ca_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::HOST_ID, s(&format!("{SERVICE_KEY_PREFIX}{ca_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("crlNumber"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    async fn record_crl_number(
        &self,
        ca_id: &str,
        previous: Option<&str>,
        number: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(attr::HOST_ID, s(&format!("{SERVICE_KEY_PREFIX}{ca_id}")))
            .update_expression("SET #n = :n, #at = :at")
            .expression_attribute_names("#n", "crlNumber")
            .expression_attribute_names("#at", "importedAt")
            .expression_attribute_values(":n", s(number))
            .expression_attribute_values(":at", num(now.unix_timestamp()));
        req = match previous {
            Some(p) => req
                .condition_expression("#n = :prev")
                .expression_attribute_values(":prev", s(p)),
            None => req.condition_expression("attribute_not_exists(#n)"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(StoreError::Backend {
                operation: "UpdateItem",
                retryable: true,
                source: format!("the CRL ledger of {ca_id} moved concurrently").into(),
            }),
            Err(e) => Err(backend("UpdateItem", e)),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

fn backend<E, R>(operation: &'static str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionConflictException"
            )
        ),
        _ => false,
    };
    StoreError::Backend {
        operation,
        retryable,
        source: Box::new(e),
    }
}

// ---- item → record -------------------------------------------------------------------------

/// Maps an item to a validated record, or says why it is refused (with the escaped key).
pub fn record_from_item(item: &Item) -> Result<HostRecord, (String, InvalidRow)> {
    let key = match item.get(attr::HOST_ID) {
        Some(AttributeValue::S(k)) => k.clone(),
        _ => {
            return Err((
                "(no string hostID)".into(),
                InvalidRow::WrongType {
                    attribute: attr::HOST_ID,
                    expected: "string",
                },
            ))
        }
    };
    parse_record(item).map_err(|e| (shown(&key), e))
}

fn parse_record(item: &Item) -> Result<HostRecord, InvalidRow> {
    let r = Reader(item);
    let host = HostId::parse(&r.string(attr::HOST_ID)?.unwrap_or_default())?;
    let path = |a: &'static str| -> Result<Option<HostPath>, InvalidRow> {
        r.string(a)?.map(|p| HostPath::parse(a, &p)).transpose()
    };
    let overrides = HostOverrides {
        cert_path: path(attr::CERT_PATH)?,
        key_path: path(attr::KEY_PATH)?,
        cacert_path: path(attr::CACERT_PATH)?,
        signing_helper_path: path(attr::SIGNING_HELPER_PATH)?,
        key_algorithm: r
            .string(attr::KEY_ALGORITHM)?
            .map(|k| {
                k.parse()
                    .map_err(|e: pki::UnknownKeyAlgorithm| InvalidRow::BadValue {
                        attribute: attr::KEY_ALGORITHM,
                        shown: shown(&k),
                        why: e.to_string(),
                    })
            })
            .transpose()?,
    };
    // Legacy attributes are read tolerantly but still type-checked.
    let _legacy_status = r.string(attr::STATUS)?;
    let _legacy_renewal = r.string(attr::RENEWAL_DATE)?;

    let version = r.number(attr::VERSION)?.map(|v| v as u64);
    let state_since = r.epoch(attr::STATE_SINCE)?;
    let serial = r.token(attr::SERIAL, 128)?;
    let expiry = r.time(attr::EXPIRY)?;
    let current = match expiry {
        Some(not_after) => Some(DeployedCert {
            serial: serial.clone(),
            not_before: r.time(attr::NOT_BEFORE)?,
            not_after,
            renew_at: r.epoch(attr::RENEW_AT)?,
            cert_arn: r.token(attr::CERT_ARN, 2048)?,
        }),
        None => None,
    };
    let rotation = r.token(attr::ROTATION_ID, 64)?.map(RotationId);
    let command_id = r.token(attr::COMMAND_ID, 64)?;
    let missing = |a: &'static str| InvalidRow::BadValue {
        attribute: a,
        shown: "\"\"".into(),
        why: "missing for this rotation state".into(),
    };
    let kind = match r.string(attr::STATE)? {
        None => StateKind::Idle,
        Some(k) => StateKind::parse(&k).ok_or_else(|| InvalidRow::BadValue {
            attribute: attr::STATE,
            shown: shown(&k),
            why: "unknown rotation state".into(),
        })?,
    };
    let state = match kind {
        StateKind::Idle => RotationState::Idle,
        StateKind::Deployed => RotationState::Deployed,
        StateKind::CsrRequested => RotationState::CsrRequested {
            rotation: rotation.ok_or_else(|| missing(attr::ROTATION_ID))?,
            command_id,
        },
        StateKind::Issuing => RotationState::Issuing {
            rotation: rotation.ok_or_else(|| missing(attr::ROTATION_ID))?,
            cert_arn: r
                .token(attr::PENDING_CERT_ARN, 2048)?
                .ok_or_else(|| missing(attr::PENDING_CERT_ARN))?,
            key_fingerprint: r
                .token(attr::KEY_FINGERPRINT, 128)?
                .ok_or_else(|| missing(attr::KEY_FINGERPRINT))?,
        },
        StateKind::Deploying => RotationState::Deploying {
            rotation: rotation.ok_or_else(|| missing(attr::ROTATION_ID))?,
            cert_arn: r
                .token(attr::PENDING_CERT_ARN, 2048)?
                .ok_or_else(|| missing(attr::PENDING_CERT_ARN))?,
            command_id,
            pending: DeployedCert {
                serial: r.token(attr::PENDING_SERIAL, 128)?,
                not_before: r.time(attr::PENDING_NOT_BEFORE)?,
                not_after: r
                    .time(attr::PENDING_NOT_AFTER)?
                    .ok_or_else(|| missing(attr::PENDING_NOT_AFTER))?,
                renew_at: None,
                cert_arn: None,
            },
        },
        StateKind::Failed => RotationState::Failed {
            rotation,
            stage: r
                .string(attr::FAILED_STAGE)?
                .and_then(|st| FailureStage::parse(&st))
                .unwrap_or(FailureStage::RequestCsr),
            reason: r.string(attr::FAILURE_REASON)?.unwrap_or_default(),
        },
        StateKind::Revoked => RotationState::Revoked {
            serial: r
                .token(attr::REVOKED_SERIAL, 128)?
                .or(serial)
                .unwrap_or_default(),
        },
    };
    let attempts = Attempts {
        failed: r.number(attr::ATTEMPTS)?.unwrap_or(0).clamp(0, 1_000) as u32,
        next_attempt_at: r.epoch(attr::NEXT_ATTEMPT_AT)?,
    };
    Ok(HostRecord {
        host,
        overrides,
        version,
        state,
        state_since,
        current,
        attempts,
    })
}

struct Reader<'a>(&'a Item);

impl Reader<'_> {
    fn string(&self, a: &'static str) -> Result<Option<String>, InvalidRow> {
        match self.0.get(a) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) if v.len() > 4096 => Err(InvalidRow::BadValue {
                attribute: a,
                shown: shown(v),
                why: "longer than 4096 bytes".into(),
            }),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(InvalidRow::WrongType {
                attribute: a,
                expected: "string",
            }),
        }
    }

    /// An opaque identifier: printable ASCII without spaces or shell metacharacters.
    fn token(&self, a: &'static str, max: usize) -> Result<Option<String>, InvalidRow> {
        let Some(v) = self.string(a)? else {
            return Ok(None);
        };
        let ok = !v.is_empty()
            && v.len() <= max
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/-_.".contains(&b));
        if ok {
            Ok(Some(v))
        } else {
            Err(InvalidRow::BadValue {
                attribute: a,
                shown: shown(&v),
                why: format!("must be 1 to {max} characters of [A-Za-z0-9:/._-]"),
            })
        }
    }

    fn number(&self, a: &'static str) -> Result<Option<i64>, InvalidRow> {
        match self.0.get(a) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => {
                v.parse::<i64>()
                    .map(Some)
                    .map_err(|_| InvalidRow::BadValue {
                        attribute: a,
                        shown: shown(v),
                        why: "not a whole number".into(),
                    })
            }
            Some(_) => Err(InvalidRow::WrongType {
                attribute: a,
                expected: "number",
            }),
        }
    }

    fn epoch(&self, a: &'static str) -> Result<Option<OffsetDateTime>, InvalidRow> {
        self.number(a)?
            .map(|n| {
                OffsetDateTime::from_unix_timestamp(n).map_err(|_| InvalidRow::BadValue {
                    attribute: a,
                    shown: n.to_string(),
                    why: "not a valid time".into(),
                })
            })
            .transpose()
    }

    /// A time as RFC 3339 or the original sample's `YYYY-MM-DD HH:MM:SS` (UTC).
    fn time(&self, a: &'static str) -> Result<Option<OffsetDateTime>, InvalidRow> {
        let Some(v) = self.string(a)? else {
            return Ok(None);
        };
        parse_time(&v)
            .map(Some)
            .ok_or_else(|| InvalidRow::BadValue {
                attribute: a,
                shown: shown(&v),
                why: "not a time (expected YYYY-MM-DD HH:MM:SS or RFC 3339)".into(),
            })
    }
}

/// Parses RFC 3339 or the original sample's `YYYY-MM-DD HH:MM:SS` (taken as UTC).
pub fn parse_time(v: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let legacy = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(v, &legacy)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}
