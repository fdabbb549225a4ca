//! CRL checks (security invariant 4 in docs/design.md): a CRL is imported into Roles Anywhere only if it is signed by
//! our CA and is newer (by CRL number) than the last one imported.
//!
//! Why: the CRL arrives as an S3 object, and anyone who can write to that bucket prefix could
//! otherwise replace our revocations with an older list (un-revoking a host) or with a list from
//! another CA. AWS Private CA always includes a CRL number (RFC 5280 §5.2.3), so a CRL without
//! one is refused; delta CRLs (which Private CA does not produce) are refused as well, since a
//! delta imported as if complete would drop revocations.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use x509_parser::error::X509Error;
use x509_parser::oid_registry::OID_X509_EXT_DELTA_CRL_INDICATOR;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::cert::{self, CertError};
use crate::pem::{self, PemError};
use crate::x509util;

/// The PEM label of a CRL.
pub const CRL_PEM_LABEL: &str = "X509 CRL";

/// Largest CRL (DER or PEM) we look at: 4 MiB. Roles Anywhere takes far smaller CRLs
/// (`crlData` is capped at 300,000 bytes), so this only guards against absurd objects.
pub const MAX_CRL_BYTES: usize = 4 * 1024 * 1024;

/// A CRL number (RFC 5280 §5.2.3: a non-negative integer of up to 20 octets, so wider than
/// `u128`). Ordered numerically. Displayed (and parsed, see [`FromStr`]) as lowercase hex
/// without leading zeros, e.g. `"1000"` for 4096: the form to store in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CrlNumber {
    /// Big-endian magnitude without leading zero bytes (empty for zero).
    bytes: Vec<u8>,
}

impl CrlNumber {
    /// From big-endian magnitude bytes (leading zeros allowed).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        CrlNumber {
            bytes: bytes[first..].to_vec(),
        }
    }

    /// The value, if it fits in a `u128`.
    pub fn to_u128(&self) -> Option<u128> {
        if self.bytes.len() > 16 {
            return None;
        }
        Some(
            self.bytes
                .iter()
                .fold(0u128, |n, &b| (n << 8) | u128::from(b)),
        )
    }
}

impl From<u128> for CrlNumber {
    fn from(n: u128) -> Self {
        CrlNumber::from_be_bytes(&n.to_be_bytes())
    }
}

impl Ord for CrlNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        // Both are minimal, so the longer one is larger; equal lengths compare bytewise.
        self.bytes
            .len()
            .cmp(&other.bytes.len())
            .then_with(|| self.bytes.cmp(&other.bytes))
    }
}

impl PartialOrd for CrlNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex::encode(&self.bytes);
        let trimmed = hex.trim_start_matches('0');
        f.write_str(if trimmed.is_empty() { "0" } else { trimmed })
    }
}

/// The text is not a hex CRL number of at most 20 octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CRL number (hex digits, at most 20 octets): {0:?}")]
pub struct BadCrlNumber(pub String);

impl FromStr for CrlNumber {
    type Err = BadCrlNumber;

    /// Parses hex digits (either case, optional `0x`), as [`Display`](fmt::Display) writes them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        match x509util::hex_magnitude(digits) {
            Some(bytes) if bytes.len() <= 20 => Ok(CrlNumber { bytes }),
            _ => Err(BadCrlNumber(pem::short(s, 64))),
        }
    }
}

/// What we know about a CRL that passed [`check_crl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// The CRL number (always present: a CRL without one is refused).
    pub crl_number: CrlNumber,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, if given.
    pub next_update: Option<OffsetDateTime>,
    /// Serials of the revoked certificates, in the [`crate::CertificateFacts::serial`] format.
    pub revoked_serials: Vec<String>,
    /// Each entry's reason, by serial (same format), as Private CA names reasons
    /// ([`reason_name`]); `None` for an entry without a reason code.
    pub revocation_reasons: std::collections::BTreeMap<String, Option<&'static str>>,
    /// The issuer name, `CN=…` style (capped at 256 characters).
    pub issuer: String,
    /// The CRL as DER (even if PEM was given): what `ImportCrl`/`UpdateCrl` take.
    pub der: Vec<u8>,
}

