//! The CRL half of the emulators, driven through the real AWS SDK clients (retries off).
//!
//! Why: the CRL processor's end-to-end tests (DESIGN invariant 4) trust that the Private CA
//! emulator writes CRLs the way the service does (a DER CRL signed by the CA in the S3 bucket,
//! announced by S3's "Object Created" event) and that the Roles Anywhere emulator enforces what
//! the service enforces (2 CRLs per trust anchor, UpdateCrl replaces the data, ListCrls pages,
//! garbage refused). These tests pin that behaviour with moto's real S3, `openssl crl` and the
//! production `pki::check_crl`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{RevocationReason, SigningAlgorithm, Validity, ValidityPeriodType};
use aws_sdk_rolesanywhere::error::ProvideErrorMetadata as _;
use serde_json::Value;
use tests::emulators::pca::{self, CrlTarget, PcaConfig, PcaHandle, CLIENT_AUTH_TEMPLATE};
use tests::emulators::rolesanywhere::{self, RolesAnywhereConfig, RolesAnywhereHandle};
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

fn rolesanywhere_client(h: &RolesAnywhereHandle) -> aws_sdk_rolesanywhere::Client {
    aws_sdk_rolesanywhere::Client::new(&tests::aws::sdk_config(&h.url(), false))
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

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
        lines.join("\n")
    )
}

