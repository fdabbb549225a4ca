//! CreateSession in the Roles Anywhere emulator, driven by the emulated hosts' `aws_signing_helper`
//! stand-in (a third-party signer, PyPI `iam-rolesanywhere-session`) over HTTPS, and by a small
//! signer of our own only for requests that library cannot make (a header left unsigned, a stale
//! date, a body changed after signing).
//!
//! Why: a certificate is only worth what it buys, AWS credentials. These tests pin what the
//! emulator accepts (RSA and EC keys, durationSeconds honoured) and what it refuses, each with
//! the error CreateSession documents (403 `AccessDeniedException`): a signature by another key,
//! an expired certificate, one from another CA, a revoked serial, a disabled profile.
//!
//! Needs the project's virtualenv (`make venv`; `MOTO_PYTHON` names its Python).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use tests::emulators::rolesanywhere::{self, RolesAnywhereConfig, RolesAnywhereHandle};
use tests::emulators::signing_helper::{self, CredentialProcess, SigningHelperError};
use time::{Duration, OffsetDateTime};

/// A CA made for one test (rcgen), standing for the Private CA.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn test_ca(name: &str) -> TestCa {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

#[derive(Clone, Copy, Debug)]
enum Key {
    Rsa2048,
    EcP256,
    EcP384,
}

fn key(k: Key) -> KeyPair {
    match k {
        Key::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
        }
        Key::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        Key::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
    }
}

/// A host's pair on disk: `<dir>/<name>.crt` and `.key`.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    serial: u64,
}

fn host_pair(
    dir: &Path,
    name: &str,
    ca: &TestCa,
    k: Key,
    validity: (OffsetDateTime, OffsetDateTime),
) -> Pair {
    let kp = key(k);
    let serial: u64 = rand::random::<u64>() >> 1;
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = validity.0;
    p.not_after = validity.1;
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(&kp, &ca.issuer).unwrap();
    let pair = Pair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        serial,
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, kp.serialize_pem()).unwrap();
    pair
}

/// The certificate's serial as x509-parser prints it (colon-separated hex).
fn serial_of(cert: &Path) -> String {
    let pem = std::fs::read(cert).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().raw_serial_as_string()
}

fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(3))
}

/// The emulator with the template's resources over `ca`, the helper installed in a host dir.
struct Setup {
    ra: RolesAnywhereHandle,
    res: rolesanywhere::TemplateResources,
    ca: TestCa,
    helper: PathBuf,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let ra = rolesanywhere::start(RolesAnywhereConfig::default())
        .await
        .unwrap();
    let ca = test_ca("Test Private CA");
    let res = ra
        .create_template_resources("certrotation", &ca.pem)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let python = tests::moto::moto_python();
    assert!(
        python.exists(),
        "the project's Python not found at {} (run `make venv`, or set MOTO_PYTHON)",
        python.display()
    );
    let helper = signing_helper::install(dir.path(), "/usr/local/bin", &python).unwrap();
    Setup {
        ra,
        res,
        ca,
        helper,
        dir,
    }
}

impl Setup {
    fn args(&self, pair: &Pair) -> CredentialProcess {
        CredentialProcess {
            certificate: pair.cert.clone(),
            private_key: pair.key.clone(),
            trust_anchor_arn: self.res.trust_anchor_arn.clone(),
            profile_arn: self.res.profile_arn.clone(),
            role_arn: self.res.role_arn.clone(),
            ..CredentialProcess::default()
        }
    }

    async fn run(
        &self,
        args: &CredentialProcess,
    ) -> Result<signing_helper::ProcessCredentials, SigningHelperError> {
        signing_helper::credential_process(&self.helper, &signing_helper::host_env(&self.ra), args)
            .await
    }