/// Why a CRL was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrlError {
    /// The input is larger than we accept.
    #[error("CRL is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// Cap.
        max: usize,
    },
    /// PEM input that is not UTF-8, malformed, or without exactly one `X509 CRL` block.
    #[error("malformed CRL PEM: {reason}")]
    PemShape {
        /// What is wrong.
        reason: &'static str,
    },
    /// The PEM block is malformed.
    #[error("malformed CRL PEM")]
    Pem(#[source] PemError),
    /// The bytes are not a CRL (or are corrupt, or have trailing bytes or duplicate extensions).
    #[error("not a valid CRL")]
    Der(#[source] X509Error),
    /// The CA certificate given to check against does not parse.
    #[error("CA certificate unusable")]
    CaCertificate(#[source] CertError),
    /// The CA certificate is not a CA, or its keyUsage does not allow cRLSign.
    #[error(
        "the CA certificate may not sign CRLs (needs CA:true and, if keyUsage is present, cRLSign)"
    )]
    CaCannotSignCrl,
    /// The CRL's issuer is not our CA.
    #[error("CRL issuer {crl_issuer:?} is not our CA {ca_subject:?}")]
    IssuerMismatch {
        /// The CRL's issuer name.
        crl_issuer: String,
        /// The CA certificate's subject.
        ca_subject: String,
    },
    /// The signature does not verify with the CA's key.
    #[error("CRL signature does not verify with the CA's key")]
    BadSignature(#[source] X509Error),
    /// Signed with SHA-1 or an unknown algorithm.
    #[error("CRL signature algorithm {oid} refused: SHA-256 or stronger required")]
    WeakSignatureAlgorithm {
        /// Dotted OID.
        oid: String,
    },
    /// No CRL number extension (AWS Private CA always sets one).
    #[error("CRL has no CRL number")]
    MissingCrlNumber,
    /// A delta CRL (deltaCRLIndicator present).
    #[error("delta CRLs are not accepted")]
    DeltaCrl,
}

/// Parses a CRL (DER, or PEM with one `X509 CRL` block) and checks it was issued by the CA in
/// `ca_cert_pem` (first certificate): the CRL issuer equals the CA's subject byte for byte, the
/// CA may sign CRLs, the signature algorithm is SHA-256 or stronger and the signature verifies
/// with the CA's key, it is a complete CRL (not a delta) and it carries a CRL number.
///
/// Freshness is the caller's decision: compare numbers with [`crl_is_newer`], and look at
/// `this_update`/`next_update` if wanted.
pub fn check_crl(crl: &[u8], ca_cert_pem: &str) -> Result<CrlFacts, CrlError> {
    if crl.len() > MAX_CRL_BYTES {
        return Err(CrlError::TooLarge {
            len: crl.len(),
            max: MAX_CRL_BYTES,
        });
    }
    let der = if pem::looks_like_pem(crl) {
        let text = std::str::from_utf8(crl).map_err(|_| CrlError::PemShape {
            reason: "PEM text is not UTF-8",
        })?;
        let mut blocks = pem::distinct_blocks(text, CRL_PEM_LABEL).map_err(CrlError::Pem)?;
        match blocks.len() {
            0 => {
                return Err(CrlError::PemShape {
                    reason: "no X509 CRL block",
                })
            }
            1 => blocks.remove(0).der,
            _ => {
                return Err(CrlError::PemShape {
                    reason: "more than one X509 CRL block",
                })
            }
        }
    } else {
        crl.to_vec()
    };

    let parsed: CertificateRevocationList<'_> =
        x509util::parse_exact(&der).map_err(CrlError::Der)?;
    parsed
        .tbs_cert_list
        .extensions_map()
        .map_err(CrlError::Der)?;

    let ca_der = cert::first_der(ca_cert_pem).map_err(CrlError::CaCertificate)?;
    let ca = cert::parse_x509(&ca_der).map_err(CrlError::CaCertificate)?;
    let ca_is_ca =
        x509util::basic_ca(&ca).map_err(|e| CrlError::CaCertificate(CertError::Der(e)))?;
    let ku_allows_crl = ca
        .key_usage()
        .map_err(|e| CrlError::CaCertificate(CertError::Der(e)))?
        .is_none_or(|ku| ku.value.crl_sign());
    if !ca_is_ca || !ku_allows_crl {
        return Err(CrlError::CaCannotSignCrl);
    }

    if parsed.issuer().as_raw() != ca.subject().as_raw() {
        return Err(CrlError::IssuerMismatch {
            crl_issuer: x509util::name_string(parsed.issuer()),
            ca_subject: x509util::name_string(ca.subject()),
        });
    }
    if !x509util::is_strong_signature(&parsed.signature_algorithm) {
        return Err(CrlError::WeakSignatureAlgorithm {
            oid: parsed.signature_algorithm.algorithm.to_id_string(),
        });
    }
    parsed
        .verify_signature(ca.public_key())
        .map_err(CrlError::BadSignature)?;

    if parsed
        .tbs_cert_list
        .find_extension(&OID_X509_EXT_DELTA_CRL_INDICATOR)
        .is_some()
    {
        return Err(CrlError::DeltaCrl);
    }
    let crl_number = parsed
        .crl_number()
        .map(|n| CrlNumber::from_be_bytes(&n.to_bytes_be()))
        .ok_or(CrlError::MissingCrlNumber)?;

    // One walk over the entries: the serials in the CRL's order, and each one's reason.
    let mut revoked_serials = Vec::new();
    let mut revocation_reasons = std::collections::BTreeMap::new();
    for r in parsed.iter_revoked_certificates() {
        let serial = r.raw_serial_as_string();
        let reason = r.reason_code().map(|(_, code)| reason_name(code.0));
        revocation_reasons.insert(serial.clone(), reason);
        revoked_serials.push(serial);
    }
    Ok(CrlFacts {
        crl_number,
        this_update: parsed.last_update().to_datetime(),
        next_update: parsed.next_update().map(|t| t.to_datetime()),
        revoked_serials,
        revocation_reasons,
        issuer: x509util::name_string(parsed.issuer()),
        der,
    })
}

/// The name Private CA gives the CRL reason code `code` (RFC 5280 §5.3.1), as its
/// `RevokeCertificate` takes it; codes Private CA has no name for keep RFC 5280's.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "UNSPECIFIED",
        1 => "KEY_COMPROMISE",
        2 => "CERTIFICATE_AUTHORITY_COMPROMISE",
        3 => "AFFILIATION_CHANGED",
        4 => "SUPERSEDED",
        5 => "CESSATION_OF_OPERATION",
        6 => "CERTIFICATE_HOLD",
        8 => "REMOVE_FROM_CRL",
        9 => "PRIVILEGE_WITHDRAWN",
        10 => "A_A_COMPROMISE",
        _ => "UNKNOWN_REASON",
    }
}

