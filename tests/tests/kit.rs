//! The in-memory kit keeps the contracts the handlers rely on: the store's guards and scan,
//! the lagging index, the ledger, the CA's idempotency window and delay, the hosts' commands,
//! the trust anchor's two-CRL limit, the clock. No server needed.

use pki::{CsrPolicy, KeyAlgorithm};
use rotation::alerts::{Alert, AlertKind, Alerts};
use rotation::ca::{CertificateAuthority, Fetched};
use rotation::crl::{CrlSource, Replaced, TrustAnchorCrls};
use rotation::hosts::{CsrBatch, HostAgent, Invocation, Reachability};
use state::item::{attr, enrolment_item, Attr, Item};
use state::plan::{DueWindow, PlanPolicy};
use state::ports::{CrlLedger, Enroller, FleetReader, PendingCertificates, Transitions};
use state::record::{DeployedCert, HostOverrides, RotationState, StateKind};
use state::rules::{apply, Change};
use state::{HostId, HostPath, RotationId, StoreError};
use tests::kit::ca::IDEMPOTENCY_WINDOW;
use tests::kit::hosts::{csr_output, generate_csr, HostSetup, Request, STDOUT_LIMIT};
use tests::kit::{
    Kit, ManualClock, MemoryAlerts, MemoryCa, MemoryCrlSource, MemoryHosts, MemoryStore,
    MemoryTrustAnchor,
};
use time::{Duration, OffsetDateTime};

fn host(i: u64) -> HostId {
    HostId::parse(&format!("mi-{i:017x}")).unwrap()
}

fn r(id: &str) -> RotationId {
    RotationId(id.into())
}

fn cert(now: OffsetDateTime, serial: &str) -> DeployedCert {
    DeployedCert {
        serial: Some(serial.into()),
        not_before: Some(now),
        not_after: now + Duration::days(7),
        renew_at: Some(now + Duration::days(4)),
        cert_arn: None,
    }
}

/// The happy path as changes: start, CSR sent, issuing, deploying, deploy sent, deployed.
fn rotation(v: Option<u64>, id: &str, arn: &str, serial: &str, now: OffsetDateTime) -> Vec<Change> {
    vec![
        Change::Start {
            expected_version: v,
            rotation: r(id),
        },
        Change::CsrSent {
            rotation: r(id),
            command_id: format!("{id}-csr"),
        },
        Change::Issuing {
            rotation: r(id),
            command_id: format!("{id}-csr"),
            cert_arn: arn.into(),
            key_fingerprint: "ff".into(),
        },
        Change::BeginDeploy {
            rotation: r(id),
            cert_arn: arn.into(),
            pending: cert(now, serial),
        },
        Change::DeploySent {
            rotation: r(id),
            command_id: format!("{id}-deploy"),
        },
        Change::Deployed {
            command_id: format!("{id}-deploy"),
            cert: cert(now, serial),
        },
    ]
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

#[tokio::test]
async fn the_store_refuses_stale_writes_and_leaves_the_item_untouched() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let h = host(1);
    store.enrol(&h, &HostOverrides::default()).await.unwrap();
    let fresh = store.host(&h).await.unwrap().unwrap();
    let started = store
        .transition(&h, rotation(None, "a", "arn:1", "0a", now)[0].clone(), now)
        .await;
    assert_eq!(started.unwrap().version, Some(1));

    let before = store.item(h.as_str()).unwrap();
    let stale = [
        // The view read before the start: version absent, but the item now has one.
        Change::Start {
            expected_version: fresh.version,
            rotation: r("b"),
        },
        // In flight: a second rotation cannot start even with the right version.
        Change::Start {
            expected_version: Some(1),
            rotation: r("b"),
        },
        Change::CsrSent {
            rotation: r("b"),
            command_id: "c".into(),
        },
        Change::Issuing {
            rotation: r("a"),
            command_id: "never-sent".into(),
            cert_arn: "arn:1".into(),
            key_fingerprint: "ff".into(),
        },
        Change::Fail {
            from: StateKind::Issuing,
            rotation: r("a"),
            stage: state::FailureStage::Issue,
            reason: "x".into(),
            attempts: 1,
            next_attempt_at: now,
        },
        Change::Revoke {
            from: StateKind::Deployed,
            rotation: None,
            current: Some("0a".into()),
            serial: "0a".into(),
            held: None,
        },
    ];
    for change in stale {
        let out = store.transition(&h, change.clone(), now).await;
        assert!(is_conflict(&out), "{change:?} gave {out:?}");
    }
    assert_eq!(
        store.item(h.as_str()).unwrap(),
        before,
        "refusals write nothing"
    );
    assert_eq!(store.calls().conflicts, 6);
    let absent = store
        .transition(
            &host(2),
            Change::Revoke {
                from: StateKind::Idle,
                rotation: None,
                current: None,
                serial: "0a".into(),
                held: None,
            },
            now,
        )
        .await;
    assert!(is_conflict(&absent), "no item: no rule holds");
    assert!(
        store.item(host(2).as_str()).is_none(),
        "and no item is created"
    );
}

