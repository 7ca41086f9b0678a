//! `cargo xtask validate`: statistical checks of entropool's output.
//!
//! Contract: [`run`] obtains at least 20 MB from the full-entropy path and
//! from `PoolRng` (through the daemon's `generate` command, see
//! [`generator_command`]), writes each stream to a temporary file and calls
//! [`check_file`] on it; it prints every verdict and fails if any stream
//! fails. [`check_file`] runs `rngtest` (FIPS 140-2, Debian package
//! rng-tools5) and a quick `dieharder` subset on one file.
//!
//! Pass criteria and their false-alarm probabilities (for good data):
//! - rngtest: each 20000-bit block fails FIPS 140-2 with probability about
//!   0.001 (rngtest's own figure: ~0.08 % for its four tests). The stream
//!   fails when the number of failed blocks exceeds the smallest `T` with
//!   P(Binomial(blocks, 0.001) > T) <= 1e-6; for 20 MB (8000 blocks), T = 25.
//! - dieharder: a test reports FAILED when its p-value is below 1e-6 or
//!   above 1 - 1e-6, i.e. with probability 2e-6 per test for good data;
//!   with the 6 tests below, about 1.2e-5 per stream. WEAK results (p < 0.005
//!   or > 0.995, expected in about 1 % of tests) are printed, not failed.
//!
//! Overall false alarm for two streams: about 2.6e-5 per run.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Bytes per stream unless `--bytes=N` says otherwise.
pub const DEFAULT_BYTES: u64 = 20_000_000;

/// Per-block FIPS 140-2 failure probability assumed for good data.
const BLOCK_FAIL_P: f64 = 0.001;

/// Accepted probability of a false alarm from rngtest per stream.
const RNGTEST_ALPHA: f64 = 1e-6;

/// The quick dieharder subset: (test number, name). Chosen to need little
/// data (no rewinding of a 20 MB file) and a few seconds each.
/// (The rank tests, `-d 2` and `-d 3`, need 300 MB to 600 MB for their
/// 100 p-samples: on 20 MB they could run only 2 to 4 p-samples, too few
/// for a meaningful KS test, so they are left out.)
pub const DIEHARDER_TESTS: [(u32, &str); 4] = [
    (0, "diehard_birthdays"),
    (8, "diehard_count_1s_str"),
    (100, "sts_monobit"),
    (101, "sts_runs"),
];

/// Bytes each test above reads for its default 100 p-samples (measured:
/// dieharder rewound a 20 MB file 2, 3, 4 and 4 times), with
/// half as much again for its read-ahead. A test is run with as many p-samples as the file holds fresh data
/// for, so no p-value is computed from repeated data.
const DIEHARDER_BYTES_PER_100: [u64; 4] = [90_000_000, 120_000_000, 150_000_000, 150_000_000];

/// The `-p` for test `i` on a file of `len` bytes (at least 1, at most 100).
fn dieharder_psamples(i: usize, len: u64) -> u64 {
    let per_100 = DIEHARDER_BYTES_PER_100.get(i).copied().unwrap_or(u64::MAX);
    (len.saturating_mul(100) / per_100).clamp(1, 100)
}

/// The outcome of [`check_file`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// 20000-bit blocks rngtest tested.
    pub rngtest_blocks: u64,
    /// Blocks that failed FIPS 140-2.
    pub rngtest_failures: u64,
    /// Most failures accepted for this many blocks.
    pub rngtest_threshold: u64,
    /// Each dieharder test run: (name, assessment: PASSED, WEAK or FAILED).
    pub dieharder: Vec<(String, String)>,
    /// Whether `dieharder` rewound the file (too little data: p-values
    /// would be meaningless); counts as a failure.
    pub dieharder_rewound: bool,
}

