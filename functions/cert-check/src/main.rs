//! CertCheck's Lambda entry point: read config, build clients once, serve events.

use std::sync::Arc;

use adapters::alerts::SnsAlerts;
use adapters::ca::PrivateCa;
use adapters::hosts::SsmHosts;
use adapters::Config;
use cert_check::Deps;
use lambda_runtime::{service_fn, LambdaEvent};
use state::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    adapters::telemetry::init_json_logs();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let deps = Arc::new(Deps {
        store: DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            &config.table_name,
            config.scan_segments,
        ),
        hosts: SsmHosts::new(
            aws_sdk_ssm::Client::new(&aws),
            &config.generate_csr_document,
            &config.deploy_cert_document,
        ),
        ca: PrivateCa::new(
            aws_sdk_acmpca::Client::new(&aws),
            &config.ca_arn,
            &config.signing_algorithm,
            &config.template_arn,
        ),
        alerts: SnsAlerts::new(aws_sdk_sns::Client::new(&aws), &config.alert_topic_arn),
        config,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { cert_check::handle(deps, event).await }
    }))
    .await
}
