//! Certificates that never reached their host, revoked.
//!
//! A certificate of our CA is an orphan when the rotation it was issued for is gone: cancelled
//! by a revocation while Private CA was still issuing it, failed or superseded before its
//! issuance was recorded (CertIssue's `Issuing` write refused after IssueCertificate answered).
//! It was never sent to a host, so nothing needs it; left valid it would be a credential for
//! the host's key that nobody tracks. Its issuance event is where the service learns of it: no
//! rotation waits for its ARN. The certificate is then fetched, its subject names the host, and
//! the host's record (strongly consistent, unlike the ARN index) decides:
//! - the record waits for it (the index lags) or may still record it (CSR_REQUESTED, the
//!   event younger than [`WAIT_FOR_EVENT`](super::WAIT_FOR_EVENT)): not ready, Lambda retries the event;
//! - it is the host's current or revoked certificate (a duplicated event after the rotation
//!   ended): nothing to do;
//! - the host's last rotation failed at DEPLOY or VERIFY: DeployCert may have been sent, so
//!   the certificate may be the host's live pair without the table knowing: left alone (the
//!   retry's rotation replaces it and the superseded path revokes what the table knew);
//! - otherwise (another rotation in flight or done, the host revoked, idle, failed before
//!   deploying, the event older than the wait): revoked as `SUPERSEDED`.

use pki::CertificateFacts;
use rotation::ca::Fetched;
use rotation::error::AwsError;
use rotation::revocation::Retirement;
use state::record::FailureStage;
use state::{HostId, HostRecord, RotationState};
use time::OffsetDateTime;

use super::{young, Stop};

/// With Private CA's last answer to the fetch of a certificate no rotation waits for, its facts:
/// still being issued (or a fetch a retry may cure) is not ready; so is a refusal while the
/// event (sent at `sent`, when known) is no older than [`WAIT_FOR_EVENT`](super::WAIT_FOR_EVENT) (Private CA may not
/// answer yet for a certificate it has only just announced); an older refusal or an unreadable
/// certificate is none of ours to judge (ignored).
pub fn fetched(
    cert_arn: &str,
    answer: Result<Fetched, AwsError>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<CertificateFacts, Stop> {
    let certificate = match answer {
        Ok(Fetched::Ready { certificate, .. }) => certificate,
        Ok(Fetched::Pending) => {
            return Err(Stop::not_ready(&format!(
                "{cert_arn} is still being issued"
            )))
        }
        Err(e) if e.retryable || young(sent, now) => {
            return Err(Stop::not_ready(&format!(
                "no rotation is waiting for {cert_arn} yet, and it cannot be fetched yet: {e}"
            )))
        }
        Err(e) => {
            return Err(Stop::Ignore(format!(
                "no rotation is waiting for {cert_arn}, and it cannot be fetched: {e}"
            )))
        }
    };
    pki::parse_certificate_pem(&certificate).map_err(|e| {
        Stop::Ignore(format!(
            "no rotation is waiting for {cert_arn}, and it is unreadable: {e}"
        ))
    })
}

/// With the certificate no rotation waits for, the host its subject names (to load), or why
/// it is none of ours.
pub fn named_host(cert_arn: &str, facts: &CertificateFacts) -> Result<HostId, Stop> {
    let cn = facts.subject_cn.as_deref().unwrap_or("");
    HostId::parse(cn).map_err(|_| {
        Stop::Ignore(format!(
            "no rotation is waiting for {cert_arn}, and its subject names no host ({})",
            facts.subject
        ))
    })
}

/// With the named host's record, the certificate to revoke as an orphan (see the module doc).
pub fn orphan(
    cert_arn: &str,
    facts: &CertificateFacts,
    host: &HostId,
    record: Option<HostRecord>,
    sent: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Retirement, Stop> {
    let Some(record) = record else {
        return Err(Stop::Ignore(format!(
            "no rotation is waiting for {cert_arn}, and its host {host} is not enrolled"
        )));
    };
    let young = young(sent, now);
    let same = |s: &str| pki::canonical_serial(s) == facts.serial;
    let current = record.current.as_ref().and_then(|c| c.serial.as_deref());
    match &record.state {
        RotationState::Issuing { cert_arn: a, .. }
        | RotationState::Deploying { cert_arn: a, .. }
            if a == cert_arn =>
        {
            return Err(Stop::not_ready(&format!(
                "host {host} waits for {cert_arn}; the index has not caught up yet"
            )))
        }
        RotationState::CsrRequested { .. } if young => {
            return Err(Stop::not_ready(&format!(
                "no rotation is waiting for {cert_arn} yet (host {host}'s ISSUING record may still \
                 be coming)"
            )))
        }
        RotationState::Revoked { serial, .. } if same(serial) => {
            return Err(Stop::Ignore(format!(
                "{cert_arn} is host {host}'s revoked certificate"
            )))
        }
        RotationState::Failed {
            stage: FailureStage::Deploy | FailureStage::Verify,
            ..
        } => {
            return Err(Stop::Ignore(format!(
            "{cert_arn} may have reached host {host} (its last rotation failed while deploying): \
                 left valid"
        )))
        }
        _ => {}
    }
    if current.is_some_and(same) {
        return Err(Stop::Ignore(format!(
            "{cert_arn} is host {host}'s current certificate (a duplicated event)"
        )));
    }
    Ok(Retirement {
        host: host.to_string(),
        serial: facts.serial.clone(),
        cert_arn: Some(cert_arn.to_owned()),
        what: "a certificate that never reached its host",
    })
}

#[cfg(test)]
mod tests;
