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
//! the host). Absolute paths written literally in a script are *not* rewritten: scripts must take
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

pub mod documents;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use documents::{load_documents, Document, DocumentError, ParameterSpec, Step};

use super::wire::{self, input, ApiError, JsonApi, Server};
use super::{
    epoch_seconds, eventbridge_event, lock, millis_time, Capture, EventBus, ACCOUNT, REGION,
};

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

/// How an emulated host behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Whether the agent is connected (`PingStatus: Online`); offline hosts never run anything.
    pub online: bool,
    /// Whether `openssl` is on the host's `PATH`.
    pub has_openssl: bool,
}

impl Default for HostSpec {
    fn default() -> Self {
        Self {
            online: true,
            has_openssl: true,
        }
    }
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

fn find_tool(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

const BIN_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Fills `dir` with symlinks to every executable of the standard bin directories (first one
/// wins), leaving out `openssl` when `with_openssl` is false.
fn build_bin_dir(dir: &Path, with_openssl: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    for d in BIN_DIRS {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !with_openssl && name == "openssl" {
                continue;
            }
            let link = dir.join(&name);
            if link.symlink_metadata().is_ok() {
                continue;
            }
            let Ok(md) = std::fs::metadata(e.path()) else {
                continue;
            };
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                std::os::unix::fs::symlink(e.path(), &link)?;
            }
        }
    }
    Ok(())
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

    /// Registers a managed node and returns its sandbox root (created, with `tmp/`, `root/` and
    /// `etc/` inside). Registering an ID again updates its spec and keeps its files.
    ///
    /// # Panics
    /// If `instance_id` breaks the SSM model's pattern (`mi-` + 17 or `i-` + 8/17 word characters):
    /// the real service would reject every call naming it. Also on I/O errors.
    pub fn register_host(&self, instance_id: &str, spec: HostSpec) -> PathBuf {
        assert!(
            valid_instance_id(instance_id),
            "{instance_id} is not a valid SSM instance ID (use managed_instance_id())"
        );
        let root = self.shared.base.join("hosts").join(instance_id);
        for d in ["tmp", "root", "etc"] {
            std::fs::create_dir_all(root.join(d)).expect("create host sandbox");
        }
        self.shared
            .bin_dir(spec.has_openssl)
            .expect("build bin dir");
        let now = OffsetDateTime::now_utc();
        let online_now = {
            let mut st = lock(&self.shared.state);
            let was_online = st.hosts.get(instance_id).map(|h| h.spec.online);
            let h = st.hosts.entry(instance_id.to_string()).or_insert(Host {
                spec,
                root: root.clone(),
                registered: now,
                last_ping: now,
            });
            h.spec = spec;
            h.last_ping = now;
            spec.online && was_online == Some(false)
        };
        if online_now {
            self.shared.deliver_pending(&self.shared, instance_id);
        }
        root
    }

    /// Deregisters a managed node: later commands to it answer `InvalidInstanceId`.
    pub fn remove_host(&self, instance_id: &str) {
        lock(&self.shared.state).hosts.remove(instance_id);
    }

    /// The sandbox directory standing for the host's `/`.
    ///
    /// # Panics
    /// If the host is not registered.
    pub fn host_root(&self, instance_id: &str) -> PathBuf {
        lock(&self.shared.state)
            .hosts
            .get(instance_id)
            .unwrap_or_else(|| panic!("host {instance_id} not registered"))
            .root
            .clone()
    }

    /// Connects or disconnects a host's agent. A host coming back online runs its pending
    /// (not yet timed out) invocations, as the agent does when it reconnects.
    pub fn set_online(&self, instance_id: &str, online: bool) {
        let deliver = {
            let mut st = lock(&self.shared.state);
            let Some(h) = st.hosts.get_mut(instance_id) else {
                return;
            };
            let was = h.spec.online;
            h.spec.online = online;
            if online || was {
                h.last_ping = OffsetDateTime::now_utc();
            }
            online && !was
        };
        if deliver {
            self.shared.deliver_pending(&self.shared, instance_id);
        }
    }

    /// Ends every invocation still waiting for an offline host as the service does when the
    /// delivery timeout passes (`TimedOut` / `DeliveryTimedOut`, with events). Returns how many.
    pub fn expire_offline(&self) -> usize {
        let keys: Vec<(String, String)> = {
            let st = lock(&self.shared.state);
            st.invocations
                .iter()
                .filter(|(_, inv)| inv.status == "Pending" && !inv.queued)
                .filter(|(k, _)| st.hosts.get(&k.1).is_none_or(|h| !h.spec.online))
                .map(|(k, _)| k.clone())
                .collect()
        };
        keys.iter()
            .filter(|k| self.shared.delivery_timeout(k))
            .count()
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

fn instance_arn(id: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")
}

fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn elapsed(start: Option<OffsetDateTime>, end: Option<OffsetDateTime>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("PT{:.3}S", (e - s).as_seconds_f64()),
        _ => String::new(),
    }
}

impl Shared {
    fn is_path_parameter(&self, name: &str) -> bool {
        name.ends_with("Path") || self.extra_path_parameters.iter().any(|p| p == name)
    }

    fn bin_dir(&self, with_openssl: bool) -> std::io::Result<PathBuf> {
        let mut bins = lock(&self.bins);
        if let Some(p) = bins.get(&with_openssl) {
            return Ok(p.clone());
        }
        let p = self.base.join(if with_openssl {
            "bin/full"
        } else {
            "bin/no-openssl"
        });
        build_bin_dir(&p, with_openssl)?;
        bins.insert(with_openssl, p.clone());
        Ok(p)
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Queues the runner of one invocation (host online).
    fn queue(&self, me: &Arc<Shared>, inv: &mut Invocation) {
        inv.queued = true;
        self.active.send_modify(|n| *n += 1);
        let (c, i) = (inv.command_id.clone(), inv.instance_id.clone());
        let me = me.clone();
        self.spawn(async move { me.execute(c, i).await });
    }

    fn deliver_pending(&self, me: &Arc<Shared>, instance_id: &str) {
        let mut st = lock(&self.state);
        for ((_, i), inv) in st.invocations.iter_mut() {
            if i == instance_id && inv.status == "Pending" && !inv.queued {
                self.queue(me, inv);
            }
        }
    }

    fn invocation_event(&self, inv: &Invocation) {
        self.bus.push(eventbridge_event(
            "EC2 Command Invocation Status-change Notification",
            "aws.ssm",
            vec![instance_arn(&inv.instance_id)],
            json!({
                "command-id": inv.command_id,
                "document-name": inv.document_name,
                "instance-id": inv.instance_id,
                "requested-date-time": millis_time(inv.requested),
                "status": inv.status,
            }),
        ));
    }

    fn command_event(&self, c: &CommandRec) {
        if !self.command_events {
            return;
        }
        let expire = c.requested + time::Duration::seconds(c.timeout_seconds);
        self.bus.push(eventbridge_event(
            "EC2 Command Status-change Notification",
            "aws.ssm",
            c.instance_ids.iter().map(|i| instance_arn(i)).collect(),
            json!({
                "command-id": c.id,
                "document-name": c.document_name,
                "expire-after": millis_time(expire),
                "parameters": c.parameters,
                "requested-date-time": millis_time(c.requested),
                "status": c.status,
            }),
        ));
    }

    /// After an invocation changed: updates the command's status and emits its event.
    fn update_command(&self, st: &mut State, command_id: &str) {
        let Some(c) = st.commands.get(command_id) else {
            return;
        };
        let invs: Vec<&Invocation> = c
            .instance_ids
            .iter()
            .filter_map(|i| st.invocations.get(&(command_id.to_string(), i.clone())))
            .collect();
        let any_started = invs.iter().any(|i| i.status != "Pending");
        let all_done = invs.iter().all(|i| i.terminal());
        let (status, details) = if all_done {
            if invs.iter().all(|i| i.status == "Success") {
                ("Success", "Success")
            } else if invs.iter().any(|i| i.status == "Failed") {
                ("Failed", "Failed")
            } else if invs.iter().any(|i| i.status == "TimedOut") {
                ("TimedOut", "TimedOut")
            } else {
                ("Cancelled", "Cancelled")
            }
        } else if any_started {
            ("InProgress", "InProgress")
        } else {
            ("Pending", "Pending")
        };
        let c = st.commands.get_mut(command_id).expect("command");
        if c.status == status {
            return;
        }
        c.status = status;
        c.status_details = details;
        if status == "InProgress" {
            if c.started {
                return;
            }
            c.started = true;
            if !self.in_progress_events {
                return;
            }
        }
        self.command_event(c);
    }

    /// Marks a pending invocation delivery-timed-out. Returns whether it changed.
    fn delivery_timeout(&self, key: &(String, String)) -> bool {
        let mut st = lock(&self.state);
        let Some(inv) = st.invocations.get_mut(key) else {
            return false;
        };
        if inv.status != "Pending" || inv.queued {
            return false;
        }
        inv.status = "TimedOut";
        inv.status_details = "DeliveryTimedOut";
        inv.end = Some(OffsetDateTime::now_utc());
        self.invocation_event(inv);
        self.update_command(&mut st, &key.0);
        true
    }

    async fn execute(self: Arc<Self>, command_id: String, instance_id: String) {
        let key = (command_id.clone(), instance_id.clone());
        let permit = self.sem.clone().acquire_owned().await;
        let prepared = {
            let mut st = lock(&self.state);
            let root_bin = st
                .hosts
                .get(&instance_id)
                .map(|h| (h.root.clone(), h.spec.has_openssl));
            match (st.invocations.get_mut(&key), root_bin) {
                (Some(inv), Some((root, has_openssl))) if inv.status == "Pending" => {
                    inv.status = "InProgress";
                    inv.status_details = "InProgress";
                    inv.start = Some(OffsetDateTime::now_utc());
                    if self.in_progress_events {
                        self.invocation_event(inv);
                    }
                    let steps = inv.steps.clone();
                    self.update_command(&mut st, &command_id);
                    Some((steps, root, has_openssl))
                }
                _ => None,
            }
        };
        if let Some((steps, root, has_openssl)) = prepared {
            let run_dir = self.base.join("runs").join(&instance_id).join(&command_id);
            let mut runs = Vec::new();
            for step in &steps {
                let r = self.run_step(step, &root, has_openssl, &run_dir).await;
                let ok = r.status == "Success";
                runs.push(r);
                if !ok {
                    break;
                }
            }
            let mut st = lock(&self.state);
            if let Some(inv) = st.invocations.get_mut(&key) {
                let (status, details) = if runs.iter().any(|r| r.status == "TimedOut") {
                    ("TimedOut", "ExecutionTimedOut")
                } else if runs.iter().any(|r| r.status == "Failed") {
                    ("Failed", "Failed")
                } else {
                    ("Success", "Success")
                };
                inv.status = status;
                inv.status_details = details;
                inv.response_code = runs.last().map_or(-1, |r| r.response_code);
                inv.end = Some(OffsetDateTime::now_utc());
                inv.plugins = runs;
                self.invocation_event(inv);
                self.update_command(&mut st, &command_id);
            }
        }
        drop(permit);
        self.active.send_modify(|n| *n = n.saturating_sub(1));
    }

    async fn run_step(
        &self,
        step: &PreparedStep,
        root: &Path,
        has_openssl: bool,
        run_dir: &Path,
    ) -> PluginRun {
        let start = OffsetDateTime::now_utc();
        let mut run = PluginRun {
            name: step.name.clone(),
            status: "Failed",
            status_details: "Failed",
            response_code: -1,
            start: Some(start),
            end: None,
            stdout: String::new(),
            stderr: String::new(),
        };
        let dir = run_dir.join(&step.name);
        let script = dir.join("_script.sh");
        let prepared = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&script, &step.script))
            .and_then(|_| self.bin_dir(has_openssl));
        let bin = match prepared {
            Ok(b) => b,
            Err(e) => {
                run.stderr = format!("failed to prepare the script: {e}");
                run.end = Some(OffsetDateTime::now_utc());
                return run;
            }
        };
        let mut cmd = tokio::process::Command::new(&self.bash);
        cmd.arg(&script)
            .current_dir(root)
            .env_clear()
            .env("PATH", &bin)
            .env("HOME", root.join("root"))
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", root.join("tmp"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match cmd.spawn() {
            Err(e) => run.stderr = format!("failed to run commands: {e}"),
            Ok(child) => match tokio::time::timeout(step.timeout, child.wait_with_output()).await {
                Ok(Ok(out)) => {
                    run.stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                    run.stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    run.response_code = out.status.code().map_or(-1, i64::from);
                    if out.status.success() {
                        run.status = "Success";
                        run.status_details = "Success";
                    }
                }
                Ok(Err(e)) => run.stderr = format!("failed to run commands: {e}"),
                Err(_) => {
                    run.status = "TimedOut";
                    run.status_details = "ExecutionTimedOut";
                    run.stderr = "Execution timed out".into();
                }
            },
        }
        let _ = std::fs::write(dir.join("stdout"), &run.stdout);
        let _ = std::fs::write(dir.join("stderr"), &run.stderr);
        run.end = Some(OffsetDateTime::now_utc());
        run
    }
}

