//! The issuance step: from Private CA's issuance event to DeployCert sent and recorded.
//!
//! It acts only for a certificate ARN that a pending rotation is waiting for, from our CA; the
//! certificate goes to the host only if it is for that host, carries the key of the CSR the
//! host made, is a client-auth end-entity certificate and is signed by the chain's first
//! certificate. The deployment is claimed (ISSUING → DEPLOYING) before DeployCert is sent, so
//! a duplicated event deploys once.
//!
//! Events come in any order. Private CA may announce a certificate before CertIssue has recorded
//! ISSUING with its ARN (CertIssue learns the ARN from IssueCertificate's answer), and the
//! index that maps the ARN to its host is eventually consistent: a certificate of our CA that
//! no rotation waits for goes to the orphan path ([`super::orphan`]), which waits while its
//! host may still record it (up to [`WAIT_FOR_EVENT`](super::WAIT_FOR_EVENT) after the event) and otherwise revokes
//! it as a certificate that never reached its host.
//!
//! A DeployCert that Run Command refused retryably (a throttle) leaves the rotation DEPLOYING
//! without a command; a redelivered event for that certificate continues it and sends again —
//! once the claim is older than [`CLAIM_FENCE`], so that a duplicated event never sends a
//! second DeployCert while the delivery that claimed is still sending its own.

use rotation::ca::Fetched;
use rotation::config::HostSettings;
use rotation::error::AwsError;
use rotation::events::{Envelope, IssuanceDetail, PCA_ISSUANCE};
use rotation::hosts::DeployEntry;
use rotation::Config;
use state::ports::StoreError;
use state::record::{DeployedCert, FailureStage, RotationState};
use state::{HostId, HostRecord, RotationId};
use time::{Duration, OffsetDateTime};

use super::batch::Shared;
use super::{failure, written, Outcome, Stop};

/// The rotation an issuance event is for: effect, fetch the certificate.
#[derive(Debug, Clone)]
pub struct Issuance {
    /// The host.
    pub host: HostId,
    /// Its record, as loaded (ISSUING this certificate).
    pub record: HostRecord,
    /// The rotation.
    pub rotation: RotationId,
    /// The certificate.
    pub cert_arn: String,
    /// SHA-256 of the CSR's SubjectPublicKeyInfo: the certificate must carry this key (empty
    /// when the deployment is already claimed).
    pub key_fingerprint: String,
    /// The facts recorded with the claim when the deployment is already claimed (DEPLOYING this
    /// certificate, no DeployCert sent): the certificate passed the checks then; it must be the
    /// one claimed, and DeployCert is sent without claiming again.
    pub claimed: Option<DeployedCert>,
}

/// How old a DEPLOYING claim without a DeployCert command must be before another delivery
/// continues it: longer than CertDeploy may run (its timeout, 60 s), so the delivery that
/// claimed has sent or given up.
pub const CLAIM_FENCE: Duration = Duration::seconds(90);

impl Issuance {
    fn fail(&self, record: &HostRecord, stage: FailureStage, reason: String) -> Stop {
        Stop::fail(record, failure(stage, reason, None, &self.cert_arn))
    }
}

/// A fetched certificate that passed the checks: effect, claim the deployment with `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The certificate, PEM.
    pub certificate: String,
    /// The chain, PEM.
    pub chain: String,
    /// The new certificate's facts, recorded with the claim (renewal point and ARN are written
    /// on DEPLOYED, once the host has verified the pair).
    pub pending: DeployedCert,
    /// Its serial.
    pub serial: String,
}

/// A claimed deployment: effect, send DeployCert ([`Deploy::request`]).
#[derive(Debug, Clone)]
pub struct Deploy {
    /// The record after the claim (DEPLOYING).
    pub record: HostRecord,
    /// The host's effective paths.
    pub settings: HostSettings,
    /// The certificate and its checks.
    pub claim: Claim,
}

impl Deploy {
    /// This host's entry in a DeployCert command.
    pub fn entry(&self, issuance: &Issuance) -> DeployEntry {
        DeployEntry {
            host: issuance.host.clone(),
            rotation: issuance.rotation.clone(),
            certificate_pem: self.claim.certificate.clone(),
        }
    }

    /// What this host's command shares with the other hosts of one command.
    pub fn shared(&self) -> Shared {
        Shared {
            cert_path: self.settings.cert_path.clone(),
            key_path: self.settings.key_path.clone(),
            cacert_path: self.settings.cacert_path.clone(),
            signing_helper_path: self.settings.signing_helper_path.clone(),
            chain_pem: self.claim.chain.clone(),
        }
    }
}

