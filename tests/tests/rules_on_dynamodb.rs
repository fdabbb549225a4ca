//! The rotation rules carried out by DynamoDB (moto, through the real `DynamoStore`) and by the
//! in-memory store agree, step for step.
//!
//! Two actors share one host. Each holds its own view of the record, which goes stale as the
//! other one writes; a step either refreshes an actor's view (a strongly consistent read) or has
//! it attempt a change built from its view (the version it read, the rotation, command and
//! certificate it saw) or from a small alphabet of foreign values. Every attempt goes to both
//! stores; they must agree on accepted or refused, on the record returned, and on the raw item
//! left in the table. A guard rendered wrongly as a condition expression shows up as the first
//! step where they part.
//!
//! One moto server serves the whole run; each case uses a fresh host. `PROPTEST_CASES` sets the
//! number of cases (64 by default). A failure prints the steps as they were resolved and both
//! stores' answers; proptest keeps the failing seed beside this file.

use aws_sdk_dynamodb::types::AttributeValue;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use state::dynamo::mapping;
use state::item::{attr, enrolment_item, item_from_record, Attr, Item};
use state::ports::{FleetReader, Transitions};
use state::record::{
    Attempts, DeployedCert, FailureStage, HostOverrides, RotationState, StateKind,
};
use state::rules::Change;
use state::{DynamoStore, HostId, HostRecord, RotationId, StoreError};
use tests::kit::{ManualClock, MemoryStore};
use tests::moto::MotoServer;
use time::{Duration, OffsetDateTime};

const TABLE: &str = "rules-on-dynamodb";
const ROTATIONS: [&str; 3] = ["r-a", "r-b", "r-c"];
const COMMANDS: [&str; 3] = ["cmd-1", "cmd-2", "cmd-3"];
const ARNS: [&str; 2] = [
    "arn:aws:acm-pca:us-east-1:1:certificate-authority/ca/certificate/aa",
    "arn:aws:acm-pca:us-east-1:1:certificate-authority/ca/certificate/bb",
];
const SERIALS: [&str; 3] = ["0a", "0b", "0c"];
const STAGES: [FailureStage; 4] = [
    FailureStage::RequestCsr,
    FailureStage::Issue,
    FailureStage::Deploy,
    FailureStage::Verify,
];
const KINDS: [StateKind; 7] = [
    StateKind::Idle,
    StateKind::CsrRequested,
    StateKind::Issuing,
    StateKind::Deploying,
    StateKind::Deployed,
    StateKind::Failed,
    StateKind::Revoked,
];

/// Where an identifier comes from: the actor's view, or the alphabet.
#[derive(Debug, Clone, Copy)]
enum Id {
    View,
    Pick(usize),
}

/// Which version a start expects.
#[derive(Debug, Clone, Copy)]
enum Ver {
    /// The one in the view.
    View,
    /// One less than the view's (or 0).
    Behind,
    /// One more than the view's.
    Ahead,
    /// None: "never written by this service".
    Absent,
}

/// A change as generated, resolved against the actor's view when it runs.
#[derive(Debug, Clone)]
enum Plan {
    /// The step the view calls for next (what a handler on this view would write).
    Next {
        rotation: usize,
        serial: Option<usize>,
    },
    Start {
        version: Ver,
        rotation: usize,
    },
    CsrSent {
        rotation: Id,
        command: Id,
    },
    Issuing {
        rotation: Id,
        command: Id,
        arn: Id,
    },
    BeginDeploy {
        rotation: Id,
        arn: Id,
        serial: Option<usize>,
    },
    DeploySent {
        rotation: Id,
        command: Id,
    },
    Deployed {
        command: Id,
        serial: Option<usize>,
        with_arn: bool,
    },
    Fail {
        from: Option<usize>,
        rotation: Id,
        stage: usize,
        long_reason: bool,
    },
    /// A revocation in any state (an in-flight rotation is cancelled), holding the host or not.
    Revoke {
        from: Option<usize>,
        rotation: Id,
        serial: Id,
        held: bool,
    },
    /// A release under the view's hold, or a foreign one.
    Release {
        held: Id,
    },
}

#[derive(Debug, Clone)]
enum Step {
    /// The actor reads the record again.
    Refresh(usize),
    /// The actor attempts a change built from its view.
    Attempt(usize, Plan),
}

/// What the host's item holds when the case begins.
#[derive(Debug, Clone, Copy)]
enum Initial {
    Enrolled,
    OriginalSample,
    HostilePath,
    /// In flight, with a `version` an admin wrote as a string.
    StringVersion,
    State(usize),
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![3 => Just(Id::View), 1 => (0usize..3).prop_map(Id::Pick)]
}

