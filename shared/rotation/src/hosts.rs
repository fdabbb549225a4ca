//! Reaching hosts through Systems Manager Run Command.
//!
//! Only our two documents are ever sent, with every value passed as a document parameter that
//! the document constrains with `allowedPattern`; nothing is spliced into a shell command here.
//! The certificate and chain travel as base64 on one line so the pattern can stay strict: the
//! chain as the base64 of its PEM, each host's certificate as its PEM body alone (the base64 of
//! its DER, which the host wraps back into PEM). The body is three quarters of the PEM's
//! base64, so a DeployCert command within Run Command's 64 KB carries a third more hosts.

use std::collections::HashMap;
use std::future::Future;

use pki::KeyAlgorithm;
use state::{HostId, HostPath, RotationId};

use crate::config::{Config, RolesAnywhere};
use crate::error::AwsError;

/// Which of our two documents a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// GenerateCsr (the rotation is in CSR_REQUESTED).
    GenerateCsr,
    /// DeployCert (the rotation is in DEPLOYING).
    DeployCert,
}

impl Document {
    /// The document's name in this stack.
    pub fn name(self, config: &Config) -> &str {
        match self {
            Document::GenerateCsr => &config.generate_csr_document,
            Document::DeployCert => &config.deploy_cert_document,
        }
    }
}

/// Hosts one command reaches at most: SendCommand takes up to 50 instance IDs.
pub const MAX_HOSTS_PER_COMMAND: usize = 50;

/// GenerateCsr's comment, for people reading Run Command's history. (The rotation a command
/// belongs to is found by its parameters, [`parameters_name`]: a comment holds 100
/// characters, too few for 50 rotations.)
pub fn csr_comment(hosts: usize) -> String {
    if hosts == 1 {
        "cert rotation: new key and CSR".to_owned()
    } else {
        format!("cert rotation: new keys and CSRs on {hosts} hosts")
    }
}

/// DeployCert's comment, for people reading Run Command's history (the rotations are in its
/// `certificates` parameter).
pub fn deploy_comment(hosts: usize) -> String {
    if hosts == 1 {
        "cert rotation: verify and install".to_owned()
    } else {
        format!("cert rotation: verify and install on {hosts} hosts")
    }
}

/// The name of GenerateCsr's parameter listing its hosts' rotations.
pub const ROTATIONS_PARAMETER: &str = "rotations";
/// The name of DeployCert's parameter listing its hosts' rotations and certificates.
pub const CERTIFICATES_PARAMETER: &str = "certificates";

/// Characters DeployCert's `certificates` and `chain` may take together. Run Command counts the
/// parameter values of a command against the document's 64 KB; the rendered DeployCert
/// document takes about 27 KB, so this leaves room for the other parameters and a margin (the
/// template's check keeps document plus budget under the limit). For EC P-256 host keys that
/// is some 30 hosts per command under the template's default RSA 2048 CA (a PEM of about 950
/// bytes, a body of 884 characters) and 42 under an EC CA; the PEM's own base64 fitted 21 and 29.
pub const DEPLOY_PARAMETER_BUDGET: usize = 30_000;

/// Whether a command's parameters (as Run Command lists them) name `host`'s `rotation`:
/// GenerateCsr's `rotations` holds the entry `host=rotation`, DeployCert's `certificates` an
/// entry `host=rotation=certificate`.
pub fn parameters_name(
    parameters: &HashMap<String, Vec<String>>,
    host: &HostId,
    rotation: &RotationId,
) -> bool {
    let entry = format!("{host}={rotation}");
    let prefix = format!("{entry}=");
    let values = |name: &str| parameters.get(name).into_iter().flatten();
    values(ROTATIONS_PARAMETER).any(|v| v.split(' ').any(|e| e == entry))
        || values(CERTIFICATES_PARAMETER).any(|v| v.split(' ').any(|e| e.starts_with(&prefix)))
}

/// `text` in standard base64 on one line, as the documents take a PEM.
pub fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// The base64 body of a one-certificate PEM on one line (the base64 of its DER): its lines
/// other than the `-----BEGIN`/`-----END` ones, joined. DeployCert wraps it back into PEM at
/// 64 characters a line.
pub fn pem_body(pem: &str) -> String {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Characters of [`base64_of`] a text of `bytes` bytes.
pub const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Whether a host can take a command now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// The agent pings Systems Manager.
    Online,
    /// Registered, but not online (`ConnectionLost`, `Inactive`).
    Offline(String),
    /// Not registered with Systems Manager at all.
    Unknown,
}