struct Api(Arc<Shared>);

impl JsonApi for Api {
    fn call(&self, op: &str, input: Value) -> Result<Value, ApiError> {
        match op {
            "SendCommand" => self.send_command(&input),
            "GetCommandInvocation" => self.get_command_invocation(&input),
            "ListCommandInvocations" => self.list_command_invocations(&input),
            "DescribeInstanceInformation" => self.describe_instance_information(&input),
            _ => Err(ApiError::new(
                "UnknownOperationException",
                format!("the emulator does not implement AmazonSSM.{op}"),
            )),
        }
    }
}

fn parse_parameters(v: &Value) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(obj) = v.get("Parameters") else {
        return Ok(out);
    };
    let obj = obj
        .as_object()
        .ok_or_else(|| ApiError::new("SerializationException", "Parameters is not a map"))?;
    for (k, vals) in obj {
        let list = vals
            .as_array()
            .ok_or_else(|| ApiError::new("SerializationException", "parameter value not a list"))?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::new("SerializationException", "value not a string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(k.clone(), list);
    }
    Ok(out)
}

fn check_command_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 36 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at 'commandId' failed to satisfy constraint: Member must have length equal to 36"
        )));
    }
    Ok(())
}

fn check_instance_id_format(id: &str, member: &str) -> Result<(), ApiError> {
    if !valid_instance_id(id) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{id}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: (^i-(\\w{{8}}|\\w{{17}})$)|(^mi-\\w{{17}}$)"
        )));
    }
    Ok(())
}

