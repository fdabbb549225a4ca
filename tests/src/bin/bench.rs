//! Benchmarks that print numbers (never asserted by tests) and write `target/bench/report.json`.
//!
//! - `plan_10k`: enrol 10,000 hosts (20% due) into moto and time CertCheck's due-host listing:
//!   every page, parallel segments, server-side filter, then the pure planner.
//! - `rotate_100`: rotate 100 emulated hosts end to end; wall time, the handlers' own CPU time
//!   (they run on one dedicated thread whose CPU time is read from `/proc/thread-self/schedstat`,
//!   so the emulators, moto and the hosts' openssl are not counted), AWS calls per rotation.
//! - `cold_start`: each function binary (release, `target/release/<name>`) started against a local
//!   Lambda Runtime API: time from exec to its first request for an event, and peak RSS after it
//!   handled one event.

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
    // Parallel scan segments (BENCH_SEGMENTS to compare; CertCheck's default is 4).
    let segments = std::env::var("BENCH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
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

/// CPU time this thread has used.
fn thread_cpu() -> std::time::Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::time::Duration::from_nanos(ns)
}

async fn rotate_100() -> anyhow::Result<Value> {
    use state::ports::Enroller;
    use state::record::{HostOverrides, StateKind};
    let hosts = 100u64;
    let mut stack = tests::stack::LocalStack::start(&[]).await?;
    for i in 0..hosts {
        let h = format!("mi-{:017x}", 0xbe0000 + i);
        let overrides = HostOverrides {
            key_algorithm: Some(if i % 2 == 0 {
                pki::KeyAlgorithm::EcP256
            } else {
                pki::KeyAlgorithm::Rsa2048
            }),
            ..HostOverrides::default()
        };
        stack
            .store
            .enrol(&state::HostId::parse(&h)?, &overrides)
            .await?;
        stack.add_host(&h, tests::emulators::ssm::HostSpec::default());
    }
    let start = Instant::now();
    // The handlers run on their own thread and runtime; the emulators stay on this one.
    let (stack, cpu) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let before = thread_cpu();
        rt.block_on(async {
            stack.cert_check(json!({})).await?;
            stack.settle(tests::stack::Delivery::default()).await
        })?;
        Ok((stack, thread_cpu() - before))
    })
    .await??;
    let seconds = start.elapsed().as_secs_f64();
    let fleet = stack.store.all_hosts().await?;
    let deployed = fleet
        .records
        .iter()
        .filter(|r| r.state.kind() == StateKind::Deployed)
        .count();
    anyhow::ensure!(
        deployed as u64 == hosts,
        "only {deployed} of {hosts} hosts deployed"
    );
    let calls: serde_json::Map<String, Value> = stack
        .recorder
        .totals()
        .into_iter()
        .map(|(op, n)| (op, json!(n as f64 / hosts as f64)))
        .collect();
    let cpu_ms = cpu.as_secs_f64() * 1000.0 / hosts as f64;
    println!(
        "rotate_100: {hosts} hosts in {seconds:.2} s ({:.1} hosts/s), handler CPU {cpu_ms:.2} ms/host",
        hosts as f64 / seconds
    );
    println!(
        "rotate_100: AWS calls per rotation: {}",
        Value::Object(calls.clone())
    );
    Ok(json!({
        "hosts": hosts, "seconds": seconds, "hosts_per_second": hosts as f64 / seconds,
        "handler_cpu_ms_per_host": cpu_ms, "calls_per_rotation": calls,
    }))
}

/// One function binary against a minimal Lambda Runtime API on loopback.
async fn cold_start_one(
    binary: &std::path::Path,
    env: &[(String, String)],
    event: Value,
) -> anyhow::Result<(f64, u64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut init_ms = None;
    let mut served = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (mut sock, _) = tokio::time::timeout_at(deadline, listener.accept()).await??;
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        // Read the request head (and a small body, if any).
        loop {
            let m = sock.read(&mut buf[n..]).await?;
            n += m;
            if m == 0 || buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        if head.starts_with("GET /2018-06-01/runtime/invocation/next") {
            if init_ms.is_none() {
                init_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
            if served {
                // Handled one event: read the peak RSS, then stop the function.
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let hwm = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                child.kill().await.ok();
                return Ok((init_ms.unwrap_or_default(), hwm));
            }
            served = true;
            let body = event.to_string();
            let deadline_ms = (time::OffsetDateTime::now_utc().unix_timestamp() + 60) * 1000;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline_ms}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:111122223333:function:bench\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await?;
        } else {
            // Response, error or init error: acknowledge.
            if head.contains("/init/error") {
                anyhow::bail!("{} failed to initialise: {head}", binary.display());
            }
            sock.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
                .await?;
        }
    }
}

