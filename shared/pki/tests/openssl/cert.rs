//! Certificate inspection on certificates signed by an `openssl` test CA.

use pki::{
    certificate_signed_by, check_csr, check_issued_certificate, normalize_serial,
    parse_certificate_pem, split_pem_chain, CertError, CsrPolicy, EcCurve, KeyKind,
};
use time::{Duration, OffsetDateTime};

use crate::support::{openssl_serial, pem_to_der, Ca, Lab, EE_EXT, HOST};

/// A lab with CA `ca`, a host key `host.key` (RSA 2048) and its CSR `host.csr`.
fn setup() -> (Lab, String) {
    let lab = Lab::new();
    lab.ca("ca", "/O=Test/CN=Test Issuing CA");
    lab.key("host.key", "rsa:2048");
    let csr = lab.csr("host.csr", "host.key", &format!("/CN={HOST}"), &[]);
    let accepted = check_csr(&csr, HOST, &CsrPolicy::default()).unwrap();
    (lab, accepted.key.spki_sha256)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn good_certificate_is_accepted_and_facts_match_openssl() {
    let (lab, spki) = setup();
    // Top bit set: DER keeps a leading 00 that `openssl x509 -serial` does not print.
    let pem = lab.sign(
        "host.pem",
        "host.csr",
        "ca",
        EE_EXT,
        "8A3F0011223344556677",
        &[],
    );
    let facts = parse_certificate_pem(&pem).unwrap();
    check_issued_certificate(&facts, HOST, &spki, now()).unwrap();
    // Case of the expected fingerprint does not matter.
    check_issued_certificate(&facts, HOST, &spki.to_uppercase(), now()).unwrap();
    certificate_signed_by(&pem, &lab.read_string("ca.pem")).unwrap();

    assert_eq!(facts.serial, "00:8a:3f:00:11:22:33:44:55:66:77");
    let openssl = openssl_serial(&lab, "host.pem");
    assert_eq!(openssl, "serial=8A3F0011223344556677");
    assert_eq!(normalize_serial(&openssl).unwrap(), facts.serial);

    assert_eq!(facts.subject_cn.as_deref(), Some(HOST));
    assert_eq!(facts.subject, format!("CN={HOST}"));
    assert!(
        facts.issuer.contains("CN=Test Issuing CA"),
        "{}",
        facts.issuer
    );
    assert_eq!(facts.spki_sha256, spki);
    assert_eq!(facts.spki_sha256, lab.key_spki_sha256("host.key"));
    assert_eq!(facts.key_kind, Some(KeyKind::Rsa { bits: 2048 }));
    assert_eq!(facts.version, 3);
    assert!(facts.has_strong_signature);
    assert!(!facts.is_ca && facts.has_digital_signature && facts.has_client_auth);
    assert!(!facts.has_subject_alt_name);
    assert_eq!(facts.der, pem_to_der(&pem));
    assert_eq!(facts.to_pem(), pem);
    let validity = facts.not_after - facts.not_before;
    assert_eq!(validity, Duration::days(7));
    // Dates agree with openssl's.
    let end = lab.openssl(&[
        "x509", "-in", "host.pem", "-noout", "-enddate", "-dateopt", "iso_8601",
    ]);
    let expected_end = facts
        .not_after
        .format(&time::format_description::well_known::Iso8601::DEFAULT)
        .unwrap();
    assert!(
        end.contains(&expected_end[..19].replace('T', " ")),
        "{end} vs {expected_end}"
    );
}

#[test]
fn ec_certificate_serial_without_high_bit() {
    let lab = Lab::new();
    lab.ca("ca", "/CN=Test CA");
    lab.key("host.key", "ec:P-384");
    lab.csr("host.csr", "host.key", &format!("/CN={HOST}"), &[]);
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "0A1B2C", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(facts.serial, "0a:1b:2c");
    assert_eq!(
        normalize_serial(&openssl_serial(&lab, "host.pem")).unwrap(),
        facts.serial
    );
    assert_eq!(
        facts.key_kind,
        Some(KeyKind::Ec {
            curve: EcCurve::P384
        })
    );
    check_issued_certificate(&facts, HOST, &lab.key_spki_sha256("host.key"), now()).unwrap();
}

#[test]
fn wrong_key_is_refused() {
    let (lab, _) = setup();
    lab.key("other.key", "ec:P-256");
    let other_spki = lab.key_spki_sha256("other.key");
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "01", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    let err = check_issued_certificate(&facts, HOST, &other_spki, now()).unwrap_err();
    assert_eq!(
        err,
        CertError::KeyMismatch {
            expected: other_spki,
            actual: facts.spki_sha256.clone()
        }
    );
}

#[test]
fn wrong_host_is_refused() {
    let (lab, spki) = setup();
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "01", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    let err = check_issued_certificate(&facts, "mi-other", &spki, now()).unwrap_err();
    assert_eq!(
        err,
        CertError::WrongHost {
            expected: "mi-other".into(),
            actual: Some(HOST.into())
        }
    );
}

#[test]
fn ca_certificate_is_refused() {
    let (lab, spki) = setup();
    let ext = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, digitalSignature, keyCertSign\nextendedKeyUsage = clientAuth";
    let pem = lab.sign("host.pem", "host.csr", "ca", ext, "02", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert!(facts.is_ca);
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::IsCa)
    );
}

