//! CRLProcessor's decisions, as pure functions: which objects are ours (and which version),
//! whether a checked CRL fits the trust anchor, and which hosts its serials revoke (whether it
//! is newer than the one applied is `state::crl_ledger`'s decision). The shell in `lib.rs`
//! fetches, calls these, and carries out what they say.

use std::collections::HashMap;

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use pki::CrlFacts;
use rotation::crl::MAX_ANCHOR_CRL_BYTES;
use rotation::events::{Envelope, ObjectCreatedDetail, S3_OBJECT_CREATED};
use rotation::Config;
use state::HostRecord;
use time::OffsetDateTime;

/// The CA's ID: the UUID at the end of its ARN (Private CA names its CRL `<prefix><id>.crl`).
pub fn ca_id(ca_arn: &str) -> &str {
    ca_arn.rsplit('/').next().unwrap_or(ca_arn)
}

/// The S3 object an event names: bucket, key, and the version created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlObject<'e> {
    /// The bucket.
    pub bucket: &'e str,
    /// The key.
    pub key: &'e str,
    /// The version the event announces (`None`: an unversioned bucket; the latest is read).
    pub version: Option<&'e str>,
}

/// The S3 object an event names, if it is a CRL of ours; otherwise why it is ignored (no call
/// is made for an ignored object).
pub fn crl_object<'e>(
    event: &'e Envelope<ObjectCreatedDetail>,
    config: &Config,
) -> Result<CrlObject<'e>, String> {
    let (bucket, key) = (&event.detail.bucket.name, &event.detail.object.key);
    if event.source != "aws.s3" || event.detail_type != S3_OBJECT_CREATED {
        return Err(format!(
            "{} / {} is not an S3 object creation",
            event.source, event.detail_type
        ));
    }
    if *bucket != config.crl_bucket {
        return Err(format!("bucket {bucket} is not the CRL bucket"));
    }
    if !key.starts_with(&config.crl_prefix) {
        return Err(format!(
            "object {key} is outside the CRL prefix {}",
            config.crl_prefix
        ));
    }
    if !key.ends_with(".crl") {
        return Err(format!(
            "object {key} is not a CRL (Private CA writes <prefix><CA id>.crl)"
        ));
    }
    Ok(CrlObject {
        bucket,
        key,
        version: event.detail.object.version_id.as_deref(),
    })
}

/// Why a CRL of our CA cannot go to the trust anchor for its size, if it cannot.
pub fn too_large(facts: &CrlFacts) -> Option<String> {
    (facts.der.len() > MAX_ANCHOR_CRL_BYTES).then(|| {
        format!(
            "CRL number {} is {} bytes, over the {MAX_ANCHOR_CRL_BYTES} bytes Roles Anywhere accepts: \
             the trust anchor keeps its current CRL",
            facts.crl_number,
            facts.der.len()
        )
    })
}

/// A token naming this invocation's claim: unique per event, CRL, time and claim in the process.
pub fn claim_token(event_id: &str, number: &str, now: OffsetDateTime) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, AtomicOrdering::Relaxed);
    format!("{event_id}/{number}/{}/{seq}", now.unix_timestamp_nanos())
}

/// The name our CRL carries on the trust anchor.
pub fn anchor_crl_name(ca_id: &str) -> String {
    format!("cert-rotation-{ca_id}")
}

/// A host the CRL revokes: its record, its current serial as the item holds it, and the hold
/// its entry's reason calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'r> {
    /// The host's record.
    pub record: &'r HostRecord,
    /// Its current serial, as the item holds it.
    pub serial: &'r str,
    /// The reason holding it (see `rotation::revocation`): the entry's reason unless it is
    /// `SUPERSEDED`; an entry without a reason code holds as `UNSPECIFIED`.
    pub held: Option<String>,
}

