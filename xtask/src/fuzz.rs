//! `cargo xtask fuzz [--minutes=N] [--only=T,...] [--sanitizer=S]`: runs
//! every libFuzzer target of `fuzz/` for N minutes each (default 1) with
//! cargo-fuzz on nightly, and ends with a table of executions, speed, new
//! corpus units and crashes per target. Fails when any target crashed.
//!
//! - Targets are the `[[bin]]` entries of `fuzz/Cargo.toml`.
//! - New inputs go to `target/fuzz-corpus/<target>` (the committed corpus
//!   `fuzz/corpus/<target>` is read, never written); crashes go where
//!   cargo-fuzz puts them (`fuzz/artifacts/<target>/`), and the table
//!   names each one. A dictionary `fuzz/dict/<target>.dict` is used when
//!   it exists.
//! - The sanitizer defaults to `none` (the targets are safe Rust; speed
//!   matters for the exec counts); `--sanitizer=address` for ASan.
//! - Needs `cargo +nightly fuzz` (`rustup toolchain install nightly`,
//!   `rustup component add --toolchain nightly rust-src`, `cargo install
//!   cargo-fuzz`); the error says so when it is missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one target's run found.
#[derive(Debug, Default, PartialEq, Eq)]
struct RunStats {
    execs: u64,
    /// Seconds libFuzzer itself ran (its `Done N runs in S second(s)`).
    fuzz_seconds: Option<u64>,
    new_units: u64,
    crashed: bool,
    artifacts: Vec<String>,
}

/// Reads libFuzzer's output: the final stats (`-print_final_stats=1`) and
/// any crash reports.
fn parse_output(text: &str) -> RunStats {
    let mut s = RunStats::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            s.execs = v.trim().parse().unwrap_or(s.execs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            s.fuzz_seconds = rest
                .split_once(" runs in ")
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|n| n.parse().ok());
        } else if let Some(v) = line.strip_prefix("stat::new_units_added:") {
            s.new_units = v.trim().parse().unwrap_or(s.new_units);
        } else if line.contains("Test unit written to ") {
            if let Some((_, path)) = line.split_once("Test unit written to ") {
                s.artifacts.push(path.trim().to_owned());
            }
        }
        if line.starts_with("==") && line.contains("ERROR: libFuzzer")
            || line.starts_with("SUMMARY: libFuzzer")
            || line.contains("panicked at")
        {
            s.crashed = true;
        }
    }
    // Without final stats (a crash), the last `#N` status line counts.
    if s.execs == 0 {
        for line in text.lines().rev() {
            if let Some(n) = line
                .strip_prefix('#')
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
            {
                s.execs = n;
                break;
            }
        }
    }
    s
}

/// The `[[bin]]` names of a Cargo manifest.
fn bin_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin {
            if let Some(v) = line.strip_prefix("name") {
                let v = v.trim_start().trim_start_matches('=').trim();
                names.push(v.trim_matches('"').to_owned());
                in_bin = false;
            }
        }
    }
    names
}

fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs the command (see the module documentation).
pub fn run(args: &[String]) -> Result<(), String> {
    let mut minutes = 1u64;
    let mut only: Option<Vec<String>> = None;
    let mut sanitizer = "none".to_owned();
    for a in args {
        if let Some(v) = a.strip_prefix("--minutes=") {
            minutes =
                v.parse().ok().filter(|&m| m > 0).ok_or_else(|| {
                    format!("--minutes={v}: a whole number of minutes, at least 1")
                })?;
        } else if let Some(v) = a.strip_prefix("--only=") {
            only = Some(v.split(',').map(str::to_owned).collect());
        } else if let Some(v) = a.strip_prefix("--sanitizer=") {
            sanitizer = v.to_owned();
        } else {
            return Err(format!(
                "fuzz: unknown argument `{a}` (--minutes=N, --only=T,..., --sanitizer=S)"
            ));
        }
    }
    let root = root();
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml"))
        .map_err(|e| format!("cannot read fuzz/Cargo.toml: {e}"))?;
    let mut targets = bin_names(&manifest);
    if let Some(only) = &only {
        for t in only {
            if !targets.contains(t) {
                return Err(format!(
                    "fuzz: no target `{t}` (targets: {})",
                    targets.join(", ")
                ));
            }
        }
        targets.retain(|t| only.contains(t));
    }
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .current_dir(&root)
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err("fuzz: `cargo +nightly fuzz` is not available: run `rustup toolchain install nightly`, `rustup component add --toolchain nightly rust-src` and `cargo install cargo-fuzz`".to_owned());
    }
    let seconds = minutes.saturating_mul(60);
    let mut rows = Vec::new();
    for t in &targets {
        let scratch = root.join("target/fuzz-corpus").join(t);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root)
            .args(["+nightly", "fuzz", "run", t, "--features", "libfuzzer"])
            .arg(format!("--sanitizer={sanitizer}"))
            .arg(&scratch)
            .arg(root.join("fuzz/corpus").join(t))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        let dict = root.join("fuzz/dict").join(format!("{t}.dict"));
        if dict.is_file() {
            cmd.arg(format!("-dict={}", dict.display()));
        }
        println!("$ {cmd:?}");
        let _ = std::io::stdout().flush();
        let start = Instant::now();
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut stats = parse_output(&text);
        if !out.status.success() {
            stats.crashed = true;
            // The tail says why (a build error, a crash report).
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            for l in tail.iter().rev() {
                eprintln!("  | {l}");
            }
        }
        println!(
            "{t}: {} execs in {secs:.0} s, {} new units, {}",
            stats.execs,
            stats.new_units,
            if stats.crashed { "CRASHED" } else { "no crash" }
        );
        rows.push((t.clone(), secs, stats));
    }
    println!();
    println!(
        "{:<14} {:>8} {:>14} {:>10} {:>9}  crashes",
        "target", "seconds", "execs", "execs/s", "new units"
    );
    let mut crashed = Vec::new();
    for (t, secs, s) in &rows {
        // libFuzzer's own run time when it said (the wall time includes
        // the build).
        let secs = &s.fuzz_seconds.map_or(*secs, |f| f as f64);
        let rate = if *secs > 0.0 {
            s.execs as f64 / secs
        } else {
            0.0
        };
        let crash = if s.crashed {
            crashed.push(t.clone());
            if s.artifacts.is_empty() {
                "YES".to_owned()
            } else {
                format!("YES: {}", s.artifacts.join(" "))
            }
        } else {
            "0".to_owned()
        };
        println!(
            "{t:<14} {secs:>8.0} {:>14} {rate:>10.0} {:>9}  {crash}",
            s.execs, s.new_units
        );
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz: {} crashed", crashed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_and_crashes_are_read() {
        let ok = "#1048576\tpulse  cov: 10 ft: 20 corp: 5/100b exec/s: 9000 rss: 40Mb\n\
                  Done 1200000 runs in 61 second(s)\n\
                  stat::number_of_executed_units: 1200000\n\
                  stat::average_exec_per_sec:     19672\n\
                  stat::new_units_added:          42\n";
        assert_eq!(
            parse_output(ok),
            RunStats {
                execs: 1_200_000,
                fuzz_seconds: Some(61),
                new_units: 42,
                crashed: false,
                artifacts: vec![],
            }
        );
        let crash = "#5000\tNEW    cov: 1\n\
                     thread '<unnamed>' panicked at src/lib.rs:9:5:\n\
                     ==123== ERROR: libFuzzer: deadly signal\n\
                     artifact_prefix='/r/fuzz/artifacts/t/'; Test unit written to /r/fuzz/artifacts/t/crash-ab\n";
        let s = parse_output(crash);
        assert!(s.crashed);
        assert_eq!(s.execs, 5000);
        assert_eq!(s.artifacts, vec!["/r/fuzz/artifacts/t/crash-ab".to_owned()]);
    }

    #[test]
    fn bin_names_are_the_targets() {
        let m = "[package]\nname = \"entropool-fuzz\"\n\n[[bin]]\nname = \"a\"\npath = \"x\"\n\n[dependencies]\nname = 1\n[[bin]]\nname = \"b\"\n";
        assert_eq!(bin_names(m), vec!["a".to_owned(), "b".to_owned()]);
    }
}
