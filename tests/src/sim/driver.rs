//! The one module that knows the handlers: turns a simulated event into a handler call.
//!
//! Why one small module: the pipeline's design is changing (a queue in front of CertIssue,
//! batched SendCommand, a time-budgeted CertCheck), and every coupling of the simulator to the
//! handlers' signatures and event shapes is here, so adapting the simulator to a new design is
//! an edit of this file. The handlers are called with the event's virtual time as `now` (their
//! Lambda entry points read the wall clock).

use std::sync::Arc;

use rotation::budget::Budget;
use rotation::events::{
    CommandInvocationDetail, Envelope, IssuanceDetail, SqsBatch, SqsRecord, PCA_ISSUANCE,
    SSM_INVOCATION_STATUS,
};
use rotation::{Config, Deps};
use state::HostId;
use time::OffsetDateTime;

use crate::kit::ca::CA_ARN;
use crate::sim::dynamo::SimStore;
use crate::sim::env::{Document, Env, Func};
use crate::sim::pca::SimCa;
use crate::sim::sns::SimAlerts;
use crate::sim::ssm::SimHosts;

/// The handlers' dependencies over the simulator's AWS models.
pub type SimDeps = Deps<SimStore, SimHosts, SimCa, SimAlerts>;

/// What a function is invoked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The schedule (`{}`) or the reconcile schedule (`{"reconcile": true}`).
    Check {
        /// The reconcile pass.
        reconcile: bool,
    },
    /// A Run Command invocation status change.
    CommandStatus {
        /// The command.
        command_id: String,
        /// Its host.
        host: HostId,
        /// Its document.
        csr: bool,
        /// Its final status (`Success`, `Failed`, `DeliveryTimedOut` …).
        status: String,
    },
    /// A Private CA issuance event.
    Issued {
        /// The certificate.
        cert_arn: String,
    },
}

impl Payload {
    /// The function the template's rules send this event to.
    pub fn target(&self) -> Func {
        match self {
            Payload::Check { .. } => Func::Check,
            Payload::CommandStatus { csr: true, .. } => Func::Issue,
            Payload::CommandStatus { csr: false, .. } => Func::Deploy,
            Payload::Issued { .. } => Func::DeployQueue,
        }
    }

    /// A status event for `document`.
    pub fn status(command_id: &str, host: &HostId, document: Document, status: &str) -> Self {
        Payload::CommandStatus {
            command_id: command_id.to_owned(),
            host: host.clone(),
            csr: document == Document::Csr,
            status: status.to_owned(),
        }
    }

    /// One line for the event log.
    pub fn describe(&self) -> String {
        match self {
            Payload::Check { reconcile } => format!("check reconcile={reconcile}"),
            Payload::CommandStatus {
                command_id,
                host,
                status,
                ..
            } => format!("status {command_id} {host} {status}"),
            Payload::Issued { cert_arn } => {
                format!("issued {}", cert_arn.rsplit('/').next().unwrap_or(""))
            }
        }
    }
}

/// The handlers, wired to the models.
pub struct Driver {
    deps: Arc<SimDeps>,
    config: Config,
    env: Env,
}

impl Driver {
    /// Handlers over `deps`; their time budgets read `env`'s virtual clock.
    pub fn new(deps: SimDeps, env: Env) -> Self {
        let config = deps.config.clone();
        Driver {
            deps: Arc::new(deps),
            config,
            env,
        }
    }

    /// A budget until `until` on the invocation's virtual clock.
    fn budget(&self, until: Option<OffsetDateTime>) -> Budget {
        let env = self.env.clone();
        Budget::new(until, Arc::new(move || env.now()))
    }

    /// When an invocation started at `now` times out.
    fn deadline(&self, func: Func, now: OffsetDateTime) -> OffsetDateTime {
        let p = &self.env.lock().params;
        let timeout = match func {
            Func::Check => p.check_timeout_s,
            Func::Issue => p.issue_timeout_s,
            Func::Deploy | Func::DeployQueue => p.deploy_timeout_s,
        };
        now + time::Duration::seconds_f64(timeout)
    }