/// Ask hosts for a fresh key and CSR each, in one command (GenerateCsr document). Each host
/// finds its own rotation in the list by its managed-node ID, so the settings, the same for
/// all, are what groups hosts into one command.
#[derive(Debug, Clone)]
pub struct CsrBatch<'a> {
    /// Each host with its rotation (echoed in that host's output); 1 to
    /// [`MAX_HOSTS_PER_COMMAND`].
    pub rotations: &'a [(HostId, RotationId)],
    /// Directory of the key (the new key is staged beside the live one).
    pub key_path: &'a HostPath,
    /// Directory of the CSR file.
    pub csr_path: &'a HostPath,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
}

impl CsrBatch<'_> {
    /// The hosts, in order.
    pub fn hosts(&self) -> impl Iterator<Item = &HostId> {
        self.rotations.iter().map(|(h, _)| h)
    }

    /// The `rotations` parameter: `host=rotation` entries separated by single spaces.
    pub fn rotations_parameter(&self) -> String {
        let entries: Vec<String> = self
            .rotations
            .iter()
            .map(|(h, r)| format!("{h}={r}"))
            .collect();
        entries.join(" ")
    }
}

/// One host's part of a DeployCert command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployEntry {
    /// The host.
    pub host: HostId,
    /// Its rotation (echoed in its output).
    pub rotation: RotationId,
    /// Its certificate, PEM.
    pub certificate_pem: String,
}

impl DeployEntry {
    /// Characters this entry takes in `certificates`, with the space before it.
    pub fn parameter_len(&self) -> usize {
        self.host.as_str().len()
            + self.rotation.as_str().len()
            + pem_body(&self.certificate_pem).len()
            + 3
    }
}

/// Hand hosts their new certificates, in one command (DeployCert document). Each host finds
/// its own entry by its managed-node ID, so the settings, the same for all, are what groups
/// hosts into one command.
#[derive(Debug, Clone)]
pub struct DeployBatch<'a> {
    /// Each host with its rotation and certificate: 1 to [`MAX_HOSTS_PER_COMMAND`], within
    /// [`DEPLOY_PARAMETER_BUDGET`] with the chain.
    pub entries: &'a [DeployEntry],
    /// Directory of `{host}.crt`.
    pub cert_path: &'a HostPath,
    /// Directory of `{host}.key` (and of the staged key).
    pub key_path: &'a HostPath,
    /// Directory of `ca_chain_certificate.crt`.
    pub cacert_path: &'a HostPath,
    /// Directory of `aws_signing_helper`.
    pub signing_helper_path: &'a HostPath,
    /// The chain, PEM.
    pub chain_pem: &'a str,
    /// Roles Anywhere test settings.
    pub roles_anywhere: &'a RolesAnywhere,
    /// Optional reload hook.
    pub reload_hook: Option<&'a HostPath>,
}

impl DeployBatch<'_> {
    /// The hosts, in order.
    pub fn hosts(&self) -> impl Iterator<Item = &HostId> {
        self.entries.iter().map(|e| &e.host)
    }

    /// The `certificates` parameter: `host=rotation=body` entries ([`pem_body`]) separated by
    /// single spaces.
    pub fn certificates_parameter(&self) -> String {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{}={}={}", e.host, e.rotation, pem_body(&e.certificate_pem)))
            .collect();
        entries.join(" ")
    }
}

/// Where a command invocation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Not finished (or not visible yet: `InvocationDoesNotExist` right after SendCommand).
    Pending,
    /// Finished.
    Finished {
        /// Whether the document succeeded.
        success: bool,
        /// The final status (`Success`, `Failed`, `TimedOut`, …).
        status: String,
        /// Standard output (cut by SSM at 24,000 characters).
        stdout: String,
        /// Standard error (cut by SSM at 8,000 characters).
        stderr: String,
    },
}

/// What the functions need from Run Command.
pub trait HostAgent: Send + Sync {
    /// Reachability of each host.
    fn reachability(
        &self,
        hosts: &[HostId],
    ) -> impl Future<Output = Result<HashMap<HostId, Reachability>, AwsError>> + Send;

