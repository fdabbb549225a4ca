//! AWS Private CA emulator: one root CA (rcgen) that issues the certificates our code asks for.
//!
//! Why: our security rests on what Private CA does with IssueCertificate's arguments (Validity,
//! SigningAlgorithm, the client-auth template's extensions, idempotency tokens, the 7-day limit of
//! a short-lived CA) and on its asynchrony (GetCertificate answers `RequestInProgressException`
//! before the certificate is ready; issuance is announced by an EventBridge event). moto ignores
//! Validity and SigningAlgorithm and gives templates no extensions, so this emulator speaks AWS
//! JSON 1.1 (`ACMPrivateCA.*`) and does those things for real:
//!
//! - `IssueCertificate` verifies the CSR's signature (`MalformedCSRException` otherwise), checks
//!   the signing algorithm against the CA key family and the validity against the usage mode
//!   (`InvalidArgsException`), copies the subject (and SANs) from the CSR without judging them
//!   (checking the CN against the host is our code's job), applies the template's extensions,
//!   gives a random positive 16-byte serial (the certificate ARN ends with it in hex), dedupes on
//!   `IdempotencyToken` + CSR for 5 minutes, and pushes "ACM Private CA Certificate Issuance".
//! - `NotBefore` is the issuance time minus 60 minutes (the service's default) unless
//!   `ValidityNotBefore` says otherwise.
//! - The first `GetCertificate` of each certificate answers `RequestInProgressException`
//!   (configurable), then the PEM certificate and the chain (the CA certificate).
//! - `RevokeCertificate` (serial in hex, colons optional) records the revocation (serial, reason,
//!   time) and pushes "ACM Private CA Certificate Revocation"; a second one answers
//!   `RequestAlreadyProcessedException`.
//! - CRLs: the real service writes a DER CRL to the configured S3 bucket within about 30 minutes
//!   of a revocation; the emulator does it on demand ([`PcaHandle::publish_crl`]) when
//!   [`PcaConfig::crl`] names a bucket (in moto): a real CRL v2 signed by the CA key (CRL number
//!   strictly increasing from 1, nextUpdate one day on, one entry per revoked serial with its
//!   reason code), stored at `<prefix><CA id>.crl` (`crl/<CA id>.crl` is where Private CA writes
//!   it when no CustomPath is set), announced by the S3 "Object Created" event and the
//!   "ACM Private CA CRL Generation" event, as EventBridge delivers them. Test helpers forge the
//!   CRLs an attacker or a replay would put there ([`PcaHandle::foreign_crl_der`],
//!   [`PcaHandle::crl_der_with_number`], [`PcaHandle::put_crl_object`]).
//!
//! Emulator limits: one CA per emulator, a root (so `GetCertificateAuthorityCertificate` has no
//! chain); ECDSA signatures only with the curve's own hash (P-256 → SHA256WITHECDSA, P-384 →
//! SHA384WITHECDSA), no RSA-PSS (the service allows more; such requests answer
//! `InvalidArgsException` naming the emulator limit). The CA private key stays inside.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    SignatureAlgorithm, SubjectPublicKeyInfo,
};
use serde_json::{json, Value};
use sha2::Digest as _;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;

use super::wire::{self, input, ApiError, JsonApi, Server};
use super::{epoch_seconds, eventbridge_event, lock, Capture, EventBus, ACCOUNT, REGION};

/// The template Roles Anywhere end-entity certificates are issued with.
pub const CLIENT_AUTH_TEMPLATE: &str =
    "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1";
/// The template used when IssueCertificate names none.
pub const DEFAULT_TEMPLATE: &str = "arn:aws:acm-pca:::template/EndEntityCertificate/V1";
/// The server-authentication end-entity template.
pub const SERVER_AUTH_TEMPLATE: &str =
    "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1";
/// Longest validity a short-lived-mode CA issues.
pub const SHORT_LIVED_MAX: time::Duration = time::Duration::days(7);

/// Key algorithm of the emulated CA (`CertificateAuthorityConfiguration.KeyAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaKeyAlgorithm {
    /// `EC_prime256v1`.
    EcPrime256v1,
    /// `EC_secp384r1`.
    EcSecp384r1,
    /// `RSA_2048`.
    Rsa2048,
    /// `RSA_3072`.
    Rsa3072,
    /// `RSA_4096`.
    Rsa4096,
}

