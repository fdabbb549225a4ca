//! Helpers of the host-script test binaries (`host_swap`, `host_guards`): one emulated host
//! running the template's real GenerateCsr and DeployCert documents, a test CA made with the
//! openssl command line, and what a user checks on a host afterwards.
//!
//! Why not the whole stack: these tests are about what the scripts do to a host's files, run
//! after run; the Lambda functions and the Private CA add nothing to that and cost seconds.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::emulators::ssm::{self, HostSpec, InvocationView, SsmConfig, SsmHandle};
use tests::stack::{DEPLOY_CERT_DOCUMENT, GENERATE_CSR_DOCUMENT};

/// Where the host keeps its files (absolute paths on the host, as the documents take them).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub cert: &'static str,
    pub key: &'static str,
    pub cacert: &'static str,
    pub csr: &'static str,
}

/// The template's defaults: the key in a directory of its own under the certificate's.
pub const SEPARATE: Layout = Layout {
    cert: "/etc/pki/rolesanywhere",
    key: "/etc/pki/rolesanywhere/private",
    cacert: "/etc/pki/rolesanywhere",
    csr: "/etc/pki/rolesanywhere",
};

/// Everything in one directory: the certificate and the key can change in one rename.
pub const SHARED: Layout = Layout {
    cert: "/etc/pki/certrotation",
    key: "/etc/pki/certrotation",
    cacert: "/etc/pki/certrotation",
    csr: "/etc/pki/certrotation",
};

/// The published paths of one host, in its sandbox.
#[derive(Clone, Debug)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
    pub cert_prev: PathBuf,
    pub key_prev: PathBuf,
    pub staged_key: PathBuf,
    pub csr: PathBuf,
}

/// `openssl` of the machine running the tests (not the host's): (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A CA made with openssl, signing CSRs into Roles Anywhere-like end-entity certificates.
pub struct TestCa {
    dir: tempfile::TempDir,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = (dir.path().join("ca.key"), dir.path().join("ca.pem"));
        let subject = format!("/CN={name}");
        let (ok, out) = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &subject,
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key),
            "-out",
            path(&pem),
        ]);
        assert!(ok, "test CA: {out}");
        std::fs::write(
            dir.path().join("ee.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        let pem = std::fs::read_to_string(pem).unwrap();
        Self { dir, pem }
    }

    /// A one-day certificate for `csr_pem`, with a fresh serial.
    pub fn sign(&self, csr_pem: &str) -> String {
        let d = self.dir.path();
        let csr = d.join(format!("{}.csr", rand::random::<u32>()));
        std::fs::write(&csr, csr_pem).unwrap();
        let cert = csr.with_extension("pem");
        let serial = format!("0x{:x}", rand::random::<u64>() >> 1);
        let (ok, out) = openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&d.join("ca.pem")),
            "-CAkey",
            path(&d.join("ca.key")),
            "-set_serial",
            &serial,
            "-days",
            "1",
            "-extfile",
            path(&d.join("ee.ext")),
            "-out",
            path(&cert),
        ]);
        assert!(ok, "signing: {out}");
        std::fs::read_to_string(cert).unwrap()
    }
}

/// One emulated host running the template's documents, and a CA for its certificates.
pub struct Bench {
    pub ssm: SsmHandle,
    client: aws_sdk_ssm::Client,
    pub host: String,
    pub root: PathBuf,
    pub layout: Layout,
    pub ca: TestCa,
}

impl Bench {
    pub async fn start(layout: Layout) -> Self {
        let documents = ssm::load_documents(
            tests::table::template_path(),
            &[
                ("GenerateCsrDocument", GENERATE_CSR_DOCUMENT),
                ("DeployCertDocument", DEPLOY_CERT_DOCUMENT),
            ],
        )
        .expect("the template's documents load");
        let ssm = ssm::start(SsmConfig {
            documents,
            ..SsmConfig::default()
        })
        .await
        .expect("ssm emulator starts");
        let client = aws_sdk_ssm::Client::new(&tests::aws::sdk_config(&ssm.url(), false));
        let host = ssm::managed_instance_id(0x5_ca1e);
        let root = ssm.register_host(&host, HostSpec::default());
        Self {
            ssm,
            client,
            host,
            root,
            layout,
            ca: TestCa::new("host-tests-ca"),
        }
    }