/// The certificate ARN of an issuance event from our CA: effect, look up the host waiting for it.
pub fn issuance_event(event: &Envelope<IssuanceDetail>, config: &Config) -> Result<String, Stop> {
    if event.detail_type != PCA_ISSUANCE {
        return Err(Stop::Ignore(format!(
            "detail-type {} is not an issuance",
            event.detail_type
        )));
    }
    let (Some(ca), Some(cert_arn)) = (event.resources.first(), event.resources.get(1)) else {
        return Err(Stop::Ignore(
            "issuance event without CA and certificate ARNs".into(),
        ));
    };
    if *ca != config.ca_arn || !cert_arn.starts_with(&format!("{ca}/certificate/")) {
        return Err(Stop::Ignore(format!(
            "certificate {cert_arn} is not from our CA"
        )));
    }
    Ok(cert_arn.clone())
}

/// With the host's record at `now`, the rotation waiting for `cert_arn`: ISSUING it, or
/// DEPLOYING it without a DeployCert command under a claim older than [`CLAIM_FENCE`] (a send
/// that failed retryably). A failed issuance fails it.
pub fn issuance_record(
    event: &Envelope<IssuanceDetail>,
    cert_arn: &str,
    host: &HostId,
    record: Option<HostRecord>,
    now: OffsetDateTime,
) -> Result<Issuance, Stop> {
    let Some(record) = record else {
        return Err(Stop::Ignore(format!("host {host} is no longer enrolled")));
    };
    let issuance = |rotation: &RotationId, key_fingerprint: &str, claimed| Issuance {
        host: host.clone(),
        rotation: rotation.clone(),
        cert_arn: cert_arn.to_owned(),
        key_fingerprint: key_fingerprint.to_owned(),
        record: record.clone(),
        claimed,
    };
    let issuance = match &record.state {
        RotationState::Issuing {
            rotation,
            cert_arn: waiting,
            key_fingerprint,
        } if waiting == cert_arn => issuance(rotation, key_fingerprint, None),
        RotationState::Deploying {
            rotation,
            cert_arn: deploying,
            command_id: None,
            pending,
        } if deploying == cert_arn => {
            let since = record.state_since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
            if now - since < CLAIM_FENCE {
                return Err(Stop::not_ready(&format!(
                    "host {host} claimed the deployment of {cert_arn} at {since}: that delivery \
                     may still be sending DeployCert"
                )));
            }
            issuance(rotation, "", Some(pending.clone()))
        }
        other => {
            return Err(Stop::Ignore(format!(
                "host {host} is in {} (stale or duplicated event)",
                other.kind()
            )))
        }
    };
    if event.detail.result != "success" {
        return Err(issuance.fail(
            &record,
            FailureStage::Issue,
            "Private CA reported that the issuance failed".into(),
        ));
    }
    Ok(issuance)
}

/// Whether to ask Private CA again (after the shell's next delay): the certificate is still
/// being issued, or the request failed in a way a retry may cure.
pub fn fetch_again(answer: &Result<Fetched, AwsError>) -> bool {
    match answer {
        Ok(Fetched::Pending) => true,
        Ok(Fetched::Ready { .. }) => false,
        Err(e) => e.retryable,
    }
}

/// With Private CA's last answer to the fetch, the certificate to deploy: still issuing is not
/// ready (Lambda retries), a refusal or a certificate that fails the checks fails the rotation.
pub fn fetched(
    issuance: &Issuance,
    answer: Result<Fetched, AwsError>,
    now: OffsetDateTime,
) -> Result<Claim, Stop> {
    let (certificate, chain) = match answer {
        Ok(Fetched::Ready { certificate, chain }) => (certificate, chain),
        Ok(Fetched::Pending) => {
            return Err(Stop::not_ready(&format!(
                "{} is still being issued",
                issuance.cert_arn
            )))
        }
        Err(e) if e.retryable => {
            return Err(Stop::not_ready(&format!(
                "{} is still being issued",
                issuance.cert_arn
            )))
        }
        Err(e) => {
            return Err(issuance.fail(
                &issuance.record,
                FailureStage::Deploy,
                format!("could not fetch the certificate: {e}"),
            ))
        }
    };
    let facts = match &issuance.claimed {
        None => check_certificate(
            &certificate,
            &chain,
            &issuance.host,
            &issuance.key_fingerprint,
            now,
        ),
        Some(claimed) => check_claimed_certificate(&certificate, &chain, claimed),
    }
    .map_err(|reason| issuance.fail(&issuance.record, FailureStage::Deploy, reason))?;
    Ok(Claim {
        pending: DeployedCert {
            serial: Some(facts.serial.clone()),
            not_before: Some(facts.not_before),
            not_after: facts.not_after,
            renew_at: None,
            cert_arn: None,
        },
        serial: facts.serial,
        certificate,
        chain,
    })
}

