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

impl Clients {
    /// Every client from one SDK configuration (`AWS_ENDPOINT_URL_*` honoured).
    pub fn from_sdk(aws: &aws_config::SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            ssm: aws_sdk_ssm::Client::new(aws),
            pca: aws_sdk_acmpca::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            s3: aws_sdk_s3::Client::new(aws),
            rolesanywhere: aws_sdk_rolesanywhere::Client::new(aws),
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
