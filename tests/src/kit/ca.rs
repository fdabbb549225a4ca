//! `CertificateAuthority`: a private CA that issues real certificates with rcgen.
//!
//! Why real certificates: the handlers parse what the CA returns (host name, key fingerprint,
//! validity, issuer, signature), so a fake that returned canned text would test nothing. Why an
//! idempotency window and a delay: a retried CertIssue must get the same certificate back (Private
//! CA keeps a token for 5 minutes), and CertDeploy must cope with `RequestInProgressException`
//! while a certificate is still being issued. Both run on the shared
//! [`ManualClock`]. Serials and ARNs come from a counter, so runs are reproducible.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rotation::ca::{CertificateAuthority, Fetched, REVOCATION_REASONS};
use rotation::error::AwsError;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::kit::clock::ManualClock;

/// How long Private CA remembers an idempotency token.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::minutes(5);

/// The CA's ARN (its ID is the last path segment).
pub const CA_ARN: &str =
    "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-4333-8444-555555555555";

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Its ARN.
    pub arn: String,
    /// Serial, lower-case hex bytes joined by `:` (as the table and CRLs spell it).
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The CSR it was issued for.
    pub csr_pem: String,
    /// The idempotency token of the request.
    pub token: String,
    /// When it was requested.
    pub issued_at: OffsetDateTime,
    /// From when `fetch` answers it ready.
    pub ready_at: OffsetDateTime,
    /// Start of validity (issuance minus an hour, as Private CA backdates).
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// A revocation the CA recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The serial, `:`-separated hex.
    pub serial: String,
    /// The reason given.
    pub reason: String,
    /// When.
    pub at: OffsetDateTime,
}

/// How often each operation was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaCalls {
    /// `issue` calls (including token replays and refusals).
    pub issue: u64,
    /// Certificates actually issued.
    pub issued: u64,
    /// `fetch` calls.
    pub fetch: u64,
    /// `ca_certificate` calls.
    pub ca_certificate: u64,
    /// `revoke` calls.
    pub revoke: u64,
}

/// The in-memory CA. Clones share the same CA.
#[derive(Clone)]
pub struct MemoryCa {
    inner: Arc<Mutex<Inner>>,
    clock: ManualClock,
}

struct Inner {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
    issue_delay: Duration,
    certs: BTreeMap<String, IssuedCert>,
    /// Normalized serial → ARN.
    by_serial: BTreeMap<String, String>,
    /// (token, SHA-256 of the CSR) → (ARN, when), and the same keys in time order for expiry.
    tokens: BTreeMap<(String, [u8; 32]), (String, OffsetDateTime)>,
    token_order: VecDeque<(OffsetDateTime, (String, [u8; 32]))>,
    revoked: Vec<Revocation>,
    /// The serials of `revoked`, to answer a repeated revocation without reading them all.
    revoked_serials: BTreeSet<String>,
    next_serial: u64,
    refusals: VecDeque<(String, bool)>,
    calls: CaCalls,
}