/// CRLs with numbers 1..=n from a CA emulator (no S3 needed).
async fn sample_crls(n: u64) -> Vec<Vec<u8>> {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    (1..=n).map(|i| h.crl_der_with_number(i, &[])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_anywhere_crl_quota_update_and_listing() {
    let capture = Capture::new();
    let ra = rolesanywhere::start(RolesAnywhereConfig {
        capture: capture.clone(),
        ..RolesAnywhereConfig::default()
    })
    .await
    .unwrap();
    let c = rolesanywhere_client(&ra);
    let anchor = ra.trust_anchor_arn();
    let anchor_re = regex::Regex::new(
        r"^arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/[0-9a-f-]{36}$",
    )
    .unwrap();
    assert!(anchor_re.is_match(&anchor), "{anchor}");
    let crls = sample_crls(4).await;
    let import = |name: &str, der: &[u8]| {
        c.import_crl()
            .name(name)
            .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(der.to_vec()))
            .enabled(true)
            .trust_anchor_arn(&anchor)
            .send()
    };

    // Two imports succeed (HTTP 201) with a full CrlDetail.
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let first = import("certrotation-crl", &crls[0]).await.unwrap();
    let d1 = first.crl().unwrap();
    let id1 = d1.crl_id().unwrap().to_owned();
    assert_eq!(d1.name(), Some("certrotation-crl"));
    assert_eq!(d1.enabled(), Some(true));
    assert_eq!(d1.crl_data().unwrap().as_ref(), crls[0].as_slice());
    assert_eq!(d1.trust_anchor_arn(), Some(anchor.as_str()));
    assert_eq!(
        d1.crl_arn().unwrap(),
        format!("arn:aws:rolesanywhere:us-east-1:111122223333:crl/{id1}")
    );
    assert!(d1.created_at().unwrap().secs() >= before);
    assert_eq!(d1.created_at(), d1.updated_at());
    let second = import("second crl", &crls[1]).await.unwrap();
    let id2 = second.crl().unwrap().crl_id().unwrap().to_owned();
    assert_ne!(id1, id2);

    // The third breaks the quota of 2 per trust anchor.
    let e = import("third", &crls[2]).await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    let se = e.into_service_error();
    assert!(se.is_validation_exception(), "{se:?}");
    assert_eq!(se.code(), Some("ValidationException"));
    assert!(se.message().unwrap().contains("maximum"), "{se:?}");
    assert_eq!(ra.crls_for(&anchor).len(), 2);
    assert_eq!(capture.calls_of("RolesAnywhere.ImportCrl"), 3);

    // UpdateCrl replaces the data in place; GetCrl returns the new bytes.
    let upd = c
        .update_crl()
        .crl_id(&id1)
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            crls[3].clone(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(upd.crl().unwrap().name(), Some("certrotation-crl"));
    let got = c.get_crl().crl_id(&id1).send().await.unwrap();
    let g = got.crl().unwrap();
    assert_eq!(g.crl_data().unwrap().as_ref(), crls[3].as_slice());
    assert!(g.updated_at().unwrap() >= g.created_at().unwrap());
    let views = ra.crls_for(&anchor);
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].crl_id, id1);
    assert_eq!(views[0].der, crls[3]);
    assert!(views[0].enabled);

    // Rename only: the data stays.
    c.update_crl()
        .crl_id(&id1)
        .name("renamed")
        .send()
        .await
        .unwrap();
    assert_eq!(ra.crls_for(&anchor)[0].name, "renamed");
    assert_eq!(ra.crls_for(&anchor)[0].der, crls[3]);

    // Garbage is refused by UpdateCrl (data unchanged) and by ImportCrl.
    let e = c
        .update_crl()
        .crl_id(&id1)
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            b"definitely not a CRL".to_vec(),
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    assert_eq!(ra.crls_for(&anchor)[0].der, crls[3]);
    let other_anchor = ra.add_trust_anchor();
    let e = c
        .import_crl()
        .name("garbage")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(pem_der(
            &pca::start(PcaConfig::default())
                .await
                .unwrap()
                .ca_certificate_pem(),
        )))
        .trust_anchor_arn(&other_anchor)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        e.is_validation_exception(),
        "a certificate is not a CRL: {e:?}"
    );
    assert!(ra.crls_for(&other_anchor).is_empty());

    // Model validation: bad name, bad trust anchor ARN.
    let e = c
        .import_crl()
        .name("bad/name")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            crls[0].clone(),
        ))
        .trust_anchor_arn(&other_anchor)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let e = c
        .import_crl()
        .name("ok")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            crls[0].clone(),
        ))
        .trust_anchor_arn("arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");

    // PEM is accepted too; the view holds its DER. enabled defaults to false.
    let pem = c
        .import_crl()
        .name("pem")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            der_to_pem(&crls[2]).into_bytes(),
        ))
        .trust_anchor_arn(&other_anchor)
        .send()
        .await
        .unwrap();
    assert_eq!(pem.crl().unwrap().enabled(), Some(false));
    let v = &ra.crls_for(&other_anchor)[0];
    assert_eq!(v.der, crls[2]);
    assert!(v.data.starts_with(b"-----BEGIN X509 CRL-----"));
    assert!(!v.enabled);

    // ListCrls pages through every CRL (all trust anchors), oldest first.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_crls()
            .page_size(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.crls().len() <= 1);
        seen.extend(out.crls().iter().map(|d| d.crl_id().unwrap().to_owned()));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let all: Vec<String> = ra.crls().into_iter().map(|v| v.crl_id).collect();
    assert_eq!(seen, all);
    let one_page = c.list_crls().send().await.unwrap();
    assert_eq!(one_page.crls().len(), 3);
    assert_eq!(one_page.next_token(), None);
    let e = c
        .list_crls()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");

    // Enable/Disable, Delete frees a slot, unknown IDs are 404.
    let dis = c.disable_crl().crl_id(&id2).send().await.unwrap();
    assert_eq!(dis.crl().unwrap().enabled(), Some(false));
    assert!(!ra.crls_for(&anchor)[1].enabled);
    let en = c.enable_crl().crl_id(&id2).send().await.unwrap();
    assert_eq!(en.crl().unwrap().enabled(), Some(true));
    let del = c.delete_crl().crl_id(&id2).send().await.unwrap();
    assert_eq!(del.crl().unwrap().crl_id(), Some(id2.as_str()));
    assert_eq!(ra.crls_for(&anchor).len(), 1);
    import("third", &crls[2]).await.unwrap();
    assert_eq!(ra.crls_for(&anchor).len(), 2);

    let e = c.get_crl().crl_id("not-a-crl-id").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(e.into_service_error().code(), Some("ValidationException"));
    let e = c.get_crl().crl_id(&id2).send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    let se = e.into_service_error();
    assert!(se.is_resource_not_found_exception(), "{se:?}");
    let e = c
        .update_crl()
        .crl_id(&id2)
        .name("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = c
        .delete_crl()
        .crl_id(&id2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    // Every call was counted under its operation name.
    let calls = capture.calls();
    for op in [
        "ImportCrl",
        "ListCrls",
        "GetCrl",
        "UpdateCrl",
        "EnableCrl",
        "DisableCrl",
        "DeleteCrl",
    ] {
        assert!(
            calls.contains_key(&format!("RolesAnywhere.{op}")),
            "{calls:?}"
        );
    }
    assert_eq!(capture.calls_of("RolesAnywhere.ListCrls"), 5);
    assert_eq!(capture.calls_of("RolesAnywhere.?"), 0);
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
