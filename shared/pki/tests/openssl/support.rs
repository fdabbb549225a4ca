//! Test fixtures made with the real `openssl` CLI in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

/// The host (managed instance id) the tests issue for.
pub const HOST: &str = "mi-0123456789abcdef0";

/// Extensions of a good end-entity certificate (what our Private CA template sets).
pub const EE_EXT: &str =
    "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth";

/// A scratch directory where `openssl` runs.
pub struct Lab {
    dir: tempfile::TempDir,
}

/// Minimal `openssl req` configuration so the host's openssl.cnf cannot add anything.
const REQ_CNF: &str = "[ req ]\ndistinguished_name = req_dn\n[ req_dn ]\n";

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        lab.write("req.cnf", REQ_CNF);
        lab
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).expect("write fixture");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read fixture")
    }

    pub fn read_string(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).expect("utf-8 fixture")
    }

    /// Runs `openssl ARGS` in the lab directory; panics with stderr on failure. Returns stdout.
    pub fn openssl(&self, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a shell pipeline in the lab directory; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.dir())
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "sh {script:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Generates a private key: `rsa:BITS`, `ec:CURVE` or `ed25519`.
    pub fn key(&self, name: &str, spec: &str) {
        let (alg, opt) = match spec.split_once(':') {
            Some(("rsa", bits)) => ("RSA", format!("rsa_keygen_bits:{bits}")),
            Some(("ec", curve)) => ("EC", format!("ec_paramgen_curve:{curve}")),
            None if spec == "ed25519" => ("ED25519", String::new()),
            _ => panic!("bad key spec {spec}"),
        };
        let mut args = vec!["genpkey", "-algorithm", alg, "-out", name];
        if !opt.is_empty() {
            args.extend(["-pkeyopt", opt.as_str()]);
        }
        self.openssl(&args);
    }

    /// Makes a CSR `out` for key `key` with subject `subj` and extra `req` arguments.
    pub fn csr(&self, out: &str, key: &str, subj: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "req", "-new", "-config", "req.cnf", "-key", key, "-subj", subj, "-out", out,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
        self.read_string(out)
    }

    /// SHA-256 of the DER SPKI of a CSR, computed by openssl and sha256sum.
    pub fn csr_spki_sha256(&self, csr: &str) -> String {
        let out = self.sh(&format!(
            "openssl req -in {csr} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
        ));
        out.split_whitespace().next().unwrap().to_owned()
    }

    /// SHA-256 of the DER SPKI of a private key.
    pub fn key_spki_sha256(&self, key: &str) -> String {
        let out = self.sh(&format!(
            "openssl pkey -in {key} -pubout -outform DER | sha256sum"
        ));
        out.split_whitespace().next().unwrap().to_owned()
    }

    /// A self-signed CA: key `{name}.key` (EC P-256), certificate `{name}.pem`.
    pub fn ca(&self, name: &str, subj: &str) -> String {
        self.key(&format!("{name}.key"), "ec:P-256");
        self.write(
            &format!("{name}.ext"),
            "[ req ]\ndistinguished_name = req_dn\n[ req_dn ]\n[ v3_ca ]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n",
        );
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-config",
            &format!("{name}.ext"),
            "-key",
            &format!("{name}.key"),
            "-subj",
            subj,
            "-days",
            "30",
            "-sha256",
            "-extensions",
            "v3_ca",
            "-out",
            &format!("{name}.pem"),
        ]);
        self.read_string(&format!("{name}.pem"))
    }

    /// Signs `csr` with CA `ca` using extension section text `ext` (an `[ ee ]` body), serial
    /// `serial` (hex) and `extra` arguments; writes `out` and returns its PEM.
    pub fn sign(
        &self,
        out: &str,
        csr: &str,
        ca: &str,
        ext: &str,
        serial: &str,
        extra: &[&str],
    ) -> String {
        let ext_file = format!("{out}.ext");
        self.write(&ext_file, format!("[ ee ]\n{ext}\n"));
        let ca_pem = format!("{ca}.pem");
        let ca_key = format!("{ca}.key");
        let serial = format!("0x{serial}");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "7",
            "-extfile",
            &ext_file,
            "-extensions",
            "ee",
            "-out",
            out,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
        self.read_string(out)
    }
}