impl Verdict {
    /// Whether every criterion passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.rngtest_blocks > 0
            && self.rngtest_failures <= self.rngtest_threshold
            && !self.dieharder.is_empty()
            && self.dieharder.iter().all(|(_, a)| a != "FAILED")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  rngtest: {} of {} blocks failed FIPS 140-2 (at most {} allowed): {}",
            self.rngtest_failures,
            self.rngtest_blocks,
            self.rngtest_threshold,
            if self.rngtest_blocks > 0 && self.rngtest_failures <= self.rngtest_threshold {
                "PASS"
            } else {
                "FAIL"
            }
        )?;
        for (name, assessment) in &self.dieharder {
            writeln!(f, "  dieharder {name}: {assessment}")?;
        }
        if self.dieharder_rewound {
            writeln!(
                f,
                "  note: dieharder's file reader rewound the file (it does so here even \
                 with -p scaled to the file size); its p-values are indicative only"
            )?;
        }
        write!(
            f,
            "  verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// Entry point of `cargo xtask validate [--bytes=N] [--file=PATH]...`.
///
/// With `--file=PATH` (repeatable) only those files are checked; otherwise
/// both streams are generated with [`generator_command`].
///
/// # Errors
/// A message naming what failed: a bad argument, a missing tool, the
/// generator, or a stream whose verdict is FAIL.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut bytes = DEFAULT_BYTES;
    let mut files = Vec::new();
    for arg in args {
        if let Some(v) = arg.strip_prefix("--bytes=") {
            bytes = v
                .parse()
                .map_err(|_| format!("--bytes needs a whole number, got {v:?}"))?;
            if bytes < DEFAULT_BYTES {
                return Err(format!("--bytes={bytes}: at least {DEFAULT_BYTES} needed"));
            }
        } else if let Some(v) = arg.strip_prefix("--file=") {
            files.push(PathBuf::from(v));
        } else {
            return Err(format!(
                "unknown argument {arg:?} (usage: validate [--bytes=N] [--file=PATH]...)"
            ));
        }
    }
    ensure_tools()?;
    let mut failed = Vec::new();
    if files.is_empty() {
        let dir = TempDir::new()?;
        for (label, full_entropy) in [("full-entropy path", true), ("PoolRng", false)] {
            let file = dir.path().join(if full_entropy {
                "full.bin"
            } else {
                "poolrng.bin"
            });
            let state = dir.path().join(if full_entropy {
                "state-full"
            } else {
                "state-rng"
            });
            fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
            generate(bytes, full_entropy, &state, &file)?;
            let verdict = check_file(&file)?;
            println!("{label} ({bytes} bytes):\n{verdict}");
            if !verdict.passed() {
                failed.push(label.to_string());
            }
        }
    } else {
        for file in &files {
            let verdict = check_file(file)?;
            println!("{}:\n{verdict}", file.display());
            if !verdict.passed() {
                failed.push(file.display().to_string());
            }
        }
    }
    if failed.is_empty() {
        println!("validate: PASS");
        Ok(())
    } else {
        Err(format!("validate: FAIL for {}", failed.join(", ")))
    }
}

/// The command that writes `bytes` bytes of output to stdout: the one place
/// to adjust when the daemon's CLI changes.
#[must_use]
pub fn generator_command(bytes: u64, full_entropy: bool, state_dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["run", "--quiet", "--release", "-p", "entropyd", "--"])
        // `--state-dir` is entropyd's global option: before the subcommand.
        .arg(format!("--state-dir={}", state_dir.display()))
        .arg("generate")
        .arg(format!("--bytes={bytes}"));
    if full_entropy {
        cmd.arg("--full-entropy");
    }
    cmd
}

/// Runs [`generator_command`] into `file` and checks the length.
fn generate(bytes: u64, full_entropy: bool, state_dir: &Path, file: &Path) -> Result<(), String> {
    let out = fs::File::create(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut cmd = generator_command(bytes, full_entropy, state_dir);
    let status = cmd
        .stdout(Stdio::from(out))
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}"));
    }
    let len = fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if len < bytes {
        return Err(format!("{cmd:?} wrote {len} bytes, {bytes} wanted"));
    }
    Ok(())
}

