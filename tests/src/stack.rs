//! The whole local stack in one value: moto (DynamoDB, SNS, SQS), the Run Command, Private CA
//! and Roles Anywhere emulators, the production handlers wired to them through real SDK clients,
//! and an event router that delivers the emulators' events the way the stack's EventBridge rules
//! do. As in the template, GenerateCsr status events go to CertIssue, and Private CA's issuance
//! events to CertDeploy, through real SQS queues in moto ([`EventQueue`]), which
//! [`LocalStack::settle`] polls as Lambda's event source mappings do. Roles Anywhere has the template's trust anchor (the Private CA as its source), role and
//! profile, and every enrolled host has the `aws_signing_helper` stand-in, pointed at the
//! emulator's HTTPS endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::wiring::{AwsCrlDeps, Clients};
use adapters::AwsDeps;
use lambda_runtime::{Context, LambdaEvent};
use rotation::Config;
use serde_json::Value;
use state::record::HostOverrides;
use state::DynamoStore;

use crate::emulators::pca::{self, PcaConfig, PcaHandle};
use crate::emulators::rolesanywhere::{self, RolesAnywhereConfig, RolesAnywhereHandle};
use crate::emulators::ssm::{self, HostSpec, SsmConfig, SsmHandle};
use crate::emulators::{Capture, EventBus};
use crate::inbox::AlertInbox;
use crate::moto::MotoServer;
use crate::queue::{self, EventQueue};
use crate::recorder::CallRecorder;

/// Names of the two documents in the local stack.
pub const GENERATE_CSR_DOCUMENT: &str = "certrotation-GenerateCsr";
/// See [`GENERATE_CSR_DOCUMENT`].
pub const DEPLOY_CERT_DOCUMENT: &str = "certrotation-DeployCert";

/// The running local stack.
pub struct LocalStack {
    /// moto.
    pub moto: MotoServer,
    /// Run Command emulator.
    pub ssm: SsmHandle,
    /// Private CA emulator.
    pub pca: PcaHandle,
    /// Events from both emulators.
    pub bus: EventBus,
    /// Every exchange with both emulators.
    pub capture: Capture,
    /// The functions' configuration.
    pub config: Config,
    /// The state store (as CertCheck builds it).
    pub store: DynamoStore,
    /// What the alert topic received.
    pub inbox: AlertInbox,
    /// CertCheck's dependencies.
    pub check: Arc<AwsDeps>,
    /// CertIssue's dependencies.
    pub issue: Arc<AwsDeps>,
    /// CertDeploy's dependencies.
    pub deploy: Arc<AwsDeps>,
    /// Handler outcomes, in delivery order.
    pub outcomes: Vec<Value>,
    /// CRLProcessor's dependencies.
    pub crl: Arc<CrlDeps>,
    /// Roles Anywhere emulator.
    pub rolesanywhere: RolesAnywhereHandle,
    /// Every AWS operation each function called.
    pub recorder: CallRecorder,
    /// Where each service answers.
    pub endpoints: Endpoints,
    /// CertIssue's queue (the GenerateCsr status rule's target) and its dead-letter queue.
    pub issue_queue: EventQueue,
    /// Messages of CertIssue's queue that SQS delivered more than once (after a
    /// `batchItemFailures` answer and the visibility timeout).
    pub issue_redeliveries: usize,
    /// CertDeploy's queue (the issuance rule's target) and its dead-letter queue.
    pub deploy_queue: EventQueue,
    retries: HashMap<String, u32>,
}

/// The function an event source mapping feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    CertIssue,
    CertDeploy,
}

impl Consumer {
    /// The template's default batch size.
    fn batch_size(self) -> usize {
        match self {
            Consumer::CertIssue => 10,
            Consumer::CertDeploy => 50,
        }
    }
}

/// Seconds a message of CertIssue's or CertDeploy's queue stays invisible after a receive that did not delete
/// it (the template's is longer: six times the function's timeout).
pub const ISSUE_VISIBILITY_S: u32 = 1;
/// Receives after which a message moves to the dead-letter queue (as the template's).
pub const ISSUE_MAX_RECEIVES: u32 = 5;

/// Where each service of the local stack answers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// moto (DynamoDB, SNS, S3, SQS).
    pub moto: String,
    /// The Run Command emulator.
    pub ssm: String,
    /// The Private CA emulator.
    pub pca: String,
    /// The Roles Anywhere emulator.
    pub rolesanywhere: String,
}

/// CRLProcessor's dependencies in the local stack.
pub type CrlDeps = AwsCrlDeps;

