//! End-to-end tests of `entropyd feed` with the real binaries on
//! 127.0.0.1 (plain http, which the feeder allows to loopback only): a
//! real PKCS#11 token from SoftHSM2 made in a temporary directory, real
//! daemons with external-only sources (`--sources=8`).
//!
//! SoftHSM2 is a real component: when `softhsm2-util` or the module is
//! missing these tests fail saying how to install it (`apt-get install
//! softhsm2`; `cargo xtask ci` installs it when it runs as root). They
//! never skip silently.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_common::{Daemon, Env, TOKEN, WAIT, bin, text, wait_until};
use entropool::Source;

/// Where Debian puts the SoftHSM2 module.
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// A SoftHSM2 token in a temporary directory.
struct SoftHsm {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    module: PathBuf,
    slot: u64,
    pin_file: PathBuf,
}

impl SoftHsm {
    fn new() -> SoftHsm {
        let module = MODULES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "SoftHSM2 is not installed (no {}): run `apt-get install softhsm2` \
                     (`cargo xtask ci` installs it when it runs as root)",
                    MODULES.join(" or ")
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                "feed",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "softhsm2-util cannot run ({e}): run `apt-get install softhsm2` \
                     (`cargo xtask ci` installs it when it runs as root)"
                )
            });
        assert!(out.status.success(), "softhsm2-util: {}", text(&out.stderr));
        let said = text(&out.stdout);
        let slot = said
            .split("reassigned to slot ")
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no slot in softhsm2-util's answer: {said}"));
        let pin_file = dir.path().join("pin");
        write_secret(&pin_file, "1234\n");
        SoftHsm {
            _dir: dir,
            conf,
            module,
            slot,
            pin_file,
        }
    }

    /// The source arguments of `feed`.
    fn args(&self) -> Vec<String> {
        vec![
            format!("--from-pkcs11={}", self.module.display()),
            format!("--slot={}", self.slot),
            format!("--pin-file={}", self.pin_file.display()),
        ]
    }
}