#[tokio::test]
async fn the_store_is_the_pure_model_step_for_step() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let h = host(3);
    let mut model: Item = enrolment_item(&h, &HostOverrides::default());
    store.put_item(model.clone());
    let mut changes = rotation(None, "a", "arn:1", "0a", now);
    changes.extend(rotation(Some(4), "b", "arn:2", "0b", now));
    changes.push(Change::Revoke {
        from: StateKind::Deployed,
        rotation: None,
        current: Some("0b".into()),
        serial: "0b".into(),
        held: Some("KEY_COMPROMISE".into()),
    });
    changes.push(Change::Release {
        held: "KEY_COMPROMISE".into(),
    });
    for (i, change) in changes.iter().enumerate() {
        let at = now + Duration::minutes(i as i64);
        let expected = apply(&h, Some(&model), change, at);
        let got = store.apply_change(&h, change, at);
        assert_eq!(got.is_ok(), expected.is_ok(), "{change:?}");
        // Each change applies once: a replay is refused by both.
        assert!(
            is_conflict(&store.apply_change(&h, change, at)),
            "{change:?} replayed"
        );
        model = expected.unwrap();
        assert_eq!(store.item(h.as_str()).unwrap(), model, "after {change:?}");
    }
    let rec = store.record(&h).unwrap().unwrap();
    assert_eq!(
        rec.state,
        RotationState::Revoked {
            serial: "0b".into(),
            held: None
        }
    );
    assert_eq!(rec.version, Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_have_one_winner() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let h = host(4);
    store.enrol(&h, &HostOverrides::default()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (store, h) = (store.clone(), h.clone());
        tasks.spawn(async move {
            let change = Change::Start {
                expected_version: None,
                rotation: r(&format!("r{i}")),
            };
            store.transition(&h, change, now).await.is_ok()
        });
    }
    let mut winners = 0;
    while let Some(won) = tasks.join_next().await {
        winners += usize::from(won.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.calls().conflicts, 15);
}

#[tokio::test]
async fn hostile_rows_are_reported_like_the_dynamodb_store_and_service_items_skipped() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let item = |pairs: &[(&str, Attr)]| {
        let i: Item = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        store.put_item(i);
    };
    item(&[(attr::HOST_ID, Attr::s(host(1).as_str()))]);
    item(&[(attr::HOST_ID, Attr::s("mi-XYZ; reboot"))]);
    item(&[
        (attr::HOST_ID, Attr::s(host(2).as_str())),
        (attr::CERT_PATH, Attr::s("/etc/$(id)")),
    ]);
    item(&[
        (attr::HOST_ID, Attr::s(host(3).as_str())),
        (attr::VERSION, Attr::s("1")),
    ]);
    item(&[
        (attr::HOST_ID, Attr::s(host(4).as_str())),
        (attr::STATE, Attr::Other("BOOL")),
    ]);
    item(&[
        (attr::HOST_ID, Attr::s("crl#some-ca")),
        ("crlNumber", Attr::s("01")),
    ]);

    let window = DueWindow::at(now, &PlanPolicy::default());
    let scan = store.candidates(window).await.unwrap();
    assert_eq!(
        scan.records
            .iter()
            .map(|r| r.host.clone())
            .collect::<Vec<_>>(),
        [host(1)]
    );
    let mut keys: Vec<_> = scan.rejected.iter().map(|r| r.key.as_str()).collect();
    keys.sort();
    let expected_keys = [
        format!("\"{}\"", host(2)),
        format!("\"{}\"", host(3)),
        format!("\"{}\"", host(4)),
        "\"mi-XYZ; reboot\"".to_owned(),
    ];
    assert_eq!(
        keys,
        expected_keys.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        scan.items_read, 6,
        "the service item is read, as ScannedCount counts it"
    );
    assert!(matches!(
        store.host(&host(2)).await,
        Err(StoreError::InvalidRow { .. })
    ));

    // The guard holds on the hostile row, so the write happens; the answer is the refusal of
    // the row it leaves, as DynamoDB's ALL_NEW read back through the mapping would be.
    let start = Change::Start {
        expected_version: None,
        rotation: r("a"),
    };
    let out = store.transition(&host(2), start, now).await;
    assert!(matches!(out, Err(StoreError::InvalidRow { .. })), "{out:?}");
    assert_eq!(
        store.item(host(2).as_str()).unwrap()[attr::STATE],
        Attr::s("CSR_REQUESTED")
    );
    // A version of the wrong type never equals a number, and exists: no start.
    let start = Change::Start {
        expected_version: Some(1),
        rotation: r("a"),
    };
    assert!(is_conflict(&store.transition(&host(3), start, now).await));
}

