//! The project's real Run Command documents, taken from the CloudFormation template, run end to
//! end on one emulated host with the Run Command and Private CA emulators together:
//! GenerateCsr → IssueCertificate → DeployCert.
//!
//! Why: the emulators are only useful if the template's own scripts run on them unchanged and a
//! certificate issued by the one deploys through the other, with no private key on the wire.

use std::os::unix::fs::PermissionsExt as _;

use aws_sdk_acmpca::types::SigningAlgorithm;
use aws_sdk_ssm::types::CommandInvocationStatus;
use base64::Engine as _;
use tests::emulators::pca::{self, PcaConfig};
use tests::emulators::ssm::{self, HostSpec, SsmConfig};
use tests::emulators::{Capture, EventBus};

mod emulator_common;

use emulator_common::{command_id, days, issue, pca_client, ssm_client, visible_invocation};

/// The project's real documents, taken from the CloudFormation template, run end to end on one
/// emulated host: GenerateCsr → IssueCertificate → DeployCert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_documents_rotate_a_host() {
    let template = tests::table::template_path();
    if !template.exists() {
        eprintln!(
            "NOTE: {} absent; skipping the real-document run",
            template.display()
        );
        return;
    }
    use tests::stack::{DEPLOY_CERT_DOCUMENT as DEPLOY_DOC, GENERATE_CSR_DOCUMENT as GEN_DOC};
    let docs = ssm::load_documents(
        &template,
        &[
            ("GenerateCsrDocument", GEN_DOC),
            ("DeployCertDocument", DEPLOY_DOC),
        ],
    )
    .expect("the template's documents load");
    let bus = EventBus::new();
    let capture = Capture::new();
    let s = ssm::start(SsmConfig {
        documents: docs,
        bus: bus.clone(),
        capture: capture.clone(),
        ..SsmConfig::default()
    })
    .await
    .unwrap();
    let p = pca::start(PcaConfig {
        bus: bus.clone(),
        capture: capture.clone(),
        ..PcaConfig::default()
    })
    .await
    .unwrap();

    // The scripts are byte for byte the template's.
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    for (logical, name) in [
        ("GenerateCsrDocument", GEN_DOC),
        ("DeployCertDocument", DEPLOY_DOC),
    ] {
        let raw = yaml["Resources"][logical]["Properties"]["Content"]["mainSteps"][0]["inputs"]
            ["runCommand"][0]
            .as_str()
            .unwrap();
        assert_eq!(s.document_script(name), raw);
    }

    let host = ssm::managed_instance_id(0x2026);
    let root = s.register_host(&host, HostSpec::default());
    let sc = ssm_client(&s);
    let pc = pca_client(&p);
    let run = |doc: &'static str, params: Vec<(&'static str, String)>| {
        let sc = sc.clone();
        let host = host.clone();
        let s = &s;
        async move {
            let mut b = sc.send_command().document_name(doc).instance_ids(&host);
            for (k, v) in params {
                b = b.parameters(k, vec![v]);
            }
            let id = command_id(&b.send().await.unwrap());
            s.wait_idle().await;
            visible_invocation(&sc, &id, &host).await
        }
    };

    let gen = run(
        GEN_DOC,
        vec![
            ("hostId", host.clone()),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("csrPath", "/etc/pki/certrotation".into()),
            ("keyAlgorithm", "EC_prime256v1".into()),
            ("rotationId", "rot-42".into()),
        ],
    )
    .await;
    assert_eq!(
        gen.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        gen.standard_error_content()
    );
    let csr = gen
        .standard_output_content()
        .unwrap()
        .strip_prefix("ROTATION rot-42\n")
        .expect("rotation line")
        .to_string();

    let ca = p.ca_arn();
    let arn = issue(
        &pc,
        &ca,
        csr.as_bytes(),
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("rot-42"),
    )
    .await
    .unwrap();
    let get = || {
        pc.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let _ = get().await;
    let got = get().await.unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

    let deploy = run(
        DEPLOY_DOC,
        vec![
            ("hostId", host.clone()),
            ("certPath", "/etc/pki/certrotation".into()),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("cacertPath", "/etc/pki/certrotation".into()),
            ("signingHelperPath", "/usr/local/bin".into()),
            ("certificate", b64(got.certificate().unwrap())),
            ("chain", b64(got.certificate_chain().unwrap())),
            ("rotationId", "rot-42".into()),
        ],
    )
    .await;
    assert_eq!(
        deploy.status(),
        Some(&CommandInvocationStatus::Success),
        "{:?}",
        deploy.standard_error_content()
    );
    let serial = p.issued()[0].serial.to_uppercase();
    assert!(
        deploy
            .standard_output_content()
            .unwrap()
            .contains(&format!("DEPLOYED serial={serial}")),
        "{:?}",
        deploy.standard_output_content()
    );
    let dir = root.join("etc/pki/certrotation");
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("{host}.crt")))
            .unwrap()
            .trim_end(),
        got.certificate().unwrap().trim_end()
    );
    let key_mode = std::fs::metadata(dir.join(format!("{host}.key")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o400);
    assert!(dir.join("ca_chain_certificate.crt").exists());

    assert!(
        capture.find("PRIVATE KEY").is_empty(),
        "a key crossed the wire"
    );
    let kinds: Vec<String> = bus
        .drain()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["source"].as_str().unwrap(),
                e["detail"]["status"]
                    .as_str()
                    .or(e["detail"]["result"].as_str())
                    .unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "aws.ssm:Success").count(),
        4,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"aws.acm-pca:success".to_string()));
}
