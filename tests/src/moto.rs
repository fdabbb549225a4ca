//! The moto server: real DynamoDB, SNS and S3 wire protocols over HTTP on 127.0.0.1.
//!
//! Each test (nextest runs each in its own process) starts its own server on a free port, with
//! the project's virtualenv Python (`make venv` creates it; `MOTO_PYTHON` overrides it), through
//! `tests/moto_serial.py`, which serves one request at a time so conditional writes are atomic as
//! in DynamoDB. A watchdog shell kills the server if the test process dies without dropping it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, stopped on drop.
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

/// The workspace root (the tests crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate sits in the workspace")
        .to_path_buf()
}

/// The project's virtualenv Python (moto, boto3), or `MOTO_PYTHON`.
pub fn moto_python() -> PathBuf {
    std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for a server started right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl MotoServer {
    /// Starts a server and waits until it answers (about a second).
    pub fn start() -> anyhow::Result<MotoServer> {
        let bin = moto_python();
        anyhow::ensure!(
            bin.exists(),
            "the project's Python not found at {} (run `make venv`, or set MOTO_PYTHON)",
            bin.display()
        );
        let launcher = workspace_root().join("tests/moto_serial.py");
        let port = free_port();
        let log_dir = workspace_root().join("target/moto-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("moto-{port}.log")))?;
        // The watchdog: run the server in the background and kill it when our process is gone.
        let script = format!(
            "\"$0\" \"$1\" -H 127.0.0.1 -p {port} & m=$!; parent={parent}; \
             trap 'kill $m 2>/dev/null; exit 0' TERM INT; \
             while kill -0 $parent 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
             kill $m 2>/dev/null; wait $m 2>/dev/null",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .arg(&launcher)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = MotoServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "moto server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // SIGTERM the watchdog shell; its trap kills the server.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
