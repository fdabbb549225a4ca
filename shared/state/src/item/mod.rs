//! The table item as the domain sees it, and its mapping to and from [`HostRecord`].
//!
//! Why a model of our own: the transition rules ([`crate::rules`]) are evaluated on items, by
//! DynamoDB (as condition and update expressions) and by the in-memory store of the tests
//! (directly). Both must read a row the same way, so the mapping lives here, once, with no SDK
//! type in it; the DynamoDB store converts its attribute values at its own edge.
//!
//! Attribute names keep the original sample's (`hostID`, `certPath`, `keyPath`, `cacertPath`,
//! `signinghelperPath`, `expiry`, `serial`, `renewalDate`, `status`) so its items are read as
//! they are; everything this service adds has its own name.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::host::HostId;
use crate::record::{HostOverrides, HostRecord, RotationState, StateKind};

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
    /// The revocation reason that holds a revoked host: no rotation starts until an operator
    /// releases it.
    pub const HOLD: &str = "revocationHold";
    /// Set (to [`super::UNSETTLED_VALUE`]) only while a rotation is in flight or failed, or while
    /// a due host at rest waits to be online: the hash key of the sparse index the reconcile
    /// pass reads instead of the whole table.
    pub const UNSETTLED: &str = "unsettled";
    /// The highest alert level raised in this failure episode.
    pub const ALERT_LEVEL: &str = "alertLevel";
}

/// The one value of [`attr::UNSETTLED`] (the index's only partition: it holds only the hosts
/// that are in flight, failed or waiting to be online, a small share of the fleet).
pub const UNSETTLED_VALUE: &str = "Y";

/// Whether a host in `kind` belongs in the unsettled index: a rotation in flight, or failed.
pub fn is_unsettled(kind: StateKind) -> bool {
    kind.in_flight() || kind == StateKind::Failed
}

/// Whether a host in `kind` read from the unsettled index is one for the reconcile pass: one
/// that belongs there by its state ([`is_unsettled`]), or a host at rest that a run found due
/// but unreachable and marked (`Change::AwaitingOnline`). A revoked host is left out (the index
/// may lag the write that settled it).
pub fn is_reconciled(kind: StateKind) -> bool {
    is_unsettled(kind) || matches!(kind, StateKind::Idle | StateKind::Deployed)
}

/// Keys of the service's own items in the table (not hosts): `crl#<CA id>` holds the CRL ledger.
/// A managed-node ID never starts with it, and listings skip these items silently.
pub const SERVICE_KEY_PREFIX: &str = "crl#";

/// One attribute value, as far as the rules and the mapping care: strings and numbers are read,
/// anything else is only named (so a wrong-typed attribute is refused with its type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// A string (`S`).
    S(String),
    /// A number (`N`), in DynamoDB's decimal text.
    N(String),
    /// An explicit null (`NULL`), read as absent.
    Null,
    /// Any other type, by its DynamoDB type name (`BOOL`, `L`, `M`, `SS`, `B` …).
    Other(&'static str),
}

impl Attr {
    /// A string value.
    pub fn s(v: impl Into<String>) -> Attr {
        Attr::S(v.into())
    }

    /// A whole-number value.
    pub fn n(v: i64) -> Attr {
        Attr::N(v.to_string())
    }

