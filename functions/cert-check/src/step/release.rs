//! An operator's release of a host held by its revocation reason.
//!
//! A revocation for a reason other than `SUPERSEDED` holds the host (see
//! `rotation::revocation`): no run starts a rotation for it, not even a forced one, because a
//! new certificate would hand a credential back to the machine that was cut off. The operator
//! who has dealt with the cause releases it; the next run then re-issues it as any revoked host
//! (unless the stack sets `ReissueRevoked=false`: then a forced run does). The release is the
//! `Release` rule, conditional on the hold the operator's request read, so it never releases a
//! hold recorded after that read.

use state::{HostId, HostRecord, RotationState};

use super::error::CheckError;
use super::plan::Loaded;
use super::summary::HostNote;

/// A release to record: the host and the reason holding it, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The host.
    pub host: HostId,
    /// The revocation reason holding it.
    pub held: String,
    /// The summary's note.
    pub note: HostNote,
}

/// Decides on releasing `host` given its record as read: refused when it is not enrolled or
/// not held.
pub fn decide_release(host: &HostId, record: Option<HostRecord>) -> Result<Release, CheckError> {
    let record =
        record.ok_or_else(|| CheckError::Refused(format!("host {host} is not enrolled")))?;
    let RotationState::Revoked {
        held: Some(held),
        serial,
    } = record.state
    else {
        return Err(CheckError::Refused(format!(
            "host {host} is not held (it is {})",
            record.state.kind()
        )));
    };
    let note = HostNote::new(
        host,
        format!("released (revoked serial {serial}, held for {held}): the next run re-issues it"),
    );
    Ok(Release {
        host: host.clone(),
        held,
        note,
    })
}

/// The run after a release (or, on a dry run, instead of it): the note, nothing to plan.
pub fn released(release: &Release) -> Loaded {
    Loaded {
        released: Some(release.note.clone()),
        ..Loaded::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::fixtures::*;

    fn held(n: u32, reason: &str) -> HostRecord {
        let mut r = revoked(n);
        r.state = RotationState::Revoked {
            serial: format!("0{n}:ab"),
            held: Some(reason.into()),
        };
        r
    }

    #[test]
    fn a_held_host_is_released_under_its_reason() {
        let r = decide_release(&host(1), Some(held(1, "KEY_COMPROMISE"))).unwrap();
        assert_eq!(r.held, "KEY_COMPROMISE");
        assert_eq!(
            r.note,
            HostNote::new(
                host(1),
                "released (revoked serial 01:ab, held for KEY_COMPROMISE): the next run re-issues it"
            )
        );
        assert_eq!(released(&r).released, Some(r.note.clone()));
        assert!(released(&r).plan.items.is_empty());
    }

    #[test]
    fn a_host_not_held_or_not_enrolled_is_refused() {
        for (record, why) in [
            (None, "is not enrolled".to_owned()),
            (Some(revoked(1)), "is not held (it is REVOKED)".to_owned()),
            (
                Some(deployed(1, NOW)),
                "is not held (it is DEPLOYED)".to_owned(),
            ),
        ] {
            match decide_release(&host(1), record) {
                Err(CheckError::Refused(m)) => assert!(m.ends_with(&why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
