//! End-to-end tests of `generate`, `samples`, `submit` and `status` with
//! the real binary and no daemon.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;

use std::io::Write;
use std::process::{Command, Stdio};

use e2e_common::{Env, text};

/// Runs rngtest (FIPS 140-2) over `data` when it is installed; returns
/// (successes, failures) or `None`.
fn rngtest(data: &[u8]) -> Option<(u64, u64)> {
    let mut child = match Command::new("rngtest")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return None,
    };
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let report = text(&out.stderr);
    let count = |label: &str| {
        report
            .lines()
            .find_map(|l| {
                l.split_once(label)
                    .map(|(_, n)| n.trim().parse::<u64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no {label:?} in rngtest's report:\n{report}"))
    };
    Some((
        count("FIPS 140-2 successes:"),
        count("FIPS 140-2 failures:"),
    ))
}

/// Checks `data` with rngtest. 2,000,000 bytes are 799 blocks of 20,000
/// bits (the first 32 bits seed its continuous test). FIPS 140-2 flags
/// about 0.08 % of blocks of ideal random data (rng-tools documents this
/// rate); at a conservative p = 0.001 per block, failures are ~Poisson(0.8),
/// and P(more than 6) < 2e-5: the false-alarm probability of this check.
fn check_with_rngtest(what: &str, data: &[u8]) {
    match rngtest(data) {
        None => println!("skipped: rngtest not installed ({what})"),
        Some((ok, failed)) => {
            println!("rngtest {what}: {ok} successes, {failed} failures");
            assert_eq!(ok + failed, (data.len() as u64 * 8 - 32) / 20_000);
            assert!(
                failed <= 6,
                "{what}: {failed} FIPS 140-2 failures of {}",
                ok + failed
            );
        }
    }
}

/// Whether the run failed because its sources cannot run on this CPU: a
/// mask naming a missing instruction (invalid input, exit 2) or a driver
/// whose start-up self-test failed. Any other failure (a stall, say) is a
/// failure of the test, not a reason to skip it.
fn default_mask_fails(out: &std::process::Output) -> bool {
    let err = text(&out.stderr).to_lowercase();
    let missing = out.status.code() == Some(2) && err.contains("sources");
    !out.status.success() && (missing || err.contains("cannot start the pool"))
}

#[test]
fn generate_writes_exactly_n_bytes_and_passes_rngtest() {
    let env = Env::new();
    let out = env.cmd(&["generate", "--bytes=2000000"]);
    if default_mask_fails(&out) {
        println!(
            "skipped: the default sources cannot run here: {}",
            text(&out.stderr)
        );
        return;
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 2_000_000);
    check_with_rngtest("generate", &out.stdout);
    // Nothing is written to the state directory.
    assert!(!env.state.exists());

    let out = env.cmd(&["generate", "--bytes=2000000", "--full-entropy"]);
    if default_mask_fails(&out) {
        println!("skipped --full-entropy: {}", text(&out.stderr));
        return;
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 2_000_000);
    check_with_rngtest("generate --full-entropy", &out.stdout);

    // Small and odd sizes are exact too.
    for n in [0usize, 1, 31, 33, 70_000] {
        let out = env.cmd(&["generate", &format!("--bytes={n}"), "--full-entropy"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(out.stdout.len(), n);
    }
}

#[test]
fn generate_seeds_both_lanes_from_a_small_pool() {
    // RDRAND alone yields few blocks per poll: the generator must wait for
    // all the seed its two lanes take (96 bytes), not fail "starving".
    let env = Env::new();
    for sources in ["--sources=2", "--sources=3"] {
        let out = env.cmd(&["generate", "--bytes=64", sources]);
        if default_mask_fails(&out) {
            println!("skipped {sources}: {}", text(&out.stderr));
            continue;
        }
        assert!(out.status.success(), "{sources}: {}", text(&out.stderr));
        assert_eq!(out.stdout.len(), 64);
    }
}

#[test]
fn generate_refills_its_pool_whatever_the_stored_watermark() {
    // A stored low watermark of 0 % never asks the daemon's cache for a
    // refill; generate's private pool must refill anyway.
    let env = Env::new();
    let set = env.cmd(&["set", "--memory-cache-low-watermark=0"]);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let out = env.cmd(&["generate", "--bytes=64", "--sources=2"]);
    if default_mask_fails(&out) {
        println!("skipped: {}", text(&out.stderr));
        return;
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 64);
    let get = env.cmd(&["get"]);
    assert!(
        text(&get.stdout).contains("Memory Cache Low Watermark Percentage: 0\n"),
        "the store is unchanged: {}",
        text(&get.stdout)
    );
}

#[test]
fn generate_refuses_external_only() {
    let env = Env::new();
    let out = env.cmd(&["generate", "--bytes=10", "--sources=8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("no feeder"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn samples_writes_exactly_count_bytes() {
    let env = Env::new();
    let out = env.cmd(&["samples", "--source=interrupts", "--count=1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 1000);
    // Wake-up jitter is not constant: the low bytes of 1000 deltas of a
    // ~1 ms sleep are not all equal (a stuck counter would make them so).
    assert!(out.stdout.iter().any(|&b| b != out.stdout[0]));

    let out = env.cmd(&["samples", "--source=rdseed", "--count=10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = env.cmd(&["samples", "--source=bogus", "--count=10"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn status_without_a_daemon_reads_the_state_directory() {
    let env = Env::new();
    env.set(&["--memory-cache-size=1", "--storage-cache-size=4"]);
    // A storage cache with 5 blocks, written through the library.
    {
        use entropool::FileStorage;
        use entropool::storage::StorageCache;
        let medium = FileStorage::open_in(&env.state).unwrap();
        let every = entropool::SourceMask::new(15).unwrap();
        let (mut cache, _) = StorageCache::open(medium, 4 * 32, every, &[0; 32]).unwrap();
        for i in 0..5u8 {
            let block = entropool::mixer::Block::from_test_bytes([i; 32]);
            assert!(cache.push(block).unwrap().is_none());
        }
    }
    let before = std::fs::read(env.storage_file()).unwrap();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("--listen=127.0.0.1:{port}");

    let out = env.cmd(&["status", &listen]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = text(&out.stdout);
    assert!(view.starts_with("daemon: not running"), "{view}");
    assert!(view.contains("memory cache   0/32 blocks"), "{view}");
    // 4 KiB of entropy: 128 blocks (the file is larger).
    assert!(view.contains("storage cache  5/128 blocks"), "{view}");
    assert!(view.contains("Memory Cache Size Kibibytes: 1"), "{view}");

    let out = env.cmd(&["status", "--json", &listen]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: entropyd::backend::StatusSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!st.running);
    assert_eq!(st.memory_cache.capacity_blocks, 32);
    assert_eq!(st.storage_cache.len_blocks, 5);
    assert_eq!(st.storage_cache.capacity_blocks, 128);
    assert_eq!(st.external.lost_timeout_seconds, 60);
    // Reading changed nothing.
    assert_eq!(std::fs::read(env.storage_file()).unwrap(), before);

    // submit with no daemon: a clear runtime error.
    let out = env.cmd_stdin(&["submit", &listen], b"abc");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no entropyd answers"),
        "{}",
        text(&out.stderr)
    );
}
