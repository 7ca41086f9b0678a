//! `cargo xtask bench-api`: the daemon's HTTP API under load, over
//! loopback, with the release build.
//!
//! What it does: builds `entropyd` in release, makes a temporary state
//! directory (memory-cache-size 65536 KiB, so 1 MiB adds are taken whole)
//! and a 0600 token, starts `entropyd run --sources=8 --sink=/dev/null` on
//! 127.0.0.1 (port picked by the OS, read from the `listening on` log
//! line), then measures:
//!
//! 1. submit throughput: `--adds` (default 32) adds of 1 MiB of fresh
//!    random bytes, one after the other on one connection each; the figure
//!    is bytes accepted per second of request time (the JSON bodies are
//!    built before timing);
//! 2. read latency under load: `--gets` (default 2000) `GET
//!    /entropy/external-pool` requests from one thread while another
//!    thread keeps submitting 1 MiB adds; p50, p99 and max.
//!
//! Then it stops the daemon with SIGTERM and removes the directory. The
//! HTTP requests are written by hand over `TcpStream` (a test client; the
//! daemon uses a real parser). std only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const TOKEN: &str = "bench-api-token-0123456789abcdef";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Options: `--adds=N`, `--gets=N`.
#[derive(Debug)]
struct Options {
    adds: usize,
    gets: usize,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        adds: 32,
        gets: 2000,
    };
    for a in args {
        let (key, value) = a
            .split_once('=')
            .ok_or_else(|| format!("bench-api: unknown argument {a:?} (use --adds=N, --gets=N)"))?;
        let n: usize = value
            .parse()
            .ok()
            .filter(|&n| n > 0 && n <= 100_000)
            .ok_or_else(|| format!("bench-api: {key} needs a number 1..=100000, got {value:?}"))?;
        match key {
            "--adds" => o.adds = n,
            "--gets" => o.gets = n,
            _ => return Err(format!("bench-api: unknown option {key}")),
        }
    }
    Ok(o)
}

/// The workspace root (xtask's parent directory).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn build_release(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "entropyd"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release -p entropyd failed: {status}"
        ));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("entropyd");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} was not built", bin.display()))
    }
}