impl std::fmt::Debug for MemoryCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCa")
            .field("arn", &CA_ARN)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl MemoryCa {
    /// A root CA (EC P-256, `CN=Kit Test CA`) valid ten years from the clock's time, issuing
    /// certificates at once.
    pub fn new(clock: ManualClock) -> Self {
        let now = clock.now();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("an EC P-256 key");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "cert-rotation tests");
        dn.push(DnType::CommonName, "Kit Test CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert_pem = params
            .self_signed(&key)
            .expect("a self-signed CA certificate")
            .pem();
        MemoryCa {
            inner: Arc::new(Mutex::new(Inner {
                params,
                key,
                cert_pem,
                issue_delay: Duration::ZERO,
                certs: BTreeMap::new(),
                by_serial: BTreeMap::new(),
                tokens: BTreeMap::new(),
                token_order: VecDeque::new(),
                revoked: Vec::new(),
                revoked_serials: BTreeSet::new(),
                next_serial: 0,
                refusals: VecDeque::new(),
                calls: CaCalls::default(),
            })),
            clock,
        }
    }

    /// Certificates requested from now on answer `Pending` to `fetch` for `delay` after issue.
    pub fn set_issue_delay(&self, delay: Duration) {
        self.lock().issue_delay = delay.max(Duration::ZERO);
    }

    /// Makes the next `issue` fail with `code` (retryable or not), before any token check.
    pub fn refuse_next_issue(&self, code: &str, retryable: bool) {
        self.lock().refusals.push_back((code.to_owned(), retryable));
    }

    /// Counts `serial` as a certificate this CA issued before the kit's time began (a fleet
    /// that starts with certificates): it can be revoked; it has no PEM to fetch.
    pub fn adopt_serial(&self, serial: &str) {
        if let Some(serial) = pki::normalize_serial(serial) {
            let arn = format!("{CA_ARN}/certificate/adopted-{serial}");
            self.lock().by_serial.insert(serial, arn);
        }
    }

    /// The CA's ID: the last segment of its ARN (the CRL ledger's key).
    pub fn ca_id(&self) -> &'static str {
        CA_ARN.rsplit('/').next().unwrap_or_default()
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.lock().cert_pem.clone()
    }

    /// Every certificate issued, in ARN (= issuance) order.
    pub fn issued(&self) -> Vec<IssuedCert> {
        self.lock().certs.values().cloned().collect()
    }

    /// One issued certificate.
    pub fn certificate(&self, arn: &str) -> Option<IssuedCert> {
        self.lock().certs.get(arn).cloned()
    }

    /// Every revocation, in order.
    pub fn revocations(&self) -> Vec<Revocation> {
        self.lock().revoked.clone()
    }

    /// Drops the certificates issued before `t` (their serials stay known for revocation);
    /// returns how many. A long simulation keeps only recent ones in memory; `fetch` then
    /// answers `ResourceNotFoundException` for the dropped ones.
    pub fn forget_issued_before(&self, t: OffsetDateTime) -> usize {
        let mut inner = self.lock();
        let before = inner.certs.len();
        inner.certs.retain(|_, c| c.issued_at >= t);
        before - inner.certs.len()
    }

    /// How often each operation was called so far.
    pub fn calls(&self) -> CaCalls {
        self.lock().calls
    }

    /// A CRL numbered `number` listing every revoked certificate, signed by the CA, DER; valid
    /// from the clock's time for a day.
    pub fn crl_der(&self, number: u64) -> Vec<u8> {
        let now = self.clock.now();
        let inner = self.lock();
        let revoked_certs = inner
            .revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial_bytes(&r.serial)),
                revocation_time: r.at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(1),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&inner.params, &inner.key);
        params
            .signed_by(&issuer)
            .expect("a CRL signed by the CA")
            .der()
            .to_vec()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// The ARN a live token gives for this CSR, forgetting tokens older than the window.
    fn replay(&mut self, key: &(String, [u8; 32]), now: OffsetDateTime) -> Option<String> {
        while let Some((at, _)) = self.token_order.front() {
            if now - *at < IDEMPOTENCY_WINDOW {
                break;
            }
            if let Some((at, old)) = self.token_order.pop_front() {
                if self.tokens.get(&old).is_some_and(|(_, t)| *t == at) {
                    self.tokens.remove(&old);
                }
            }
        }
        self.tokens.get(key).map(|(arn, _)| arn.clone())
    }

    fn sign(
        &mut self,
        csr_pem: &str,
        validity_days: i64,
        now: OffsetDateTime,
    ) -> Result<(String, IssuedCert), AwsError> {
        if validity_days < 1 {
            return Err(pca_error(
                "IssueCertificate",
                "ValidationException",
                "Validity must be at least 1 day",
                false,
            ));
        }
        let not_before = second(now - Duration::hours(1));
        let not_after = second(now + Duration::days(validity_days));
        if not_after > self.params.not_after {
            return Err(pca_error(
                "IssueCertificate",
                "InvalidArgsException",
                "The certificate validity exceeds the validity of the CA certificate",
                false,
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            pca_error(
                "IssueCertificate",
                "MalformedCSRException",
                &format!("The CSR could not be used: {e}"),
                false,
            )
        })?;
        self.next_serial += 1;
        let mut serial = [0u8; 16];
        serial[0] = 0x10;
        serial[8..].copy_from_slice(&self.next_serial.to_be_bytes());
        let mut params = csr.params.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = not_before;
        params.not_after = not_after;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = signed
            .signed_by(&issuer)
            .map_err(|e| pca_error("IssueCertificate", "InternalFailure", &e.to_string(), true))?;
        let hex = hex::encode(serial);
        let arn = format!("{CA_ARN}/certificate/{hex}");
        let issued = IssuedCert {
            arn: arn.clone(),
            serial: pki::normalize_serial(&hex).unwrap_or(hex),
            certificate_pem: cert.pem(),
            csr_pem: csr_pem.to_owned(),
            token: String::new(),
            issued_at: now,
            ready_at: now + self.issue_delay,
            not_before,
            not_after,
        };
        Ok((arn, issued))
    }
}

