//! A scenario: every number the simulator uses, read from a TOML file and overridden by name.
//!
//! Why one flat struct: every parameter can then be overridden by its upper-case name
//! (`OUTAGE_HOURS=48`) from the environment or the command line, and the README lists the
//! same names. Defaults are AWS's documented quotas and the template's settings; a scenario file
//! only states what it changes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a scenario could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file or an override is not valid TOML for a scenario.
    #[error("scenario {name} is not valid")]
    Parse {
        /// The scenario.
        name: String,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// An override names no parameter.
    #[error("{0} is not a scenario parameter (see the README's simulator section)")]
    Unknown(String),
}

/// How the fleet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// Every host enrolled with no certificate: all of them rotate at once.
    Enrolled,
    /// Every host DEPLOYED with a certificate of a random age: the fleet's steady state.
    Deployed,
}

/// Every parameter of a run. Field names are the parameters' names (upper-cased to override).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (the report's and chart's file name).
    pub name: String,
    /// The RNG seed: one seed, one trace.
    pub seed: u64,
    /// Hosts in the fleet (before `scale`).
    pub hosts: u64,
    /// Divides `hosts` (CI runs at 100).
    pub scale: u64,
    /// Simulated days.
    pub days: f64,
    /// How the fleet starts.
    pub start: Start,
    /// Certificate validity, days (the template's `CertValidityDays`).
    pub cert_validity_days: i64,

    /// Private CA IssueCertificate quota, per second.
    pub pca_issue_rate: f64,
    /// Private CA GetCertificate quota, per second.
    pub pca_get_rate: f64,
    /// Private CA RevokeCertificate quota, per second.
    pub pca_revoke_rate: f64,
    /// Private CA latency of one call, milliseconds.
    pub pca_latency_ms: f64,
    /// Seconds from IssueCertificate until GetCertificate answers the certificate.
    pub pca_issue_delay_s: f64,
    /// Hours after the start when a Private CA outage begins (negative: none).
    pub outage_start_hours: f64,
    /// Length of the outage, hours.
    pub outage_hours: f64,

    /// SendCommand rate, calls per second (AWS publishes none).
    pub ssm_send_rate: f64,
    /// SendCommand burst.
    pub ssm_send_burst: f64,
    /// Run Command latency of one call, milliseconds.
    pub ssm_latency_ms: f64,
    /// Hours after the start when a SendCommand throttling storm begins (negative: none).
    pub storm_start_hours: f64,
    /// Length of the storm, hours.
    pub storm_hours: f64,
    /// The SendCommand rate during the storm, as a share of the normal rate.
    pub storm_rate_share: f64,
    /// SendCommand's delivery timeout, seconds (the adapter sends 600).
    pub delivery_timeout_s: f64,
    /// Seconds from delivery until the host has run a document.
    pub host_run_s: f64,

    /// Share of status and issuance events EventBridge never delivers.
    pub event_loss: f64,
    /// Share of events delivered twice.
    pub event_duplication: f64,
    /// Mean delivery delay of an event, seconds (exponential).
    pub event_delay_s: f64,

    /// DynamoDB latency of one call, milliseconds.
    pub ddb_latency_ms: f64,
    /// Share of DynamoDB calls answered with throttling (after the SDK's retries).
    pub ddb_throttle: f64,
    /// Bytes of one host item (sizes the scan's 1 MB pages).
    pub ddb_item_bytes: f64,
    /// Parallel scan segments (the template's `ScanSegments`).
    pub scan_segments: f64,

    /// CertCheck's timeout, seconds.
    pub check_timeout_s: f64,
    /// CertIssue's timeout, seconds.
    pub issue_timeout_s: f64,
    /// CertDeploy's timeout, seconds.
    pub deploy_timeout_s: f64,
    /// CertIssue's queue's event source mapping: invocations at once (the template's
    /// `CertIssueMaximumConcurrency`).
    pub issue_concurrency: u32,
    /// CertIssue's batch size.
    pub issue_batch_size: u32,
    /// CertIssue's batching window, seconds.
    pub issue_batch_window_s: f64,
    /// CertDeploy's concurrency on status events (unreserved: the account's share).
    pub deploy_concurrency: u32,
    /// CertDeploy's queue's event source mapping: invocations at once (the template's
    /// `CertDeployMaximumConcurrency`).
    pub deploy_queue_concurrency: u32,
    /// CertDeploy's batch size.
    pub deploy_batch_size: u32,
    /// CertDeploy's batching window, seconds.
    pub deploy_batch_window_s: f64,
    /// The queues' visibility timeout, seconds.
    pub queue_visibility_s: f64,
    /// Receives before a message moves to the dead-letter queue.
    pub queue_max_receives: u32,
    /// The queues' message retention, seconds.
    pub queue_retention_s: f64,
    /// CertCheck's concurrency.
    pub check_concurrency: u32,
    /// Maximum age of an event in the asynchronous queue, seconds.
    pub max_event_age_s: f64,
    /// Function errors retried (Lambda's `MaximumRetryAttempts`).
    pub max_retries: u32,
    /// Lambda memory, MB (the template's `MemorySize`).
    pub lambda_memory_mb: f64,
    /// Fixed time of one invocation beyond its calls (start-up, parsing), milliseconds.
    pub lambda_overhead_ms: f64,
    /// Hours between schedule runs.
    pub schedule_hours: f64,
    /// Minutes between reconcile passes.
    pub reconcile_minutes: f64,
    /// SDK attempts per call before a throttling error reaches the handler.
    pub sdk_attempts: u32,

    /// Share of hosts that go offline for a window.
    pub offline_share: f64,
    /// Hours after the start when they go offline.
    pub offline_start_hours: f64,
    /// How long they stay offline, hours.
    pub offline_hours: f64,
    /// Share of commands during which the host reboots (the command fails, the host is away).
    pub reboot_rate: f64,
    /// Minutes a rebooting host is offline.
    pub reboot_minutes: f64,
    /// Share of GenerateCsr runs where openssl fails.
    pub openssl_failure: f64,
    /// Share of GenerateCsr runs answering a CSR that names another host (a hostile host).
    pub foreign_csr: f64,
    /// Whether hosts check the certificate against their key before installing (the real
    /// DeployCert does; off, the live-pair invariant checks the pipeline's own checks).
    pub host_verifies: bool,

    /// Make real keys, CSRs and certificates (off: see the simulator's docs for what is
    /// skipped).
    pub real_crypto: bool,
    /// Minutes between samples of the fleet's state in the report and chart.
    pub sample_minutes: f64,
    /// Stop at the first broken invariant.
    pub stop_on_violation: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "custom".into(),
            seed: 1,
            hosts: 1_000,
            scale: 1,
            days: 1.0,
            start: Start::Enrolled,
            cert_validity_days: 7,
            pca_issue_rate: 25.0,
            pca_get_rate: 75.0,
            pca_revoke_rate: 20.0,
            pca_latency_ms: 60.0,
            pca_issue_delay_s: 2.0,
            outage_start_hours: -1.0,
            outage_hours: 0.0,
            ssm_send_rate: 5.0,
            ssm_send_burst: 10.0,
            ssm_latency_ms: 50.0,
            storm_start_hours: -1.0,
            storm_hours: 0.0,
            storm_rate_share: 0.1,
            delivery_timeout_s: 600.0,
            host_run_s: 2.0,
            event_loss: 0.0,
            event_duplication: 0.0,
            event_delay_s: 0.5,
            ddb_latency_ms: 8.0,
            ddb_throttle: 0.0,
            ddb_item_bytes: 600.0,
            scan_segments: 4.0,
            check_timeout_s: 900.0,
            issue_timeout_s: 60.0,
            deploy_timeout_s: 60.0,
            issue_concurrency: 5,
            issue_batch_size: 10,
            issue_batch_window_s: 1.0,
            deploy_concurrency: 100,
            deploy_queue_concurrency: 5,
            deploy_batch_size: 50,
            deploy_batch_window_s: 5.0,
            queue_visibility_s: 360.0,
            queue_max_receives: 5,
            queue_retention_s: 345_600.0,
            check_concurrency: 1,
            max_event_age_s: 3600.0,
            max_retries: 2,
            lambda_memory_mb: 256.0,
            lambda_overhead_ms: 5.0,
            schedule_hours: 12.0,
            reconcile_minutes: 10.0,
            sdk_attempts: 3,
            offline_share: 0.0,
            offline_start_hours: 0.0,
            offline_hours: 0.0,
            reboot_rate: 0.0,
            reboot_minutes: 5.0,
            openssl_failure: 0.0,
            foreign_csr: 0.0,
            host_verifies: false,
            real_crypto: true,
            sample_minutes: 10.0,
            stop_on_violation: false,
        }
    }
}

