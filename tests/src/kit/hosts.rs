//! `HostAgent`: hosts reached through Run Command, in memory.
//!
//! Why: the handlers' host logic (reachability, GenerateCsr output, DeployCert failures, output
//! not visible yet) is tested without the Run Command emulator's real shells. Each sent
//! command is recorded with its parameters; its invocation stays pending until the test
//! answers it with a chosen status, stdout and stderr (cut at Run Command's limits), or until
//! the host's automatic answer runs: a real key and CSR made with rcgen for GenerateCsr, a
//! success for DeployCert. Offline hosts keep their invocations pending and answer when they
//! come back online, as the agent does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use pki::KeyAlgorithm;
use rotation::error::AwsError;
use rotation::hosts::{CsrBatch, DeployBatch, Document, HostAgent, Invocation, Reachability};
use state::{HostId, HostPath, RotationId};

/// Run Command's cut of `StandardOutputContent`, in characters.
pub const STDOUT_LIMIT: usize = 24_000;
/// Run Command's cut of `StandardErrorContent`, in characters.
pub const STDERR_LIMIT: usize = 8_000;

/// How a host behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSetup {
    /// What `reachability` reports.
    pub reachability: Reachability,
    /// Answer GenerateCsr with a real key and CSR (see [`generate_csr`]).
    pub auto_csr: bool,
    /// Answer DeployCert with success.
    pub auto_deploy: bool,
}

impl Default for HostSetup {
    /// Online; every invocation waits for the test's answer.
    fn default() -> Self {
        HostSetup {
            reachability: Reachability::Online,
            auto_csr: false,
            auto_deploy: false,
        }
    }
}

impl HostSetup {
    /// Online, answering both documents by itself: a host that rotates without help.
    pub fn automatic() -> Self {
        HostSetup {
            auto_csr: true,
            auto_deploy: true,
            ..HostSetup::default()
        }
    }
}

/// What a command asked of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// GenerateCsr.
    Csr {
        /// Directory of the key.
        key_path: HostPath,
        /// Directory of the CSR.
        csr_path: HostPath,
        /// Key algorithm.
        key_algorithm: KeyAlgorithm,
    },
    /// DeployCert.
    Deploy {
        /// Directory of the certificate.
        cert_path: HostPath,
        /// Directory of the key.
        key_path: HostPath,
        /// Directory of the CA chain.
        cacert_path: HostPath,
        /// Directory of the signing helper.
        signing_helper_path: HostPath,
        /// The certificate, PEM.
        certificate_pem: String,
        /// The chain, PEM.
        chain_pem: String,
        /// The reload hook, if any.
        reload_hook: Option<HostPath>,
    },
}

/// A command's invocation on one host, and where it stands (a command sent to several hosts
/// has one per host, under the same ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommand {
    /// The command ID.
    pub id: String,
    /// The host.
    pub host: HostId,
    /// The rotation the command belongs to.
    pub rotation: RotationId,
    /// What was asked.
    pub request: Request,
    /// The invocation as `invocation` answers it.
    pub invocation: Invocation,
}

/// A key and CSR as GenerateCsr makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCsr {
    /// The CSR, PEM, subject `CN=<host>`, no extensions.
    pub csr_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// How often each operation was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCalls {
    /// `reachability` calls.
    pub reachability: u64,
    /// `request_csrs` calls (including refused ones), one per command whatever its hosts.
    pub request_csr: u64,
    /// `deploy` calls (including refused ones).
    pub deploy: u64,
    /// `invocation` calls.
    pub invocation: u64,
    /// `command_for` calls.
    pub command_for: u64,
}

/// The in-memory hosts. Clones share the same hosts and commands.
#[derive(Debug, Clone, Default)]
pub struct MemoryHosts {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    hosts: BTreeMap<HostId, HostState>,
    /// Invocations by (command ID, host): in the order sent, as IDs grow.
    commands: BTreeMap<(String, HostId), SentCommand>,
    next_command: u64,
    throttle_sends: u32,
    calls: HostCalls,
}

#[derive(Debug)]
struct HostState {
    setup: HostSetup,
    /// The key of the last CSR generated automatically.
    staged_key: Option<String>,
    /// IDs of the commands sent to this host and not finished, in order.
    pending: Vec<String>,
    /// ID of the last command sent to this host.
    last: Option<String>,
}

