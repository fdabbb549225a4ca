//! Certificate inspection, used before a certificate is deployed to a host and after.
//!
//! Why: Private CA issues what the CSR and template say, and the deploy step must only ship a
//! certificate that (a) names the host that asked for it, (b) carries the key the host staged,
//! and (c) is one Roles Anywhere will accept as an end-entity certificate: X.509 v3, CA:false,
//! keyUsage digitalSignature, signed with SHA-256 or stronger (plus clientAuth, which our
//! template sets and we require).

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;

use crate::key::{self, KeyKind};
use crate::pem::{self, PemError};
use crate::x509util;

/// The PEM label of an X.509 certificate.
pub const CERT_PEM_LABEL: &str = "CERTIFICATE";

/// Largest certificate PEM text (a certificate or a chain) we look at: 64 KiB.
pub const MAX_CERT_PEM_BYTES: usize = 64 * 1024;

/// What we know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Serial number: the DER INTEGER's content bytes as lowercase hex joined by `:`
    /// (`"0a:1b:…"`, as x509-parser's `raw_serial_as_string` gives; a serial whose top bit is set
    /// keeps its leading `00`). [`normalize_serial`] turns other notations into this one.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The subject CN, if the subject holds exactly one CN with a text value.
    pub subject_cn: Option<String>,
    /// The whole subject, `CN=…, O=…` style (capped at 256 characters).
    pub subject: String,
    /// The issuer, `CN=…, O=…` style (capped at 256 characters).
    pub issuer: String,
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// The key's type and size, if it is RSA or EC P-256/P-384.
    pub key_kind: Option<KeyKind>,
    /// X.509 version as people say it (3 for v3).
    pub version: u32,
    /// Dotted OID of the signature algorithm.
    pub signature_algorithm: String,
    /// Whether the signature algorithm is RSA/ECDSA with SHA-256 or stronger.
    pub has_strong_signature: bool,
    /// basicConstraints says CA:true.
    pub is_ca: bool,
    /// keyUsage is present and holds digitalSignature.
    pub has_digital_signature: bool,
    /// extendedKeyUsage is present and holds clientAuth.
    pub has_client_auth: bool,
    /// The certificate carries a subjectAltName extension.
    pub has_subject_alt_name: bool,
    /// The certificate's DER bytes.
    pub der: Vec<u8>,
}

impl CertificateFacts {
    /// The certificate as canonical PEM.
    pub fn to_pem(&self) -> String {
        pem::encode(CERT_PEM_LABEL, &self.der)
    }
}