/// Whether `candidate` is newer than the last imported CRL (strictly greater CRL number); with
/// no CRL imported yet (`None`) any CRL is newer. Equal numbers are not newer: re-importing the
/// same CRL is a no-op, not an update.
pub fn crl_is_newer(candidate: &CrlFacts, last_number: Option<&CrlNumber>) -> bool {
    last_number.is_none_or(|last| candidate.crl_number > *last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_order_numerically() {
        let small = CrlNumber::from(0xffu128);
        let big = CrlNumber::from(0x100u128);
        assert!(big > small);
        assert_eq!(CrlNumber::from_be_bytes(&[0, 0, 1]), CrlNumber::from(1u128));
        let wide: CrlNumber = "0102030405060708090a0b0c0d0e0f1011121314".parse().unwrap();
        assert!(wide > CrlNumber::from(u128::MAX));
        assert_eq!(wide.to_u128(), None);
        assert_eq!(big.to_u128(), Some(0x100));
    }

    #[test]
    fn numbers_round_trip_as_hex() {
        for n in [0u128, 1, 0x1000, 0xabcdef, u128::MAX] {
            let num = CrlNumber::from(n);
            let text = num.to_string();
            assert_eq!(text, format!("{n:x}"));
            assert_eq!(text.parse::<CrlNumber>().unwrap(), num);
        }
        assert_eq!(
            "0x0A".parse::<CrlNumber>().unwrap(),
            CrlNumber::from(10u128)
        );
        assert!("".parse::<CrlNumber>().is_err());
        assert!("12g".parse::<CrlNumber>().is_err());
        assert!("01".repeat(21).parse::<CrlNumber>().is_err());
    }

    #[test]
    fn reason_codes_have_private_cas_names() {
        assert_eq!(reason_name(1), "KEY_COMPROMISE");
        assert_eq!(reason_name(4), "SUPERSEDED");
        assert_eq!(reason_name(10), "A_A_COMPROMISE");
        assert_eq!(reason_name(7), "UNKNOWN_REASON", "7 is unused");
    }

    #[test]
    fn newer() {
        let facts = |n: u128| CrlFacts {
            crl_number: CrlNumber::from(n),
            this_update: OffsetDateTime::UNIX_EPOCH,
            next_update: None,
            revoked_serials: vec![],
            revocation_reasons: Default::default(),
            issuer: String::new(),
            der: vec![],
        };
        assert!(crl_is_newer(&facts(1), None));
        assert!(crl_is_newer(&facts(2), Some(&CrlNumber::from(1u128))));
        assert!(!crl_is_newer(&facts(2), Some(&CrlNumber::from(2u128))));
        assert!(!crl_is_newer(&facts(1), Some(&CrlNumber::from(2u128))));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            check_crl(b"\x30\x03\x02\x01\x01", ""),
            Err(CrlError::Der(_))
        ));
        assert!(matches!(
            check_crl(b"-----BEGIN CERTIFICATE-----\n", ""),
            Err(CrlError::PemShape { .. }) | Err(CrlError::Pem(_))
        ));
    }
}