impl MemoryHosts {
    /// No hosts.
    pub fn new() -> Self {
        MemoryHosts::default()
    }

    /// Registers `host` online, answering nothing by itself.
    pub fn add_host(&self, host: &HostId) {
        self.add_host_with(host, HostSetup::default());
    }

    /// Registers `host` with `setup` (a registered host keeps its commands, with the new setup).
    pub fn add_host_with(&self, host: &HostId, setup: HostSetup) {
        let mut inner = self.lock();
        let state = inner
            .hosts
            .entry(host.clone())
            .or_insert_with(|| HostState {
                setup: setup.clone(),
                staged_key: None,
                pending: Vec::new(),
                last: None,
            });
        state.setup = setup;
        inner.run_automatic(host);
    }

    /// Changes what `host` reports; a host coming online answers its pending commands
    /// automatically if its setup says so. Returns false for an unregistered host.
    pub fn set_reachability(&self, host: &HostId, reachability: Reachability) -> bool {
        let mut inner = self.lock();
        let Some(h) = inner.hosts.get_mut(host) else {
            return false;
        };
        h.setup.reachability = reachability;
        inner.run_automatic(host);
        true
    }

    /// Takes `host` offline (`ConnectionLost`) or back online.
    pub fn set_online(&self, host: &HostId, online: bool) -> bool {
        let r = if online {
            Reachability::Online
        } else {
            Reachability::Offline("ConnectionLost".into())
        };
        self.set_reachability(host, r)
    }

    /// Answers command `command_id` on every host it was sent to (stdout and stderr cut as
    /// Run Command cuts them). Returns false if no such command was sent.
    pub fn answer(&self, command_id: &str, invocation: Invocation) -> bool {
        let hosts: Vec<HostId> = self
            .lock()
            .commands
            .values()
            .filter(|c| c.id == command_id)
            .map(|c| c.host.clone())
            .collect();
        hosts.iter().fold(!hosts.is_empty(), |ok, h| {
            self.answer_on(command_id, h, invocation.clone()) && ok
        })
    }

    /// Answers `host`'s invocation of command `command_id`. Returns false if the command was
    /// not sent to that host.
    pub fn answer_on(&self, command_id: &str, host: &HostId, invocation: Invocation) -> bool {
        let mut inner = self.lock();
        let Some(c) = inner
            .commands
            .get_mut(&(command_id.to_owned(), host.clone()))
        else {
            return false;
        };
        c.invocation = cut_outputs(invocation);
        if let Some(h) = inner.hosts.get_mut(host) {
            h.pending.retain(|id| id != command_id);
        }
        true
    }

    /// Answers `command_id` with `Success` and `stdout`.
    pub fn succeed(&self, command_id: &str, stdout: &str) -> bool {
        self.answer(command_id, finished(true, "Success", stdout.to_owned(), ""))
    }

    /// Answers `command_id` with a failed `status` (`Failed`, `TimedOut` …) and `stderr`.
    pub fn fail(&self, command_id: &str, status: &str, stderr: &str) -> bool {
        self.answer(command_id, finished(false, status, String::new(), stderr))
    }

    /// Makes the next `n` sends fail with a retryable `ThrottlingException`.
    pub fn throttle_next_sends(&self, n: u32) {
        self.lock().throttle_sends = n;
    }

    /// Every invocation of every command sent, in the order sent.
    pub fn commands(&self) -> Vec<SentCommand> {
        self.lock().commands.values().cloned().collect()
    }

    /// One command (its first host's invocation).
    pub fn command(&self, command_id: &str) -> Option<SentCommand> {
        let inner = self.lock();
        inner
            .commands
            .values()
            .find(|c| c.id == command_id)
            .cloned()
    }

    /// `host`'s invocation of command `command_id`.
    pub fn invocation_on(&self, command_id: &str, host: &HostId) -> Option<SentCommand> {
        let inner = self.lock();
        inner
            .commands
            .get(&(command_id.to_owned(), host.clone()))
            .cloned()
    }

    /// The last command sent to `host`.
    pub fn last_command(&self, host: &HostId) -> Option<SentCommand> {
        let inner = self.lock();
        let id = inner.hosts.get(host)?.last.as_ref()?;
        inner.commands.get(&(id.clone(), host.clone())).cloned()
    }