#[tokio::test]
async fn a_version_bump_on_a_version_that_is_not_a_number_is_refused_by_the_guard() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let h = host(5);
    let mut item = enrolment_item(&h, &HostOverrides::default());
    item.insert(attr::STATE.into(), Attr::s("CSR_REQUESTED"));
    item.insert(attr::ROTATION_ID.into(), Attr::s("a"));
    item.insert(attr::VERSION.into(), Attr::s("3"));
    store.put_item(item);
    // No bump: written, then the row is refused on the way back.
    let sent = Change::CsrSent {
        rotation: r("a"),
        command_id: "c".into(),
    };
    let out = store.transition(&h, sent, now).await;
    assert!(matches!(out, Err(StoreError::InvalidRow { .. })), "{out:?}");
    let before = store.item(h.as_str()).unwrap();
    // A bump: `if_not_exists(version, 0) + 1` cannot add to a string, so every rule that bumps
    // the version requires it absent or a number; the write is a conflict and writes nothing.
    let issuing = Change::Issuing {
        rotation: r("a"),
        command_id: "c".into(),
        cert_arn: "arn:1".into(),
        key_fingerprint: "ff".into(),
    };
    let out = store.transition(&h, issuing, now).await;
    assert!(matches!(out, Err(StoreError::Conflict(_))), "{out:?}");
    assert_eq!(store.item(h.as_str()).unwrap(), before, "nothing written");
}

#[tokio::test]
async fn candidates_leave_out_only_hosts_that_provably_need_nothing() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let policy = PlanPolicy::default();
    let deployed = |i: u64, renew_at: OffsetDateTime| {
        let mut item = enrolment_item(&host(i), &HostOverrides::default());
        item.insert(attr::STATE.into(), Attr::s("DEPLOYED"));
        item.insert(attr::EXPIRY.into(), Attr::s("2027-01-01 00:00:00"));
        item.insert(attr::RENEW_AT.into(), Attr::n(renew_at.unix_timestamp()));
        item
    };
    let legacy = |i: u64, expiry: &str| {
        let mut item = enrolment_item(&host(i), &HostOverrides::default());
        item.insert(attr::EXPIRY.into(), Attr::s(expiry));
        item
    };
    store.put_item(deployed(1, now + Duration::days(1)));
    store.put_item(deployed(2, now - Duration::seconds(1)));
    store.put_item(legacy(3, "2099-01-01 00:00:00"));
    store.put_item(legacy(4, "2026-12-02 00:00:00"));
    store.put_item(legacy(5, "2099-01-01T00:00:00Z"));
    store.put_item(enrolment_item(&host(6), &HostOverrides::default()));
    let scan = store.candidates(DueWindow::at(now, &policy)).await.unwrap();
    let listed: Vec<_> = scan.records.iter().map(|r| r.host.clone()).collect();
    assert_eq!(listed, [host(2), host(4), host(5), host(6)]);
    assert_eq!(store.all_hosts().await.unwrap().records.len(), 6);
}

#[tokio::test]
async fn enrolment_is_conditional_on_the_host_not_existing() {
    let store = MemoryStore::new();
    let overrides = HostOverrides {
        cert_path: Some(HostPath::parse("certPath", "/opt/pki").unwrap()),
        ..HostOverrides::default()
    };
    store.enrol(&host(1), &overrides).await.unwrap();
    let again = store.enrol(&host(1), &HostOverrides::default()).await;
    assert!(is_conflict(&again), "{again:?}");
    let rec = store.host(&host(1)).await.unwrap().unwrap();
    assert_eq!(rec.overrides, overrides, "the first enrolment stays");
}

#[tokio::test]
async fn the_crl_ledger_is_claimed_once_then_settled() {
    use state::crl_ledger::{claim_effect, release_effect, settle_effect, CrlClaim, CLAIM_LEASE};
    let store = MemoryStore::new();
    let now = store.clock().now();
    let empty = store.crl_ledger("ca").await.unwrap();
    assert_eq!(empty, Default::default());
    let claim = |token: &str| CrlClaim {
        number: "2".into(),
        token: token.into(),
        until: now + CLAIM_LEASE,
    };
    assert!(store
        .write_crl_ledger("ca", &claim_effect(&empty, &claim("a")))
        .await
        .unwrap());
    // A second claim on the same read loses: the version moved.
    assert!(!store
        .write_crl_ledger("ca", &claim_effect(&empty, &claim("b")))
        .await
        .unwrap());
    assert!(!store
        .write_crl_ledger("ca", &settle_effect(1, "b", "2", "id", now))
        .await
        .unwrap());
    assert!(!store
        .write_crl_ledger("ca", &release_effect(1, "b"))
        .await
        .unwrap());
    assert!(store
        .write_crl_ledger("ca", &settle_effect(1, "a", "2", "crl-id", now))
        .await
        .unwrap());
    let entry = store.crl_ledger("ca").await.unwrap();
    assert_eq!(entry.applied.as_deref(), Some("2"));
    assert_eq!(entry.anchor_crl_id.as_deref(), Some("crl-id"));
    assert_eq!((entry.version, entry.claim), (2, None));
    assert_eq!(
        store.crl_ledger("other-ca").await.unwrap(),
        Default::default()
    );
    let item = store.item("crl#ca").unwrap();
    assert_eq!(item[attr::HOST_ID], Attr::s("crl#ca"));
    assert!(
        store.all_hosts().await.unwrap().records.is_empty(),
        "not a host"
    );
    assert!(
        store.all_hosts().await.unwrap().rejected.is_empty(),
        "not even a refused one"
    );
}

