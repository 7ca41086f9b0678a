//! End-to-end tests of `entropyd run` with the real binary on 127.0.0.1:
//! external-only sources (`--sources=8`: deterministic, no RDSEED needed),
//! a temporary state directory, a 0600 token file.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;
#[path = "../../tests/support/hw.rs"]
mod hw_support;

use std::collections::HashSet;
use std::time::Duration;

use e2e_common::{
    Env, TOKEN, blocks_of, random_bytes, raw_add, raw_http, stored_blocks, text, wait_until,
};
use entropyd::api::encode_add_body;
use entropyd::client::ClientError;

/// The external source's sample (byte) counter.
fn external_samples(s: &entropyd::backend::StatusSnapshot) -> u64 {
    s.sources
        .iter()
        .find(|x| x.source == entropool::Source::External)
        .unwrap()
        .samples
}

#[test]
fn api_counts_and_refusals() {
    let env = Env::new();
    // 1 KiB: 32 blocks, 1024 bytes of external room.
    env.set(&["--memory-cache-size=1"]);
    let token_arg = format!("--token-file={}", env.token.display());
    // No sink: nothing leaves the memory cache, so the counts are exact.
    let d = env.start(&["--sources=8", &token_arg]);
    let bearer = format!("Bearer {TOKEN}");

    let pool = d.client(None).external_pool().unwrap();
    assert_eq!(pool.status, "ENABLED");
    assert_eq!(pool.capacity, 32 * 32);
    assert_eq!(pool.currently_available, 0);
    // 20 % of 32 blocks: 7 blocks are the first level not below it.
    assert_eq!(pool.low_watermark, 7 * 32);
    assert_eq!(pool.inactive_source_timeout, 60);
    let st = d.status();
    assert!(st.running);
    assert_eq!(st.sources_mask, 8);
    assert_eq!(st.memory_cache.capacity_blocks, 32);

    // Adds: each takes min(len, capacity - currently_available).
    let client = d.client(Some(TOKEN));
    let mut total = 0u64;
    for len in [100usize, 3000, 700, 2000, 5000] {
        let before = d.client(None).external_pool().unwrap();
        let room = before.capacity - before.currently_available;
        let accepted = client.add(&random_bytes(len)).unwrap();
        assert_eq!(
            accepted,
            (len as u64).min(room),
            "add of {len}, room {room}"
        );
        total += accepted;
        let after = d.client(None).external_pool().unwrap();
        let st = d.status();
        // The room advertised is what fills the cache (40 bytes a block
        // and the start-up window), so at least the free bytes.
        assert!(after.currently_available <= st.memory_cache.len_blocks * 32);
        assert_eq!(external_samples(&st), total);
        // 40 bytes (320 bits at 8 bits/byte) make a block, after the
        // health tests' 1024 uncredited start-up bytes: never more blocks
        // than that allows.
        assert!(st.memory_cache.len_blocks <= total.saturating_sub(1024) / 40 + 1);
    }
    assert!(total > 1024, "the adds should pass the start-up bytes");

    // Refusals: nothing credited, counters unchanged.
    let before = d.status();
    let good = encode_add_body(&random_bytes(64));
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("missing token", None, good.to_vec(), 401),
        (
            "wrong token",
            Some("Bearer wrong-token-0123456789abcdef"),
            good.to_vec(),
            401,
        ),
        ("bad JSON", Some(&bearer), b"{\"data\": ".to_vec(), 400),
        (
            "unknown field",
            Some(&bearer),
            b"{\"data\": \"AAAA\", \"x\": 1}".to_vec(),
            400,
        ),
        (
            "bad base64",
            Some(&bearer),
            b"{\"data\": \"@@@@\"}".to_vec(),
            400,
        ),
    ];
    for (what, auth, body, code) in cases {
        let (status, answer) = raw_add(d.addr, auth, &body);
        assert_eq!(status, code, "{what}: {answer}");
        assert!(answer.contains("\"error\""), "{what}: {answer}");
    }
    // Oversize: refused from Content-Length alone, before any body.
    let head = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    let (status, answer) = raw_http(d.addr, &head, b"");
    assert_eq!(status, 413, "{answer}");
    // The client reports a refusal as such.
    match d
        .client(Some("not-the-token-0123456789"))
        .add(&random_bytes(8))
    {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let after = d.status();
    assert_eq!(external_samples(&after), external_samples(&before));
    assert_eq!(
        after.memory_cache.len_blocks,
        before.memory_cache.len_blocks
    );
    assert_eq!(after.output, before.output);

    // One daemon per state directory.
    let second = env.cmd(&["run", "--sources=8", "--listen=127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another entropyd is running"),
        "{}",
        text(&second.stderr)
    );

    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
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
fn sigterm_flushes_and_no_block_is_ever_forwarded_twice() {
    let env = Env::new();
    env.set(&["--memory-cache-size=1", "--storage-cache-size=8"]);
    let sink = env.path("sink");
    let sink_arg = format!("--sink={}", sink.display());
    let token_arg = format!("--token-file={}", env.token.display());
    let args = ["--sources=8", &sink_arg, &token_arg, "--feed-rate=1000000"];
    let sink_len = || std::fs::metadata(&sink).map_or(0, |m| m.len());

    // Run 1: fill, let the surplus flow to the sink, stop.
    let d = env.start(&args);
    feed_until(&env, &d, "run 1 to forward 64 blocks", || {
        sink_len() >= 64 * 32
    });
    // Wait for a quiet moment: forwarding stops below the watermark.
    wait_until("the memory cache to refill", || {
        let st = d.status();
        st.memory_cache.len_blocks > 0
    });
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    let saved: usize = log
        .lines()
        .find_map(|l| {
            l.split_once("saved ")
                .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no 'saved N blocks' line:\n{log}"));
    let stored1 = stored_blocks(&env.storage_file());
    assert!(saved > 0, "{log}");
    assert_eq!(
        stored1.len(),
        saved,
        "the storage cache holds the flushed blocks"
    );
    let sink1 = blocks_of(&std::fs::read(&sink).unwrap());
    let set1: HashSet<_> = sink1.iter().collect();
    assert_eq!(set1.len(), sink1.len(), "a block appeared twice in run 1");
    for b in &stored1 {
        assert!(!set1.contains(b), "a stored block was also forwarded");
    }

    // `status` with no daemon reads the same count from the state dir
    // (and changes nothing).
    let before = std::fs::read(env.storage_file()).unwrap();
    let out = env.cmd(&["status", "--json", "--listen=127.0.0.1:9"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st: entropyd::backend::StatusSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!st.running);
    assert_eq!(st.storage_cache.len_blocks, saved as u64);
    assert_eq!(std::fs::read(env.storage_file()).unwrap(), before);

    // Run 2: the stored blocks come back into memory (erased from
    // storage first), then flow out once the cache is full again.
    // The initial seed (64 bytes: two blocks) goes first, from them.
    let len0 = sink_len();
    let d = env.start(&args);
    wait_until("the initial seed", || sink_len() >= len0 + 64);
    let st = d.status();
    assert_eq!(
        st.memory_cache.len_blocks,
        saved as u64 - 2,
        "loaded at start"
    );
    assert_eq!(st.storage_cache.len_blocks, 0, "taken out of storage");
    assert_eq!(st.output.bytes_forwarded_at_start, 64);
    assert_eq!(st.output.bytes_forwarded_from_storage, 64);
    // The seed came from storage (counted above), keyed with run 2's start
    // key: neither block goes out as it was stored.
    let seeded = blocks_of(&std::fs::read(&sink).unwrap()[len0 as usize..len0 as usize + 64]);
    for b in &seeded {
        assert!(!stored1.contains(b), "a stored block seeded as stored");
    }
    wait_until("the seed log line", || {
        d.log_text().contains("initial seed: 64 bytes to sink ")
    });
    assert!(
        d.log_text()
            .contains(": 64 from the storage cache, 0 from the install-time seed, 0 fresh"),
        "{}",
        d.log_text()
    );
    let len1 = sink_len();
    feed_until(&env, &d, "run 2 to forward 64 more blocks", || {
        sink_len() >= len1 + 64 * 32
    });
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
    let stored2 = stored_blocks(&env.storage_file());

    let all = blocks_of(&std::fs::read(&sink).unwrap());
    let mut seen = HashSet::new();
    for b in &all {
        assert!(seen.insert(*b), "a block appeared twice in the sink");
    }
    // Reloaded blocks are keyed with run 2's start key: none goes out as
    // it was stored (a copy of the file must not replay them).
    for b in &stored1 {
        assert!(!seen.contains(b), "a stored block was forwarded as stored");
    }
    for b in &stored2 {
        assert!(!seen.contains(b), "a block both stored and forwarded");
    }
}

#[test]
fn external_lost_after_the_timeout_and_recovered_by_a_submit() {
    let env = Env::new();
    // 2 s: short, yet far above the time between a submit and the status
    // read that follows it, even on a loaded machine.
    env.set(&["--external-entropy-lost-timeout=2"]);
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &token_arg]);
    let listen = d.listen();
    let status_json = || {
        let out = env.cmd(&["status", "--json", &listen]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<entropyd::backend::StatusSnapshot>(&out.stdout).unwrap()
    };
    let st = status_json();
    assert!(st.running);
    assert_eq!(st.external.lost_timeout_seconds, 2);
    wait_until("external lost", || status_json().external.lost);
    let text_view = text(&env.cmd(&["status", &listen]).stdout);
    assert!(text_view.contains("lost: YES"), "{text_view}");

    let out = env.cmd_stdin(&["submit", &listen, &token_arg], &random_bytes(512));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "accepted 512 of 512 bytes");
    let st = d.status();
    assert!(!st.external.lost, "a submit ends external lost");
    assert!(st.external.seconds_since_last.is_some_and(|s| s < 2));
    // With no feeder it is lost again after the timeout.
    wait_until("external lost again", || status_json().external.lost);
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn set_while_running_takes_effect_without_restart() {
    let env = Env::new();
    // No storage cache: the final flush then has nothing to write (saving
    // tens of thousands of blocks takes seconds).
    env.set(&["--storage-cache-size=0"]);
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &token_arg]);
    let st = d.status();
    assert_eq!(st.memory_cache.capacity_blocks, 512 * 32);
    assert_eq!(st.memory_cache.low_watermark_percent, 20);

    env.set(&[
        "--memory-cache-size=2048",
        "--memory-cache-low-watermark=50",
    ]);
    wait_until("the new memory cache size", || {
        let st = d.status();
        st.memory_cache.capacity_blocks == 2048 * 32 && st.memory_cache.low_watermark_percent == 50
    });
    let pool = d.client(None).external_pool().unwrap();
    assert_eq!(pool.capacity, 2048 * 1024);
    assert_eq!(pool.low_watermark, 2048 * 1024 / 2);
    // An add larger than the capacity is refused whole (413: the body
    // limit is sized from the capacity) and credits nothing.
    let before = d.client(None).external_pool().unwrap();
    assert!(d.client(Some(TOKEN)).add(&random_bytes(3 << 20)).is_err());
    let after = d.client(None).external_pool().unwrap();
    assert!(after.currently_available <= before.currently_available);
    // Adds larger than one piece (64 KiB) take min(len, room) as well.
    for len in [300_000usize, 2 * 1024 * 1024] {
        let before = d.client(None).external_pool().unwrap();
        let room = before.capacity - before.currently_available;
        let accepted = d.client(Some(TOKEN)).add(&random_bytes(len)).unwrap();
        assert_eq!(
            accepted,
            (len as u64).min(room),
            "add of {len}, room {room}"
        );
    }

    // Beyond the slots allocated at start: logged, the running size kept.
    env.set(&["--memory-cache-size=65536"]);
    wait_until("the refusal in the log", || {
        d.log_text().contains("restart entropyd")
    });
    assert_eq!(d.status().memory_cache.capacity_blocks, 2048 * 32);

    env.set(&["--external-entropy-lost-timeout=7"]);
    wait_until("the new timeout", || {
        d.status().external.lost_timeout_seconds == 7
    });
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn kernel_feed_without_the_capability_fails_at_start() {
    // As root the capability is there; drop it with setpriv when we can.
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let env = Env::new();
    let out = if is_root {
        if std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
        {
            hw_support::skip("setpriv", &"running as root and setpriv is not installed");
            return;
        }
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(e2e_common::bin())
            .arg("--state-dir=/nonexistent/never-reached")
            .args(["run", "--kernel", "--listen=127.0.0.1:0"])
            .output()
            .unwrap()
    } else {
        env.cmd(&["run", "--kernel", "--listen=127.0.0.1:0"])
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("CAP_SYS_ADMIN") || err.contains("/dev/random"),
        "{err}"
    );
    let _ = Duration::ZERO;
}
