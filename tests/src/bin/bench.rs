//! Benchmarks that print numbers (never asserted by tests) and write `target/bench/report.json`.
//!
//! - `plan_10k`: enrol 10,000 hosts (20% due) into moto, once as this service writes them and
//!   once as the original sample does, and time CertCheck's due-host listing (every page,
//!   parallel segments, server-side filter, then the pure planner) next to the original's
//!   one-page listing on the same server.
//! - `rotate_100`: rotate 100 emulated hosts end to end; wall time, the handlers' own CPU time
//!   (they run on one dedicated thread whose CPU time is read from `/proc/thread-self/schedstat`,
//!   so the emulators, moto and the hosts' openssl are not counted), AWS calls per rotation.
//! - `cold_start`: each function binary (release, `target/release/<name>`) started against a local
//!   Lambda Runtime API: time from exec to its first request for an event, and peak RSS after it
//!   handled one event.

use std::time::Instant;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use state::dynamo::{attr, legacy_time};
use state::plan::{DueWindow, Plan, PlanPolicy};
use state::ports::FleetReader;
use state::DynamoStore;
use tests::moto::{workspace_root, MotoServer};
use tests::table::{item, s, Item};
use time::{Duration, OffsetDateTime};

/// Median and minimum of `runs` timings of `f`, with `f`'s last result.
async fn timed<T, F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(f64, f64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let out = last.context("no run")?;
    Ok((times[times.len() / 2], times[0], out))
}