#[test]
fn missing_eku_or_ku_is_refused() {
    let (lab, spki) = setup();
    let no_eku = "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature";
    let pem = lab.sign("a.pem", "host.csr", "ca", no_eku, "03", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::MissingClientAuth)
    );

    let server_only =
        "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth";
    let pem = lab.sign("b.pem", "host.csr", "ca", server_only, "04", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::MissingClientAuth)
    );

    let no_ds =
        "basicConstraints = CA:FALSE\nkeyUsage = keyEncipherment\nextendedKeyUsage = clientAuth";
    let pem = lab.sign("c.pem", "host.csr", "ca", no_ds, "05", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::MissingDigitalSignature)
    );

    let no_ku = "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth";
    let pem = lab.sign("d.pem", "host.csr", "ca", no_ku, "06", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::MissingDigitalSignature)
    );
}

#[test]
fn san_in_certificate_is_refused() {
    let (lab, spki) = setup();
    let ext = format!("{EE_EXT}\nsubjectAltName = DNS:other.example");
    let pem = lab.sign("host.pem", "host.csr", "ca", &ext, "07", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::UnexpectedSubjectAltName)
    );
}

#[test]
fn sha1_certificate_is_refused() {
    let (lab, spki) = setup();
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "08", &["-sha1"]);
    let facts = parse_certificate_pem(&pem).unwrap();
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::WeakSignatureAlgorithm {
            oid: "1.2.840.10045.4.1".into()
        })
    );
}

#[test]
fn validity_window_is_enforced() {
    let (lab, spki) = setup();
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "09", &[]);
    let facts = parse_certificate_pem(&pem).unwrap();
    let later = facts.not_after + Duration::seconds(1);
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, later),
        Err(CertError::Expired {
            not_after: facts.not_after
        })
    );
    let earlier = facts.not_before - Duration::seconds(1);
    assert_eq!(
        check_issued_certificate(&facts, HOST, &spki, earlier),
        Err(CertError::NotYetValid {
            not_before: facts.not_before
        })
    );
    // The bounds themselves are inside the window.
    check_issued_certificate(&facts, HOST, &spki, facts.not_before).unwrap();
    check_issued_certificate(&facts, HOST, &spki, facts.not_after).unwrap();
}

#[test]
fn really_expired_certificate_is_refused() {
    let (lab, spki) = setup();
    // `openssl ca` can backdate; use a throw-away `openssl ca` setup.
    let old_ca = Ca::new(&lab, "old-ca", "/O=Test/CN=Test Issuing CA", false);
    let pem = old_ca.sign_csr(
        "host.csr",
        "old.pem",
        &[
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200108000000Z",
        ],
    );
    let facts = parse_certificate_pem(&pem).unwrap();
    assert!(matches!(
        check_issued_certificate(&facts, HOST, &spki, now()),
        Err(CertError::Expired { .. })
    ));
    assert_eq!(facts.not_after.year(), 2020);
}

#[test]
fn signed_by_checks_issuer_and_signature() {
    let (lab, _) = setup();
    let pem = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "0B", &[]);

    // A CA with another name.
    let other = lab.ca("other", "/CN=Other CA");
    assert!(matches!(
        certificate_signed_by(&pem, &other),
        Err(CertError::IssuerMismatch { .. })
    ));

    // A CA with the same name but another key: names match, the signature does not.
    let twin = lab.ca("twin", "/O=Test/CN=Test Issuing CA");
    assert!(matches!(
        certificate_signed_by(&pem, &twin),
        Err(CertError::BadSignature(_))
    ));

    // A leaf is not an issuer, even of a certificate naming it as issuer.
    lab.key("leaf2.key", "ec:P-256");
    lab.csr("leaf2.csr", "leaf2.key", &format!("/CN={HOST}"), &[]);
    lab.sign("leaf2.pem", "leaf2.csr", "host", EE_EXT, "0C", &[]);
    assert_eq!(
        certificate_signed_by(&lab.read_string("leaf2.pem"), &pem),
        Err(CertError::IssuerNotCa)
    );
}

#[test]
fn chains_and_garbage() {
    let (lab, _) = setup();
    let leaf = lab.sign("host.pem", "host.csr", "ca", EE_EXT, "0D", &[]);
    let ca = lab.read_string("ca.pem");
    let chain = format!("subject=...\n{leaf}\nissuer=...\n{ca}");
    let parts = split_pem_chain(&chain).unwrap();
    assert_eq!(parts, vec![leaf.clone(), ca.clone()]);
    // The first certificate is the one parsed.
    assert_eq!(
        parse_certificate_pem(&chain).unwrap().subject_cn.as_deref(),
        Some(HOST)
    );
    assert_eq!(
        split_pem_chain("no pem here").unwrap(),
        Vec::<String>::new()
    );

    assert_eq!(parse_certificate_pem(""), Err(CertError::NotFound));
    assert!(matches!(
        parse_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n"),
        Err(CertError::Pem(_))
    ));
    let der = pem_to_der(&leaf);
    let cut = crate::support::der_to_pem("CERTIFICATE", &der[..der.len() / 2]);
    assert!(matches!(
        parse_certificate_pem(&cut),
        Err(CertError::Der(_))
    ));
    let big = "x".repeat(70 * 1024);
    assert!(matches!(
        parse_certificate_pem(&big),
        Err(CertError::TooLarge { .. })
    ));
}
