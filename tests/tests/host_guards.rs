//! What DeployCert and GenerateCsr refuse on a host, and what they report: directories other
//! users can write to, symlinks planted where the scripts write, verifications that OpenSSL 1.1
//! reports as failed with exit status 0, and a reload hook that fails after the swap.
//!
//! Why: the scripts run as root on hosts we do not control. A file written through a planted
//! symlink, or a verdict read from an exit status that lies, would install or overwrite what
//! nobody checked; a failing reload hook leaves services on the old pair, which someone must
//! hear about.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

mod host_common;

use host_common::{assert_matching_pair, assert_succeeded, read_pem, Bench, TestCa, SEPARATE};
use tests::emulators::ssm::InvocationView;

fn error_line(inv: &InvocationView) -> String {
    inv.stderr
        .lines()
        .find(|l| l.starts_with("ERROR: "))
        .unwrap_or_else(|| panic!("no ERROR line: {inv:?}"))
        .to_string()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A host with a deployed pair and a staged key with its certificate, ready to deploy.
async fn host_ready_to_deploy() -> (Bench, String) {
    let b = Bench::start(SEPARATE).await;
    b.rotate().await;
    let next = b.new_certificate().await;
    (b, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_cert_refuses_a_certificate_or_chain_directory_others_can_write() {
    let (b, next) = host_ready_to_deploy().await;
    let f = b.files();
    let before = b.live();
    for (param, dir) in [
        ("certPath", b.on_host(b.layout.cert)),
        ("cacertPath", b.on_host(b.layout.cacert)),
        ("keyPath", b.on_host(b.layout.key)),
    ] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        for bad in [mode | 0o020, mode | 0o002] {
            chmod(&dir, bad);
            let run = b.deploy(&next, &b.ca.pem).await;
            chmod(&dir, mode);
            assert_eq!(run.status, "Failed", "{param} mode {bad:o}: {run:?}");
            assert_ne!(run.response_code, 0);
            let why = error_line(&run);
            // The certificate and the chain share a directory here: either name may be given.
            assert!(
                why.contains(dir.to_str().unwrap()) && why.contains("writable by group or others"),
                "{param}: {why}"
            );
            assert_eq!(b.live(), before, "{param}: the live pair is untouched");
        }
    }
    // Back to a safe mode, the same deployment goes through.
    assert_succeeded(&b.deploy(&next, &b.ca.pem).await, "DeployCert");
    assert_eq!(read_pem(&f.cert), next.trim_end());
}

/// A racing user who plants a symlink as soon as a staging or backup path is removed: the stand-in
/// `rm` does the removal, then the planting (the race won every time).
fn plant_after_rm(victim: &Path, watched: &[&Path]) -> String {
    let cases: Vec<String> = watched
        .iter()
        .map(|p| {
            format!(
                "    '{}') ln -s '{}' \"$a\" ;;",
                p.display(),
                victim.display()
            )
        })
        .collect();
    format!(
        "\"$next\" \"$@\"\nrc=$?\nfor a in \"$@\"; do\n  case \"$a\" in\n{}\n  esac\ndone\nexit $rc",
        cases.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_at_a_staging_or_backup_path_is_never_written_through() {
    let (b, next) = host_ready_to_deploy().await;
    let f = b.files();
    let victim = b.root.join("etc/victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let staged_cert = f.cert.with_extension("crt.next");
    let staged_chain = f.chain.with_extension("crt.next");
    let chain_prev = f.chain.with_extension("crt.prev");
    // The previous pair's names are removed by the script itself once a swap is complete; a
    // symlink planted there is refused as at any published path (the test below).
    let watched = [
        staged_cert.as_path(),
        staged_chain.as_path(),
        chain_prev.as_path(),
    ];
    // Planted before the run, and planted again whenever the script removes one of them.
    for p in [&staged_cert, &staged_chain] {
        std::os::unix::fs::symlink(&victim, p).unwrap();
    }
    b.ssm
        .put_host_tool(&b.host, "rm", &plant_after_rm(&victim, &watched));
    let run = b.deploy(&next, &b.ca.pem).await;
    b.ssm.clear_host_tools(&b.host);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "written through a planted symlink: {run:?}"
    );
    assert_succeeded(
        &run,
        "DeployCert replaces a staging symlink, never follows it",
    );
    assert_eq!(read_pem(&f.cert), next.trim_end());
    assert_matching_pair(&f.cert, &f.key, &f.chain, "after the deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_symlink_at_a_published_path_is_refused() {
    let (b, _) = host_ready_to_deploy().await;
    // A second rotation, so that there is a previous pair too.
    b.rotate().await;
    let next = b.new_certificate().await;
    let f = b.files();
    let victim = b.root.join("etc/victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let chain_prev = f.chain.with_extension("crt.prev");
    for published in [&f.cert_prev, &f.key_prev, &chain_prev, &f.cert, &f.chain] {
        // The previous pair is removed after each swap: its names may hold nothing.
        let saved = published.with_extension("saved");
        let had = std::fs::rename(published, &saved).is_ok();
        std::os::unix::fs::symlink(&victim, published).unwrap();
        let before = std::fs::read(&f.key).unwrap();
        let run = b.deploy(&next, &b.ca.pem).await;
        std::fs::remove_file(published).unwrap();
        if had {
            std::fs::rename(&saved, published).unwrap();
        }
        assert_eq!(run.status, "Failed", "{}: {run:?}", published.display());
        let why = error_line(&run);
        assert!(
            why.contains("symbolic link") && why.contains(published.to_str().unwrap()),
            "{why}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read(&f.key).unwrap(), before, "live key untouched");
    }
    assert_succeeded(&b.deploy(&next, &b.ca.pem).await, "DeployCert");
}

/// A stand-in for openssl that damages the signature of every CSR `req -new` writes: one base64
/// character of the last line, which lies inside the signature, changed. The CSR still parses.
const DAMAGE_CSR_SIGNATURE: &str = r#""$next" "$@" || exit
new=0 out=''
prev=''
for a in "$@"; do
  [ "$a" != -new ] || new=1
  [ "$prev" != -out ] || out=$a
  prev=$a
done
if [ "$1" = req ] && [ "$new" = 1 ] && [ -n "$out" ]; then
  mapfile -t lines <"$out"
  i=$((${#lines[@]} - 2))
  line=${lines[$i]}
  if [ "${line:0:1}" = A ]; then c=B; else c=A; fi
  lines[i]="${c}${line:1}"
  printf '%s\n' "${lines[@]}" >"$out"
fi"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_openssl_1_1_a_csr_that_fails_verification_is_refused() {
    let b = Bench::start(SEPARATE).await;
    b.ssm.emulate_openssl_1_1(&b.host, true);
    // A good CSR passes: the verdict "verify OK" is read, not only the exit status.
    assert_succeeded(&b.generate_csr().await, "GenerateCsr with OpenSSL 1.1");

    b.ssm
        .put_host_tool(&b.host, "openssl", DAMAGE_CSR_SIGNATURE);
    let run = b.generate_csr().await;
    assert_eq!(run.status, "Failed", "a CSR with a bad signature: {run:?}");
    assert_eq!(run.response_code, 5);
    let why = error_line(&run);
    assert!(why.contains("does not verify"), "{why}");
    assert!(!run.stdout.contains("BEGIN CERTIFICATE REQUEST"), "{run:?}");

    // The same damage with the real exit statuses: refused as well.
    b.ssm.emulate_openssl_1_1(&b.host, false);
    let run = b.generate_csr().await;
    assert_eq!(run.response_code, 5, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_openssl_1_1_a_certificate_that_fails_chain_verification_is_refused() {
    let (b, next) = host_ready_to_deploy().await;
    b.ssm.emulate_openssl_1_1(&b.host, true);
    let before = b.live();
    let other_ca = TestCa::new("another-ca");
    let run = b.deploy(&next, &other_ca.pem).await;
    assert_eq!(run.status, "Failed", "a chain from another CA: {run:?}");
    assert_eq!(run.response_code, 8);
    let why = error_line(&run);
    assert!(why.contains("does not verify against the chain"), "{why}");
    assert_eq!(b.live(), before, "the live pair is untouched");

    // The right chain still deploys: "OK" is read from openssl verify's output.
    assert_succeeded(
        &b.deploy(&next, &b.ca.pem).await,
        "DeployCert with OpenSSL 1.1",
    );
    let f = b.files();
    assert_matching_pair(&f.cert, &f.key, &f.chain, "after the deployment");
}

/// The marker lines DeployCert printed about the reload hook.
fn hook_markers(inv: &InvocationView) -> Vec<&str> {
    inv.stdout
        .lines()
        .filter(|l| l.starts_with("RELOAD_HOOK"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reload_hook_is_reported_on_stdout_after_a_successful_swap() {
    let b = Bench::start(SEPARATE).await;
    b.rotate().await;
    let hooks = b.root.join("usr/local/sbin");
    std::fs::create_dir_all(&hooks).unwrap();
    let hook = |name: &str, body: &str, mode: u32| {
        let p = hooks.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        chmod(&p, mode);
        format!("/usr/local/sbin/{name}")
    };
    let cases = [
        (
            hook("fails", "echo reloading >&2; exit 3", 0o755),
            Some("3"),
        ),
        (
            hook("works", "test -s \"$1\" && test -s \"$2\"", 0o755),
            None,
        ),
        (hook("not-executable", "exit 0", 0o644), Some("126")),
        ("/usr/local/sbin/missing".to_string(), Some("127")),
    ];
    for (path, marker) in cases {
        let next = b.new_certificate().await;
        let run = b
            .deploy_with(&next, &b.ca.pem, &[("reloadHook", path.clone())])
            .await;
        assert_succeeded(&run, &format!("DeployCert with hook {path}"));
        assert_eq!(
            read_pem(&b.files().cert),
            next.trim_end(),
            "{path}: swapped"
        );
        let want: Vec<String> = marker
            .iter()
            .map(|code| format!("RELOAD_HOOK_FAILED {code}"))
            .collect();
        assert_eq!(hook_markers(&run), want, "{path}: {run:?}");
    }
}
