//! What AWS's Private CA model refuses and accepts: the emulator refuses what the service
//! refuses (with the error codes the SDK maps to typed errors), and the same IssueCertificate /
//! GetCertificate request shapes our code sends are accepted by moto, which is generated from
//! AWS's own service model (when the project's virtualenv has it).
//!
//! Why: a test that passes against the emulator proves something only if the emulator is no
//! more lenient than the service, and our requests are only right if the real model takes them.

use std::time::Duration;

use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use base64::Engine as _;
use tests::emulators::pca::{self, PcaConfig};
use tests::emulators::ssm;
use x509_parser::prelude::{FromDer, X509Certificate};

mod emulator_common;

use emulator_common::{days, issue, openssl_csr, pca_client, pem_der};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pca_rejects_what_the_service_rejects() {
    let h = pca::start(PcaConfig::default()).await.unwrap();
    let c = pca_client(&h);
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0xe5), false);
    let ca = h.ca_arn();
    let ec = SigningAlgorithm::Sha256Withecdsa;

    let unknown_ca = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/00000000-0000-4000-8000-000000000000";
    let e = issue(&c, unknown_ca, &csr, ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");
    let e = issue(&c, "not-an-arn", &csr, ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_arn_exception(), "{e:?}");
    let e = issue(&c, &ca, b"garbage", ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_csr_exception(), "{e:?}");
    // A CSR whose signature does not verify (one byte of the signature flipped).
    let mut der = pem_der(std::str::from_utf8(&csr).unwrap());
    let last = der.len() - 3;
    der[last] ^= 0x01;
    let bad = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let e = issue(&c, &ca, bad.as_bytes(), ec.clone(), days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_malformed_csr_exception(), "{e:?}");
    let e = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withrsa,
        days(1),
        None,
    )
    .await
    .unwrap_err()
    .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let e = issue(&c, &ca, &csr, ec.clone(), days(8), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    let past = Validity::builder()
        .value(20200101000000)
        .r#type(ValidityPeriodType::EndDate)
        .build()
        .unwrap();
    let e = issue(&c, &ca, &csr, ec.clone(), past, None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_args_exception(), "{e:?}");
    assert!(h.issued().is_empty());
    assert!(h.bus().is_empty());

    let e = c
        .get_certificate()
        .certificate_authority_arn(&ca)
        .certificate_arn(format!("{ca}/certificate/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception(), "{e:?}");

    h.set_status("DISABLED");
    let e = issue(&c, &ca, &csr, ec, days(1), None)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_state_exception(), "{e:?}");
}

/// The same IssueCertificate / GetCertificate request shapes sent to moto's ACM-PCA: AWS's own
/// service model (which moto is generated against) accepts them. Skipped when the project's
/// virtualenv has no moto server yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_accepts_the_same_pca_request_shapes() {
    let python = tests::moto::moto_python();
    if !python.exists() {
        eprintln!(
            "NOTE: no moto Python at {}; skipping the moto cross-check",
            python.display()
        );
        return;
    }
    let moto = tests::moto::MotoServer::start().expect("moto starts");
    let c = aws_sdk_acmpca::Client::new(&tests::aws::sdk_config(&moto.url(), false));
    let created = c
        .create_certificate_authority()
        .certificate_authority_type(aws_sdk_acmpca::types::CertificateAuthorityType::Root)
        .certificate_authority_configuration(
            aws_sdk_acmpca::types::CertificateAuthorityConfiguration::builder()
                .key_algorithm(aws_sdk_acmpca::types::KeyAlgorithm::EcPrime256v1)
                .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
                .subject(
                    aws_sdk_acmpca::types::Asn1Subject::builder()
                        .common_name("moto cross-check")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .usage_mode(aws_sdk_acmpca::types::CertificateAuthorityUsageMode::ShortLivedCertificate)
        .send()
        .await
        .expect("moto creates a CA");
    let ca = created.certificate_authority_arn().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), &ssm::managed_instance_id(0x3a), false);
    let arn = issue(
        &c,
        &ca,
        &csr,
        SigningAlgorithm::Sha256Withecdsa,
        days(7),
        Some("tok-moto"),
    )
    .await
    .expect("moto accepts our IssueCertificate shape");
    assert!(arn.starts_with(&format!("{ca}/certificate/")), "{arn}");
    let mut got = None;
    for _ in 0..5 {
        match c
            .get_certificate()
            .certificate_authority_arn(&ca)
            .certificate_arn(&arn)
            .send()
            .await
        {
            Ok(o) => {
                got = Some(o);
                break;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_request_in_progress_exception()) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("moto GetCertificate: {e:?}"),
        }
    }
    let got = got.expect("moto returns the certificate");
    let der = pem_der(got.certificate().unwrap());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert!(cert.subject().to_string().contains("CN=mi-"));
}
