//! The CA's CRLs: building them (signed by the CA key, or forged by another CA for tests),
//! writing them to the S3 bucket of [`CrlTarget`] (in moto) and announcing them with the S3
//! "Object Created" and "ACM Private CA CRL Generation" events, as the service and EventBridge do.
//!
//! Why apart: the CRL path has its own S3 client and event shapes and is what the CRL processor's
//! tests depend on; issuance does not touch it (revocations only add records it reads).

use rcgen::{CertificateParams, Issuer, KeyPair, SerialNumber};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::ca::{ca_id_of, ca_params, Ca};
use super::{pca_event, serial_hex, serial_key, PcaHandle, State};
use crate::emulators::{eventbridge_event, lock, ACCOUNT};

/// The S3 bucket (in moto) the CA writes its CRLs to (`RevocationConfiguration.CrlConfiguration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlTarget {
    /// The S3 endpoint, e.g. [`crate::moto::MotoServer::url`].
    pub s3_endpoint: String,
    /// The bucket name (created on first publication if missing).
    pub bucket: String,
    /// Key prefix: `"crl/"` as Private CA writes without a CustomPath; the key is
    /// `<prefix><CA id>.crl`.
    pub prefix: String,
}

impl CrlTarget {
    /// A target in `bucket` at `s3_endpoint` with the service's default prefix `crl/`.
    pub fn new(s3_endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            s3_endpoint: s3_endpoint.into(),
            bucket: bucket.into(),
            prefix: DEFAULT_CRL_PREFIX.to_string(),
        }
    }

    /// The key the CA with `ca_arn` writes its CRL to: `<prefix><CA id>.crl`.
    fn key_for(&self, ca_arn: &str) -> String {
        format!("{}{}.crl", self.prefix, ca_id_of(ca_arn))
    }
}

/// Where Private CA puts CRLs in the bucket when the CA has no CustomPath.
pub const DEFAULT_CRL_PREFIX: &str = "crl/";

/// Validity of a published CRL (thisUpdate → nextUpdate).
pub const CRL_VALIDITY: time::Duration = time::Duration::days(1);

/// One CRL written by [`PcaHandle::publish_crl`].
#[derive(Clone, Debug)]
pub struct PublishedCrl {
    /// The bucket it was written to.
    pub bucket: String,
    /// The object key, `<prefix><CA id>.crl`.
    pub key: String,
    /// The CRL (DER), byte for byte the object's body.
    pub der: Vec<u8>,
    /// Its CRL number (1 for the CA's first CRL).
    pub number: u64,
    /// The object's ETag as S3 answered it, without quotes (as in the event).
    pub etag: String,
    /// The S3 "Object Created" event pushed on the bus.
    pub s3_event: Value,
    /// The "ACM Private CA CRL Generation" event pushed on the bus.
    pub pca_event: Value,
}

impl PcaHandle {
    /// Where CRLs go, if the CA publishes them.
    pub fn crl_target(&self) -> Option<CrlTarget> {
        self.shared.crl.clone()
    }

    /// The key the CA writes its CRL to: `<prefix><CA id>.crl` (`None` without a CRL target).
    pub fn crl_key(&self) -> Option<String> {
        let t = self.shared.crl.as_ref()?;
        Some(t.key_for(&self.ca_arn()))
    }

    /// Number of the last CRL [`publish_crl`](Self::publish_crl) wrote (0: none yet).
    pub fn last_crl_number(&self) -> u64 {
        lock(&self.shared.state).crl_number
    }

    /// Does now what the service does within ~30 minutes of a revocation: builds a CRL of every
    /// revocation so far (signed by the CA key, next CRL number, valid one day), writes it to
    /// the target bucket (creating the bucket if missing), and pushes the S3 "Object Created"
    /// event (requester `acm-pca.amazonaws.com`) and "ACM Private CA CRL Generation" onto the bus.
    ///
    /// Fails when [`PcaConfig::crl`] is `None` or S3 refuses the write (the CRL number is then
    /// used up, as a failed write of the service would leave a gap too).
    pub async fn publish_crl(&self) -> anyhow::Result<PublishedCrl> {
        let sink = self.crl_sink()?;
        let (der, number, ca_arn) = {
            let mut st = lock(&self.shared.state);
            st.crl_number += 1;
            let number = st.crl_number;
            let entries = st
                .revoked
                .iter()
                .map(|r| revoked_entry(&r.serial, r.revoked_at, &r.reason))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let der = sign_crl(&st.ca, number, OffsetDateTime::now_utc(), entries)?;
            (der, number, st.ca.arn.clone())
        };
        let key = sink.0.key_for(&ca_arn);
        let (etag, s3_event) = self
            .put_object(sink, &key, &der, "acm-pca.amazonaws.com")
            .await?;
        let pca_event = pca_event("ACM Private CA CRL Generation", vec![ca_arn], "success");
        self.shared.bus.push(pca_event.clone());
        Ok(PublishedCrl {
            bucket: sink.0.bucket.clone(),
            key,
            der,
            number,
            etag,
            s3_event,
            pca_event,
        })
    }

