//! An operator's revocation: refused, reported (dry run), or carried out.
//!
//! Made in any state but REVOKED (a revoked serial is not revoked again). It revokes the
//! host's current certificate and, when a rotation is in flight, cancels that rotation and
//! revokes its pending certificate too: a DEPLOYING rotation may already have sent the pair to
//! the host, and an ISSUING one holds a certificate Private CA has signed or is signing; left
//! valid, either would hand the host a credential the operator meant to take away. The record
//! then names neither the rotation nor its certificate, so every later event of it is refused
//! by the rules (see `state::rules`).
//!
//! A certificate Private CA is still issuing has no serial yet: the rotation is cancelled all
//! the same, and CertDeploy revokes the certificate when its issuance event finds no rotation
//! waiting for it (a certificate that never reached its host).
//!
//! The reason decides what follows (`rotation::revocation`): `SUPERSEDED` leaves the host to
//! be re-issued; every other reason holds it until an operator releases it. `rotate` asks for
//! the replacement at once: the operator's decision in the same request, so nothing is held.
//!
//! Refused when the host is not enrolled, is already revoked, or has no certificate at all
//! (never issued, first rotation not issued yet): nothing is revoked at the CA that the table
//! cannot record.

use rotation::alerts::{Alert, AlertKind};
use rotation::ca::Fetched;
use rotation::AwsError;
use state::plan::{DueReason, Plan, PlanItem};
use state::{HostRecord, RotationState};

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

/// The pending certificate of the rotation a revocation cancels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// DEPLOYING: the serial recorded when the deployment was claimed.
    Claimed {
        /// The certificate.
        cert_arn: String,
        /// Its serial.
        serial: String,
    },
    /// ISSUING: only the ARN is recorded; the serial is read from the certificate
    /// ([`pending_serial`]).
    Issuing {
        /// The certificate.
        cert_arn: String,
    },
}

impl Pending {
    /// The certificate's ARN.
    pub fn cert_arn(&self) -> &str {
        match self {
            Pending::Claimed { cert_arn, .. } | Pending::Issuing { cert_arn } => cert_arn,
        }
    }
}

/// A revocation to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoke {
    /// The host as read (the record expects it still in this state, with this serial).
    pub record: HostRecord,
    /// The current certificate's serial, if the host has one.
    pub current: Option<String>,
    /// The pending certificate of the rotation in flight, if any (cancelled).
    pub pending: Option<Pending>,
    /// The Private CA revocation reason.
    pub reason: String,
    /// The reason holding the host afterwards (`None`: it may be re-issued).
    pub held: Option<String>,
    /// Start the replacement at once.
    pub rotate: bool,
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
    if let RotationState::Revoked { serial, .. } = &record.state {
        return Err(CheckError::Refused(format!(
            "host {host} is already revoked (serial {serial})"
        )));
    }
    let current = record.current.as_ref().and_then(|c| c.serial.clone());
    let pending = match &record.state {
        RotationState::Issuing { cert_arn, .. } => Some(Pending::Issuing {
            cert_arn: cert_arn.clone(),
        }),
        RotationState::Deploying {
            cert_arn, pending, ..
        } => pending.serial.as_ref().map(|serial| Pending::Claimed {
            cert_arn: cert_arn.clone(),
            serial: serial.clone(),
        }),
        _ => None,
    };
    if current.is_none() && pending.is_none() {
        return Err(CheckError::Refused(format!(
            "host {host} has no certificate to revoke"
        )));
    }
    let r = Revoke {
        held: if revocation.rotate {
            None
        } else {
            rotation::revocation::hold_for(Some(&revocation.reason))
        },
        record,
        current,
        pending,
        reason: revocation.reason.clone(),
        rotate: revocation.rotate,
    };
    if dry_run {
        return Ok(RevokeDecision::Report(r.note(None)));
    }
    Ok(RevokeDecision::Revoke(Box::new(r)))
}

impl Revoke {
    /// The serial recorded as revoked: the current one, or the pending one (`pending_serial`,
    /// read from the CA for an ISSUING rotation) when the host has none.
    pub fn recorded_serial(&self, pending_serial: Option<&str>) -> Option<String> {
        self.current
            .clone()
            .or_else(|| pending_serial.map(str::to_owned))
    }

    /// What was (or, on a dry run, would be) revoked, for the summary.
    pub fn note(&self, pending_serial: Option<&str>) -> HostNote {
        let mut what = match &self.current {
            Some(s) => format!("revoked serial {s} ({})", self.reason),
            None => format!("revoked ({})", self.reason),
        };
        if let Some(p) = &self.pending {
            let rotation = self
                .record
                .state
                .rotation()
                .map(ToString::to_string)
                .unwrap_or_default();
            let claimed = match p {
                Pending::Claimed { serial, .. } => Some(serial.as_str()),
                Pending::Issuing { .. } => None,
            };
            what.push_str(&match claimed.or(pending_serial) {
                Some(serial) => format!(
                    "; rotation {rotation} cancelled, its pending certificate {serial} revoked"
                ),
                None => format!(
                    "; rotation {rotation} cancelled, its pending certificate {} (still \
                     being issued) is revoked when its issuance is announced",
                    p.cert_arn()
                ),
            });
        }
        if let Some(h) = &self.held {
            what.push_str(&format!("; held ({h}) until released"));
        }
        HostNote::new(&self.record.host, what)
    }

    /// The alert raised once the revocation is recorded.
    pub fn alert(&self, pending_serial: Option<&str>) -> Alert {
        let note = self.note(pending_serial);
        Alert {
            host: Some(self.record.host.to_string()),
            certificate_arn: self.pending.as_ref().map(|p| p.cert_arn().to_owned()),
            ..Alert::new(
                AlertKind::CertificateRevoked,
                format!("{} by an operator", note.reason),
            )
        }
    }
}

/// The serial of the pending certificate of an ISSUING rotation, from Private CA's answer;
/// `None` while it is still being issued: the rotation is cancelled all the same, and the
/// certificate is revoked as one that never reached its host when its issuance event comes
/// (CertDeploy finds no rotation waiting for it).
pub fn pending_serial(answer: Result<Fetched, AwsError>) -> Result<Option<String>, CheckError> {
    match answer? {
        Fetched::Pending => Ok(None),
        Fetched::Ready { certificate, .. } => pki::parse_certificate_pem(&certificate)
            .map(|facts| Some(facts.serial))
            .map_err(|e| {
                CheckError::Refused(format!("the pending certificate is unreadable: {e}"))
            }),
    }
}

/// The serial to record as revoked, or why nothing can be recorded yet: a host whose only
/// certificate is still being issued has nothing revoked yet (asking again shortly succeeds).
pub fn serial_to_record(
    revoke: &Revoke,
    pending_serial: Option<&str>,
) -> Result<String, CheckError> {
    revoke.recorded_serial(pending_serial).ok_or_else(|| {
        CheckError::NotReady(format!(
            "host {}'s only certificate is still being issued: nothing was revoked; ask again in \
             a minute",
            revoke.record.host
        ))
    })
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
pub fn after_revoked(revoke: &Revoke, note: HostNote, revoked: HostRecord) -> Loaded {
    let items = if revoke.rotate {
        vec![(revoked, PlanItem::Due(DueReason::Revoked))]
    } else {
        Vec::new()
    };
    Loaded {
        plan: Plan { items },
        revoked: Some(note),
        ..Loaded::default()
    }
}

#[cfg(test)]
mod tests;
