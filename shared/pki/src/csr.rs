//! CSR policy (security invariant 2 in docs/design.md): a CSR is accepted only if its signature verifies, its subject
//! is exactly `CN=<the host the command was sent to>`, it asks for no other names, and its key
//! type and size meet the stack's policy.
//!
//! Why so strict: the CSR comes back through Run Command output, i.e. from a machine we are about
//! to trust. Whatever it asks for may end up in a certificate that Roles Anywhere turns into AWS
//! credentials, so anything we do not positively need is refused rather than ignored.
//!
//! # What a CSR may request
//!
//! A PKCS#10 CSR may carry attributes; the only one accepted is `extensionRequest`
//! (1.2.840.113549.1.9.14), at most once, and within it only these extensions, each at most
//! once, critical or not, because they can only *narrow* what the certificate is good for:
//!
//! - `basicConstraints` with `CA:FALSE` and no path length;
//! - `keyUsage` with no bits outside digitalSignature, nonRepudiation, keyEncipherment and
//!   keyAgreement (no keyCertSign, cRLSign, dataEncipherment, encipherOnly, decipherOnly);
//! - `extendedKeyUsage` with exactly clientAuth.
//!
//! Everything else is refused: `subjectAltName` (its own error, since it is the "other names"
//! the invariant forbids), and any other extension, known or not (issuerAltName,
//! nameConstraints, policies, SKI, Netscape types, private OIDs, …). Other attributes
//! (`challengePassword`, `unstructuredName`, …) are refused too: a challenge password is a
//! secret that has no business in our pipeline.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::error::X509Error;
use x509_parser::extensions::{ExtendedKeyUsage, KeyUsage, ParsedExtension};
use x509_parser::oid_registry::{
    OID_PKCS9_EXTENSION_REQUEST, OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};

use crate::key::{self, EcCurve, KeyKind, KeyProblem, PublicKeyFacts};
use crate::pem::{self, PemError};
use crate::x509util::{self, NameShape};

/// The PEM label of a PKCS#10 request.
pub const CSR_PEM_LABEL: &str = "CERTIFICATE REQUEST";

/// Largest CSR PEM block (and largest input to [`check_csr`]) we look at: 16 KiB. An RSA 4096
/// CSR is under 2 KiB; anything near this size is not something a host generated for us.
pub const MAX_CSR_PEM_BYTES: usize = 16 * 1024;

/// Largest command output [`extract_csr_pem`] scans: 64 KiB (SSM cuts stdout at 24,000
/// characters, so real output never gets near this).
pub const MAX_COMMAND_OUTPUT_BYTES: usize = 64 * 1024;

/// Which host keys the stack accepts in a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CsrPolicy {
    /// Smallest RSA modulus accepted, in bits. RSA keys larger than 8192 bits are refused in any
    /// case (nothing in the stack can verify them).
    pub min_rsa_bits: u32,
    /// Whether EC keys on P-256 are accepted.
    pub allow_ec_p256: bool,
    /// Whether EC keys on P-384 are accepted.
    pub allow_ec_p384: bool,
}

/// Largest RSA modulus accepted whatever the policy says (aws-lc verifies up to 8192 bits).
pub const MAX_RSA_BITS: u32 = 8192;

impl Default for CsrPolicy {
    /// RSA of 2048 bits or more, EC P-256 and P-384: every [`crate::KeyAlgorithm`].
    fn default() -> Self {
        CsrPolicy {
            min_rsa_bits: 2048,
            allow_ec_p256: true,
            allow_ec_p384: true,
        }
    }
}

impl CsrPolicy {
    /// Whether a key of this kind meets the policy.
    pub fn allows(&self, kind: KeyKind) -> bool {
        match kind {
            KeyKind::Rsa { bits } => bits >= self.min_rsa_bits && bits <= MAX_RSA_BITS,
            KeyKind::Ec {
                curve: EcCurve::P256,
            } => self.allow_ec_p256,
            KeyKind::Ec {
                curve: EcCurve::P384,
            } => self.allow_ec_p384,
        }
    }
}

