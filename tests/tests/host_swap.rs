//! DeployCert's swap survives a crash at any point: the script is SIGKILLed at every call of a
//! program that changes files (the Nth `mv`, `ln`, `sync` …, N = 1, 2, … until a run gets
//! through), as a reboot would stop it there; then DeployCert (itself killed at its Nth call
//! once more, then run again) or GenerateCsr runs, and the host must have a matching pair (the certificate's public key is the key's, the chain verifies
//! it, the key is 0400), the new one after DeployCert, and nothing of the swap left behind.
//!
//! Why: before, the key and the certificate were renamed one after the other, and a crash
//! between the two left a key and a certificate that did not match, with nothing to repair it.
//!
//! The kill comes from stand-ins put first on the host's PATH by the emulator (the production
//! scripts know nothing of it): each counts its calls in a file (one count for all of them) and,
//! on the Nth, kills the script's shell and every subshell between, before doing anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod host_common;

use host_common::{
    assert_matching_pair, assert_succeeded, read_pem, Bench, Layout, SEPARATE, SHARED,
};

/// The programs that change what a reader or the next run sees, which the scripts call during a
/// swap (mktemp is left out: a new temporary name changes nothing until one of these uses it).
const WRAPPED: [&str; 6] = ["mv", "ln", "rm", "cp", "chmod", "sync"];

/// The stand-in's body: count this call; on the `kill_at`-th, SIGKILL the script (the topmost
/// `bash …/_script.sh`) and the subshells between it and us; otherwise run the real program.
fn crash_on_call(counter: &Path, kill_at: u32) -> String {
    format!(
        r#"count=0
read -r count <'{counter}' 2>/dev/null || true
count=$((count + 1))
printf '%s\n' "$count" >'{counter}'
if [ "$count" -eq {kill_at} ]; then
  victims=()
  p=$PPID
  while [ "$p" -gt 1 ]; do
    mapfile -d '' -t argv <"/proc/$p/cmdline" || break
    case "${{argv[*]}}" in
      *_script.sh*) victims+=("$p") ;;
      *) break ;;
    esac
    read -r -a stat <"/proc/$p/stat" || break
    p=${{stat[3]}}
  done
  kill -KILL "${{victims[@]}}"
  exit 137
fi
exec "$next" "$@""#,
        counter = counter.display()
    )
}

/// A copy of the host's files, to start every attempt from the same state.
struct Snapshot {
    dir: tempfile::TempDir,
}

fn cp_a(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

impl Snapshot {
    fn take(root: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        cp_a(&root.join("etc"), dir.path());
        Self { dir }
    }

    fn restore(&self, root: &Path) {
        let etc = root.join("etc");
        make_writable(&etc);
        std::fs::remove_dir_all(&etc).unwrap();
        cp_a(&self.dir.path().join("etc"), root);
    }
}

/// Directories the scripts made 0500 or so would stop remove_dir_all; files need nothing.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.path().symlink_metadata().unwrap();
        if md.is_dir() {
            let mode = md.permissions().mode();
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode | 0o700))
                .unwrap();
            make_writable(&e.path());
        }
    }
}