    /// Runs the helper, expects a refusal, and returns the emulator's error code and message
    /// for that call (and checks the helper reported the status).
    async fn refused(&self, args: &CredentialProcess) -> (String, String) {
        let before = self.ra.sessions().len();
        match self.run(args).await {
            Err(SigningHelperError::Refused { status, stderr }) => {
                assert_eq!(status, 1, "{stderr}");
                assert!(stderr.contains("HTTP 403"), "{stderr}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let sessions = self.ra.sessions();
        assert_eq!(sessions.len(), before + 1, "one CreateSession call");
        sessions
            .last()
            .unwrap()
            .outcome
            .clone()
            .expect_err("the emulator refused")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_accepts_rsa_and_ec_keys_through_the_third_party_signer() {
    let s = setup().await;
    for (i, k) in [Key::Rsa2048, Key::EcP256, Key::EcP384]
        .into_iter()
        .enumerate()
    {
        let pair = host_pair(s.dir.path(), &format!("mi-{i:017x}"), &s.ca, k, valid_now());
        let creds = s
            .run(&s.args(&pair))
            .await
            .unwrap_or_else(|e| panic!("{k:?}: {e}"));
        assert_eq!(creds.version, 1);
        assert!(creds.access_key_id.starts_with("ASIA"), "{creds:?}");
        assert_eq!(creds.access_key_id.len(), 20);
        assert_eq!(creds.secret_access_key.len(), 40);
        assert!(!creds.session_token.is_empty());
        let attempt = s.ra.sessions().pop().unwrap();
        let expiration = attempt.outcome.clone().expect("accepted");
        assert_eq!(
            creds.expiration,
            tests::emulators::event_time(expiration),
            "{k:?}"
        );
        // The template's profile and role both cap at 3600 s; the helper asks for 3600.
        assert_eq!(expiration - attempt.at, Duration::seconds(3600), "{k:?}");
        assert_eq!(attempt.serial, serial_of(&pair.cert), "{k:?}");
        assert_eq!(attempt.role_arn, s.res.role_arn);
    }
    // durationSeconds is honoured.
    let pair = host_pair(s.dir.path(), "short", &s.ca, Key::EcP256, valid_now());
    let mut args = s.args(&pair);
    args.session_duration = Some(900);
    s.run(&args).await.unwrap();
    let attempt = s.ra.sessions().pop().unwrap();
    assert_eq!(
        attempt.outcome.unwrap() - attempt.at,
        Duration::seconds(900)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_a_signature_made_by_another_key() {
    let s = setup().await;
    let pair = host_pair(s.dir.path(), "host", &s.ca, Key::EcP256, valid_now());
    let other = host_pair(s.dir.path(), "other", &s.ca, Key::EcP256, valid_now());
    let mut args = s.args(&pair);
    args.private_key = other.key.clone();
    let (code, message) = s.refused(&args).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.starts_with("Invalid signature"), "{message}");
    // The same with RSA.
    let pair = host_pair(s.dir.path(), "rsa", &s.ca, Key::Rsa2048, valid_now());
    let other = host_pair(s.dir.path(), "rsa-other", &s.ca, Key::Rsa2048, valid_now());
    let mut args = s.args(&pair);
    args.private_key = other.key.clone();
    let (code, message) = s.refused(&args).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.starts_with("Invalid signature"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_an_expired_certificate() {
    let s = setup().await;
    let now = OffsetDateTime::now_utc();
    let pair = host_pair(
        s.dir.path(),
        "expired",
        &s.ca,
        Key::EcP256,
        (now - Duration::days(3), now - Duration::minutes(1)),
    );
    let (code, message) = s.refused(&s.args(&pair)).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.starts_with("Untrusted signing certificate") && message.contains("not valid now"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_a_certificate_from_another_ca() {
    let s = setup().await;
    let stranger = test_ca("Test Private CA");
    // Same subject name as the anchor's CA, different key: only the signature tells them apart.
    let pair = host_pair(s.dir.path(), "host", &stranger, Key::EcP256, valid_now());
    let (code, message) = s.refused(&s.args(&pair)).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.starts_with("Untrusted signing certificate") && message.contains("no chain"),
        "{message}"
    );
}

fn crl_der(ca: &TestCa, serials: &[u64]) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + Duration::days(1),
        crl_number: SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now - Duration::minutes(1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .der()
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_a_serial_on_the_anchors_enabled_crl() {
    let s = setup().await;
    let revoked = host_pair(s.dir.path(), "revoked", &s.ca, Key::EcP256, valid_now());
    let kept = host_pair(s.dir.path(), "kept", &s.ca, Key::Rsa2048, valid_now());
    s.run(&s.args(&revoked))
        .await
        .expect("accepted before the CRL");

    let client = aws_sdk_rolesanywhere::Client::new(&tests::aws::sdk_config(&s.ra.url(), false));
    let imported = client
        .import_crl()
        .name("certrotation-crl")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(crl_der(
            &s.ca,
            &[revoked.serial],
        )))
        .enabled(false)
        .trust_anchor_arn(&s.res.trust_anchor_arn)
        .send()
        .await
        .unwrap();
    let crl_id = imported.crl().unwrap().crl_id().unwrap().to_owned();
    // A disabled CRL revokes nothing.
    s.run(&s.args(&revoked)).await.expect("the CRL is disabled");

    client.enable_crl().crl_id(&crl_id).send().await.unwrap();
    let (code, message) = s.refused(&s.args(&revoked)).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.starts_with("Certificate revoked"), "{message}");
    // Another serial of the same CA still gets a session.
    s.run(&s.args(&kept)).await.expect("not on the CRL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_a_disabled_profile_and_a_role_it_does_not_list() {
    let s = setup().await;
    let pair = host_pair(s.dir.path(), "host", &s.ca, Key::EcP384, valid_now());
    s.ra.set_profile_enabled(&s.res.profile_arn, false);
    let (code, message) = s.refused(&s.args(&pair)).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.contains("is disabled"), "{message}");

    s.ra.set_profile_enabled(&s.res.profile_arn, true);
    let other_role = s.ra.create_role("not-in-the-profile", 3600);
    let mut args = s.args(&pair);
    args.role_arn = other_role;
    let (code, message) = s.refused(&args).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.contains("is not among the roles"), "{message}");

    s.ra.set_trust_anchor_enabled(&s.res.trust_anchor_arn, false);
    let (code, message) = s.refused(&s.args(&pair)).await;
    assert_eq!(code, "AccessDeniedException");
    assert!(message.contains("Trust anchor"), "{message}");

    s.ra.set_trust_anchor_enabled(&s.res.trust_anchor_arn, true);
    s.run(&s.args(&pair)).await.expect("all enabled again");
}

/// What our own signer changes from a correct request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Twist {
    None,
    CertificateNotSigned,
    StaleDate,
    BodyChangedAfterSigning,
    CredentialNamesAnotherSerial,
}

/// Sends one CreateSession over plain HTTP, signed here (ECDSA P-256, SigV4 canonical form
/// written out independently of the emulator's), and returns the status and body.
async fn send_signed(s: &Setup, twist: Twist) -> (u16, serde_json::Value) {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use base64::Engine as _;
    use sha2::Digest as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let serial: u64 = 0x1234_5678_9abc;
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "mi-0000000000000abcd");
    p.serial_number = Some(SerialNumber::from(serial));
    (p.not_before, p.not_after) = valid_now();
    let cert = p.signed_by(&kp, &s.ca.issuer).unwrap();
    let x509 = base64::engine::general_purpose::STANDARD.encode(cert.der());

    let mut when = OffsetDateTime::now_utc();
    if twist == Twist::StaleDate {
        when -= Duration::minutes(10);
    }
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        when.year(),
        u8::from(when.month()),
        when.day(),
        when.hour(),
        when.minute(),
        when.second()
    );
    let body = serde_json::json!({
        "durationSeconds": 900,
        "profileArn": s.res.profile_arn,
        "roleArn": s.res.role_arn,
        "trustAnchorArn": s.res.trust_anchor_arn,
    })
    .to_string();
    let host = s.ra.url().trim_start_matches("http://").to_string();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("host", host.clone()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-x509", x509.clone()),
    ];
    if twist == Twist::CertificateNotSigned {
        headers.retain(|(k, _)| *k != "x-amz-x509");
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical = format!(
        "POST\n/sessions\n\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    );
    let scope = format!("{}/us-east-1/rolesanywhere/aws4_request", &amz_date[..8]);
    let sts = format!(
        "AWS4-X509-ECDSA-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
    let signer =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &kp.serialize_der()).unwrap();
    let sig = signer
        .sign(&aws_lc_rs::rand::SystemRandom::new(), sts.as_bytes())
        .unwrap();
    let credential_serial = if twist == Twist::CredentialNamesAnotherSerial {
        serial + 1
    } else {
        serial
    };
    let auth = format!(
        "AWS4-X509-ECDSA-SHA256 Credential={credential_serial}/{scope}, SignedHeaders={}, Signature={}",
        signed.join(";"),
        hex::encode(sig.as_ref())
    );
    let body = if twist == Twist::BodyChangedAfterSigning {
        body.replace("900", "3600")
    } else {
        body
    };
    let request = format!(
        "POST /sessions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nx-amz-date: {amz_date}\r\nx-amz-x509: {x509}\r\nauthorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let status: u16 = answer[9..12].parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_session_refuses_what_the_third_party_signer_cannot_send() {
    let s = setup().await;
    // Our signer first makes a request the emulator accepts: the refusals below are its twists.
    let (status, body) = send_signed(&s, Twist::None).await;
    assert_eq!(status, 201, "{body}");
    let creds = &body["credentialSet"][0]["credentials"];
    assert!(creds["accessKeyId"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(body["credentialSet"][0]["roleArn"], s.res.role_arn.as_str());
    for (twist, expected) in [
        (
            Twist::CertificateNotSigned,
            "x-amz-x509 is not among the signed headers",
        ),
        (Twist::StaleDate, "more than 5 minutes"),
        (
            Twist::BodyChangedAfterSigning,
            "does not verify with the presented certificate",
        ),
        (
            Twist::CredentialNamesAnotherSerial,
            "the credential names serial",
        ),
    ] {
        let (status, body) = send_signed(&s, twist).await;
        assert_eq!(status, 403, "{twist:?}: {body}");
        assert_eq!(body["__type"], "AccessDeniedException", "{twist:?}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Invalid signature") && message.contains(expected),
            "{twist:?}: {message}"
        );
    }
}