impl Api {
    fn send_command(&self, v: &Value) -> Result<Value, ApiError> {
        let doc_name = input::req_str(v, "DocumentName")?;
        let instance_ids = input::str_list(v, "InstanceIds");
        if v.get("Targets")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
        {
            return Err(ApiError::new(
                "InvalidParameters",
                "the emulator supports InstanceIds only, not Targets",
            ));
        }
        if instance_ids.is_empty() {
            return Err(ApiError::validation(
                "1 validation error detected: Value '[]' at 'instanceIds' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if instance_ids.len() > MAX_INSTANCE_IDS {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{instance_ids:?}' at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to {MAX_INSTANCE_IDS}"
            )));
        }
        for id in &instance_ids {
            check_instance_id_format(id, "instanceIds")?;
        }
        let timeout_seconds = input::opt_i64(v, "TimeoutSeconds").unwrap_or(3600);
        if !(30..=2_592_000).contains(&timeout_seconds) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{timeout_seconds}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000"
            )));
        }
        let comment = input::opt_str(v, "Comment").unwrap_or("").to_string();
        if comment.chars().count() > 100 {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100",
            ));
        }
        let params = parse_parameters(v)?;
        let mut seen = std::collections::BTreeSet::new();
        for id in &instance_ids {
            if !seen.insert(id) {
                return Err(ApiError::new(
                    "DuplicateInstanceId",
                    format!("Instance {id} appears more than once"),
                ));
            }
        }

        let shared = &self.0;
        let mut guard = lock(&shared.state);
        let st: &mut State = &mut guard;
        let doc = st.documents.get(doc_name).cloned().ok_or_else(|| {
            ApiError::new(
                "InvalidDocument",
                format!("Document with name {doc_name} does not exist."),
            )
        })?;
        let unknown: Vec<&String> = instance_ids
            .iter()
            .filter(|i| !st.hosts.contains_key(*i))
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::new(
                "InvalidInstanceId",
                format!("Instances {unknown:?} not in a valid state for account {ACCOUNT}"),
            ));
        }
        let values = doc
            .resolve_parameters(&params)
            .map_err(|m| ApiError::new("InvalidParameters", m))?;

        let now = OffsetDateTime::now_utc();
        let command_id = super::uuid_v4();
        let mut ready = Vec::new();
        for id in &instance_ids {
            let host = &st.hosts[id];
            let mut host_values = values.clone();
            for (k, val) in host_values.iter_mut() {
                if shared.is_path_parameter(k) && val.starts_with('/') {
                    *val = host
                        .root
                        .join(val.trim_start_matches('/'))
                        .display()
                        .to_string();
                }
            }
            let steps = doc
                .steps
                .iter()
                .map(|s| PreparedStep {
                    name: s.name.clone(),
                    script: documents::substitute(&s.script(), &host_values),
                    timeout: Duration::from_secs(
                        s.timeout_seconds
                            .as_deref()
                            .map(|t| documents::substitute(t, &host_values))
                            .and_then(|t| t.trim().parse::<u64>().ok())
                            .unwrap_or(3600),
                    ),
                })
                .collect();
            st.invocations.insert(
                (command_id.clone(), id.clone()),
                Invocation {
                    command_id: command_id.clone(),
                    instance_id: id.clone(),
                    document_name: doc.name.clone(),
                    comment: comment.clone(),
                    requested: now,
                    status: "Pending",
                    status_details: "Pending",
                    response_code: -1,
                    start: None,
                    end: None,
                    plugins: Vec::new(),
                    steps,
                    get_calls: 0,
                    queued: false,
                },
            );
            ready.push((id.clone(), host.spec.online));
        }
        st.commands.insert(
            command_id.clone(),
            CommandRec {
                id: command_id.clone(),
                document_name: doc.name.clone(),
                parameters: params.clone(),
                instance_ids: instance_ids.clone(),
                requested: now,
                timeout_seconds,
                status: "Pending",
                status_details: "Pending",
                started: false,
            },
        );
        st.order.push(command_id.clone());
        for (id, online) in ready {
            let key = (command_id.clone(), id);
            if online {
                let inv = st.invocations.get_mut(&key).expect("just inserted");
                shared.queue(shared, inv);
            } else {
                let me = shared.clone();
                shared.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(timeout_seconds as u64)).await;
                    me.delivery_timeout(&key);
                });
            }
        }
        drop(guard);
        Ok(json!({
            "Command": {
                "CommandId": command_id,
                "DocumentName": doc.name,
                "DocumentVersion": "$DEFAULT",
                "Comment": comment,
                "ExpiresAfter": epoch_seconds(now + time::Duration::seconds(timeout_seconds)),
                "Parameters": params,
                "InstanceIds": instance_ids,
                "Targets": [],
                "RequestedDateTime": epoch_seconds(now),
                "Status": "Pending",
                "StatusDetails": "Pending",
                "OutputS3Region": REGION,
                "OutputS3BucketName": "",
                "OutputS3KeyPrefix": "",
                "MaxConcurrency": "50",
                "MaxErrors": "0",
                "TargetCount": instance_ids.len(),
                "CompletedCount": 0,
                "ErrorCount": 0,
                "DeliveryTimedOutCount": 0,
                "ServiceRole": "",
                "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
                "TimeoutSeconds": timeout_seconds,
            }
        }))
    }

    fn get_command_invocation(&self, v: &Value) -> Result<Value, ApiError> {
        let command_id = input::req_str(v, "CommandId")?;
        let instance_id = input::req_str(v, "InstanceId")?;
        check_command_id(command_id)?;
        check_instance_id_format(instance_id, "instanceId")?;
        let plugin = input::opt_str(v, "PluginName");
        let mut st = lock(&self.0.state);
        let not_found = || ApiError::new("InvocationDoesNotExist", "");
        let inv = st
            .invocations
            .get_mut(&(command_id.to_string(), instance_id.to_string()))
            .ok_or_else(not_found)?;
        inv.get_calls += 1;
        if inv.get_calls <= self.0.hidden_calls {
            return Err(not_found());
        }
        let (status, details, code, start, end, stdout, stderr, pname) = match plugin {
            Some(p) => {
                let r = inv.plugin(p).ok_or_else(|| {
                    ApiError::new(
                        "InvalidPluginName",
                        format!("plugin {p} is not in document {}", inv.document_name),
                    )
                })?;
                (
                    r.status,
                    r.status_details,
                    r.response_code,
                    r.start,
                    r.end,
                    r.stdout,
                    r.stderr,
                    r.name,
                )
            }
            None => (
                inv.status,
                inv.status_details,
                inv.response_code,
                inv.start,
                inv.end,
                inv.stdout(),
                inv.stderr(),
                inv.steps
                    .first()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
            ),
        };
        let fmt = |t: Option<OffsetDateTime>| t.map(millis_time).unwrap_or_default();
        Ok(json!({
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": inv.document_name,
            "DocumentVersion": "$DEFAULT",
            "PluginName": pname,
            "ResponseCode": code,
            "ExecutionStartDateTime": fmt(start),
            "ExecutionElapsedTime": elapsed(start, end),
            "ExecutionEndDateTime": fmt(end),
            "Status": status,
            "StatusDetails": details,
            "StandardOutputContent": cut(&stdout, STDOUT_LIMIT),
            "StandardOutputUrl": "",
            "StandardErrorContent": cut(&stderr, STDERR_LIMIT),
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
        }))
    }

    fn list_command_invocations(&self, v: &Value) -> Result<Value, ApiError> {
        let command_id = input::opt_str(v, "CommandId");
        let instance_id = input::opt_str(v, "InstanceId");
        if let Some(c) = command_id {
            check_command_id(c)?;
        }
        if let Some(i) = instance_id {
            check_instance_id_format(i, "instanceId")?;
        }
        let details = input::opt_bool(v, "Details").unwrap_or(false);
        let max = input::opt_i64(v, "MaxResults").unwrap_or(50);
        if !(1..=50).contains(&max) {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50",
            ));
        }
        let mut filters: Vec<(String, String)> = Vec::new();
        if let Some(fs) = v.get("Filters").and_then(Value::as_array) {
            for f in fs {
                let k = input::req_str(f, "key")?;
                let val = input::req_str(f, "value")?;
                if !matches!(k, "Status" | "DocumentName") {
                    return Err(ApiError::new(
                        "InvalidFilterKey",
                        format!("the emulator filters on Status and DocumentName, not {k}"),
                    ));
                }
                filters.push((k.to_string(), val.to_string()));
            }
        }
        let st = lock(&self.0.state);
        if let Some(c) = command_id {
            if !st.commands.contains_key(c) {
                return Err(ApiError::new("InvalidCommandId", ""));
            }
        }
        // Newest first, as the service lists them.
        let mut all = Vec::new();
        for c in st.order.iter().rev() {
            if command_id.is_some_and(|x| x != c) {
                continue;
            }
            let rec = &st.commands[c];
            for i in &rec.instance_ids {
                if instance_id.is_some_and(|x| x != i) {
                    continue;
                }
                if let Some(inv) = st.invocations.get(&(c.clone(), i.clone())) {
                    let keep = filters.iter().all(|(k, val)| match k.as_str() {
                        "Status" => inv.status == val,
                        _ => inv.document_name == *val,
                    });
                    if keep {
                        all.push(inv);
                    }
                }
            }
        }
        let start = match input::opt_str(v, "NextToken") {
            Some(t) => decode_token(t)?,
            None => 0,
        };
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(max as usize)
            .map(|inv| invocation_json(inv, details))
            .collect();
        let mut out = json!({ "CommandInvocations": page });
        if start + (max as usize) < all.len() {
            out["NextToken"] = json!(encode_token(start + max as usize));
        }
        Ok(out)
    }

    fn describe_instance_information(&self, v: &Value) -> Result<Value, ApiError> {
        let max = input::opt_i64(v, "MaxResults").unwrap_or(50);
        if !(5..=50).contains(&max) {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50"
            )));
        }
        let mut filters: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(fs) = v
            .get("InstanceInformationFilterList")
            .and_then(Value::as_array)
        {
            for f in fs {
                filters.push((
                    input::req_str(f, "key")?.to_string(),
                    input::str_list(f, "valueSet"),
                ));
            }
        }
        if let Some(fs) = v.get("Filters").and_then(Value::as_array) {
            for f in fs {
                filters.push((
                    input::req_str(f, "Key")?.to_string(),
                    input::str_list(f, "Values"),
                ));
            }
        }
        for (k, vals) in &filters {
            if !matches!(
                k.as_str(),
                "InstanceIds" | "PingStatus" | "PlatformTypes" | "ResourceType"
            ) {
                return Err(ApiError::new(
                    "InvalidFilterKey",
                    format!("the emulator filters on InstanceIds, PingStatus, PlatformTypes, ResourceType, not {k}"),
                ));
            }
            if vals.is_empty() {
                return Err(ApiError::new(
                    "InvalidInstanceInformationFilterValue",
                    format!("filter {k} has no values"),
                ));
            }
            if k == "InstanceIds" {
                for id in vals {
                    check_instance_id_format(id, "valueSet")
                        .map_err(|e| ApiError::new("InvalidInstanceId", e.message))?;
                }
            }
        }
        let after = match input::opt_str(v, "NextToken") {
            Some(t) => Some(
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(t)
                        .map_err(|_| ApiError::new("InvalidNextToken", "bad token"))?,
                )
                .map_err(|_| ApiError::new("InvalidNextToken", "bad token"))?,
            ),
            None => None,
        };
        let st = lock(&self.0.state);
        // With an InstanceIds filter, look those up instead of scanning the fleet.
        let candidates: Vec<(&String, &Host)> =
            match filters.iter().find(|(k, _)| k == "InstanceIds") {
                Some((_, ids)) => {
                    let ids: std::collections::BTreeSet<&String> = ids.iter().collect();
                    ids.into_iter()
                        .filter_map(|i| st.hosts.get_key_value(i))
                        .collect()
                }
                None => st.hosts.iter().collect(),
            };
        let matching: Vec<(&String, &Host)> = candidates
            .into_iter()
            .filter(|(id, _)| after.as_ref().is_none_or(|a| id.as_str() > a.as_str()))
            .filter(|(id, h)| {
                filters.iter().all(|(k, vals)| {
                    let have = match k.as_str() {
                        "InstanceIds" => id.to_string(),
                        "PingStatus" => ping(h).to_string(),
                        "PlatformTypes" => "Linux".to_string(),
                        _ => resource_type(id).to_string(),
                    };
                    vals.contains(&have)
                })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .take(max as usize)
            .map(|(id, h)| instance_json(id, h))
            .collect();
        let mut out = json!({ "InstanceInformationList": page });
        if matching.len() > max as usize {
            let last = matching[max as usize - 1].0;
            out["NextToken"] = json!(base64::engine::general_purpose::STANDARD.encode(last));
        }
        Ok(out)
    }
}

