//! End-to-end hardening checks with the real binary (issue 15): copies of
//! one storage cache never make two daemons forward a common block; a
//! patterned add disables the external source visibly, with an audit
//! line, until `entropyd reset-source external`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;

use std::collections::HashSet;
use std::path::Path;

use e2e_common::{Env, TOKEN, blocks_of, random_bytes, stored_blocks, text, wait_until};
use entropyd::client::ClientError;

/// Adds random bytes until the memory cache is full.
fn fill_memory(d: &e2e_common::Daemon) {
    let client = d.client(Some(TOKEN));
    wait_until("the memory cache to fill", || {
        let st = d.status();
        if st.memory_cache.len_blocks >= st.memory_cache.capacity_blocks {
            return true;
        }
        client.add(&random_bytes(1024)).unwrap();
        false
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
}

#[test]
fn two_daemons_from_copies_of_one_storage_file_share_no_block() {
    let env = Env::new();
    env.set(&["--memory-cache-size=1", "--storage-cache-size=8"]);
    let token_arg = format!("--token-file={}", env.token.display());
    // Run 0: fill the memory cache, stop: its blocks go to storage.
    let d = env.start(&["--sources=8", &token_arg]);
    fill_memory(&d);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let stored = stored_blocks(&env.storage_file());
    assert!(stored.len() >= 32, "{} stored\n{log}", stored.len());

    // Two copies of the whole state directory, one daemon on each: each
    // loads the same stored blocks and forwards what is above the low
    // watermark to its sink.
    let mut sinks = Vec::new();
    for name in ["copy-a", "copy-b"] {
        let state = env.path(name);
        copy_dir(&env.state, &state);
        let sink = env.path(&format!("{name}.sink"));
        let sink_arg = format!("--sink={}", sink.display());
        let d = e2e_common::Daemon::start(
            &state,
            &["--sources=8", &token_arg, &sink_arg, "--feed-rate=1000000"],
        );
        wait_until("the stored blocks to be forwarded", || {
            std::fs::metadata(&sink).map_or(0, |m| m.len()) >= 16 * 32
        });
        let (status, log) = d.stop();
        assert!(status.success(), "{log}");
        sinks.push(blocks_of(&std::fs::read(&sink).unwrap()));
    }
    let a: HashSet<_> = sinks[0].iter().collect();
    let b: HashSet<_> = sinks[1].iter().collect();
    assert!(a.len() >= 16 && b.len() >= 16);
    assert!(a.is_disjoint(&b), "two copies forwarded a common block");
    let stored: HashSet<_> = stored.iter().collect();
    assert!(
        a.is_disjoint(&stored) && b.is_disjoint(&stored),
        "a block went out as stored"
    );
}

#[test]
fn a_patterned_add_disables_external_until_reset_source() {
    let env = Env::new();
    env.set(&["--memory-cache-size=64"]);
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &token_arg]);
    let client = d.client(Some(TOKEN));
    assert!(client.add(&random_bytes(4096)).unwrap() == 4096);
    let blocks_before = d.status().output.blocks_emitted;

    // The reproducer: bytes(range(256)) * 256.
    let pattern: Vec<u8> = (0..65_536u32).map(|i| i as u8).collect();
    assert_eq!(client.add(&pattern).unwrap(), 0, "the pattern was taken");
    assert_eq!(d.status().output.blocks_emitted, blocks_before);
    // Visible at once in GET external-pool; adds are refused.
    assert_eq!(d.client(None).external_pool().unwrap().status, "DISABLED");
    match client.add(&random_bytes(1024)) {
        Err(ClientError::Refused { status: 409, .. }) => {}
        other => panic!("expected 409, got {other:?}"),
    }
    // The audit line and the marker, within a second or so.
    let marker = env.state.join(entropyd::cmd_reset_source::MARKER);
    wait_until("the audit line", || {
        d.log_text().contains(
            "entropyd: audit event=source-disabled source=external reason=screen-constant-difference",
        ) && marker.exists()
    });

    // A restart keeps it disabled.
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let d = env.start(&["--sources=8", &token_arg]);
    assert_eq!(d.client(None).external_pool().unwrap().status, "DISABLED");
    assert!(
        d.log_text()
            .contains("entropyd: audit event=source-disabled source=external reason=carried-over"),
        "{}",
        d.log_text()
    );

    // Only reset-source brings it back.
    let out = env.cmd(&["reset-source", "external"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("external source reset"));
    wait_until("the source to come back", || {
        d.client(None).external_pool().unwrap().status == "ENABLED"
    });
    assert!(
        d.log_text()
            .contains("entropyd: audit event=source-reset source=external")
    );
    assert!(!marker.exists());
    assert!(d.client(Some(TOKEN)).add(&random_bytes(4096)).unwrap() > 0);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");

    // Nothing to reset now; an unknown source is a usage error.
    let out = env.cmd(&["reset-source", "external"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("not disabled"));
    let out = env.cmd(&["reset-source", "rdseed"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn run_tightens_the_state_dir_and_refuses_a_linked_storage_cache() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.set(&["--memory-cache-size=1"]);
    std::fs::set_permissions(&env.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_arg = format!("--token-file={}", env.token.display());
    let d = env.start(&["--sources=8", &token_arg]);
    assert!(
        d.log_text().contains("was mode 0755; tightened to 0700"),
        "{}",
        d.log_text()
    );
    let mode = std::fs::metadata(&env.state).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");

    // A link in place of the storage cache: refused, the target untouched.
    let target = env.path("precious");
    std::fs::write(&target, b"not a store").unwrap();
    std::fs::remove_file(env.storage_file()).unwrap();
    std::os::unix::fs::symlink(&target, env.storage_file()).unwrap();
    let out = env.cmd(&["run", "--sources=8", "--listen=127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("E0408"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), b"not a store");
}
