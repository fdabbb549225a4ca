//! What a revocation means for the host, by its reason: re-issue, or hold.
//!
//! Why a policy at all: a certificate revoked because a newer one replaced it says nothing bad
//! about the host, and the host should get a new certificate at once; one revoked because its
//! key leaked, the host was retired, moved to another owner or lost its rights says the host
//! must not get a new certificate automatically (a rotation would hand a fresh credential to
//! exactly the machine that was cut off). So every reason but `SUPERSEDED` holds the host until
//! an operator releases it (`{"release": {"host": …}}` to CertCheck).
//!
//! `UNSPECIFIED` holds too: it says nothing about why, so the service cannot tell a routine
//! replacement from a compromise, and an operator who means a routine replacement says
//! `SUPERSEDED`. A CRL entry without a reason code is read as `UNSPECIFIED` (RFC 5280 §5.3.1:
//! the code is absent rather than `unspecified`) and holds for the same reason: the safe side.
//!
//! The same policy serves the operator's revocation (CertCheck), the CRL's (CRLProcessor) and
//! the revocations the service makes itself (superseded and orphaned certificates, always
//! `SUPERSEDED`, which never touch a host's state).

use crate::alerts::{raise_or_log, Alert, AlertKind, Alerts};
use crate::ca::CertificateAuthority;
use crate::error::AwsError;

/// The reason the service revokes with when a newer certificate replaced one (the host's
/// previous certificate once the new pair works, and certificates that never reached a host).
pub const SUPERSEDED: &str = "SUPERSEDED";

/// The reason a revocation without one is read as (a CRL entry without a reason code).
pub const UNSPECIFIED: &str = "UNSPECIFIED";

/// The reasons after which a host is re-issued automatically; every other reason holds it.
pub const REISSUING_REASONS: &[&str] = &[SUPERSEDED];

/// Whether a revocation for `reason` holds the host (no automatic rotation until released).
pub fn holds(reason: &str) -> bool {
    !REISSUING_REASONS.contains(&reason)
}

/// The hold to record for a revocation for `reason` (`None`: no reason given, read as
/// [`UNSPECIFIED`]): the reason itself when it holds.
pub fn hold_for(reason: Option<&str>) -> Option<String> {
    let reason = reason.unwrap_or(UNSPECIFIED);
    holds(reason).then(|| reason.to_owned())
}

/// A certificate the service revokes on its own, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The host it was issued to.
    pub host: String,
    /// Its serial (any notation the table or the parser gives: asked of the CA canonically).
    pub serial: String,
    /// Its ARN, when known (for the alert).
    pub cert_arn: Option<String>,
    /// What it was: "the previous certificate", "a certificate that never reached the host".
    pub what: &'static str,
}

/// Waits before each further RevokeCertificate while Private CA throttles (its quota is 20/s,
/// and a wave of deployments each retires the certificate it replaced): the handlers slow down
/// to the quota instead of alerting a certificate they could not revoke.
pub const REVOKE_DELAYS_MS: [u64; 3] = [1_000, 2_000, 4_000];

/// Revokes `retirement` as [`SUPERSEDED`], asking again after each of [`REVOKE_DELAYS_MS`]
/// while Private CA throttles. A revocation the CA has already made counts as done
/// (the adapters answer it as success). A failure is logged and alerted
/// ([`AlertKind::RevocationFailed`]): the certificate stays valid until it expires (at most the
/// stack's `CertValidityDays`) unless an operator revokes it; it never undoes what the caller
/// recorded. Returns whether it was revoked.
pub async fn retire<C: CertificateAuthority, A: Alerts>(
    ca: &C,
    alerts: &A,
    retirement: &Retirement,
) -> bool {
    let serial = pki::canonical_serial(&retirement.serial);
    let answer = crate::again::ask_again(
        "RevokeCertificate throttled",
        &serial,
        &REVOKE_DELAYS_MS,
        crate::again::throttled,
        || ca.revoke(&serial, SUPERSEDED),
    )
    .await;
    match answer {
        Ok(()) => {
            tracing::info!(host = %retirement.host, serial, what = retirement.what, "revoked as SUPERSEDED");
            true
        }
        Err(e) => {
            tracing::error!(host = %retirement.host, serial, what = retirement.what, error = %e, "could not revoke");
            raise_or_log(alerts, &retirement_failed(retirement, &e)).await;
            false
        }
    }
}

/// The alert for a certificate the service could not revoke.
pub fn retirement_failed(retirement: &Retirement, error: &AwsError) -> Alert {
    Alert {
        host: Some(retirement.host.clone()),
        certificate_arn: retirement.cert_arn.clone(),
        ..Alert::new(
            AlertKind::RevocationFailed,
            format!(
                "{} (serial {}) could not be revoked as SUPERSEDED: {error}; it stays valid until \
                 it expires unless revoked by hand",
                retirement.what, retirement.serial
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_superseded_re_issues() {
        assert_eq!(hold_for(Some("SUPERSEDED")), None);
        for reason in crate::ca::REVOCATION_REASONS
            .iter()
            .filter(|r| **r != SUPERSEDED)
        {
            assert_eq!(hold_for(Some(reason)).as_deref(), Some(*reason), "{reason}");
        }
        assert_eq!(
            hold_for(None).as_deref(),
            Some("UNSPECIFIED"),
            "no reason code"
        );
    }
}
