//! CertDeploy's Lambda entry point: logs, config and SDK clients once at cold start, then events.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (clients, config) = adapters::wiring::cold_start().await?;
    let deps = Arc::new(adapters::wiring::rotation_deps(&clients, config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { cert_deploy::handle(&deps, event).await }
    }))
    .await
}