impl CaKeyAlgorithm {
    /// The API name (`EC_prime256v1`, `RSA_2048` …).
    pub fn api_name(self) -> &'static str {
        match self {
            Self::EcPrime256v1 => "EC_prime256v1",
            Self::EcSecp384r1 => "EC_secp384r1",
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
        }
    }

    /// Whether the key is RSA.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// The signing algorithm the CA's own certificate uses.
    pub fn default_signing_algorithm(self) -> &'static str {
        match self {
            Self::EcPrime256v1 => "SHA256WITHECDSA",
            Self::EcSecp384r1 => "SHA384WITHECDSA",
            _ => "SHA256WITHRSA",
        }
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            Self::EcPrime256v1 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Self::EcSecp384r1 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Self::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            Self::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
            }
            Self::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
        }
    }

    /// The rcgen algorithm that signs with this key and `signing_algorithm`, or the error the
    /// service (or the emulator's limit) gives.
    fn signer(self, signing_algorithm: &str) -> Result<&'static SignatureAlgorithm, ApiError> {
        let family_rsa =
            signing_algorithm.ends_with("WITHRSA") || signing_algorithm.ends_with("WITHRSA_PSS");
        let family_ec = signing_algorithm.ends_with("WITHECDSA");
        if !family_rsa && !family_ec {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{signing_algorithm}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set"
            )));
        }
        if family_rsa != self.is_rsa() {
            return Err(ApiError::new(
                "InvalidArgsException",
                format!(
                    "The signing algorithm {signing_algorithm} is not compatible with the CA key algorithm {}",
                    self.api_name()
                ),
            ));
        }
        let alg = match (self, signing_algorithm) {
            (Self::EcPrime256v1, "SHA256WITHECDSA") => &rcgen::PKCS_ECDSA_P256_SHA256,
            (Self::EcSecp384r1, "SHA384WITHECDSA") => &rcgen::PKCS_ECDSA_P384_SHA384,
            (k, "SHA256WITHRSA") if k.is_rsa() => &rcgen::PKCS_RSA_SHA256,
            (k, "SHA384WITHRSA") if k.is_rsa() => &rcgen::PKCS_RSA_SHA384,
            (k, "SHA512WITHRSA") if k.is_rsa() => &rcgen::PKCS_RSA_SHA512,
            _ => {
                return Err(ApiError::new(
                    "InvalidArgsException",
                    format!(
                        "emulator limit: {signing_algorithm} with a {} CA is not implemented",
                        self.api_name()
                    ),
                ))
            }
        };
        Ok(alg)
    }
}

/// `UsageMode` of the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageMode {
    /// `SHORT_LIVED_CERTIFICATE`: issues certificates valid 7 days at most.
    ShortLivedCertificate,
    /// `GENERAL_PURPOSE`.
    GeneralPurpose,
}

impl UsageMode {
    fn api_name(self) -> &'static str {
        match self {
            Self::ShortLivedCertificate => "SHORT_LIVED_CERTIFICATE",
            Self::GeneralPurpose => "GENERAL_PURPOSE",
        }
    }
}

/// How to start the Private CA emulator.
#[derive(Clone, Debug)]
pub struct PcaConfig {
    /// The CA key algorithm.
    pub key_algorithm: CaKeyAlgorithm,
    /// The CA subject's CN.
    pub common_name: String,
    /// The CA subject's O, if any.
    pub organization: Option<String>,
    /// Short-lived (the project's mode) or general purpose.
    pub usage_mode: UsageMode,
    /// Validity of the CA certificate.
    pub ca_validity: time::Duration,
    /// Where issuance events go.
    pub bus: EventBus,
    /// Where exchanges and call counts go.
    pub capture: Capture,
    /// How many `GetCertificate` calls per certificate answer `RequestInProgressException` first.
    pub in_progress_calls: u32,
    /// How long an `IdempotencyToken` + CSR pair returns the same certificate ARN.
    pub idempotency_window: Duration,
    /// Where [`PcaHandle::publish_crl`] writes CRLs (`None`: the CA publishes no CRL, as with
    /// `CrlConfiguration.Enabled = false`).
    pub crl: Option<CrlTarget>,
}

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

impl Default for PcaConfig {
    fn default() -> Self {
        Self {
            key_algorithm: CaKeyAlgorithm::EcPrime256v1,
            common_name: "Emulated Private CA".into(),
            organization: Some("cert-rotation tests".into()),
            usage_mode: UsageMode::ShortLivedCertificate,
            ca_validity: time::Duration::days(3650),
            bus: EventBus::new(),
            capture: Capture::new(),
            in_progress_calls: 1,
            idempotency_window: Duration::from_secs(300),
            crl: None,
        }
    }
}