/// An `openssl ca` setup (`{name}.cnf`, database in `{name}.d/`) with its own CA key and certificate (subject `subj`).
pub struct Ca<'a> {
    lab: &'a Lab,
    name: String,
}

impl<'a> Ca<'a> {
    pub fn new(lab: &'a Lab, name: &str, subj: &str, with_crlnumber: bool) -> Ca<'a> {
        lab.ca(name, subj);
        std::fs::create_dir_all(lab.path(&format!("{name}.d"))).unwrap();
        lab.write(&format!("{name}.d/index.txt"), "");
        // High bit set, so DER serials carry a leading 00.
        lab.write(&format!("{name}.d/serial"), "8A01\n");
        lab.write(&format!("{name}.d/crlnumber"), "1000\n");
        let crlnumber = if with_crlnumber {
            format!("crlnumber = {name}.d/crlnumber\n")
        } else {
            String::new()
        };
        lab.write(
            &format!("{name}.cnf"),
            format!(
                "[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = {name}.d/index.txt\nnew_certs_dir = {name}.d\n\
                 certificate = {name}.pem\nprivate_key = {name}.key\nserial = {name}.d/serial\n{crlnumber}\
                 default_md = sha256\ndefault_days = 7\ndefault_crl_days = 7\npolicy = p\nunique_subject = no\n\
                 [ p ]\ncommonName = supplied\n[ ee ]\n{EE_EXT}\n[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n"
            ),
        );
        Ca {
            lab,
            name: name.to_owned(),
        }
    }

    fn cnf(&self) -> String {
        format!("{}.cnf", self.name)
    }

    pub fn ca_pem(&self) -> String {
        self.lab.read_string(&format!("{}.pem", self.name))
    }

    /// Issues a certificate for a fresh key; returns the certificate file name.
    pub fn issue(&self, cn: &str) -> String {
        let key = format!("{}-{cn}.key", self.name);
        let csr = format!("{}-{cn}.csr", self.name);
        let cert = format!("{}-{cn}.pem", self.name);
        self.lab.key(&key, "ec:P-256");
        self.lab.csr(&csr, &key, &format!("/CN={cn}"), &[]);
        self.sign_csr(&csr, &cert, &[]);
        cert
    }

    /// Signs the CSR file `csr` with `openssl ca` (extensions [`EE_EXT`]) and `extra` arguments
    /// (e.g. `-startdate`/`-enddate`); writes `out` and returns its PEM.
    pub fn sign_csr(&self, csr: &str, out: &str, extra: &[&str]) -> String {
        let cnf = self.cnf();
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            &cnf,
            "-extensions",
            "ee",
            "-notext",
        ];
        args.extend_from_slice(extra);
        args.extend(["-in", csr, "-out", out]);
        self.lab.openssl(&args);
        self.lab.read_string(out)
    }

    pub fn revoke(&self, cert: &str) {
        self.lab.openssl(&[
            "ca",
            "-config",
            &self.cnf(),
            "-revoke",
            cert,
            "-crl_reason",
            "keyCompromise",
        ]);
    }

    /// Generates a CRL; returns (PEM text, DER bytes).
    pub fn gencrl(&self, out: &str) -> (String, Vec<u8>) {
        self.lab.openssl(&[
            "ca",
            "-config",
            &self.cnf(),
            "-gencrl",
            "-crlexts",
            "crl_ext",
            "-out",
            out,
        ]);
        let der_file = format!("{out}.der");
        self.lab
            .openssl(&["crl", "-in", out, "-outform", "DER", "-out", &der_file]);
        (self.lab.read_string(out), self.lab.read(&der_file))
    }
}

/// Decodes the first PEM block of any label.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

/// Encodes DER as PEM with the given label.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The `openssl x509 -serial` output for a certificate file.
pub fn openssl_serial(lab: &Lab, cert: &str) -> String {
    lab.openssl(&["x509", "-in", cert, "-noout", "-serial"])
        .trim()
        .to_owned()
}
