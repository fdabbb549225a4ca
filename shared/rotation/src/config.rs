//! The functions' configuration: read once at cold start from the environment the stack sets.
//!
//! Every variable is checked here, so a mis-set stack fails at start with a message naming the
//! variable, not halfway through a rotation. Tests build the same struct from a map
//! ([`Config::from_lookup`]) instead of mutating the process environment.

use std::collections::HashMap;

use pki::KeyAlgorithm;
use state::plan::{PlanPolicy, RenewalPolicy};
use state::HostPath;
use time::Duration;

/// The Private CA template for Roles Anywhere end-entity certificates.
pub const CLIENT_AUTH_TEMPLATE_ARN: &str =
    "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1";

/// A variable is missing or invalid.
#[derive(Debug, thiserror::Error)]
#[error("configuration {variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// Roles Anywhere settings the DeployCert document uses to test a new pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolesAnywhere {
    /// Trust anchor ARN (may be empty).
    pub trust_anchor_arn: String,
    /// Profile ARN (may be empty).
    pub profile_arn: String,
    /// Role ARN (may be empty).
    pub role_arn: String,
    /// Whether `aws_signing_helper credential-process` must succeed before a swap.
    pub require_signing_helper: bool,
}

/// Everything the four functions read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`.
    pub table_name: String,
    /// `ALERT_TOPIC_ARN`.
    pub alert_topic_arn: String,
    /// `CA_ARN`.
    pub ca_arn: String,
    /// `SIGNING_ALGORITHM` (e.g. `SHA256WITHRSA`).
    pub signing_algorithm: String,
    /// `TEMPLATE_ARN` (default: end-entity client auth).
    pub template_arn: String,
    /// `CERT_VALIDITY_DAYS` (1 to 7: short-lived mode).
    pub cert_validity_days: i64,
    /// `GENERATE_CSR_DOCUMENT`.
    pub generate_csr_document: String,
    /// `DEPLOY_CERT_DOCUMENT`.
    pub deploy_cert_document: String,
    /// `DEFAULT_*_PATH`, `HOST_KEY_ALGORITHM`.
    pub host_defaults: HostSettings,
    /// `TRUST_ANCHOR_ARN`, `PROFILE_ARN`, `ROLE_ARN`, `REQUIRE_SIGNING_HELPER`.
    pub roles_anywhere: RolesAnywhere,
    /// `RELOAD_HOOK`: executable run on the host after a swap (absent: none).
    pub reload_hook: Option<HostPath>,
    /// `RENEWAL_SHARE`, `RENEWAL_JITTER_SHARE`, `IN_FLIGHT_TIMEOUT_MINUTES`, `REISSUE_REVOKED`.
    /// (`MAX_ATTEMPTS` is no longer read: retries never give up while a certificate lives.)
    pub plan: PlanPolicy,
    /// `MIN_RSA_BITS`: weakest RSA key a CSR may carry.
    pub min_rsa_bits: u32,
    /// `SCAN_SEGMENTS`: parallel scan segments.
    pub scan_segments: u32,
    /// `CRL_BUCKET`.
    pub crl_bucket: String,
    /// `CRL_PREFIX`.
    pub crl_prefix: String,
    /// `START_CONCURRENCY`: rotations CertCheck starts at once (default 16).
    pub start_concurrency: usize,
    /// `REACHABILITY_CONCURRENCY`: pages of 50 hosts whose reachability CertCheck asks Run
    /// Command about at once (default 4).
    pub reachability_concurrency: usize,
    /// `RUN_BUDGET_SECONDS`: how long a CertCheck run may start rotations. Absent, it is the
    /// time the Lambda invocation has left, less a margin; tests and the demo set it.
    pub run_budget: Option<Duration>,
    /// `STACK_NAME`: the stack's name, the `StackName` dimension of every metric (optional;
    /// without it the metrics carry no dimension).
    pub stack_name: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads from a map (tests, the demo).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| map.get(k).cloned())
    }

    /// Reads through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let req = |k: &'static str| -> Result<String, ConfigError> {
            get(k).filter(|v| !v.is_empty()).ok_or(ConfigError {
                variable: k,
                problem: "not set".into(),
            })
        };
        let opt = |k: &'static str, default: &str| {
            get(k)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let parse_num = |k: &'static str, default: &str| -> Result<f64, ConfigError> {
            opt(k, default).parse::<f64>().map_err(|e| ConfigError {
                variable: k,
                problem: e.to_string(),
            })
        };
        let parse_bool = |k: &'static str, default: &str| -> Result<bool, ConfigError> {
            match opt(k, default).as_str() {
                "true" | "True" | "TRUE" => Ok(true),
                "false" | "False" | "FALSE" => Ok(false),
                other => Err(ConfigError {
                    variable: k,
                    problem: format!("expected true or false, got {other:?}"),
                }),
            }
        };
        let path = |k: &'static str, default: &str| -> Result<HostPath, ConfigError> {
            HostPath::parse("path", &opt(k, default)).map_err(|e| ConfigError {
                variable: k,
                problem: e.to_string(),
            })
        };
        let validity = parse_num("CERT_VALIDITY_DAYS", "7")? as i64;
        if !(1..=7).contains(&validity) {
            return Err(ConfigError {
                variable: "CERT_VALIDITY_DAYS",
                problem: "must be 1 to 7 (Private CA short-lived mode)".into(),
            });
        }
        let share = parse_num("RENEWAL_SHARE", "0.3333")?;
        let jitter = parse_num("RENEWAL_JITTER_SHARE", "0.1")?;
        if !(0.01..0.99).contains(&share) || !(0.0..0.5).contains(&jitter) || share + jitter >= 1.0
        {
            return Err(ConfigError {
                variable: "RENEWAL_SHARE",
                problem: "need 0.01 ≤ share < 0.99, 0 ≤ jitter < 0.5, share + jitter < 1".into(),
            });
        }
        let reload = opt("RELOAD_HOOK", "");
        Ok(Config {
            table_name: req("TABLE_NAME")?,
            alert_topic_arn: req("ALERT_TOPIC_ARN")?,
            ca_arn: req("CA_ARN")?,
            signing_algorithm: opt("SIGNING_ALGORITHM", "SHA256WITHRSA"),
            template_arn: opt("TEMPLATE_ARN", CLIENT_AUTH_TEMPLATE_ARN),
            cert_validity_days: validity,
            generate_csr_document: req("GENERATE_CSR_DOCUMENT")?,
            deploy_cert_document: req("DEPLOY_CERT_DOCUMENT")?,
            host_defaults: HostSettings {
                cert_path: path("DEFAULT_CERT_PATH", "/etc/pki/rolesanywhere")?,
                key_path: path("DEFAULT_KEY_PATH", "/etc/pki/rolesanywhere/private")?,
                cacert_path: path("DEFAULT_CACERT_PATH", "/etc/pki/rolesanywhere")?,
                csr_path: path("DEFAULT_CSR_PATH", "/etc/pki/rolesanywhere")?,
                signing_helper_path: path("DEFAULT_SIGNING_HELPER_PATH", "/usr/local/bin")?,
                key_algorithm: opt("HOST_KEY_ALGORITHM", "RSA_2048").parse().map_err(
                    |e: pki::UnknownKeyAlgorithm| ConfigError {
                        variable: "HOST_KEY_ALGORITHM",
                        problem: e.to_string(),
                    },
                )?,
            },
            roles_anywhere: RolesAnywhere {
                trust_anchor_arn: opt("TRUST_ANCHOR_ARN", ""),
                profile_arn: opt("PROFILE_ARN", ""),
                role_arn: opt("ROLE_ARN", ""),
                require_signing_helper: parse_bool("REQUIRE_SIGNING_HELPER", "false")?,
            },
            reload_hook: if reload.is_empty() {
                None
            } else {
                Some(
                    HostPath::parse("RELOAD_HOOK", &reload).map_err(|e| ConfigError {
                        variable: "RELOAD_HOOK",
                        problem: e.to_string(),
                    })?,
                )
            },
            plan: PlanPolicy {
                renewal: RenewalPolicy {
                    renew_share: share,
                    jitter_share: jitter,
                    assumed_lifetime: Duration::days(validity),
                },
                in_flight_timeout: Duration::minutes(
                    parse_num("IN_FLIGHT_TIMEOUT_MINUTES", "120")? as i64,
                ),
                reissue_revoked: parse_bool("REISSUE_REVOKED", "true")?,
                ..PlanPolicy::default()
            },
            min_rsa_bits: parse_num("MIN_RSA_BITS", "2048")?.clamp(2048.0, 16384.0) as u32,
            scan_segments: parse_num("SCAN_SEGMENTS", "4")?.clamp(1.0, 64.0) as u32,
            crl_bucket: opt("CRL_BUCKET", ""),
            crl_prefix: opt("CRL_PREFIX", "crl/"),
            start_concurrency: parse_num("START_CONCURRENCY", "16")?.clamp(1.0, 256.0) as usize,
            reachability_concurrency: parse_num("REACHABILITY_CONCURRENCY", "4")?.clamp(1.0, 32.0)
                as usize,
            run_budget: match get("RUN_BUDGET_SECONDS").filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => Some(Duration::seconds_f64(
                    v.parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .ok_or(ConfigError {
                            variable: "RUN_BUDGET_SECONDS",
                            problem: format!("expected seconds ≥ 0, got {v:?}"),
                        })?,
                )),
            },
            stack_name: get("STACK_NAME").filter(|v| !v.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            ("TABLE_NAME", "t"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:111122223333:alerts",
            ),
            (
                "CA_ARN",
                "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x",
            ),
            ("GENERATE_CSR_DOCUMENT", "gen"),
            ("DEPLOY_CERT_DOCUMENT", "dep"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn defaults_and_errors() {
        let c = Config::from_map(&base()).unwrap();
        assert_eq!(c.cert_validity_days, 7);
        assert_eq!(c.host_defaults.key_algorithm, KeyAlgorithm::Rsa2048);
        assert!(c.plan.reissue_revoked);
        assert_eq!((c.start_concurrency, c.reachability_concurrency), (16, 4));
        assert_eq!(c.run_budget, None);
        let mut m = base();
        m.insert("START_CONCURRENCY".into(), "64".into());
        m.insert("REACHABILITY_CONCURRENCY".into(), "0".into());
        m.insert("RUN_BUDGET_SECONDS".into(), "2.5".into());
        let c = Config::from_map(&m).unwrap();
        assert_eq!((c.start_concurrency, c.reachability_concurrency), (64, 1));
        assert_eq!(c.run_budget, Some(Duration::milliseconds(2500)));
        m.insert("RUN_BUDGET_SECONDS".into(), "-1".into());
        assert_eq!(
            Config::from_map(&m).unwrap_err().variable,
            "RUN_BUDGET_SECONDS"
        );
        let mut m = base();
        m.remove("TABLE_NAME");
        assert_eq!(Config::from_map(&m).unwrap_err().variable, "TABLE_NAME");
        let mut m = base();
        m.insert("CERT_VALIDITY_DAYS".into(), "30".into());
        assert_eq!(
            Config::from_map(&m).unwrap_err().variable,
            "CERT_VALIDITY_DAYS"
        );
        let mut m = base();
        m.insert("DEFAULT_KEY_PATH".into(), "/tmp/$(id)".into());
        assert_eq!(
            Config::from_map(&m).unwrap_err().variable,
            "DEFAULT_KEY_PATH"
        );
    }
}

/// Directories on a host and its key algorithm: the stack's defaults, or a host's effective
/// settings (its overrides, else the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// `{host}.crt` directory.
    pub cert_path: HostPath,
    /// `{host}.key` directory.
    pub key_path: HostPath,
    /// `ca_chain_certificate.crt` directory.
    pub cacert_path: HostPath,
    /// `{host}.csr` directory.
    pub csr_path: HostPath,
    /// `aws_signing_helper` directory.
    pub signing_helper_path: HostPath,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
}

impl Config {
    /// The effective settings for `record`.
    pub fn host_settings(&self, record: &state::HostRecord) -> HostSettings {
        self.settings_for(&record.overrides)
    }

    /// The effective settings for a host with `overrides`.
    pub fn settings_for(&self, overrides: &state::record::HostOverrides) -> HostSettings {
        let d = &self.host_defaults;
        let o = overrides;
        HostSettings {
            cert_path: o.cert_path.clone().unwrap_or_else(|| d.cert_path.clone()),
            key_path: o.key_path.clone().unwrap_or_else(|| d.key_path.clone()),
            cacert_path: o
                .cacert_path
                .clone()
                .unwrap_or_else(|| d.cacert_path.clone()),
            csr_path: d.csr_path.clone(),
            signing_helper_path: o
                .signing_helper_path
                .clone()
                .unwrap_or_else(|| d.signing_helper_path.clone()),
            key_algorithm: o.key_algorithm.unwrap_or(d.key_algorithm),
        }
    }

    /// The CSR policy: RSA of at least `min_rsa_bits`, EC P-256 and P-384.
    pub fn csr_policy(&self) -> pki::CsrPolicy {
        pki::CsrPolicy {
            min_rsa_bits: self.min_rsa_bits,
            ..pki::CsrPolicy::default()
        }
    }
}
