//! The demo as a user checks it: every claim in `report.json` holds against the files it names.

use std::process::Command;

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl x509 -serial` prints `serial=0A1B…`; the report uses `0a:1b:…`.
fn normalize(serial: &str) -> String {
    serial
        .trim()
        .trim_start_matches("serial=")
        .replace(':', "")
        .trim_start_matches('0')
        .to_ascii_lowercase()
}

#[test]
fn demo_report_checks_out_with_openssl() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("DEMO_OUT", out.path())
        .status()
        .expect("demo runs");
    assert!(status.success(), "the demo exits 0");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 12);
    let ca = out.path().join("ca.pem");
    for h in hosts {
        let id = h["hostID"].as_str().unwrap();
        assert_eq!(h["state"], "DEPLOYED", "{id}");
        let (cert, key, chain) = (
            h["certFile"].as_str().unwrap(),
            h["keyFile"].as_str().unwrap(),
            h["chainFile"].as_str().unwrap(),
        );
        assert!(
            openssl(&["verify", "-CAfile", chain, cert]).contains("OK"),
            "{id}"
        );
        assert!(
            openssl(&["verify", "-CAfile", ca.to_str().unwrap(), cert]).contains("OK"),
            "{id}: signed by ca.pem"
        );
        assert_eq!(
            normalize(&openssl(&["x509", "-in", cert, "-noout", "-serial"])),
            normalize(h["serial"].as_str().unwrap()),
            "{id}: serial"
        );
        assert_eq!(
            openssl(&["x509", "-in", cert, "-noout", "-pubkey"]),
            openssl(&["pkey", "-in", key, "-pubout"]),
            "{id}: the key file holds the certificate's key"
        );
        let subject = openssl(&["x509", "-in", cert, "-noout", "-subject"]);
        assert!(subject.contains(id), "{id}: {subject}");
        let not_after = openssl(&[
            "x509", "-in", cert, "-noout", "-enddate", "-dateopt", "iso_8601",
        ]);
        let day = &h["notAfter"].as_str().unwrap()[..10];
        assert!(not_after.contains(day), "{id}: {not_after} vs {day}");
        assert_eq!(
            h["createSession"]["ok"], true,
            "{id}: credentials through aws_signing_helper: {}",
            h["createSession"]
        );
        assert!(
            h["createSession"]["expiration"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{id}: the session's expiry"
        );
    }
    let revocation = &report["revocation"];
    assert_eq!(revocation["oldCertificateCreateSession"]["ok"], false);
    assert!(
        revocation["oldCertificateCreateSession"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Certificate revoked")),
        "the revoked certificate is refused: {revocation}"
    );
    assert_eq!(revocation["newCertificateCreateSession"]["ok"], true);
    let revoked = report["revokedSerials"].as_array().unwrap();
    assert_eq!(revoked.len(), 1);
    let crl = out.path().join("crl/latest.crl");
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        ca.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    let listed = normalize(revoked[0].as_str().unwrap()).to_ascii_uppercase();
    assert!(
        text.to_ascii_uppercase().contains(&listed),
        "the revoked serial is on the CRL"
    );
    assert!(
        hosts.iter().all(|h| h["serial"] != revoked[0]),
        "the revoked host was re-issued"
    );
    let anchor: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("trust-anchor-crls.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        anchor.as_array().unwrap().len(),
        1,
        "one CRL on the trust anchor"
    );
}
