//! Reading a row: every attribute type-checked and validated before anything of it is used, so
//! a hostile or malformed row is refused with the attribute named and the other hosts go on.

use time::OffsetDateTime;

use super::{attr, parse_time, Attr, Item};
use crate::host::{shown, HostId, HostPath, InvalidRow};
use crate::record::{
    Attempts, DeployedCert, FailureStage, HostOverrides, HostRecord, RotationId, RotationState,
    StateKind,
};

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
            held: r.token(attr::HOLD, 64)?,
        },
    };
    let attempts = Attempts {
        failed: r.number(attr::ATTEMPTS)?.unwrap_or(0).clamp(0, 1_000) as u32,
        next_attempt_at: r.epoch(attr::NEXT_ATTEMPT_AT)?,
        alerted: r
            .string(attr::ALERT_LEVEL)?
            .and_then(|s| crate::record::AlertLevel::parse(&s)),
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
