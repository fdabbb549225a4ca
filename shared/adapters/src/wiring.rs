//! What every rotation function holds: the state store, Run Command, Private CA, alerts and the
//! config, built once at cold start from the environment (`AWS_ENDPOINT_URL_*` honoured).

use state::DynamoStore;

use crate::alerts::SnsAlerts;
use crate::ca::PrivateCa;
use crate::config::{Config, ConfigError};
use crate::hosts::SsmHosts;

/// A function's dependencies, generic so tests can substitute any port.
pub struct Deps<S, H, C, A> {
    /// The state table.
    pub store: S,
    /// Run Command.
    pub hosts: H,
    /// Private CA.
    pub ca: C,
    /// SNS alerts.
    pub alerts: A,
    /// Configuration.
    pub config: Config,
}

/// The production dependencies.
pub type AwsDeps = Deps<DynamoStore, SsmHosts, PrivateCa, SnsAlerts>;

impl AwsDeps {
    /// Builds the SDK-backed adapters over `aws` with `config`.
    pub fn from_sdk(aws: &aws_config::SdkConfig, config: Config) -> AwsDeps {
        Deps {
            store: DynamoStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                &config.table_name,
                config.scan_segments,
            ),
            hosts: SsmHosts::new(
                aws_sdk_ssm::Client::new(aws),
                &config.generate_csr_document,
                &config.deploy_cert_document,
            ),
            ca: PrivateCa::new(
                aws_sdk_acmpca::Client::new(aws),
                &config.ca_arn,
                &config.signing_algorithm,
                &config.template_arn,
            ),
            alerts: SnsAlerts::new(aws_sdk_sns::Client::new(aws), &config.alert_topic_arn),
            config,
        }
    }

    /// Cold start: JSON logs, config from the environment, SDK clients from the environment.
    pub async fn cold_start() -> Result<AwsDeps, ConfigError> {
        let (aws, config) = load().await?;
        Ok(AwsDeps::from_sdk(&aws, config))
    }
}

/// Cold start's common half: JSON logs, then the config and the SDK configuration from the
/// environment. Functions needing clients beyond [`AwsDeps`] build them from the same SDK config.
pub async fn load() -> Result<(aws_config::SdkConfig, Config), ConfigError> {
    crate::telemetry::init_json_logs();
    let config = Config::from_env()?;
    Ok((aws_config::load_from_env().await, config))
}
