//! Host key algorithms: the names the stack parameter, the table's `keyAlgorithm` attribute and
//! the GenerateCsr document's `keyAlgorithm` parameter all use.

use std::fmt;
use std::str::FromStr;

/// A key algorithm a host may generate its private key with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// ECDSA on NIST P-256 (`prime256v1`).
    EcP256,
    /// ECDSA on NIST P-384 (`secp384r1`).
    EcP384,
}

/// The name given is not one of the supported key algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key algorithm {0:?}: expected one of RSA_2048, RSA_3072, RSA_4096, EC_prime256v1, EC_secp384r1")]
pub struct UnknownKeyAlgorithm(pub String);

impl KeyAlgorithm {
    /// Every supported algorithm, strongest RSA last.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP384,
    ];

    /// The wire name (as in the stack parameter and the document parameter).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "RSA_2048",
            KeyAlgorithm::Rsa3072 => "RSA_3072",
            KeyAlgorithm::Rsa4096 => "RSA_4096",
            KeyAlgorithm::EcP256 => "EC_prime256v1",
            KeyAlgorithm::EcP384 => "EC_secp384r1",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = UnknownKeyAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownKeyAlgorithm(s.to_owned()))
    }
}