    /// A host path of the sandbox.
    pub fn on_host(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    pub fn files(&self) -> Files {
        let h = &self.host;
        let cert = self.on_host(self.layout.cert).join(format!("{h}.crt"));
        let key = self.on_host(self.layout.key).join(format!("{h}.key"));
        Files {
            cert_prev: cert.with_extension("crt.prev"),
            key_prev: key.with_extension("key.prev"),
            staged_key: key.with_extension("key.next"),
            chain: self
                .on_host(self.layout.cacert)
                .join("ca_chain_certificate.crt"),
            csr: self.on_host(self.layout.csr).join(format!("{h}.csr")),
            cert,
            key,
        }
    }

    /// Sends `document` to the host with `params` and waits for the run to end.
    pub async fn run(&self, document: &str, params: &[(&str, String)]) -> InvocationView {
        let mut b = self
            .client
            .send_command()
            .document_name(document)
            .instance_ids(&self.host);
        for (k, v) in params {
            b = b.parameters(*k, vec![v.clone()]);
        }
        let out = b.send().await.expect("SendCommand");
        let id = out.command().unwrap().command_id().unwrap().to_string();
        self.ssm.wait_idle().await;
        self.ssm
            .invocation(&id, &self.host)
            .expect("the invocation")
    }

    pub async fn generate_csr(&self) -> InvocationView {
        let l = self.layout;
        self.run(
            GENERATE_CSR_DOCUMENT,
            &[
                ("rotations", format!("{}=rot-1", self.host)),
                ("keyPath", l.key.into()),
                ("csrPath", l.csr.into()),
                ("keyAlgorithm", "EC_prime256v1".into()),
            ],
        )
        .await
    }

    pub async fn deploy(&self, cert_pem: &str, chain_pem: &str) -> InvocationView {
        self.deploy_with(cert_pem, chain_pem, &[]).await
    }

    /// DeployCert with extra parameters (e.g. `reloadHook`).
    pub async fn deploy_with(
        &self,
        cert_pem: &str,
        chain_pem: &str,
        extra: &[(&str, String)],
    ) -> InvocationView {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let l = self.layout;
        let mut params = vec![
            (
                "certificates",
                format!(
                    "{}=rot-1={}",
                    self.host,
                    rotation::hosts::pem_body(cert_pem)
                ),
            ),
            ("certPath", l.cert.into()),
            ("keyPath", l.key.into()),
            ("cacertPath", l.cacert.into()),
            ("signingHelperPath", "/usr/local/bin".into()),
            ("chain", b64(chain_pem)),
        ];
        params.extend(extra.iter().cloned());
        self.run(DEPLOY_CERT_DOCUMENT, &params).await
    }

    /// GenerateCsr, then a certificate for its CSR from the test CA.
    pub async fn new_certificate(&self) -> String {
        let gen = self.generate_csr().await;
        assert_succeeded(&gen, "GenerateCsr");
        self.ca.sign(&csr_of(&gen))
    }

    /// A whole rotation: a new key and CSR, a certificate, deployed. Returns the certificate.
    pub async fn rotate(&self) -> String {
        let cert = self.new_certificate().await;
        let deploy = self.deploy(&cert, &self.ca.pem).await;
        assert_succeeded(&deploy, "DeployCert");
        cert
    }

    /// The live files, byte for byte (certificate, key, chain).
    pub fn live(&self) -> [Vec<u8>; 3] {
        let f = self.files();
        [&f.cert, &f.key, &f.chain].map(|p| std::fs::read(p).unwrap())
    }
}

pub fn assert_succeeded(inv: &InvocationView, what: &str) {
    assert_eq!(
        inv.status, "Success",
        "{what}: exit {}\nstdout: {}\nstderr: {}",
        inv.response_code, inv.stdout, inv.stderr
    );
}

/// The CSR GenerateCsr printed.
pub fn csr_of(inv: &InvocationView) -> String {
    let start = inv
        .stdout
        .find("-----BEGIN CERTIFICATE REQUEST-----")
        .unwrap_or_else(|| panic!("no CSR in {}", inv.stdout));
    inv.stdout[start..].to_string()
}

/// The public key of a certificate file, or of a private key file, as openssl prints it.
pub fn cert_public_key(cert: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", path(cert), "-noout", "-pubkey"]);
    assert!(ok, "{}: {out}", cert.display());
    out
}

pub fn key_public_key(key: &Path) -> String {
    let (ok, out) = openssl(&["pkey", "-in", path(key), "-pubout"]);
    assert!(ok, "{}: {out}", key.display());
    out
}

/// What a user's tools need: the certificate carries the key's public key, the key is 0400,
/// and the certificate verifies against the chain file.
pub fn assert_matching_pair(cert: &Path, key: &Path, chain: &Path, context: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        cert_public_key(cert),
        key_public_key(key),
        "{context}: {} and {} are not a pair",
        cert.display(),
        key.display()
    );
    let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400, "{context}: key mode");
    let (ok, out) = openssl(&["verify", "-CAfile", path(chain), path(cert)]);
    assert!(
        ok,
        "{context}: the chain does not verify the certificate: {out}"
    );
}

/// The PEM of a certificate file, to compare with what was deployed.
pub fn read_pem(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim_end()
        .to_string()
}
