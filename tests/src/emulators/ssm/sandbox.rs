//! The emulated hosts and the runner: one sandbox directory per host standing for its `/`, a
//! `PATH` of symlinks (without `openssl` for a host that has none), and each document step run
//! with the real `bash` in the sandbox, with a cleared environment and the step's timeout.
//!
//! Why apart: this is the part that touches the machine (files, processes); the API only
//! records invocations and queues them here.
//!
//! A host may also have programs of its own in front of the shared ones, in two directories of
//! its own ahead of them on its `PATH`: a test's stand-ins ([`SsmHandle::put_host_tool`], e.g. an
//! `mv` that kills the script on its Nth call, a reboot in the middle of a swap), then the host's
//! OpenSSL flavour ([`SsmHandle::emulate_openssl_1_1`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{valid_instance_id, Host, Invocation, PluginRun, PreparedStep, Shared, SsmHandle};
use crate::emulators::lock;

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

pub(super) fn find_tool(name: &str) -> Option<PathBuf> {
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

impl SsmHandle {
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
}

/// A host's own program directories, in `PATH` order: a test's stand-ins, then its OpenSSL
/// flavour. Outside the sandbox root: they stand for programs installed on the host, not files
/// the documents manage.
fn host_tool_dirs(base: &Path, instance_id: &str) -> [PathBuf; 2] {
    let own = base.join("bin/hosts").join(instance_id);
    [own.join("tools"), own.join("openssl")]
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A new file renamed into place, not a rewrite: a script may be running the old one.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path)
}

impl SsmHandle {
    /// Puts a program named `name` first on the host's `PATH`, for the runs that start from now
    /// on: `body` is bash, run with the arguments the script gave, and `"$next"` is the program
    /// of that name it stands in front of (the host's OpenSSL flavour, or the shared one). A
    /// second call for the same name replaces the first.
    ///
    /// # Panics
    /// If the host is not registered, or on I/O errors.
    pub fn put_host_tool(&self, instance_id: &str, name: &str, body: &str) -> PathBuf {
        let has_openssl = self.host_has_openssl(instance_id);
        let [tools, flavour] = host_tool_dirs(&self.shared.base, instance_id);
        let bin = self.shared.bin_dir(has_openssl).expect("build bin dir");
        let path = tools.join(name);
        let text = format!(
            r#"#!{bash}
# A test's stand-in for `{name}` on this emulated host; "$next" is the program it stands in
# front of.
next=$(PATH='{flavour}:{bin}' command -v {name}) || {{ echo '{name}: not found' >&2; exit 127; }}
{body}
"#,
            bash = self.shared.bash.display(),
            flavour = flavour.display(),
            bin = bin.display(),
        );
        write_executable(&path, &text).expect("write host tool");
        path
    }

    /// Takes every program [`put_host_tool`](Self::put_host_tool) put on the host away.
    ///
    /// # Panics
    /// On I/O errors other than "already gone".
    pub fn clear_host_tools(&self, instance_id: &str) {
        let [tools, _] = host_tool_dirs(&self.shared.base, instance_id);
        match std::fs::remove_dir_all(tools) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("clear host tools: {e}"),
            _ => {}
        }
    }

    /// Gives the host OpenSSL 1.1's exit statuses (`on`), or the real openssl's (`!on`).
    /// OpenSSL before 3.0 exits 0 from `openssl req -verify` when the verification *fails*
    /// (it only prints `verify failure`); `openssl verify` is treated the same way, since the
    /// scripts must not trust its status either. The wrapper keeps the real openssl's output
    /// and forces exit 0 for those two commands; every other command runs unchanged.
    ///
    /// # Panics
    /// If the host is not registered or has no openssl, or on I/O errors.
    pub fn emulate_openssl_1_1(&self, instance_id: &str, on: bool) {
        assert!(
            self.host_has_openssl(instance_id),
            "{instance_id} has no openssl to give a flavour to"
        );
        let [_, flavour] = host_tool_dirs(&self.shared.base, instance_id);
        if !on {
            let _ = std::fs::remove_file(flavour.join("openssl"));
            return;
        }
        let bin = self.shared.bin_dir(true).expect("build bin dir");
        let text = format!(
            r#"#!{bash}
# OpenSSL 1.1's exit statuses over the real openssl's output: exit 0 from `req -verify` and
# `verify` whatever the verdict.
real='{real}'
case "${{1-}}" in
  verify) "$real" "$@"; exit 0 ;;
  req) for a in "$@"; do if [ "$a" = -verify ]; then "$real" "$@"; exit 0; fi; done ;;
esac
exec "$real" "$@"
"#,
            bash = self.shared.bash.display(),
            real = bin.join("openssl").display(),
        );
        write_executable(&flavour.join("openssl"), &text).expect("write the openssl 1.1 wrapper");
    }

    /// Sets one environment variable for every script run from now on, on every host
    /// (`AWS_ENDPOINT_URL_ROLESANYWHERE`, `AWS_CA_BUNDLE` …); an empty `value` removes it.
    pub fn set_host_env(&self, name: &str, value: &str) {
        let mut env = lock(&self.shared.host_env);
        if value.is_empty() {
            env.remove(name);
        } else {
            env.insert(name.to_string(), value.to_string());
        }
    }

    fn host_has_openssl(&self, instance_id: &str) -> bool {
        lock(&self.shared.state)
            .hosts
            .get(instance_id)
            .unwrap_or_else(|| panic!("host {instance_id} not registered"))
            .spec
            .has_openssl
    }
}

impl Shared {
    pub(super) fn is_path_parameter(&self, name: &str) -> bool {
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

    pub(super) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Queues the runner of one invocation (host online).
    pub(super) fn queue(&self, me: &Arc<Shared>, inv: &mut Invocation) {
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
                let r = self
                    .run_step(step, &key, &root, has_openssl, &run_dir)
                    .await;
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
        (command_id, instance_id): &(String, String),
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
        // The host's own programs first, where it has any.
        let mut dirs: Vec<PathBuf> = host_tool_dirs(&self.base, instance_id)
            .into_iter()
            .filter(|d| d.is_dir())
            .collect();
        dirs.push(bin);
        let path = std::env::join_paths(dirs).unwrap_or_default();
        let mut cmd = tokio::process::Command::new(&self.bash);
        cmd.arg(&script)
            .current_dir(root)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", root.join("root"))
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", root.join("tmp"))
            // What SSM Agent tells every command it runs: the node it runs on, the command.
            .env("AWS_SSM_INSTANCE_ID", instance_id)
            .env("SSM_COMMAND_ID", command_id)
            .envs(lock(&self.host_env).clone())
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

#[cfg(test)]
mod tests {
    use super::*;

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
