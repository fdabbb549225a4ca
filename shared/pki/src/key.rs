//! Facts about a public key (type, size, fingerprint), shared by the CSR and certificate checks.
//!
//! Why: the CSR policy decides on the key's type and size, and the key's SPKI fingerprint is the
//! thread that ties an issued certificate back to the CSR (and to the key staged on the host).

use std::fmt;

use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::KeyAlgorithm;

/// A named elliptic curve we know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (`prime256v1`, `secp256r1`).
    P256,
    /// NIST P-384 (`secp384r1`).
    P384,
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
        })
    }
}

/// The type (and size) of a public key the stack may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An RSA key (`rsaEncryption`) with a modulus of `bits` bits.
    Rsa {
        /// Modulus length in bits (leading zero bits not counted).
        bits: u32,
    },
    /// An EC key (`id-ecPublicKey`) on a named curve.
    Ec {
        /// The curve.
        curve: EcCurve,
    },
}

impl KeyKind {
    /// The stack's [`KeyAlgorithm`] this key is an instance of, if it is exactly one of them
    /// (an RSA key of 2560 bits, for example, is none).
    pub fn key_algorithm(&self) -> Option<KeyAlgorithm> {
        match self {
            KeyKind::Rsa { bits: 2048 } => Some(KeyAlgorithm::Rsa2048),
            KeyKind::Rsa { bits: 3072 } => Some(KeyAlgorithm::Rsa3072),
            KeyKind::Rsa { bits: 4096 } => Some(KeyAlgorithm::Rsa4096),
            KeyKind::Rsa { .. } => None,
            KeyKind::Ec {
                curve: EcCurve::P256,
            } => Some(KeyAlgorithm::EcP256),
            KeyKind::Ec {
                curve: EcCurve::P384,
            } => Some(KeyAlgorithm::EcP384),
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::Ec { curve } => write!(f, "EC {curve}"),
        }
    }
}

impl KeyAlgorithm {
    /// The key type and size this algorithm produces.
    pub fn key_kind(self) -> KeyKind {
        match self {
            KeyAlgorithm::Rsa2048 => KeyKind::Rsa { bits: 2048 },
            KeyAlgorithm::Rsa3072 => KeyKind::Rsa { bits: 3072 },
            KeyAlgorithm::Rsa4096 => KeyKind::Rsa { bits: 4096 },
            KeyAlgorithm::EcP256 => KeyKind::Ec {
                curve: EcCurve::P256,
            },
            KeyAlgorithm::EcP384 => KeyKind::Ec {
                curve: EcCurve::P384,
            },
        }
    }
}

/// What we know about a public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKeyFacts {
    /// Type and size.
    pub kind: KeyKind,
    /// Lowercase hex SHA-256 of the DER `SubjectPublicKeyInfo` (what
    /// `openssl pkey -pubin -outform DER | sha256sum` prints).
    pub spki_sha256: String,
}

/// Why a key is not one we can describe as a [`KeyKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyProblem {
    /// The key's algorithm is not RSA or EC (or RSA-PSS-only, DSA, Ed25519, …): dotted OID.
    UnsupportedType(String),
    /// EC key on a curve other than P-256/P-384: dotted OID or a description.
    UnsupportedCurve(String),
    /// The key bytes do not parse.
    Malformed,
}

/// Lowercase hex SHA-256 of the whole DER `SubjectPublicKeyInfo`.
pub(crate) fn spki_sha256(spki: &SubjectPublicKeyInfo<'_>) -> String {
    hex::encode(Sha256::digest(spki.raw))
}

/// Describes the key, or says why it is not RSA / EC P-256 / EC P-384.
pub(crate) fn analyse(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicKeyFacts, KeyProblem> {
    Ok(PublicKeyFacts {
        kind: kind(spki)?,
        spki_sha256: spki_sha256(spki),
    })
}

/// The key's type and size, or why it is not RSA / EC P-256 / EC P-384 ([`analyse`] without the
/// fingerprint).
pub(crate) fn kind(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, KeyProblem> {
    let alg = &spki.algorithm.algorithm;
    Ok(if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = magnitude_bits(rsa.modulus);
                // An even modulus, or an exponent below 3, is not an RSA key anyone generated.
                let exponent = rsa.try_exponent().map_err(|_| KeyProblem::Malformed)?;
                if bits == 0 || rsa.modulus.last().is_some_and(|b| b & 1 == 0) || exponent < 3 {
                    return Err(KeyProblem::Malformed);
                }
                KeyKind::Rsa { bits }
            }
            _ => return Err(KeyProblem::Malformed),
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve_oid = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| KeyProblem::UnsupportedCurve("explicit or missing parameters".into()))?;
        let (curve, point_len) = if curve_oid == OID_EC_P256 {
            (EcCurve::P256, 65)
        } else if curve_oid == OID_NIST_EC_P384 {
            (EcCurve::P384, 97)
        } else {
            return Err(KeyProblem::UnsupportedCurve(curve_oid.to_id_string()));
        };
        // Uncompressed point: 0x04 || X || Y. Compressed points are valid SEC1 but no tool we
        // support emits them, and aws-lc verifies only uncompressed ones.
        let point = &spki.subject_public_key.data;
        if point.len() != point_len || point.first() != Some(&4) {
            return Err(KeyProblem::Malformed);
        }
        KeyKind::Ec { curve }
    } else {
        return Err(KeyProblem::UnsupportedType(alg.to_id_string()));
    })
}

/// Bit length of a big-endian unsigned magnitude (leading zero bytes and bits not counted).
fn magnitude_bits(bytes: &[u8]) -> u32 {
    let Some(first) = bytes.iter().position(|&b| b != 0) else {
        return 0;
    };
    let rest = &bytes[first..];
    let len = u32::try_from(rest.len()).unwrap_or(u32::MAX / 8);
    len * 8 - rest[0].leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        assert_eq!(magnitude_bits(&[]), 0);
        assert_eq!(magnitude_bits(&[0, 0]), 0);
        assert_eq!(magnitude_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(magnitude_bits(&[0x01, 0xff]), 9);
        assert_eq!(magnitude_bits(&[0xff]), 8);
    }

    #[test]
    fn algorithm_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.key_kind().key_algorithm(), Some(alg));
        }
        assert_eq!(KeyKind::Rsa { bits: 2560 }.key_algorithm(), None);
    }
}
