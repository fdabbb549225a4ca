//! SDK clients to the functions' dependencies, in one place. Each `main.rs` calls
//! [`Clients::from_sdk`] and then [`rotation_deps`] or [`crl_deps`]; the local stack builds its
//! [`Clients`] with recording interceptors and endpoints of its own and calls the same
//! functions, so the least-privilege test checks exactly this wiring.

use rotation::config::ConfigError;
use rotation::{Config, CrlDeps, Deps};
use state::DynamoStore;

use crate::alerts::SnsAlerts;
use crate::ca::PrivateCa;
use crate::crl::{RolesAnywhereCrls, S3Crls};
use crate::hosts::SsmHosts;

/// The production dependencies of CertCheck, CertIssue and CertDeploy.
pub type AwsDeps = Deps<DynamoStore, SsmHosts, PrivateCa, SnsAlerts>;

/// The production dependencies of CRLProcessor.
pub type AwsCrlDeps = CrlDeps<DynamoStore, S3Crls, RolesAnywhereCrls, PrivateCa, SnsAlerts>;

/// One SDK client per service a function may call.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The state table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Run Command.
    pub ssm: aws_sdk_ssm::Client,
    /// Private CA.
    pub pca: aws_sdk_acmpca::Client,
    /// Alerts.
    pub sns: aws_sdk_sns::Client,
    /// CRL objects.
    pub s3: aws_sdk_s3::Client,
    /// The trust anchor.
    pub rolesanywhere: aws_sdk_rolesanywhere::Client,
}

/// How hard one service's calls are retried and how long they may take, chosen in one place.
///
/// Every client retries in the SDK's standard mode (exponential backoff with jitter; throttling,
/// 5xx and transport errors count). Attempts are higher where AWS throttles without publishing
/// a rate (Run Command) or publishes a low one (Private CA 25/s, Roles Anywhere's CRL APIs 1/s),
/// and the attempt timeout is short enough that a hung connection is retried long before the
/// function's own timeout. Beyond these, throttling is back-pressure handled by the functions
/// (a retried event, a host left for the next pass), never a failed rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// One attempt, connection included.
    pub attempt_timeout: std::time::Duration,
    /// The whole call, all attempts and backoff included.
    pub operation_timeout: std::time::Duration,
}

/// The policy of each service this service calls.
pub mod policy {
    use super::CallPolicy;
    use std::time::Duration;

    const fn p(max_attempts: u32, attempt_s: u64, operation_s: u64) -> CallPolicy {
        CallPolicy {
            max_attempts,
            attempt_timeout: Duration::from_secs(attempt_s),
            operation_timeout: Duration::from_secs(operation_s),
        }
    }

    /// DynamoDB: fast, rarely throttled on demand; a scan page can take a few seconds.
    pub const DYNAMODB: CallPolicy = p(4, 5, 20);
    /// Run Command: throttles without a published rate.
    pub const SSM: CallPolicy = p(6, 10, 45);
    /// Private CA: IssueCertificate 25/s, GetCertificate 75/s.
    pub const ACM_PCA: CallPolicy = p(6, 10, 45);
    /// SNS: alerts; a lost alert is logged, never undoes the recorded state.
    pub const SNS: CallPolicy = p(4, 5, 20);
    /// S3: one CRL object per event.
    pub const S3: CallPolicy = p(4, 10, 30);
    /// Roles Anywhere: all CRL APIs together 1/s.
    pub const ROLES_ANYWHERE: CallPolicy = p(6, 10, 45);
}

impl CallPolicy {
    fn retry(&self) -> aws_config::retry::RetryConfig {
        aws_config::retry::RetryConfig::standard().with_max_attempts(self.max_attempts)
    }

    fn timeouts(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
    }
}

macro_rules! client {
    ($sdk:ident, $aws:expr, $policy:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($aws)
                .retry_config($policy.retry())
                .timeout_config($policy.timeouts())
                .build(),
        )
    };
}

impl Clients {
    /// Every client from one SDK configuration (`AWS_ENDPOINT_URL_*` honoured), each with its
    /// service's [`CallPolicy`].
    pub fn from_sdk(aws: &aws_config::SdkConfig) -> Clients {
        Clients {
            dynamodb: client!(aws_sdk_dynamodb, aws, policy::DYNAMODB),
            ssm: client!(aws_sdk_ssm, aws, policy::SSM),
            pca: client!(aws_sdk_acmpca, aws, policy::ACM_PCA),
            sns: client!(aws_sdk_sns, aws, policy::SNS),
            s3: client!(aws_sdk_s3, aws, policy::S3),
            rolesanywhere: client!(aws_sdk_rolesanywhere, aws, policy::ROLES_ANYWHERE),
        }
    }
}

/// CertCheck's, CertIssue's and CertDeploy's dependencies over `clients`.
pub fn rotation_deps(clients: &Clients, config: Config) -> AwsDeps {
    Deps {
        store: DynamoStore::new(
            clients.dynamodb.clone(),
            &config.table_name,
            config.scan_segments,
        ),
        hosts: SsmHosts::new(
            clients.ssm.clone(),
            &config.generate_csr_document,
            &config.deploy_cert_document,
        ),
        ca: PrivateCa::new(
            clients.pca.clone(),
            &config.ca_arn,
            &config.signing_algorithm,
            &config.template_arn,
        ),
        alerts: SnsAlerts::new(clients.sns.clone(), &config.alert_topic_arn),
        config,
    }
}

/// CRLProcessor's dependencies over `clients`.
pub fn crl_deps(clients: &Clients, config: Config) -> AwsCrlDeps {
    let base = rotation_deps(clients, config);
    CrlDeps {
        source: S3Crls::new(clients.s3.clone()),
        anchor: RolesAnywhereCrls::new(
            clients.rolesanywhere.clone(),
            &base.config.roles_anywhere.trust_anchor_arn,
        ),
        store: base.store,
        ca: base.ca,
        alerts: base.alerts,
        config: base.config,
    }
}

/// Cold start: JSON logs, the config and the SDK clients from the environment.
pub async fn cold_start() -> Result<(Clients, Config), ConfigError> {
    crate::telemetry::init_json_logs();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    Ok((Clients::from_sdk(&aws), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_carries_its_service_policy() {
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let c = Clients::from_sdk(&aws);
        let attempts = |r: Option<&aws_config::retry::RetryConfig>| r.map(|r| r.max_attempts());
        assert_eq!(attempts(c.dynamodb.config().retry_config()), Some(4));
        assert_eq!(attempts(c.ssm.config().retry_config()), Some(6));
        assert_eq!(attempts(c.pca.config().retry_config()), Some(6));
        assert_eq!(attempts(c.rolesanywhere.config().retry_config()), Some(6));
        let t = c.ssm.config().timeout_config().expect("timeouts set");
        assert_eq!(
            t.operation_attempt_timeout(),
            Some(policy::SSM.attempt_timeout)
        );
        assert_eq!(t.operation_timeout(), Some(policy::SSM.operation_timeout));
    }
}