impl Scenario {
    /// The scenario in `path` with `overrides` (upper- or lower-case parameter name, value as
    /// written in TOML or bare) applied on top.
    pub fn load(path: &Path, overrides: &BTreeMap<String, String>) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, overrides)
    }

    /// The scenario written in `text`, with `overrides` on top.
    pub fn parse(text: &str, overrides: &BTreeMap<String, String>) -> Result<Self, ScenarioError> {
        let name = || {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("name"))
                .unwrap_or("")
                .trim_matches(|c: char| c == '=' || c == '"' || c.is_whitespace())
                .to_owned()
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|source| ScenarioError::Parse {
                name: name(),
                source,
            })?;
        let known = toml::Table::try_from(Scenario::default()).unwrap_or_default();
        for (key, raw) in overrides {
            let key = key.to_lowercase();
            let Some(default) = known.get(&key) else {
                return Err(ScenarioError::Unknown(key.to_uppercase()));
            };
            table.insert(key, value_like(default, raw));
        }
        table.try_into().map_err(|source| ScenarioError::Parse {
            name: name(),
            source,
        })
    }

    /// Every parameter's upper-case name, as overrides take them.
    pub fn parameter_names() -> Vec<String> {
        toml::Table::try_from(Scenario::default())
            .unwrap_or_default()
            .keys()
            .map(|k| k.to_uppercase())
            .collect()
    }

    /// Hosts after scaling (at least one).
    pub fn fleet_size(&self) -> u64 {
        (self.hosts / self.scale.max(1)).max(1)
    }
}