/// The bucket Private CA writes CRLs to in the local stack.
pub const CRL_BUCKET: &str = "cert-rotation-crl";

impl Endpoints {
    /// `function`'s SDK clients towards the local stack, each recording its calls. Retries are
    /// off towards the emulators: their errors are answers, not faults.
    pub fn clients(&self, recorder: &CallRecorder, function: &'static str) -> Clients {
        let rec = recorder.for_function(function);
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&crate::aws::sdk_config(&self.moto, true))
                .interceptor(rec.clone())
                .build(),
        );
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&crate::aws::sdk_config(&self.ssm, false))
                .interceptor(rec.clone())
                .build(),
        );
        let pca = aws_sdk_acmpca::Client::from_conf(
            aws_sdk_acmpca::config::Builder::from(&crate::aws::sdk_config(&self.pca, false))
                .interceptor(rec.clone())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&crate::aws::sdk_config(&self.moto, true))
                .interceptor(rec.clone())
                .build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            crate::aws::s3_config(&self.moto, true)
                .interceptor(rec.clone())
                .build(),
        );
        let rolesanywhere = aws_sdk_rolesanywhere::Client::from_conf(
            aws_sdk_rolesanywhere::config::Builder::from(&crate::aws::sdk_config(
                &self.rolesanywhere,
                false,
            ))
            .interceptor(rec)
            .build(),
        );
        Clients {
            dynamodb,
            ssm,
            pca,
            sns,
            s3,
            rolesanywhere,
        }
    }

    /// CRLProcessor's production wiring over recording clients.
    pub fn crl_deps(&self, config: &Config, recorder: &CallRecorder) -> CrlDeps {
        adapters::wiring::crl_deps(&self.clients(recorder, "CRLProcessor"), config.clone())
    }

    /// `function`'s production wiring over recording clients.
    pub fn deps(
        &self,
        config: &Config,
        recorder: &CallRecorder,
        function: &'static str,
    ) -> AwsDeps {
        adapters::wiring::rotation_deps(&self.clients(recorder, function), config.clone())
    }
}

/// A host's files, as paths in its sandbox.
#[derive(Debug, Clone)]
pub struct HostFiles {
    /// The sandbox directory standing for the host's `/`.
    pub root: std::path::PathBuf,
    /// `{host}.crt`.
    pub cert: std::path::PathBuf,
    /// `{host}.key`.
    pub key: std::path::PathBuf,
    /// `ca_chain_certificate.crt`.
    pub chain: std::path::PathBuf,
}

/// Run Command's final invocation statuses: the status rules' targets get these.
const TERMINAL: [&str; 8] = [
    "Success",
    "Failed",
    "TimedOut",
    "Cancelled",
    "Undeliverable",
    "Terminated",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
];

/// How the router delivers events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    /// Deliver every event twice (EventBridge is at least once).
    pub duplicate: bool,
    /// Deliver each batch in reverse order.
    pub reverse: bool,
}

