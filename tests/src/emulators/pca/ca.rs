//! The emulated CA itself: its key algorithm (and which signing algorithms it can honour), its
//! usage mode, its root certificate, and the identifiers derived from it.
//!
//! Why apart: issuance (`api`) and CRL signing (`crl`) both sign with this key under the same
//! rules, so the rules live once, next to the key.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};
use time::OffsetDateTime;

use crate::emulators::wire::ApiError;

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

    pub(super) fn generate(self) -> Result<KeyPair, rcgen::Error> {
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
    pub(super) fn signer(
        self,
        signing_algorithm: &str,
    ) -> Result<&'static SignatureAlgorithm, ApiError> {
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
    pub(super) fn api_name(self) -> &'static str {
        match self {
            Self::ShortLivedCertificate => "SHORT_LIVED_CERTIFICATE",
            Self::GeneralPurpose => "GENERAL_PURPOSE",
        }
    }
}

/// The emulated CA: its identity, key and certificate, and its status.
pub(super) struct Ca {
    pub(super) arn: String,
    pub(super) key_algorithm: CaKeyAlgorithm,
    /// PKCS#8 PEM of the CA key: never leaves the emulator.
    pub(super) key_pem: String,
    pub(super) cert_pem: String,
    pub(super) serial: String,
    pub(super) common_name: String,
    pub(super) organization: Option<String>,
    pub(super) usage_mode: UsageMode,
    pub(super) status: String,
    pub(super) created: OffsetDateTime,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
}

/// A random positive 16-byte serial, as the service gives.
pub(super) fn random_serial() -> [u8; 16] {
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f).max(1);
    b
}

/// The parameters of a root CA certificate named `O=<organization>, CN=<common_name>`.
pub(super) fn ca_params(
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

/// The UUID at the end of a CA ARN.
pub(super) fn ca_id_of(ca_arn: &str) -> String {
    ca_arn.rsplit('/').next().unwrap_or_default().to_string()
}

/// A PEM without its trailing newline, as the service returns PEMs.
pub(super) fn trim_pem(p: &str) -> String {
    p.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
