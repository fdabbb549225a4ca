//! PKI checks for certificate rotation: which host keys we accept, CSR policy, certificate and
//! CRL inspection.
//!
//! Everything here is pure: bytes in, facts or a typed refusal out. No AWS calls, no I/O, so the
//! functions can be unit-tested on real material made by `openssl` and reused by every Lambda.
//!
//! - [`extract_csr_pem`] and [`check_csr`] enforce security invariant 2 (docs/design.md) (the CSR names only the
//!   host it was asked of, its signature verifies, its key meets [`CsrPolicy`]).
//! - [`parse_certificate_pem`], [`check_issued_certificate`] and [`certificate_signed_by`] decide
//!   whether an issued certificate may be deployed (right host, right key, Roles Anywhere
//!   end-entity rules, our CA).
//! - [`check_crl`] and [`crl_is_newer`] enforce security invariant 4 (docs/design.md) (CRL signed by our CA, newer
//!   by CRL number).
//!
//! Error messages stay short and never echo whole inputs; untrusted strings in them are
//! truncated.

mod cert;
mod crl;
mod csr;
mod key;
mod key_algorithm;
mod pem;
mod x509util;

pub use cert::{
    canonical_serial, certificate_signed_by, check_issued_certificate, normalize_serial,
    parse_certificate_der, parse_certificate_pem, split_pem_chain, CertError, CertificateFacts,
    CERT_PEM_LABEL, MAX_CERT_PEM_BYTES,
};
pub use crl::{
    check_crl, crl_is_newer, reason_name, BadCrlNumber, CrlError, CrlFacts, CrlNumber,
    CRL_PEM_LABEL, MAX_CRL_BYTES,
};
pub use csr::{
    check_csr, extract_csr_pem, AcceptedCsr, CsrError, CsrPolicy, CSR_PEM_LABEL,
    MAX_COMMAND_OUTPUT_BYTES, MAX_CSR_PEM_BYTES, MAX_RSA_BITS,
};
pub use key::{EcCurve, KeyKind, PublicKeyFacts};
pub use key_algorithm::{KeyAlgorithm, UnknownKeyAlgorithm};
pub use pem::PemError;
/// The x509-parser error type carried as the `source` of some refusals.
pub use x509_parser::error::X509Error;
