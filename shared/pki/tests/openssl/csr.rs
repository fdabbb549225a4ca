//! CSR policy on CSRs made by `openssl req`.

use pki::{check_csr, extract_csr_pem, CsrError, CsrPolicy, EcCurve, KeyAlgorithm, KeyKind};

use crate::support::{der_to_pem, pem_to_der, Lab, HOST};

fn policy() -> CsrPolicy {
    CsrPolicy::default()
}

#[test]
fn good_csrs_are_accepted_with_the_openssl_fingerprint() {
    let lab = Lab::new();
    for (spec, kind) in [
        ("rsa:2048", KeyKind::Rsa { bits: 2048 }),
        (
            "ec:P-256",
            KeyKind::Ec {
                curve: EcCurve::P256,
            },
        ),
        (
            "ec:P-384",
            KeyKind::Ec {
                curve: EcCurve::P384,
            },
        ),
    ] {
        let key = format!("{}.key", spec.replace(':', "-"));
        let csr_file = format!("{}.csr", spec.replace(':', "-"));
        lab.key(&key, spec);
        let pem = lab.csr(&csr_file, &key, &format!("/CN={HOST}"), &[]);
        let accepted = check_csr(&pem, HOST, &policy()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(accepted.subject_cn, HOST);
        assert_eq!(accepted.key.kind, kind, "{spec}");
        assert_eq!(
            accepted.key.spki_sha256,
            lab.csr_spki_sha256(&csr_file),
            "{spec}"
        );
        assert_eq!(
            accepted.key.spki_sha256,
            lab.key_spki_sha256(&key),
            "{spec}"
        );
        assert_eq!(accepted.der, pem_to_der(&pem));
        // The canonical PEM is what openssl wrote (openssl also wraps at 64 columns).
        assert_eq!(accepted.pem, pem);
        assert!(KeyAlgorithm::ALL.iter().any(|a| a.key_kind() == kind));
    }
}

#[test]
fn harmless_extension_requests_are_accepted() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    let pem = lab.csr(
        "r.csr",
        "k.pem",
        &format!("/CN={HOST}"),
        &[
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyAgreement",
            "-addext",
            "extendedKeyUsage=clientAuth",
        ],
    );
    check_csr(&pem, HOST, &policy()).unwrap();
}