fn write_secret(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `entropyd feed ARGS` (with the HSM's config in the environment),
/// waited for.
fn feed(hsm: Option<&SoftHsm>, args: &[String]) -> Output {
    let mut cmd = Command::new(bin());
    if let Some(h) = hsm {
        cmd.env("SOFTHSM2_CONF", &h.conf);
    }
    cmd.arg("feed")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A running `entropyd feed`, its stdout collected; killed on drop.
struct Feeder {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Feeder {
    fn start(hsm: &SoftHsm, args: &[String]) -> Feeder {
        let mut child = Command::new(bin())
            .env("SOFTHSM2_CONF", &hsm.conf)
            .arg("feed")
            .args(hsm.args())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let theirs = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = theirs.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        Feeder { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// SIGTERM; the feeder must exit 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < WAIT, "the feeder did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "the feeder exited {status}");
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free port on 127.0.0.1 (bound, then released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `entropyd run --sources=8 --listen=ADDR --token-file ... extra`, started
/// in `env`'s state directory, on a fixed address (so it can come back
/// there).
fn daemon_at(env: &Env, addr: SocketAddr, extra: &[&str]) -> Daemon {
    let mut child = Command::new(bin())
        .env_remove("ENTROPYD_STATE_DIR")
        .arg("--state-dir")
        .arg(&env.state)
        .arg("run")
        .arg(format!("--listen={addr}"))
        .arg("--sources=8")
        .arg(format!("--token-file={}", env.token.display()))
        .args(extra)
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
    let d = Daemon { child, addr, log };
    wait_until("the daemon listens", || {
        d.log_text().contains("listening on")
    });
    d
}

/// `entropyd run --sources=8 --token-file ...` on a port of its choosing.
fn daemon(env: &Env) -> Daemon {
    env.start(&["--sources=8", &token_arg(env)])
}

/// A fresh state directory with a 64 KiB memory cache and no storage cache.
fn small_env() -> Env {
    let env = Env::new();
    env.set(&["--memory-cache-size=64", "--storage-cache-size=0"]);
    env
}

fn url(d: &Daemon) -> String {
    format!("--to=http://{}", d.addr)
}

fn token_arg(env: &Env) -> String {
    format!("--token-file={}", env.token.display())
}

fn is_full(d: &Daemon) -> bool {
    let p = d.client(None).external_pool().unwrap();
    p.currently_available == p.capacity
}

fn external_bytes(d: &Daemon) -> u64 {
    d.status()
        .sources
        .iter()
        .find(|s| s.source == Source::External)
        .unwrap()
        .samples
}

#[test]
fn once_from_softhsm_fills_every_host() {
    let hsm = SoftHsm::new();
    let (e1, e2) = (small_env(), small_env());
    let d1 = daemon(&e1);
    let d2 = daemon(&e2);
    assert!(!is_full(&d1));
    let mut args = hsm.args();
    args.extend([url(&d1), url(&d2), token_arg(&e1), "--once".to_owned()]);
    let out = feed(Some(&hsm), &args);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(is_full(&d1) && is_full(&d2));
    // One status line per host, each full, nothing dropped.
    assert_eq!(said.lines().count(), 2, "{said}");
    for d in [&d1, &d2] {
        let line = said
            .lines()
            .find(|l| l.starts_with(&format!("http://{} ", d.addr)))
            .unwrap_or_else(|| panic!("no line for {}: {said}", d.addr));
        assert!(line.contains(" ok full "), "{line}");
        assert!(line.contains("dropped=0 "), "{line}");
        // What the feeder says it sent is what the daemon counted.
        let sent: u64 = line
            .split("sent=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sent, external_bytes(d), "{line}");
        // Room is 64 KiB; 40 bytes make a 32-byte block after 1024
        // uncredited start-up bytes.
        assert!(sent >= 65536 * 40 / 32 + 1024, "{line}");
    }

    // Already full: one more round sends nothing and exits 0.
    let before = external_bytes(&d1);
    let out = feed(Some(&hsm), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(external_bytes(&d1), before);
}

#[test]
fn a_dead_host_fails_alone_and_promptly() {
    let hsm = SoftHsm::new();
    let env = small_env();
    let d = daemon(&env);
    let dead = free_addr();
    let mut args = hsm.args();
    args.extend([
        format!("--to=http://{dead}"),
        url(&d),
        token_arg(&env),
        "--once".to_owned(),
    ]);
    let start = Instant::now();
    let out = feed(Some(&hsm), &args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(start.elapsed() < WAIT);
    let said = text(&out.stdout);
    assert!(is_full(&d), "{said}");
    assert!(said.contains(&format!("http://{dead} FAILED")), "{said}");
    let err = text(&out.stderr);
    assert!(
        err.contains("not every host is full") && err.contains(&dead.to_string()),
        "{err}"
    );
}

#[test]
fn hsm_errors_name_module_and_slot_and_send_nothing() {
    let hsm = SoftHsm::new();
    let env = small_env();
    let d = daemon(&env);
    let module = hsm.module.display().to_string();
    let base = |source: Vec<String>| {
        let mut a = source;
        a.extend([url(&d), token_arg(&env), "--once".to_owned()]);
        a
    };
    // Wrong PIN.
    let wrong = hsm._dir.path().join("wrong-pin");
    write_secret(&wrong, "9999\n");
    let out = feed(
        Some(&hsm),
        &base(vec![
            format!("--from-pkcs11={module}"),
            format!("--slot={}", hsm.slot),
            format!("--pin-file={}", wrong.display()),
        ]),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&module) && err.contains(&format!("slot {}", hsm.slot)),
        "{err}"
    );
    assert!(err.contains("wrong PIN"), "{err}");
    // No such slot.
    let out = feed(
        Some(&hsm),
        &base(vec![
            format!("--from-pkcs11={module}"),
            "--slot=4242".to_owned(),
            format!("--pin-file={}", hsm.pin_file.display()),
        ]),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&module) && err.contains("slot 4242") && err.contains("no such slot"),
        "{err}"
    );
    // No module.
    let out = feed(
        Some(&hsm),
        &base(vec![
            "--from-pkcs11=/nonexistent/libnope.so".to_owned(),
            "--slot=1".to_owned(),
        ]),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/nonexistent/libnope.so")
            && err.contains("slot 1")
            && err.contains("cannot load"),
        "{err}"
    );
    // A PIN file others can read.
    let open = hsm._dir.path().join("open-pin");
    std::fs::write(&open, "1234\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = feed(
        Some(&hsm),
        &base(vec![
            format!("--from-pkcs11={module}"),
            format!("--slot={}", hsm.slot),
            format!("--pin-file={}", open.display()),
        ]),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("0644"), "{err}");
    // Nothing reached the daemon.
    assert_eq!(external_bytes(&d), 0);
}

#[test]
fn plain_http_to_another_address_is_refused() {
    for to in [
        "--to=http://192.0.2.7:8742",
        "--to=http://[2001:db8::1]:8742",
    ] {
        let out = feed(
            None,
            &[
                "--from-file=/dev/urandom".to_owned(),
                to.to_owned(),
                "--once".to_owned(),
            ],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("loopback only"), "{err}");
    }
    // https without --ca: refused, verification cannot be turned off.
    let out = feed(
        None,
        &[
            "--from-file=/dev/urandom".to_owned(),
            "--to=https://192.0.2.7:8743".to_owned(),
            "--once".to_owned(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--ca"));
}

#[test]
fn a_file_is_read_once_front_to_back() {
    let env = small_env();
    let d = daemon(&env);
    // Less than the room: all of it goes, once, then the source has ended.
    let file = env.path("entropy.bin");
    std::fs::write(&file, e2e_common::random_bytes(5000)).unwrap();
    let hosts = env.path("hosts");
    std::fs::write(&hosts, format!("# the fleet\n\nhttp://{}\n", d.addr)).unwrap();
    let out = feed(
        None,
        &[
            format!("--from-file={}", file.display()),
            format!("--hosts-file={}", hosts.display()),
            token_arg(&env),
            "--once".to_owned(),
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the source ended after 5000 bytes"), "{err}");
    assert_eq!(external_bytes(&d), 5000);
}

#[test]
fn a_wrong_token_is_refused_and_nothing_is_credited() {
    let env = small_env();
    let d = daemon(&env);
    let bad = env.path("bad-token");
    write_secret(&bad, "not-the-right-token-at-all-0000\n");
    let out = feed(
        None,
        &[
            "--from-file=/dev/urandom".to_owned(),
            url(&d),
            format!("--token-file={}", bad.display()),
            "--once".to_owned(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(said.contains("FAILED") && said.contains("401"), "{said}");
    assert_eq!(external_bytes(&d), 0);
    assert_ne!(TOKEN, "not-the-right-token-at-all-0000");
}

#[test]
fn a_restarted_host_is_brought_back_and_lost_recovers() {
    let hsm = SoftHsm::new();
    let (e1, e2) = (small_env(), small_env());
    // Hosts that drain to a sink (so the feeder keeps sending) and call
    // external entropy lost after 5 s without it (the feeder comes every
    // second: room for a loaded machine).
    for e in [&e1, &e2] {
        e.set(&["--external-entropy-lost-timeout=5"]);
    }
    let sink = |e: &Env| format!("--sink={}", e.path("sink").display());
    let (a1, a2) = (free_addr(), free_addr());
    let d1 = daemon_at(&e1, a1, &[&sink(&e1), "--feed-rate=8192"]);
    let d2 = daemon_at(&e2, a2, &[&sink(&e2), "--feed-rate=8192"]);
    let args = [
        url(&d1),
        url(&d2),
        token_arg(&e1),
        "--interval=1".to_owned(),
        "--timeout=5".to_owned(),
    ];
    let feeder = Feeder::start(&hsm, &args);
    wait_until("both hosts fed", || {
        external_bytes(&d1) > 65536 && external_bytes(&d2) > 65536
    });

    // Host 1 dies; host 2 keeps being fed meanwhile.
    drop(d1);
    let fed = external_bytes(&d2);
    wait_until("a failed round for the dead host", || {
        feeder.output().contains(&format!("http://{a1} FAILED"))
    });
    wait_until("host 2 still fed", || external_bytes(&d2) > fed + 8192);
    assert!(!d2.status().external.lost);

    // It comes back on the same address, empty: the feeder refills it.
    let d1 = daemon_at(&e1, a1, &[&sink(&e1), "--feed-rate=8192"]);
    wait_until("the restarted host fed again", || {
        external_bytes(&d1) > 65536
    });
    assert!(!d1.status().external.lost);

    // The feeder stops: each host calls external entropy lost...
    feeder.stop();
    wait_until("host 1 lost", || d1.status().external.lost);
    wait_until("host 2 lost", || d2.status().external.lost);
    // ... and recovers when it comes back.
    let feeder = Feeder::start(&hsm, &args);
    wait_until("host 1 recovered", || !d1.status().external.lost);
    wait_until("host 2 recovered", || !d2.status().external.lost);
    feeder.stop();
}

#[test]
fn bad_command_lines_are_refused_whole() {
    let env = Env::new();
    let empty = env.path("hosts");
    std::fs::write(&empty, "# nobody yet\n\n").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--to=http://127.0.0.1:1", "--once"], "--from-pkcs11"),
        (&["--from-file=/dev/urandom", "--once"], "--to"),
        (
            &[
                "--from-file=/dev/urandom",
                "--slot=1",
                "--to=http://127.0.0.1:1",
            ],
            "--from-pkcs11",
        ),
        (
            &[
                "--from-file=/dev/urandom",
                "--to=http://127.0.0.1:1",
                "--to=http://127.0.0.1:1",
            ],
            "named twice",
        ),
        (
            &[
                "--from-file=/dev/urandom",
                "--to=http://127.0.0.1:1",
                "--interval=0",
            ],
            "interval",
        ),
        (
            &["--from-file=/dev/urandom", "--to=ftp://127.0.0.1:1"],
            "https://",
        ),
    ];
    for (args, says) in cases {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let out = feed(None, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = feed(
        None,
        &[
            "--from-file=/dev/urandom".to_owned(),
            format!("--hosts-file={}", empty.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no host to feed"));
}