/// Every regular file under `dir` (not following symlinks).
fn regular_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.path().symlink_metadata().unwrap();
        if md.is_dir() {
            regular_files(&e.path(), out);
        } else if md.is_file() {
            out.push(e.path());
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Recovery {
    DeployCertAgain,
    GenerateCsr,
}

/// The host after recovery: a matching pair; after DeployCert, the new one, and the previous
/// pair removed (no `.prev` key after either document); and no file but the published ones (and what they point to), the staged key and the
/// CSR. After GenerateCsr, which knows no certificate directory unless a swap was under way, a
/// staged certificate may linger; a private key never.
fn assert_recovered(b: &Bench, n: u32, how: Recovery, old: &str, new: &str) {
    let f = b.files();
    let ctx = format!("crash at call {n}, then {how:?}");
    assert_matching_pair(&f.cert, &f.key, &f.chain, &ctx);
    let live = read_pem(&f.cert);
    assert!(
        live == new.trim_end() || live == old.trim_end(),
        "{ctx}: the live certificate is neither the old nor the new one"
    );
    if matches!(how, Recovery::DeployCertAgain) {
        assert_eq!(
            live,
            new.trim_end(),
            "{ctx}: DeployCert deployed the new pair"
        );
    }
    // The previous pair goes once the swap is complete: its key never outlives a recovery;
    // GenerateCsr, which knows only the key directory, may leave a certificate .prev elsewhere.
    assert!(
        f.key_prev.symlink_metadata().is_err(),
        "{ctx}: the previous key is gone"
    );
    if matches!(how, Recovery::DeployCertAgain) {
        assert!(
            f.cert_prev.symlink_metadata().is_err(),
            "{ctx}: the previous certificate is gone"
        );
    }

    let chain_prev = f.chain.with_extension("crt.prev");
    let published: BTreeSet<PathBuf> = [
        &f.cert,
        &f.key,
        &f.chain,
        &f.cert_prev,
        &f.key_prev,
        &chain_prev,
    ]
    .iter()
    .filter_map(|p| std::fs::canonicalize(p).ok())
    .chain([f.staged_key.clone(), f.csr.clone()])
    .collect();
    let mut files = Vec::new();
    regular_files(&b.root.join("etc"), &mut files);
    for file in files {
        let canonical = std::fs::canonicalize(&file).unwrap();
        if published.contains(&canonical) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lingers_ok = matches!(how, Recovery::GenerateCsr)
            && !text.contains("PRIVATE KEY")
            && text.contains("-----BEGIN CERTIFICATE-----");
        assert!(lingers_ok, "{ctx}: {} is left over", file.display());
    }
}

async fn crash_at_every_point(layout: Layout, how: Recovery) {
    let b = Bench::start(layout).await;
    let old = b.rotate().await;
    let new = b.new_certificate().await;
    let snapshot = Snapshot::take(&b.root);
    let counter = b.root.parent().unwrap().join(format!("{}.calls", b.host));

    let mut points = 0;
    for n in 1.. {
        snapshot.restore(&b.root);
        let _ = std::fs::remove_file(&counter);
        for tool in WRAPPED {
            b.ssm
                .put_host_tool(&b.host, tool, &crash_on_call(&counter, n));
        }
        let run = b.deploy(&new, &b.ca.pem).await;
        b.ssm.clear_host_tools(&b.host);
        let calls: u32 = std::fs::read_to_string(&counter)
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0);
        if calls < n {
            // Every point has been tried: this run went through.
            assert_succeeded(&run, "DeployCert without a crash");
            assert_recovered(&b, n, Recovery::DeployCertAgain, &old, &new);
            break;
        }
        assert_eq!(
            run.response_code, -1,
            "call {n}: the script was killed: {run:?}"
        );
        points += 1;

        let again = match how {
            Recovery::DeployCertAgain => {
                // The host goes down again at the same call of the repairing run, then a third
                // run must still repair it.
                let _ = std::fs::remove_file(&counter);
                for tool in WRAPPED {
                    b.ssm
                        .put_host_tool(&b.host, tool, &crash_on_call(&counter, n));
                }
                b.deploy(&new, &b.ca.pem).await;
                b.ssm.clear_host_tools(&b.host);
                b.deploy(&new, &b.ca.pem).await
            }
            Recovery::GenerateCsr => b.generate_csr().await,
        };
        assert_succeeded(&again, &format!("{how:?} after a crash at call {n}"));
        assert_recovered(&b, n, how, &old, &new);
    }
    assert!(points >= 10, "only {points} points in the swap were tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_directories_deploy_cert_repairs_a_crash_at_any_point() {
    crash_at_every_point(SEPARATE, Recovery::DeployCertAgain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_directories_generate_csr_repairs_a_crash_at_any_point() {
    crash_at_every_point(SEPARATE, Recovery::GenerateCsr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_directory_deploy_cert_repairs_a_crash_at_any_point() {
    crash_at_every_point(SHARED, Recovery::DeployCertAgain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_directory_generate_csr_repairs_a_crash_at_any_point() {
    crash_at_every_point(SHARED, Recovery::GenerateCsr).await;
}