impl CertificateAuthority for MemoryCa {
    /// Issues a certificate for the CSR, or returns the one a live token already gave for it.
    async fn issue(
        &self,
        csr_pem: &str,
        validity_days: i64,
        idempotency_token: &str,
    ) -> Result<String, AwsError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.issue += 1;
        if let Some((code, retryable)) = inner.refusals.pop_front() {
            return Err(pca_error(
                "IssueCertificate",
                &code,
                "refused by the test",
                retryable,
            ));
        }
        let key = (
            idempotency_token.to_owned(),
            <[u8; 32]>::from(Sha256::digest(csr_pem.as_bytes())),
        );
        if let Some(arn) = inner.replay(&key, now) {
            return Ok(arn);
        }
        let (arn, mut issued) = inner.sign(csr_pem, validity_days, now)?;
        issued.token = idempotency_token.to_owned();
        inner.calls.issued += 1;
        inner.by_serial.insert(issued.serial.clone(), arn.clone());
        inner.certs.insert(arn.clone(), issued);
        inner.tokens.insert(key.clone(), (arn.clone(), now));
        inner.token_order.push_back((now, key));
        Ok(arn)
    }

    async fn fetch(&self, cert_arn: &str) -> Result<Fetched, AwsError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.fetch += 1;
        let Some(c) = inner.certs.get(cert_arn) else {
            return Err(pca_error(
                "GetCertificate",
                "ResourceNotFoundException",
                &format!("Could not find certificate {cert_arn}"),
                false,
            ));
        };
        if now < c.ready_at {
            return Ok(Fetched::Pending);
        }
        Ok(Fetched::Ready {
            certificate: c.certificate_pem.clone(),
            chain: inner.cert_pem.clone(),
        })
    }

    async fn ca_certificate(&self) -> Result<String, AwsError> {
        let mut inner = self.lock();
        inner.calls.ca_certificate += 1;
        Ok(inner.cert_pem.clone())
    }

    /// Records the revocation of a certificate this CA issued (Private CA's refusals otherwise).
    async fn revoke(&self, serial: &str, reason: &str) -> Result<(), AwsError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.calls.revoke += 1;
        let op = "RevokeCertificate";
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(pca_error(
                op,
                "ValidationException",
                &format!("Value '{reason}' at 'revocationReason' failed to satisfy constraint"),
                false,
            ));
        }
        let Some(serial) = pki::normalize_serial(serial) else {
            return Err(pca_error(
                op,
                "InvalidRequestException",
                "The certificate serial is not hexadecimal",
                false,
            ));
        };
        if !inner.by_serial.contains_key(&serial) {
            return Err(pca_error(
                op,
                "ResourceNotFoundException",
                &format!("Could not find a certificate with serial {serial} issued by this CA"),
                false,
            ));
        }
        // Private CA answers RequestAlreadyProcessedException; the port counts it as done.
        if !inner.revoked_serials.insert(serial.clone()) {
            return Ok(());
        }
        inner.revoked.push(Revocation {
            serial,
            reason: reason.to_owned(),
            at: second(now),
        });
        Ok(())
    }
}

/// The serial's bytes from its `:`-separated hex.
fn serial_bytes(serial: &str) -> Vec<u8> {
    hex::decode(serial.replace(':', "")).unwrap_or_default()
}

/// `t` without its fraction of a second (X.509 times are whole seconds).
fn second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn pca_error(operation: &'static str, code: &str, message: &str, retryable: bool) -> AwsError {
    AwsError {
        service: "ACMPCA",
        operation,
        code: Some(code.to_owned()),
        message: message.to_owned(),
        retryable,
        source: None,
    }
}