/// `raw` read as the same TOML type as `like` (so `HOSTS=20000` is an integer, `START=deployed`
/// a string).
fn value_like(like: &toml::Value, raw: &str) -> toml::Value {
    let raw = raw.trim();
    match like {
        toml::Value::Integer(_) => raw
            .replace('_', "")
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(raw.into())),
        toml::Value::Float(_) => raw
            .replace('_', "")
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(raw.into())),
        toml::Value::Boolean(_) => match raw {
            "1" | "true" | "yes" => toml::Value::Boolean(true),
            "0" | "false" | "no" => toml::Value::Boolean(false),
            _ => toml::Value::String(raw.into()),
        },
        _ => toml::Value::String(raw.trim_matches('"').into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_take_upper_case_names_and_typed_values() {
        let overrides: BTreeMap<String, String> = [
            ("HOSTS", "20000"),
            ("OUTAGE_HOURS", "48"),
            ("START", "deployed"),
            ("REAL_CRYPTO", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = Scenario::parse("name = \"outage\"\nhosts = 5\n", &overrides).unwrap();
        assert_eq!(s.hosts, 20_000);
        assert_eq!(s.outage_hours, 48.0);
        assert_eq!(s.start, Start::Deployed);
        assert!(!s.real_crypto);
        assert_eq!(s.name, "outage");
    }

    #[test]
    fn an_unknown_parameter_is_refused_by_name() {
        let overrides = [("OUTAGE_HOUR".to_owned(), "1".to_owned())].into();
        let err = Scenario::parse("", &overrides).unwrap_err();
        assert!(err.to_string().contains("OUTAGE_HOUR"), "{err}");
    }
}
