//! CRLProcessor's Lambda entry point: logs, config and SDK clients once at cold start, then events.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (clients, config) = adapters::wiring::cold_start().await?;
    if config.roles_anywhere.trust_anchor_arn.is_empty() || config.crl_bucket.is_empty() {
        return Err("CRLProcessor needs TRUST_ANCHOR_ARN and CRL_BUCKET".into());
    }
    let deps = Arc::new(adapters::wiring::crl_deps(&clients, config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { crl_processor::handle(&deps, event).await }
    }))
    .await
}