/// Why a certificate could not be read or was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CertError {
    /// No `-----BEGIN CERTIFICATE-----` block in the input.
    #[error("no CERTIFICATE PEM block found")]
    NotFound,
    /// The input is larger than we accept.
    #[error("input is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// Cap.
        max: usize,
    },
    /// The PEM text is malformed.
    #[error("malformed certificate PEM")]
    Pem(#[source] PemError),
    /// The DER does not parse as a certificate, has trailing bytes, or carries malformed or
    /// duplicate extensions.
    #[error("malformed certificate")]
    Der(#[source] X509Error),
    /// The certificate names another host (or no single CN).
    #[error("certificate subject CN {actual:?} is not the host {expected:?}")]
    WrongHost {
        /// The host expected.
        expected: String,
        /// The CN found, if there is exactly one (truncated to 64 characters).
        actual: Option<String>,
    },
    /// The certificate names more than its CN.
    #[error("certificate carries a subjectAltName; only the subject CN may name the host")]
    UnexpectedSubjectAltName,
    /// The certificate's key is not the one the CSR carried.
    #[error("certificate key {actual} is not the CSR's key {expected} (SPKI SHA-256)")]
    KeyMismatch {
        /// Expected SPKI SHA-256 (lowercase hex).
        expected: String,
        /// Found SPKI SHA-256.
        actual: String,
    },
    /// Not an X.509 v3 certificate.
    #[error("certificate is X.509 v{version}, v3 required")]
    NotV3 {
        /// The version (1, 2, …).
        version: u32,
    },
    /// Signed with SHA-1 or an algorithm we do not know.
    #[error("certificate signature algorithm {oid} refused: SHA-256 or stronger required")]
    WeakSignatureAlgorithm {
        /// Dotted OID.
        oid: String,
    },
    /// basicConstraints CA:true on what must be an end-entity certificate.
    #[error("certificate is a CA certificate (basicConstraints CA:true)")]
    IsCa,
    /// keyUsage is missing or lacks digitalSignature.
    #[error("certificate keyUsage lacks digitalSignature")]
    MissingDigitalSignature,
    /// extendedKeyUsage is missing or lacks clientAuth.
    #[error("certificate extendedKeyUsage lacks clientAuth")]
    MissingClientAuth,
    /// `now` is before notBefore.
    #[error("certificate is not valid before {not_before}")]
    NotYetValid {
        /// notBefore.
        not_before: OffsetDateTime,
    },
    /// `now` is after notAfter.
    #[error("certificate expired at {not_after}")]
    Expired {
        /// notAfter.
        not_after: OffsetDateTime,
    },
    /// The certificate's issuer name is not the issuer certificate's subject.
    #[error("certificate issuer {cert_issuer:?} is not {issuer_subject:?}")]
    IssuerMismatch {
        /// The certificate's issuer name.
        cert_issuer: String,
        /// The would-be issuer's subject name.
        issuer_subject: String,
    },
    /// The would-be issuer is not a CA certificate.
    #[error("issuer certificate is not a CA (basicConstraints CA:true missing)")]
    IssuerNotCa,
    /// The signature does not verify with the issuer's key.
    #[error("certificate signature does not verify with the issuer's key")]
    BadSignature(#[source] X509Error),
}

/// Parses the FIRST certificate in `pem` (text around and after it is ignored, but every
/// CERTIFICATE block must be well-formed PEM).
pub fn parse_certificate_pem(pem: &str) -> Result<CertificateFacts, CertError> {
    parse_certificate_der(&first_der(pem)?)
}

/// Parses one DER certificate (no trailing bytes allowed).
pub fn parse_certificate_der(der: &[u8]) -> Result<CertificateFacts, CertError> {
    let cert = parse_x509(der)?;
    facts(&cert, der)
}

/// Each CERTIFICATE block in `pem`, in order, as canonical PEM. Text outside blocks is ignored.
/// Blocks are not parsed as certificates; use [`parse_certificate_pem`] on each for that.
pub fn split_pem_chain(pem: &str) -> Result<Vec<String>, CertError> {
    Ok(cert_blocks(pem)?
        .into_iter()
        .map(|b| b.to_pem(CERT_PEM_LABEL))
        .collect())
}

/// Checks that an issued certificate may be deployed to `expected_host`: its subject CN is that
/// host and it names nothing else (no subjectAltName), it carries the CSR's key
/// (`expected_spki_sha256`, hex, any case), it is X.509 v3, signed with SHA-256 or stronger,
/// not a CA, has keyUsage digitalSignature and extendedKeyUsage clientAuth, and is valid at `now`
/// (`not_before <= now <= not_after`).
///
/// It does not check who signed it: see [`certificate_signed_by`].
pub fn check_issued_certificate(
    cert: &CertificateFacts,
    expected_host: &str,
    expected_spki_sha256: &str,
    now: OffsetDateTime,
) -> Result<(), CertError> {
    if expected_host.is_empty() || cert.subject_cn.as_deref() != Some(expected_host) {
        return Err(CertError::WrongHost {
            expected: pem::short(expected_host, 64),
            actual: cert.subject_cn.as_deref().map(|cn| pem::short(cn, 64)),
        });
    }
    if cert.has_subject_alt_name {
        return Err(CertError::UnexpectedSubjectAltName);
    }
    if !cert
        .spki_sha256
        .eq_ignore_ascii_case(expected_spki_sha256.trim())
    {
        return Err(CertError::KeyMismatch {
            expected: pem::short(&expected_spki_sha256.trim().to_ascii_lowercase(), 64),
            actual: cert.spki_sha256.clone(),
        });
    }
    if cert.version != 3 {
        return Err(CertError::NotV3 {
            version: cert.version,
        });
    }
    if !cert.has_strong_signature {
        return Err(CertError::WeakSignatureAlgorithm {
            oid: cert.signature_algorithm.clone(),
        });
    }
    if cert.is_ca {
        return Err(CertError::IsCa);
    }
    if !cert.has_digital_signature {
        return Err(CertError::MissingDigitalSignature);
    }
    if !cert.has_client_auth {
        return Err(CertError::MissingClientAuth);
    }
    if now < cert.not_before {
        return Err(CertError::NotYetValid {
            not_before: cert.not_before,
        });
    }
    if now > cert.not_after {
        return Err(CertError::Expired {
            not_after: cert.not_after,
        });
    }
    Ok(())
}

/// Checks that the first certificate in `cert_pem` was issued by the first certificate in
/// `issuer_pem`: the issuer name equals the issuer's subject (byte for byte, as CAs copy it),
/// the issuer is a CA, and the signature verifies with the issuer's public key.
pub fn certificate_signed_by(cert_pem: &str, issuer_pem: &str) -> Result<(), CertError> {
    let cert_der = first_der(cert_pem)?;
    let issuer_der = first_der(issuer_pem)?;
    let cert = parse_x509(&cert_der)?;
    let issuer = parse_x509(&issuer_der)?;
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(CertError::IssuerMismatch {
            cert_issuer: x509util::name_string(cert.issuer()),
            issuer_subject: x509util::name_string(issuer.subject()),
        });
    }
    if !x509util::basic_ca(&issuer).map_err(CertError::Der)? {
        return Err(CertError::IssuerNotCa);
    }
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(CertError::BadSignature)
}

/// `serial` in its canonical form ([`normalize_serial`]), or as written when it is not hex: the
/// one form serials are compared in and asked of Private CA, whatever notation a table row, a
/// CRL or an event gives.
pub fn canonical_serial(serial: &str) -> String {
    normalize_serial(serial).unwrap_or_else(|| serial.to_owned())
}

/// Turns a serial number written in any usual notation into the [`CertificateFacts::serial`]
/// form, or `None` if it is not hex. Accepts `serial=0A1B` (`openssl x509 -serial`), `0a:1b`,
/// `0A 1B`, `0x0a1b`; leading zero bytes are dropped, then a `00` is put back if the top bit
/// is set (as DER encodes a positive INTEGER). Only positive serials are meaningful.
pub fn normalize_serial(serial: &str) -> Option<String> {
    let s = serial.trim();
    let s = s.strip_prefix("serial=").unwrap_or(s);
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    let mut minimal = x509util::hex_magnitude(&digits)?;
    if minimal.first().is_none_or(|&b| b & 0x80 != 0) {
        minimal.insert(0, 0);
    }
    Some(x509_parser::utils::format_serial(&minimal))
}

fn cert_blocks(pem: &str) -> Result<Vec<pem::PemBlock>, CertError> {
    if pem.len() > MAX_CERT_PEM_BYTES {
        return Err(CertError::TooLarge {
            len: pem.len(),
            max: MAX_CERT_PEM_BYTES,
        });
    }
    pem::blocks(pem, CERT_PEM_LABEL).map_err(CertError::Pem)
}

pub(crate) fn first_der(pem: &str) -> Result<Vec<u8>, CertError> {
    cert_blocks(pem)?
        .into_iter()
        .next()
        .map(|b| b.der)
        .ok_or(CertError::NotFound)
}

pub(crate) fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let cert: X509Certificate<'_> = x509util::parse_exact(der).map_err(CertError::Der)?;
    // Refuse duplicate extensions outright rather than reading whichever comes first.
    cert.tbs_certificate
        .extensions_map()
        .map_err(CertError::Der)?;
    Ok(cert)
}

