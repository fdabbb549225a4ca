//! CRL checks on CRLs made by `openssl ca -gencrl`.

use pki::{check_crl, crl_is_newer, parse_certificate_pem, CrlError, CrlNumber};

use crate::support::{pem_to_der, Ca, Lab};

#[test]
fn crl_facts_are_correct_for_der_and_pem() {
    let lab = Lab::new();
    let ca = Ca::new(&lab, "ca", "/O=Test/CN=Test Issuing CA", true);
    let revoked = ca.issue("mi-revoked");
    let kept = ca.issue("mi-kept");
    ca.revoke(&revoked);
    let (pem, der) = ca.gencrl("crl1.pem");

    let facts = check_crl(&der, &ca.ca_pem()).unwrap();
    let revoked_facts = parse_certificate_pem(&lab.read_string(&revoked)).unwrap();
    let kept_facts = parse_certificate_pem(&lab.read_string(&kept)).unwrap();
    assert_eq!(revoked_facts.serial, "00:8a:01");
    assert_eq!(facts.revoked_serials, vec![revoked_facts.serial.clone()]);
    assert!(!facts.revoked_serials.contains(&kept_facts.serial));
    // `openssl ca -revoke … -crl_reason keyCompromise` writes reason code 1.
    assert_eq!(
        facts.revocation_reasons.get(&revoked_facts.serial),
        Some(&Some("KEY_COMPROMISE"))
    );
    assert_eq!(facts.crl_number, CrlNumber::from(0x1000u128));
    assert_eq!(facts.crl_number.to_string(), "1000");
    assert_eq!(facts.der, der);
    assert!(facts.issuer.contains("CN=Test Issuing CA"));
    let next = facts.next_update.expect("openssl sets nextUpdate");
    assert_eq!((next - facts.this_update).whole_days(), 7);

    // openssl agrees on the number.
    let text = lab.openssl(&["crl", "-in", "crl1.pem", "-noout", "-crlnumber"]);
    assert_eq!(text.trim(), "crlNumber=0x1000");

    // PEM gives the same facts (and DER out).
    assert_eq!(check_crl(pem.as_bytes(), &ca.ca_pem()).unwrap(), facts);
    assert_eq!(pem_to_der(&pem), der);

    // The next CRL is newer; the older one is not newer than it.
    ca.revoke(&kept);
    let (_, der2) = ca.gencrl("crl2.pem");
    let facts2 = check_crl(&der2, &ca.ca_pem()).unwrap();
    assert_eq!(facts2.crl_number, CrlNumber::from(0x1001u128));
    assert_eq!(facts2.revoked_serials.len(), 2);
    assert!(crl_is_newer(&facts, None));
    assert!(crl_is_newer(&facts2, Some(&facts.crl_number)));
    assert!(!crl_is_newer(&facts, Some(&facts2.crl_number)));
    assert!(!crl_is_newer(&facts2, Some(&facts2.crl_number)));
    // Round trip through the stored text form.
    let stored: CrlNumber = facts.crl_number.to_string().parse().unwrap();
    assert!(crl_is_newer(&facts2, Some(&stored)));
}

#[test]
fn crl_of_another_ca_is_refused() {
    let lab = Lab::new();
    let ours = Ca::new(&lab, "ours", "/O=Test/CN=Test Issuing CA", true);
    let theirs = Ca::new(&lab, "theirs", "/O=Evil/CN=Other CA", true);
    let (_, der) = theirs.gencrl("theirs.pem");
    let err = check_crl(&der, &ours.ca_pem()).unwrap_err();
    assert!(matches!(err, CrlError::IssuerMismatch { .. }), "{err:?}");

    // Same name, other key: the signature gives it away.
    let twin = Ca::new(&lab, "twin", "/O=Test/CN=Test Issuing CA", true);
    let (_, der) = twin.gencrl("twin.pem");
    let err = check_crl(&der, &ours.ca_pem()).unwrap_err();
    assert!(matches!(err, CrlError::BadSignature(_)), "{err:?}");
}

#[test]
fn corrupt_crls_are_refused() {
    let lab = Lab::new();
    let ca = Ca::new(&lab, "ca", "/CN=Test CA", true);
    let cert = ca.issue("mi-x");
    ca.revoke(&cert);
    let (pem, der) = ca.gencrl("crl.pem");

    // A flipped bit in the signature.
    let mut bad = der.clone();
    let n = bad.len() - 3;
    bad[n] ^= 0x01;
    assert!(matches!(
        check_crl(&bad, &ca.ca_pem()),
        Err(CrlError::BadSignature(_)) | Err(CrlError::Der(_))
    ));

    // A flipped bit in the signed part (inside the revoked serial).
    let mut forged = der.clone();
    let pos = forged
        .windows(3)
        .position(|w| w == [0x00, 0x8a, 0x01])
        .expect("serial in CRL");
    forged[pos + 2] = 0x02;
    assert!(matches!(
        check_crl(&forged, &ca.ca_pem()),
        Err(CrlError::BadSignature(_))
    ));

    // Truncated, trailing junk, random bytes, empty.
    assert!(matches!(
        check_crl(&der[..der.len() - 20], &ca.ca_pem()),
        Err(CrlError::Der(_))
    ));
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(matches!(
        check_crl(&trailing, &ca.ca_pem()),
        Err(CrlError::Der(_))
    ));
    assert!(matches!(
        check_crl(b"garbage", &ca.ca_pem()),
        Err(CrlError::Der(_))
    ));
    assert!(matches!(
        check_crl(b"", &ca.ca_pem()),
        Err(CrlError::Der(_))
    ));

    // PEM problems: broken body, two CRLs, a certificate instead of a CRL.
    let broken = pem.replacen('M', "!", 1);
    assert!(matches!(
        check_crl(broken.as_bytes(), &ca.ca_pem()),
        Err(CrlError::Pem(_))
    ));
    let (pem2, _) = ca.gencrl("crl2.pem");
    let two = format!("{pem}{pem2}");
    assert!(matches!(
        check_crl(two.as_bytes(), &ca.ca_pem()),
        Err(CrlError::PemShape { .. })
    ));
    assert!(matches!(
        check_crl(ca.ca_pem().as_bytes(), &ca.ca_pem()),
        Err(CrlError::PemShape { .. })
    ));

    // A certificate's DER is not a CRL either.
    let cert_der = pem_to_der(&ca.ca_pem());
    assert!(matches!(
        check_crl(&cert_der, &ca.ca_pem()),
        Err(CrlError::Der(_))
    ));

    // A bad CA certificate.
    assert!(matches!(
        check_crl(&der, "not a certificate"),
        Err(CrlError::CaCertificate(_))
    ));
}

#[test]
fn crl_without_number_is_refused() {
    let lab = Lab::new();
    let ca = Ca::new(&lab, "ca", "/CN=Test CA", false);
    let (_, der) = ca.gencrl("crl.pem");
    assert_eq!(
        check_crl(&der, &ca.ca_pem()),
        Err(CrlError::MissingCrlNumber)
    );
}

#[test]
fn leaf_certificate_cannot_vouch_for_a_crl() {
    let lab = Lab::new();
    let ca = Ca::new(&lab, "ca", "/CN=Test CA", true);
    let cert = ca.issue("mi-leaf");
    let (_, der) = ca.gencrl("crl.pem");
    assert_eq!(
        check_crl(&der, &lab.read_string(&cert)),
        Err(CrlError::CaCannotSignCrl)
    );
}
