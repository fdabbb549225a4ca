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
            ("rotations", format!("{host}=rot-42")),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("csrPath", "/etc/pki/certrotation".into()),
            ("keyAlgorithm", "EC_prime256v1".into()),
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
            (
                "certificates",
                format!(
                    "{host}=rot-42={}",
                    rotation::hosts::pem_body(got.certificate().unwrap())
                ),
            ),
            ("certPath", "/etc/pki/certrotation".into()),
            ("keyPath", "/etc/pki/certrotation".into()),
            ("cacertPath", "/etc/pki/certrotation".into()),
            ("signingHelperPath", "/usr/local/bin".into()),
            ("chain", b64(got.certificate_chain().unwrap())),
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

/// One GenerateCsr command of the template to several hosts: each host finds its own rotation by
/// the node ID the agent gives it, makes a key and a CSR for itself alone, and a host the
/// command does not name refuses; the production adapter finds the command again by the
/// rotation its parameters name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_generate_csr_command_serves_several_hosts_each_with_its_own_rotation() {
    use rotation::hosts::{Document, HostAgent as _};
    use tests::stack::{DEPLOY_CERT_DOCUMENT as DEPLOY_DOC, GENERATE_CSR_DOCUMENT as GEN_DOC};
    let template = tests::table::template_path();
    let docs = ssm::load_documents(
        &template,
        &[
            ("GenerateCsrDocument", GEN_DOC),
            ("DeployCertDocument", DEPLOY_DOC),
        ],
    )
    .expect("the template's documents load");
    let bus = EventBus::new();
    let s = ssm::start(SsmConfig {
        documents: docs,
        bus: bus.clone(),
        ..SsmConfig::default()
    })
    .await
    .unwrap();
    let hosts: Vec<String> = (0..3)
        .map(|n| ssm::managed_instance_id(0x2030 + n))
        .collect();
    let roots: Vec<_> = hosts
        .iter()
        .map(|h| s.register_host(h, HostSpec::default()))
        .collect();
    let sc = ssm_client(&s);
    // The third host is sent the command but not named in it.
    let rotations = format!("{}=rot-a {}=rot-b", hosts[0], hosts[1]);
    let sent = sc
        .send_command()
        .document_name(GEN_DOC)
        .set_instance_ids(Some(hosts.clone()))
        .parameters("rotations", vec![rotations])
        .parameters("keyPath", vec!["/etc/pki/certrotation".into()])
        .parameters("csrPath", vec!["/etc/pki/certrotation".into()])
        .parameters("keyAlgorithm", vec!["EC_prime256v1".into()])
        .send()
        .await
        .unwrap();
    let id = command_id(&sent);
    s.wait_idle().await;
    for (n, rotation) in [(0, "rot-a"), (1, "rot-b")] {
        let inv = visible_invocation(&sc, &id, &hosts[n]).await;
        assert_eq!(
            inv.status(),
            Some(&CommandInvocationStatus::Success),
            "{:?}",
            inv.standard_error_content()
        );
        let out = inv.standard_output_content().unwrap();
        let csr = out
            .strip_prefix(&format!("ROTATION {rotation}\n"))
            .expect("its own rotation");
        // A CSR for this host and no other, its key staged under this host's name only.
        pki::check_csr(csr, &hosts[n], &pki::CsrPolicy::default()).expect("a CSR for this host");
        let dir = roots[n].join("etc/pki/certrotation");
        assert!(dir.join(format!("{}.key.next", hosts[n])).exists());
        let other = &hosts[1 - n];
        assert!(!dir.join(format!("{other}.key.next")).exists());
    }
    let stranger = visible_invocation(&sc, &id, &hosts[2]).await;
    assert_eq!(stranger.status(), Some(&CommandInvocationStatus::Failed));
    assert_eq!(
        rotation::hosts::host_error(stranger.standard_error_content().unwrap()),
        format!("ERROR: rotations does not name this node ({})", hosts[2])
    );
    assert!(!roots[2]
        .join(format!("etc/pki/certrotation/{}.key.next", hosts[2]))
        .exists());
    let events = bus.drain();
    let finals: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["detail-type"] == "EC2 Command Invocation Status-change Notification")
        .filter_map(|e| {
            Some((
                e["detail"]["instance-id"].as_str()?,
                e["detail"]["status"].as_str()?,
            ))
        })
        .filter(|(_, st)| *st != "InProgress")
        .collect();
    assert_eq!(finals.len(), 3, "one status event per host: {finals:?}");

    // The reconciler's question, through the production adapter: which command did this
    // rotation send? Found by the parameters, for the right host and rotation only.
    let agent = adapters::hosts::SsmHosts::new(sc.clone(), GEN_DOC, DEPLOY_DOC);
    let host_b = state::HostId::parse(&hosts[1]).unwrap();
    let found = |h: &state::HostId, r: &str| {
        let (agent, h, r) = (agent.clone(), h.clone(), state::RotationId(r.into()));
        async move {
            agent
                .command_for(&h, Document::GenerateCsr, &r)
                .await
                .unwrap()
        }
    };
    assert_eq!(found(&host_b, "rot-b").await, Some(id.clone()));
    assert_eq!(
        found(&host_b, "rot-a").await,
        None,
        "another host's rotation"
    );
    let host_a = state::HostId::parse(&hosts[0]).unwrap();
    assert_eq!(found(&host_a, "rot-a").await, Some(id));
}