    /// Equality as DynamoDB compares in a condition: same type, and numbers by value.
    pub fn same_as(&self, other: &Attr) -> bool {
        match (self, other) {
            (Attr::N(a), Attr::N(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x == y,
                _ => a == b,
            },
            (a, b) => a == b,
        }
    }
}

/// A table item: attribute name to value.
pub type Item = BTreeMap<String, Attr>;

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

/// `YYYY-MM-DD HH:MM:SS` UTC, as the original sample writes `expiry`.
pub fn legacy_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// RFC 3339 text of `t`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Whether an item is one of the service's own (the CRL ledger), not a host.
pub fn is_service_item(item: &Item) -> bool {
    matches!(item.get(attr::HOST_ID), Some(Attr::S(k)) if k.starts_with(SERVICE_KEY_PREFIX))
}

/// The item an enrolment writes: `hostID` and the overrides that are set.
pub fn enrolment_item(host: &HostId, overrides: &HostOverrides) -> Item {
    let mut item = Item::new();
    item.insert(attr::HOST_ID.into(), Attr::s(host.as_str()));
    let paths = [
        (attr::CERT_PATH, &overrides.cert_path),
        (attr::KEY_PATH, &overrides.key_path),
        (attr::CACERT_PATH, &overrides.cacert_path),
        (attr::SIGNING_HELPER_PATH, &overrides.signing_helper_path),
    ];
    for (name, value) in paths {
        if let Some(p) = value {
            item.insert(name.into(), Attr::s(p.as_str()));
        }
    }
    if let Some(k) = overrides.key_algorithm {
        item.insert(attr::KEY_ALGORITHM.into(), Attr::s(k.as_str()));
    }
    item
}

/// The item that [`record_from_item`] reads back as `record` (used to seed in-memory stores and
/// by the property tests; production writes items only through the rules).
pub fn item_from_record(record: &HostRecord) -> Item {
    let mut item = enrolment_item(&record.host, &record.overrides);
    let mut put = |k: &str, v: Attr| {
        item.insert(k.to_owned(), v);
    };
    if let Some(v) = record.version {
        put(attr::VERSION, Attr::n(v as i64));
    }
    if let Some(t) = record.state_since {
        put(attr::STATE_SINCE, Attr::n(t.unix_timestamp()));
    }
    if let Some(c) = &record.current {
        if let Some(s) = &c.serial {
            put(attr::SERIAL, Attr::s(s));
        }
        if let Some(t) = c.not_before {
            put(attr::NOT_BEFORE, Attr::s(rfc3339(t)));
        }
        put(attr::EXPIRY, Attr::s(rfc3339(c.not_after)));
        if let Some(t) = c.renew_at {
            put(attr::RENEW_AT, Attr::n(t.unix_timestamp()));
        }
        if let Some(a) = &c.cert_arn {
            put(attr::CERT_ARN, Attr::s(a));
        }
    }
    if record.attempts.failed > 0 {
        put(attr::ATTEMPTS, Attr::n(record.attempts.failed as i64));
    }
    if let Some(t) = record.attempts.next_attempt_at {
        put(attr::NEXT_ATTEMPT_AT, Attr::n(t.unix_timestamp()));
    }
    if let Some(level) = record.attempts.alerted {
        put(attr::ALERT_LEVEL, Attr::s(level.as_str()));
    }
    let kind = record.state.kind();
    if kind != StateKind::Idle {
        put(attr::STATE, Attr::s(kind.as_str()));
    }
    if is_unsettled(kind) {
        put(attr::UNSETTLED, Attr::s(UNSETTLED_VALUE));
    }
    if let Some(r) = record.state.rotation() {
        put(attr::ROTATION_ID, Attr::s(r.as_str()));
    }
    match &record.state {
        RotationState::Idle | RotationState::Deployed => {}
        RotationState::CsrRequested { command_id, .. } => {
            if let Some(c) = command_id {
                put(attr::COMMAND_ID, Attr::s(c));
            }
        }
        RotationState::Issuing {
            cert_arn,
            key_fingerprint,
            ..
        } => {
            put(attr::PENDING_CERT_ARN, Attr::s(cert_arn));
            put(attr::KEY_FINGERPRINT, Attr::s(key_fingerprint));
        }
        RotationState::Deploying {
            cert_arn,
            command_id,
            pending,
            ..
        } => {
            put(attr::PENDING_CERT_ARN, Attr::s(cert_arn));
            if let Some(c) = command_id {
                put(attr::COMMAND_ID, Attr::s(c));
            }
            if let Some(s) = &pending.serial {
                put(attr::PENDING_SERIAL, Attr::s(s));
            }
            if let Some(t) = pending.not_before {
                put(attr::PENDING_NOT_BEFORE, Attr::s(rfc3339(t)));
            }
            put(attr::PENDING_NOT_AFTER, Attr::s(rfc3339(pending.not_after)));
        }
        RotationState::Failed { stage, reason, .. } => {
            put(attr::FAILED_STAGE, Attr::s(stage.as_str()));
            put(attr::FAILURE_REASON, Attr::s(reason));
        }
        RotationState::Revoked { serial, held } => {
            put(attr::REVOKED_SERIAL, Attr::s(serial));
            if let Some(reason) = held {
                put(attr::HOLD, Attr::s(reason));
            }
        }
    }
    item
}

mod read;

pub use read::record_from_item;

#[cfg(test)]
mod tests;