#[tokio::test]
async fn the_pending_index_shows_writes_only_after_its_lag() {
    let clock = ManualClock::default();
    let store = MemoryStore::with_clock(clock.clone()).with_index_lag(Duration::seconds(30));
    let now = clock.now();
    let h = host(1);
    store.enrol(&h, &HostOverrides::default()).await.unwrap();
    for change in &rotation(None, "a", "arn:1", "0a", now)[..3] {
        store.apply_change(&h, change, now).unwrap();
    }
    assert_eq!(
        store.host_waiting_for("arn:1").await.unwrap(),
        None,
        "not visible yet"
    );
    assert_eq!(store.index_backlog(), 1);
    clock.advance(Duration::seconds(29));
    assert_eq!(store.host_waiting_for("arn:1").await.unwrap(), None);
    clock.advance(Duration::seconds(1));
    assert_eq!(
        store.host_waiting_for("arn:1").await.unwrap(),
        Some(h.clone())
    );
    // Deployment clears the attribute; the index keeps showing the host for another lag.
    for change in &rotation(None, "a", "arn:1", "0a", now)[3..] {
        store.apply_change(&h, change, now).unwrap();
    }
    assert_eq!(
        store.host_waiting_for("arn:1").await.unwrap(),
        Some(h.clone())
    );
    store.flush_index();
    assert_eq!(store.host_waiting_for("arn:1").await.unwrap(), None);

    let exact = MemoryStore::new();
    exact.put_item(enrolment_item(&h, &HostOverrides::default()));
    for change in &rotation(None, "a", "arn:2", "0a", now)[..3] {
        exact.apply_change(&h, change, now).unwrap();
    }
    assert_eq!(
        exact.host_waiting_for("arn:2").await.unwrap(),
        Some(h),
        "no lag: exact"
    );
    assert_eq!(exact.host_waiting_for("arn:1").await.unwrap(), None);
}

fn csr_pem(h: &HostId) -> String {
    generate_csr(h, KeyAlgorithm::EcP256).unwrap().csr_pem
}

#[tokio::test]
async fn the_ca_issues_real_certificates_for_the_csr_key() {
    let clock = ManualClock::default();
    let ca = MemoryCa::new(clock.clone());
    let h = host(1);
    let csr = csr_pem(&h);
    let accepted = pki::check_csr(&csr, h.as_str(), &CsrPolicy::default()).unwrap();
    let arn = ca.issue(&accepted.pem, 7, "token-1").await.unwrap();
    let Fetched::Ready { certificate, chain } = ca.fetch(&arn).await.unwrap() else {
        panic!("no delay configured")
    };
    let facts = pki::parse_certificate_pem(&certificate).unwrap();
    pki::check_issued_certificate(&facts, h.as_str(), &accepted.key.spki_sha256, clock.now())
        .unwrap();
    pki::certificate_signed_by(&certificate, &chain).unwrap();
    assert_eq!(chain, ca.ca_certificate().await.unwrap());
    assert_eq!(
        facts.not_after,
        clock.now().replace_nanosecond(0).unwrap() + Duration::days(7)
    );
    assert_eq!(ca.certificate(&arn).unwrap().serial, facts.serial);
    let unknown = ca.fetch("arn:nope").await.unwrap_err();
    assert_eq!(unknown.code.as_deref(), Some("ResourceNotFoundException"));
    let bad = ca.issue("not a CSR", 7, "t").await.unwrap_err();
    assert_eq!(bad.code.as_deref(), Some("MalformedCSRException"));
    assert!(!bad.retryable);
}

#[tokio::test]
async fn the_ca_honours_idempotency_tokens_for_five_minutes() {
    let clock = ManualClock::default();
    let ca = MemoryCa::new(clock.clone());
    let csr = csr_pem(&host(1));
    let first = ca.issue(&csr, 7, "rotation-a").await.unwrap();
    clock.advance(IDEMPOTENCY_WINDOW - Duration::SECOND);
    assert_eq!(
        ca.issue(&csr, 7, "rotation-a").await.unwrap(),
        first,
        "replayed"
    );
    let other_token = ca.issue(&csr, 7, "rotation-b").await.unwrap();
    let other_csr = ca.issue(&csr_pem(&host(1)), 7, "rotation-a").await.unwrap();
    assert_ne!(other_token, first);
    assert_ne!(other_csr, first, "a token covers one request, not any CSR");
    clock.advance(Duration::SECOND);
    let late = ca.issue(&csr, 7, "rotation-a").await.unwrap();
    assert_ne!(late, first, "the window is over");
    let calls = ca.calls();
    assert_eq!((calls.issue, calls.issued), (5, 4));
    assert_eq!(ca.issued().len(), 4);
}