fn encode_token(n: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("offset:{n}"))
}

fn decode_token(t: &str) -> Result<usize, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::new("InvalidNextToken", "The specified token is not valid."))
}

fn ping(h: &Host) -> &'static str {
    if h.spec.online {
        "Online"
    } else {
        "ConnectionLost"
    }
}

fn resource_type(id: &str) -> &'static str {
    if id.starts_with("mi-") {
        "ManagedInstance"
    } else {
        "EC2Instance"
    }
}

fn instance_json(id: &str, h: &Host) -> Value {
    let last_ping = if h.spec.online {
        OffsetDateTime::now_utc()
    } else {
        h.last_ping
    };
    let mut o = Map::new();
    o.insert("InstanceId".into(), json!(id));
    o.insert("PingStatus".into(), json!(ping(h)));
    o.insert("LastPingDateTime".into(), epoch_seconds(last_ping));
    o.insert("AgentVersion".into(), json!("3.3.1142.0"));
    o.insert("IsLatestVersion".into(), json!(false));
    o.insert("PlatformType".into(), json!("Linux"));
    o.insert("PlatformName".into(), json!("Ubuntu"));
    o.insert("PlatformVersion".into(), json!("22.04"));
    o.insert("ResourceType".into(), json!(resource_type(id)));
    o.insert("ComputerName".into(), json!(format!("{id}.local")));
    o.insert("IPAddress".into(), json!("192.0.2.10"));
    o.insert("AssociationStatus".into(), json!("Success"));
    o.insert("SourceId".into(), json!(id));
    if id.starts_with("mi-") {
        o.insert(
            "ActivationId".into(),
            json!("b2f84e6e-0d7b-4c67-9f00-000000000000"),
        );
        o.insert("IamRole".into(), json!("SSMServiceRole"));
        o.insert("RegistrationDate".into(), epoch_seconds(h.registered));
        o.insert("Name".into(), json!(id));
        o.insert("SourceType".into(), json!("AWS::SSM::ManagedInstance"));
    } else {
        o.insert("SourceType".into(), json!("AWS::EC2::Instance"));
    }
    Value::Object(o)
}

