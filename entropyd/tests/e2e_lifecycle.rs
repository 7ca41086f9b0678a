//! End-to-end tests of the daemon's life cycle with the real binary: the
//! initial seed and the steady feed, the kickstart seed at first boot, a
//! failed start that changes nothing, restarts (and a SIGKILL) that never
//! hand a block out twice, a daemon found through its runtime file, a root
//! `set` on a daemon-owned directory, and the README's Quickstart run line
//! by line.
//!
//! Hardware: the tests that need a local source use RDRAND (`--sources=2`)
//! and print loudly that they skipped on a CPU without it; none needs
//! RDSEED. The kickstart with `--sources=4` runs its daemon with RDSEED
//! when the CPU has it, else checks that the failed start keeps the seed.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

mod e2e_common;
#[path = "../../tests/support/hw.rs"]
mod hw_support;

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_common::{Env, TOKEN, WAIT, bin, blocks_of, random_bytes, stored_blocks, text, wait_until};
use entropool::{Cpu, RealCpu};

fn has_rdrand() -> bool {
    RealCpu::new().features().rdrand
}

/// A visible skip for lack of `key` (`tests/support/hw.rs`): a failure
/// when `ENTROPOOL_REQUIRE_HW` names it.
fn skip(key: &str, why: &str) {
    hw_support::skip(key, &why);
}

fn len_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The `in N ms` of the daemon's initial-seed log line.
fn seed_millis(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("initial seed: "))
        .unwrap_or_else(|| panic!("no initial-seed line:\n{log}"));
    line.split(" in ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line}"))
}

/// A 512 KiB seed and a kickstart file carrying it, base64 on one line.
fn kickstart_file(env: &Env, sources: Option<u8>) -> (Vec<u8>, std::path::PathBuf) {
    use base64ct::{Base64, Encoding};
    let seed = random_bytes(512 * 1024);
    let data = Base64::encode_string(&seed);
    let opt = sources.map_or(String::new(), |s| format!("--sources={s} "));
    let ks = env.path("ks.cfg");
    std::fs::write(&ks, format!("vmaccepteula\nentropy {opt}--data={data}\n")).unwrap();
    (seed, ks)
}

#[test]
fn default_caches_seed_the_sink_at_once_then_feed_at_most_the_rate() {
    if !has_rdrand() {
        return skip("rdrand", "this CPU has no RDRAND");
    }
    let env = Env::new();
    // Default cache sizes; a 1 % watermark so the steady feed starts after
    // 164 blocks, which RDRAND under a loaded hypervisor makes in a second
    // (the 20 % default needs 3277).
    env.set(&["--memory-cache-low-watermark=1"]);
    let sink = env.path("sink");
    let sink_arg = format!("--sink={}", sink.display());
    let start = Instant::now();
    let d = env.start(&["--sources=2", &sink_arg, "--feed-rate=2048"]);
    wait_until("the initial seed in the sink", || len_of(&sink) >= 64);
    let seeded_after = start.elapsed();
    wait_until("the seed log line", || {
        d.log_text().contains("initial seed: 64 bytes")
    });
    // The daemon's own measure, from listening to the seed out; the wall
    // clock of this (possibly loaded) machine only gets a generous bound.
    let ms = seed_millis(&d.log_text());
    assert!(ms < 1000, "initial seed took {ms} ms:\n{}", d.log_text());
    assert!(seeded_after < WAIT);
    assert!(
        d.log_text()
            .contains("0 from the storage cache, 0 from the install-time seed, 64 fresh")
    );

    // Then the steady feed: it grows, by at most the rate (plus the one
    // second a full token bucket holds) over any interval measured here,
    // which contains the daemon's own.
    wait_until("the steady feed", || len_of(&sink) > 64);
    let (l0, t0) = (len_of(&sink), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let l1 = len_of(&sink);
    let secs = t0.elapsed().as_secs_f64();
    assert!(l1 > l0, "the sink did not grow");
    let bound = (2048.0 * (secs + 1.0)) as u64;
    assert!(
        l1 - l0 <= bound,
        "grew {} bytes in {secs:.2} s at 2048 B/s",
        l1 - l0
    );

    let st = d.status();
    assert_eq!(st.output.bytes_forwarded_at_start, 64);
    assert_eq!(st.output.bytes_forwarded_from_storage, 0);
    assert!(st.output.bytes_forwarded >= l1);
    assert!(st.output.seconds_since_last_forward.is_some());
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(len_of(&sink) % 32, 0, "whole blocks after the seed");
}

#[test]
fn external_only_one_64k_add_reaches_the_sink() {
    let env = Env::new();
    let sink = env.path("sink");
    let sink_arg = format!("--sink={}", sink.display());
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &sink_arg, &token_arg]);
    assert_eq!(
        len_of(&sink),
        0,
        "nothing to forward before the feeder sends"
    );
    let accepted = d.client(Some(TOKEN)).add(&random_bytes(64 * 1024)).unwrap();
    assert_eq!(accepted, 64 * 1024);
    wait_until("bytes in the sink", || len_of(&sink) >= 64);
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("64 fresh"), "{log}");
}