    /// Writes `body` at `key` in the CRL bucket as someone other than the CA would (an attacker
    /// with write access to the prefix, a replay of an old CRL): S3 still announces it with an
    /// "Object Created" event (requester: the account), but no "CRL Generation" event follows.
    /// Returns the event pushed.
    pub async fn put_crl_object(&self, key: &str, body: &[u8]) -> anyhow::Result<Value> {
        let (_, event) = self
            .put_object(self.crl_sink()?, key, body, ACCOUNT)
            .await?;
        Ok(event)
    }

    /// A CRL signed by the real CA key with CRL number `n` and the given serials revoked (hex,
    /// colons optional; a serial this CA revoked keeps its recorded reason and time, others are
    /// `unspecified` now). Does not touch the CA's own CRL counter: for replaying older numbers.
    pub fn crl_der_with_number(&self, n: u64, revoked: &[&str]) -> Vec<u8> {
        let st = lock(&self.shared.state);
        let now = OffsetDateTime::now_utc();
        let entries = revoked
            .iter()
            .map(|s| {
                let hex = serial_hex(s);
                match st
                    .revoked
                    .iter()
                    .find(|r| serial_key(&r.serial) == serial_key(&hex))
                {
                    Some(r) => revoked_entry(&r.serial, r.revoked_at, &r.reason),
                    None => revoked_entry(&hex, now, "UNSPECIFIED"),
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .expect("revoked serials are hex");
        sign_crl(&st.ca, n, now, entries).expect("the CA signs a CRL")
    }

    /// A CRL with a valid signature from ANOTHER CA whose subject name is byte for byte the same
    /// as ours (the hard case: only the signature check tells them apart). It lists this CA's
    /// revocations minus the most recent one and carries a CRL number 1000 above the last
    /// published one, so a "newer" check alone would take it.
    pub fn foreign_crl_der(&self) -> Vec<u8> {
        let st = lock(&self.shared.state);
        let params = ca_params(
            &st.ca.common_name,
            st.ca.organization.as_deref(),
            OffsetDateTime::now_utc(),
            time::Duration::days(365),
        );
        foreign_crl(&st, params)
    }

    /// Like [`foreign_crl_der`](Self::foreign_crl_der), from another CA whose subject name
    /// differs from ours (`CN=Foreign Private CA`).
    pub fn foreign_crl_der_other_name(&self) -> Vec<u8> {
        let st = lock(&self.shared.state);
        let params = ca_params(
            "Foreign Private CA",
            st.ca.organization.as_deref(),
            OffsetDateTime::now_utc(),
            time::Duration::days(365),
        );
        foreign_crl(&st, params)
    }

    /// Where CRLs go and the S3 client that writes them, or the error of a CA without a
    /// [`PcaConfig::crl`].
    fn crl_sink(&self) -> anyhow::Result<(&CrlTarget, &aws_sdk_s3::Client)> {
        self.shared
            .crl
            .as_ref()
            .zip(self.s3.as_ref())
            .ok_or_else(|| anyhow::anyhow!("the emulated CA has no CRL target (PcaConfig::crl)"))
    }

    /// PUTs `body` at `key` (creating the bucket once if missing) and pushes the S3 "Object
    /// Created" event; returns the ETag (unquoted) and the event.
    async fn put_object(
        &self,
        (target, s3): (&CrlTarget, &aws_sdk_s3::Client),
        key: &str,
        body: &[u8],
        requester: &str,
    ) -> anyhow::Result<(String, Value)> {
        self.bucket_ready
            .get_or_try_init(|| async {
                if s3
                    .head_bucket()
                    .bucket(&target.bucket)
                    .send()
                    .await
                    .is_err()
                {
                    s3.create_bucket()
                        .bucket(&target.bucket)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "creating CRL bucket {}: {}",
                                target.bucket,
                                aws_sdk_s3::error::DisplayErrorContext(e)
                            )
                        })?;
                    // Versioned, as the stack's CRL bucket is: every CRL stays readable at the
                    // version its event names.
                    s3.put_bucket_versioning()
                        .bucket(&target.bucket)
                        .versioning_configuration(
                            aws_sdk_s3::types::VersioningConfiguration::builder()
                                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "versioning CRL bucket {}: {}",
                                target.bucket,
                                aws_sdk_s3::error::DisplayErrorContext(e)
                            )
                        })?;
                }
                anyhow::Ok(())
            })
            .await?;
        let out = s3
            .put_object()
            .bucket(&target.bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "writing s3://{}/{key}: {}",
                    target.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })?;
        let etag = out
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        let event = s3_object_created(
            &target.bucket,
            key,
            body.len(),
            &etag,
            out.version_id(),
            requester,
        );
        self.shared.bus.push(event.clone());
        Ok((etag, event))
    }
}

/// Random upper-case alphanumerics (S3 request IDs) or hex digits (sequencers).
fn random_text(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
        .collect()
}

