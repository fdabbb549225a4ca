//! SNS as the [`Alerts`] port.

use rotation::alerts::{Alert, Alerts};
use rotation::error::AwsError;

use crate::error::aws_error;

/// The SNS-backed [`Alerts`].
#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsAlerts {
    /// Alerts to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsAlerts {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Alerts for SnsAlerts {
    async fn raise(&self, alert: &Alert) -> Result<(), AwsError> {
        tracing::warn!(kind = ?alert.kind, host = alert.host.as_deref().unwrap_or(""), reason = %alert.reason, "alert");
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message(alert.body())
            .send()
            .await
            .map_err(|e| aws_error("SNS", "Publish", e))?;
        Ok(())
    }
}
