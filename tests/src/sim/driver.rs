//! The one module that knows the handlers: turns a simulated event into a handler call.
//!
//! Why one small module: the pipeline's design is changing (a queue in front of CertIssue,
//! batched SendCommand, a time-budgeted CertCheck), and every coupling of the simulator to the
//! handlers' signatures and event shapes is here, so adapting the simulator to a new design is
//! an edit of this file. The handlers are called with the event's virtual time as `now` (their
//! Lambda entry points read the wall clock).

use std::sync::Arc;

use rotation::events::{
    CommandInvocationDetail, Envelope, IssuanceDetail, PCA_ISSUANCE, SSM_INVOCATION_STATUS,
};
use rotation::{Config, Deps};
use state::HostId;
use time::OffsetDateTime;

use crate::kit::ca::CA_ARN;
use crate::sim::dynamo::SimStore;
use crate::sim::env::{Document, Func};
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
            Payload::CommandStatus { csr: false, .. } | Payload::Issued { .. } => Func::Deploy,
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
}

impl Driver {
    /// Handlers over `deps`.
    pub fn new(deps: SimDeps) -> Self {
        let config = deps.config.clone();
        Driver {
            deps: Arc::new(deps),
            config,
        }
    }

    /// The handlers' config.
    pub fn config(&self) -> &Config {
        &self.config
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
                cert_check::run(self.deps.clone(), request, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Payload::CommandStatus {
                command_id,
                host,
                csr,
                status,
            } => {
                let document = if *csr {
                    &self.config.generate_csr_document
                } else {
                    &self.config.deploy_cert_document
                };
                let event = Envelope {
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
                };
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
                let event = Envelope {
                    id: String::new(),
                    detail_type: PCA_ISSUANCE.to_owned(),
                    source: "aws.acm-pca".to_owned(),
                    resources: vec![CA_ARN.to_owned(), cert_arn.clone()],
                    detail: IssuanceDetail {
                        result: "success".to_owned(),
                    },
                };
                cert_deploy::on_issued(&self.deps, &event, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}
