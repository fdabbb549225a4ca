//! The Private CA emulator's CRLs, driven through the real AWS SDK clients (retries off).
//!
//! Why: the CRL processor's end-to-end tests (security invariant 4 in docs/design.md) trust that the Private CA
//! emulator writes CRLs the way the service does (a DER CRL signed by the CA in the S3 bucket,
//! announced by S3's "Object Created" event and the "CRL Generation" event), and that the CRLs a
//! forger or a replay would write look as they would. These tests pin that behaviour with moto's
//! real S3, `openssl crl` and the production `pki::check_crl`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{RevocationReason, SigningAlgorithm, Validity, ValidityPeriodType};
use serde_json::Value;
use tests::emulators::pca::{self, CrlTarget, PcaConfig, PcaHandle, CLIENT_AUTH_TEMPLATE};
use tests::emulators::{Capture, EventBus};
use tests::moto::MotoServer;
use x509_parser::prelude::FromDer as _;

mod emulator_common;

use emulator_common::{assert_envelope_values, keys, pem_der, sample_event};

const BUCKET: &str = "example-stack-crl-111122223333";

/// The shape S3 gives EventBridge for the CRL object.
const S3_SAMPLE: &str = "s3-object-created-crl.json";
/// The "ACM Private CA CRL Generation" sample.
const PCA_SAMPLE: &str = "pca-crl-generation-success.json";

/// Same members at every object level as the sample; fixed envelope values equal.
fn assert_same_shape(e: &Value, sample: &Value, path: &str) {
    match (e, sample) {
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(keys(e), keys(sample), "members of {path} in {e}");
            for (k, v) in b {
                assert_same_shape(&a[k], v, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "length of {path}");
            for (x, y) in a.iter().zip(b) {
                assert_same_shape(x, y, path);
            }
        }
        _ => assert_eq!(
            std::mem::discriminant(e),
            std::mem::discriminant(sample),
            "JSON type of {path}: {e} vs {sample}"
        ),
    }
}

fn assert_envelope(e: &Value, sample: &Value) {
    assert_same_shape(e, sample, "event");
    assert_envelope_values(e, sample);
}

fn acmpca(url: &str) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::new(&tests::aws::sdk_config(url, false))
}

fn s3(url: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(tests::aws::s3_config(url, false).build())
}

async fn pca_with_crl(moto: &MotoServer, bus: &EventBus) -> PcaHandle {
    pca::start(PcaConfig {
        bus: bus.clone(),
        capture: Capture::new(),
        in_progress_calls: 0,
        crl: Some(CrlTarget::new(moto.url(), BUCKET)),
        ..PcaConfig::default()
    })
    .await
    .unwrap()
}