fn invocation_json(inv: &Invocation, details: bool) -> Value {
    let plugins: Vec<Value> = if details {
        inv.steps
            .iter()
            .filter_map(|s| inv.plugin(&s.name))
            .map(|r| {
                let mut output = r.stdout;
                if !r.stderr.is_empty() {
                    output.push_str("\n----------ERROR-------\n");
                    output.push_str(&r.stderr);
                }
                let mut p = json!({
                    "Name": r.name,
                    "Status": r.status,
                    "StatusDetails": r.status_details,
                    "ResponseCode": r.response_code,
                    "Output": cut(&output, PLUGIN_OUTPUT_LIMIT),
                    "StandardOutputUrl": "",
                    "StandardErrorUrl": "",
                    "OutputS3Region": REGION,
                    "OutputS3BucketName": "",
                    "OutputS3KeyPrefix": "",
                });
                if let Some(t) = r.start {
                    p["ResponseStartDateTime"] = epoch_seconds(t);
                }
                if let Some(t) = r.end {
                    p["ResponseFinishDateTime"] = epoch_seconds(t);
                }
                p
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "CommandId": inv.command_id,
        "InstanceId": inv.instance_id,
        "InstanceName": "",
        "Comment": inv.comment,
        "DocumentName": inv.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": epoch_seconds(inv.requested),
        "Status": inv.status,
        "StatusDetails": inv.status_details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": plugins,
        "ServiceRole": "",
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
    })
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

    #[test]
    fn cut_counts_chars() {
        assert_eq!(cut("héllo", 2), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn bin_dir_without_openssl() {
        let t = tempfile::tempdir().unwrap();
        build_bin_dir(&t.path().join("a"), false).unwrap();
        build_bin_dir(&t.path().join("b"), true).unwrap();
        assert!(t.path().join("a/bash").exists());
        assert!(!t.path().join("a/openssl").exists());
        if find_tool("openssl").is_some() {
            assert!(t.path().join("b/openssl").exists());
        }
    }
}
