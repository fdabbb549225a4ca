//! Run Command: the kit's hosts behind SendCommand's rate, per-call latency and a throttling
//! storm.
//!
//! Why a wrapper: the kit's hosts record commands and their invocations; what the simulator
//! adds is SendCommand's quota (AWS publishes none; 5 per second with bursts of 10 by default),
//! the SDK's attempts and backoff before a throttling error reaches the handler, and the
//! effect of a sent command (the host runs it later, if it is online, or the delivery times
//! out). A GenerateCsr or a DeployCert names up to SendCommand's 50 hosts; reachability is
//! asked 50 hosts a call, as the adapter does.

use std::collections::HashMap;

use rotation::error::AwsError;
use rotation::hosts::{CsrBatch, DeployBatch, HostAgent, Invocation, Reachability};
use state::{HostId, RotationId};

use crate::kit::{MemoryHosts, MemoryStore};
use crate::sim::env::{Document, Effect, Env};

/// Instance IDs SendCommand takes at most.
pub const SEND_COMMAND_MAX_IDS: usize = 50;

/// Run Command with its quotas. Clones share it.
#[derive(Debug, Clone)]
pub struct SimHosts {
    /// The kit's hosts.
    pub inner: MemoryHosts,
    env: Env,
    /// The table as it is, for the one-rotation-per-host check at send time.
    store: MemoryStore,
}

impl SimHosts {
    /// `inner` with `env`'s quotas; `store` is read (not through a port) to check invariants.
    pub fn new(inner: MemoryHosts, env: Env, store: MemoryStore) -> Self {
        SimHosts { inner, env, store }
    }

    /// SendCommand's rate and the SDK's attempts: Ok to send, or the throttling error.
    fn admit(&self, ids: usize) -> Result<Option<()>, AwsError> {
        assert!(
            ids <= SEND_COMMAND_MAX_IDS,
            "SendCommand takes at most 50 IDs"
        );
        let (latency, attempts, storm) = {
            let s = self.env.lock();
            let p = &s.params;
            (
                p.ssm_latency_ms,
                p.sdk_attempts.max(1),
                (p.storm_start_hours, p.storm_hours, p.storm_rate_share),
            )
        };
        for attempt in 0..attempts {
            let Ok(at) = self.env.call("SSM", "SendCommand", latency, true) else {
                return Ok(None);
            };
            let scale = if self.env.in_window(at, storm.0, storm.1) {
                storm.2
            } else {
                1.0
            };
            if self.env.lock().ssm_send.take(at, scale) {
                return Ok(Some(()));
            }
            self.env.throttled("SSM", "SendCommand");
            if attempt + 1 < attempts {
                // The SDK's exponential backoff (base 1 s, full jitter: concurrent callers spread).
                self.env
                    .backoff(self.env.draw() * f64::from(1u32 << attempt.min(5)));
            }
        }
        self.env.throttled_after_retries("SSM", "SendCommand");
        Err(AwsError {
            service: "SSM",
            operation: "SendCommand",
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
            retryable: true,
            source: None,
        })
    }

    /// Records a sent command, and checks that the host's table row is in that very rotation.
    fn sent(&self, id: &str, host: &HostId, rotation: &RotationId, document: Document) {
        let current = self
            .store
            .record(host)
            .ok()
            .flatten()
            .and_then(|r| r.state.rotation().cloned());
        if current.as_ref() != Some(rotation) {
            self.env.violation(format!(
                "one rotation per host: {host} was sent a command of rotation {rotation} while its row is in {current:?}"
            ));
        }
        self.env
            .lock()
            .rotation_hosts
            .insert(rotation.as_str().to_owned(), host.clone());
        self.env.effect(Effect::Sent {
            command_id: id.to_owned(),
            host: host.clone(),
            document,
            at: self.env.now(),
        });
    }
}

impl HostAgent for SimHosts {
    async fn reachability(
        &self,
        hosts: &[HostId],
    ) -> Result<HashMap<HostId, Reachability>, AwsError> {
        let latency = self.env.lock().params.ssm_latency_ms;
        for _ in hosts.chunks(SEND_COMMAND_MAX_IDS) {
            crate::sim_call!(
                self.env,
                "SSM",
                "DescribeInstanceInformation",
                latency,
                false
            );
        }
        self.inner.reachability(hosts).await
    }

    async fn request_csrs(&self, batch: &CsrBatch<'_>) -> Result<String, AwsError> {
        if self.admit(batch.rotations.len())?.is_none() {
            return std::future::pending().await;
        }
        let id = self.inner.request_csrs(batch).await?;
        for (host, rotation) in batch.rotations {
            self.sent(&id, host, rotation, Document::Csr);
        }
        Ok(id)
    }

    async fn deploy(&self, batch: &DeployBatch<'_>) -> Result<String, AwsError> {
        if self.admit(batch.entries.len())?.is_none() {
            return std::future::pending().await;
        }
        let id = self.inner.deploy(batch).await?;
        for e in batch.entries {
            self.sent(&id, &e.host, &e.rotation, Document::Deploy);
        }
        Ok(id)
    }

    async fn invocation(&self, command_id: &str, host: &HostId) -> Result<Invocation, AwsError> {
        let latency = self.env.lock().params.ssm_latency_ms;
        crate::sim_call!(self.env, "SSM", "GetCommandInvocation", latency, true);
        self.inner.invocation(command_id, host).await
    }

    async fn command_for(
        &self,
        host: &HostId,
        document: rotation::hosts::Document,
        rotation: &RotationId,
    ) -> Result<Option<String>, AwsError> {
        let latency = self.env.lock().params.ssm_latency_ms;
        crate::sim_call!(self.env, "SSM", "ListCommands", latency, true);
        self.inner.command_for(host, document, rotation).await
    }
}
