//! The hosts: online and offline, what they hold, and how they run the two documents.
//!
//! Why apart from the kit's hosts: the kit records commands and their answers; this model
//! decides the answers the way a host would (a fresh EC P-256 key and a CSR naming itself, a
//! reboot mid-command, openssl failing, a hostile host asking for another's name) and holds
//! what the invariants are about: the live key and certificate on each host.
//!
//! The shortcut (`real_crypto = false`): a host makes its key and CSR once and answers every
//! later GenerateCsr with them. It skips the key generation and CSR signing of each rotation;
//! the CA still signs a real certificate for the CSR, the handlers still verify the CSR and the
//! certificate, and the host still compares the certificate's key with its own.

use rcgen::KeyPair;
use state::HostId;
use time::OffsetDateTime;

use crate::kit::hosts::{csr_output, generate_csr, Request, SentCommand};

/// A host's name for index `i`.
pub fn host_id(i: usize) -> HostId {
    HostId::parse(&format!("mi-{:017x}", 0x5100_0000u64 + i as u64)).expect("a managed-node ID")
}

/// The index of a host named by [`host_id`].
pub fn host_index(host: &HostId) -> Option<usize> {
    let hex = host.as_str().strip_prefix("mi-")?;
    u64::from_str_radix(hex, 16)
        .ok()?
        .checked_sub(0x5100_0000)
        .map(|i| i as usize)
}

/// A certificate installed on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The key's public half (SPKI DER), or a synthetic one for the initial fleet.
    pub key: Vec<u8>,
    /// The certificate's public key (SPKI DER).
    pub cert_key: Vec<u8>,
    /// NotAfter.
    pub not_after: OffsetDateTime,
}

/// One host.
#[derive(Debug, Clone, Default)]
pub struct SimHost {
    /// Whether the agent is reachable.
    pub online: bool,
    /// When it last came back online (`None`: online from the start).
    pub online_since: Option<time::OffsetDateTime>,
    /// The public half of the key GenerateCsr last staged.
    pub staged: Option<Vec<u8>>,
    /// What is installed.
    pub live: Option<Live>,
    /// Commands waiting for the host to come online.
    pub waiting: Vec<String>,
    /// The shortcut's CSR and key, made once.
    cached: Option<(String, Vec<u8>)>,
}

/// How a command ended on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Success with this stdout.
    Success(String),
    /// Failed with this stderr.
    Failed(String),
    /// The host rebooted mid-command (the invocation fails; the host is away).
    Rebooted,
}

/// What the host's run draws decided (uniform draws in [0, 1), made by the caller's RNG).
#[derive(Debug, Clone, Copy)]
pub struct Draws {
    /// Against the reboot rate.
    pub reboot: f64,
    /// Against openssl's failure rate.
    pub openssl: f64,
    /// Against the hostile-CSR rate.
    pub foreign: f64,
}

/// The parameters a host's run depends on.
#[derive(Debug, Clone, Copy)]
pub struct HostBehaviour {
    /// Share of commands interrupted by a reboot.
    pub reboot_rate: f64,
    /// Share of GenerateCsr runs where openssl fails.
    pub openssl_failure: f64,
    /// Share of GenerateCsr runs answering a CSR for another host.
    pub foreign_csr: f64,
    /// The host checks the certificate against its key before installing.
    pub verifies: bool,
    /// Real keys and CSRs each rotation.
    pub real_crypto: bool,
}

impl SimHost {
    /// An online host holding nothing.
    pub fn online() -> Self {
        SimHost {
            online: true,
            ..SimHost::default()
        }
    }

    /// Runs `command` on host `id`: what it answers, and what it now holds.
    pub fn run(
        &mut self,
        id: &HostId,
        other: &HostId,
        command: &SentCommand,
        behaviour: &HostBehaviour,
        draws: Draws,
    ) -> Ran {
        if draws.reboot < behaviour.reboot_rate {
            return Ran::Rebooted;
        }
        match &command.request {
            Request::Csr { key_algorithm, .. } => {
                if draws.openssl < behaviour.openssl_failure {
                    return Ran::Failed("ERROR: openssl req failed (simulated)".into());
                }
                let name = if draws.foreign < behaviour.foreign_csr {
                    other
                } else {
                    id
                };
                let made = match (&self.cached, behaviour.real_crypto || name != id) {
                    (Some((csr, key)), false) => Ok((csr.clone(), key.clone())),
                    _ => generate_csr(name, *key_algorithm).map(|g| {
                        let key = KeyPair::from_pem(&g.key_pem)
                            .map(|k| rcgen::PublicKeyData::subject_public_key_info(&k))
                            .unwrap_or_default();
                        (g.csr_pem, key)
                    }),
                };
                match made {
                    Ok((csr, key)) => {
                        if name == id {
                            self.cached = Some((csr.clone(), key.clone()));
                        }
                        self.staged = Some(key);
                        Ran::Success(csr_output(&command.rotation, &csr))
                    }
                    Err(e) => Ran::Failed(format!("ERROR: {e}")),
                }
            }
            Request::Deploy {
                certificate_pem, ..
            } => {
                let Some((cert_key, not_after)) = certificate_key(certificate_pem) else {
                    return Ran::Failed("ERROR: the certificate does not parse".into());
                };
                let Some(staged) = self.staged.clone() else {
                    return Ran::Failed("ERROR: no staged key".into());
                };
                if behaviour.verifies && staged != cert_key {
                    return Ran::Failed("ERROR: the certificate does not match the key".into());
                }
                self.live = Some(Live {
                    key: staged,
                    cert_key,
                    not_after,
                });
                Ran::Success(format!("ROTATION {}\ninstalled\n", command.rotation))
            }
        }
    }
}

/// The certificate's public key (SPKI DER) and NotAfter.
fn certificate_key(pem: &str) -> Option<(Vec<u8>, OffsetDateTime)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let key = cert.tbs_certificate.subject_pki.raw.to_vec();
    let not_after = cert.validity().not_after.to_datetime();
    Some((key, not_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_round_trip() {
        for i in [0, 1, 99_999] {
            assert_eq!(host_index(&host_id(i)), Some(i));
        }
    }
}
