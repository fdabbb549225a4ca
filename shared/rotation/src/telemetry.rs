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
    stack: Option<String>,
}

/// The dimension the stack's alarms select on: the stack's name, so two stacks in one account
/// and region never feed each other's alarms.
pub const STACK_DIMENSION: &str = "StackName";

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

    /// Sets the stack's name, the [`STACK_DIMENSION`] of every value (else `emit` reads the
    /// `STACK_NAME` variable the template sets on every function).
    pub fn stack(&mut self, name: Option<&str>) -> &mut Self {
        self.stack = name.map(str::to_owned);
        self
    }

    /// The EMF document for `function`.
    pub fn document(&self, function: &str, timestamp_ms: i64) -> Value {
        let defs: Vec<Value> = self
            .values
            .iter()
            .map(|(n, _, u)| json!({ "Name": n, "Unit": u }))
            .collect();
        let dimensions: Vec<&str> = self.stack.iter().map(|_| STACK_DIMENSION).collect();
        let mut doc = Map::new();
        if let Some(stack) = &self.stack {
            doc.insert(STACK_DIMENSION.into(), json!(stack));
        }
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    // The stack's name when known: the stack's alarms select on it.
                    "Dimensions": [dimensions],
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
        let from_env;
        let doc = if self.stack.is_none() {
            from_env = Metrics {
                values: self.values.clone(),
                stack: std::env::var("STACK_NAME").ok().filter(|s| !s.is_empty()),
            };
            from_env.document(function, ts)
        } else {
            self.document(function, ts)
        };
        let line = doc.to_string();
        // CloudWatch reads EMF from a Lambda's stdout; elsewhere (tests, the demo) it is a log line.
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
            tracing::debug!(metrics = %line, "metrics");
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_name_is_the_dimension_when_known() {
        let mut m = Metrics::default();
        m.count("RotationsFailed", 2);
        let doc = m.document("CertCheck", 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
        assert!(doc.get(STACK_DIMENSION).is_none());
        m.stack(Some("prod-certs"));
        let doc = m.document("CertCheck", 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["StackName"]])
        );
        assert_eq!(doc["StackName"], json!("prod-certs"));
        assert_eq!(doc["RotationsFailed"], json!(2.0));
    }
}
