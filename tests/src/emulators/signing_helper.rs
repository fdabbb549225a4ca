//! The emulated hosts' `aws_signing_helper`: installing the stand-in (`tests/hosts/bin/`) on a
//! host, the environment that points it at the Roles Anywhere emulator, and running its
//! `credential-process` the way a host's credential configuration does.
//!
//! Why: DeployCert with `RequireSigningHelper=true` runs `<signingHelperPath>/aws_signing_helper
//! credential-process …` on the host before it swaps a new pair in, and the demo shows every
//! host trading its certificate for credentials. The stand-in signs with a third-party library
//! (PyPI `iam-rolesanywhere-session`, in the project's virtualenv), so what our emulator accepts
//! is what someone else's reading of the signing process sends.
//!
//! The installed copy is the stand-in with its first line naming the virtualenv's Python (the
//! hosts' `PATH` has only the machine's standard directories). The hosts learn where Roles
//! Anywhere answers from [`host_env`]: `AWS_ENDPOINT_URL_ROLESANYWHERE` (the emulator's HTTPS
//! endpoint) and `AWS_CA_BUNDLE` (the CA of its server certificate).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use super::rolesanywhere::RolesAnywhereHandle;

/// The helper's file name, as DeployCert looks for it in `signingHelperPath`.
pub const HELPER_NAME: &str = "aws_signing_helper";

/// Why installing or running the helper failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningHelperError {
    /// Reading the stand-in or writing the host's copy failed.
    #[error("cannot install {HELPER_NAME} at {path}")]
    Install {
        /// Where it was going.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The helper could not be started.
    #[error("cannot run {path}")]
    Spawn {
        /// The helper.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The helper exited non-zero: Roles Anywhere (or the helper itself) refused.
    #[error("{HELPER_NAME} credential-process failed (exit {status}): {stderr}")]
    Refused {
        /// Its exit status (-1 when killed).
        status: i32,
        /// What it wrote on stderr, trimmed.
        stderr: String,
    },
    /// It exited 0 but its output is not the credential_process JSON.
    #[error("{HELPER_NAME} printed no credential_process JSON")]
    Output(#[source] serde_json::Error),
}

/// The stand-in in the repository.
pub fn stand_in() -> PathBuf {
    crate::moto::workspace_root()
        .join("tests/hosts/bin")
        .join(HELPER_NAME)
}

/// Installs the stand-in as `<host_root>/<helper_dir>/aws_signing_helper` (mode 0755), run by
/// `python` (the project's virtualenv, which has `iam-rolesanywhere-session`). `helper_dir` is the
/// host's absolute `signingHelperPath` (`/usr/local/bin` by default). Returns the installed path.
pub fn install(
    host_root: &Path,
    helper_dir: &str,
    python: &Path,
) -> Result<PathBuf, SigningHelperError> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = host_root
        .join(helper_dir.trim_start_matches('/'))
        .join(HELPER_NAME);
    let write = || -> std::io::Result<()> {
        let text = std::fs::read_to_string(stand_in())?;
        let body = text.split_once('\n').map_or("", |(_, b)| b);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, format!("#!{}\n{body}", python.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| SigningHelperError::Install {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The environment a host needs for its helper to reach `ra` over HTTPS.
pub fn host_env(ra: &RolesAnywhereHandle) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_ROLESANYWHERE", ra.tls_url()),
        ("AWS_CA_BUNDLE", ra.ca_bundle().display().to_string()),
    ]
}

/// The arguments of `aws_signing_helper credential-process`.
#[derive(Clone, Debug, Default)]
pub struct CredentialProcess {
    /// `--certificate`: the host's certificate (PEM).
    pub certificate: PathBuf,
    /// `--private-key`: its key (PEM).
    pub private_key: PathBuf,
    /// `--trust-anchor-arn`.
    pub trust_anchor_arn: String,
    /// `--profile-arn`.
    pub profile_arn: String,
    /// `--role-arn`.
    pub role_arn: String,
    /// `--intermediates` (PEM bundle), if any.
    pub intermediates: Option<PathBuf>,
    /// `--session-duration` in seconds, if not the default 3600.
    pub session_duration: Option<u32>,
}

impl CredentialProcess {
    /// The command line after the program name.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "credential-process".to_string(),
            "--certificate".into(),
            self.certificate.display().to_string(),
            "--private-key".into(),
            self.private_key.display().to_string(),
            "--trust-anchor-arn".into(),
            self.trust_anchor_arn.clone(),
            "--profile-arn".into(),
            self.profile_arn.clone(),
            "--role-arn".into(),
            self.role_arn.clone(),
        ];
        if let Some(i) = &self.intermediates {
            a.push("--intermediates".into());
            a.push(i.display().to_string());
        }
        if let Some(d) = self.session_duration {
            a.push("--session-duration".into());
            a.push(d.to_string());
        }
        a
    }
}

/// What `credential-process` prints on success (the AWS CLI's `credential_process` format).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessCredentials {
    /// Always 1.
    pub version: u32,
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// RFC 3339 UTC, e.g. `2026-12-02T04:00:00Z`.
    pub expiration: String,
}

impl std::fmt::Debug for ProcessCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCredentials")
            .field("version", &self.version)
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Runs `helper credential-process …` with `env` only (plus `PATH`), as a host would.
pub async fn credential_process(
    helper: &Path,
    env: &[(&str, String)],
    args: &CredentialProcess,
) -> Result<ProcessCredentials, SigningHelperError> {
    let out = tokio::process::Command::new(helper)
        .args(args.args())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SigningHelperError::Spawn {
            path: helper.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(SigningHelperError::Refused {
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(SigningHelperError::Output)
}
