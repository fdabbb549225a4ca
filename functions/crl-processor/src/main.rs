//! CRLProcessor's Lambda entry point: logs, config and SDK clients once at cold start, then events.

use std::sync::Arc;

use adapters::crl::{RolesAnywhereCrls, S3Crls};
use adapters::AwsDeps;
use crl_processor::Deps;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (aws, config) = adapters::wiring::load().await?;
    if config.roles_anywhere.trust_anchor_arn.is_empty() || config.crl_bucket.is_empty() {
        return Err("CRLProcessor needs TRUST_ANCHOR_ARN and CRL_BUCKET".into());
    }
    let base = AwsDeps::from_sdk(&aws, config);
    let deps = Arc::new(Deps {
        source: S3Crls::new(aws_sdk_s3::Client::new(&aws)),
        anchor: RolesAnywhereCrls::new(
            aws_sdk_rolesanywhere::Client::new(&aws),
            &base.config.roles_anywhere.trust_anchor_arn,
        ),
        store: base.store,
        ca: base.ca,
        alerts: base.alerts,
        config: base.config,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { crl_processor::handle(&deps, event).await }
    }))
    .await
}
