//! An operator's revocation: refused, reported (dry run), or carried out.
//!
//! Refused when the host is not enrolled or has no certificate that can be marked revoked (one
//! in place on a host at rest), so nothing is revoked at the CA that the table cannot record.
//! Otherwise the shell revokes the serial at the CA, records it, raises the alert, and plans the
//! replacement at once when the request asked for it.

use rotation::alerts::{Alert, AlertKind};
use state::plan::{DueReason, Plan, PlanItem};
use state::HostRecord;

use super::error::CheckError;
use super::plan::Loaded;
use super::request::Revocation;
use super::summary::HostNote;

/// What a revocation request comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeDecision {
    /// A dry run: report what would be revoked, change nothing.
    Report(HostNote),
    /// Revoke at the CA, record, alert.
    Revoke(Box<Revoke>),
}

/// A revocation to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoke {
    /// The host as read (the record expects it still at rest with this serial).
    pub record: HostRecord,
    /// The serial to revoke.
    pub serial: String,
    /// The Private CA revocation reason.
    pub reason: String,
    /// The summary's note.
    pub note: HostNote,
    /// The alert to raise once recorded.
    pub alert: Alert,
    /// Start the replacement at once.
    pub rotate: bool,
}

impl Revoke {
    /// The serial as Private CA is asked to revoke it: the canonical form
    /// ([`pki::normalize_serial`]), whatever notation the item holds (the original sample wrote
    /// upper-case, colon-separated serials).
    pub fn ca_serial(&self) -> String {
        pki::normalize_serial(&self.serial).unwrap_or_else(|| self.serial.clone())
    }
}

/// Decides on `revocation` given the host's record as read.
pub fn decide_revocation(
    revocation: &Revocation,
    record: Option<HostRecord>,
    dry_run: bool,
) -> Result<RevokeDecision, CheckError> {
    let host = &revocation.host;
    let record =
        record.ok_or_else(|| CheckError::Refused(format!("host {host} is not enrolled")))?;
    let serial = record
        .revocable_serial()
        .map(str::to_owned)
        .ok_or_else(|| {
            CheckError::Refused(format!("host {host} has no deployed certificate to revoke"))
        })?;
    let reason = revocation.reason.clone();
    let note = HostNote::new(host, format!("revoked serial {serial} ({reason})"));
    if dry_run {
        return Ok(RevokeDecision::Report(note));
    }
    let alert = Alert {
        host: Some(host.to_string()),
        ..Alert::new(
            AlertKind::CertificateRevoked,
            format!("serial {serial} revoked by an operator ({reason})"),
        )
    };
    Ok(RevokeDecision::Revoke(Box::new(Revoke {
        record,
        serial,
        reason,
        note,
        alert,
        rotate: revocation.rotate,
    })))
}

/// The run after a dry-run revocation: the note, nothing to plan.
pub fn reported(note: HostNote) -> Loaded {
    Loaded {
        revoked: Some(note),
        ..Loaded::default()
    }
}

/// The run after the revocation was recorded (`revoked` is the record after the write): the
/// note, and the host due (`revoked`) if the replacement starts at once.
pub fn after_revoked(revoke: &Revoke, revoked: HostRecord) -> Loaded {
    let items = if revoke.rotate {
        vec![(revoked, PlanItem::Due(DueReason::Revoked))]
    } else {
        Vec::new()
    };
    Loaded {
        plan: Plan { items },
        revoked: Some(revoke.note.clone()),
        ..Loaded::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::*;
    use state::RotationState;
    use time::Duration;

    fn revocation(n: u32, rotate: bool) -> Revocation {
        Revocation {
            host: host(n),
            reason: "KEY_COMPROMISE".into(),
            rotate,
        }
    }

    fn refusal(r: Result<RevokeDecision, CheckError>) -> String {
        match r {
            Err(CheckError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_host_that_is_not_enrolled_is_refused() {
        let m = refusal(decide_revocation(&revocation(1, false), None, false));
        assert_eq!(m, format!("host {} is not enrolled", host(1)));
    }

    #[test]
    fn a_host_with_nothing_revocable_is_refused() {
        let busy = csr_requested(2, NOW - Duration::minutes(1));
        for record in [enrolled(2), busy, revoked(2)] {
            let m = refusal(decide_revocation(
                &revocation(2, false),
                Some(record),
                false,
            ));
            assert!(m.ends_with("has no deployed certificate to revoke"), "{m}");
        }
    }

    #[test]
    fn a_dry_run_reports_the_serial() {
        let d = decide_revocation(
            &revocation(1, true),
            Some(deployed(1, NOW - Duration::days(1))),
            true,
        )
        .unwrap();
        let note = HostNote::new(host(1), "revoked serial 01:ab (KEY_COMPROMISE)");
        assert_eq!(d, RevokeDecision::Report(note.clone()));
        let l = reported(note.clone());
        assert_eq!(l.revoked, Some(note));
        assert!(l.plan.items.is_empty());
    }

    #[test]
    fn a_deployed_host_is_revoked_with_an_alert() {
        let record = deployed(1, NOW - Duration::days(1));
        let RevokeDecision::Revoke(r) =
            decide_revocation(&revocation(1, false), Some(record.clone()), false).unwrap()
        else {
            panic!("expected a revocation")
        };
        assert_eq!(r.record, record);
        assert_eq!(
            (r.serial.as_str(), r.reason.as_str()),
            ("01:ab", "KEY_COMPROMISE")
        );
        assert_eq!(r.alert.kind, AlertKind::CertificateRevoked);
        let mut legacy = r.clone();
        legacy.serial = "01:AB".into();
        assert_eq!(
            legacy.ca_serial(),
            "01:ab",
            "asked of the CA in the canonical form"
        );
        assert_eq!(r.alert.host.as_deref(), Some(host(1).as_str()));
        assert_eq!(
            r.alert.reason,
            "serial 01:ab revoked by an operator (KEY_COMPROMISE)"
        );
        let l = after_revoked(&r, revoked(1));
        assert!(l.plan.items.is_empty(), "no rotation unless asked");
        assert_eq!(l.revoked, Some(r.note.clone()));
    }

    #[test]
    fn a_revocation_with_rotate_plans_the_replacement() {
        let mut original = deployed(1, NOW - Duration::days(1));
        original.state = RotationState::Idle;
        let RevokeDecision::Revoke(r) =
            decide_revocation(&revocation(1, true), Some(original), false).unwrap()
        else {
            panic!("expected a revocation")
        };
        let l = after_revoked(&r, revoked(1));
        assert_eq!(
            l.plan.items,
            [(revoked(1), PlanItem::Due(DueReason::Revoked))]
        );
    }
}