/// The EventBridge "Object Created" event S3 sends for a PUT (the shape of
/// `tests/tests/fixtures/events/s3-object-created-crl.json`).
fn s3_object_created(
    bucket: &str,
    key: &str,
    size: usize,
    etag: &str,
    version_id: Option<&str>,
    requester: &str,
) -> Value {
    let request_id = random_text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    let sequencer = random_text(18, b"0123456789ABCDEF");
    let source_ip = if requester == ACCOUNT {
        "127.0.0.1"
    } else {
        requester
    };
    let mut object = json!({
        "key": key,
        "size": size,
        "etag": etag,
        "sequencer": sequencer,
    });
    if let Some(v) = version_id.filter(|v| !v.is_empty() && *v != "null") {
        object["version-id"] = json!(v);
    }
    eventbridge_event(
        "Object Created",
        "aws.s3",
        vec![format!("arn:aws:s3:::{bucket}")],
        json!({
            "version": "0",
            "bucket": { "name": bucket },
            "object": object,
            "request-id": request_id,
            "requester": requester,
            "source-ip-address": source_ip,
            "reason": "PutObject",
        }),
    )
}

/// The RFC 5280 reason code of a `RevocationReason`. `UNSPECIFIED` gives none: RFC 5280 §5.3.1
/// says the reasonCode extension SHOULD be absent rather than carry `unspecified`.
fn reason_code(reason: &str) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    match reason {
        "KEY_COMPROMISE" => Some(R::KeyCompromise),
        "CERTIFICATE_AUTHORITY_COMPROMISE" => Some(R::CaCompromise),
        "AFFILIATION_CHANGED" => Some(R::AffiliationChanged),
        "SUPERSEDED" => Some(R::Superseded),
        "CESSATION_OF_OPERATION" => Some(R::CessationOfOperation),
        "PRIVILEGE_WITHDRAWN" => Some(R::PrivilegeWithdrawn),
        "A_A_COMPROMISE" => Some(R::AaCompromise),
        _ => None,
    }
}

/// One CRL entry for the serial in hex (no separators).
fn revoked_entry(
    serial_hex: &str,
    at: OffsetDateTime,
    reason: &str,
) -> anyhow::Result<rcgen::RevokedCertParams> {
    let even = if serial_hex.len() % 2 == 1 {
        format!("0{serial_hex}")
    } else {
        serial_hex.to_string()
    };
    let bytes = hex::decode(&even)?;
    Ok(rcgen::RevokedCertParams {
        serial_number: SerialNumber::from_slice(&bytes),
        revocation_time: at.replace_nanosecond(0).unwrap_or(at),
        reason_code: reason_code(reason),
        invalidity_date: None,
    })
}

/// The CRL parameters: thisUpdate `now` (whole seconds), nextUpdate a day later.
fn crl_params(
    number: u64,
    now: OffsetDateTime,
    entries: Vec<rcgen::RevokedCertParams>,
) -> rcgen::CertificateRevocationListParams {
    let this_update = now.replace_nanosecond(0).unwrap_or(now);
    rcgen::CertificateRevocationListParams {
        this_update,
        next_update: this_update + CRL_VALIDITY,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
}

/// A DER CRL signed by the CA's key with the CA's default signing algorithm.
fn sign_crl(
    ca: &Ca,
    number: u64,
    now: OffsetDateTime,
    entries: Vec<rcgen::RevokedCertParams>,
) -> anyhow::Result<Vec<u8>> {
    let alg = ca
        .key_algorithm
        .signer(ca.key_algorithm.default_signing_algorithm())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = KeyPair::from_pem_and_sign_algo(&ca.key_pem, alg)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key)?;
    let crl = crl_params(number, now, entries).signed_by(&issuer)?;
    Ok(crl.der().to_vec())
}

/// A CRL signed by a fresh CA (same key algorithm as ours) made from `params`.
fn foreign_crl(st: &State, params: CertificateParams) -> Vec<u8> {
    let key = st.ca.key_algorithm.generate().expect("a foreign CA key");
    let issuer = Issuer::new(params, key);
    let now = OffsetDateTime::now_utc();
    let keep = st.revoked.len().saturating_sub(1);
    let entries = st.revoked[..keep]
        .iter()
        .map(|r| revoked_entry(&r.serial, r.revoked_at, &r.reason))
        .collect::<anyhow::Result<Vec<_>>>()
        .expect("recorded serials are hex");
    crl_params(st.crl_number + 1000, now, entries)
        .signed_by(&issuer)
        .expect("the foreign CA signs a CRL")
        .der()
        .to_vec()
}

/// `CrlConfiguration` as DescribeCertificateAuthority reports it.
pub(super) fn crl_configuration(target: Option<&CrlTarget>) -> Value {
    match target {
        None => json!({ "Enabled": false }),
        Some(t) => {
            let mut c = json!({
                "Enabled": true,
                "ExpirationInDays": CRL_VALIDITY.whole_days(),
                "S3BucketName": t.bucket,
                "S3ObjectAcl": "BUCKET_OWNER_FULL_CONTROL",
                "CrlType": "COMPLETE",
            });
            if t.prefix != DEFAULT_CRL_PREFIX {
                c["CustomPath"] = json!(t.prefix.trim_end_matches('/'));
            }
            c
        }
    }
}