#[test]
fn rsa_1024_is_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "rsa:1024");
    let pem = lab.csr("r.csr", "k.pem", &format!("/CN={HOST}"), &[]);
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert!(
        matches!(
            err,
            CsrError::RsaKeySize {
                bits: 1024,
                min: 2048,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn policy_minimum_and_curves_are_applied() {
    let lab = Lab::new();
    lab.key("rsa.pem", "rsa:2048");
    let rsa = lab.csr("rsa.csr", "rsa.pem", &format!("/CN={HOST}"), &[]);
    let strict = CsrPolicy {
        min_rsa_bits: 3072,
        allow_ec_p256: true,
        allow_ec_p384: false,
    };
    assert!(matches!(
        check_csr(&rsa, HOST, &strict),
        Err(CsrError::RsaKeySize {
            bits: 2048,
            min: 3072,
            ..
        })
    ));

    lab.key("p384.pem", "ec:P-384");
    let p384 = lab.csr("p384.csr", "p384.pem", &format!("/CN={HOST}"), &[]);
    let err = check_csr(&p384, HOST, &strict).unwrap_err();
    assert_eq!(
        err,
        CsrError::CurveNotAllowed {
            curve: "P-384".into()
        }
    );
}

#[test]
fn other_key_types_are_refused() {
    let lab = Lab::new();
    lab.key("k1.pem", "ec:secp256k1");
    let pem = lab.csr("k1.csr", "k1.pem", &format!("/CN={HOST}"), &[]);
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert_eq!(
        err,
        CsrError::CurveNotAllowed {
            curve: "1.3.132.0.10".into()
        }
    );

    lab.key("ed.pem", "ed25519");
    let pem = lab.csr("ed.csr", "ed.pem", &format!("/CN={HOST}"), &[]);
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert_eq!(
        err,
        CsrError::KeyTypeRefused {
            algorithm: "1.3.101.112".into()
        }
    );
}

#[test]
fn cn_of_another_host_is_refused_and_named() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    let pem = lab.csr("r.csr", "k.pem", "/CN=mi-other", &[]);
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert_eq!(
        err,
        CsrError::CnMismatch {
            expected: HOST.into(),
            actual: "mi-other".into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains(HOST) && msg.contains("mi-other"), "{msg}");
    // An empty expected host never matches.
    assert!(matches!(
        check_csr(&pem, "", &policy()),
        Err(CsrError::CnMismatch { .. })
    ));
}

#[test]
fn subject_alt_name_is_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    let pem = lab.csr(
        "r.csr",
        "k.pem",
        &format!("/CN={HOST}"),
        &["-addext", "subjectAltName=DNS:evil.example.com"],
    );
    assert_eq!(
        check_csr(&pem, HOST, &policy()),
        Err(CsrError::SubjectAltNameRequested)
    );
}

#[test]
fn other_extensions_are_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    for (i, ext) in [
        "basicConstraints=critical,CA:TRUE",
        "basicConstraints=CA:FALSE,pathlen:0",
        "keyUsage=digitalSignature,keyCertSign",
        "extendedKeyUsage=clientAuth,serverAuth",
        "subjectKeyIdentifier=hash",
        "1.2.3.4.5=ASN1:UTF8String:hello",
    ]
    .iter()
    .enumerate()
    {
        let file = format!("r{i}.csr");
        let pem = lab.csr(&file, "k.pem", &format!("/CN={HOST}"), &["-addext", ext]);
        let err = check_csr(&pem, HOST, &policy()).unwrap_err();
        assert!(
            matches!(err, CsrError::ExtensionRefused { .. }),
            "{ext}: {err:?}"
        );
    }
}

#[test]
fn challenge_password_attribute_is_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    lab.write(
        "attrs.cnf",
        format!(
            "[ req ]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[ dn ]\nCN = {HOST}\n[ attrs ]\nchallengePassword = abcdefgh\n"
        ),
    );
    lab.openssl(&[
        "req",
        "-new",
        "-config",
        "attrs.cnf",
        "-key",
        "k.pem",
        "-out",
        "r.csr",
    ]);
    let pem = lab.read_string("r.csr");
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert_eq!(
        err,
        CsrError::AttributeRefused {
            oid: "1.2.840.113549.1.9.7".into(),
            reason: "only an extensionRequest attribute is accepted"
        }
    );
    assert!(!err.to_string().contains("abcdefgh"));
}

#[test]
fn extra_rdns_and_double_cn_are_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    for (i, subj) in [
        format!("/O=Acme/CN={HOST}"),
        format!("/CN={HOST}/OU=ops"),
        format!("/CN={HOST}/CN={HOST}"),
        format!("/CN={HOST}+O=Acme"),
        "/O=Acme".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let file = format!("r{i}.csr");
        let mut extra = vec![];
        if subj.contains('+') {
            extra.push("-multivalue-rdn");
        }
        let pem = lab.csr(&file, "k.pem", subj, &extra);
        let err = check_csr(&pem, HOST, &policy()).unwrap_err();
        assert!(
            matches!(err, CsrError::SubjectNotSingleCn { .. }),
            "{subj}: {err:?}"
        );
    }
}

#[test]
fn sha1_signed_csr_is_refused() {
    let lab = Lab::new();
    lab.key("k.pem", "rsa:2048");
    let pem = lab.csr("r.csr", "k.pem", &format!("/CN={HOST}"), &["-sha1"]);
    let err = check_csr(&pem, HOST, &policy()).unwrap_err();
    assert_eq!(
        err,
        CsrError::SignatureAlgorithmRefused {
            oid: "1.2.840.113549.1.1.5".into()
        }
    );
}

#[test]
fn tampered_csrs_are_refused() {
    let lab = Lab::new();
    for spec in ["rsa:2048", "ec:P-256"] {
        let key = format!("{}.key", spec.replace(':', "-"));
        lab.key(&key, spec);
        let pem = lab.csr(&format!("{key}.csr"), &key, &format!("/CN={HOST}"), &[]);
        let der = pem_to_der(&pem);

        // Flip a bit in the signature (the last bytes of the DER).
        let mut bad_sig = der.clone();
        let last = bad_sig.len() - 2;
        bad_sig[last] ^= 0x01;
        let err = check_csr(
            &der_to_pem("CERTIFICATE REQUEST", &bad_sig),
            HOST,
            &policy(),
        )
        .unwrap_err();
        assert!(matches!(err, CsrError::BadSignature(_)), "{spec}: {err:?}");

        // Change the CN to another host of the same length: the signature no longer covers it.
        let mut other_host = der.clone();
        let pos = other_host
            .windows(HOST.len())
            .position(|w| w == HOST.as_bytes())
            .unwrap();
        other_host[pos + HOST.len() - 1] = b'1';
        let forged_host = format!("{}1", &HOST[..HOST.len() - 1]);
        let err = check_csr(
            &der_to_pem("CERTIFICATE REQUEST", &other_host),
            &forged_host,
            &policy(),
        )
        .unwrap_err();
        assert!(matches!(err, CsrError::BadSignature(_)), "{spec}: {err:?}");
    }
}

