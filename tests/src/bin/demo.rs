//! `make demo`: the whole rotation on one machine, no AWS account.
//!
//! Starts the local stack (moto, the Run Command, Private CA and Roles Anywhere emulators, the
//! production handlers), enrols 12 hosts with mixed paths and key types, runs the schedule once,
//! delivers the events until every rotation settles, then has every host trade its new pair for
//! AWS credentials through its `aws_signing_helper credential-process` (CreateSession over HTTPS,
//! signed by a third-party library). It revokes one host's certificate, shows CreateSession
//! refusing that certificate once the CRL is on the trust anchor and accepting the re-issued one,
//! prints a status table, and leaves the hosts' files, the CA certificate and `report.json` under
//! `target/demo/`. Exits non-zero if any host fails or any CreateSession answer is not the
//! expected one.

use std::io::Write;
use std::path::PathBuf;

use pki::KeyAlgorithm;
use serde_json::json;
use state::ports::FleetReader;
use state::record::{HostOverrides, StateKind};
use state::{HostId, HostPath};
use tests::emulators::ssm::HostSpec;
use tests::moto::workspace_root;
use tests::stack::{Delivery, LocalStack};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::var_os("DEMO_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/demo"));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("hosts"))?;
    eprintln!(
        "starting the local stack (moto, Run Command, Private CA and Roles Anywhere emulators)…"
    );
    let mut stack = LocalStack::start(&[]).await?;
    let p = |s: &str| Some(HostPath::parse("path", s).expect("valid demo path"));
    let mut hosts = Vec::new();
    for i in 0..12u64 {
        let h = format!("mi-{:017x}", 0xde0000 + i);
        let mut o = HostOverrides::default();
        if i % 3 == 1 {
            o.cert_path = p("/srv/pki/certs");
            o.key_path = p("/srv/pki/private");
            o.cacert_path = p("/srv/pki/ca");
        }
        o.key_algorithm = Some(match i % 4 {
            0 => KeyAlgorithm::Rsa2048,
            1 => KeyAlgorithm::EcP256,
            2 => KeyAlgorithm::Rsa3072,
            _ => KeyAlgorithm::EcP384,
        });
        stack.enrol_host(&h, &o, HostSpec::default()).await?;
        hosts.push((h, o));
    }
    eprintln!(
        "enrolled {} hosts; running the schedule once (CertCheck with the scheduler's input {{}})",
        hosts.len()
    );
    let summary = stack.cert_check(json!({})).await?;
    eprintln!(
        "CertCheck: {} due, {} started",
        summary["due"],
        summary["started"].as_array().map_or(0, Vec::len)
    );
    // Progress: deliver events in rounds and draw a bar of hosts deployed.
    let total = hosts.len();
    while stack.settle_round(Delivery::default()).await? {
        let fleet = stack.store.all_hosts().await?;
        let done = fleet
            .records
            .iter()
            .filter(|r| matches!(r.state.kind(), StateKind::Deployed | StateKind::Failed))
            .count();
        eprint!(
            "\r[{:<24}] {done}/{total} settled",
            "#".repeat(done * 24 / total)
        );
        std::io::stderr().flush()?;
    }
    eprintln!();

    // Credentials: every host runs its aws_signing_helper credential-process with its new pair.
    eprintln!("every host asks Roles Anywhere for a session with its new certificate…");
    let started = std::time::Instant::now();
    let env = tests::emulators::signing_helper::host_env(&stack.rolesanywhere);
    let mut runs = tokio::task::JoinSet::new();
    for (i, (h, o)) in hosts.iter().enumerate() {
        let f = stack.host_files(h, o);
        let (helper, args) = stack.host_credential_process(h, o, &f.cert, &f.key);
        let env = env.clone();
        runs.spawn(async move {
            let got =
                tests::emulators::signing_helper::credential_process(&helper, &env, &args).await;
            (i, got)
        });
    }
    let mut sessions = vec![json!(null); hosts.len()];
    while let Some(done) = runs.join_next().await {
        let (i, got) = done?;
        sessions[i] = match got {
            Ok(c) => json!({"ok": true, "expiration": c.expiration}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        };
    }
    let granted = sessions.iter().filter(|s| s["ok"] == true).count();
    eprintln!(
        "CreateSession: {granted}/{} hosts got credentials ({:.1} s); {}'s session expires at {}",
        hosts.len(),
        started.elapsed().as_secs_f64(),
        hosts[0].0,
        sessions[0]["expiration"].as_str().unwrap_or("-")
    );

    // Revocation: an operator revokes one host's certificate through CertCheck; Private CA writes
    // its CRL to S3 (the real service does so within about 30 minutes; the emulator at once);
    // CRLProcessor puts it on the trust anchor; the next scheduled run re-issues the host.
    // SUPERSEDED: the reason that lets the host be re-issued (others hold it for an operator).
    let victim = hosts[3].0.clone();
    let victim_o = hosts[3].1.clone();
    let victim_id = HostId::parse(&victim)?;
    let old_serial = stack
        .store
        .host(&victim_id)
        .await?
        .and_then(|r| r.current)
        .and_then(|c| c.serial)
        .ok_or_else(|| anyhow::anyhow!("{victim} has no certificate to revoke"))?;
    // Keep the pair being revoked, to present it to CreateSession once the CRL is on the anchor.
    let old_pair = {
        let f = stack.host_files(&victim, &victim_o);
        let dir = out.join("revoked");
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (
            dir.join(format!("{victim}.crt")),
            dir.join(format!("{victim}.key")),
        );
        std::fs::copy(&f.cert, &cert)?;
        std::fs::copy(&f.key, &key)?;
        (cert, key)
    };
    eprintln!("revoking {victim}'s certificate {old_serial} (SUPERSEDED)…");
    let revoked = stack
        .cert_check(json!({"revoke": {"host": victim, "reason": "SUPERSEDED"}}))
        .await?;
    anyhow::ensure!(
        revoked.get("error").is_none(),
        "revocation failed: {revoked}"
    );
    let crl = stack.pca.publish_crl().await?;
    eprintln!(
        "Private CA wrote CRL number {} to s3://{}/{}",
        crl.number, crl.bucket, crl.key
    );
    stack.settle(Delivery::default()).await?;
    let ta = stack.config.roles_anywhere.trust_anchor_arn.clone();
    let anchor = stack.rolesanywhere.crls_for(&ta);
    let ca_pem = stack.pca.ca_certificate_pem();
    let mut anchor_json = Vec::new();
    for c in &anchor {
        let facts = pki::check_crl(&c.der, &ca_pem)?;
        anchor_json.push(json!({
            "crlId": c.crl_id, "name": c.name, "enabled": c.enabled,
            "crlNumber": facts.crl_number.to_string(), "revokedSerials": facts.revoked_serials,
        }));
    }
    anyhow::ensure!(
        anchor.len() == 1
            && anchor_json[0]["revokedSerials"]
                .as_array()
                .is_some_and(|a| a.contains(&json!(old_serial))),
        "the trust anchor does not hold one CRL listing {old_serial}: {anchor_json:?}"
    );
    eprintln!(
        "trust anchor: 1 CRL (number {}), listing {old_serial}",
        anchor_json[0]["crlNumber"]
    );
    let old_session = stack
        .host_credentials(&victim, &victim_o, &old_pair.0, &old_pair.1)
        .await;
    let refusal = stack
        .rolesanywhere
        .sessions()
        .pop()
        .and_then(|a| a.outcome.err())
        .unwrap_or_default();
    anyhow::ensure!(
        old_session.is_err() && refusal.1.starts_with("Certificate revoked"),
        "CreateSession did not refuse {victim}'s revoked certificate: {old_session:?} {refusal:?}"
    );
    eprintln!(
        "CreateSession refuses {victim}'s revoked certificate: {} {}",
        refusal.0, refusal.1
    );
    eprintln!("running the schedule again: the revoked host is re-issued…");
    stack.cert_check(json!({})).await?;
    stack.settle(Delivery::default()).await?;
    let new_files = stack.host_files(&victim, &victim_o);
    let new_session = stack
        .host_credentials(&victim, &victim_o, &new_files.cert, &new_files.key)
        .await;
    anyhow::ensure!(
        new_session.is_ok(),
        "CreateSession refused {victim}'s re-issued certificate: {new_session:?}"
    );
    eprintln!("CreateSession accepts {victim}'s re-issued certificate");
    std::fs::create_dir_all(out.join("crl"))?;
    std::fs::write(out.join("crl/latest.crl"), &crl.der)?;
    std::fs::write(
        out.join("trust-anchor-crls.json"),
        serde_json::to_string_pretty(&anchor_json)?,
    )?;

    let fleet = stack.store.all_hosts().await?;
    println!(
        "{:<22} {:<9} {:<50} {:<22} {:<22} key",
        "host", "state", "serial", "notAfter", "renewAt"
    );
    let mut report_hosts = Vec::new();
    let mut failed = 0;
    for ((h, o), session) in hosts.iter().zip(&sessions) {
        let r = fleet
            .records
            .iter()
            .find(|r| r.host.as_str() == h)
            .expect("host in table");
        let cur = r.current.clone();
        let kind = r.state.kind();
        if kind != StateKind::Deployed {
            failed += 1;
        }
        let f = stack.host_files(h, o);
        let (root, cert, key, chain) = (f.root, f.cert, f.key, f.chain);
        let dest = out.join("hosts").join(h);
        copy_tree(&root, &dest)?;
        let rel = |p: &PathBuf| {
            dest.join(p.strip_prefix(&root).expect("under root"))
                .display()
                .to_string()
        };
        let fmt = |t: Option<time::OffsetDateTime>| {
            t.map(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            })
            .unwrap_or_default()
        };
        println!(
            "{:<22} {:<9} {:<50} {:<22} {:<22} {}",
            h,
            kind.as_str(),
            cur.as_ref()
                .and_then(|c| c.serial.clone())
                .unwrap_or_default(),
            fmt(cur.as_ref().map(|c| c.not_after)),
            fmt(cur.as_ref().and_then(|c| c.renew_at)),
            o.key_algorithm.map(|k| k.as_str()).unwrap_or_default()
        );
        report_hosts.push(json!({
            "hostID": h,
            "state": kind.as_str(),
            "serial": cur.as_ref().and_then(|c| c.serial.clone()),
            "notAfter": fmt(cur.as_ref().map(|c| c.not_after)),
            "renewAt": fmt(cur.as_ref().and_then(|c| c.renew_at)),
            "keyAlgorithm": o.key_algorithm.map(|k| k.as_str()),
            "certFile": rel(&cert),
            "keyFile": rel(&key),
            "chainFile": rel(&chain),
            "createSession": session,
        }));
    }
    std::fs::write(out.join("ca.pem"), stack.pca.ca_certificate_pem())?;
    let new_serial = report_hosts[3]["serial"].clone();
    anyhow::ensure!(
        new_serial != json!(old_serial) && report_hosts[3]["state"] == "DEPLOYED",
        "{victim} was not re-issued after its revocation"
    );
    println!();
    println!(
        "{victim}: serial {old_serial} revoked, on the trust anchor's CRL; re-issued as {}",
        new_serial.as_str().unwrap_or("")
    );
    let report = json!({
        "hosts": report_hosts,
        "revokedSerials": [old_serial],
        "revocation": {
            "host": victim,
            "reason": "SUPERSEDED",
            "oldCertificateCreateSession": {"ok": false, "error": refusal.0, "message": refusal.1},
            "newCertificateCreateSession": {"ok": true},
        },
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let alerts = stack.inbox.messages()?.len();
    println!();
    println!(
        "credentials: {granted}/{} hosts got a session through aws_signing_helper credential-process; {}'s expires at {}",
        hosts.len(),
        hosts[0].0,
        sessions[0]["expiration"].as_str().unwrap_or("-")
    );
    println!("alerts published: {alerts}");
    println!(
        "files: {} (report.json, ca.pem, crl/latest.crl, trust-anchor-crls.json, revoked/, hosts/<hostID>/…)",
        out.display()
    );
    println!(
        "check one: openssl verify -CAfile {} {}",
        report_hosts[0]["chainFile"].as_str().unwrap_or(""),
        report_hosts[0]["certFile"].as_str().unwrap_or("")
    );
    let _ = stack
        .store
        .candidates(state::plan::DueWindow::at(
            time::OffsetDateTime::now_utc(),
            &state::plan::PlanPolicy::default(),
        ))
        .await?;
    anyhow::ensure!(
        failed == 0,
        "{failed} host(s) did not reach DEPLOYED: see the table above"
    );
    anyhow::ensure!(
        granted == hosts.len(),
        "{} host(s) got no credentials: see createSession in report.json",
        hosts.len() - granted
    );
    Ok(())
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