/// Whether `certificate` may go to `host`: readable, for that host and nothing else, carrying
/// the CSR's key (`fingerprint`), a Roles Anywhere end-entity certificate valid at `now`, and
/// signed by the first certificate of `chain` (the issuing CA).
pub fn check_certificate(
    certificate: &str,
    chain: &str,
    host: &HostId,
    fingerprint: &str,
    now: OffsetDateTime,
) -> Result<pki::CertificateFacts, String> {
    let facts = pki::parse_certificate_pem(certificate)
        .map_err(|e| format!("issued certificate unreadable: {e}"))?;
    pki::check_issued_certificate(&facts, host.as_str(), fingerprint, now)
        .map_err(|e| format!("issued certificate refused: {e}"))?;
    pki::certificate_signed_by(certificate, chain)
        .map_err(|e| format!("certificate does not chain to the CA: {e}"))?;
    Ok(facts)
}

/// Whether `certificate` is the one a claim recorded (`claimed`: it passed
/// [`check_certificate`] before the claim), still signed by the first certificate of `chain`.
pub fn check_claimed_certificate(
    certificate: &str,
    chain: &str,
    claimed: &DeployedCert,
) -> Result<pki::CertificateFacts, String> {
    let facts = pki::parse_certificate_pem(certificate)
        .map_err(|e| format!("issued certificate unreadable: {e}"))?;
    if claimed.serial.as_deref() != Some(facts.serial.as_str()) {
        return Err(format!(
            "issued certificate {} is not the one claimed ({})",
            facts.serial,
            claimed.serial.as_deref().unwrap_or("no serial")
        ));
    }
    pki::certificate_signed_by(certificate, chain)
        .map_err(|e| format!("certificate does not chain to the CA: {e}"))?;
    Ok(facts)
}

/// With the store's answer to the claim, the DeployCert to send. A conflict is a duplicated
/// event that claimed first.
pub fn claimed(
    issuance: &Issuance,
    claim: Claim,
    answer: Result<HostRecord, StoreError>,
    config: &Config,
) -> Result<Deploy, Stop> {
    let record = written(answer, &issuance.record, |e| {
        failure(
            FailureStage::Deploy,
            format!("could not claim the deployment: {e}"),
            None,
            &issuance.cert_arn,
        )
    })?;
    Ok(Deploy {
        settings: config.host_settings(&record),
        record,
        claim,
    })
}

/// Whether to send DeployCert again (after the shell's next delay): Run Command refused in a
/// way a retry may cure (a throttle).
pub fn send_again(answer: &Result<String, AwsError>) -> bool {
    matches!(answer, Err(e) if e.retryable)
}

/// With Run Command's last answer to DeployCert, the command to record. A refusal a retry may
/// cure leaves the rotation DEPLOYING without a command and fails the invocation as retryable:
/// the redelivered event continues it. Any other refusal fails the rotation with its reason.
pub fn deploy_sent(
    issuance: &Issuance,
    deploy: &Deploy,
    answer: Result<String, AwsError>,
) -> Result<String, Stop> {
    match answer {
        Ok(command_id) => Ok(command_id),
        Err(e) if e.retryable => Err(Stop::Error(e.into())),
        Err(e) => Err(issuance.fail(
            &deploy.record,
            FailureStage::Deploy,
            format!("could not send DeployCert: {e}"),
        )),
    }
}

/// With the store's answer to recording the DeployCert command, the outcome.
pub fn deploy_recorded(
    issuance: &Issuance,
    deploy: &Deploy,
    command_id: String,
    answer: Result<HostRecord, StoreError>,
) -> Result<Outcome, Stop> {
    written(answer, &deploy.record, |e| {
        failure(
            FailureStage::Deploy,
            format!("could not record the DeployCert command: {e}"),
            Some(&command_id),
            &issuance.cert_arn,
        )
    })?;
    Ok(Outcome::DeploySent {
        host: issuance.host.to_string(),
        command_id,
    })
}

#[cfg(test)]
mod tests;
