//! Which claimed deployments go out together in one DeployCert command.
//!
//! Why: Run Command's SendCommand rate is the scarce thing in a large wave (AWS publishes none;
//! users report throttling at a few per second), and one command reaches up to 50 hosts. Hosts
//! that share their paths and chain can share a command: each host picks its own entry (its
//! rotation and certificate) out of the `certificates` parameter by its managed-node ID. A
//! command's parameter values count against the document's 64 KB, so the certificates and the
//! chain must fit [`DEPLOY_PARAMETER_BUDGET`] together.

use rotation::config::RolesAnywhere;
use rotation::hosts::{
    base64_len, DeployBatch, DeployEntry, DEPLOY_PARAMETER_BUDGET, MAX_HOSTS_PER_COMMAND,
};
use state::HostPath;

/// What the hosts of one DeployCert command share: the document's parameters other than the
/// certificates (the Roles Anywhere settings and the reload hook are the stack's, the same for
/// every host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Directory of `{host}.crt`.
    pub cert_path: HostPath,
    /// Directory of `{host}.key` (and of the staged key).
    pub key_path: HostPath,
    /// Directory of `ca_chain_certificate.crt`.
    pub cacert_path: HostPath,
    /// Directory of `aws_signing_helper`.
    pub signing_helper_path: HostPath,
    /// The CA chain, PEM.
    pub chain_pem: String,
}

impl Shared {
    /// The batch for `entries` with these settings.
    pub fn batch<'a>(
        &'a self,
        entries: &'a [DeployEntry],
        roles_anywhere: &'a RolesAnywhere,
        reload_hook: Option<&'a HostPath>,
    ) -> DeployBatch<'a> {
        DeployBatch {
            entries,
            cert_path: &self.cert_path,
            key_path: &self.key_path,
            cacert_path: &self.cacert_path,
            signing_helper_path: &self.signing_helper_path,
            chain_pem: &self.chain_pem,
            roles_anywhere,
            reload_hook,
        }
    }
}

/// The commands for `ready` deployments (each its shared settings and its entry): lists of
/// indexes into `ready`, each list one command of hosts with equal settings, at most
/// [`MAX_HOSTS_PER_COMMAND`] and within [`DEPLOY_PARAMETER_BUDGET`]. A deployment joins the
/// first open command it fits, so order is kept within a command and commands are as full as
/// the settings allow. A host whose entry alone does not fit still gets a command of its own
/// (the sender refuses it, and that host's rotation fails with the reason).
pub fn commands(ready: &[(&Shared, &DeployEntry)]) -> Vec<Vec<usize>> {
    struct Open<'a> {
        shared: &'a Shared,
        used: usize,
        members: Vec<usize>,
    }
    let mut open: Vec<Open<'_>> = Vec::new();
    for (i, (shared, entry)) in ready.iter().enumerate() {
        let size = entry.parameter_len();
        let fits = |o: &Open<'_>| {
            o.shared == *shared
                && o.members.len() < MAX_HOSTS_PER_COMMAND
                && o.used + size <= DEPLOY_PARAMETER_BUDGET
        };
        match open.iter_mut().find(|o| fits(o)) {
            Some(o) => {
                o.used += size;
                o.members.push(i);
            }
            None => open.push(Open {
                shared,
                // The first entry has no space before it; the chain travels once.
                used: base64_len(shared.chain_pem.len()) + size - 1,
                members: vec![i],
            }),
        }
    }
    open.into_iter().map(|o| o.members).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::{HostId, RotationId};

    fn shared(chain: &str) -> Shared {
        let path = |p: &str| HostPath::parse("certPath", p).unwrap();
        Shared {
            cert_path: path("/etc/pki"),
            key_path: path("/etc/pki/private"),
            cacert_path: path("/etc/pki"),
            signing_helper_path: path("/usr/local/bin"),
            chain_pem: chain.to_owned(),
        }
    }

    fn entry(n: usize, pem_bytes: usize) -> DeployEntry {
        DeployEntry {
            host: HostId::parse(&format!("mi-{n:017x}")).unwrap(),
            rotation: RotationId(format!("r-{n}")),
            certificate_pem: "c".repeat(pem_bytes),
        }
    }

    fn plan(ready: &[(Shared, DeployEntry)]) -> Vec<Vec<usize>> {
        let refs: Vec<(&Shared, &DeployEntry)> = ready.iter().map(|(s, e)| (s, e)).collect();
        commands(&refs)
    }

    #[test]
    fn small_certificates_fill_commands_of_fifty() {
        let s = shared("chain");
        let ready: Vec<_> = (0..120).map(|n| (s.clone(), entry(n, 30))).collect();
        let sizes: Vec<usize> = plan(&ready).iter().map(Vec::len).collect();
        assert_eq!(sizes, [50, 50, 20]);
    }

    #[test]
    fn the_budget_bounds_a_command_and_every_command_fits_it() {
        let s = shared(&"k".repeat(1500));
        let ready: Vec<_> = (0..60).map(|n| (s.clone(), entry(n, 1200))).collect();
        let commands = plan(&ready);
        let ra = RolesAnywhere::default();
        assert!(commands.len() > 2, "{commands:?}");
        for c in &commands {
            let entries: Vec<DeployEntry> = c.iter().map(|&i| ready[i].1.clone()).collect();
            let batch = s.batch(&entries, &ra, None);
            let chars = batch.certificates_parameter().len()
                + rotation::hosts::base64_of(&s.chain_pem).len();
            assert!(chars <= DEPLOY_PARAMETER_BUDGET, "{chars}");
            // Full: the next entry would not have fitted.
            if c != commands.last().unwrap() {
                assert!(chars + ready[0].1.parameter_len() > DEPLOY_PARAMETER_BUDGET);
            }
        }
        let all: Vec<usize> = commands.concat();
        assert_eq!(all, (0..60).collect::<Vec<_>>(), "each once, in order");
    }

    #[test]
    fn hosts_with_other_settings_go_in_other_commands() {
        let (a, b) = (shared("chain"), shared("other chain"));
        let mut other_path = a.clone();
        other_path.key_path = HostPath::parse("keyPath", "/srv/keys").unwrap();
        let ready = vec![
            (a.clone(), entry(0, 10)),
            (b.clone(), entry(1, 10)),
            (a.clone(), entry(2, 10)),
            (other_path, entry(3, 10)),
            (b, entry(4, 10)),
        ];
        assert_eq!(plan(&ready), [vec![0, 2], vec![1, 4], vec![3]]);
    }

    #[test]
    fn an_entry_too_large_for_any_command_still_gets_one_alone() {
        let s = shared("chain");
        let ready = vec![
            (s.clone(), entry(0, 10)),
            (s.clone(), entry(1, DEPLOY_PARAMETER_BUDGET)),
            (s, entry(2, 10)),
        ];
        assert_eq!(plan(&ready), [vec![0, 2], vec![1]]);
    }
}