    /// Sends one GenerateCsr to every host of `batch`; returns the command ID.
    fn request_csrs(
        &self,
        batch: &CsrBatch<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Sends one DeployCert to every host of `batch`; returns the command ID.
    fn deploy(
        &self,
        batch: &DeployBatch<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// One host's invocation of a command.
    fn invocation(
        &self,
        command_id: &str,
        host: &HostId,
    ) -> impl Future<Output = Result<Invocation, AwsError>> + Send;

    /// The ID of the command of `document` sent to `host` for `rotation`, if Run Command has
    /// one (found by its parameters, [`parameters_name`], among the host's recent commands): the
    /// reconciler's question when a rotation was claimed but SendCommand's answer was lost, so
    /// its command was never recorded.
    fn command_for(
        &self,
        host: &HostId,
        document: Document,
        rotation: &RotationId,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}

/// The line of a document's stderr that says why it failed: the last `ERROR: ` line our
/// documents print, else the last non-empty line.
pub fn host_error(stderr: &str) -> &str {
    let lines = || {
        stderr
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty())
    };
    lines()
        .find(|l| l.starts_with("ERROR: "))
        .or_else(|| lines().next())
        .unwrap_or("no error output")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    #[test]
    fn a_command_names_a_rotation_by_its_exact_entry_or_rotation_id() {
        let a = HostId::parse("mi-0123456789abcdef0").unwrap();
        let b = HostId::parse("mi-0123456789abcdef1").unwrap();
        let r = RotationId("r-12".into());
        let batch = [
            (b.clone(), RotationId("r-1".into())),
            (a.clone(), r.clone()),
        ];
        let csr = CsrBatch {
            rotations: &batch,
            key_path: &HostPath::parse("keyPath", "/k").unwrap(),
            csr_path: &HostPath::parse("csrPath", "/c").unwrap(),
            key_algorithm: KeyAlgorithm::EcP256,
        };
        let line = csr.rotations_parameter();
        assert_eq!(line, format!("{b}=r-1 {a}=r-12"));
        let generate = params(&[(ROTATIONS_PARAMETER, &line)]);
        assert!(parameters_name(&generate, &a, &r));
        assert!(
            !parameters_name(&generate, &b, &r),
            "another host's rotation"
        );
        assert!(!parameters_name(&generate, &a, &RotationId("r-1".into())));
        assert!(!parameters_name(&generate, &a, &RotationId("r-123".into())));
        let deploy = params(&[(
            CERTIFICATES_PARAMETER,
            &format!("{b}=r-12=QUJD {a}=r-12=REVG"),
        )]);
        assert!(parameters_name(&deploy, &a, &r));
        assert!(!parameters_name(&deploy, &a, &RotationId("r-1".into())));
        let other = params(&[(CERTIFICATES_PARAMETER, &format!("{b}=r-12=QUJD"))]);
        assert!(!parameters_name(&other, &a, &r), "another host's entry");
        assert!(!parameters_name(&HashMap::new(), &a, &r));
    }

    #[test]
    fn comments_fit_run_commands_100_characters() {
        for c in [
            deploy_comment(50),
            deploy_comment(1),
            csr_comment(50),
            csr_comment(1),
        ] {
            assert!(c.len() <= 100, "{c}");
        }
    }

    #[test]
    fn an_entry_counts_what_it_adds_to_the_parameter() {
        let entry = |host: &str, pem: &str| DeployEntry {
            host: HostId::parse(host).unwrap(),
            rotation: RotationId("r-7".into()),
            certificate_pem: pem.to_owned(),
        };
        let entries = [
            entry("mi-0123456789abcdef0", "abcd"),
            entry(
                "mi-0123456789abcdef1",
                "-----BEGIN CERTIFICATE-----\nTUlJ\nQg==\n-----END CERTIFICATE-----\n",
            ),
        ];
        let path = HostPath::parse("certPath", "/c").unwrap();
        let batch = DeployBatch {
            entries: &entries,
            cert_path: &path,
            key_path: &path,
            cacert_path: &path,
            signing_helper_path: &path,
            chain_pem: "",
            roles_anywhere: &RolesAnywhere::default(),
            reload_hook: None,
        };
        let line = batch.certificates_parameter();
        let counted: usize = entries.iter().map(DeployEntry::parameter_len).sum();
        assert_eq!(line.len() + 1, counted, "{line}");
        assert_eq!(
            line,
            "mi-0123456789abcdef0=r-7=abcd mi-0123456789abcdef1=r-7=TUlJQg=="
        );
    }

    #[test]
    fn host_error_prefers_the_error_line() {
        assert_eq!(
            super::host_error("noise\nERROR: openssl not found\nmore\n"),
            "ERROR: openssl not found"
        );
        assert_eq!(super::host_error("a\nb\n\n"), "b");
        assert_eq!(super::host_error(""), "no error output");
    }
}