    /// Drops every finished command (a long simulation keeps only what is still pending);
    /// returns how many were dropped. Their invocations then answer `Pending`, as Run Command
    /// does once it has forgotten a command.
    pub fn forget_finished(&self) -> usize {
        let mut inner = self.lock();
        let before = inner.commands.len();
        inner
            .commands
            .retain(|_, c| c.invocation == Invocation::Pending);
        before - inner.commands.len()
    }

    /// Drops the invocations `keys` names (command ID, host), finished or not.
    pub fn forget(&self, keys: &[(String, HostId)]) {
        let mut inner = self.lock();
        for key in keys {
            inner.commands.remove(key);
        }
    }

    /// The private key of the last CSR `host` generated automatically, PEM.
    pub fn staged_key(&self, host: &HostId) -> Option<String> {
        self.lock().hosts.get(host)?.staged_key.clone()
    }

    /// How often each operation was called so far.
    pub fn calls(&self) -> HostCalls {
        self.lock().calls
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One command to each host with its rotation; refused whole, as SendCommand refuses it,
    /// when any host is not registered.
    fn send(
        &self,
        rotations: &[(HostId, RotationId)],
        request: impl Fn(usize) -> Request,
    ) -> Result<String, AwsError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.throttle_sends > 0 {
            inner.throttle_sends -= 1;
            return Err(ssm_error("ThrottlingException", "Rate exceeded", true));
        }
        if let Some((host, _)) = rotations.iter().find(|(h, _)| !inner.hosts.contains_key(h)) {
            return Err(ssm_error(
                "InvalidInstanceId",
                &format!("Instance {host} is not registered with Systems Manager"),
                false,
            ));
        }
        inner.next_command += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", inner.next_command);
        for (n, (host, rotation)) in rotations.iter().enumerate() {
            let state = inner.hosts.get_mut(host).expect("checked above");
            state.pending.push(id.clone());
            state.last = Some(id.clone());
            inner.commands.insert(
                (id.clone(), host.clone()),
                SentCommand {
                    id: id.clone(),
                    host: host.clone(),
                    rotation: rotation.clone(),
                    request: request(n),
                    invocation: Invocation::Pending,
                },
            );
        }
        for (host, _) in rotations {
            inner.run_automatic(host);
        }
        Ok(id)
    }
}

impl Inner {
    /// Answers `host`'s pending commands that its setup answers by itself, if it is online.
    fn run_automatic(&mut self, host: &HostId) {
        let Some(state) = self.hosts.get_mut(host) else {
            return;
        };
        if state.setup.reachability != Reachability::Online {
            return;
        }
        let commands = &mut self.commands;
        state.pending.retain(|id| {
            let Some(c) = commands.get_mut(&(id.clone(), host.clone())) else {
                return false;
            };
            match &c.request {
                Request::Csr { key_algorithm, .. } if state.setup.auto_csr => {
                    c.invocation = match generate_csr(host, *key_algorithm) {
                        Ok(g) => {
                            state.staged_key = Some(g.key_pem);
                            finished(true, "Success", csr_output(&c.rotation, &g.csr_pem), "")
                        }
                        Err(e) => finished(false, "Failed", String::new(), &format!("ERROR: {e}")),
                    };
                }
                Request::Deploy { .. } if state.setup.auto_deploy => {
                    let out = format!("ROTATION {}\ninstalled\n", c.rotation);
                    c.invocation = finished(true, "Success", out, "");
                }
                _ => {}
            }
            c.invocation == Invocation::Pending
        });
    }
}

impl HostAgent for MemoryHosts {
    /// Every asked host: its setup's reachability, or `Unknown` if not registered.
    async fn reachability(
        &self,
        hosts: &[HostId],
    ) -> Result<HashMap<HostId, Reachability>, AwsError> {
        let mut inner = self.lock();
        inner.calls.reachability += 1;
        Ok(hosts
            .iter()
            .map(|h| {
                let r = inner
                    .hosts
                    .get(h)
                    .map_or(Reachability::Unknown, |s| s.setup.reachability.clone());
                (h.clone(), r)
            })
            .collect())
    }

