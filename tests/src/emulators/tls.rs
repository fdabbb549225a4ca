//! A TLS front for an emulator: HTTPS on `127.0.0.1:<port>`, each connection's plaintext relayed
//! to the emulator's HTTP port.
//!
//! Why: IAM Roles Anywhere's CreateSession is HTTPS-only, and the third-party client the emulated
//! hosts use (PyPI `iam-rolesanywhere-session`) builds `https://<endpoint>/sessions` itself, so
//! the emulator must speak TLS with a certificate the client can be told to trust. Relaying to
//! the plain port keeps one request path (the same routing, capture and fault hook) for the
//! SDK's HTTP calls and the hosts' HTTPS ones.
//!
//! At start a fresh CA (rcgen, ECDSA P-256) signs a server certificate for `127.0.0.1`,
//! `localhost` and `::1`; the CA's PEM goes to a file ([`TlsFront::ca_bundle`]) a client passes
//! as its CA bundle (`AWS_CA_BUNDLE`, `verify=`). Nothing is trusted system-wide.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Why the TLS front could not start.
#[derive(Debug, thiserror::Error)]
pub enum TlsFrontError {
    /// Making the CA or the server certificate failed.
    #[error("cannot make the TLS front's certificates")]
    Certificate(#[source] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS")]
    Config(#[source] rustls::Error),
    /// Binding the port or writing the CA bundle failed.
    #[error("TLS front I/O")]
    Io(#[source] std::io::Error),
}

/// A running TLS front. Dropping it stops accepting, closes its connections and removes the CA
/// bundle's directory.
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    ca_bundle: PathBuf,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The file holding the CA certificate (PEM) that signed the server certificate.
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// The CA and server certificate (PEM), and the server key (PKCS#8 DER).
struct Credentials {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn make_credentials() -> Result<Credentials, rcgen::Error> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Roles Anywhere emulator TLS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf.signed_by(&key, &issuer)?;
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server_chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

/// Starts a TLS front on a free loopback port that relays every connection to `backend`.
pub async fn start(label: &'static str, backend: SocketAddr) -> Result<TlsFront, TlsFrontError> {
    let creds = make_credentials().map_err(TlsFrontError::Certificate)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsFrontError::Config)?
        .with_no_client_auth()
        .with_single_cert(creds.server_chain, creds.server_key)
        .map_err(TlsFrontError::Config)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let dir = tempfile::Builder::new()
        .prefix("emulator-tls-")
        .tempdir()
        .map_err(TlsFrontError::Io)?;
    let ca_bundle = dir.path().join("ca.pem");
    std::fs::write(&ca_bundle, &creds.ca_pem).map_err(TlsFrontError::Io)?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(TlsFrontError::Io)?;
    let addr = listener.local_addr().map_err(TlsFrontError::Io)?;
    let task = tokio::spawn(async move {
        // Connection tasks live in this set: aborting the accept loop aborts them all.
        let mut conns = JoinSet::new();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, emulator = label, "TLS front accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            while conns.try_join_next().is_some() {}
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let mut tls = match acceptor.accept(stream).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(error = %e, emulator = label, "TLS handshake failed");
                        return;
                    }
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok(TlsFront {
        addr,
        ca_bundle,
        ca_pem: creds.ca_pem,
        task,
        _dir: dir,
    })
}