/// Stages `ks`, checks a failed first start (busy port) keeps the seed and
/// leaves no storage file, then runs with `run_args` and checks the seed
/// went to the sink.
fn kickstart_then_first_run(env: &Env, ks: &Path, seed: &[u8], run_args: &[&str]) {
    let out = env.cmd(&["kickstart", ks.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let staged = env.state.join("kickstart.staged");
    assert_eq!(std::fs::read(&staged).unwrap(), seed);

    // A failed first start: the port is taken.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = format!("--listen={}", busy.local_addr().unwrap());
    let out = env.cmd(&["run", &listen, "--sink=/dev/null", "--sources=8"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        seed,
        "the seed stays staged"
    );
    assert!(!env.storage_file().exists(), "no storage file left behind");
    assert!(!env.state.join("entropyd.runtime").exists());
    drop(busy);

    let sink = env.path("sink");
    let sink_arg = format!("--sink={}", sink.display());
    let mut args = vec![sink_arg.as_str()];
    args.extend_from_slice(run_args);
    let d = env.start(&args);
    wait_until("the seed log line", || {
        d.log_text().contains("initial seed: 64 bytes")
    });
    let log = d.log_text();
    assert!(!staged.exists(), "the seed was taken");
    assert!(
        log.contains("install-time seed: 524288 bytes staged, 524288 used"),
        "{log}"
    );
    // 1024 start-up bytes earn nothing, then 40 bytes a block.
    assert!(
        log.contains(&format!(
            "{} blocks to the memory cache, 0 to the storage cache",
            (524_288 - 1024) / 40
        )),
        "{log}"
    );
    assert!(
        log.contains("0 from the storage cache, 64 from the install-time seed, 0 fresh"),
        "{log}"
    );
    assert!(len_of(&sink) >= 64);
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn kickstart_without_sources_seeds_the_first_run() {
    if !has_rdrand() && !RealCpu::new().features().rdseed {
        eprintln!("note: no RDRAND/RDSEED: the default sources are interrupts only");
    }
    let env = Env::new();
    let (seed, ks) = kickstart_file(&env, None);
    // A set before the kickstart is allowed.
    env.set(&["--storage-cache-size=64"]);
    kickstart_then_first_run(&env, &ks, &seed, &[]);
}

#[test]
fn kickstart_with_rdseed_sources_seeds_the_first_run() {
    let env = Env::new();
    let (seed, ks) = kickstart_file(&env, Some(4));
    if RealCpu::new().features().rdseed {
        kickstart_then_first_run(&env, &ks, &seed, &[]);
    } else {
        // The start fails on the missing RDSEED: the seed stays staged.
        let out = env.cmd(&["kickstart", ks.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = env.cmd(&["run", "--listen=127.0.0.1:0", "--sink=/dev/null"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(env.state.join("kickstart.staged").exists());
        skip(
            "rdseed",
            "this CPU has no RDSEED (the failed start was checked)",
        );
    }
}

#[test]
fn kickstart_is_used_even_when_external_is_not_a_source() {
    if !has_rdrand() {
        return skip("rdrand", "this CPU has no RDRAND");
    }
    let env = Env::new();
    let (seed, ks) = kickstart_file(&env, Some(2));
    kickstart_then_first_run(&env, &ks, &seed, &[]);
}

/// Feeds random bytes with `submit` until `done` holds.
fn feed_until(env: &Env, d: &e2e_common::Daemon, what: &str, mut done: impl FnMut() -> bool) {
    let token_arg = format!("--token-file={}", env.token.display());
    let listen = d.listen();
    wait_until(what, || {
        if done() {
            return true;
        }
        let out = env.cmd_stdin(&["submit", &listen, &token_arg], &random_bytes(2048));
        assert!(out.status.success(), "submit: {}", text(&out.stderr));
        done()
    });
}

#[test]
fn restarts_and_a_sigkill_seed_from_storage_and_never_repeat_a_block() {
    // External entropy only: deterministic and fast, no hardware needed.
    let env = Env::new();
    env.set(&["--memory-cache-size=1", "--storage-cache-size=1"]);
    let token_arg = format!("--token-file={}", env.token.display());
    let mut sinks = Vec::new();
    for run in 0..4 {
        let sink = env.path(&format!("sink{run}"));
        let sink_arg = format!("--sink={}", sink.display());
        let d = env.start(&["--sources=8", &sink_arg, &token_arg, "--feed-rate=256"]);
        let after_sigterm = run == 1 || run == 3;
        if after_sigterm {
            // The memory cache was saved to storage at the stop: the
            // initial seed comes from it, at once.
            wait_until("the seed log", || d.log_text().contains("initial seed: "));
            assert!(
                d.log_text()
                    .contains(": 64 from the storage cache, 0 from the install-time seed, 0 fresh"),
                "run {run}:\n{}",
                d.log_text()
            );
            assert_eq!(d.status().output.bytes_forwarded_from_storage, 64);
        }
        if run == 2 {
            assert!(
                d.log_text().contains("replaced a stale runtime file"),
                "{}",
                d.log_text()
            );
        }
        feed_until(
            &env,
            &d,
            "the seed, the feed and a full memory cache",
            || {
                let st = d.status();
                len_of(&sink) >= 64 + 64
                    && st.memory_cache.len_blocks == st.memory_cache.capacity_blocks
            },
        );
        if run == 2 {
            // Run 1 was killed with its stored blocks loaded: nothing was
            // left in storage, so this seed was fresh.
            assert!(
                d.log_text().contains("0 from the storage cache"),
                "{}",
                d.log_text()
            );
        }
        if run == 1 {
            // SIGKILL: no flush; the runtime file stays behind, stale.
            let mut d = d;
            d.child.kill().unwrap();
            d.child.wait().unwrap();
            assert!(env.state.join("entropyd.runtime").exists());
            let out = env.cmd(&["status"]);
            let view = text(&out.stdout);
            assert!(view.contains("stale runtime file"), "{view}");
        } else {
            let (status, log) = d.stop();
            assert!(status.success(), "{status}\n{log}");
            assert!(!env.state.join("entropyd.runtime").exists());
            // A full storage cache for the next start.
            assert_eq!(stored_blocks(&env.storage_file()).len(), 32, "{log}");
        }
        sinks.push(sink);
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for sink in &sinks {
        let bytes = std::fs::read(sink).unwrap();
        for b in blocks_of(&bytes) {
            assert!(seen.insert(b), "a block appeared twice over the sinks");
            total += 1;
        }
    }
    assert!(total >= 4 * 4);
    for b in stored_blocks(&env.storage_file()) {
        assert!(!seen.contains(&b), "a stored block was also forwarded");
    }
}

#[test]
fn status_and_submit_find_a_daemon_on_any_port() {
    let env = Env::new();
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &token_arg]);
    assert_ne!(d.addr.port(), 8742);
    let out = env.cmd(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = text(&out.stdout);
    assert!(
        view.starts_with(&format!(
            "daemon: running, API at {} (from the runtime file)",
            d.addr
        )),
        "{view}"
    );
    assert!(view.contains("sources 8 (external)"), "{view}");
    let out = env.cmd_stdin(&["submit", &token_arg], &random_bytes(4096));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("accepted 4096 of 4096"));
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    // Stopped: the runtime file is gone and status says so at once.
    let t = Instant::now();
    let out = env.cmd(&["status"]);
    assert!(text(&out.stdout).starts_with("daemon: not running"));
    assert!(t.elapsed() < WAIT);
}

#[test]
fn readiness_goes_to_notify_socket_and_ready_file_after_the_seed() {
    use std::os::unix::net::UnixDatagram;
    let env = Env::new();
    let notify = env.path("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let ready = env.path("ready");
    let ready_arg = format!("--ready-file={}", ready.display());
    let sink = env.path("sink");
    let sink_arg = format!("--sink={}", sink.display());
    let token_arg = format!("--token-file={}", env.token.display());
    let notify_env = notify.clone();
    let d = e2e_common::Daemon::start_with(
        &env.state,
        &["--sources=8", &sink_arg, &token_arg, &ready_arg],
        move |c| {
            c.env("NOTIFY_SOCKET", &notify_env);
        },
    );
    // External only, nothing stored: no seed yet, so not ready yet.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ready.exists(), "ready before the initial seed");
    let runtime = std::fs::read_to_string(env.state.join("entropyd.runtime")).unwrap();
    assert!(runtime.contains("phase=listening\n"), "{runtime}");
    assert!(
        runtime.contains(&format!("listen={}\n", d.addr)),
        "{runtime}"
    );
    d.client(Some(TOKEN)).add(&random_bytes(4096)).unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.starts_with("READY=1\n"), "{message}");
    assert!(
        message.contains(&format!("MAINPID={}", d.child.id())),
        "{message}"
    );
    assert!(len_of(&sink) >= 64, "ready only once the seed is out");
    wait_until("the ready file", || ready.exists());
    let text_ready = std::fs::read_to_string(&ready).unwrap();
    assert!(
        text_ready.contains(&format!("listen={}\n", d.addr)),
        "{text_ready}"
    );
    let runtime = std::fs::read_to_string(env.state.join("entropyd.runtime")).unwrap();
    assert!(runtime.contains("phase=ready\n"), "{runtime}");

    // A size the running daemon can take only at restart: set says so.
    let out = env.cmd(&["set", "--memory-cache-size=65536"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("memory-cache-size=65536 KiB takes effect when entropyd restarts"),
        "{}",
        text(&out.stdout)
    );
    let out = env.cmd(&["set", "--memory-cache-size=1024"]);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(!ready.exists(), "the ready file is removed at exit");
}

#[test]
fn submit_right_after_start_waits_for_the_daemon() {
    let env = Env::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("--listen=127.0.0.1:{port}");
    let token_arg = format!("--token-file={}", env.token.display());
    let mut child = Command::new(bin())
        .env_remove("ENTROPYD_STATE_DIR")
        .arg(format!("--state-dir={}", env.state.display()))
        .args(["run", "--sources=8", &listen, &token_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // At once, with the address given: it retries until the daemon listens.
    let out = env.cmd_stdin(
        &["submit", &listen, &token_arg, "--wait=30"],
        &random_bytes(2048),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("accepted 2048 of 2048"));
    assert!(status.success());
}

#[test]
fn root_set_on_a_daemon_owned_dir_keeps_it_working() {
    // The effective user: /proc/self belongs to it.
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me != 0 {
        return skip("root", "not running as root");
    }
    const NOBODY: u32 = 65_534;
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&env.state).unwrap();
    std::os::unix::fs::chown(&env.state, Some(NOBODY), Some(NOBODY)).unwrap();
    let as_nobody = |c: &mut Command| {
        use std::os::unix::process::CommandExt;
        c.uid(NOBODY).gid(NOBODY);
    };
    // The daemon's user must reach the binary: the build's path may lie
    // below a directory only root may enter (a `mktemp -d` clone, say).
    let program = env.dir.path().join("entropyd");
    std::fs::copy(e2e_common::bin(), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = e2e_common::Daemon::start_program(&program, &env.state, &["--sources=8"], as_nobody);
    // As root, on the daemon's directory.
    env.set(&["--memory-cache-low-watermark=50"]);
    let config = std::fs::metadata(env.state.join("config")).unwrap();
    assert_eq!((config.uid(), config.gid()), (NOBODY, NOBODY));
    wait_until("the new watermark", || {
        d.status().memory_cache.low_watermark_percent == 50
    });
    env.set(&["--memory-cache-low-watermark=30"]);
    let config2 = std::fs::metadata(env.state.join("config")).unwrap();
    assert_eq!(config2.uid(), NOBODY);
    assert_eq!(config2.mode() & 0o7777, config.mode() & 0o7777);
    wait_until("the second watermark", || {
        d.status().memory_cache.low_watermark_percent == 30
    });
    assert!(
        !d.log_text().contains("Permission denied"),
        "{}",
        d.log_text()
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    // And it starts again.
    let d = e2e_common::Daemon::start_program(&program, &env.state, &["--sources=8"], as_nobody);
    assert_eq!(d.status().memory_cache.low_watermark_percent, 30);
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

/// The shell lines of the README's Quickstart (its first two `sh` blocks).
fn quickstart_lines() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let mut lines = Vec::new();
    let mut blocks = 0;
    let mut inside = false;
    for line in section.lines() {
        if line.starts_with("```sh") {
            inside = true;
            blocks += 1;
        } else if line.starts_with("```") {
            inside = false;
            if blocks == 2 {
                break;
            }
        } else if inside && !line.trim().is_empty() {
            lines.push(line.to_owned());
        }
    }
    assert_eq!(blocks, 2, "the Quickstart has its two sh blocks");
    lines
}

#[test]
fn readme_quickstart_runs_line_by_line() {
    if !has_rdrand() && !RealCpu::new().features().rdseed {
        return skip(
            "rdrand",
            "no RDRAND or RDSEED: generate would wait on interrupts alone",
        );
    }
    let lines = quickstart_lines();
    assert!(lines.iter().any(|l| l.contains("kickstart ks.cfg")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("entropyd submit") && l.contains("for i in"))
    );
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("entropyd")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // Each line runs in one bash session (for `&`, `$!`, `export`, `umask`);
    // a failing line stops the script and names itself.
    let mut script = String::from("cd \"$WORK\"\nexport PATH=\"$BIN:$PATH\"\n");
    for (i, line) in lines.iter().enumerate() {
        script.push_str(line);
        script.push_str(&format!(
            "\nrc=$?; if [ $rc -ne 0 ]; then echo \"quickstart line {} failed ($rc): {}\" >&2; exit 1; fi\n",
            i + 1,
            line.replace(['"', '$', '`', '\\'], "_")
        ));
    }
    script.push_str("wait\necho QUICKSTART-OK\n");
    let script_path = dir.path().join("quickstart.sh");
    std::fs::write(&script_path, &script).unwrap();
    // As root, in a network namespace of its own: the default port 8742
    // the README uses cannot clash with anything else on the machine.
    // (Only where it works: root, unshare and ip present, namespaces
    // allowed; else on the host, saying so.)
    let netns = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if netns {
        let mut c = Command::new("unshare");
        c.args(["-n", "sh", "-c", "ip link set lo up && exec bash \"$0\""])
            .arg(&script_path);
        c
    } else {
        eprintln!(
            "note: no network namespace here (needs root, unshare and ip): the Quickstart uses the host's port 8742"
        );
        let mut c = Command::new("bash");
        c.arg(&script_path);
        c
    };
    let out = cmd
        .env("WORK", &work)
        .env("BIN", &bin_dir)
        .env_remove("ENTROPYD_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("QUICKSTART-OK"),
        "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // What the lines claim: the kickstart seed seeded the sink at once
    // (first run). The second run (`--sources=8`, EAL4) serves only
    // external entropy: the blocks stored under RDSEED are wiped, never
    // served, and its seed comes fresh from the feeder's adds, which were
    // taken up to the room.
    assert!(stderr.contains("64 from the install-time seed"), "{stderr}");
    assert!(
        stderr.contains("blocks from sources outside 8 (external); they were wiped"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "0 from the storage cache, 0 from the install-time seed, 64 fresh from sources 8"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("accepted "), "{stdout}");
    assert!(len_of(&work.join("entropy.out")) >= 64);
    assert_eq!(len_of(&work.join("fe.bin")), 65_536);
}
