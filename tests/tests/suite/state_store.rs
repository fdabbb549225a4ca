//! The state table over moto: concurrency, pagination, the original sample's items, hostile rows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use state::dynamo::{attr, legacy_time};
use state::plan::{DueReason, DueWindow, Plan, PlanItem, PlanPolicy};
use state::ports::{Enroller, FleetReader, RotationStarter, StoreError};
use state::record::{HostOverrides, RotationState, StateKind};
use state::{HostId, RotationId};
use time::{Duration, OffsetDateTime};

use crate::common::{host_id, item, n, s, TableFixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_starts_one_winner() {
    let fx = TableFixture::new().await;
    let store = Arc::new(fx.store(1));
    let host = HostId::parse(&host_id(7)).unwrap();
    store.enrol(&host, &HostOverrides::default()).await.unwrap();
    let record = store.host(&host).await.unwrap().unwrap();
    let now = OffsetDateTime::now_utc();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let (store, record) = (store.clone(), record.clone());
        tasks.spawn(async move {
            let rotation = RotationId::new(&record.host, i, now);
            (rotation.clone(), store.start(&record, &rotation, now).await)
        });
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (rotation, Ok(rec)) => winners.push((rotation, rec)),
            (_, Err(StoreError::Conflict(c))) => {
                assert_eq!(c.host, host);
                conflicts += 1
            }
            (_, Err(other)) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one start wins");
    assert_eq!(conflicts, 7, "the seven others get the typed conflict");

    let stored = store.host(&host).await.unwrap().unwrap();
    let (rotation, returned) = &winners[0];
    assert_eq!(&stored, returned, "the item holds the winner's write");
    assert_eq!(stored.version, Some(1));
    assert_eq!(
        stored.state,
        RotationState::CsrRequested {
            rotation: rotation.clone(),
            command_id: None
        }
    );
    // And a start on the stale read after the win is refused too: one rotation in flight.
    let again = store
        .start(&record, &RotationId::new(&host, 99, now), now)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    let fresh = store
        .start(&stored, &RotationId::new(&host, 100, now), now)
        .await;
    assert!(
        matches!(fresh, Err(StoreError::Conflict(_))),
        "in flight: no second rotation"
    );
}

/// A deployed item as this service writes it, padded to about 1 KB with an admin's notes.
fn deployed_item(
    i: u64,
    not_before: OffsetDateTime,
    renew_at: OffsetDateTime,
) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let not_after = not_before + Duration::days(7);
    item(&[
        (attr::HOST_ID, s(&host_id(i))),
        (attr::STATE, s("DEPLOYED")),
        (attr::VERSION, n(4)),
        (attr::STATE_SINCE, n(not_before.unix_timestamp())),
        (
            attr::SERIAL,
            s(&format!(
                "{:02x}:{:02x}:{:02x}",
                i % 256,
                (i / 256) % 256,
                7
            )),
        ),
        (
            attr::NOT_BEFORE,
            s(&not_before
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()),
        ),
        (
            attr::NOT_AFTER,
            s(&not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()),
        ),
        (attr::EXPIRY, s(&legacy_time(not_after))),
        (attr::RENEW_AT, n(renew_at.unix_timestamp())),
        (attr::CERT_PATH, s("/etc/pki/rolesanywhere")),
        ("notes", s(&"x".repeat(700))),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_thousand_hosts_every_due_host_listed_once() {
    let fx = TableFixture::new().await;
    let now = OffsetDateTime::now_utc();
    let mut items = Vec::new();
    let mut expected_due = BTreeSet::new();
    for i in 0..3000u64 {
        let nb = now - Duration::days(3);
        // Every third host is past its renewal point; one in 50 was enrolled with only hostID.
        if i % 50 == 0 {
            items.push(item(&[
                (attr::HOST_ID, s(&host_id(i))),
                ("notes", s(&"y".repeat(950))),
            ]));
            expected_due.insert(host_id(i));
        } else if i % 3 == 0 {
            items.push(deployed_item(
                i,
                nb,
                now - Duration::minutes(i as i64 % 600 + 1),
            ));
            expected_due.insert(host_id(i));
        } else {
            items.push(deployed_item(
                i,
                nb,
                now + Duration::hours(i as i64 % 90 + 1),
            ));
        }
    }
    fx.put_raw(items).await;

    for segments in [1, 4] {
        let scan = fx
            .store(segments)
            .candidates(DueWindow::at(now, &PlanPolicy::default()))
            .await
            .unwrap();
        assert!(scan.rejected.is_empty(), "{:?}", scan.rejected.first());
        assert_eq!(scan.items_read, 3000, "every item read across pages");
        assert!(
            scan.pages >= 3,
            "3 MB of items cross the 1 MB page limit: {} pages",
            scan.pages
        );
        let plan = Plan::build(scan.records, now, &PlanPolicy::default());
        let due: Vec<String> = plan.starting().map(|(r, _)| r.host.to_string()).collect();
        let due_set: BTreeSet<String> = due.iter().cloned().collect();
        assert_eq!(
            due.len(),
            due_set.len(),
            "no host listed twice ({segments} segments)"
        );
        assert_eq!(
            due_set, expected_due,
            "exactly the due hosts ({segments} segments)"
        );
    }
}

#[tokio::test]
async fn original_sample_items_are_read_and_planned() {
    let fx = TableFixture::new().await;
    let now = OffsetDateTime::now_utc();
    let far = now + Duration::days(6);
    let near = now + Duration::hours(20);
    fx.put_raw(vec![
        // Exactly as the original sample writes them after a rotation.
        item(&[
            (attr::HOST_ID, s(&host_id(1))),
            ("expiry", s(&legacy_time(far))),
            ("serial", s("4c:1f:aa:00:9e")),
            ("renewalDate", s(&legacy_time(now - Duration::days(1)))),
            ("status", s("ISSUED")),
        ]),
        item(&[
            (attr::HOST_ID, s(&host_id(2))),
            ("expiry", s(&legacy_time(near))),
            ("serial", s("4c:1f:aa:00:9f")),
            ("renewalDate", s(&legacy_time(now - Duration::days(6)))),
            ("status", s("ISSUED")),
        ]),
        // An admin's enrolment: only hostID.
        item(&[(attr::HOST_ID, s(&host_id(3)))]),
    ])
    .await;
    let store = fx.store(1);
    let policy = PlanPolicy::default();
    let plan_of = |r: &state::HostRecord| state::plan::plan_host(r, now, &policy);

    let r1 = store
        .host(&HostId::parse(&host_id(1)).unwrap())
        .await
        .unwrap()
        .unwrap();
    let cert = r1
        .current
        .clone()
        .expect("expiry read as the current certificate");
    assert_eq!(cert.serial.as_deref(), Some("4c:1f:aa:00:9e"));
    assert_eq!(cert.not_after.unix_timestamp(), far.unix_timestamp());
    assert!(
        matches!(plan_of(&r1), PlanItem::NotDue { .. }),
        "6 of 7 days left: not due"
    );

    let r2 = store
        .host(&HostId::parse(&host_id(2)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        plan_of(&r2),
        PlanItem::Due(DueReason::RenewalWindow),
        "under a third left: due"
    );

    let r3 = store
        .host(&HostId::parse(&host_id(3)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        plan_of(&r3),
        PlanItem::Due(DueReason::NeverIssued),
        "only hostID: due now"
    );

    // The seed's manual rotation: remove `expiry` from a deployed host → due on the next run.
    fx.client
        .update_item()
        .table_name(&fx.table)
        .key(attr::HOST_ID, s(&host_id(1)))
        .update_expression("REMOVE expiry")
        .send()
        .await
        .unwrap();
    let scan = store
        .candidates(DueWindow::at(now, &PlanPolicy::default()))
        .await
        .unwrap();
    let plan = Plan::build(scan.records, now, &policy);
    let due: BTreeSet<String> = plan.starting().map(|(r, _)| r.host.to_string()).collect();
    assert_eq!(
        due,
        [host_id(1), host_id(2), host_id(3)].into_iter().collect()
    );
    let r1 = plan
        .items
        .iter()
        .find(|(r, _)| r.host.as_str() == host_id(1))
        .unwrap();
    assert!(matches!(
        r1.1,
        PlanItem::Due(DueReason::NeverIssued | DueReason::ExpiryRemoved)
    ));
}

#[tokio::test]
async fn removing_expiry_from_a_deployed_host_forces_rotation() {
    let fx = TableFixture::new().await;
    let now = OffsetDateTime::now_utc();
    fx.put_raw(vec![deployed_item(
        5,
        now - Duration::hours(1),
        now + Duration::days(4),
    )])
    .await;
    let store = fx.store(2);
    let plan = Plan::build(
        store
            .candidates(DueWindow::at(now, &PlanPolicy::default()))
            .await
            .unwrap()
            .records,
        now,
        &PlanPolicy::default(),
    );
    assert_eq!(
        plan.starting().count(),
        0,
        "freshly deployed: not due, filtered server-side"
    );
    fx.client
        .update_item()
        .table_name(&fx.table)
        .key(attr::HOST_ID, s(&host_id(5)))
        .update_expression("REMOVE expiry")
        .send()
        .await
        .unwrap();
    let plan = Plan::build(
        store
            .candidates(DueWindow::at(now, &PlanPolicy::default()))
            .await
            .unwrap()
            .records,
        now,
        &PlanPolicy::default(),
    );
    let due: Vec<_> = plan
        .starting()
        .map(|(r, i)| (r.host.to_string(), i.clone()))
        .collect();
    assert_eq!(
        due,
        vec![(host_id(5), PlanItem::Due(DueReason::ExpiryRemoved))]
    );
    assert_eq!(plan.items[0].0.state.kind(), StateKind::Deployed);
}

#[tokio::test]
async fn hostile_rows_are_refused_and_the_rest_planned() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let fx = TableFixture::new().await;
    let now = OffsetDateTime::now_utc();
    let big = "A".repeat(10 * 1024);
    let hostile: Vec<(HashMap<String, A>, &str)> = vec![
        (item(&[(attr::HOST_ID, s("mi-0123; rm -rf /"))]), "hostID"),
        (item(&[(attr::HOST_ID, s("$(curl evil)"))]), "hostID"),
        (item(&[(attr::HOST_ID, s("../../etc/passwd"))]), "hostID"),
        (
            item(&[(attr::HOST_ID, s("MI-0123456789ABCDEF0"))]),
            "hostID",
        ),
        (item(&[(attr::HOST_ID, s("i-123"))]), "hostID"),
        (
            item(&[(attr::HOST_ID, s(&format!("mi-{}", &big[..2000])))]),
            "hostID",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9001))),
                (attr::CERT_PATH, s("/etc/pki; reboot")),
            ]),
            "certPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9002))),
                (attr::KEY_PATH, s("/etc/$(id)")),
            ]),
            "keyPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9003))),
                (attr::KEY_PATH, s("/etc/`id`")),
            ]),
            "keyPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9004))),
                (attr::CACERT_PATH, s("/etc/../../root")),
            ]),
            "cacertPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9005))),
                (attr::CERT_PATH, s("etc/pki")),
            ]),
            "certPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9006))),
                (attr::CERT_PATH, s("/etc/pki\nreboot")),
            ]),
            "certPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9007))),
                (attr::SIGNING_HELPER_PATH, s("/opt/it's")),
            ]),
            "signinghelperPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9008))),
                (attr::CERT_PATH, s(&format!("/{big}"))),
            ]),
            "certPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9009))),
                (attr::CERT_PATH, s("/etc/pki dir")),
            ]),
            "certPath",
        ),
        (
            item(&[(attr::HOST_ID, s(&host_id(9010))), (attr::CERT_PATH, n(42))]),
            "certPath",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9011))),
                (attr::EXPIRY, n(20261201)),
            ]),
            "expiry",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9012))),
                (attr::EXPIRY, s("next tuesday")),
            ]),
            "expiry",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9013))),
                (attr::KEY_ALGORITHM, s("DSA_1024")),
            ]),
            "keyAlgorithm",
        ),
        (
            item(&[
                (attr::HOST_ID, s(&host_id(9014))),
                (attr::SERIAL, s("01; rm -rf /")),
            ]),
            "serial",
        ),
    ];
    assert_eq!(hostile.len(), 20);
    let mut items: Vec<_> = hostile.iter().map(|(i, _)| i.clone()).collect();
    let valid: BTreeSet<String> = (1..=5).map(host_id).collect();
    for h in &valid {
        items.push(item(&[
            (attr::HOST_ID, s(h)),
            (attr::CERT_PATH, s("/srv/pki/certs")),
        ]));
    }
    fx.put_raw(items).await;

    let scan = fx
        .store(3)
        .candidates(DueWindow::at(now, &PlanPolicy::default()))
        .await
        .unwrap();
    assert_eq!(scan.rejected.len(), 20, "{:#?}", scan.rejected);
    for (_, attribute) in &hostile {
        assert!(
            scan.rejected
                .iter()
                .any(|r| r.reason.to_string().contains(attribute)),
            "a refusal names {attribute}"
        );
    }
    for r in &scan.rejected {
        let msg = r.reason.to_string();
        assert!(msg.len() < 300, "messages stay short: {msg}");
        assert!(!msg.contains('\n'), "no raw newline echoed: {msg:?}");
    }
    let plan = Plan::build(scan.records, now, &PlanPolicy::default());
    let due: BTreeSet<String> = plan.starting().map(|(r, _)| r.host.to_string()).collect();
    assert_eq!(due, valid, "the valid rows around them are still planned");
}