fn facts(cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertificateFacts, CertError> {
    let validity = cert.validity();
    let is_ca = x509util::basic_ca(cert).map_err(CertError::Der)?;
    let has_digital_signature = cert
        .key_usage()
        .map_err(CertError::Der)?
        .is_some_and(|ku| ku.value.digital_signature());
    let has_client_auth = cert
        .extended_key_usage()
        .map_err(CertError::Der)?
        .is_some_and(|eku| eku.value.client_auth);
    let has_subject_alt_name = cert
        .subject_alternative_name()
        .map_err(CertError::Der)?
        .is_some();
    Ok(CertificateFacts {
        serial: cert.raw_serial_as_string(),
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        subject_cn: x509util::only_cn(cert.subject()),
        subject: x509util::name_string(cert.subject()),
        issuer: x509util::name_string(cert.issuer()),
        spki_sha256: key::spki_sha256(cert.public_key()),
        key_kind: key::kind(cert.public_key()).ok(),
        version: cert.version().0 + 1,
        signature_algorithm: cert.signature_algorithm.algorithm.to_id_string(),
        has_strong_signature: x509util::is_strong_signature(&cert.signature_algorithm),
        is_ca,
        has_digital_signature,
        has_client_auth,
        has_subject_alt_name,
        der: der.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_notations() {
        assert_eq!(normalize_serial("serial=0A1B").as_deref(), Some("0a:1b"));
        assert_eq!(normalize_serial("0a:1b").as_deref(), Some("0a:1b"));
        assert_eq!(normalize_serial("A1B").as_deref(), Some("0a:1b"));
        assert_eq!(normalize_serial("0x8A01").as_deref(), Some("00:8a:01"));
        assert_eq!(normalize_serial("00:8a:01").as_deref(), Some("00:8a:01"));
        assert_eq!(normalize_serial("00 00 7f").as_deref(), Some("7f"));
        assert_eq!(normalize_serial("0").as_deref(), Some("00"));
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_certificate_pem("hello"), Err(CertError::NotFound));
        assert!(matches!(
            parse_certificate_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(CertError::Der(_))
        ));
    }
}