fn plan() -> impl Strategy<Value = Plan> {
    let ver = prop_oneof![
        4 => Just(Ver::View),
        1 => Just(Ver::Behind),
        1 => Just(Ver::Ahead),
        1 => Just(Ver::Absent)
    ];
    let serial = proptest::option::of(0usize..SERIALS.len());
    let any_change = prop_oneof![
        (ver, 0usize..ROTATIONS.len())
            .prop_map(|(version, rotation)| Plan::Start { version, rotation }),
        (id(), id()).prop_map(|(rotation, command)| Plan::CsrSent { rotation, command }),
        (id(), id(), id()).prop_map(|(rotation, command, arn)| Plan::Issuing {
            rotation,
            command,
            arn
        }),
        (id(), id(), serial.clone()).prop_map(|(rotation, arn, serial)| Plan::BeginDeploy {
            rotation,
            arn,
            serial
        }),
        (id(), id()).prop_map(|(rotation, command)| Plan::DeploySent { rotation, command }),
        (id(), serial, any::<bool>()).prop_map(|(command, serial, with_arn)| Plan::Deployed {
            command,
            serial,
            with_arn
        }),
        (
            proptest::option::weighted(0.2, 0usize..KINDS.len()),
            id(),
            0usize..STAGES.len(),
            proptest::bool::weighted(0.2)
        )
            .prop_map(|(from, rotation, stage, long_reason)| Plan::Fail {
                from,
                rotation,
                stage,
                long_reason
            }),
        (
            proptest::option::weighted(0.2, 0usize..KINDS.len()),
            id(),
            id(),
            any::<bool>()
        )
            .prop_map(|(from, rotation, serial, held)| Plan::Revoke {
                from,
                rotation,
                serial,
                held
            }),
        id().prop_map(|held| Plan::Release { held }),
    ];
    prop_oneof![
        1 => (0usize..ROTATIONS.len(), proptest::option::of(0usize..SERIALS.len()))
            .prop_map(|(rotation, serial)| Plan::Next { rotation, serial }),
        1 => any_change,
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0usize..2).prop_map(Step::Refresh),
        4 => (0usize..2, plan()).prop_map(|(a, p)| Step::Attempt(a, p)),
    ]
}

fn initial() -> impl Strategy<Value = Initial> {
    prop_oneof![
        2 => Just(Initial::Enrolled),
        1 => Just(Initial::OriginalSample),
        1 => Just(Initial::HostilePath),
        1 => Just(Initial::StringVersion),
        6 => (0usize..8).prop_map(Initial::State),
    ]
}

fn pick(alphabet: &[&str], i: usize) -> String {
    alphabet[i % alphabet.len()].to_owned()
}

/// The certificate facts a step carries (fixed times, so both stores see the same values).
fn facts(
    base: OffsetDateTime,
    serial: Option<usize>,
    renew: bool,
    arn: Option<String>,
) -> DeployedCert {
    DeployedCert {
        serial: serial.map(|s| pick(&SERIALS, s)),
        not_before: Some(base),
        not_after: base + Duration::days(7),
        renew_at: renew.then(|| base + Duration::days(4)),
        cert_arn: arn,
    }
}

