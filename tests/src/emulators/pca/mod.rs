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
//!
//! Layout: this module holds the configuration, the records tests read, the shared state and the
//! handle; `ca` the CA itself (key algorithms, usage mode, its certificate), `cert` what goes into
//! an issued certificate (the CSR's subject and SANs, the validity), `api` the AWS JSON 1.1
//! operations, and `crl` the CRLs and their publication to S3 with the events.

mod api;
mod ca;
mod cert;
mod crl;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::SerialNumber;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::wire::{self, Server};
use super::{eventbridge_event, lock, Capture, EventBus, ACCOUNT, REGION};
use api::Api;
use ca::{ca_id_of, ca_params, random_serial, trim_pem, Ca};

pub use ca::{CaKeyAlgorithm, UsageMode};
pub use crl::{CrlTarget, PublishedCrl, CRL_VALIDITY, DEFAULT_CRL_PREFIX};

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

struct CertEntry {
    record: Option<IssuedRecord>,
    get_calls: u32,
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
