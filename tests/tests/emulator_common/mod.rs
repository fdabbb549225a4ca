//! Helpers shared by the emulator test binaries (`emulator_ssm`, `emulator_ssm_hosts`,
//! `emulator_pca`, `emulator_pca_model`, `emulator_pca_crl`, `emulator_rolesanywhere`,
//! `emulators_rotation`): fixtures, sample events, the SDK clients and the requests several of
//! them make.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use base64::Engine as _;
use serde_json::Value;
use tests::emulators::pca;
use tests::emulators::ssm::{self, SsmConfig};
use tests::emulators::{Capture, EventBus};

/// A file under `tests/fixtures`.
pub fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

/// A sample EventBridge event from `tests/fixtures/events` (written from the shapes AWS documents).
pub fn sample_event(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("events/{name}"))).unwrap())
        .unwrap()
}

/// The member names of a JSON object (empty for anything else).
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The DER inside a PEM block.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem base64")
}

/// The fixed envelope values of an event equal the sample's, and its `time` has second
/// precision as EventBridge writes it.
pub fn assert_envelope_values(e: &Value, sample: &Value) {
    for k in ["version", "detail-type", "source", "account", "region"] {
        assert_eq!(e[k], sample[k], "{k} of {e}");
    }
    let time_re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(time_re.is_match(e["time"].as_str().unwrap()), "{e}");
}

/// The Run Command document of the fixture template that makes a key and a CSR.
pub const GEN: &str = "fixture-GenerateCsr";
/// The fixture document that prints a chosen amount, sleeps and exits with a chosen code.
pub const NOISY: &str = "fixture-Noisy";

/// An SSM client on the emulator (static test credentials, retries off).
pub fn ssm_client(h: &ssm::SsmHandle) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&tests::aws::sdk_config(&h.url(), false))
}

/// An ACM-PCA client on the emulator (static test credentials, retries off).
pub fn pca_client(h: &pca::PcaHandle) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::new(&tests::aws::sdk_config(&h.url(), false))
}

/// The command ID SendCommand answered.
pub fn command_id(out: &aws_sdk_ssm::operation::send_command::SendCommandOutput) -> String {
    out.command().unwrap().command_id().unwrap().to_string()
}

/// GetCommandInvocation once the invocation is visible: the emulator answers
/// `InvocationDoesNotExist` to the first call, as the service does right after SendCommand, so
/// that call is made and its answer thrown away.
pub async fn visible_invocation(
    c: &aws_sdk_ssm::Client,
    command_id: &str,
    instance_id: &str,
) -> aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput {
    let _ = c
        .get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .send()
        .await;
    c.get_command_invocation()
        .command_id(command_id)
        .instance_id(instance_id)
        .send()
        .await
        .unwrap()
}

/// A Run Command emulator with the fixture template's documents ([`GEN`], [`NOISY`]).
pub async fn fixture_ssm(bus: EventBus, capture: Capture) -> ssm::SsmHandle {
    let docs = ssm::load_documents(
        fixture("emulator-template.yaml"),
        &[("FixtureGenerateCsr", GEN), ("FixtureNoisy", NOISY)],
    )
    .expect("fixture template loads");
    ssm::start(SsmConfig {
        documents: docs,
        bus,
        capture,
        ..SsmConfig::default()
    })
    .await
    .expect("ssm emulator starts")
}

/// An openssl-made key and CSR in `dir`; returns the CSR PEM.
pub fn openssl_csr(dir: &Path, cn: &str, rsa: bool) -> Vec<u8> {
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-new", "-nodes", "-sha256", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr);
    if rsa {
        cmd.args(["-newkey", "rsa:2048"]);
    } else {
        cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(csr).expect("csr written")
}

/// Same envelope and detail members as the sample, account/region/source/detail-type equal.
pub fn assert_event_shape(e: &Value, sample: &Value) {
    assert_eq!(keys(e), keys(sample), "envelope of {e}");
    assert_eq!(keys(&e["detail"]), keys(&sample["detail"]), "detail of {e}");
    assert_envelope_values(e, sample);
    assert!(e["resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    let id_re =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
            .unwrap();
    assert!(id_re.is_match(e["id"].as_str().unwrap()));
}

/// IssueCertificate with the client-auth template; returns the certificate ARN.
pub async fn issue(
    c: &aws_sdk_acmpca::Client,
    ca: &str,
    csr: &[u8],
    alg: SigningAlgorithm,
    validity: Validity,
    token: Option<&str>,
) -> Result<
    String,
    aws_sdk_acmpca::error::SdkError<
        aws_sdk_acmpca::operation::issue_certificate::IssueCertificateError,
    >,
> {
    c.issue_certificate()
        .certificate_authority_arn(ca)
        .csr(Blob::new(csr.to_vec()))
        .signing_algorithm(alg)
        .template_arn(pca::CLIENT_AUTH_TEMPLATE)
        .validity(validity)
        .set_idempotency_token(token.map(str::to_string))
        .send()
        .await
        .map(|o| o.certificate_arn().unwrap().to_string())
}

/// A validity of `n` days.
pub fn days(n: i64) -> Validity {
    Validity::builder()
        .value(n)
        .r#type(ValidityPeriodType::Days)
        .build()
        .unwrap()
}

/// `openssl verify -purpose sslclient` of `cert` against `chain` (both PEM, written to `dir`).
pub fn openssl_verify(dir: &Path, chain: &str, cert: &str) -> std::process::Output {
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(dir.join("chain.pem"))
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap()
}