/// The item a case starts from.
fn initial_item(initial: Initial, host: &HostId, base: OffsetDateTime) -> Item {
    let mut item = enrolment_item(host, &HostOverrides::default());
    let rotation = RotationId(ROTATIONS[0].into());
    let state = match initial {
        Initial::Enrolled => return item,
        Initial::OriginalSample => {
            item.insert(attr::EXPIRY.into(), Attr::s("2026-12-08 10:00:00"));
            item.insert(attr::SERIAL.into(), Attr::s(SERIALS[0]));
            item.insert(attr::STATUS.into(), Attr::s("ISSUED"));
            return item;
        }
        Initial::HostilePath => {
            item.insert(attr::CERT_PATH.into(), Attr::s("/etc/pki/$(reboot)"));
            item.insert(attr::SERIAL.into(), Attr::s(SERIALS[0]));
            return item;
        }
        Initial::StringVersion => {
            item.insert(attr::STATE.into(), Attr::s("CSR_REQUESTED"));
            item.insert(attr::ROTATION_ID.into(), Attr::s(ROTATIONS[0]));
            item.insert(attr::COMMAND_ID.into(), Attr::s(COMMANDS[0]));
            item.insert(attr::VERSION.into(), Attr::s("3"));
            return item;
        }
        Initial::State(0) => RotationState::Deployed,
        Initial::State(1) => RotationState::CsrRequested {
            rotation,
            command_id: None,
        },
        Initial::State(2) => RotationState::CsrRequested {
            rotation,
            command_id: Some(COMMANDS[0].into()),
        },
        Initial::State(3) => RotationState::Issuing {
            rotation,
            cert_arn: ARNS[0].into(),
            key_fingerprint: "ff".into(),
        },
        Initial::State(4) => RotationState::Deploying {
            rotation,
            cert_arn: ARNS[0].into(),
            command_id: None,
            pending: facts(base, Some(1), false, None),
        },
        Initial::State(5) => RotationState::Deploying {
            rotation,
            cert_arn: ARNS[0].into(),
            command_id: Some(COMMANDS[1].into()),
            pending: facts(base, Some(1), false, None),
        },
        Initial::State(6) => RotationState::Failed {
            rotation: Some(rotation),
            stage: FailureStage::Deploy,
            reason: "host offline".into(),
        },
        Initial::State(_) => RotationState::Revoked {
            serial: SERIALS[0].into(),
            held: None,
        },
    };
    item_from_record(&HostRecord {
        host: host.clone(),
        overrides: HostOverrides::default(),
        version: Some(3),
        state,
        state_since: Some(base - Duration::hours(1)),
        current: Some(facts(base - Duration::days(3), Some(0), true, None)),
        attempts: Attempts {
            failed: 1,
            next_attempt_at: None,
            ..Attempts::default()
        },
    })
}

/// The change a handler would make on this view next (a new rotation when nothing is in
/// flight, or a revocation when `serial` says so).
fn next(state: Option<&RotationState>, rotation: usize, serial: Option<usize>) -> Plan {
    use RotationState as S;
    let (view, fresh) = (Id::View, Id::Pick(rotation));
    match state {
        Some(S::CsrRequested {
            command_id: None, ..
        }) => Plan::CsrSent {
            rotation: view,
            command: fresh,
        },
        Some(S::CsrRequested { .. }) => Plan::Issuing {
            rotation: view,
            command: view,
            arn: fresh,
        },
        Some(S::Issuing { .. }) => Plan::BeginDeploy {
            rotation: view,
            arn: view,
            serial,
        },
        Some(S::Deploying {
            command_id: None, ..
        }) => Plan::DeploySent {
            rotation: view,
            command: fresh,
        },
        Some(S::Deploying { .. }) => Plan::Deployed {
            command: view,
            serial,
            with_arn: true,
        },
        Some(S::Revoked { held: Some(_), .. }) => Plan::Release { held: view },
        Some(S::Deployed | S::Idle) if serial == Some(0) => Plan::Revoke {
            from: None,
            rotation: view,
            serial: view,
            held: rotation == 0,
        },
        _ => Plan::Start {
            version: Ver::View,
            rotation,
        },
    }
}