/// The daemon; killed on drop if still running.
struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn start(bin: &Path, state: &Path, token: &Path) -> Result<(Daemon, SocketAddr), String> {
        let mut child = Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .args([
                "run",
                "--sources=8",
                "--sink=/dev/null",
                "--listen=127.0.0.1:0",
                "--feed-rate=1000000000",
            ])
            .arg(format!("--token-file={}", token.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let log = Arc::new(Mutex::new(String::new()));
        let theirs = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut l) = theirs.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let mut daemon = Daemon { child, log };
        let start = Instant::now();
        loop {
            let found = daemon.log().lines().find_map(|l| {
                l.split_once("listening on ")
                    .and_then(|(_, a)| a.trim().parse::<SocketAddr>().ok())
            });
            if let Some(addr) = found {
                return Ok((daemon, addr));
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("entropyd exited ({status}):\n{}", daemon.log()));
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(format!("entropyd did not start:\n{}", daemon.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => return Err(format!("entropyd exited with {s}:\n{}", self.log())),
                Ok(None) if start.elapsed() < IO_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return Err("entropyd did not stop on SIGTERM".to_owned()),
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET[(i & 63) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(v)
}

/// One request; returns (status, body).
fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("receive: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The prepared add request for `data`.
fn add_request(addr: SocketAddr, data: &[u8]) -> (String, Vec<u8>) {
    let body = format!("{{\"data\":\"{}\"}}", base64(data)).into_bytes();
    let head = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// Sends one prepared add; returns the bytes accepted.
fn add(addr: SocketAddr, req: &(String, Vec<u8>)) -> Result<u64, String> {
    let (status, body) = request(addr, &req.0, &req.1)?;
    if status != 200 {
        return Err(format!("add answered {status}: {body}"));
    }
    body.split_once("\"accepted\":")
        .and_then(|(_, r)| {
            r.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no accepted count in {body:?}"))
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: ceil(p/100 * n), 1-based.
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn measure(addr: SocketAddr, o: &Options) -> Result<(), String> {
    // 1. Submit throughput.
    let mut requests = Vec::with_capacity(o.adds);
    for _ in 0..o.adds {
        requests.push(add_request(addr, &random_bytes(MIB)?));
    }
    let mut accepted = 0u64;
    let mut busy = Duration::ZERO;
    let wall = Instant::now();
    for req in &requests {
        let t = Instant::now();
        accepted += add(addr, req)?;
        busy += t.elapsed();
    }
    let wall = wall.elapsed();
    let offered = (o.adds * MIB) as u64;
    let mib = accepted as f64 / MIB as f64;
    println!(
        "submit: {} adds of 1 MiB, {accepted} of {offered} bytes accepted{} in {:.3} s: {:.1} MiB/s ({:.1} ms per add)",
        o.adds,
        if accepted == offered {
            " (every add taken whole)"
        } else {
            " (NOT all taken: the pool filled)"
        },
        busy.as_secs_f64(),
        mib / busy.as_secs_f64(),
        wall.as_secs_f64() * 1000.0 / o.adds as f64
    );
    drop(requests);

    // 2. GET latency while another thread submits.
    let stop = Arc::new(AtomicBool::new(false));
    let adds_done = Arc::new(AtomicU64::new(0));
    let load_req = add_request(addr, &random_bytes(MIB)?);
    let loader = {
        let stop = Arc::clone(&stop);
        let adds_done = Arc::clone(&adds_done);
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                add(addr, &load_req)?;
                adds_done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let head =
        format!("GET /entropy/external-pool HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut times = Vec::with_capacity(o.gets);
    let started = Instant::now();
    let mut failure = None;
    for _ in 0..o.gets {
        let t = Instant::now();
        match request(addr, &head, b"") {
            Ok((200, _)) => times.push(t.elapsed()),
            Ok((status, body)) => {
                failure = Some(format!("GET answered {status}: {body}"));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let loaded = loader
        .join()
        .map_err(|_| "the load thread panicked".to_owned())?;
    if let Some(e) = failure {
        return Err(e);
    }
    loaded?;
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "GET /entropy/external-pool under load: {} requests in {:.2} s, p50 {:.0} us, p99 {:.0} us, max {:.0} us ({} concurrent 1 MiB adds)",
        times.len(),
        elapsed.as_secs_f64(),
        us(percentile(&times, 50)),
        us(percentile(&times, 99)),
        us(times.last().copied().unwrap_or_default()),
        adds_done.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Runs the benchmark (see the module documentation).
///
/// # Errors
/// A message when the build, the daemon or a request fails.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let root = workspace_root();
    let bin = build_release(&root)?;
    let dir = std::env::temp_dir().join(format!("entropyd-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let state = dir.join("state");
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let set = Command::new(&bin)
            .arg("--state-dir")
            .arg(&state)
            .args(["set", "--memory-cache-size=65536", "--storage-cache-size=0"])
            .status()
            .map_err(|e| e.to_string())?;
        if !set.success() {
            return Err(format!("entropyd set failed: {set}"));
        }
        let (daemon, addr) = Daemon::start(&bin, &state, &token)?;
        println!(
            "bench-api: {} on {addr}, sources 8 (external), memory-cache-size 65536 KiB",
            bin.display()
        );
        let measured = measure(addr, &options);
        let stopped = daemon.stop();
        measured.and(stopped)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 section 10.
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 50), Duration::from_micros(50));
        assert_eq!(percentile(&v, 99), Duration::from_micros(99));
        assert_eq!(percentile(&v[..1], 99), Duration::from_micros(1));
    }
}
