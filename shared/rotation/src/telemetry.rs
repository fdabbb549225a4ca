//! Metrics in CloudWatch's embedded metric format: one JSON line on stdout per invocation, no
//! API call, no extra permission.

use std::io::Write;

use serde_json::{json, Map, Value};

/// Metric namespace of the stack's alarms.
pub const NAMESPACE: &str = "CertRotation";

/// Collects metric values for one invocation and prints them in embedded metric format.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Vec<(&'static str, f64, &'static str)>,
}

impl Metrics {
    /// A count.
    pub fn count(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.values.push((name, value as f64, "Count"));
        self
    }

    /// A value in hours.
    pub fn hours(&mut self, name: &'static str, value: f64) -> &mut Self {
        self.values.push((name, value, "None"));
        self
    }

    /// The EMF document for `function`.
    pub fn document(&self, function: &str, timestamp_ms: i64) -> Value {
        let defs: Vec<Value> = self
            .values
            .iter()
            .map(|(n, _, u)| json!({ "Name": n, "Unit": u }))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    // No dimensions: the stack's alarms watch the dimensionless metrics.
                    "Dimensions": [[]],
                    "Metrics": defs,
                }]
            }),
        );
        doc.insert("Function".into(), json!(function));
        for (n, v, _) in &self.values {
            doc.insert((*n).into(), json!(v));
        }
        Value::Object(doc)
    }

    /// Prints the document on stdout in Lambda (nothing if no value was recorded); outside
    /// Lambda it becomes a debug log line.
    pub fn emit(&self, function: &str) {
        if self.values.is_empty() {
            return;
        }
        let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let line = self.document(function, ts).to_string();
        // CloudWatch reads EMF from a Lambda's stdout; elsewhere (tests, the demo) it is a log line.
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
            tracing::debug!(metrics = %line, "metrics");
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}