async fn cold_start() -> anyhow::Result<Value> {
    let stack = tests::stack::LocalStack::start(&[]).await?;
    let c = &stack.config;
    let mut env: Vec<(String, String)> = [
        ("TABLE_NAME", c.table_name.clone()),
        ("ALERT_TOPIC_ARN", c.alert_topic_arn.clone()),
        ("CA_ARN", c.ca_arn.clone()),
        ("SIGNING_ALGORITHM", c.signing_algorithm.clone()),
        ("GENERATE_CSR_DOCUMENT", c.generate_csr_document.clone()),
        ("DEPLOY_CERT_DOCUMENT", c.deploy_cert_document.clone()),
        ("TRUST_ANCHOR_ARN", "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/00000000-0000-0000-0000-000000000000".into()),
        ("CRL_BUCKET", "bench-crl".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_ENDPOINT_URL_DYNAMODB", stack.endpoints.moto.clone()),
        ("AWS_ENDPOINT_URL_SNS", stack.endpoints.moto.clone()),
        ("AWS_ENDPOINT_URL_S3", stack.endpoints.moto.clone()),
        ("AWS_ENDPOINT_URL_SSM", stack.endpoints.ssm.clone()),
        ("AWS_ENDPOINT_URL_ACM_PCA", stack.endpoints.pca.clone()),
        ("AWS_ENDPOINT_URL_ROLESANYWHERE", stack.endpoints.pca.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    let events = [
        ("cert-check", json!({})),
        (
            "cert-issue",
            serde_json::from_str(include_str!(
                "../../tests/fixtures/events/ssm-command-invocation-status-change.json"
            ))?,
        ),
        (
            "cert-deploy",
            serde_json::from_str(include_str!(
                "../../tests/fixtures/events/pca-certificate-issuance-success.json"
            ))?,
        ),
        (
            "crl-processor",
            json!({"version": "0", "id": "b", "detail-type": "Object Created", "source": "aws.s3", "resources": [],
            "detail": {"bucket": {"name": "bench-crl"}, "object": {"key": "other/readme.txt"}}}),
        ),
    ];
    let mut report = serde_json::Map::new();
    for (name, event) in events {
        let binary = workspace_root().join("target/release").join(name);
        anyhow::ensure!(
            binary.exists(),
            "{} missing: `make bench` builds it (cargo build --release -p {name})",
            binary.display()
        );
        let mut runs: Vec<(f64, u64)> = Vec::new();
        for _ in 0..5 {
            runs.push(cold_start_one(&binary, &env, event.clone()).await?);
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (init_ms, _) = runs[runs.len() / 2];
        let peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
        println!("cold_start: {name}: ready for its first event in {init_ms:.1} ms (median of 5), peak RSS {peak} kB");
        report.insert(
            name.to_owned(),
            json!({ "init_ms": init_ms, "peak_rss_kb": peak }),
        );
    }
    Ok(Value::Object(report))
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all = which.is_empty();
    // Cold starts first, on a quiet machine. (Run after rotate_100 in the same process, one of
    // the functions' first DynamoDB call sometimes never got an answer: not understood yet.)
    if all || which.iter().any(|w| w == "cold_start") {
        write_report("cold_start", cold_start().await?)?;
    }
    if all || which.iter().any(|w| w == "plan_10k") {
        write_report("plan_10k", plan_10k().await?)?;
    }
    if all || which.iter().any(|w| w == "rotate_100") {
        write_report("rotate_100", rotate_100().await?)?;
    }
    println!(
        "report: {}",
        workspace_root().join("target/bench/report.json").display()
    );
    Ok(())
}
