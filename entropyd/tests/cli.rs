//! End-to-end tests of the `entropyd` binary's get/set/kickstart against a
//! temporary state directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn entropyd(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entropyd"))
        .env_remove("ENTROPYD_STATE_DIR")
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// The esxcli text, rendered here from DESIGN.md's labels.
fn esxcli(values: [u64; 4]) -> String {
    let labels = [
        "External Entropy Lost Timeout Seconds",
        "Memory Cache Low Watermark Percentage",
        "Memory Cache Size Kibibytes",
        "Storage Cache Size Kibibytes",
    ];
    labels
        .iter()
        .zip(values)
        .map(|(l, v)| format!("{l}: {v}\n"))
        .collect()
}

const DEFAULTS: [u64; 4] = [60, 20, 512, 4096];

/// What `get` prints without an assessment: the esxcli lines with the
/// interrupt-credit line in its place in the label order.
fn current(values: [u64; 4]) -> String {
    let e = esxcli(values);
    let (first, rest) = e.split_at(e.find('\n').unwrap() + 1);
    format!("{first}Interrupts Credit Bits Per Sample: 0.015625 (default: no assessment)\n{rest}")
}

fn state() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("state");
    (t, s)
}

/// Every file under the state dir with its bytes, for "unchanged" checks.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn get_default_values_is_byte_exact() {
    let (_t, s) = state();
    let o = entropyd(&s, &["get", "--default-values"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        "External Entropy Lost Timeout Seconds: 60\n\
         Memory Cache Low Watermark Percentage: 20\n\
         Memory Cache Size Kibibytes: 512\n\
         Storage Cache Size Kibibytes: 4096\n"
    );
    assert!(o.stderr.is_empty());
    // A fresh state directory reads as the defaults and is not created.
    let o = entropyd(&s, &["get"]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), current(DEFAULTS));
    assert!(!s.exists());
}

#[test]
fn set_then_get_and_reset() {
    let (_t, s) = state();
    let o = entropyd(
        &s,
        &[
            "set",
            "--external-entropy-lost-timeout=120",
            "--memory-cache-low-watermark=0",
            "--memory-cache-size=65536",
            "--storage-cache-size=0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let get = |s: &Path| text(&entropyd(s, &["get"]).stdout);
    assert_eq!(get(&s), current([120, 0, 65536, 0]));
    // Defaults are still the defaults.
    let o = entropyd(&s, &["get", "--default-values"]);
    assert_eq!(text(&o.stdout), esxcli(DEFAULTS));

    assert!(
        entropyd(&s, &["set", "--reset=memory-cache-size"])
            .status
            .success()
    );
    assert_eq!(get(&s), current([120, 0, 512, 0]));
    let o = entropyd(&s, &["set", "--reset=all", "--storage-cache-size=8"]);
    assert!(o.status.success());
    assert_eq!(get(&s), current([60, 20, 512, 8]));
    assert!(entropyd(&s, &["set", "--reset=all"]).status.success());
    assert_eq!(get(&s), current(DEFAULTS));
}

#[test]
fn invalid_set_exits_2_names_the_problem_and_changes_nothing() {
    let (_t, s) = state();
    assert!(
        entropyd(&s, &["set", "--memory-cache-size=1024"])
            .status
            .success()
    );
    let before = snapshot(&s);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "set",
                "--memory-cache-size=2048",
                "--memory-cache-low-watermark=101",
            ],
            &["memory-cache-low-watermark", "101", "0..=100"],
        ),
        (
            &["set", "--external-entropy-lost-timeout=0"],
            &["external-entropy-lost-timeout", "0", "1..=86400"],
        ),
        (
            &["set", "--storage-cache-size=1048577"],
            &["storage-cache-size", "1048577", "0..=1048576"],
        ),
        (
            &["set", "--memory-cache-size=12k"],
            &["memory-cache-size", "12k", "1..=65536"],
        ),
        (&["set", "--reset=everything"], &["everything", "all"]),
        (
            &["set", "--reset=memory-cache-size", "--memory-cache-size=8"],
            &["memory-cache-size", "twice"],
        ),
        (&["set", "--no-such=1"], &["--no-such"]),
    ];
    for (args, needles) in cases {
        let o = entropyd(&s, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
        let err = text(&o.stderr);
        for n in *needles {
            assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
        }
        assert_eq!(snapshot(&s), before, "{args:?} changed the state");
    }
}