#[tokio::test]
async fn the_ca_answers_pending_until_a_certificate_is_ready() {
    let clock = ManualClock::default();
    let ca = MemoryCa::new(clock.clone());
    ca.set_issue_delay(Duration::seconds(10));
    let arn = ca.issue(&csr_pem(&host(1)), 1, "t").await.unwrap();
    assert_eq!(ca.fetch(&arn).await.unwrap(), Fetched::Pending);
    clock.advance(Duration::seconds(10));
    assert!(matches!(
        ca.fetch(&arn).await.unwrap(),
        Fetched::Ready { .. }
    ));
    assert_eq!(ca.calls().fetch, 2);
    ca.refuse_next_issue("ThrottlingException", true);
    let refused = ca.issue(&csr_pem(&host(1)), 1, "t").await.unwrap_err();
    assert!(refused.retryable);
    assert_eq!(ca.calls().issued, 1);
}

#[tokio::test]
async fn the_ca_records_revocations_and_signs_crls_listing_them() {
    let clock = ManualClock::default();
    let ca = MemoryCa::new(clock.clone());
    let arn = ca.issue(&csr_pem(&host(1)), 7, "t").await.unwrap();
    let serial = ca.certificate(&arn).unwrap().serial;
    let unknown = ca.revoke("7f:ff", "KEY_COMPROMISE").await.unwrap_err();
    assert_eq!(unknown.code.as_deref(), Some("ResourceNotFoundException"));
    let reason = ca.revoke(&serial, "BECAUSE").await.unwrap_err();
    assert_eq!(reason.code.as_deref(), Some("ValidationException"));
    // Any usual notation of the serial names the same certificate.
    ca.revoke(&serial.replace(':', "").to_uppercase(), "KEY_COMPROMISE")
        .await
        .unwrap();
    // Private CA's RequestAlreadyProcessedException: the port counts it as revoked, once.
    ca.revoke(&serial, "SUPERSEDED").await.unwrap();
    let revs = ca.revocations();
    assert_eq!(revs.len(), 1);
    assert_eq!(
        (revs[0].serial.as_str(), revs[0].reason.as_str()),
        (serial.as_str(), "KEY_COMPROMISE")
    );

    let crl = pki::check_crl(&ca.crl_der(5), &ca.certificate_pem()).unwrap();
    assert_eq!(crl.revoked_serials, [serial]);
    assert_eq!(crl.crl_number, pki::CrlNumber::from(5u128));
}

fn csr_batch<'a>(rotations: &'a [(HostId, RotationId)], paths: &'a HostPath) -> CsrBatch<'a> {
    CsrBatch {
        rotations,
        key_path: paths,
        csr_path: paths,
        key_algorithm: KeyAlgorithm::EcP256,
    }
}

#[tokio::test]
async fn hosts_record_commands_and_answer_as_the_test_says() {
    let hosts = MemoryHosts::new();
    let (h, paths, rot) = (host(1), HostPath::parse("p", "/etc/pki").unwrap(), r("a"));
    hosts.add_host(&h);
    let reach = hosts.reachability(&[h.clone(), host(9)]).await.unwrap();
    assert_eq!(reach[&h], Reachability::Online);
    assert_eq!(reach[&host(9)], Reachability::Unknown);

    let id = hosts
        .request_csrs(&csr_batch(&[(h.clone(), rot.clone())], &paths))
        .await
        .unwrap();
    let sent = hosts.command(&id).unwrap();
    assert_eq!(
        (sent.host.clone(), sent.rotation.clone()),
        (h.clone(), rot.clone())
    );
    assert!(matches!(
        sent.request,
        Request::Csr {
            key_algorithm: KeyAlgorithm::EcP256,
            ..
        }
    ));
    assert_eq!(
        hosts.invocation(&id, &h).await.unwrap(),
        Invocation::Pending
    );
    assert_eq!(
        hosts.invocation(&id, &host(2)).await.unwrap(),
        Invocation::Pending,
        "other host"
    );
    assert_eq!(
        hosts.invocation("unknown", &h).await.unwrap(),
        Invocation::Pending
    );

    assert!(hosts.succeed(&id, &"x".repeat(STDOUT_LIMIT + 10)));
    let Invocation::Finished {
        stdout, success, ..
    } = hosts.invocation(&id, &h).await.unwrap()
    else {
        panic!("answered")
    };
    assert!(success);
    assert_eq!(stdout.len(), STDOUT_LIMIT, "cut as Run Command cuts it");
    let id2 = hosts
        .request_csrs(&csr_batch(&[(h.clone(), rot.clone())], &paths))
        .await
        .unwrap();
    assert_ne!(id, id2);
    hosts.fail(&id2, "Failed", "noise\nERROR: openssl missing\n");
    let Invocation::Finished {
        success, stderr, ..
    } = hosts.invocation(&id2, &h).await.unwrap()
    else {
        panic!("answered")
    };
    assert!(!success);
    assert_eq!(
        rotation::hosts::host_error(&stderr),
        "ERROR: openssl missing"
    );
    assert_eq!(hosts.last_command(&h).unwrap().id, id2);

    let unknown = hosts
        .request_csrs(&csr_batch(&[(host(9).clone(), rot.clone())], &paths))
        .await
        .unwrap_err();
    assert_eq!(unknown.code.as_deref(), Some("InvalidInstanceId"));
    hosts.throttle_next_sends(1);
    let throttled = hosts
        .request_csrs(&csr_batch(&[(h.clone(), rot.clone())], &paths))
        .await
        .unwrap_err();
    assert!(throttled.retryable);
    assert_eq!(hosts.commands().len(), 2);
    assert_eq!(hosts.calls().request_csr, 4);
    let pending = hosts
        .request_csrs(&csr_batch(&[(h.clone(), rot.clone())], &paths))
        .await
        .unwrap();
    assert_eq!(hosts.forget_finished(), 2, "the two answered commands");
    assert_eq!(hosts.commands().len(), 1);
    assert_eq!(hosts.last_command(&h).unwrap().id, pending);
}

