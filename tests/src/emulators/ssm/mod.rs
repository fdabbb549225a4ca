//! AWS Systems Manager Run Command emulator that really runs the documents' scripts.
//!
//! Why: the pipeline's correctness lives in the on-host scripts (key generation, CSR, atomic
//! deploy, verification) and in how our code reacts to Run Command's behaviour (invocations that
//! do not exist yet, pending commands on offline hosts, truncated output, status events). moto's
//! SSM runs nothing and always answers Success. This emulator speaks AWS JSON 1.1
//! (`AmazonSSM.*`) and runs each document step with the real `bash` (and `openssl`).
//!
//! # Hosts and their chroot
//!
//! Every registered host gets a sandbox directory that stands for its filesystem root. The
//! emulator's chroot is deliberately simple: **every document parameter whose name ends in
//! `Path`** (`certPath`, `keyPath`, `cacertPath`, `signingHelperPath` …), plus the names listed in
//! [`SsmConfig::extra_path_parameters`] (`reloadHook`), whose value is absolute is rewritten under
//! the sandbox before substitution (`/etc/pki/x` → `<sandbox>/etc/pki/x`). Scripts
//! run with the sandbox as working directory and an environment cleared down to `PATH`, `HOME`
//! (`<sandbox>/root`), `LANG` (`C.UTF-8`) and `TMPDIR` (`<sandbox>/tmp`, so `mktemp` stays inside
//! the host), `AWS_SSM_INSTANCE_ID` and `SSM_COMMAND_ID` (as SSM Agent sets them), plus what [`SsmHandle::set_host_env`] adds for every host (where the hosts' AWS
//! endpoints are and which CA bundle they trust, as an instance's profile would say). Absolute paths written literally in a script are *not* rewritten: scripts must take
//! every file location from a `…Path` parameter (they do, since the table may override them).
//!
//! `PATH` is one directory of symlinks to every executable of the machine's standard bin
//! directories; a host registered with `has_openssl: false` gets one without `openssl`.
//!
//! # Behaviour that mirrors the service
//!
//! - SendCommand checks the document, the instances (≤ 50, no duplicates, registered) and the
//!   parameters (`InvalidParameters` on unknown, missing or pattern-breaking values) and answers
//!   `Status: Pending`; the command then runs in the background.
//! - The first `GetCommandInvocation` of each invocation answers `InvocationDoesNotExist`, as the
//!   real service does right after SendCommand (configurable).
//! - Hosts that are offline (`ConnectionLost`) keep their invocations `Pending`; they run when the
//!   host comes back ([`SsmHandle::set_online`]) or end `TimedOut` / `DeliveryTimedOut` after the
//!   command's `TimeoutSeconds` or on [`SsmHandle::expire_offline`].
//! - `StandardOutputContent` is cut at 24,000 characters, `StandardErrorContent` at 8,000, and
//!   `ListCommandInvocations`' plugin `Output` at 2,500.
//! - Each status change of an invocation (`InProgress`, then the final one) and of the command
//!   goes to the [`EventBus`] as "EC2 Command Invocation Status-change Notification" /
//!   "EC2 Command Status-change Notification".
//!
//! # Layout
//!
//! This module holds the configuration, the state of commands, invocations and hosts, and the
//! handle tests drive; `sandbox` the hosts and the runner (one sandbox directory per host, the
//! scripts run with `bash`), `status` the status changes and their events, `api` the AWS JSON
//! 1.1 operations with `checks` (request validation) and `output` (the answers' shapes), and
//! `documents` the documents loaded from the CloudFormation template.

pub mod documents;

mod api;
mod checks;
mod output;
mod sandbox;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use documents::{load_documents, Document, DocumentError, ParameterSpec, Step};
pub use sandbox::HostSpec;

use super::wire::{self, Server};
use super::{lock, Capture, EventBus};
use api::Api;
use sandbox::find_tool;

/// `StandardOutputContent` limit of `GetCommandInvocation`.
pub const STDOUT_LIMIT: usize = 24_000;
/// `StandardErrorContent` limit of `GetCommandInvocation`.
pub const STDERR_LIMIT: usize = 8_000;
/// Plugin `Output` limit of `ListCommandInvocations`.
pub const PLUGIN_OUTPUT_LIMIT: usize = 2_500;
/// SendCommand's limit on `InstanceIds`.
pub const MAX_INSTANCE_IDS: usize = 50;

/// The instance ID pattern of the SSM model: `i-` + 8 or 17 word characters, or `mi-` + 17.
pub fn valid_instance_id(id: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^(i-(\w{8}|\w{17})|mi-\w{17})$").expect("instance id regex")
    })
    .is_match(id)
}

/// A hybrid managed-node ID (`mi-` + 17 hex digits) built from a number, for fleets of test hosts.
pub fn managed_instance_id(n: u64) -> String {
    format!("mi-{n:017x}")
}