/// Issues a client-auth certificate for `cn` through the SDK; returns its PEM.
async fn issue(c: &aws_sdk_acmpca::Client, ca_arn: &str, cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let arn = c
        .issue_certificate()
        .certificate_authority_arn(ca_arn)
        .csr(Blob::new(csr.into_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn(CLIENT_AUTH_TEMPLATE)
        .validity(
            Validity::builder()
                .r#type(ValidityPeriodType::Days)
                .value(7)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_owned();
    c.get_certificate()
        .certificate_authority_arn(ca_arn)
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap()
        .to_owned()
}

async fn revoke(
    c: &aws_sdk_acmpca::Client,
    ca_arn: &str,
    cert_pem: &str,
    reason: RevocationReason,
) {
    let facts = pki::parse_certificate_pem(cert_pem).unwrap();
    c.revoke_certificate()
        .certificate_authority_arn(ca_arn)
        .certificate_serial(&facts.serial)
        .revocation_reason(reason)
        .send()
        .await
        .unwrap();
}

/// `openssl crl -inform DER -CAfile ca.pem -noout [extra]` on `der`: (success, stdout+stderr).
fn openssl_crl(dir: &Path, ca_pem: &str, der: &[u8], extra: &[&str]) -> (bool, String) {
    let ca = dir.join("ca.pem");
    let crl = dir.join("crl.der");
    std::fs::write(&ca, format!("{ca_pem}\n")).unwrap();
    std::fs::write(&crl, der).unwrap();
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&crl)
        .arg("-CAfile")
        .arg(&ca)
        .arg("-noout")
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("verify OK"), text)
}

/// Revocation reason code of each entry, by serial (x509-parser's serial format).
fn reasons(der: &[u8]) -> Vec<(String, Option<u8>)> {
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| {
            (
                r.raw_serial_as_string(),
                r.reason_code().map(|(_, code)| code.0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_publishes_signed_crls_to_s3_with_events() {
    let moto = MotoServer::start().unwrap();
    let bus = EventBus::new();
    let h = pca_with_crl(&moto, &bus).await;
    let c = acmpca(&h.url());
    let ca = h.ca_arn();
    let ca_pem = h.ca_certificate_pem();
    let dir = tempfile::tempdir().unwrap();

    let a = issue(&c, &ca, "mi-0123456789abcdef0").await;
    let b = issue(&c, &ca, "mi-0123456789abcdef1").await;
    let _kept = issue(&c, &ca, "mi-0123456789abcdef2").await;
    revoke(&c, &ca, &a, RevocationReason::KeyCompromise).await;
    revoke(&c, &ca, &b, RevocationReason::Superseded).await;
    let recorded = h.revoked();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].reason, "KEY_COMPROMISE");
    assert!(recorded[0].revoked_at <= recorded[1].revoked_at);
    bus.drain();

    // DescribeCertificateAuthority shows where CRLs go.
    let d = c
        .describe_certificate_authority()
        .certificate_authority_arn(&ca)
        .send()
        .await
        .unwrap();
    let crl_cfg = d
        .certificate_authority()
        .unwrap()
        .revocation_configuration()
        .unwrap()
        .crl_configuration()
        .unwrap();
    assert!(crl_cfg.enabled());
    assert_eq!(crl_cfg.s3_bucket_name(), Some(BUCKET));

    let p1 = h.publish_crl().await.unwrap();
    assert_eq!(p1.number, 1);
    assert_eq!(p1.bucket, BUCKET);
    assert_eq!(p1.key, format!("crl/{}.crl", h.ca_id()));
    assert_eq!(Some(p1.key.clone()), h.crl_key());
    assert!(ca.ends_with(&h.ca_id()));

    // The object in moto is the CRL, byte for byte.
    let s3c = s3(&moto.url());
    let got = s3c
        .get_object()
        .bucket(BUCKET)
        .key(&p1.key)
        .send()
        .await
        .unwrap();
    let etag = got.e_tag().unwrap().trim_matches('"').to_owned();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), p1.der.as_slice());
    assert_eq!(etag, p1.etag);

    // Two events, shaped like the samples.
    let events = bus.drain();
    assert_eq!(events.len(), 2, "{events:#?}");
    let s3_event = events
        .iter()
        .find(|e| e["source"] == "aws.s3")
        .expect("S3 event");
    assert_envelope(s3_event, &sample_event(S3_SAMPLE));
    assert_eq!(s3_event, &p1.s3_event);
    assert_eq!(s3_event["detail-type"], "Object Created");
    assert_eq!(s3_event["resources"][0], format!("arn:aws:s3:::{BUCKET}"));
    assert_eq!(s3_event["detail"]["bucket"]["name"], BUCKET);
    assert_eq!(s3_event["detail"]["object"]["key"], p1.key.as_str());
    assert_eq!(s3_event["detail"]["object"]["size"], p1.der.len());
    assert_eq!(s3_event["detail"]["object"]["etag"], etag.as_str());
    assert_eq!(s3_event["detail"]["requester"], "acm-pca.amazonaws.com");
    assert_eq!(s3_event["detail"]["reason"], "PutObject");
    let pca_event = events
        .iter()
        .find(|e| e["source"] == "aws.acm-pca")
        .expect("CRL generation event");
    assert_envelope(pca_event, &sample_event(PCA_SAMPLE));
    assert_eq!(pca_event["resources"][0], ca.as_str());
    assert_eq!(pca_event["detail"]["result"], "success");

    // openssl verifies it with the CA certificate and reads its number.
    let (ok, text) = openssl_crl(dir.path(), &ca_pem, &p1.der, &[]);
    assert!(ok, "{text}");
    let (_, text) = openssl_crl(dir.path(), &ca_pem, &p1.der, &["-crlnumber"]);
    assert!(text.contains("crlNumber=0x01"), "{text}");

    // The production check accepts it; serials read as the certificate parser prints them.
    let facts = pki::check_crl(&p1.der, &ca_pem).unwrap();
    assert_eq!(facts.crl_number, pki::CrlNumber::from(1u128));
    let want: BTreeSet<String> = [&a, &b]
        .iter()
        .map(|p| pki::parse_certificate_pem(p).unwrap().serial)
        .collect();
    let have: BTreeSet<String> = facts.revoked_serials.iter().cloned().collect();
    assert_eq!(have, want);
    let next = facts.next_update.unwrap();
    assert_eq!(next - facts.this_update, time::Duration::days(1));

    // Reason codes: keyCompromise (1) and superseded (4).
    let codes = reasons(&p1.der);
    let serial_a = pki::parse_certificate_pem(&a).unwrap().serial;
    let serial_b = pki::parse_certificate_pem(&b).unwrap().serial;
    assert!(codes.contains(&(serial_a, Some(1))), "{codes:?}");
    assert!(codes.contains(&(serial_b, Some(4))), "{codes:?}");

    // Numbers increase across publications; the object is replaced in place.
    let p2 = h.publish_crl().await.unwrap();
    assert_eq!(p2.number, 2);
    assert_eq!(p2.key, p1.key);
    assert_eq!(h.last_crl_number(), 2);
    let f2 = pki::check_crl(&p2.der, &ca_pem).unwrap();
    assert!(pki::crl_is_newer(&f2, Some(&facts.crl_number)));
    let (_, text) = openssl_crl(dir.path(), &ca_pem, &p2.der, &["-crlnumber"]);
    assert!(text.contains("crlNumber=0x02"), "{text}");
    let got = s3c
        .get_object()
        .bucket(BUCKET)
        .key(&p1.key)
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), p2.der.as_slice());
    assert_eq!(bus.drain().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_crls() {
    let moto = MotoServer::start().unwrap();
    let bus = EventBus::new();
    let h = pca_with_crl(&moto, &bus).await;
    let c = acmpca(&h.url());
    let ca = h.ca_arn();
    let ca_pem = h.ca_certificate_pem();
    let dir = tempfile::tempdir().unwrap();
    let a = issue(&c, &ca, "mi-0aaaaaaaaaaaaaaaa").await;
    let b = issue(&c, &ca, "mi-0bbbbbbbbbbbbbbbb").await;
    revoke(&c, &ca, &a, RevocationReason::KeyCompromise).await;
    revoke(&c, &ca, &b, RevocationReason::CessationOfOperation).await;
    let p1 = h.publish_crl().await.unwrap();
    let p2 = h.publish_crl().await.unwrap();
    let last = pki::check_crl(&p2.der, &ca_pem).unwrap().crl_number;

    // Same subject name, other key: only the signature tells it apart.
    let same_name = h.foreign_crl_der();
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&same_name).unwrap();
    let ca_der = pem_der(&ca_pem);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert_eq!(parsed.issuer().as_raw(), ca_cert.subject().as_raw());
    assert!(matches!(
        pki::check_crl(&same_name, &ca_pem),
        Err(pki::CrlError::BadSignature(_))
    ));
    let (ok, text) = openssl_crl(dir.path(), &ca_pem, &same_name, &[]);
    assert!(!ok, "{text}");
    let two = x509_parser::num_bigint::BigUint::from(2u8);
    assert!(
        parsed.crl_number().unwrap() > &two,
        "a forged CRL claims to be newer"
    );

    let other_name = h.foreign_crl_der_other_name();
    assert!(matches!(
        pki::check_crl(&other_name, &ca_pem),
        Err(pki::CrlError::IssuerMismatch { .. })
    ));

    // A replay of an older number is genuine but not newer.
    let serial_a = pki::parse_certificate_pem(&a).unwrap().serial;
    let old = h.crl_der_with_number(1, &[&serial_a]);
    let f = pki::check_crl(&old, &ca_pem).unwrap();
    assert_eq!(f.crl_number, pki::CrlNumber::from(1u128));
    assert_eq!(f.revoked_serials, vec![serial_a.clone()]);
    assert!(!pki::crl_is_newer(&f, Some(&last)));
    assert_eq!(reasons(&old), vec![(serial_a, Some(1))]);
    assert_eq!(
        h.last_crl_number(),
        2,
        "helpers leave the CA's counter alone"
    );
    assert_ne!(old, p1.der, "a new thisUpdate, same number");

    // Someone else writes the CRL key: S3 announces it, the CA does not.
    bus.drain();
    let key = h.crl_key().unwrap();
    let e = h.put_crl_object(&key, &same_name).await.unwrap();
    assert_eq!(e["detail"]["requester"], tests::emulators::ACCOUNT);
    assert_eq!(e["detail"]["object"]["key"], key.as_str());
    assert_envelope(&e, &sample_event(S3_SAMPLE));
    let events = bus.drain();
    assert_eq!(events.len(), 1);
    let body = s3(&moto.url())
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(body.as_ref(), same_name.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_a_target_fails() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    assert!(h.publish_crl().await.is_err());
    assert_eq!(h.crl_key(), None);
    assert_eq!(h.last_crl_number(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_ca_signs_crls_too() {
    let h = pca::start(PcaConfig {
        key_algorithm: pca::CaKeyAlgorithm::Rsa2048,
        ..PcaConfig::default()
    })
    .await
    .unwrap();
    let ca_pem = h.ca_certificate_pem();
    let der = h.crl_der_with_number(7, &["0a1b"]);
    let f = pki::check_crl(&der, &ca_pem).unwrap();
    assert_eq!(f.crl_number, pki::CrlNumber::from(7u128));
    assert_eq!(f.revoked_serials, vec!["0a:1b".to_owned()]);
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = openssl_crl(dir.path(), &ca_pem, &der, &[]);
    assert!(ok, "{text}");
    assert!(matches!(
        pki::check_crl(&h.foreign_crl_der(), &ca_pem),
        Err(pki::CrlError::BadSignature(_))
    ));
}