/// The first run after migrating from the original sample: its rows carry only `expiry`. Rows
/// that cannot be due are left out server-side; every row that can be, or that is malformed, is
/// read; and a row of ours with a renewal point of the wrong type is refused, not hidden.
#[tokio::test]
async fn migrated_fleet_lists_rows_that_can_be_due_and_every_malformed_one() {
    let fx = TableFixture::new().await;
    let now = OffsetDateTime::now_utc();
    let policy = PlanPolicy::default();
    let legacy = |i: u64, expiry: Option<String>| {
        let mut it = item(&[
            (attr::HOST_ID, s(&host_id(i))),
            ("serial", s("4c:1f:aa:00:9e")),
            ("status", s("ISSUED")),
        ]);
        if let Some(e) = expiry {
            it.insert(attr::EXPIRY.into(), s(&e));
        }
        it
    };
    let rfc = |t: OffsetDateTime| {
        t.to_offset(time::macros::offset!(+14:00))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // 40 rows far from expiry (30 days of an assumed 7-day life left): provably not due.
    let mut rows: Vec<_> = (100..140)
        .map(|i| legacy(i, Some(legacy_time(now + Duration::days(30)))))
        .collect();
    rows.extend([
        legacy(1, Some(legacy_time(now + Duration::hours(20)))), // inside the renewal window
        legacy(2, Some(legacy_time(now - Duration::hours(1)))),  // expired
        legacy(3, None),                                         // no expiry: rotate now
        legacy(4, Some(rfc(now + Duration::hours(20)))),         // RFC 3339, +14:00
    ]);
    // A long-lived certificate with its NotBefore: 60 of 360 days left, due under a third.
    let mut long = legacy(5, Some(legacy_time(now + Duration::days(60))));
    long.insert(
        attr::NOT_BEFORE.into(),
        s(&legacy_time(now - Duration::days(300))),
    );
    rows.push(long);
    // Malformed: each must reach the planner and be refused with its reason.
    rows.push(legacy(6, Some("next tuesday".into())));
    let mut numeric = legacy(7, None);
    numeric.insert(attr::EXPIRY.into(), n(20_991_231));
    rows.push(numeric);
    let mut bad_renew_at = deployed_item(8, now - Duration::days(1), now + Duration::days(3));
    bad_renew_at.insert(attr::RENEW_AT.into(), s("tomorrow"));
    rows.push(bad_renew_at);
    // A deployed row of ours, not due: left out.
    rows.push(deployed_item(
        9,
        now - Duration::days(1),
        now + Duration::days(3),
    ));
    fx.put_raw(rows).await;

    let scan = fx
        .store(2)
        .candidates(DueWindow::at(now, &policy))
        .await
        .unwrap();
    assert_eq!(scan.items_read, 49, "every row is read by the scan");
    let listed: BTreeSet<String> = scan.records.iter().map(|r| r.host.to_string()).collect();
    let expected: BTreeSet<String> = (1..=5).map(host_id).collect();
    assert_eq!(listed, expected, "exactly the rows that can be due");
    let refused: BTreeSet<(String, String)> = scan
        .rejected
        .iter()
        .map(|r| {
            let why = r.reason.to_string();
            let attribute = [attr::EXPIRY, attr::RENEW_AT]
                .into_iter()
                .find(|a| why.contains(a))
                .unwrap_or("?");
            (r.key.trim_matches('"').to_owned(), attribute.to_owned())
        })
        .collect();
    assert_eq!(
        refused,
        [
            (host_id(6), attr::EXPIRY.to_owned()),
            (host_id(7), attr::EXPIRY.to_owned()),
            (host_id(8), attr::RENEW_AT.to_owned()),
        ]
        .into_iter()
        .collect(),
        "{:#?}",
        scan.rejected
    );
    let plan = Plan::build(scan.records, now, &policy);
    let due: BTreeSet<String> = plan.starting().map(|(r, _)| r.host.to_string()).collect();
    assert_eq!(due, expected, "and every listed row is due");
}
