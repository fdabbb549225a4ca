//! SNS: the kit's alert topic, with each publish counted and played out as an effect.

use rotation::alerts::{Alert, Alerts};
use rotation::error::AwsError;

use crate::kit::MemoryAlerts;
use crate::sim::env::{Effect, Env};

/// The alert topic. Clones share it.
#[derive(Debug, Clone)]
pub struct SimAlerts {
    /// The kit's topic.
    pub inner: MemoryAlerts,
    env: Env,
}

impl SimAlerts {
    /// `inner`, counted on `env`.
    pub fn new(inner: MemoryAlerts, env: Env) -> Self {
        SimAlerts { inner, env }
    }
}

impl Alerts for SimAlerts {
    async fn raise(&self, alert: &Alert) -> Result<(), AwsError> {
        crate::sim_call!(self.env, "SNS", "Publish", 20.0, false);
        self.inner.raise(alert).await?;
        self.env.effect(Effect::Alerted(alert.clone()));
        Ok(())
    }
}