/// One issued certificate, for test assertions.
#[derive(Clone, Debug)]
pub struct IssuedRecord {
    /// The certificate ARN.
    pub arn: String,
    /// Serial number, lowercase hex without separators (also the ARN's last part).
    pub serial: String,
    /// Subject as x509-parser prints it (`CN=mi-…`).
    pub subject: String,
    /// NotBefore.
    pub not_before: OffsetDateTime,
    /// NotAfter.
    pub not_after: OffsetDateTime,
    /// The CSR as received (PEM).
    pub csr_pem: String,
    /// The certificate (PEM).
    pub certificate_pem: String,
    /// The template used.
    pub template_arn: String,
    /// The signing algorithm asked for.
    pub signing_algorithm: String,
    /// The idempotency token, if any.
    pub idempotency_token: Option<String>,
}

/// One revocation, for test assertions (the CRL work builds on these).
#[derive(Clone, Debug)]
pub struct RevokedRecord {
    /// The certificate ARN.
    pub arn: String,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// `RevocationReason` as sent (`KEY_COMPROMISE` …).
    pub reason: String,
    /// When the revocation was recorded.
    pub revoked_at: OffsetDateTime,
}

const REVOCATION_REASONS: [&str; 8] = [
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
];

struct CertEntry {
    record: Option<IssuedRecord>,
    get_calls: u32,
}

struct Ca {
    arn: String,
    key_algorithm: CaKeyAlgorithm,
    /// PKCS#8 PEM of the CA key: never leaves the emulator.
    key_pem: String,
    cert_pem: String,
    serial: String,
    common_name: String,
    organization: Option<String>,
    usage_mode: UsageMode,
    status: String,
    created: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

struct State {
    ca: Ca,
    certs: HashMap<String, CertEntry>,
    order: Vec<String>,
    idempotency: HashMap<(String, [u8; 32]), (String, Instant)>,
    fail_next: u32,
    revoked: Vec<RevokedRecord>,
    /// Number of the last CRL published (0: none yet).
    crl_number: u64,
}

struct Shared {
    state: Mutex<State>,
    bus: EventBus,
    crl: Option<CrlTarget>,
    in_progress_calls: u32,
    idempotency_window: Duration,
}

/// A running Private CA emulator. Dropping it stops the server.
pub struct PcaHandle {
    shared: Arc<Shared>,
    server: Server,
    capture: Capture,
    s3: Option<aws_sdk_s3::Client>,
    bucket_ready: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PcaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcaHandle")
            .field("url", &self.server.url())
            .field("ca_arn", &self.ca_arn())
            .finish()
    }
}

fn random_serial() -> [u8; 16] {
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f).max(1);
    b
}

/// Starts the emulator (creating its CA) on `127.0.0.1:<free port>`.
pub async fn start(config: PcaConfig) -> anyhow::Result<PcaHandle> {
    let key = config.key_algorithm.generate()?;
    let now = OffsetDateTime::now_utc();
    let mut params = ca_params(
        &config.common_name,
        config.organization.as_deref(),
        now,
        config.ca_validity,
    );
    let serial = random_serial();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key)?;
    let ca = Ca {
        arn: format!(
            "arn:aws:acm-pca:{REGION}:{ACCOUNT}:certificate-authority/{}",
            super::uuid_v4()
        ),
        key_algorithm: config.key_algorithm,
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
        serial: hex::encode(serial),
        common_name: config.common_name.clone(),
        organization: config.organization.clone(),
        usage_mode: config.usage_mode,
        status: "ACTIVE".into(),
        created: now,
        not_before: params.not_before,
        not_after: params.not_after,
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ca,
            certs: HashMap::new(),
            order: Vec::new(),
            idempotency: HashMap::new(),
            fail_next: 0,
            revoked: Vec::new(),
            crl_number: 0,
        }),
        bus: config.bus,
        crl: config.crl.clone(),
        in_progress_calls: config.in_progress_calls,
        idempotency_window: config.idempotency_window,
    });
    let server = wire::serve(
        "ACMPrivateCA",
        "ACMPCA",
        Arc::new(Api(shared.clone())),
        config.capture.clone(),
    )
    .await?;
    let s3 = config.crl.as_ref().map(|t| {
        aws_sdk_s3::Client::from_conf(crate::aws::s3_config(&t.s3_endpoint, false).build())
    });
    Ok(PcaHandle {
        shared,
        server,
        capture: config.capture,
        s3,
        bucket_ready: tokio::sync::OnceCell::new(),
    })
}