    /// The handlers' config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One invocation with `batch` at `now`, as the function handles it: issuance events
    /// deployed together, anything else one after another. A result per event: Ok, or its
    /// error (the message named in `batchItemFailures`, or the asynchronous event retried).
    pub async fn invoke_batch(
        &self,
        batch: &[Payload],
        now: OffsetDateTime,
    ) -> Vec<Result<(), String>> {
        let issued: Vec<_> = batch
            .iter()
            .filter_map(|p| match p {
                Payload::Issued { cert_arn } => Some((issuance_event(cert_arn), None)),
                _ => None,
            })
            .collect();
        if issued.len() == batch.len() {
            return cert_deploy::on_issued_batch(&self.deps, &issued, now)
                .await
                .into_iter()
                .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                .collect();
        }
        if batch.first().map(Payload::target) == Some(Func::Issue) {
            return self.issue_batch(batch, now).await;
        }
        let mut results = Vec::with_capacity(batch.len());
        for payload in batch {
            results.push(self.invoke(payload, now).await);
        }
        results
    }

    /// CertIssue's handler with `batch` as an SQS batch (message IDs are the indexes), its
    /// budget ending the production margin before the timeout on the virtual clock.
    async fn issue_batch(&self, batch: &[Payload], now: OffsetDateTime) -> Vec<Result<(), String>> {
        let records = batch
            .iter()
            .enumerate()
            .map(|(i, p)| SqsRecord {
                message_id: i.to_string(),
                body: self
                    .status_event(p)
                    .map(|e| serde_json::to_string(&e).unwrap_or_default())
                    .unwrap_or_default(),
                event_source: "aws:sqs".to_owned(),
            })
            .collect();
        let until = self.deadline(Func::Issue, now) - cert_issue::DEADLINE_MARGIN;
        let budget = self.budget(Some(until));
        let answer =
            cert_issue::handle_batch(&self.deps, &SqsBatch { records }, &budget, now).await;
        let again = crate::queue::failed_ids(&answer);
        (0..batch.len())
            .map(|i| {
                if again.contains(&i.to_string()) {
                    Err("delivered again (batchItemFailures)".to_owned())
                } else {
                    Ok(())
                }
            })
            .collect()
    }

    /// The Run Command status event for `payload`, if it is one.
    fn status_event(&self, payload: &Payload) -> Option<Envelope<CommandInvocationDetail>> {
        let Payload::CommandStatus {
            command_id,
            host,
            csr,
            status,
        } = payload
        else {
            return None;
        };
        let document = if *csr {
            &self.config.generate_csr_document
        } else {
            &self.config.deploy_cert_document
        };
        Some(Envelope {
            id: String::new(),
            detail_type: SSM_INVOCATION_STATUS.to_owned(),
            source: "aws.ssm".to_owned(),
            resources: vec![],
            detail: CommandInvocationDetail {
                command_id: command_id.clone(),
                document_name: document.clone(),
                instance_id: host.as_str().to_owned(),
                status: status.clone(),
            },
        })
    }

    /// Runs the handler `payload` goes to at `now`: Ok, or the function's error as Lambda
    /// would see it (retried by the asynchronous queue).
    pub async fn invoke(&self, payload: &Payload, now: OffsetDateTime) -> Result<(), String> {
        match payload {
            Payload::Check { reconcile } => {
                let body = if *reconcile {
                    serde_json::json!({"reconcile": true})
                } else {
                    serde_json::json!({})
                };
                let request =
                    cert_check::step::request::parse_request(body).map_err(|e| e.to_string())?;
                let until = cert_check::step::budget::budget_until(
                    self.config.run_budget,
                    now,
                    Some(self.deadline(Func::Check, now)),
                );
                cert_check::run_within(self.deps.clone(), request, now, self.budget(until))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Payload::CommandStatus { csr, .. } => {
                let event = self.status_event(payload).ok_or("not a status event")?;
                if *csr {
                    cert_issue::on_csr_ready(&self.deps, &event, now)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    cert_deploy::on_deploy_status(&self.deps, &event, now)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }
            Payload::Issued { cert_arn } => {
                cert_deploy::on_issued(&self.deps, &issuance_event(cert_arn), now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Private CA's issuance event for `cert_arn`.
fn issuance_event(cert_arn: &str) -> Envelope<IssuanceDetail> {
    Envelope {
        id: String::new(),
        detail_type: PCA_ISSUANCE.to_owned(),
        source: "aws.acm-pca".to_owned(),
        resources: vec![CA_ARN.to_owned(), cert_arn.to_owned()],
        detail: IssuanceDetail {
            result: "success".to_owned(),
        },
    }
}