#[test]
fn garbage_is_refused() {
    let p = policy();
    assert_eq!(check_csr("hello world", HOST, &p), Err(CsrError::NotFound));
    assert!(matches!(
        check_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
            HOST,
            &p
        ),
        Err(CsrError::Pem(_))
    ));
    assert!(matches!(
        check_csr(
            &der_to_pem("CERTIFICATE REQUEST", b"not DER at all"),
            HOST,
            &p
        ),
        Err(CsrError::Der(_))
    ));
    assert!(matches!(
        check_csr("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n", HOST, &p),
        Err(CsrError::Pem(pki::PemError::Unterminated { .. }))
    ));

    // A good CSR with trailing bytes after the DER, or cut short, is malformed.
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    let der = pem_to_der(&lab.csr("r.csr", "k.pem", &format!("/CN={HOST}"), &[]));
    let mut trailing = der.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert!(matches!(
        check_csr(&der_to_pem("CERTIFICATE REQUEST", &trailing), HOST, &p),
        Err(CsrError::Der(_))
    ));
    assert!(matches!(
        check_csr(
            &der_to_pem("CERTIFICATE REQUEST", &der[..der.len() - 10]),
            HOST,
            &p
        ),
        Err(CsrError::Der(_))
    ));

    // Oversized input.
    let big = format!(
        "{}\n{}",
        "#".repeat(17 * 1024),
        der_to_pem("CERTIFICATE REQUEST", &der)
    );
    assert!(matches!(
        check_csr(&big, HOST, &p),
        Err(CsrError::TooLarge { max: 16384, .. })
    ));
}

#[test]
fn extraction_from_noisy_output() {
    let lab = Lab::new();
    lab.key("k.pem", "ec:P-256");
    let pem = lab.csr("r.csr", "k.pem", &format!("/CN={HOST}"), &[]);
    let noisy = format!(
        "Generating EC key for {HOST}...\r\nwrote /etc/pki/{HOST}.key.new (0400)\r\n{}\r\nCSR written to /etc/pki/{HOST}.csr\r\n",
        pem.trim_end().replace('\n', "\r\n    ")
    );
    let extracted = extract_csr_pem(&noisy).unwrap();
    assert_eq!(extracted, pem);
    check_csr(&extracted, HOST, &policy()).unwrap();

    // The same CSR printed twice is fine; two different CSRs are not.
    assert_eq!(extract_csr_pem(&format!("{pem}\n{pem}")).unwrap(), pem);
    let other = lab.csr("r2.csr", "k.pem", "/CN=mi-other", &[]);
    assert_eq!(
        extract_csr_pem(&format!("{pem}noise\n{other}")),
        Err(CsrError::Ambiguous { count: 2 })
    );
    assert!(matches!(
        check_csr(&format!("{pem}{other}"), HOST, &policy()),
        Err(CsrError::Ambiguous { count: 2 })
    ));

    // Nothing, or output cut off in the middle of the block (SSM truncates at 24,000 chars).
    assert_eq!(
        extract_csr_pem("Generating key...\nerror: disk full\n"),
        Err(CsrError::NotFound)
    );
    let cut = &pem[..pem.len() / 2];
    assert!(matches!(
        extract_csr_pem(cut),
        Err(CsrError::Pem(pki::PemError::Unterminated { .. }))
    ));
}

#[test]
fn rcgen_csr_is_accepted_and_rcgen_san_refused() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, HOST);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let accepted = check_csr(&pem, HOST, &policy()).unwrap();
    assert_eq!(
        accepted.key.kind.key_algorithm(),
        Some(KeyAlgorithm::EcP384)
    );

    let mut with_san = rcgen::CertificateParams::new(vec!["other.example".to_owned()]).unwrap();
    with_san.distinguished_name = params.distinguished_name.clone();
    let pem = with_san.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(
        check_csr(&pem, HOST, &policy()),
        Err(CsrError::SubjectAltNameRequested)
    );
}