/// `plan` as a concrete change, from what `view` shows.
fn resolve(
    plan: &Plan,
    view: Option<&HostRecord>,
    now: OffsetDateTime,
    base: OffsetDateTime,
) -> Change {
    let state = view.map(|v| &v.state);
    let rotation = |i: Id| {
        RotationId(match (i, state.and_then(RotationState::rotation)) {
            (Id::View, Some(r)) => r.0.clone(),
            (Id::View, None) => ROTATIONS[0].into(),
            (Id::Pick(k), _) => pick(&ROTATIONS, k),
        })
    };
    let command = |i: Id| match (i, state) {
        (
            Id::View,
            Some(
                RotationState::CsrRequested {
                    command_id: Some(c),
                    ..
                }
                | RotationState::Deploying {
                    command_id: Some(c),
                    ..
                },
            ),
        ) => c.clone(),
        (Id::View, _) => COMMANDS[0].into(),
        (Id::Pick(k), _) => pick(&COMMANDS, k),
    };
    let arn = |i: Id| match (i, state) {
        (
            Id::View,
            Some(
                RotationState::Issuing { cert_arn, .. } | RotationState::Deploying { cert_arn, .. },
            ),
        ) => cert_arn.clone(),
        (Id::View, _) => ARNS[0].into(),
        (Id::Pick(k), _) => pick(&ARNS, k),
    };
    let version = view.and_then(|v| v.version);
    match *plan {
        Plan::Next { rotation, serial } => resolve(&next(state, rotation, serial), view, now, base),
        Plan::Start {
            version: v,
            rotation,
        } => Change::Start {
            expected_version: match v {
                Ver::View => version,
                Ver::Behind => Some(version.unwrap_or(0).saturating_sub(1)),
                Ver::Ahead => Some(version.unwrap_or(0) + 1),
                Ver::Absent => None,
            },
            rotation: RotationId(pick(&ROTATIONS, rotation)),
        },
        Plan::CsrSent {
            rotation: r,
            command: c,
        } => Change::CsrSent {
            rotation: rotation(r),
            command_id: command(c),
        },
        Plan::Issuing {
            rotation: r,
            command: c,
            arn: a,
        } => Change::Issuing {
            rotation: rotation(r),
            command_id: command(c),
            cert_arn: arn(a),
            key_fingerprint: "ff00".into(),
        },
        Plan::BeginDeploy {
            rotation: r,
            arn: a,
            serial,
        } => Change::BeginDeploy {
            rotation: rotation(r),
            cert_arn: arn(a),
            pending: facts(base, serial, false, None),
        },
        Plan::DeploySent {
            rotation: r,
            command: c,
        } => Change::DeploySent {
            rotation: rotation(r),
            command_id: command(c),
        },
        Plan::Deployed {
            command: c,
            serial,
            with_arn,
        } => Change::Deployed {
            command_id: command(c),
            cert: facts(base, serial, true, with_arn.then(|| arn(Id::View))),
        },
        Plan::Fail {
            from,
            rotation: r,
            stage,
            long_reason,
        } => Change::Fail {
            from: match from {
                Some(k) => KINDS[k],
                None => state.map_or(StateKind::Idle, RotationState::kind),
            },
            rotation: rotation(r),
            stage: STAGES[stage],
            // Long reasons are cut at 1,000 bytes, on a character boundary.
            reason: if long_reason {
                "é".repeat(700)
            } else {
                "host offline".into()
            },
            attempts: view.map_or(0, |v| v.attempts.failed) + 1,
            next_attempt_at: now + Duration::minutes(5),
        },
        Plan::Revoke {
            from,
            rotation: r,
            serial,
            held,
        } => {
            let from = match from {
                Some(k) => KINDS[k],
                None => state.map_or(StateKind::Idle, RotationState::kind),
            };
            let current = view.and_then(|v| v.current.as_ref()?.serial.clone());
            Change::Revoke {
                from,
                rotation: (from.in_flight() || matches!(r, Id::Pick(_))).then(|| rotation(r)),
                current: match serial {
                    Id::View => current.clone(),
                    Id::Pick(k) => Some(pick(&SERIALS, k)),
                },
                serial: match (serial, current) {
                    (Id::View, Some(s)) => s,
                    (Id::View, None) => SERIALS[0].into(),
                    (Id::Pick(k), _) => pick(&SERIALS, k),
                },
                held: held.then(|| "KEY_COMPROMISE".into()),
            }
        }
        Plan::Release { held } => Change::Release {
            held: match (held, state) {
                (Id::View, Some(RotationState::Revoked { held: Some(h), .. })) => h.clone(),
                (Id::View, _) => "KEY_COMPROMISE".into(),
                (Id::Pick(k), _) => pick(&["KEY_COMPROMISE", "SUPERSEDED", "UNSPECIFIED"], k),
            },
        },
    }
}

