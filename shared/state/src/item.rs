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

use crate::host::{shown, HostId, HostPath, InvalidRow};
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
    let kind = record.state.kind();
    if kind != StateKind::Idle {
        put(attr::STATE, Attr::s(kind.as_str()));
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
        RotationState::Revoked { serial } => {
            put(attr::REVOKED_SERIAL, Attr::s(serial));
        }
    }
    item
}

/// Maps an item to a validated record, or says why it is refused (with the escaped key).
pub fn record_from_item(item: &Item) -> Result<HostRecord, (String, InvalidRow)> {
    let key = match item.get(attr::HOST_ID) {
        Some(Attr::S(k)) => k.clone(),
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
            None | Some(Attr::Null) => Ok(None),
            Some(Attr::S(v)) if v.len() > 4096 => Err(InvalidRow::BadValue {
                attribute: a,
                shown: shown(v),
                why: "longer than 4096 bytes".into(),
            }),
            Some(Attr::S(v)) => Ok(Some(v.clone())),
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
            None | Some(Attr::Null) => Ok(None),
            Some(Attr::N(v)) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| InvalidRow::BadValue {
                    attribute: a,
                    shown: shown(v),
                    why: "not a whole number".into(),
                }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn host() -> HostId {
        HostId::parse("mi-0123456789abcdef0").unwrap()
    }

    #[test]
    fn original_sample_rows_are_read_as_they_are() {
        let mut item = Item::new();
        item.insert(attr::HOST_ID.into(), Attr::s("mi-0123456789abcdef0"));
        item.insert(attr::EXPIRY.into(), Attr::s("2026-12-08 10:00:00"));
        item.insert(attr::SERIAL.into(), Attr::s("0a:1b"));
        item.insert(attr::STATUS.into(), Attr::s("ISSUED"));
        item.insert(attr::RENEWAL_DATE.into(), Attr::s("2026-12-07 10:00:00"));
        let r = record_from_item(&item).unwrap();
        assert_eq!(r.state, RotationState::Idle);
        assert_eq!(r.version, None);
        let c = r.current.unwrap();
        assert_eq!(c.not_after, datetime!(2026-12-08 10:00:00 UTC));
        assert_eq!(c.serial.as_deref(), Some("0a:1b"));
        assert_eq!(c.not_before, None);
    }

    #[test]
    fn wrong_types_and_unsafe_values_are_refused_with_the_attribute_named() {
        let base = enrolment_item(&host(), &HostOverrides::default());
        let cases = [
            (attr::VERSION, Attr::s("1"), "version"),
            (attr::EXPIRY, Attr::n(5), "expiry"),
            (attr::ATTEMPTS, Attr::s("many"), "attempts"),
            (attr::CERT_PATH, Attr::s("../etc"), "certPath"),
            (attr::STATE, Attr::s("DANCING"), "rotationState"),
            (attr::COMMAND_ID, Attr::s("a;b"), "commandId"),
            (attr::KEY_PATH, Attr::Other("BOOL"), "keyPath"),
        ];
        for (name, value, named) in cases {
            let mut item = base.clone();
            item.insert(name.into(), value.clone());
            let (key, why) = record_from_item(&item).expect_err(name);
            assert_eq!(key, "\"mi-0123456789abcdef0\"");
            assert!(why.to_string().contains(named), "{name}: {why}");
        }
        let mut no_key = base.clone();
        no_key.insert(attr::HOST_ID.into(), Attr::n(1));
        assert!(record_from_item(&no_key).is_err());
    }

    #[test]
    fn in_flight_states_need_their_attributes() {
        let mut item = enrolment_item(&host(), &HostOverrides::default());
        item.insert(attr::STATE.into(), Attr::s("ISSUING"));
        item.insert(attr::ROTATION_ID.into(), Attr::s("r1"));
        let (_, why) = record_from_item(&item).unwrap_err();
        assert!(why.to_string().contains(attr::PENDING_CERT_ARN), "{why}");
    }

    #[test]
    fn records_round_trip_through_items() {
        let nb = datetime!(2026-12-01 00:00:00 UTC);
        let current = Some(DeployedCert {
            serial: Some("0a:0b".into()),
            not_before: Some(nb),
            not_after: nb + time::Duration::days(7),
            renew_at: Some(nb + time::Duration::days(5)),
            cert_arn: Some(
                "arn:aws:acm-pca:us-east-1:1:certificate-authority/x/certificate/y".into(),
            ),
        });
        let rotation = RotationId("r-1".into());
        let states = [
            RotationState::Idle,
            RotationState::Deployed,
            RotationState::CsrRequested {
                rotation: rotation.clone(),
                command_id: Some("c-1".into()),
            },
            RotationState::Issuing {
                rotation: rotation.clone(),
                cert_arn: "arn:c".into(),
                key_fingerprint: "ff".into(),
            },
            RotationState::Deploying {
                rotation: rotation.clone(),
                cert_arn: "arn:c".into(),
                command_id: None,
                pending: DeployedCert {
                    serial: Some("01".into()),
                    not_before: Some(nb),
                    not_after: nb + time::Duration::days(7),
                    renew_at: None,
                    cert_arn: None,
                },
            },
            RotationState::Failed {
                rotation: Some(rotation.clone()),
                stage: FailureStage::Verify,
                reason: "chain did not verify".into(),
            },
            RotationState::Revoked {
                serial: "0a:0b".into(),
            },
        ];
        for state in states {
            let record = HostRecord {
                host: host(),
                overrides: HostOverrides::default(),
                version: Some(3),
                state,
                state_since: Some(nb),
                current: current.clone(),
                attempts: Attempts {
                    failed: 2,
                    next_attempt_at: Some(nb),
                },
            };
            let back = record_from_item(&item_from_record(&record)).unwrap();
            assert_eq!(back, record);
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(Attr::N("1".into()).same_as(&Attr::N("1.0".into())));
        assert!(!Attr::N("1".into()).same_as(&Attr::s("1")));
    }
}
