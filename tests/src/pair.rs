//! What a user checks first on a host: does the live certificate belong to the live key?
//!
//! Why here and in Rust: the chaos test asks it of every host after every delivery, hundreds of
//! times a run, while the hosts' scripts may be swapping pairs that very moment. Spawning
//! openssl for each would cost more than the run; and a reader of two files can meet a swap
//! half-way, so the answer has to say whether a swap was in progress (its journal present), and
//! retry when the certificate changed under it. The swap's own guarantee (see the host scripts'
//! `swap.sh`) is what is checked: a mismatch is allowed only while a journal names a swap that
//! the next run of either document completes.

use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

use crate::stack::HostFiles;

/// The state of a host's live pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivePair {
    /// No certificate or no key yet (a host before its first rotation).
    Absent,
    /// The certificate holds the key's public key; its serial (canonical hex).
    Matching(String),
    /// A swap is in progress (its journal is present) and the two files differ for now.
    Swapping,
    /// The certificate and key do not match and no swap is in progress: the host has no
    /// working pair. The text says what was found.
    Broken(String),
}

impl HostFiles {
    /// The journal a swap writes before it moves anything (in the key's directory).
    pub fn swap_journal(&self) -> std::path::PathBuf {
        let host = self
            .key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.key
            .parent()
            .unwrap_or(std::path::Path::new("/"))
            .join(format!(".{host}.swap"))
    }

    /// Reads the live pair. Reads the certificate before and after the key (and looks for the
    /// journal either side), and reads again when the certificate changed in between, so a swap
    /// that ran during the read is never taken for a broken pair.
    pub fn live_pair(&self) -> LivePair {
        for _ in 0..20 {
            let journal_before = self.swap_journal().exists();
            let cert = std::fs::read_to_string(&self.cert);
            let key = std::fs::read_to_string(&self.key);
            let cert_again = std::fs::read_to_string(&self.cert);
            let journal_after = self.swap_journal().exists();
            let swapping = journal_before || journal_after;
            match (cert, key, cert_again) {
                (Ok(c), Ok(k), Ok(c2)) => {
                    if c != c2 {
                        continue;
                    }
                    return match pair_of(&c, &k) {
                        Ok(serial) => LivePair::Matching(serial),
                        Err(_) if swapping => LivePair::Swapping,
                        Err(why) => LivePair::Broken(why),
                    };
                }
                _ if swapping => return LivePair::Swapping,
                (Err(_), Err(_), Err(_)) => return LivePair::Absent,
                (c, _, c2) if c.is_ok() != c2.is_ok() => continue,
                (c, _, _) => {
                    let missing = if c.is_err() { "certificate" } else { "key" };
                    return LivePair::Broken(format!("the {missing} is missing"));
                }
            }
        }
        LivePair::Broken("the certificate kept changing while it was read".into())
    }
}

/// The certificate's serial when it holds the key's public key, else why not.
fn pair_of(cert_pem: &str, key_pem: &str) -> Result<String, String> {
    let cert = pki::parse_certificate_pem(cert_pem).map_err(|e| format!("certificate: {e}"))?;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("key: {e}"))?;
    let key_spki = hex::encode(Sha256::digest(key.subject_public_key_info()));
    if key_spki == cert.spki_sha256 {
        Ok(cert.serial)
    } else {
        Err(format!(
            "certificate {} does not hold the key's public key",
            cert.serial
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path) -> HostFiles {
        HostFiles {
            root: dir.to_path_buf(),
            cert: dir.join("h.crt"),
            key: dir.join("private").join("h.key"),
            chain: dir.join("ca_chain_certificate.crt"),
        }
    }

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["h".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_pair_matches_a_mixed_pair_is_broken_unless_a_swap_is_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        std::fs::create_dir_all(f.key.parent().unwrap()).unwrap();
        assert_eq!(f.live_pair(), LivePair::Absent);

        let (cert, key) = pair();
        std::fs::write(&f.cert, &cert).unwrap();
        assert!(matches!(f.live_pair(), LivePair::Broken(_)), "no key");
        std::fs::write(&f.key, &key).unwrap();
        assert!(matches!(f.live_pair(), LivePair::Matching(_)));

        let (_, other_key) = pair();
        std::fs::write(&f.key, &other_key).unwrap();
        assert!(matches!(f.live_pair(), LivePair::Broken(_)));
        std::fs::write(f.swap_journal(), "swap").unwrap();
        assert_eq!(f.live_pair(), LivePair::Swapping);
    }
}