    async fn request_csrs(&self, batch: &CsrBatch<'_>) -> Result<String, AwsError> {
        self.lock().calls.request_csr += 1;
        let request = Request::Csr {
            key_path: batch.key_path.clone(),
            csr_path: batch.csr_path.clone(),
            key_algorithm: batch.key_algorithm,
        };
        self.send(batch.rotations, |_| request.clone())
    }

    /// One command to the batch's hosts; each host's invocation holds its own certificate.
    async fn deploy(&self, batch: &DeployBatch<'_>) -> Result<String, AwsError> {
        self.lock().calls.deploy += 1;
        let request = |n: usize| Request::Deploy {
            cert_path: batch.cert_path.clone(),
            key_path: batch.key_path.clone(),
            cacert_path: batch.cacert_path.clone(),
            signing_helper_path: batch.signing_helper_path.clone(),
            certificate_pem: batch.entries[n].certificate_pem.clone(),
            chain_pem: batch.chain_pem.to_owned(),
            reload_hook: batch.reload_hook.cloned(),
        };
        let rotations: Vec<(HostId, RotationId)> = batch
            .entries
            .iter()
            .map(|e| (e.host.clone(), e.rotation.clone()))
            .collect();
        self.send(&rotations, request)
    }

    /// The command's invocation; `Pending` for a command or host never sent to (Run Command
    /// answers `InvocationDoesNotExist`, which the adapter reads as not visible yet).
    async fn invocation(&self, command_id: &str, host: &HostId) -> Result<Invocation, AwsError> {
        let mut inner = self.lock();
        inner.calls.invocation += 1;
        Ok(inner
            .commands
            .get(&(command_id.to_owned(), host.clone()))
            .map_or(Invocation::Pending, |c| c.invocation.clone()))
    }

    /// The newest command of `document` sent to `host` for `rotation`.
    async fn command_for(
        &self,
        host: &HostId,
        document: Document,
        rotation: &RotationId,
    ) -> Result<Option<String>, AwsError> {
        let mut inner = self.lock();
        inner.calls.command_for += 1;
        Ok(inner
            .commands
            .values()
            .rev()
            .find(|c| {
                &c.host == host
                    && &c.rotation == rotation
                    && matches!(
                        (&c.request, document),
                        (Request::Csr { .. }, Document::GenerateCsr)
                            | (Request::Deploy { .. }, Document::DeployCert)
                    )
            })
            .map(|c| c.id.clone()))
    }
}

/// A fresh key of `algorithm` and a CSR for `CN=<host>`, as the GenerateCsr document makes.
pub fn generate_csr(host: &HostId, algorithm: KeyAlgorithm) -> Result<GeneratedCsr, rcgen::Error> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize};
    let key = match algorithm {
        KeyAlgorithm::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        KeyAlgorithm::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
        }
        KeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?
        }
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host.as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(GeneratedCsr {
        csr_pem: csr.pem()?,
        key_pem: key.serialize_pem(),
    })
}

/// GenerateCsr's stdout: the rotation echoed on the first line, then the CSR.
pub fn csr_output(rotation: &RotationId, csr_pem: &str) -> String {
    format!("ROTATION {rotation}\n{csr_pem}")
}

/// A finished invocation (outputs cut as Run Command cuts them): `Success` when `success`.
pub fn finished(success: bool, status: &str, stdout: String, stderr: &str) -> Invocation {
    cut_outputs(Invocation::Finished {
        success,
        status: status.to_owned(),
        stdout,
        stderr: stderr.to_owned(),
    })
}

fn cut_outputs(invocation: Invocation) -> Invocation {
    match invocation {
        Invocation::Finished {
            success,
            status,
            stdout,
            stderr,
        } => Invocation::Finished {
            success,
            status,
            stdout: cut(stdout, STDOUT_LIMIT),
            stderr: cut(stderr, STDERR_LIMIT),
        },
        pending => pending,
    }
}

fn cut(mut s: String, chars: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(chars) {
        s.truncate(i);
    }
    s
}

fn ssm_error(code: &str, message: &str, retryable: bool) -> AwsError {
    AwsError {
        service: "SSM",
        operation: "SendCommand",
        code: Some(code.to_owned()),
        message: message.to_owned(),
        retryable,
        source: None,
    }
}
