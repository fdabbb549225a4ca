//! CertDeploy's Lambda entry point: logs, config and SDK clients once at cold start, then events.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (clients, config) = adapters::wiring::cold_start().await?;
    let deps = Arc::new(adapters::wiring::rotation_deps(&clients, config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        // Boxed: the handler's future (the SDK adapters' futures inside) would otherwise take
        // this block's type past the compiler's depth limit.
        async move { Box::pin(cert_deploy::handle(&deps, event)).await }
    }))
    .await
}