#[test]
fn state_dir_comes_from_the_environment() {
    let (_t, s) = state();
    let o = Command::new(env!("CARGO_BIN_EXE_entropyd"))
        .env("ENTROPYD_STATE_DIR", &s)
        .args(["set", "--memory-cache-size=2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(s.join("config").exists());
    assert_eq!(
        text(&entropyd(&s, &["get"]).stdout),
        current([60, 20, 2, 4096])
    );
}

#[test]
fn corrupt_config_is_reported_with_its_path() {
    let (_t, s) = state();
    std::fs::create_dir_all(&s).unwrap();
    let config = s.join("config");
    std::fs::write(&config, b"Memory Cache Size Kibibytes: lots\n").unwrap();
    for args in [&["get"][..], &["set", "--memory-cache-size=4"]] {
        let o = entropyd(&s, args);
        assert_eq!(o.status.code(), Some(1));
        let err = text(&o.stderr);
        assert!(err.contains(&config.display().to_string()), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        assert_eq!(
            std::fs::read(&config).unwrap(),
            b"Memory Cache Size Kibibytes: lots\n"
        );
    }
}

/// A plain padded base64 encoder (RFC 4648), independent of the code under
/// test.
fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn kickstart_stages_into_a_fresh_dir_only() {
    let (t, s) = state();
    let seed: Vec<u8> = (0..512 * 1024u32).map(|i| (i * 31 % 253) as u8).collect();
    let ks = t.path().join("ks.cfg");
    std::fs::write(
        &ks,
        format!(
            "vmaccepteula\ninstall --firstdisk\nentropy --data={} --sources=8\nnetwork --bootproto=dhcp\n",
            b64(&seed)
        ),
    )
    .unwrap();
    let o = entropyd(&s, &["kickstart", ks.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("524288 bytes"), "{out}");
    assert!(out.contains("sources: 8 (external)"), "{out}");
    assert_eq!(std::fs::read(s.join("kickstart.staged")).unwrap(), seed);
    assert!(
        text(&std::fs::read(s.join("config")).unwrap()).ends_with("Sources: 8\n"),
        "sources recorded"
    );
    assert_eq!(text(&entropyd(&s, &["get"]).stdout), current(DEFAULTS));

    // A second time: not fresh, exit 2, nothing changed.
    let before = snapshot(&s);
    let o = entropyd(&s, &["kickstart", ks.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not a fresh install"));
    assert_eq!(snapshot(&s), before);

    // The file is checked before freshness: a missing one says so.
    let o = entropyd(&s, &["kickstart", "/nonexistent/ks.cfg"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("No such file"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(snapshot(&s), before);

    // A state dir with only a config (after a `set`) has no pool state:
    // the kickstart is staged and the tunables stay.
    let (_t2, s2) = state();
    assert!(
        entropyd(&s2, &["set", "--memory-cache-size=8"])
            .status
            .success()
    );
    let o = entropyd(&s2, &["kickstart", ks.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(s2.join("kickstart.staged")).unwrap(), seed);
    let got = text(&entropyd(&s2, &["get"]).stdout);
    assert!(got.contains("Memory Cache Size Kibibytes: 8\n"), "{got}");
}

#[test]
fn wrapped_base64_gets_a_hint() {
    let (t, s) = state();
    let seed: Vec<u8> = (0..512 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let wrapped: Vec<String> = b64(&seed)
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let ks = t.path().join("ks.cfg");
    std::fs::write(
        &ks,
        format!("entropy --sources=8 --data={}\n", wrapped.join("\n")),
    )
    .unwrap();
    let o = entropyd(&s, &["kickstart", ks.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("base64 -w0"), "{err}");
    assert!(!s.exists(), "nothing staged");
    // A seed that is simply too small gets no such hint.
    std::fs::write(&ks, format!("entropy --data={}\n", b64(&[1u8; 1000]))).unwrap();
    let o = entropyd(&s, &["kickstart", ks.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o.stderr).contains("base64 -w0"));
}

#[test]
fn state_dir_is_accepted_after_the_subcommand_and_set_needs_something() {
    let (_t, s) = state();
    let o = Command::new(env!("CARGO_BIN_EXE_entropyd"))
        .env_remove("ENTROPYD_STATE_DIR")
        .args(["set", "--memory-cache-size=4", "--state-dir"])
        .arg(&s)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_entropyd"))
        .env_remove("ENTROPYD_STATE_DIR")
        .arg("get")
        .arg(format!("--state-dir={}", s.display()))
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains("Memory Cache Size Kibibytes: 4\n"));
    let before = snapshot(&s);
    let o = entropyd(&s, &["set"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("nothing to set"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(snapshot(&s), before);
}

#[test]
fn invalid_kickstart_files_stage_nothing() {
    let (t, s) = state();
    let ks = t.path().join("ks.cfg");
    let small = b64(&[1u8; 1000]);
    for (content, needle) in [
        (format!("vmaccepteula\nentropy --data={small}\n"), "line 2"),
        (format!("entropy --data={small}!\n"), "bad base64"),
        (format!("entropy --sources=16 --data={small}\n"), "0..=15"),
        ("install\n".to_string(), "no `entropy` line"),
    ] {
        std::fs::write(&ks, &content).unwrap();
        let o = entropyd(&s, &["kickstart", ks.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let err = text(&o.stderr);
        assert!(err.contains(needle), "{err}");
        assert!(err.contains("ks.cfg"), "{err}");
        assert!(!s.exists(), "nothing staged");
    }
    let o = entropyd(&s, &["kickstart", "/nonexistent/ks.cfg"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    let (_t, s) = state();
    assert_eq!(entropyd(&s, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(entropyd(&s, &[]).status.code(), Some(2));
    assert_eq!(entropyd(&s, &["kickstart"]).status.code(), Some(2));
    let o = entropyd(&s, &["--help"]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("kickstart"));
}