/// The original's one page (see `tests/original_listing.py`) requested by our own client: what
/// the server alone takes for it. Returns the hosts on the page.
async fn original_page(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<Vec<String>> {
    let page = client
        .scan()
        .table_name(table)
        .projection_expression("hostID, expiry, certPath, keyPath")
        .send()
        .await?;
    Ok(page
        .items()
        .iter()
        .filter_map(|i| i.get(attr::HOST_ID)?.as_s().ok().cloned())
        .collect())
}

/// The original's listing run as the Python it is (`tests/original_listing.py`, boto3).
fn original_python(endpoint: &str, table: &str, runs: usize) -> anyhow::Result<Value> {
    let out = std::process::Command::new(tests::moto::moto_python())
        .arg(workspace_root().join("tests/original_listing.py"))
        .args([endpoint, table, &runs.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running tests/original_listing.py")?;
    anyhow::ensure!(
        out.status.success(),
        "original_listing.py failed: {}",
        out.status
    );
    serde_json::from_slice(&out.stdout).context("original_listing.py output")
}

/// Seeds 10,000 hosts (every fifth due) twice, as this service writes them and as the original
/// sample writes them, then times on the same moto server our listing (every page, parallel
/// segments, server-side filter, the planner) and the original's one page. Five runs each;
/// medians and minimums are printed (moto's timings vary by ±20% from run to run).
async fn plan_10k() -> anyhow::Result<Value> {
    const RUNS: usize = 5;
    let moto = MotoServer::start()?;
    let client = tests::aws::dynamodb(&moto.url());
    let now = OffsetDateTime::now_utc();
    let hosts = 10_000u64;
    let is_due = |i: u64| i % 5 == 0;
    let due = (0..hosts).filter(|i| is_due(*i)).count() as u64;
    let host = |i: u64| format!("mi-{i:017x}");
    let ours = move |i: u64| {
        let nb = now - Duration::days(3);
        let na = nb + Duration::days(7);
        let renew_at = if is_due(i) {
            now - Duration::minutes(5)
        } else {
            now + Duration::days(1)
        };
        item(&[
            (attr::HOST_ID, s(&host(i))),
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
        ])
    };
    // As the original sample leaves a host after a rotation (7-day certificates).
    let original = move |i: u64| {
        let na = if is_due(i) {
            now + Duration::hours(20)
        } else {
            now + Duration::days(6)
        };
        item(&[
            (attr::HOST_ID, s(&host(i))),
            (attr::EXPIRY, s(&legacy_time(na))),
            (
                attr::SERIAL,
                s("4c:1f:aa:00:9e:11:22:33:44:55:66:77:88:99:aa:bb"),
            ),
            (attr::RENEWAL_DATE, s(&legacy_time(na - Duration::days(1)))),
            (attr::STATUS, s("ISSUED")),
            (attr::CERT_PATH, s("/etc/pki/rolesanywhere")),
        ])
    };
    let segments = std::env::var("BENCH_SEGMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let policy = PlanPolicy::default();
    let mut report = serde_json::Map::new();
    println!(
        "plan_10k: {hosts} hosts, {due} due; same moto server, {RUNS} runs each, median (min)"
    );
    for (name, make) in [
        ("service_items", &ours as &dyn Fn(u64) -> Item),
        ("original_items", &original as &dyn Fn(u64) -> Item),
    ] {
        let table = format!("bench-{name}");
        tests::table::create_state_table(&client, &table).await?;
        let t = Instant::now();
        tests::table::put_items(&client, &table, (0..hosts).map(make)).await?;
        eprintln!(
            "plan_10k: seeded {hosts} {name} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let store = DynamoStore::new(client.clone(), &table, segments);
        let (median, min, (listed, items_read, pages, returned)) = timed(RUNS, || async {
            let scan = store.candidates(DueWindow::at(now, &policy)).await?;
            let returned = scan.records.len() + scan.rejected.len();
            let plan = Plan::build(scan.records, now, &policy);
            let listed = plan.starting().count() as u64;
            Ok((listed, scan.items_read, scan.pages, returned))
        })
        .await?;
        let (o_median, o_min, o_seen) = timed(RUNS, || original_page(&client, &table)).await?;
        let py = original_python(&moto.url(), &table, RUNS)?;
        let truly_due = |hosts: &[String]| {
            hosts
                .iter()
                .filter(|h| {
                    u64::from_str_radix(h.trim_start_matches("mi-"), 16)
                        .map(is_due)
                        .unwrap_or(false)
                })
                .count()
        };
        let (o_reached, o_returned) = (truly_due(&o_seen), o_seen.len());
        let py_hosts = |k: &str| -> Vec<String> {
            py[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (p_listed, p_reached) = (truly_due(&py_hosts("due")), truly_due(&py_hosts("seen")));
        let (p_median, p_min) = (
            py["median_s"].as_f64().unwrap_or(f64::NAN),
            py["min_s"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "  {name:<15} ours: {listed:>5} of {due} due listed, {items_read} items read, \
             {returned} returned, {pages} pages, {median:.3} s ({min:.3})"
        );
        println!(
            "  {name:<15} original, its Python: {p_listed:>5} of {due} due listed by its 1-day \
             rule, {p_reached} on its one page, {p_median:.3} s ({p_min:.3})"
        );
        println!(
            "  {name:<15} original, its page requested by our client: {o_returned} items \
             ({o_reached} due), {o_median:.3} s ({o_min:.3})"
        );
        report.insert(
            name.into(),
            json!({
                "hosts": hosts, "due": due, "segments": segments,
                "ours": {"listed": listed, "items_read": items_read, "returned": returned,
                         "pages": pages, "median_s": median, "min_s": min},
                "original_python": {"listed": p_listed, "due_on_page": p_reached,
                                    "median_s": p_median, "min_s": p_min},
                "original_page_our_client": {"due_on_page": o_reached, "items": o_returned,
                                      "median_s": o_median, "min_s": o_min},
            }),
        );
    }
    Ok(Value::Object(report))
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
            .enrol_host(&h, &overrides, tests::emulators::ssm::HostSpec::default())
            .await?;
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
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(if std::env::var_os("BENCH_RUST_LOG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
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
        // Read the whole body too: closing a socket with unread bytes resets it, and the
        // runtime client may then see its request fail.
        if let Some(end) = head.find("\r\n\r\n") {
            let length: usize = head[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let mut have = n - (end + 4);
            while have < length {
                let m = sock.read(&mut buf).await?;
                if m == 0 {
                    break;
                }
                have += m;
            }
        }
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
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\n\
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
            // One request per connection, said so: a client that reused this connection for
            // its next request could race our close and lose that request.
            sock.write_all(
                b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
            )
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
    // Cold starts first, on a quiet machine.
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
