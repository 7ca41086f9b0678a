//! `cargo xtask bench-api`: the daemon's HTTP API under load, over
//! loopback, with the release build.
//!
//! What it does: builds `entropyd` and its `api_load` example in release,
//! makes temporary state directories (memory-cache-size 65536 KiB, so 1
//! MiB adds are taken whole), a 0600 token and test certificates (made now
//! by `api_load certs`, never kept), starts `entropyd run --sources=8
//! --sink=/dev/null` twice on 127.0.0.1 (port picked by the OS, read from
//! the `listening on` log line): plain, and TLS (`--tls-cert/--tls-key`).
//! Then it measures:
//!
//! 1. TLS against plain: `--adds` (default 32) adds of 1 MiB to each
//!    daemon, alternating, a new connection (and for TLS a full handshake)
//!    each, while both pools still have room for every add;
//! 2. TLS handshakes per second: `--handshakes` (default 500) connections
//!    with one GET each, full handshakes, then resumed ones;
//! 3. submit throughput: `--adds` adds of 1 MiB of fresh random bytes, one
//!    after the other on one connection each; the figure is bytes accepted
//!    per second of request time (the JSON bodies are built before timing);
//! 4. read latency under load: `--gets` (default 2000) `GET
//!    /entropy/external-pool` requests from one thread while another
//!    thread keeps submitting 1 MiB adds; p50, p99 and max;
//! 5. slow clients: `--attackers` (default 1000) connections from
//!    127.0.0.2.. (50 per address; the legitimate client on 127.0.0.1 is a
//!    different peer) trickling a request head one byte a second, while the
//!    legitimate client sends 1000 GETs and 200 authorized 64 KiB adds; then
//!    the same against the TLS daemon with handshakes that stall (500 GETs,
//!    100 adds, handshake included). p50, p99 and max of each; the goal is
//!    p99 <= 100 ms for a GET and <= 200 ms for an add. Each run is
//!    bounded to 120 s and stops by itself.
//!
//! Then it stops the daemons with SIGTERM and removes the directory.
//! Phases 3 and 4 write HTTP by hand over `TcpStream` (a test client; the
//! daemon uses a real parser); 1, 2 and 5 run in `api_load`, since xtask is
//! std only.

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

/// Options: `--adds=N`, `--gets=N`, `--handshakes=N`, `--attackers=N`.
#[derive(Debug)]
struct Options {
    adds: usize,
    gets: usize,
    handshakes: usize,
    attackers: usize,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        adds: 32,
        gets: 2000,
        handshakes: 500,
        attackers: 1000,
    };
    for a in args {
        let (key, value) = a
            .split_once('=')
            .ok_or_else(|| {
            format!(
                "bench-api: unknown argument {a:?} (use --adds=N, --gets=N, --handshakes=N, --attackers=N)"
            )
        })?;
        let n: usize = value
            .parse()
            .ok()
            .filter(|&n| n > 0 && n <= 100_000)
            .ok_or_else(|| format!("bench-api: {key} needs a number 1..=100000, got {value:?}"))?;
        match key {
            "--adds" => o.adds = n,
            "--gets" => o.gets = n,
            "--handshakes" => o.handshakes = n,
            // 50 per source address, 127.0.0.2 up to 127.0.0.255.
            "--attackers" if n <= 50 * 254 => o.attackers = n,
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

/// Builds the daemon and the load example; returns their paths.
fn build_release(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "entropyd",
            "--bins",
            "--example",
            "api_load",
        ])
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
    let load = target.join("release").join("examples").join("api_load");
    for b in [&bin, &load] {
        if !b.is_file() {
            return Err(format!("{} was not built", b.display()));
        }
    }
    Ok((bin, load))
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

    fn start(
        bin: &Path,
        state: &Path,
        token: &Path,
        extra: &[String],
    ) -> Result<(Daemon, SocketAddr), String> {
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
            .args(extra)
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

/// Runs `api_load` with `args`; its output goes to ours.
fn load(bin: &Path, args: &[String]) -> Result<(), String> {
    let status = Command::new(bin)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "api_load {} failed: {status}",
            args.first().map_or("", String::as_str)
        ))
    }
}

/// A state directory set up for the benchmark.
fn prepare_state(bin: &Path, state: &Path) -> Result<(), String> {
    let set = Command::new(bin)
        .arg("--state-dir")
        .arg(state)
        .args(["set", "--memory-cache-size=65536", "--storage-cache-size=0"])
        .status()
        .map_err(|e| e.to_string())?;
    if set.success() {
        Ok(())
    } else {
        Err(format!("entropyd set failed: {set}"))
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// Phases 1 and 2 (see the module documentation).
fn compare_tls(
    loader: &Path,
    plain: SocketAddr,
    tls: SocketAddr,
    dir: &Path,
    token: &Path,
    o: &Options,
) -> Result<(), String> {
    let ca = dir.join("ca.pem").display().to_string();
    let token = token.display().to_string();
    load(
        loader,
        &strings(&[
            "compare",
            &plain.to_string(),
            &tls.to_string(),
            &ca,
            &token,
            &o.adds.to_string(),
        ]),
    )?;
    load(
        loader,
        &strings(&[
            "handshakes",
            &tls.to_string(),
            &ca,
            &o.handshakes.to_string(),
        ]),
    )
}

/// Phase 5 (see the module documentation).
fn measure_slow(
    loader: &Path,
    plain: SocketAddr,
    tls: SocketAddr,
    dir: &Path,
    token: &Path,
    o: &Options,
) -> Result<(), String> {
    let ca = dir.join("ca.pem").display().to_string();
    let token = token.display().to_string();
    let attackers = o.attackers.to_string();
    load(
        loader,
        &strings(&[
            "slow",
            &plain.to_string(),
            "-",
            &token,
            &attackers,
            "1000",
            "200",
            "120",
        ]),
    )?;
    load(
        loader,
        &strings(&[
            "slow",
            &tls.to_string(),
            &ca,
            &token,
            &attackers,
            "500",
            "100",
            "120",
        ]),
    )
}

/// Runs the benchmark (see the module documentation).
///
/// # Errors
/// A message when the build, the daemon or a request fails.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let root = workspace_root();
    let (bin, loader) = build_release(&root)?;
    let dir = std::env::temp_dir().join(format!("entropyd-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let state = dir.join("state");
        let state_tls = dir.join("state-tls");
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        load(&loader, &[String::from("certs"), dir.display().to_string()])?;
        prepare_state(&bin, &state)?;
        prepare_state(&bin, &state_tls)?;
        let (daemon, addr) = Daemon::start(&bin, &state, &token, &[])?;
        let tls_args = [
            format!("--tls-cert={}", dir.join("server.pem").display()),
            format!("--tls-key={}", dir.join("server.key").display()),
        ];
        let (daemon_tls, addr_tls) = Daemon::start(&bin, &state_tls, &token, &tls_args)?;
        println!(
            "bench-api: {} on {addr} and, with TLS, on {addr_tls}; sources 8 (external), memory-cache-size 65536 KiB",
            bin.display()
        );
        // TLS against plain first, while both pools have room for every
        // add; then the plain figures; then the slow clients.
        let measured = compare_tls(&loader, addr, addr_tls, &dir, &token, &options)
            .and_then(|()| measure(addr, &options))
            .and_then(|()| measure_slow(&loader, addr, addr_tls, &dir, &token, &options));
        let stopped = daemon.stop();
        let stopped_tls = daemon_tls.stop();
        measured.and(stopped).and(stopped_tls)
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