/// A CSR that passed every check of [`check_csr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedCsr {
    /// The CSR's DER bytes, exactly as signed by the host.
    pub der: Vec<u8>,
    /// The CSR re-encoded as canonical PEM (64-column base64, `\n` line ends), ready for
    /// `IssueCertificate`.
    pub pem: String,
    /// The subject CN (equal to the expected host).
    pub subject_cn: String,
    /// The public key's type, size and SPKI fingerprint.
    pub key: PublicKeyFacts,
}

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsrError {
    /// No `-----BEGIN CERTIFICATE REQUEST-----` block in the input.
    #[error("no CERTIFICATE REQUEST PEM block found")]
    NotFound,
    /// More than one distinct CSR block: we cannot tell which one the host meant.
    #[error("{count} different CERTIFICATE REQUEST blocks found; expected exactly one")]
    Ambiguous {
        /// How many distinct blocks.
        count: usize,
    },
    /// The input (or the CSR block) is larger than we accept.
    #[error("input is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// Cap.
        max: usize,
    },
    /// The PEM text is malformed.
    #[error("malformed CSR PEM")]
    Pem(#[source] PemError),
    /// The DER does not parse as a PKCS#10 request (or has trailing bytes).
    #[error("malformed CSR DER")]
    Der(#[source] X509Error),
    /// The request's version is not v1 (0), the only one PKCS#10 defines.
    #[error("CSR version {version} is not v1")]
    BadVersion {
        /// The raw version number.
        version: u32,
    },
    /// The CSR's own signature algorithm is weak or unknown (SHA-256 or stronger required).
    #[error(
        "CSR signature algorithm {oid} refused: RSA or ECDSA with SHA-256 or stronger required"
    )]
    SignatureAlgorithmRefused {
        /// Dotted OID.
        oid: String,
    },
    /// The signature does not verify with the CSR's own key.
    #[error("CSR signature does not verify")]
    BadSignature(#[source] X509Error),
    /// The subject is not exactly one RDN holding exactly one CN.
    #[error("CSR subject must be exactly one CN: {reason}")]
    SubjectNotSingleCn {
        /// Short description of what was found instead.
        reason: String,
    },
    /// The CN names another host.
    #[error("CSR subject CN {actual:?} does not match the host {expected:?}")]
    CnMismatch {
        /// The host the command was sent to.
        expected: String,
        /// The CN found (truncated to 64 characters).
        actual: String,
    },
    /// The CSR asks for a subjectAltName: only the CN may name the host.
    #[error("CSR requests a subjectAltName; only the subject CN may name the host")]
    SubjectAltNameRequested,
    /// The CSR asks for an extension the policy refuses (see the module documentation).
    #[error("CSR requests extension {oid}, refused: {reason}")]
    ExtensionRefused {
        /// Dotted OID of the extension.
        oid: String,
        /// Why.
        reason: &'static str,
    },
    /// The CSR carries an attribute other than a single extensionRequest.
    #[error("CSR carries attribute {oid}, refused: {reason}")]
    AttributeRefused {
        /// Dotted OID of the attribute.
        oid: String,
        /// Why.
        reason: &'static str,
    },
    /// An RSA key smaller than the policy's minimum, or larger than [`MAX_RSA_BITS`].
    #[error("RSA key of {bits} bits refused: policy requires {min} to {max} bits")]
    RsaKeySize {
        /// Modulus size found.
        bits: u32,
        /// Policy minimum.
        min: u32,
        /// Hard maximum.
        max: u32,
    },
    /// An EC key on a curve the policy does not allow (or one we do not support at all).
    #[error("EC key on curve {curve} refused by policy")]
    CurveNotAllowed {
        /// `P-256`, `P-384`, or the curve's dotted OID.
        curve: String,
    },
    /// A key that is neither RSA nor EC (DSA, Ed25519, RSA-PSS-only, …).
    #[error("key type {algorithm} refused: only RSA and EC keys are accepted")]
    KeyTypeRefused {
        /// Dotted OID of the key algorithm.
        algorithm: String,
    },
    /// The key bytes are malformed (bad RSA integers, bad EC point, …).
    #[error("CSR public key is malformed")]
    MalformedKey,
}

/// Finds the one CSR in Run Command stdout, which may hold other lines around it (progress
/// messages, `\r\n` line ends, indentation). The BEGIN/END markers must each stand alone on
/// their line. The same block printed twice counts once; two different blocks are refused.
///
/// Returns the CSR as canonical PEM. This does not check the CSR: pass it to [`check_csr`].
pub fn extract_csr_pem(command_output: &str) -> Result<String, CsrError> {
    if command_output.len() > MAX_COMMAND_OUTPUT_BYTES {
        return Err(CsrError::TooLarge {
            len: command_output.len(),
            max: MAX_COMMAND_OUTPUT_BYTES,
        });
    }
    let (_der, canonical_pem) = single_block(command_output)?;
    Ok(canonical_pem)
}

