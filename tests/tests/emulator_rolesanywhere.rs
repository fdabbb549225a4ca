//! The Roles Anywhere emulator's CRL operations, driven through the real AWS SDK client
//! (retries off).
//!
//! Why: the CRL processor's end-to-end tests (security invariant 4 in docs/design.md) trust that the emulator
//! enforces what the service enforces: 2 CRLs per trust anchor, UpdateCrl replaces the data,
//! ListCrls pages, garbage refused. These tests pin that behaviour with CRLs from the Private
//! CA emulator.

use aws_sdk_rolesanywhere::error::ProvideErrorMetadata as _;
use tests::emulators::pca::{self, PcaConfig};
use tests::emulators::rolesanywhere::{self, RolesAnywhereConfig, RolesAnywhereHandle};
use tests::emulators::Capture;

mod emulator_common;

use emulator_common::pem_der;

fn rolesanywhere_client(h: &RolesAnywhereHandle) -> aws_sdk_rolesanywhere::Client {
    aws_sdk_rolesanywhere::Client::new(&tests::aws::sdk_config(&h.url(), false))
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
