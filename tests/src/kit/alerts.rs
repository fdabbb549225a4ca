//! `Alerts`: every alert raised, kept in order.
//!
//! Why: the failure policy promises one alert per failure episode and alerts that never carry
//! key material; tests assert on what was raised, and on what happens when publishing fails
//! (the handlers must not undo what they recorded).

use std::sync::{Arc, Mutex, MutexGuard};

use rotation::alerts::{Alert, AlertKind, Alerts};
use rotation::error::AwsError;

/// The in-memory alert topic. Clones share the same alerts.
#[derive(Debug, Clone, Default)]
pub struct MemoryAlerts {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    raised: Vec<Alert>,
    fail_next: u32,
    attempts: u64,
}

impl MemoryAlerts {
    /// No alerts yet.
    pub fn new() -> Self {
        MemoryAlerts::default()
    }

    /// Every alert published, in order (refused ones are not kept).
    pub fn raised(&self) -> Vec<Alert> {
        self.lock().raised.clone()
    }

    /// Alerts of `kind` published so far.
    pub fn count(&self, kind: AlertKind) -> usize {
        self.lock().raised.iter().filter(|a| a.kind == kind).count()
    }

    /// Alerts published for `host`.
    pub fn for_host(&self, host: &str) -> Vec<Alert> {
        let inner = self.lock();
        inner
            .raised
            .iter()
            .filter(|a| a.host.as_deref() == Some(host))
            .cloned()
            .collect()
    }

    /// `raise` calls so far, including refused ones.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }

    /// Makes the next `n` publishes fail (a retryable `Throttling` from SNS).
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// Forgets the alerts raised so far.
    pub fn clear(&self) {
        self.lock().raised.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Alerts for MemoryAlerts {
    async fn raise(&self, alert: &Alert) -> Result<(), AwsError> {
        let mut inner = self.lock();
        inner.attempts += 1;
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(AwsError {
                service: "SNS",
                operation: "Publish",
                code: Some("Throttling".into()),
                message: "Rate exceeded".into(),
                retryable: true,
                source: None,
            });
        }
        inner.raised.push(alert.clone());
        Ok(())
    }
}