/// The one distinct CSR block in `text`: its DER and its canonical PEM, which must be at most
/// [`MAX_CSR_PEM_BYTES`].
fn single_block(text: &str) -> Result<(Vec<u8>, String), CsrError> {
    let mut blocks = pem::distinct_blocks(text, CSR_PEM_LABEL).map_err(CsrError::Pem)?;
    match blocks.len() {
        0 => Err(CsrError::NotFound),
        1 => {
            let der = blocks.remove(0).der;
            let canonical_pem = pem::encode(CSR_PEM_LABEL, &der);
            if canonical_pem.len() > MAX_CSR_PEM_BYTES {
                return Err(CsrError::TooLarge {
                    len: canonical_pem.len(),
                    max: MAX_CSR_PEM_BYTES,
                });
            }
            Ok((der, canonical_pem))
        }
        count => Err(CsrError::Ambiguous { count }),
    }
}

/// Checks a CSR against security invariant 2 (docs/design.md) and the key policy; see the module documentation for
/// the exact rules. `pem` must hold exactly one CSR block (at most [`MAX_CSR_PEM_BYTES`]).
///
/// The checks run in this order, so the error names the first problem: size, PEM, DER, version,
/// key type and size, signature algorithm, signature, subject shape, CN, attributes and
/// extensions. (The key is judged before the signature because a too-small RSA key cannot even
/// be verified, and "RSA 1024 refused" is the useful message.)
pub fn check_csr(
    pem: &str,
    expected_host: &str,
    policy: &CsrPolicy,
) -> Result<AcceptedCsr, CsrError> {
    if pem.len() > MAX_CSR_PEM_BYTES {
        return Err(CsrError::TooLarge {
            len: pem.len(),
            max: MAX_CSR_PEM_BYTES,
        });
    }
    // The input may be smaller than its canonical form (long lines), so both sizes are checked.
    let (der, canonical_pem) = single_block(pem)?;

    let csr: X509CertificationRequest<'_> = x509util::parse_exact(&der).map_err(CsrError::Der)?;
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::BadVersion {
            version: info.version.0,
        });
    }

    // Key type and size.
    let key = key::analyse(&info.subject_pki).map_err(|p| match p {
        KeyProblem::UnsupportedType(algorithm) => CsrError::KeyTypeRefused { algorithm },
        KeyProblem::UnsupportedCurve(curve) => CsrError::CurveNotAllowed { curve },
        KeyProblem::Malformed => CsrError::MalformedKey,
    })?;
    if !policy.allows(key.kind) {
        return Err(match key.kind {
            KeyKind::Rsa { bits } => CsrError::RsaKeySize {
                bits,
                min: policy.min_rsa_bits,
                max: MAX_RSA_BITS,
            },
            KeyKind::Ec { curve } => CsrError::CurveNotAllowed {
                curve: curve.to_string(),
            },
        });
    }

    // Signature.
    if !x509util::is_strong_signature(&csr.signature_algorithm) {
        return Err(CsrError::SignatureAlgorithmRefused {
            oid: csr.signature_algorithm.algorithm.to_id_string(),
        });
    }
    csr.verify_signature().map_err(CsrError::BadSignature)?;

    // Subject.
    let cn = match x509util::name_shape(&info.subject) {
        NameShape::SingleCn(cn) => cn,
        NameShape::Other(reason) => return Err(CsrError::SubjectNotSingleCn { reason }),
    };
    if expected_host.is_empty() || cn != expected_host {
        return Err(CsrError::CnMismatch {
            expected: pem::short(expected_host, 64),
            actual: pem::short(&cn, 64),
        });
    }

    check_attributes(&csr)?;

    Ok(AcceptedCsr {
        pem: canonical_pem,
        der,
        subject_cn: cn,
        key,
    })
}

