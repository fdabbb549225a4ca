//! The Private CA emulator's issuance and revocation, driven through the real AWS SDK client.
//!
//! Why: the end-to-end tests trust this emulator to behave like the service, so its behaviour is
//! pinned here with the same SDK client production uses (endpoint override, static test
//! credentials, retries off): the asynchrony (`RequestInProgressException` before a certificate
//! is ready), certificates that `openssl verify` accepts with the template's extensions and the
//! requested validity and signing algorithm, failed issuances, revocation by serial, and
//! EventBridge events shaped like the samples in `fixtures/events`.

use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use tests::emulators::pca::{self, CaKeyAlgorithm, PcaConfig};
use tests::emulators::ssm;
use tests::emulators::{Capture, EventBus};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate, X509Version};

mod emulator_common;

use emulator_common::{
    assert_event_shape, days, issue, openssl_csr, openssl_verify, pca_client, pem_der, sample_event,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_issues_client_auth_certificates() {
    let bus = EventBus::new();
    let capture = Capture::new();
    let h = pca::start(PcaConfig {
        bus: bus.clone(),
        capture: capture.clone(),
        ..PcaConfig::default()
    })
    .await
    .unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let host = ssm::managed_instance_id(0xd4);
    let csr = openssl_csr(dir.path(), &host, false);
    let ca = h.ca_arn();

    let before = time::OffsetDateTime::now_utc();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-1"),
    )
    .await
    .unwrap();
    let arn_re = regex::Regex::new(&format!(
        "^{}/certificate/[0-9a-f]{{32}}$",
        regex::escape(&ca)
    ))
    .unwrap();
    assert!(arn_re.is_match(&arn), "{arn}");

    // Not ready on the first call, as the service answers right after IssueCertificate.
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let e = get().await.unwrap_err().into_service_error();
    assert!(e.is_request_in_progress_exception(), "{e:?}");
    let got = get().await.unwrap();
    let cert_pem = got.certificate().unwrap();
    let chain_pem = got.certificate_chain().unwrap();
    assert_eq!(chain_pem, h.ca_certificate_pem());

    let v = openssl_verify(dir.path(), chain_pem, cert_pem);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));

    let der = pem_der(cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.subject().to_string(), format!("CN={host}"));
    assert_eq!(cert.version(), X509Version::V3);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );
    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    let expect_na = before + time::Duration::days(7);
    assert!(
        (na - expect_na).abs() < time::Duration::seconds(5),
        "{na} vs {expect_na}"
    );
    let expect_nb = before - time::Duration::hours(1);
    assert!((nb - expect_nb).abs() < time::Duration::seconds(5), "{nb}");
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(!bc.ca);
    let ca_der = pem_der(&h.ca_certificate_pem());
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
    let ca_ski = ca_cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(aki, ca_ski);
    assert!(cert.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::SubjectKeyIdentifier(_)
    )));
    let serial = cert.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] < 0x80 && serial[0] > 0);
    assert!(arn.ends_with(&hex::encode(serial)));

    let issued = h.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].arn, arn);
    assert_eq!(issued[0].subject, format!("CN={host}"));
    assert_eq!(issued[0].serial, hex::encode(serial));
    assert_eq!(issued[0].not_after.unix_timestamp(), na.unix_timestamp());
    assert_eq!(issued[0].csr_pem.as_bytes(), csr.as_slice());

    // Same token and CSR: same ARN, nothing issued again, no second event.
    let again = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-1"),
    )
    .await
    .unwrap();
    assert_eq!(again, arn);
    assert_eq!(h.issued().len(), 1);
    // Another token: a new certificate.
    let other = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(2),
        Some("tok-2"),
    )
    .await
    .unwrap();
    assert_ne!(other, arn);
    assert_eq!(h.issued().len(), 2);

    let events = bus.drain();
    assert_eq!(events.len(), 2);
    let sample = sample_event("pca-certificate-issuance-success.json");
    for e in &events {
        assert_event_shape(e, &sample);
        assert_eq!(e["detail"]["result"], "success");
        assert_eq!(e["resources"][0], ca.as_str());
    }
    assert_eq!(events[0]["resources"][1], arn.as_str());
    assert_eq!(events[1]["resources"][1], other.as_str());

    // The CA certificate, and its description.
    let ca_out = c
        .get_certificate_authority_certificate()
        .certificate_authority_arn(&ca)
        .send()
        .await
        .unwrap();
    assert_eq!(ca_out.certificate(), Some(h.ca_certificate_pem().as_str()));
    assert_eq!(ca_out.certificate_chain(), None, "a root CA has no chain");
    let d = c
        .describe_certificate_authority()
        .certificate_authority_arn(&ca)
        .send()
        .await
        .unwrap();
    let d = d.certificate_authority().unwrap();
    assert_eq!(
        d.status(),
        Some(&aws_sdk_acmpca::types::CertificateAuthorityStatus::Active)
    );
    assert_eq!(
        d.usage_mode(),
        Some(&aws_sdk_acmpca::types::CertificateAuthorityUsageMode::ShortLivedCertificate)
    );
    assert_eq!(
        d.certificate_authority_configuration()
            .unwrap()
            .key_algorithm(),
        &aws_sdk_acmpca::types::KeyAlgorithm::EcPrime256v1
    );

    assert!(capture.find("PRIVATE KEY").is_empty());
    let calls = h.calls();
    assert_eq!(calls["ACMPCA.IssueCertificate"], 3);
    assert_eq!(calls["ACMPCA.GetCertificate"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_failed_issuance() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0xf6), false);
    let ca = h.ca_arn();
    h.fail_next_issuance();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    let events = h.bus().drain();
    assert_eq!(events.len(), 1);
    assert_event_shape(
        &events[0],
        &sample_event("pca-certificate-issuance-failure.json"),
    );
    assert_eq!(events[0]["detail"]["result"], "failure");
    assert_eq!(events[0]["resources"][1], arn.as_str());
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    assert!(get()
        .await
        .unwrap_err()
        .into_service_error()
        .is_request_in_progress_exception());
    let e = get().await.unwrap_err().into_service_error();
    assert!(e.is_request_failed_exception(), "{e:?}");
    assert!(h.issued().is_empty());
    // Only the next one fails.
    let ok = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    assert_eq!(h.issued()[0].arn, ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_rsa_ca_with_end_date() {
    let h = pca::start(PcaConfig {
        key_algorithm: CaKeyAlgorithm::Rsa2048,
        ..PcaConfig::default()
    })
    .await
    .unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let host = ssm::managed_instance_id(0x17);
    let csr = openssl_csr(dir.path(), &host, true);
    let ca = h.ca_arn();
    let end = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(3);
    let end_num: i64 = end
        .format(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        .unwrap()
        .parse()
        .unwrap();
    let validity = Validity::builder()
        .value(end_num)
        .r#type(ValidityPeriodType::EndDate)
        .build()
        .unwrap();
    let e = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        validity.clone(),
        None,
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha384Withrsa,
        validity,
        None,
    )
    .await
    .unwrap();
    let get = || {
        c.get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
    };
    let _ = get().await;
    let got = get().await.unwrap();
    let v = openssl_verify(
        dir.path(),
        got.certificate_chain().unwrap(),
        got.certificate().unwrap(),
    );
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let der = pem_der(got.certificate().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.validity().not_after.to_datetime(), end);
    assert_eq!(
        cert.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_PKCS1_SHA384WITHRSA
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_revokes_by_serial() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0x4b), false);
    let ca = h.ca_arn();
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        None,
    )
    .await
    .unwrap();
    let serial = h.issued()[0].serial.clone();
    h.bus().drain();
    // As openssl prints it: uppercase, colon-separated.
    let colons = serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let revoke = |s: String| {
        c.revoke_certificate()
            .certificate_authority_arn(&ca)
            .certificate_serial(s)
            .revocation_reason(aws_sdk_acmpca::types::RevocationReason::KeyCompromise)
            .send()
    };
    revoke(colons.clone()).await.unwrap();
    let revoked = h.revoked();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].arn, arn);
    assert_eq!(revoked[0].reason, "KEY_COMPROMISE");
    let events = h.bus().drain();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["detail-type"],
        "ACM Private CA Certificate Revocation"
    );
    assert_eq!(events[0]["resources"][1], arn.as_str());
    let e = revoke(serial).await.unwrap_err().into_service_error();
    assert!(e.is_request_already_processed_exception(), "{e:?}");
    let e = revoke("0123456789abcdef".into())
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
}
