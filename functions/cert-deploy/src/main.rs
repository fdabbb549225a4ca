//! CertDeploy's Lambda entry point: logs, config and SDK clients once at cold start, then events.

use std::sync::Arc;

use adapters::AwsDeps;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let deps = Arc::new(AwsDeps::cold_start().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { cert_deploy::handle(&deps, event).await }
    }))
    .await
}