fn check_attributes(csr: &X509CertificationRequest<'_>) -> Result<(), CsrError> {
    let mut seen_extension_request = false;
    for attr in csr.certification_request_info.iter_attributes() {
        let oid = attr.oid.to_id_string();
        if attr.oid != OID_PKCS9_EXTENSION_REQUEST {
            return Err(CsrError::AttributeRefused {
                oid,
                reason: "only an extensionRequest attribute is accepted",
            });
        }
        if seen_extension_request {
            return Err(CsrError::AttributeRefused {
                oid,
                reason: "more than one extensionRequest",
            });
        }
        seen_extension_request = true;
        let ParsedCriAttribute::ExtensionRequest(request) = attr.parsed_attribute() else {
            return Err(CsrError::AttributeRefused {
                oid,
                reason: "the extensionRequest does not parse",
            });
        };
        let mut seen = Vec::new();
        for ext in &request.extensions {
            if seen.contains(&ext.oid) {
                return Err(CsrError::ExtensionRefused {
                    oid: ext.oid.to_id_string(),
                    reason: "requested more than once",
                });
            }
            seen.push(ext.oid.clone());
            check_requested_extension(ext)?;
        }
    }
    Ok(())
}

fn check_requested_extension(
    ext: &x509_parser::extensions::X509Extension<'_>,
) -> Result<(), CsrError> {
    let refuse = |reason| {
        Err(CsrError::ExtensionRefused {
            oid: ext.oid.to_id_string(),
            reason,
        })
    };
    if ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
        return Err(CsrError::SubjectAltNameRequested);
    }
    match ext.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) if ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS => {
            if bc.ca || bc.path_len_constraint.is_some() {
                refuse("basicConstraints may only say CA:FALSE")
            } else {
                Ok(())
            }
        }
        ParsedExtension::KeyUsage(ku) if ext.oid == OID_X509_EXT_KEY_USAGE => {
            if key_usage_is_harmless(ku) {
                Ok(())
            } else {
                refuse("keyUsage may only hold digitalSignature, nonRepudiation, keyEncipherment, keyAgreement")
            }
        }
        ParsedExtension::ExtendedKeyUsage(eku) if ext.oid == OID_X509_EXT_EXTENDED_KEY_USAGE => {
            if eku_is_client_auth_only(eku) {
                Ok(())
            } else {
                refuse("extendedKeyUsage may only hold clientAuth")
            }
        }
        ParsedExtension::ParseError { .. } => refuse("the extension does not parse"),
        _ => refuse("not on the allow-list (basicConstraints, keyUsage, extendedKeyUsage)"),
    }
}

fn key_usage_is_harmless(ku: &KeyUsage) -> bool {
    // Bits 0 digitalSignature, 1 nonRepudiation, 2 keyEncipherment, 4 keyAgreement.
    const ALLOWED: u16 = 0b1_0111;
    ku.flags & !ALLOWED == 0
}

fn eku_is_client_auth_only(eku: &ExtendedKeyUsage<'_>) -> bool {
    eku.client_auth
        && !eku.any
        && !eku.server_auth
        && !eku.code_signing
        && !eku.email_protection
        && !eku.time_stamping
        && !eku.ocsp_signing
        && eku.other.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_accept_every_key_algorithm() {
        let policy = CsrPolicy::default();
        for alg in crate::KeyAlgorithm::ALL {
            assert!(policy.allows(alg.key_kind()), "{alg}");
        }
        assert!(!policy.allows(KeyKind::Rsa { bits: 1024 }));
        assert!(!policy.allows(KeyKind::Rsa { bits: 16384 }));
    }

    #[test]
    fn key_usage_allow_list() {
        assert!(key_usage_is_harmless(&KeyUsage { flags: 0b1 }));
        assert!(key_usage_is_harmless(&KeyUsage { flags: 0b1_0101 }));
        // keyCertSign (bit 5), cRLSign (bit 6), dataEncipherment (bit 3).
        assert!(!key_usage_is_harmless(&KeyUsage { flags: 1 << 5 }));
        assert!(!key_usage_is_harmless(&KeyUsage { flags: 1 << 6 }));
        assert!(!key_usage_is_harmless(&KeyUsage { flags: 1 << 3 }));
    }

    #[test]
    fn empty_and_huge_inputs() {
        assert_eq!(extract_csr_pem("nothing here\n"), Err(CsrError::NotFound));
        assert_eq!(
            check_csr("", "h", &CsrPolicy::default()),
            Err(CsrError::NotFound)
        );
        let huge = "x".repeat(MAX_CSR_PEM_BYTES + 1);
        assert!(matches!(
            check_csr(&huge, "h", &CsrPolicy::default()),
            Err(CsrError::TooLarge { .. })
        ));
    }
}