/// An answer of a store, in words that compare (records in full, refusals by their text,
/// backend failures by operation and code).
fn answer<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(StoreError::Conflict(c)) => format!("conflict: {c}"),
        Err(StoreError::InvalidRow { key, reason }) => format!("invalid row {key}: {reason}"),
        Err(StoreError::Backend {
            operation, code, ..
        }) => format!("{operation} failed: {code:?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// A short form of an answer for the trace.
fn brief(r: &Result<HostRecord, StoreError>) -> String {
    match r {
        Ok(rec) => format!("accepted (v{:?} {})", rec.version, rec.state.kind()),
        Err(StoreError::Conflict(_)) => "refused".into(),
        Err(StoreError::InvalidRow { .. }) => "written, row refused".into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// How the attempts of a run ended, to show the run exercised both outcomes.
#[derive(Debug, Default)]
struct Tally {
    steps: u64,
    accepted: u64,
    refused: u64,
    row_refused: u64,
    failed: u64,
}

struct Harness {
    tally: std::cell::RefCell<Tally>,
    rt: tokio::runtime::Runtime,
    client: aws_sdk_dynamodb::Client,
    dynamo: DynamoStore,
    _moto: MotoServer,
}

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let moto = MotoServer::start().expect("moto server");
        let client = tests::aws::dynamodb(&moto.url());
        rt.block_on(tests::table::create_state_table(&client, TABLE))
            .expect("create table from template");
        let dynamo = DynamoStore::new(client.clone(), TABLE, 1);
        Harness {
            tally: Default::default(),
            rt,
            client,
            dynamo,
            _moto: moto,
        }
    }

    async fn raw_item(&self, key: &str) -> Option<Item> {
        let out = self
            .client
            .get_item()
            .table_name(TABLE)
            .key(attr::HOST_ID, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem");
        out.item().map(mapping::item)
    }

    /// Plays one case on a fresh host; the error is the trace up to the first disagreement.
    async fn run(&self, case: u64, initial: Initial, steps: &[Step]) -> Result<(), String> {
        let host = HostId::parse(&format!("mi-{case:017x}")).expect("a host ID");
        let clock = ManualClock::default();
        let base = clock.now();
        let memory = MemoryStore::with_clock(clock.clone());
        let item = initial_item(initial, &host, base);
        self.client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(mapping::sdk_item(&item)))
            .send()
            .await
            .expect("PutItem");
        memory.put_item(item);
        let read = memory.record(&host).ok().flatten();
        let mut views = [read.clone(), read];
        let mut trace = vec![format!("host {host}, initially {initial:?}")];
        let mismatch = |trace: &[String], what: String| {
            Err(format!("{what}\nsteps so far:\n  {}", trace.join("\n  ")))
        };
        for (i, step) in steps.iter().enumerate() {
            let now = clock.advance(Duration::seconds(1));
            match step {
                Step::Refresh(a) => {
                    let d = self.dynamo.host(&host).await;
                    let m = memory.host(&host).await;
                    trace.push(format!("#{i} actor {a} reads: {}", answer(&d)));
                    if answer(&d) != answer(&m) {
                        return mismatch(
                            &trace,
                            format!(
                                "reads differ: dynamodb {} / memory {}",
                                answer(&d),
                                answer(&m)
                            ),
                        );
                    }
                    views[*a] = d.ok().flatten();
                }
                Step::Attempt(a, plan) => {
                    let change = resolve(plan, views[*a].as_ref(), now, base);
                    let d = self.dynamo.transition(&host, change.clone(), now).await;
                    let m = memory.transition(&host, change.clone(), now).await;
                    trace.push(format!(
                        "#{i} actor {a} attempts {change:?}: dynamodb {}, memory {}",
                        brief(&d),
                        brief(&m)
                    ));
                    if answer(&d) != answer(&m) {
                        return mismatch(
                            &trace,
                            format!(
                                "answers differ:\n  dynamodb: {}\n  memory:   {}",
                                answer(&d),
                                answer(&m)
                            ),
                        );
                    }
                    if let Ok(rec) = &d {
                        views[*a] = Some(rec.clone());
                    }
                    self.count(&d);
                    if !matches!(d, Err(StoreError::Conflict(_))) {
                        self.same_items(&host, &memory, &trace).await?;
                    }
                }
            }
        }
        self.same_items(&host, &memory, &trace).await
    }

    fn count(&self, d: &Result<HostRecord, StoreError>) {
        let mut t = self.tally.borrow_mut();
        t.steps += 1;
        match d {
            Ok(_) => t.accepted += 1,
            Err(StoreError::Conflict(_)) => t.refused += 1,
            Err(StoreError::InvalidRow { .. }) => t.row_refused += 1,
            Err(_) => t.failed += 1,
        }
    }

    async fn same_items(
        &self,
        host: &HostId,
        memory: &MemoryStore,
        trace: &[String],
    ) -> Result<(), String> {
        let d = self.raw_item(host.as_str()).await;
        let m = memory.item(host.as_str());
        if d == m {
            return Ok(());
        }
        Err(format!(
            "items differ:\n  dynamodb: {d:?}\n  memory:   {m:?}\nsteps so far:\n  {}",
            trace.join("\n  ")
        ))
    }
}

#[test]
fn the_rules_hold_the_same_on_dynamodb_and_in_memory() {
    let harness = Harness::start();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 200,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u64);
    let started = std::time::Instant::now();
    let result = runner.run(
        &(initial(), proptest::collection::vec(step(), 1..=20)),
        |(initial, steps)| {
            case.set(case.get() + 1);
            harness
                .rt
                .block_on(harness.run(case.get(), initial, &steps))
                .map_err(TestCaseError::fail)
        },
    );
    eprintln!(
        "{} runs (cases and shrinks) in {:.1?}: {:?}",
        case.get(),
        started.elapsed(),
        harness.tally.borrow()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