#[tokio::test]
async fn one_command_reaches_each_host_of_a_batch_with_its_own_rotation() {
    let hosts = MemoryHosts::new();
    let paths = HostPath::parse("p", "/etc/pki").unwrap();
    for n in 1..=3 {
        hosts.add_host_with(&host(n), HostSetup::automatic());
    }
    hosts.set_online(&host(2), false);
    let batch: Vec<(HostId, RotationId)> =
        (1..=3).map(|n| (host(n), r(&format!("rot-{n}")))).collect();
    let id = hosts
        .request_csrs(&csr_batch(&batch, &paths))
        .await
        .unwrap();
    assert_eq!(hosts.calls().request_csr, 1, "one command");
    for n in [1, 3] {
        let Invocation::Finished { stdout, .. } = hosts.invocation(&id, &host(n)).await.unwrap()
        else {
            panic!("host {n} answered");
        };
        assert!(
            stdout.starts_with(&format!("ROTATION rot-{n}\n")),
            "{stdout}"
        );
        let pem = pki::extract_csr_pem(&stdout).unwrap();
        pki::check_csr(&pem, host(n).as_str(), &CsrPolicy::default()).unwrap();
    }
    assert_eq!(
        hosts.invocation(&id, &host(2)).await.unwrap(),
        Invocation::Pending,
        "offline"
    );
    assert_eq!(
        hosts.invocation_on(&id, &host(2)).unwrap().rotation,
        r("rot-2")
    );
    // A host that is not registered refuses the whole command, as SendCommand does.
    let with_stranger = [(host(1), r("rot-4")), (host(9), r("rot-9"))];
    let refused = hosts
        .request_csrs(&csr_batch(&with_stranger, &paths))
        .await
        .unwrap_err();
    assert_eq!(refused.code.as_deref(), Some("InvalidInstanceId"));
    assert_eq!(hosts.last_command(&host(1)).unwrap().id, id);
}

#[tokio::test]
async fn an_automatic_host_makes_a_real_csr_when_it_is_online() {
    let hosts = MemoryHosts::new();
    let (h, paths, rot) = (
        host(1),
        HostPath::parse("p", "/etc/pki").unwrap(),
        r("rot-1"),
    );
    hosts.add_host_with(
        &h,
        HostSetup {
            reachability: Reachability::Offline("ConnectionLost".into()),
            ..HostSetup::automatic()
        },
    );
    let id = hosts
        .request_csrs(&csr_batch(&[(h.clone(), rot.clone())], &paths))
        .await
        .unwrap();
    assert_eq!(
        hosts.invocation(&id, &h).await.unwrap(),
        Invocation::Pending,
        "offline"
    );
    hosts.set_online(&h, true);
    let Invocation::Finished {
        stdout,
        success: true,
        ..
    } = hosts.invocation(&id, &h).await.unwrap()
    else {
        panic!("answered on coming back")
    };
    assert!(stdout.starts_with("ROTATION rot-1\n"), "{stdout}");
    let pem = pki::extract_csr_pem(&stdout).unwrap();
    let accepted = pki::check_csr(&pem, h.as_str(), &CsrPolicy::default()).unwrap();
    assert!(hosts.staged_key(&h).unwrap().contains("PRIVATE KEY"));
    assert!(!accepted.key.spki_sha256.is_empty());
    assert_eq!(
        csr_output(&rot, &pem).lines().next(),
        Some("ROTATION rot-1")
    );
}

#[tokio::test]
async fn alerts_are_kept_in_order_and_can_fail_to_publish() {
    let alerts = MemoryAlerts::new();
    let mut alert = Alert::new(AlertKind::RotationFailed, "host offline");
    alert.host = Some(host(1).to_string());
    alerts.raise(&alert).await.unwrap();
    alerts.fail_next(1);
    assert!(alerts.raise(&alert).await.unwrap_err().retryable);
    assert!(rotation::alerts::raise_or_log(&alerts, &alert).await);
    assert_eq!(alerts.count(AlertKind::RotationFailed), 2);
    assert_eq!(alerts.for_host(host(1).as_str()).len(), 2);
    assert_eq!(alerts.attempts(), 3);
}