impl LocalStack {
    /// Starts everything; `overrides` change the functions' environment.
    pub async fn start(overrides: &[(&str, &str)]) -> anyhow::Result<LocalStack> {
        let moto = MotoServer::start()?;
        let bus = EventBus::new();
        let capture = Capture::new();
        let documents = ssm::load_documents(
            crate::table::template_path(),
            &[
                ("GenerateCsrDocument", GENERATE_CSR_DOCUMENT),
                ("DeployCertDocument", DEPLOY_CERT_DOCUMENT),
            ],
        )?;
        let ssm = ssm::start(SsmConfig {
            documents,
            bus: bus.clone(),
            capture: capture.clone(),
            ..SsmConfig::default()
        })
        .await?;
        let pca = pca::start(PcaConfig {
            bus: bus.clone(),
            capture: capture.clone(),
            crl: Some(pca::CrlTarget::new(moto.url(), CRL_BUCKET)),
            ..PcaConfig::default()
        })
        .await?;
        let rolesanywhere = rolesanywhere::start(RolesAnywhereConfig {
            capture: capture.clone(),
            ..RolesAnywhereConfig::default()
        })
        .await?;
        // The template's trust anchor (the Private CA as its source), role and profile; the hosts
        // reach CreateSession over HTTPS through their aws_signing_helper.
        let ra =
            rolesanywhere.create_template_resources("certrotation", &pca.ca_certificate_pem())?;
        for (k, v) in crate::emulators::signing_helper::host_env(&rolesanywhere) {
            ssm.set_host_env(k, &v);
        }
        let base = crate::aws::sdk_config(&moto.url(), true);
        let dynamodb = aws_sdk_dynamodb::Client::new(&base);
        crate::table::create_state_table(&dynamodb, "cert-rotation").await?;
        let sns = aws_sdk_sns::Client::new(&base);
        let topic = sns
            .create_topic()
            .name("cert-rotation-alerts")
            .send()
            .await?;
        let topic_arn = topic.topic_arn().unwrap_or_default().to_owned();
        let inbox = AlertInbox::subscribe(&moto.url(), &sns, &topic_arn).await?;
        let issue_queue = EventQueue::create(
            &moto.url(),
            "cert-rotation-issue",
            ISSUE_VISIBILITY_S,
            ISSUE_MAX_RECEIVES,
        )?;
        let deploy_queue = EventQueue::create(
            &moto.url(),
            "cert-rotation-deploy",
            ISSUE_VISIBILITY_S,
            ISSUE_MAX_RECEIVES,
        )?;

        let mut env: HashMap<String, String> = [
            ("TABLE_NAME", "cert-rotation".to_owned()),
            ("ALERT_TOPIC_ARN", topic_arn.clone()),
            ("CA_ARN", pca.ca_arn()),
            ("SIGNING_ALGORITHM", "SHA256WITHECDSA".to_owned()),
            ("GENERATE_CSR_DOCUMENT", GENERATE_CSR_DOCUMENT.to_owned()),
            ("DEPLOY_CERT_DOCUMENT", DEPLOY_CERT_DOCUMENT.to_owned()),
            ("SCAN_SEGMENTS", "2".to_owned()),
            ("TRUST_ANCHOR_ARN", rolesanywhere.trust_anchor_arn()),
            ("PROFILE_ARN", ra.profile_arn.clone()),
            ("ROLE_ARN", ra.role_arn.clone()),
            ("CRL_BUCKET", CRL_BUCKET.to_owned()),
            // The reconcile tests move the clock past it by an hour and five minutes.
            ("IN_FLIGHT_TIMEOUT_MINUTES", "60".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_map(&env)?;
        let recorder = CallRecorder::new();
        let endpoints = Endpoints {
            moto: moto.url(),
            ssm: ssm.url(),
            pca: pca.url(),
            rolesanywhere: rolesanywhere.url(),
        };
        let store = DynamoStore::new(dynamodb, &config.table_name, config.scan_segments);
        let deps = |f| Arc::new(endpoints.deps(&config, &recorder, f));
        Ok(LocalStack {
            check: deps("CertCheck"),
            issue: deps("CertIssue"),
            deploy: deps("CertDeploy"),
            crl: Arc::new(endpoints.crl_deps(&config, &recorder)),
            rolesanywhere,
            recorder,
            endpoints,
            moto,
            ssm,
            pca,
            bus,
            capture,
            config,
            store,
            inbox,
            outcomes: Vec::new(),
            issue_queue,
            issue_redeliveries: 0,
            deploy_queue,
            retries: HashMap::new(),
        })
    }

    /// Delivers one event through the rule that matches it, as EventBridge would (None: no rule
    /// matches). Routers other than [`LocalStack::settle`] (the chaos router in
    /// `crate::faults::delivery`, a test redelivering by hand) deliver through this.
    pub async fn deliver(&self, event: &Value) -> Result<Option<Value>, lambda_runtime::Error> {
        self.route(event).await
    }

    /// Points the functions' DynamoDB, SNS and S3 clients at `url` instead of moto (a fault
    /// proxy in front of it) and rebuilds their dependencies. `store`, the inbox and the
    /// emulators keep talking to moto directly.
    pub fn route_moto_through(&mut self, url: &str) {
        self.endpoints.moto = url.to_owned();
        let deps = |f| Arc::new(self.endpoints.deps(&self.config, &self.recorder, f));
        let (check, issue, deploy) = (deps("CertCheck"), deps("CertIssue"), deps("CertDeploy"));
        self.check = check;
        self.issue = issue;
        self.deploy = deploy;
        self.crl = Arc::new(self.endpoints.crl_deps(&self.config, &self.recorder));
    }

    /// Registers an emulated host.
    pub fn add_host(&self, host: &str, spec: HostSpec) -> std::path::PathBuf {
        self.ssm.register_host(host, spec)
    }

    /// Invokes CertCheck as the scheduler or an operator would, with `payload`.
    pub async fn cert_check(&self, payload: Value) -> anyhow::Result<Value> {
        cert_check::handle(
            self.check.clone(),
            LambdaEvent {
                payload,
                context: Context::default(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("CertCheck failed: {e}"))
    }

    /// Delivers events until the system is quiet, as the stack's EventBridge rules route them.
    pub async fn settle(&mut self, delivery: Delivery) -> anyhow::Result<()> {
        for _round in 0..200 {
            if !self.settle_round(delivery).await? {
                return Ok(());
            }
        }
        anyhow::bail!("events never settled")
    }

    /// Waits for running host commands, polls CertIssue's and CertDeploy's queues, then
    /// delivers the events on the bus once (a GenerateCsr status event or an issuance event into
    /// its queue); returns whether there was anything to do. A handler error (retryable)
    /// re-queues its event, as Lambda's async retries would, at most five times per event; the
    /// queues' failures stay in them for SQS to deliver again after the visibility timeout.
    pub async fn settle_round(&mut self, delivery: Delivery) -> anyhow::Result<bool> {
        self.ssm.wait_idle().await;
        let polled = self.poll_issue_queue().await? | self.poll_deploy_queue().await?;
        let mut events = self.bus.drain();
        if events.is_empty() {
            if polled {
                return Ok(true);
            }
            if self.issue_queue.in_queue()? + self.deploy_queue.in_queue()? > 0 {
                // Received, not deleted: visible again after the visibility timeout.
                tokio::time::sleep(Duration::from_millis(250)).await;
                return Ok(true);
            }
            return Ok(false);
        }
        if delivery.reverse {
            events.reverse();
        }
        let copies = if delivery.duplicate { 2 } else { 1 };
        for event in events {
            for _ in 0..copies {
                match self.consumer_of(&event) {
                    Some(Consumer::CertIssue) => {
                        self.issue_queue.send(&event)?;
                        continue;
                    }
                    Some(Consumer::CertDeploy) => {
                        self.deploy_queue.send(&event)?;
                        continue;
                    }
                    None => {}
                }
                match self.route(&event).await {
                    Ok(Some(outcome)) => self.outcomes.push(outcome),
                    Ok(None) => {}
                    Err(e) => {
                        let id = event["id"].as_str().unwrap_or_default().to_owned();
                        let n = self.retries.entry(id).or_default();
                        *n += 1;
                        anyhow::ensure!(*n <= 5, "event retried too often: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        self.bus.push(event.clone());
                    }
                }
            }
        }
        Ok(true)
    }

    /// Polls CertIssue's queue as the event source mapping does: receive a batch, invoke
    /// CertIssue with it, delete the messages it did not name in `batchItemFailures`; until
    /// no message is visible. Returns whether any was received.
    pub async fn poll_issue_queue(&mut self) -> anyhow::Result<bool> {
        self.poll(Consumer::CertIssue).await
    }

    /// Polls CertDeploy's queue the same way, in batches of up to 50.
    pub async fn poll_deploy_queue(&mut self) -> anyhow::Result<bool> {
        self.poll(Consumer::CertDeploy).await
    }

    async fn poll(&mut self, consumer: Consumer) -> anyhow::Result<bool> {
        let mut any = false;
        loop {
            let queue = match consumer {
                Consumer::CertIssue => &self.issue_queue,
                Consumer::CertDeploy => &self.deploy_queue,
            };
            let batch = queue.receive(consumer.batch_size())?;
            if batch.is_empty() {
                return Ok(any);
            }
            any = true;
            if consumer == Consumer::CertIssue {
                self.issue_redeliveries += batch.iter().filter(|m| m.receive_count > 1).count();
            }
            let records: Vec<(String, String)> = batch
                .iter()
                .map(|m| (m.message_id.clone(), m.body.clone()))
                .collect();
            match self.invoke(consumer, queue::sqs_event(&records)).await {
                Ok(answer) => {
                    let again = queue::failed_ids(&answer);
                    let queue = match consumer {
                        Consumer::CertIssue => &self.issue_queue,
                        Consumer::CertDeploy => &self.deploy_queue,
                    };
                    for m in batch.iter().filter(|m| !again.contains(&m.message_id)) {
                        queue.delete(m)?;
                    }
                    self.outcomes.push(answer);
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?consumer, "the batch failed; SQS delivers it again")
                }
            }
        }
    }

    /// Invokes `consumer` with an SQS batch.
    async fn invoke(
        &self,
        consumer: Consumer,
        payload: Value,
    ) -> Result<Value, lambda_runtime::Error> {
        let event = LambdaEvent {
            payload,
            context: Context::default(),
        };
        match consumer {
            Consumer::CertIssue => Ok(cert_issue::handle(&self.issue, event).await?),
            Consumer::CertDeploy => Ok(cert_deploy::handle(&self.deploy, event).await?),
        }
    }

    /// The queue's function, if `event` is one a rule sends to a queue: GenerateCsr status
    /// events to CertIssue's, our CA's issuance events to CertDeploy's.
    fn consumer_of(&self, event: &Value) -> Option<Consumer> {
        if self.is_issue_event(event) {
            Some(Consumer::CertIssue)
        } else if event["source"].as_str() == Some("aws.acm-pca")
            && event["detail-type"].as_str() == Some(rotation::events::PCA_ISSUANCE)
            && event["resources"][0].as_str() == Some(self.config.ca_arn.as_str())
        {
            Some(Consumer::CertDeploy)
        } else {
            None
        }
    }

    /// Whether `event` is one the GenerateCsr status rule sends to CertIssue's queue.
    fn is_issue_event(&self, event: &Value) -> bool {
        event["source"].as_str() == Some("aws.ssm")
            && event["detail-type"].as_str() == Some(rotation::events::SSM_INVOCATION_STATUS)
            && TERMINAL.contains(&event["detail"]["status"].as_str().unwrap_or_default())
            && event["detail"]["document-name"].as_str()
                == Some(self.config.generate_csr_document.as_str())
    }

    /// How many hosts were sent `document` (one per invocation: a GenerateCsr command to 50
    /// hosts counts 50), and in how many commands.
    pub fn sent(&self, document: &str) -> (usize, usize) {
        let invocations: Vec<_> = self
            .ssm
            .invocations()
            .into_iter()
            .filter(|i| i.document_name == document)
            .collect();
        let mut commands: Vec<&str> = invocations.iter().map(|i| i.command_id.as_str()).collect();
        commands.sort_unstable();
        commands.dedup();
        (invocations.len(), commands.len())
    }

    /// The table's record of `host` (panics when it is not enrolled: a test's own mistake).
    pub async fn record(&self, host: &str) -> state::HostRecord {
        use state::ports::FleetReader as _;
        let id = state::HostId::parse(host).expect("a host ID");
        self.store
            .host(&id)
            .await
            .expect("the table answers")
            .unwrap_or_else(|| panic!("{host} is not enrolled"))
    }

    /// Where a host's certificate, key and chain are, in its sandbox.
    pub fn host_files(&self, host: &str, overrides: &HostOverrides) -> HostFiles {
        let root = self.ssm.host_root(host);
        let s = self.config.settings_for(overrides);
        let under = |p: &state::HostPath| root.join(p.as_str().trim_start_matches('/'));
        HostFiles {
            cert: under(&s.cert_path).join(format!("{host}.crt")),
            key: under(&s.key_path).join(format!("{host}.key")),
            chain: under(&s.cacert_path).join("ca_chain_certificate.crt"),
            root,
        }
    }

    /// One event through the rule that matches it (None: no rule matches).
    async fn route(&self, event: &Value) -> Result<Option<Value>, lambda_runtime::Error> {
        let source = event["source"].as_str().unwrap_or_default();
        let detail_type = event["detail-type"].as_str().unwrap_or_default();
        let status = event["detail"]["status"].as_str().unwrap_or_default();
        let document = event["detail"]["document-name"]
            .as_str()
            .unwrap_or_default();
        let ctx = || LambdaEvent {
            payload: event.clone(),
            context: Context::default(),
        };
        match (source, detail_type) {
            ("aws.ssm", rotation::events::SSM_INVOCATION_STATUS) if TERMINAL.contains(&status) => {
                if document == self.config.generate_csr_document {
                    self.one_message(Consumer::CertIssue, event).await.map(Some)
                } else if document == self.config.deploy_cert_document {
                    cert_deploy::handle(&self.deploy, ctx())
                        .await
                        .map(Some)
                        .map_err(Into::into)
                } else {
                    Ok(None)
                }
            }
            ("aws.s3", rotation::events::S3_OBJECT_CREATED)
                if event["detail"]["bucket"]["name"].as_str() == Some(CRL_BUCKET)
                    && event["detail"]["object"]["key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with(&self.config.crl_prefix)) =>
            {
                crl_processor::handle(&self.crl, ctx())
                    .await
                    .map(Some)
                    .map_err(Into::into)
            }
            ("aws.acm-pca", rotation::events::PCA_ISSUANCE)
                if event["resources"][0].as_str() == Some(self.config.ca_arn.as_str()) =>
            {
                self.one_message(Consumer::CertDeploy, event)
                    .await
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `event` by hand, as a one-message batch of `consumer`'s queue: a record the function
    /// asks to get again is this delivery's error (the caller redelivers it).
    async fn one_message(
        &self,
        consumer: Consumer,
        event: &Value,
    ) -> Result<Value, lambda_runtime::Error> {
        let id = event["id"].as_str().unwrap_or("direct").to_owned();
        let answer = self
            .invoke(consumer, queue::sqs_event(&[(id, event.to_string())]))
            .await?;
        if queue::failed_ids(&answer).is_empty() {
            Ok(answer)
        } else {
            Err(format!("{consumer:?} asked for the message again (batchItemFailures)").into())
        }
    }

    /// Enrols `host` in the table (as an admin would), registers it with Run Command and installs
    /// the `aws_signing_helper` stand-in in its `signingHelperPath`.
    pub async fn enrol_host(
        &self,
        host: &str,
        overrides: &HostOverrides,
        spec: HostSpec,
    ) -> anyhow::Result<()> {
        use state::ports::Enroller;
        self.store
            .enrol(&state::HostId::parse(host)?, overrides)
            .await?;
        let root = self.add_host(host, spec);
        let helper_dir = self.config.settings_for(overrides).signing_helper_path;
        crate::emulators::signing_helper::install(
            &root,
            helper_dir.as_str(),
            &crate::moto::moto_python(),
        )?;
        Ok(())
    }

    /// Runs `host`'s `aws_signing_helper credential-process` with `cert` and `key` (paths on the
    /// machine, e.g. [`HostFiles`]) against this stack's trust anchor, profile and role, as the
    /// host's credential configuration would.
    pub async fn host_credentials(
        &self,
        host: &str,
        overrides: &HostOverrides,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<
        crate::emulators::signing_helper::ProcessCredentials,
        crate::emulators::signing_helper::SigningHelperError,
    > {
        let (helper, args) = self.host_credential_process(host, overrides, cert, key);
        crate::emulators::signing_helper::credential_process(
            &helper,
            &crate::emulators::signing_helper::host_env(&self.rolesanywhere),
            &args,
        )
        .await
    }

    /// `host`'s installed helper and the `credential-process` arguments [`host_credentials`]
    /// runs it with (for callers that run many at once).
    ///
    /// [`host_credentials`]: LocalStack::host_credentials
    pub fn host_credential_process(
        &self,
        host: &str,
        overrides: &HostOverrides,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> (
        std::path::PathBuf,
        crate::emulators::signing_helper::CredentialProcess,
    ) {
        use crate::emulators::signing_helper::{CredentialProcess, HELPER_NAME};
        let root = self.ssm.host_root(host);
        let dir = self.config.settings_for(overrides).signing_helper_path;
        let helper = root
            .join(dir.as_str().trim_start_matches('/'))
            .join(HELPER_NAME);
        let ra = &self.config.roles_anywhere;
        (
            helper,
            CredentialProcess {
                certificate: cert.to_path_buf(),
                private_key: key.to_path_buf(),
                trust_anchor_arn: ra.trust_anchor_arn.clone(),
                profile_arn: ra.profile_arn.clone(),
                role_arn: ra.role_arn.clone(),
                ..CredentialProcess::default()
            },
        )
    }

    /// Replaces the emulated hosts' `openssl` with a wrapper that rewrites `from` to `to` in its
    /// arguments: a compromised or misconfigured host. The tool directory is shared by this
    /// stack's hosts (`host` only locates it), and by no other stack.
    pub fn tamper_openssl(&self, host: &str, from: &str, to: &str) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let root = self.ssm.host_root(host);
        let base = root
            .parent()
            .and_then(|p| p.parent())
            .ok_or_else(|| anyhow::anyhow!("unexpected sandbox layout"))?;
        let bin = base.join("bin/full/openssl");
        let real = std::fs::canonicalize(&bin)?;
        std::fs::remove_file(&bin)?;
        std::fs::write(
            &bin,
            format!(
                "#!/bin/bash\nargs=()\nfor a in \"$@\"; do args+=(\"${{a//{from}/{to}}}\"); done\nexec {} \"${{args[@]}}\"\n",
                real.display()
            ),
        )?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// A host spec for an ordinary online host with openssl.
    pub fn online() -> HostSpec {
        HostSpec::default()
    }
}