/// The hosts whose current serial the CRL lists (hosts at rest or failed: see
/// [`HostRecord::revocable_serial`]), each with the hold its entry's reason calls for. Serials
/// are compared in their canonical form ([`pki::normalize_serial`]): the original sample wrote
/// them upper-case, colon-separated, the CRL parser and Private CA give lower-case bytes.
pub fn hosts_to_revoke<'r>(records: &'r [HostRecord], facts: &CrlFacts) -> Vec<Listed<'r>> {
    let revoked: HashMap<String, Option<&str>> = facts
        .revoked_serials
        .iter()
        .map(|s| {
            let reason = facts.revocation_reasons.get(s).copied().flatten();
            (pki::canonical_serial(s), reason)
        })
        .collect();
    records
        .iter()
        .filter_map(|record| {
            let serial = record.revocable_serial()?;
            let reason = revoked.get(&pki::canonical_serial(serial))?;
            Some(Listed {
                record,
                serial,
                held: rotation::revocation::hold_for(*reason),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki::CrlNumber;
    use state::item::{attr, record_from_item, Attr, Item};
    use time::macros::datetime;

    fn config() -> Config {
        let mut env = std::collections::HashMap::new();
        for (k, v) in [
            ("TABLE_NAME", "t"),
            (
                "CA_ARN",
                "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca-1",
            ),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:us-east-1:111122223333:alerts",
            ),
            ("GENERATE_CSR_DOCUMENT", "gen"),
            ("DEPLOY_CERT_DOCUMENT", "dep"),
            ("CRL_BUCKET", "crls"),
            ("CRL_PREFIX", "crl/"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        Config::from_map(&env).expect("a complete configuration")
    }

    fn event(
        source: &str,
        detail_type: &str,
        bucket: &str,
        key: &str,
    ) -> Envelope<ObjectCreatedDetail> {
        serde_json::from_value(serde_json::json!({
            "id": "1", "detail-type": detail_type, "source": source, "resources": [],
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}}
        }))
        .expect("an S3 event")
    }

    fn facts(number: u128, serials: &[&str]) -> CrlFacts {
        CrlFacts {
            crl_number: CrlNumber::from(number),
            this_update: datetime!(2026-12-01 0:00 UTC),
            next_update: None,
            revoked_serials: serials.iter().map(|s| s.to_string()).collect(),
            revocation_reasons: Default::default(),
            issuer: "CN=ca".into(),
            der: vec![0x30],
        }
    }

    #[test]
    fn only_crl_objects_of_our_bucket_and_prefix_are_taken() {
        let c = config();
        let ok = event("aws.s3", S3_OBJECT_CREATED, "crls", "crl/ca-1.crl");
        assert_eq!(
            crl_object(&ok, &c),
            Ok(CrlObject {
                bucket: "crls",
                key: "crl/ca-1.crl",
                version: None
            })
        );
        let mut versioned = ok.clone();
        versioned.detail.object.version_id = Some("v2".into());
        assert_eq!(crl_object(&versioned, &c).unwrap().version, Some("v2"));
        let cases = [
            (
                event("aws.ssm", S3_OBJECT_CREATED, "crls", "crl/ca-1.crl"),
                "not an S3 object creation",
            ),
            (
                event("aws.s3", "Object Deleted", "crls", "crl/ca-1.crl"),
                "not an S3 object creation",
            ),
            (
                event("aws.s3", S3_OBJECT_CREATED, "other", "crl/ca-1.crl"),
                "not the CRL bucket",
            ),
            (
                event("aws.s3", S3_OBJECT_CREATED, "crls", "elsewhere/ca-1.crl"),
                "outside the CRL prefix",
            ),
            (
                event("aws.s3", S3_OBJECT_CREATED, "crls", "crl/readme.txt"),
                "is not a CRL",
            ),
        ];
        for (e, why) in cases {
            let reason = crl_object(&e, &c).unwrap_err();
            assert!(reason.contains(why), "{reason}");
        }
    }

    #[test]
    fn a_crl_over_the_anchor_limit_is_too_large() {
        let mut f = facts(7, &[]);
        f.der = vec![0; MAX_ANCHOR_CRL_BYTES];
        assert_eq!(too_large(&f), None);
        f.der.push(0);
        let why = too_large(&f).expect("one byte over");
        assert!(why.contains("300001 bytes"), "{why}");
    }

    #[test]
    fn claim_tokens_differ_per_claim() {
        let now = datetime!(2026-12-01 0:00 UTC);
        assert_ne!(claim_token("e", "1", now), claim_token("e", "1", now));
    }

    fn host(id: &str, state: Option<&str>, serial: Option<&str>) -> HostRecord {
        let mut item = Item::new();
        item.insert(attr::HOST_ID.into(), Attr::s(id));
        if let Some(s) = state {
            item.insert(attr::STATE.into(), Attr::s(s));
            item.insert(attr::VERSION.into(), Attr::n(1));
        }
        if let Some(s) = serial {
            item.insert(attr::SERIAL.into(), Attr::s(s));
            item.insert(attr::EXPIRY.into(), Attr::s("2026-12-08 00:00:00"));
        }
        record_from_item(&item).expect("a valid row")
    }

    #[test]
    fn listed_serials_revoke_hosts_at_rest_or_failed() {
        let records = vec![
            host("mi-00000000000000001", Some("DEPLOYED"), Some("0a")),
            host("mi-00000000000000002", Some("DEPLOYED"), Some("0b")),
            host("mi-00000000000000003", None, Some("0c")),
            host("mi-00000000000000004", Some("FAILED"), Some("0d")),
            host("mi-00000000000000005", None, None),
            host("mi-00000000000000006", None, Some("8A:01")),
        ];
        let mut crl = facts(3, &["0a", "0c", "0d", "00:8a:01"]);
        crl.revocation_reasons = [
            ("0a".to_owned(), Some("SUPERSEDED")),
            ("0c".to_owned(), Some("KEY_COMPROMISE")),
            ("0d".to_owned(), None),
        ]
        .into_iter()
        .collect();
        let hit = hosts_to_revoke(&records, &crl);
        let names: Vec<(String, &str, Option<&str>)> = hit
            .iter()
            .map(|l| (l.record.host.to_string(), l.serial, l.held.as_deref()))
            .collect();
        // The entry's reason decides the hold; no reason code (or no entry of reasons) holds.
        assert_eq!(
            names,
            vec![
                ("mi-00000000000000001".to_string(), "0a", None),
                (
                    "mi-00000000000000003".to_string(),
                    "0c",
                    Some("KEY_COMPROMISE")
                ),
                (
                    "mi-00000000000000004".to_string(),
                    "0d",
                    Some("UNSPECIFIED")
                ),
                (
                    "mi-00000000000000006".to_string(),
                    "8A:01",
                    Some("UNSPECIFIED")
                )
            ]
        );
    }

    #[test]
    fn the_ca_id_is_the_end_of_its_arn() {
        assert_eq!(
            ca_id("arn:aws:acm-pca:us-east-1:1:certificate-authority/abc"),
            "abc"
        );
        assert_eq!(anchor_crl_name("abc"), "cert-rotation-abc");
    }
}