#[tokio::test]
async fn crl_objects_are_read_at_their_version_with_the_size_limit() {
    let source = MemoryCrlSource::new();
    let v1 = source.put("b", "crl/1.crl", vec![1, 2, 3]);
    let v2 = source.put("b", "crl/1.crl", vec![4]);
    assert_eq!(
        source.fetch("b", "crl/1.crl", Some(&v1)).await.unwrap(),
        [1, 2, 3]
    );
    assert_eq!(
        source.fetch("b", "crl/1.crl", Some(&v2)).await.unwrap(),
        [4]
    );
    assert_eq!(source.fetch("b", "crl/1.crl", None).await.unwrap(), [4]);
    let gone = source
        .fetch("b", "crl/1.crl", Some("v9"))
        .await
        .unwrap_err();
    assert_eq!(gone.code.as_deref(), Some("NoSuchVersion"));
    let missing = source.fetch("b", "crl/2.crl", None).await.unwrap_err();
    assert_eq!(missing.code.as_deref(), Some("NoSuchKey"));
    source.put("b", "big", vec![0; pki::MAX_CRL_BYTES + 1]);
    assert!(source.fetch("b", "big", None).await.is_err());
    assert_eq!(source.fetches(), 6);
}

#[tokio::test]
async fn the_trust_anchor_holds_two_crls_and_replace_updates_only_ours_in_place() {
    let clock = ManualClock::default();
    let anchor = MemoryTrustAnchor::new(clock.clone());
    let first = anchor.replace("crl", b"one", None).await.unwrap();
    let Replaced::Imported { crl_id: first } = first else {
        panic!("an empty anchor imports")
    };
    clock.advance(Duration::seconds(5));
    // An operator's own CRL, more recently updated: never ours to replace.
    let operator = anchor.import("operator-crl", b"two").unwrap();
    let third = anchor.import("crl-3", b"three").unwrap_err();
    assert_eq!(third.code.as_deref(), Some("ValidationException"));
    assert!(third.message.contains("maximum"), "{}", third.message);

    // Replace updates our CRL, however many times it runs.
    for n in 0..5u8 {
        clock.advance(Duration::seconds(1));
        let out = anchor.replace("crl", &[n], None).await.unwrap();
        assert_eq!(
            out,
            Replaced::Updated {
                crl_id: first.clone()
            }
        );
    }
    let crls = anchor.crls();
    assert_eq!(crls.len(), 2);
    assert_eq!(crls[0].der, [4]);
    assert_eq!(
        (crls[1].crl_id.as_str(), crls[1].der.as_slice()),
        (operator.as_str(), &b"two"[..])
    );
    // Ours disabled: not overwritten; a new one cannot be imported next to two CRLs.
    anchor.disable(&first);
    let full = anchor.replace("crl", b"new", None).await.unwrap_err();
    assert_eq!(full.code.as_deref(), Some("ValidationException"));
    assert_eq!(anchor.crls()[0].der, [4], "the disabled CRL is left alone");
    assert_eq!(anchor.calls().imports, 4);
    assert_eq!(
        anchor.update("nope", "x", b"").unwrap_err().code.as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[test]
fn the_clock_moves_only_when_told_and_clones_share_it() {
    let clock = ManualClock::default();
    let other = clock.clone();
    let start = clock.now();
    assert_eq!(clock.now(), start, "no wall time passes");
    assert_eq!(
        other.advance(Duration::minutes(5)),
        start + Duration::minutes(5)
    );
    assert_eq!(clock.now(), start + Duration::minutes(5));
    assert_eq!(
        clock.advance_to(start),
        start + Duration::minutes(5),
        "never backwards"
    );
    assert_eq!(
        clock.advance_to(start + Duration::hours(1)),
        start + Duration::hours(1)
    );
    let back = std::panic::catch_unwind(|| clock.advance(-Duration::SECOND));
    assert!(back.is_err());
}

#[tokio::test]
async fn the_kit_wires_every_fake_on_one_clock() {
    let kit = Kit::default();
    let config = Kit::config(&[("CERT_VALIDITY_DAYS", "3")]);
    assert_eq!(config.cert_validity_days, 3);
    assert_eq!(config.ca_arn, tests::kit::ca::CA_ARN);
    let deps = kit.deps(config.clone());
    deps.store
        .enrol(&host(1), &HostOverrides::default())
        .await
        .unwrap();
    assert_eq!(kit.store.len(), 1, "the deps share the kit's store");
    let crl = kit.crl_deps(config);
    kit.clock.advance(Duration::hours(1));
    assert_eq!(crl.store.clock().now(), kit.clock.now());
    assert!(kit.ca.ca_id().len() == 36);
}

/// The S3 event of one CRL object version, as the kit's config expects it.
fn crl_event(
    kit_key: &str,
    version: &str,
) -> rotation::events::Envelope<rotation::events::ObjectCreatedDetail> {
    serde_json::from_value(serde_json::json!({
        "id": format!("event-{version}"), "detail-type": "Object Created", "source": "aws.s3",
        "resources": [],
        "detail": {"bucket": {"name": tests::kit::deps::CRL_BUCKET},
                   "object": {"key": kit_key, "version-id": version}}
    }))
    .expect("an S3 event")
}

#[tokio::test]
async fn an_older_crl_held_mid_import_cannot_overwrite_a_newer_one() {
    let kit = Kit::default();
    let deps = std::sync::Arc::new(kit.crl_deps(Kit::config(&[])));
    let key = format!("crl/{}.crl", kit.ca.ca_id());
    let v2 = kit
        .crl_source
        .put(tests::kit::deps::CRL_BUCKET, &key, kit.ca.crl_der(2));
    let v3 = kit
        .crl_source
        .put(tests::kit::deps::CRL_BUCKET, &key, kit.ca.crl_der(3));
    let now = kit.clock.now();

    // CRL 2's UpdateCrl is slow: it has claimed the ledger and is held inside `replace`.
    let hold = kit.anchor.hold_next_replace();
    let older = {
        let deps = deps.clone();
        let event = crl_event(&key, &v2);
        tokio::spawn(async move { crl_processor::on_object_created(&deps, &event, now).await })
    };
    hold.entered().await;
    // CRL 3 arrives meanwhile: it must wait (a retryable error, Lambda delivers it again).
    let newer = crl_event(&key, &v3);
    let busy = crl_processor::on_object_created(&deps, &newer, now).await;
    assert!(
        matches!(&busy, Err(e) if e.is_retryable()),
        "the newer CRL waits for the held import: {busy:?}"
    );
    hold.release();
    let first = older.await.unwrap().unwrap();
    assert!(
        matches!(first, crl_processor::Outcome::Imported { .. }),
        "{first:?}"
    );
    let retried = crl_processor::on_object_created(&deps, &newer, now)
        .await
        .unwrap();
    assert!(
        matches!(retried, crl_processor::Outcome::Imported { .. }),
        "{retried:?}"
    );
    // A late redelivery of CRL 2 is stale.
    let late = crl_processor::on_object_created(&deps, &crl_event(&key, &v2), now)
        .await
        .unwrap();
    assert!(
        matches!(late, crl_processor::Outcome::Refused { .. }),
        "{late:?}"
    );

    let crls = kit.anchor.crls();
    assert_eq!(crls.len(), 1, "{crls:?}");
    let held = pki::check_crl(&crls[0].der, &kit.ca.certificate_pem()).unwrap();
    assert_eq!(
        held.crl_number,
        pki::CrlNumber::from(3u128),
        "the newest stays"
    );
}

#[tokio::test]
async fn the_reconcile_pass_reads_the_hosts_the_unsettled_index_holds_after_every_kind_of_write() {
    let store = MemoryStore::new();
    let now = store.clock().now();
    let in_flight = || async {
        let scan = store.in_flight().await.unwrap();
        let hosts: Vec<String> = scan.records.iter().map(|r| r.host.to_string()).collect();
        // A refused row's key is shown quoted, as the table holds it.
        let rejected: Vec<String> = scan
            .rejected
            .iter()
            .map(|r| r.key.trim_matches('"').to_owned())
            .collect();
        (hosts, rejected, scan.items_read)
    };
    let (a, b) = (host(1), host(2));
    for h in [&a, &b] {
        store.enrol(h, &HostOverrides::default()).await.unwrap();
    }
    assert_eq!(
        in_flight().await,
        (vec![], vec![], 0),
        "enrolled: nothing in flight"
    );

    let changes = rotation(None, "a", "arn:1", "0a", now);
    store.transition(&a, changes[0].clone(), now).await.unwrap();
    assert_eq!(
        in_flight().await,
        (vec![a.to_string()], vec![], 1),
        "claimed"
    );
    for change in &changes[1..] {
        store.transition(&a, change.clone(), now).await.unwrap();
    }
    assert_eq!(
        in_flight().await,
        (vec![], vec![], 0),
        "deployed: settled again"
    );

    // A refused transition leaves the index as it was.
    let stale = store.transition(&a, changes[1].clone(), now).await;
    assert!(is_conflict(&stale));
    assert_eq!(in_flight().await.2, 0);

    // An admin's put of a hostile row the index holds, then its removal.
    let mut hostile = enrolment_item(&b, &HostOverrides::default());
    hostile.insert(
        attr::UNSETTLED.into(),
        Attr::s(state::item::UNSETTLED_VALUE),
    );
    hostile.insert(attr::STATE.into(), Attr::s("NO_SUCH_STATE"));
    store.put_item(hostile);
    assert_eq!(
        in_flight().await,
        (vec![], vec![b.to_string()], 1),
        "read and refused"
    );
    store.remove_item(b.as_str());
    assert_eq!(in_flight().await, (vec![], vec![], 0), "removed");
}