/// How to start the Run Command emulator.
#[derive(Clone, Debug)]
pub struct SsmConfig {
    /// The documents SendCommand can use (see [`load_documents`]).
    pub documents: Vec<Document>,
    /// Where status-change events go.
    pub bus: EventBus,
    /// Where exchanges and call counts go.
    pub capture: Capture,
    /// Directory for host sandboxes and run files; `None` = a temporary directory removed on drop.
    /// A given directory is kept (useful for the demo).
    pub root_dir: Option<PathBuf>,
    /// Scripts running at once across all hosts (others wait, their invocation `Pending`).
    pub max_parallel: usize,
    /// How many `GetCommandInvocation` calls per invocation answer `InvocationDoesNotExist` first.
    pub hidden_invocation_calls: u32,
    /// Whether to emit "EC2 Command Status-change Notification" (command level) events.
    pub command_events: bool,
    /// Whether to emit `InProgress` status-change events (the service does; consumers must skip them).
    pub in_progress_events: bool,
    /// Parameters that hold host paths although their names do not end in `Path` (default
    /// `reloadHook`); they are rewritten under the sandbox like the `…Path` ones.
    pub extra_path_parameters: Vec<String>,
}

impl Default for SsmConfig {
    fn default() -> Self {
        Self {
            documents: Vec::new(),
            bus: EventBus::new(),
            capture: Capture::new(),
            root_dir: None,
            max_parallel: 8,
            hidden_invocation_calls: 1,
            command_events: true,
            in_progress_events: true,
            extra_path_parameters: vec!["reloadHook".into()],
        }
    }
}

/// What a test can see of one invocation (full output, not cut).
#[derive(Clone, Debug)]
pub struct InvocationView {
    /// Command ID.
    pub command_id: String,
    /// Instance ID.
    pub instance_id: String,
    /// Document name.
    pub document_name: String,
    /// Parameters as given to SendCommand.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// `Pending`, `InProgress`, `Success`, `Failed`, `TimedOut`, `Cancelled`.
    pub status: String,
    /// `StatusDetails` (`DeliveryTimedOut`, `ExecutionTimedOut` …).
    pub status_details: String,
    /// Exit code of the last step run (-1 before the end, on timeout or when killed by a signal).
    pub response_code: i64,
    /// Whole standard output.
    pub stdout: String,
    /// Whole standard error.
    pub stderr: String,
}

#[derive(Clone, Debug)]
struct PluginRun {
    name: String,
    status: &'static str,
    status_details: &'static str,
    response_code: i64,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    stdout: String,
    stderr: String,
}

#[derive(Clone, Debug)]
struct PreparedStep {
    name: String,
    script: String,
    timeout: Duration,
}

#[derive(Debug)]
struct Invocation {
    command_id: String,
    instance_id: String,
    document_name: String,
    comment: String,
    requested: OffsetDateTime,
    status: &'static str,
    status_details: &'static str,
    response_code: i64,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    plugins: Vec<PluginRun>,
    steps: Vec<PreparedStep>,
    get_calls: u32,
    queued: bool,
}