/// The parameters of a root CA certificate named `O=<organization>, CN=<common_name>`.
fn ca_params(
    common_name: &str,
    organization: Option<&str>,
    now: OffsetDateTime,
    validity: time::Duration,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
    params
}

impl PcaHandle {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_ACM_PCA`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The CA's ARN.
    pub fn ca_arn(&self) -> String {
        lock(&self.shared.state).ca.arn.clone()
    }

    /// The CA certificate (PEM), e.g. the Roles Anywhere trust anchor's source.
    pub fn ca_certificate_pem(&self) -> String {
        trim_pem(&lock(&self.shared.state).ca.cert_pem)
    }

    /// The event bus this emulator writes to.
    pub fn bus(&self) -> EventBus {
        self.shared.bus.clone()
    }

    /// The capture this emulator records into.
    pub fn capture(&self) -> Capture {
        self.capture.clone()
    }

    /// Calls per operation (of every emulator sharing this capture).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.capture.calls()
    }

    /// Every certificate issued so far, oldest first (failed issuances are not in it).
    pub fn issued(&self) -> Vec<IssuedRecord> {
        let st = lock(&self.shared.state);
        st.order
            .iter()
            .filter_map(|a| st.certs.get(a).and_then(|c| c.record.clone()))
            .collect()
    }

    /// Every revocation so far, oldest first.
    pub fn revoked(&self) -> Vec<RevokedRecord> {
        lock(&self.shared.state).revoked.clone()
    }

    /// Makes the next IssueCertificate return an ARN whose issuance fails: the event says
    /// `result: failure` and GetCertificate answers `RequestFailedException`.
    pub fn fail_next_issuance(&self) {
        lock(&self.shared.state).fail_next += 1;
    }

    /// Sets the CA status (`ACTIVE`, `DISABLED` …); IssueCertificate needs `ACTIVE`.
    pub fn set_status(&self, status: &str) {
        lock(&self.shared.state).ca.status = status.to_string();
    }

    /// The CA's ID: the UUID at the end of its ARN.
    pub fn ca_id(&self) -> String {
        ca_id_of(&lock(&self.shared.state).ca.arn)
    }

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
        let event = s3_object_created(&target.bucket, key, body.len(), &etag, requester);
        self.shared.bus.push(event.clone());
        Ok((etag, event))
    }
}

/// The UUID at the end of a CA ARN.
fn ca_id_of(ca_arn: &str) -> String {
    ca_arn.rsplit('/').next().unwrap_or_default().to_string()
}

/// A serial as callers write it (hex, colons optional, any case): lower-case hex without
/// separators.
fn serial_hex(serial: &str) -> String {
    serial.replace(':', "").to_lowercase()
}

/// What serials are compared by: [`serial_hex`] without leading zeros (they do not matter).
fn serial_key(serial: &str) -> String {
    serial_hex(serial).trim_start_matches('0').to_string()
}

/// An `aws.acm-pca` event with `{"result": result}` as its detail.
fn pca_event(detail_type: &str, resources: Vec<String>, result: &str) -> Value {
    eventbridge_event(
        detail_type,
        "aws.acm-pca",
        resources,
        json!({ "result": result }),
    )
}

/// Random upper-case alphanumerics (S3 request IDs) or hex digits (sequencers).
fn random_text(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
        .collect()
}

/// The EventBridge "Object Created" event S3 sends for a PUT (the shape of
/// `/work/shared/events/s3-object-created-crl.json`).
fn s3_object_created(bucket: &str, key: &str, size: usize, etag: &str, requester: &str) -> Value {
    let request_id = random_text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    let sequencer = random_text(18, b"0123456789ABCDEF");
    let source_ip = if requester == ACCOUNT {
        "127.0.0.1"
    } else {
        requester
    };
    eventbridge_event(
        "Object Created",
        "aws.s3",
        vec![format!("arn:aws:s3:::{bucket}")],
        json!({
            "version": "0",
            "bucket": { "name": bucket },
            "object": {
                "key": key,
                "size": size,
                "etag": etag,
                "sequencer": sequencer,
            },
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

fn trim_pem(p: &str) -> String {
    p.trim_end().to_string()
}

const ARN_RE: &str = r"^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[0-9a-f-]{36}(/certificate/[0-9a-f]{1,64})?$";

fn check_arn(arn: &str) -> Result<(), ApiError> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    if RE
        .get_or_init(|| regex::Regex::new(ARN_RE).expect("arn regex"))
        .is_match(arn)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            "InvalidArnException",
            format!("The ARN {arn} is not valid."),
        ))
    }
}

/// Parses `Validity` / `ValidityNotBefore` into a point in time.
fn validity_time(v: &Value, now: OffsetDateTime, member: &str) -> Result<OffsetDateTime, ApiError> {
    let value = v
        .get("Value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::not_null(&format!("{member}.value")))?;
    let kind = input::req_str(v, "Type")?;
    let bad = |m: &str| ApiError::new("InvalidArgsException", m.to_string());
    let relative = |t: OffsetDateTime| -> Result<OffsetDateTime, ApiError> {
        if value <= 0 {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{value}' at '{member}.value' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        Ok(t)
    };
    match kind {
        "DAYS" => relative(now + time::Duration::days(value.min(100_000))),
        "MONTHS" => relative(add_months(now, value.min(1_200))),
        "YEARS" => relative(add_months(now, value.min(100).saturating_mul(12))),
        "ABSOLUTE" => OffsetDateTime::from_unix_timestamp(value)
            .map_err(|_| bad("The ABSOLUTE validity value is out of range")),
        "END_DATE" => parse_end_date(value).ok_or_else(|| {
            bad("The END_DATE validity value must be YYYYMMDDHHMMSS or YYMMDDHHMMSS")
        }),
        other => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at '{member}.type' failed to satisfy constraint: Member must satisfy enum value set: [END_DATE, ABSOLUTE, DAYS, MONTHS, YEARS]"
        ))),
    }
}

fn add_months(t: OffsetDateTime, months: i64) -> OffsetDateTime {
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + months;
    let year = (total.div_euclid(12)) as i32;
    let month =
        time::Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(time::Month::January);
    let last = month.length(year);
    let day = t.day().min(last);
    time::Date::from_calendar_date(year, month, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(t)
}

fn parse_end_date(v: i64) -> Option<OffsetDateTime> {
    let s = v.to_string();
    let (year, rest) = match s.len() {
        14 => (s[0..4].parse::<i32>().ok()?, &s[4..]),
        12 => {
            let yy = s[0..2].parse::<i32>().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        // YYMMDDHHMMSS with YY < 10 loses its leading zero as a number.
        11 => (2000 + s[0..1].parse::<i32>().ok()?, &s[1..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(n(0)?).ok()?, n(2)?).ok()?;
    let t = time::Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// The CSR's subject as an rcgen name, attribute by attribute, keeping string types.
fn subject_of(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, String> {
    use x509_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("subject attribute OID too large")?
            .collect();
        let data = attr.attr_value().data;
        let text = || {
            std::str::from_utf8(data)
                .map(str::to_string)
                .map_err(|e| e.to_string())
        };
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => DnValue::PrintableString(
                rcgen::string::PrintableString::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                rcgen::string::Ia5String::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::T61String => DnValue::TeletexString(
                rcgen::string::TeletexString::try_from(text()?).map_err(|e| e.to_string())?,
            ),
            other => return Err(format!("unsupported subject string type {other:?}")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn sans_of(csr: &x509_parser::certification_request::X509CertificationRequest<'_>) -> Vec<SanType> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let mut out = Vec::new();
    let Some(exts) = csr.requested_extensions() else {
        return out;
    };
    for ext in exts {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for g in &san.general_names {
                let s = match g {
                    GeneralName::DNSName(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::DnsName),
                    GeneralName::RFC822Name(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::Rfc822Name),
                    GeneralName::URI(d) => rcgen::string::Ia5String::try_from(*d)
                        .ok()
                        .map(SanType::URI),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => Some(SanType::IpAddress(IpAddr::from(
                            <[u8; 4]>::try_from(*b).unwrap_or_default(),
                        ))),
                        16 => Some(SanType::IpAddress(IpAddr::from(
                            <[u8; 16]>::try_from(*b).unwrap_or_default(),
                        ))),
                        _ => None,
                    },
                    _ => None,
                };
                out.extend(s);
            }
        }
    }
    out
}

struct Api(Arc<Shared>);

impl JsonApi for Api {
    fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "IssueCertificate" => self.issue_certificate(&input),
            "GetCertificate" => self.get_certificate(&input),
            "GetCertificateAuthorityCertificate" => self.get_ca_certificate(&input),
            "DescribeCertificateAuthority" => self.describe_ca(&input),
            "RevokeCertificate" => self.revoke_certificate(&input),
            _ => Err(ApiError::new(
                "UnknownOperationException",
                format!("the emulator does not implement ACMPrivateCA.{op}"),
            )),
        }
    }
}

impl Api {
    fn ca_arn_matches(st: &State, v: &Value) -> Result<(), ApiError> {
        let arn = input::req_str(v, "CertificateAuthorityArn")?;
        check_arn(arn)?;
        if arn != st.ca.arn {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                format!("Could not find certificate authority {arn}"),
            ));
        }
        Ok(())
    }

    fn issue_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let csr_b64 = input::req_str(v, "Csr")?;
        let signing_algorithm = input::req_str(v, "SigningAlgorithm")?.to_string();
        let validity = v
            .get("Validity")
            .ok_or_else(|| ApiError::not_null("validity"))?;
        let template_arn = input::opt_str(v, "TemplateArn")
            .unwrap_or(DEFAULT_TEMPLATE)
            .to_string();
        let token = input::opt_str(v, "IdempotencyToken").map(str::to_string);
        if v.get("ApiPassthrough").is_some() {
            return Err(ApiError::new(
                "InvalidArgsException",
                "emulator limit: ApiPassthrough is not implemented",
            ));
        }
        let csr_bytes = base64::engine::general_purpose::STANDARD
            .decode(csr_b64)
            .map_err(|e| {
                ApiError::new("SerializationException", format!("Csr is not base64: {e}"))
            })?;

        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        if st.ca.status != "ACTIVE" {
            return Err(ApiError::new(
                "InvalidStateException",
                format!("The certificate authority is in the {} state", st.ca.status),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let csr_hash: [u8; 32] = sha2::Sha256::digest(&csr_bytes).into();
        let window = self.0.idempotency_window;
        st.idempotency.retain(|_, (_, at)| at.elapsed() < window);
        if let Some(t) = &token {
            if let Some((arn, _)) = st.idempotency.get(&(t.clone(), csr_hash)) {
                return Ok(json!({ "CertificateArn": arn }));
            }
        }

        let malformed = |m: &str| ApiError::new("MalformedCSRException", m.to_string());
        let csr_text = std::str::from_utf8(&csr_bytes)
            .map_err(|_| malformed("The CSR must be PEM encoded"))?;
        let pem_start = csr_text
            .find("-----BEGIN CERTIFICATE REQUEST-----")
            .or_else(|| csr_text.find("-----BEGIN NEW CERTIFICATE REQUEST-----"))
            .ok_or_else(|| malformed("The CSR is not a PEM certificate request"))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&csr_bytes[pem_start..])
            .map_err(|_| malformed("The CSR PEM is damaged"))?;
        let der = pem.contents;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|_| malformed("The CSR could not be parsed"))?;
        csr.verify_signature()
            .map_err(|_| malformed("The CSR signature does not verify"))?;
        let info = &csr.certification_request_info;
        let sans = sans_of(&csr);
        if info.subject.iter_attributes().next().is_none() && sans.is_empty() {
            return Err(malformed(
                "The CSR has neither a subject nor a subject alternative name",
            ));
        }
        let subject = subject_of(&info.subject).map_err(|e| malformed(&e))?;
        let spki = SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|_| malformed("The CSR's public key type is not supported"))?;

        let signer = st.ca.key_algorithm.signer(&signing_algorithm)?;

        let (key_usages, ekus) = match template_arn.as_str() {
            CLIENT_AUTH_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature],
                vec![ExtendedKeyUsagePurpose::ClientAuth],
            ),
            SERVER_AUTH_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
            DEFAULT_TEMPLATE => (
                vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            ),
            other => {
                return Err(ApiError::new(
                    "InvalidArgsException",
                    format!("emulator limit: template {other} is not implemented (end-entity templates only)"),
                ))
            }
        };

        let not_after = validity_time(validity, now, "validity")?;
        let not_before = match v.get("ValidityNotBefore") {
            Some(nb) => validity_time(nb, now, "validityNotBefore")?,
            None => now - time::Duration::hours(1),
        };
        let invalid = |m: String| ApiError::new("InvalidArgsException", m);
        if not_after <= now {
            return Err(invalid(
                "The certificate validity end date is in the past".into(),
            ));
        }
        if not_after <= not_before {
            return Err(invalid(
                "The validity end is not after the validity start".into(),
            ));
        }
        if st.ca.usage_mode == UsageMode::ShortLivedCertificate && not_after - now > SHORT_LIVED_MAX
        {
            return Err(invalid(
                "Certificates issued by a CA in SHORT_LIVED_CERTIFICATE mode must have a validity of 7 days or less".into(),
            ));
        }
        if not_after > st.ca.not_after {
            return Err(invalid(
                "The certificate validity exceeds the validity of the CA certificate".into(),
            ));
        }

        let serial = random_serial();
        let serial_hex = hex::encode(serial);
        let arn = format!("{}/certificate/{serial_hex}", st.ca.arn);
        if let Some(t) = &token {
            st.idempotency
                .insert((t.clone(), csr_hash), (arn.clone(), Instant::now()));
        }

        if st.fail_next > 0 {
            st.fail_next -= 1;
            st.certs.insert(
                arn.clone(),
                CertEntry {
                    record: None,
                    get_calls: 0,
                },
            );
            st.order.push(arn.clone());
            self.issuance_event(&st.ca.arn, &arn, "failure");
            return Ok(json!({ "CertificateArn": arn }));
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = ekus;
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let internal = |e: rcgen::Error| ApiError::internal("InternalFailure", e.to_string());
        let key = KeyPair::from_pem_and_sign_algo(&st.ca.key_pem, signer).map_err(internal)?;
        let issuer = Issuer::from_ca_cert_pem(&st.ca.cert_pem, key).map_err(internal)?;
        let cert = params.signed_by(&spki, &issuer).map_err(internal)?;
        let cert_pem = trim_pem(&cert.pem());
        let subject_text = x509_parser::parse_x509_certificate(cert.der())
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        let second = |t: OffsetDateTime| t.replace_nanosecond(0).unwrap_or(t);
        let record = IssuedRecord {
            arn: arn.clone(),
            serial: serial_hex,
            subject: subject_text,
            not_before: second(not_before),
            not_after: second(not_after),
            csr_pem: csr_text.to_string(),
            certificate_pem: cert_pem,
            template_arn,
            signing_algorithm,
            idempotency_token: token,
        };
        st.certs.insert(
            arn.clone(),
            CertEntry {
                record: Some(record),
                get_calls: 0,
            },
        );
        st.order.push(arn.clone());
        self.issuance_event(&st.ca.arn, &arn, "success");
        Ok(json!({ "CertificateArn": arn }))
    }

    fn issuance_event(&self, ca_arn: &str, cert_arn: &str, result: &str) {
        self.0.bus.push(pca_event(
            "ACM Private CA Certificate Issuance",
            vec![ca_arn.to_string(), cert_arn.to_string()],
            result,
        ));
    }

    fn get_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let cert_arn = input::req_str(v, "CertificateArn")?;
        check_arn(cert_arn)?;
        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        let ca_pem = trim_pem(&st.ca.cert_pem);
        let entry = st.certs.get_mut(cert_arn).ok_or_else(|| {
            ApiError::new(
                "ResourceNotFoundException",
                format!("Could not find certificate {cert_arn}"),
            )
        })?;
        entry.get_calls += 1;
        if entry.get_calls <= self.0.in_progress_calls {
            return Err(ApiError::new(
                "RequestInProgressException",
                "The request to issue the certificate is still in progress.",
            ));
        }
        match &entry.record {
            None => Err(ApiError::new(
                "RequestFailedException",
                "The request to issue the certificate failed.",
            )),
            Some(r) => Ok(json!({
                "Certificate": r.certificate_pem,
                "CertificateChain": ca_pem,
            })),
        }
    }

    fn revoke_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let serial_in = input::req_str(v, "CertificateSerial")?;
        let reason = input::req_str(v, "RevocationReason")?;
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{reason}' at 'revocationReason' failed to satisfy constraint: Member must satisfy enum value set"
            )));
        }
        let serial = serial_hex(serial_in);
        if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::new(
                "InvalidRequestException",
                format!("The certificate serial {serial_in} is not hexadecimal"),
            ));
        }
        let mut st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        if st.ca.status != "ACTIVE" {
            return Err(ApiError::new(
                "InvalidStateException",
                format!("The certificate authority is in the {} state", st.ca.status),
            ));
        }
        let record = st
            .order
            .iter()
            .filter_map(|a| st.certs.get(a).and_then(|c| c.record.as_ref()))
            .find(|r| serial_key(&r.serial) == serial_key(&serial))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    "ResourceNotFoundException",
                    format!(
                        "Could not find a certificate with serial {serial_in} issued by this CA"
                    ),
                )
            })?;
        if st.revoked.iter().any(|r| r.serial == record.serial) {
            return Err(ApiError::new(
                "RequestAlreadyProcessedException",
                "The certificate is already revoked.",
            ));
        }
        st.revoked.push(RevokedRecord {
            arn: record.arn.clone(),
            serial: record.serial.clone(),
            reason: reason.to_string(),
            revoked_at: OffsetDateTime::now_utc(),
        });
        self.0.bus.push(pca_event(
            "ACM Private CA Certificate Revocation",
            vec![st.ca.arn.clone(), record.arn.clone()],
            "success",
        ));
        Ok(json!({}))
    }

    fn get_ca_certificate(&self, v: &Value) -> Result<Value, ApiError> {
        let st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        // A root CA: no chain above it, so no CertificateChain member.
        Ok(json!({ "Certificate": trim_pem(&st.ca.cert_pem) }))
    }

    fn describe_ca(&self, v: &Value) -> Result<Value, ApiError> {
        let st = lock(&self.0.state);
        Self::ca_arn_matches(&st, v)?;
        let ca = &st.ca;
        let serial = ca
            .serial
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(":");
        let mut subject = json!({ "CommonName": ca.common_name });
        if let Some(o) = &ca.organization {
            subject["Organization"] = json!(o);
        }
        Ok(json!({
            "CertificateAuthority": {
                "Arn": ca.arn,
                "OwnerAccount": ACCOUNT,
                "CreatedAt": epoch_seconds(ca.created),
                "LastStateChangeAt": epoch_seconds(ca.created),
                "Type": "ROOT",
                "Serial": serial,
                "Status": ca.status,
                "NotBefore": epoch_seconds(ca.not_before),
                "NotAfter": epoch_seconds(ca.not_after),
                "CertificateAuthorityConfiguration": {
                    "KeyAlgorithm": ca.key_algorithm.api_name(),
                    "SigningAlgorithm": ca.key_algorithm.default_signing_algorithm(),
                    "Subject": subject,
                },
                "RevocationConfiguration": {
                    "CrlConfiguration": crl_configuration(self.0.crl.as_ref()),
                    "OcspConfiguration": { "Enabled": false },
                },
                "KeyStorageSecurityStandard": "FIPS_140_2_LEVEL_3_OR_HIGHER",
                "UsageMode": ca.usage_mode.api_name(),
            }
        }))
    }
}

/// `CrlConfiguration` as DescribeCertificateAuthority reports it.
fn crl_configuration(target: Option<&CrlTarget>) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_dates() {
        let t = parse_end_date(20261121101530).unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_256_130);
        assert_eq!(parse_end_date(261121101530).unwrap(), t);
        assert!(parse_end_date(20261341101530).is_none());
    }

    #[test]
    fn months_clamp_days() {
        let t = time::macros::datetime!(2026-01-31 10:00 UTC);
        assert_eq!(
            add_months(t, 1),
            time::macros::datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            add_months(t, 12),
            time::macros::datetime!(2027-01-31 10:00 UTC)
        );
    }

    #[test]
    fn signing_algorithm_families() {
        assert!(CaKeyAlgorithm::EcPrime256v1
            .signer("SHA256WITHECDSA")
            .is_ok());
        let e = CaKeyAlgorithm::EcPrime256v1
            .signer("SHA256WITHRSA")
            .unwrap_err();
        assert_eq!(e.code, "InvalidArgsException");
        assert!(CaKeyAlgorithm::Rsa2048.signer("SHA512WITHRSA").is_ok());
        assert_eq!(
            CaKeyAlgorithm::Rsa2048
                .signer("SHA256WITHECDSA")
                .unwrap_err()
                .code,
            "InvalidArgsException"
        );
        assert_eq!(
            CaKeyAlgorithm::Rsa2048.signer("MD5").unwrap_err().code,
            "ValidationException"
        );
    }
}
