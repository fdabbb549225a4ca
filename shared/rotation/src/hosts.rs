//! Reaching hosts through Systems Manager Run Command.
//!
//! Only our two documents are ever sent, with every value passed as a document parameter that
//! the document constrains with `allowedPattern`; nothing is spliced into a shell command here.
//! The certificate and chain travel base64-encoded on one line so the pattern can stay strict.

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

/// The comment every command of `rotation` is sent with: it names the rotation, so the
/// command can be found again when SendCommand's answer (its ID) was lost.
pub fn command_comment(rotation: &RotationId, document: Document) -> String {
    let what = match document {
        Document::GenerateCsr => "new key and CSR",
        Document::DeployCert => "verify and install",
    };
    format!("cert rotation {rotation}: {what}")
}

/// Whether a command's `comment` ([`command_comment`]) names `rotation`.
pub fn comment_names(comment: &str, rotation: &RotationId) -> bool {
    comment
        .strip_prefix("cert rotation ")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(id, _)| id == rotation.0)
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

/// Ask a host for a fresh key and CSR (GenerateCsr document).
#[derive(Debug, Clone)]
pub struct CsrRequest<'a> {
    /// The host.
    pub host: &'a HostId,
    /// Directory of the key (the new key is staged beside the live one).
    pub key_path: &'a HostPath,
    /// Directory of the CSR file.
    pub csr_path: &'a HostPath,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// The rotation (echoed in the output).
    pub rotation: &'a RotationId,
}

/// Hand a host its new certificate (DeployCert document).
#[derive(Debug, Clone)]
pub struct DeployRequest<'a> {
    /// The host.
    pub host: &'a HostId,
    /// Directory of `{host}.crt`.
    pub cert_path: &'a HostPath,
    /// Directory of `{host}.key` (and of the staged key).
    pub key_path: &'a HostPath,
    /// Directory of `ca_chain_certificate.crt`.
    pub cacert_path: &'a HostPath,
    /// Directory of `aws_signing_helper`.
    pub signing_helper_path: &'a HostPath,
    /// The certificate, PEM.
    pub certificate_pem: &'a str,
    /// The chain, PEM.
    pub chain_pem: &'a str,
    /// Roles Anywhere test settings.
    pub roles_anywhere: &'a RolesAnywhere,
    /// Optional reload hook.
    pub reload_hook: Option<&'a HostPath>,
    /// The rotation.
    pub rotation: &'a RotationId,
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

    /// Sends GenerateCsr; returns the command ID.
    fn request_csr(
        &self,
        req: &CsrRequest<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Sends DeployCert; returns the command ID.
    fn deploy(
        &self,
        req: &DeployRequest<'_>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// One host's invocation of a command.
    fn invocation(
        &self,
        command_id: &str,
        host: &HostId,
    ) -> impl Future<Output = Result<Invocation, AwsError>> + Send;

    /// The ID of the command of `document` sent to `host` for `rotation`, if Run Command has
    /// one (found by its [`command_comment`] among the host's recent invocations): the
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

    #[test]
    fn a_command_comment_names_its_rotation_and_no_other() {
        let r = RotationId("r-12".into());
        let c = command_comment(&r, Document::DeployCert);
        assert!(comment_names(&c, &r));
        assert!(!comment_names(&c, &RotationId("r-1".into())));
        assert!(!comment_names(&c, &RotationId("r-123".into())));
        assert!(!comment_names("someone else's command", &r));
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