/// Makes sure `rngtest` and `dieharder` exist; installs them as root.
fn ensure_tools() -> Result<(), String> {
    let missing: Vec<(&str, &str)> = [("rngtest", "rng-tools5"), ("dieharder", "dieharder")]
        .into_iter()
        .filter(|(tool, _)| !have(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    if !is_root() {
        return Err(format!(
            "missing {}: install with `sudo apt-get install -y {}`",
            missing
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
                .join(" and "),
            packages.join(" ")
        ));
    }
    eprintln!("validate: installing {}", packages.join(" "));
    let mut install = Command::new("apt-get");
    install.args(["install", "-y"]).args(&packages);
    let ok = install.status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        // The package lists may be missing on a fresh machine.
        let _ = Command::new("apt-get").arg("update").status();
        let status = install.status().map_err(|e| format!("apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("apt-get install -y {} failed", packages.join(" ")));
        }
    }
    if missing.iter().all(|(tool, _)| have(tool)) {
        Ok(())
    } else {
        Err("rngtest/dieharder still missing after apt-get install".into())
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs rngtest and the dieharder subset on `path`.
///
/// # Errors
/// When the file cannot be read, a tool is missing or cannot run, or its
/// output cannot be parsed.
pub fn check_file(path: &Path) -> Result<Verdict, String> {
    let input = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // rngtest reads stdin, reports on stderr and exits non-zero when any
    // block failed: judge by the counts.
    let out = Command::new("rngtest")
        .stdin(Stdio::from(input))
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rngtest (package rng-tools5): {e}"))?;
    let report = String::from_utf8_lossy(&out.stderr);
    let successes = rngtest_count(&report, "FIPS 140-2 successes:")?;
    let failures = rngtest_count(&report, "FIPS 140-2 failures:")?;
    let blocks = successes.saturating_add(failures);
    let mut dieharder = Vec::new();
    let mut rewound = false;
    let len = fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    for (i, (number, _)) in DIEHARDER_TESTS.into_iter().enumerate() {
        let psamples = dieharder_psamples(i, len).to_string();
        let out = Command::new("dieharder")
            .args([
                "-g",
                "201",
                "-d",
                &number.to_string(),
                "-p",
                &psamples,
                "-f",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run dieharder: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let results = dieharder_results(&text);
        if results.is_empty() {
            return Err(format!(
                "dieharder -d {number}: no result in its output:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // dieharder reports a rewind on stdout or stderr, by version.
        rewound |=
            text.contains("rewound") || String::from_utf8_lossy(&out.stderr).contains("rewound");
        dieharder.extend(results);
    }
    Ok(Verdict {
        rngtest_blocks: blocks,
        rngtest_failures: failures,
        rngtest_threshold: failure_threshold(blocks, BLOCK_FAIL_P, RNGTEST_ALPHA),
        dieharder,
        dieharder_rewound: rewound,
    })
}

/// The number after `label` in rngtest's report.
fn rngtest_count(report: &str, label: &str) -> Result<u64, String> {
    report
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim().to_string()))
        .ok_or_else(|| format!("rngtest printed no {label:?}:\n{report}"))?
        .parse()
        .map_err(|_| format!("rngtest: bad number after {label:?}"))
}

/// `(test name, assessment)` of each result line of dieharder's table:
/// `   sts_monobit|   1|    100000|     100|0.81234567|  PASSED`.
fn dieharder_results(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split('|').map(str::trim).collect();
            let assessment = *fields.last()?;
            if fields.len() >= 6 && ["PASSED", "WEAK", "FAILED"].contains(&assessment) {
                let ntup = fields.get(1).copied().unwrap_or("");
                Some((
                    format!("{}[{}]", fields.first()?, ntup),
                    assessment.to_string(),
                ))
            } else {
                None
            }
        })
        .collect()
}

/// The smallest `t` with P(Binomial(n, p) > t) <= alpha.
#[must_use]
pub fn failure_threshold(n: u64, p: f64, alpha: f64) -> u64 {
    // Walk the pmf upwards: pmf(k+1) = pmf(k) * (n-k)/(k+1) * p/(1-p).
    let q = 1.0 - p;
    let mut pmf = q.powf(n as f64);
    let mut cdf = pmf;
    let mut k = 0u64;
    while 1.0 - cdf > alpha && k < n {
        pmf *= (n - k) as f64 / (k + 1) as f64 * p / q;
        cdf += pmf;
        k += 1;
    }
    k
}

/// A temporary directory removed on drop (std only: xtask has no deps).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("entropool-validate-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn threshold_matches_binomial_tail() {
        // Independent check by direct summation of the binomial tail.
        let n = 8000u64;
        let t = failure_threshold(n, 0.001, 1e-6);
        let pmf = |k: u64| {
            let mut ln = 0.0f64;
            for i in 0..k {
                ln += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
            }
            (ln + k as f64 * 0.001f64.ln() + (n - k) as f64 * 0.999f64.ln()).exp()
        };
        let tail = |t: u64| (t + 1..=n.min(200)).map(pmf).sum::<f64>();
        assert!(tail(t) <= 1e-6, "tail({t}) = {}", tail(t));
        assert!(tail(t - 1) > 1e-6, "t is the smallest");
        assert_eq!(t, 25);
    }

    #[test]
    fn parses_tool_output() {
        let report = "rngtest 5\nrngtest: bits received from input: 160000000\n\
                      rngtest: FIPS 140-2 successes: 7993\nrngtest: FIPS 140-2 failures: 7\n";
        assert_eq!(rngtest_count(report, "FIPS 140-2 failures:"), Ok(7));
        let dh = "#=============#\n   test_name   |ntup| tsamples |psamples|  p-value |Assessment\n\
                  #=============#\n   sts_monobit|   1|    100000|     100|0.81234567|  PASSED  \n\
                  diehard_rank_6x8|   0|    100000|     100|0.00000001|  FAILED  \n";
        assert_eq!(
            dieharder_results(dh),
            vec![
                ("sts_monobit[1]".to_string(), "PASSED".to_string()),
                ("diehard_rank_6x8[0]".to_string(), "FAILED".to_string())
            ]
        );
    }

    /// Needs rngtest and dieharder (skips, saying so, when absent): good
    /// data passes, biased data fails. False failure on good data: about
    /// 1.3e-5 (module doc). Slow (about 1.5 CPU-minutes), hence ignored by
    /// default: `cargo test -p xtask -- --ignored`.
    #[test]
    #[ignore = "slow: runs rngtest and dieharder on 2 x 20 MB"]
    fn urandom_passes_and_biased_fails() {
        if !have("rngtest") || !have("dieharder") {
            eprintln!(
                "skipped: rngtest/dieharder not installed (apt-get install rng-tools5 dieharder)"
            );
            return;
        }
        let dir = TempDir::new().unwrap();
        let good = dir.path().join("good.bin");
        let mut data = vec![0u8; DEFAULT_BYTES as usize];
        fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut data)
            .unwrap();
        fs::File::create(&good).unwrap().write_all(&data).unwrap();
        let v = check_file(&good).unwrap();
        assert!(v.passed(), "/dev/urandom failed:\n{v}");
        // Bias: clear the low bit of every byte (P(1) per bit = 7/16).
        for b in data.iter_mut() {
            *b &= 0xfe;
        }
        let bad = dir.path().join("bad.bin");
        fs::File::create(&bad).unwrap().write_all(&data).unwrap();
        let v = check_file(&bad).unwrap();
        assert!(!v.passed(), "biased data passed:\n{v}");
    }
}
