//! Shared helpers for the end-to-end tests: the real `entropyd` binary,
//! a temporary state directory, a daemon guard that kills the child on
//! failure, and a raw HTTP client for requests the real client never sends.
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entropyd::auth::ApiToken;
use entropyd::backend::StatusSnapshot;
use entropyd::client::Client;
use entropyd::server::ListenAddr;

pub const TOKEN: &str = "e2e-test-token-0123456789abcdef";
/// Generous: the test machine may be a loaded 2-core VM.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_entropyd")
}

/// A temporary directory with `state/` (not created) and a 0600 token.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub token: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        Env { dir, state, token }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `entropyd --state-dir STATE args...`, waited for.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_stdin(args, &[])
    }

    pub fn cmd_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(bin())
            .env_remove("ENTROPYD_STATE_DIR")
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    /// `set ...`, which must succeed.
    pub fn set(&self, args: &[&str]) {
        let mut all = vec!["set"];
        all.extend_from_slice(args);
        let out = self.cmd(&all);
        assert!(out.status.success(), "set {args:?}: {}", text(&out.stderr));
    }

    pub fn start(&self, args: &[&str]) -> Daemon {
        Daemon::start(&self.state, args)
    }

    pub fn storage_file(&self) -> PathBuf {
        self.state.join("storage.cache")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `n` bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

/// Polls `cond` every 50 ms until it holds or `WAIT` passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `entropyd run`; killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `run --listen=127.0.0.1:0 args...` and waits for the
    /// `listening on ADDR` log line.
    pub fn start(state: &Path, args: &[&str]) -> Daemon {
        Daemon::start_with(state, args, |_| {})
    }

    /// Starts `run --listen=LISTEN args...` and waits for the `listening on
    /// ADDR` log line; `addr` is that address (an unspecified IP reached
    /// on loopback).
    pub fn start_on(state: &Path, listen: &str, args: &[&str]) -> Daemon {
        Daemon::start_full(Path::new(bin()), state, listen, args, |_| {})
    }

    /// As [`Daemon::start`], with `configure` applied to the command first
    /// (e.g. to run it as another user).
    pub fn start_with(state: &Path, args: &[&str], configure: impl FnOnce(&mut Command)) -> Daemon {
        Daemon::start_full(Path::new(bin()), state, "127.0.0.1:0", args, configure)
    }

    /// As [`Daemon::start_with`], running the binary at `program` (a copy
    /// another user can reach: the build's own path may sit below a
    /// directory only its owner may enter).
    #[allow(dead_code)]
    pub fn start_program(
        program: &Path,
        state: &Path,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        Daemon::start_full(program, state, "127.0.0.1:0", args, configure)
    }

    fn start_full(
        program: &Path,
        state: &Path,
        listen: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let mut cmd = Command::new(program);
        configure(&mut cmd);
        let mut child = cmd
            .env_remove("ENTROPYD_STATE_DIR")
            .arg("--state-dir")
            .arg(state)
            .arg("run")
            .arg(format!("--listen={listen}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let theirs = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = theirs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut daemon = Daemon {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(addr) = daemon.log_text().lines().find_map(|l| {
                l.split_once("listening on ")
                    .and_then(|(_, a)| a.trim().parse::<SocketAddr>().ok())
            }) {
                daemon.addr = addr;
                if addr.ip().is_unspecified() {
                    daemon.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                return daemon;
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "entropyd run exited early ({status}):\n{}",
                    daemon.log_text()
                );
            }
            assert!(
                start.elapsed() < WAIT,
                "entropyd run did not start listening:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn listen(&self) -> String {
        format!("--listen={}", self.addr)
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(
            &ListenAddr::Tcp(self.addr),
            token.map(|t| ApiToken::from_bytes(t.as_bytes()).unwrap()),
            WAIT,
        )
        .unwrap()
    }

    pub fn status(&self) -> StatusSnapshot {
        self.client(None).status().unwrap()
    }

    /// Sends SIGTERM and waits for the exit (then for the log to close).
    pub fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {pid} failed");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < WAIT, "entropyd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader thread drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log_text())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One raw HTTP/1.1 request; returns the status code and body.
pub fn raw_http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = text(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A POST of `body` to the add call with optional `Authorization` value.
pub fn raw_add(addr: SocketAddr, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let head = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    raw_http(addr, &head, body)
}

/// The blocks of a storage cache file as stored (the first 32 bytes of
/// every non-empty slot; the store keys them with a fresh start key before
/// any is used, so none of these may ever appear in an output).
pub fn stored_blocks(path: &Path) -> Vec<[u8; 32]> {
    use entropool::storage::{HEADER_LEN, SLOT_LEN};
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    bytes
        .get(HEADER_LEN as usize..)
        .unwrap_or_default()
        .chunks_exact(SLOT_LEN as usize)
        .filter(|slot| slot.iter().any(|&b| b != 0))
        .map(|slot| <[u8; 32]>::try_from(&slot[..32]).unwrap())
        .collect()
}

/// A file's content split in 32-byte blocks (the length must be whole
/// blocks).
pub fn blocks_of(data: &[u8]) -> Vec<[u8; 32]> {
    assert_eq!(data.len() % 32, 0, "not whole blocks: {} bytes", data.len());
    data.chunks_exact(32)
        .map(|c| <[u8; 32]>::try_from(c).unwrap())
        .collect()
}