impl Invocation {
    fn terminal(&self) -> bool {
        !matches!(self.status, "Pending" | "InProgress")
    }
    fn stdout(&self) -> String {
        self.plugins.iter().map(|p| p.stdout.as_str()).collect()
    }
    fn stderr(&self) -> String {
        self.plugins.iter().map(|p| p.stderr.as_str()).collect()
    }
    /// The run of the document step `name`: what it did, or, for a step that never ran, the
    /// invocation's status while it may still run and `Cancelled` once it cannot. `None` when
    /// the document has no such step.
    fn plugin(&self, name: &str) -> Option<PluginRun> {
        if let Some(r) = self.plugins.iter().find(|r| r.name == name) {
            return Some(r.clone());
        }
        if !self.steps.iter().any(|s| s.name == name) {
            return None;
        }
        let (status, status_details) = if self.terminal() {
            ("Cancelled", "Cancelled")
        } else {
            (self.status, self.status_details)
        };
        Some(PluginRun {
            name: name.to_string(),
            status,
            status_details,
            response_code: -1,
            start: None,
            end: None,
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

#[derive(Debug)]
struct CommandRec {
    id: String,
    document_name: String,
    comment: String,
    max_concurrency: String,
    max_errors: String,
    parameters: BTreeMap<String, Vec<String>>,
    instance_ids: Vec<String>,
    requested: OffsetDateTime,
    timeout_seconds: i64,
    status: &'static str,
    status_details: &'static str,
    started: bool,
}

#[derive(Debug)]
struct Host {
    spec: HostSpec,
    root: PathBuf,
    registered: OffsetDateTime,
    last_ping: OffsetDateTime,
}

#[derive(Default)]
struct State {
    documents: BTreeMap<String, Document>,
    hosts: BTreeMap<String, Host>,
    commands: BTreeMap<String, CommandRec>,
    order: Vec<String>,
    invocations: HashMap<(String, String), Invocation>,
}

struct Shared {
    state: Mutex<State>,
    bus: EventBus,
    base: PathBuf,
    bash: PathBuf,
    bins: Mutex<BTreeMap<bool, PathBuf>>,
    sem: Arc<Semaphore>,
    active: watch::Sender<usize>,
    tasks: Mutex<JoinSet<()>>,
    hidden_calls: u32,
    command_events: bool,
    in_progress_events: bool,
    extra_path_parameters: Vec<String>,
    host_env: Mutex<BTreeMap<String, String>>,
}

/// A running Run Command emulator. Dropping it stops the server, kills running scripts and
/// removes its temporary directory.
pub struct SsmHandle {
    shared: Arc<Shared>,
    server: Server,
    capture: Capture,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SsmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsmHandle")
            .field("url", &self.server.url())
            .field("base", &self.shared.base)
            .finish()
    }
}

impl Drop for SsmHandle {
    fn drop(&mut self) {
        lock(&self.shared.tasks).abort_all();
    }
}

/// Starts the emulator on `127.0.0.1:<free port>`.
pub async fn start(config: SsmConfig) -> anyhow::Result<SsmHandle> {
    let (tmp, base) = match &config.root_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new().prefix("ssm-emulator-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let bash = find_tool("bash").ok_or_else(|| anyhow::anyhow!("bash not found"))?;
    let mut state = State::default();
    for d in config.documents {
        state.documents.insert(d.name.clone(), d);
    }
    let (active, _) = watch::channel(0usize);
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        bus: config.bus,
        base,
        bash,
        bins: Mutex::new(BTreeMap::new()),
        sem: Arc::new(Semaphore::new(config.max_parallel.max(1))),
        active,
        tasks: Mutex::new(JoinSet::new()),
        hidden_calls: config.hidden_invocation_calls,
        command_events: config.command_events,
        in_progress_events: config.in_progress_events,
        extra_path_parameters: config.extra_path_parameters,
        host_env: Mutex::new(BTreeMap::new()),
    });
    let server = wire::serve(
        "AmazonSSM",
        "SSM",
        Arc::new(Api(shared.clone())),
        config.capture.clone(),
    )
    .await?;
    Ok(SsmHandle {
        shared,
        server,
        capture: config.capture,
        _tmp: tmp,
    })
}

impl SsmHandle {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_SSM`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The event bus this emulator writes to.
    pub fn bus(&self) -> EventBus {
        self.shared.bus.clone()
    }

    /// The capture this emulator records into.
    pub fn capture(&self) -> Capture {
        self.capture.clone()
    }

    /// Calls per operation (of every emulator sharing this capture).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.capture.calls()
    }

    /// Adds (or replaces) a document.
    pub fn add_document(&self, doc: Document) {
        lock(&self.shared.state)
            .documents
            .insert(doc.name.clone(), doc);
    }

    /// The script of a document exactly as the template holds it (before substitution).
    ///
    /// # Panics
    /// If no such document was loaded.
    pub fn document_script(&self, name: &str) -> String {
        lock(&self.shared.state)
            .documents
            .get(name)
            .unwrap_or_else(|| panic!("no document {name}"))
            .script()
    }

    /// Waits until no invocation is queued or running (pending ones on offline hosts do not count).
    pub async fn wait_idle(&self) {
        let mut rx = self.shared.active.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Every invocation so far, oldest command first.
    pub fn invocations(&self) -> Vec<InvocationView> {
        let st = lock(&self.shared.state);
        st.order
            .iter()
            .filter_map(|c| st.commands.get(c))
            .flat_map(|c| {
                c.instance_ids
                    .iter()
                    .filter_map(|i| st.invocations.get(&(c.id.clone(), i.clone())))
                    .map(|inv| view(c, inv))
            })
            .collect()
    }

    /// One invocation, if it exists.
    pub fn invocation(&self, command_id: &str, instance_id: &str) -> Option<InvocationView> {
        let st = lock(&self.shared.state);
        let c = st.commands.get(command_id)?;
        let inv = st
            .invocations
            .get(&(command_id.to_string(), instance_id.to_string()))?;
        Some(view(c, inv))
    }
}

fn view(c: &CommandRec, inv: &Invocation) -> InvocationView {
    InvocationView {
        command_id: inv.command_id.clone(),
        instance_id: inv.instance_id.clone(),
        document_name: inv.document_name.clone(),
        parameters: c.parameters.clone(),
        status: inv.status.to_string(),
        status_details: inv.status_details.to_string(),
        response_code: inv.response_code,
        stdout: inv.stdout(),
        stderr: inv.stderr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids() {
        assert!(valid_instance_id("mi-0a1b2c3d4e5f60718"));
        assert!(valid_instance_id("i-0123456789abcdef0"));
        assert!(valid_instance_id("i-01234567"));
        assert!(!valid_instance_id("mi-123"));
        assert!(!valid_instance_id("host1"));
        assert_eq!(managed_instance_id(255), "mi-000000000000000ff");
        assert!(valid_instance_id(&managed_instance_id(u64::MAX)));
    }
}
