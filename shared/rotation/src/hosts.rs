//! Reaching hosts through Systems Manager Run Command.
//!
//! Only our two documents are ever sent, with every value passed as a document parameter that
//! the document constrains with `allowedPattern`; nothing is spliced into a shell command here.
//! The certificate and chain travel base64-encoded on one line so the pattern can stay strict.

use std::collections::HashMap;
use std::future::Future;

use pki::KeyAlgorithm;
use state::{HostId, HostPath, RotationId};

use crate::config::RolesAnywhere;
use crate::error::AwsError;

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
