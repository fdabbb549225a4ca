//! Benchmarks that print numbers (never asserted by tests) and write `target/bench/report.json`.
//!
//! `plan_10k`: enrol 10,000 hosts (20% due) into moto and time CertCheck's due-host listing:
//! every page, parallel segments, server-side filter, then the pure planner.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::{json, Value};
use state::dynamo::{attr, legacy_time};
use state::plan::{Plan, PlanPolicy};
use state::ports::FleetReader;
use state::DynamoStore;
use tests::moto::{workspace_root, MotoServer};
use time::{Duration, OffsetDateTime};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

async fn plan_10k() -> anyhow::Result<Value> {
    let moto = MotoServer::start()?;
    let client = tests::aws::dynamodb(&moto.url());
    let table = "bench-state";
    tests::table::create_state_table(&client, table).await?;
    let now = OffsetDateTime::now_utc();
    let hosts = 10_000u64;
    let mut due = 0u64;
    let mut batch = Vec::new();
    let seed_start = Instant::now();
    for i in 0..hosts {
        let nb = now - Duration::days(3);
        let na = nb + Duration::days(7);
        let is_due = i % 5 == 0;
        due += is_due as u64;
        let renew_at = if is_due {
            now - Duration::minutes(5)
        } else {
            now + Duration::days(1)
        };
        let item: HashMap<String, AttributeValue> = [
            (attr::HOST_ID, s(&format!("mi-{i:017x}"))),
            (attr::STATE, s("DEPLOYED")),
            (attr::VERSION, AttributeValue::N("3".into())),
            (
                attr::SERIAL,
                s("4c:1f:aa:00:9e:11:22:33:44:55:66:77:88:99:aa:bb"),
            ),
            (attr::EXPIRY, s(&legacy_time(na))),
            (attr::NOT_AFTER, s(&legacy_time(na))),
            (
                attr::RENEW_AT,
                AttributeValue::N(renew_at.unix_timestamp().to_string()),
            ),
            (attr::CERT_PATH, s("/etc/pki/rolesanywhere")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        batch.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build(),
        );
        if batch.len() == 25 || i + 1 == hosts {
            let mut pending = std::mem::take(&mut batch);
            while !pending.is_empty() {
                let out = client
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
    eprintln!(
        "plan_10k: seeded {hosts} hosts in {:.1} s",
        seed_start.elapsed().as_secs_f64()
    );
    let segments = 4;
    let store = DynamoStore::new(client, table, segments);
    let t = Instant::now();
    let scan = store.candidates(now).await?;
    let plan = Plan::build(scan.records, now, &PlanPolicy::default());
    let listed = plan.starting().count() as u64;
    let seconds = t.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let all = store.all_hosts().await?;
    eprintln!(
        "plan_10k: unfiltered scan of {} items: {:.3} s",
        all.records.len(),
        t2.elapsed().as_secs_f64()
    );
    let report = json!({
        "hosts": hosts, "due": due, "listed": listed, "items_read": scan.items_read,
        "pages": scan.pages, "segments": segments, "seconds": seconds,
    });
    println!(
        "plan_10k: {hosts} hosts, {due} due, {listed} listed, {} items read in {} pages, {seconds:.3} s",
        scan.items_read, scan.pages
    );
    Ok(report)
}

fn write_report(key: &str, value: Value) -> anyhow::Result<()> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("report.json");
    let mut report: serde_json::Map<String, Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    report.insert(key.to_owned(), value);
    std::fs::write(&path, serde_json::to_string_pretty(&report)?).context("writing the report")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all = which.is_empty();
    if all || which.iter().any(|w| w == "plan_10k") {
        write_report("plan_10k", plan_10k().await?)?;
    }
    println!(
        "report: {}",
        workspace_root().join("target/bench/report.json").display()
    );
    Ok(())
}
