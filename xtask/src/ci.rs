//! `cargo xtask ci`: the whole test gate. The steps run in two lanes at
//! once, each lane one step after another: the main lane builds in the
//! workspace's target directory (fmt, clippy, test, doc, fuzz, extra), the
//! side lane in target directories of its own (thumbv7em, firmware,
//! nopanic, miri, loom), so the two never wait on each other's build lock
//! and the side lane's single-threaded work (miri, QEMU, rustdoc-sized
//! builds) fills the cores the main lane leaves idle while it links and
//! runs tests. A failed step stops both lanes at their next step.
//!
//! Each step runs as a child process (`xtask ci --step NAME`) whose output
//! goes to `<target>/ci-logs/NAME.log`; the log is printed whole when the
//! step fails. A summary table of the steps (lane, start, seconds, CPU
//! seconds, result), the total and the load average closes the run.
//! `--serial` runs the steps one after another with their output streamed,
//! as does any run of a single step.
//!
//! Target directories: every step that builds with the ordinary flags
//! shares the workspace's target directory (`$CARGO_TARGET_DIR`, else
//! `target/`), including the fuzz workspace (whose `[profile]` sections
//! equal the root's), so dependencies are built once per profile. Builds
//! with other `RUSTFLAGS` or targets get a subdirectory of their own
//! (`loom/`, `nopanic/`, `thumbv7em/`, `firmware/`, `extra-<name>/`) so they
//! never invalidate the main build nor wait for its lock; miri keeps its
//! own `miri/` subdirectory by itself.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::cmd::Cmd;
use crate::extend::{EXTRA_CRATES, MIRI_RUNS, MIRIFLAGS};
use crate::nopanic;

/// The embedded target whose `no_std` build the gate checks.
pub const EMBEDDED_TARGET: &str = "thumbv7em-none-eabihf";

/// Where the gate runs and builds.
#[derive(Debug)]
pub struct Ctx {
    /// The repository root (the workspace's directory).
    pub root: PathBuf,
    /// The workspace's target directory.
    pub target: PathBuf,
}

impl Ctx {
    /// The context of this checkout: the root is the parent of `xtask/`.
    pub fn discover() -> Result<Ctx, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("xtask has no parent directory")?
            .to_owned();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()
                        .map_err(|e| format!("current directory: {e}"))?
                        .join(dir)
                }
            }
            _ => root.join("target"),
        };
        Ok(Ctx { root, target })
    }

    /// `cargo` (the rustup proxy on PATH, so `+nightly` works), run at the
    /// repo root.
    pub fn cargo(&self) -> Cmd {
        Cmd::new("cargo", &self.root)
    }

    /// A path relative to the repo root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// What a step did when it did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// It ran its commands and they passed.
    Passed,
    /// It had nothing to do here (the reason is printed).
    Skipped(String),
}

/// Which of the two concurrent lanes a step runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Builds in the workspace's target directory (one cargo at a time).
    Main,
    /// Builds in target directories of its own.
    Side,
}

impl Lane {
    fn name(self) -> &'static str {
        match self {
            Lane::Main => "main",
            Lane::Side => "side",
        }
    }
}

/// One step of the gate.
#[derive(Debug)]
pub struct Step {
    /// Name used by `--only` and in the summary.
    pub name: &'static str,
    /// One line saying what it checks.
    pub about: &'static str,
    /// Left out by `--quick`.
    pub slow: bool,
    /// The lane it runs in (steps of a lane run in the order of `STEPS`).
    pub lane: Lane,
    /// The step itself.
    pub run: fn(&Ctx) -> Result<Outcome, String>,
}

/// Every step, in the order the gate runs them.
pub const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        about: "rustfmt check of the workspace and of every separate workspace",
        slow: false,
        lane: Lane::Main,
        run: fmt,
    },
    Step {
        name: "clippy",
        about: "clippy on all targets and features, warnings denied",
        slow: false,
        lane: Lane::Main,
        run: clippy,
    },
    Step {
        name: "test",
        about: "all tests of the workspace (unit, integration, doc), then the library without default features; softhsm2 is installed with apt when missing",
        slow: false,
        lane: Lane::Main,
        run: test,
    },
    Step {
        name: "doc",
        about: "rustdoc of the workspace, warnings denied",
        slow: false,
        lane: Lane::Main,
        run: doc,
    },
    Step {
        name: "thumbv7em",
        about: "no_std build of the library for thumbv7em-none-eabihf",
        slow: true,
        lane: Lane::Side,
        run: thumbv7em,
    },
    Step {
        name: "nopanic",
        about: "release link of xtask/nopanic, whose panic handler is an undefined symbol",
        slow: true,
        lane: Lane::Side,
        run: nopanic::step,
    },
    Step {
        name: "firmware",
        about: "examples/cortex-m under QEMU (mps2-an386): on-target checks, then the footprint",
        slow: true,
        lane: Lane::Side,
        run: crate::firmware::step,
    },
    Step {
        name: "fuzz",
        about: "replay of the committed fuzz corpora on stable (fuzz/ workspace)",
        slow: false,
        lane: Lane::Main,
        run: fuzz,
    },
    Step {
        name: "miri",
        about: "miri over the tests of the modules with unsafe (nightly)",
        slow: true,
        lane: Lane::Side,
        run: miri,
    },
    Step {
        name: "loom",
        about: "loom models: every tests/loom_*.rs with --cfg loom",
        slow: true,
        lane: Lane::Side,
        run: loom,
    },
    Step {
        name: "extra",
        about: "tests of the extra crates listed in xtask/src/extend.rs",
        slow: false,
        lane: Lane::Main,
        run: extra,
    },
];

/// Options of `cargo xtask ci`.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    serial: bool,
    only: Option<Vec<String>>,
    /// Internal: run this one step in this process (the lanes' children).
    step: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let only = if arg == "--only" {
            Some(it.next().ok_or("--only needs a list of steps")?.clone())
        } else {
            arg.strip_prefix("--only=").map(str::to_owned)
        };
        if let Some(list) = only {
            let names: Vec<String> = list.split(',').map(str::to_owned).collect();
            for n in &names {
                check_step_name(n)?;
            }
            opts.only = Some(names);
        } else if arg == "--quick" {
            opts.quick = true;
        } else if arg == "--serial" {
            opts.serial = true;
        } else if arg == "--step" {
            let name = it.next().ok_or("--step needs a step")?;
            check_step_name(name)?;
            opts.step = Some(name.clone());
        } else {
            return Err(format!(
                "unknown option `{arg}` to `ci` (see `cargo xtask help`)"
            ));
        }
    }
    Ok(opts)
}

fn check_step_name(name: &str) -> Result<(), String> {
    if STEPS.iter().any(|s| s.name == name) {
        Ok(())
    } else {
        Err(format!("unknown step `{name}` (steps: {})", step_names()))
    }
}

fn step_names() -> String {
    STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// A finished (or not run) step, for the summary.
struct Record {
    name: &'static str,
    lane: Lane,
    /// Seconds after the gate started that the step started.
    start: f64,
    seconds: f64,
    /// CPU seconds (user + system) of the step's commands, where known.
    cpu: Option<f64>,
    result: String,
}

impl Record {
    fn not_run(step: &Step, result: &str) -> Record {
        Record {
            name: step.name,
            lane: step.lane,
            start: 0.0,
            seconds: 0.0,
            cpu: None,
            result: result.to_owned(),
        }
    }
}

/// CPU seconds used so far by this process's finished children (Linux:
/// `cutime + cstime` of /proc/self/stat, at the usual 100 ticks a second),
/// and by this process itself when `own` is set. It tells a slow step from
/// a busy machine.
fn cpu_seconds(own: bool) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, after_comm) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime 15, cutime 16,
    // cstime 17.
    let first = if own { 11 } else { 13 };
    let mut ticks = 0.0;
    for i in first..=14 {
        ticks += fields.get(i)?.parse::<f64>().ok()?;
    }
    Some(ticks / 100.0)
}

/// The load average line of /proc/loadavg (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

/// What a step's child process leaves beside its log: `ok`, `skipped
/// <why>` or `failed <why>` on the first line, `cpu <seconds>` on the second.
fn status_path(ctx: &Ctx, name: &str) -> PathBuf {
    log_dir(ctx).join(format!("{name}.status"))
}

fn log_dir(ctx: &Ctx) -> PathBuf {
    ctx.target.join("ci-logs")
}

/// `cargo xtask ci [--quick] [--serial] [--only STEP,...]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let ctx = Ctx::discover()?;
    if let Some(name) = &opts.step {
        return child_step(&ctx, name);
    }
    println!(
        "xtask ci: repo {}, target dir {}, load average {}",
        ctx.root.display(),
        ctx.target.display(),
        load_average()
    );
    let selected: Vec<&'static Step> = STEPS
        .iter()
        .filter(|s| match &opts.only {
            Some(names) => names.iter().any(|n| n == s.name),
            None => true,
        })
        .collect();
    let started = Instant::now();
    let runnable = selected.iter().filter(|s| !(opts.quick && s.slow)).count();
    let records = if opts.serial || runnable <= 1 {
        serial(&ctx, &selected, opts.quick, started)
    } else {
        lanes(&ctx, &selected, opts.quick, started)?
    };
    let failure = records
        .iter()
        .find(|r| r.result.starts_with("FAILED"))
        .map(|r| format!("step `{}` failed (log above)", r.name));
    summary(
        &records,
        started.elapsed().as_secs_f64(),
        cpu_seconds(false),
        failure.is_none(),
    );
    match failure {
        Some(msg) => Err(msg),
        None => {
            println!("xtask ci: all steps passed");
            Ok(())
        }
    }
}

fn outcome_text(outcome: &Result<Outcome, String>) -> String {
    match outcome {
        Ok(Outcome::Passed) => "ok".to_owned(),
        Ok(Outcome::Skipped(why)) => format!("skipped ({why})"),
        Err(msg) => format!("FAILED: {msg}"),
    }
}

/// The steps one after another in this process, output streamed.
fn serial(ctx: &Ctx, selected: &[&'static Step], quick: bool, started: Instant) -> Vec<Record> {
    let total = selected.len();
    let mut records = Vec::new();
    let mut failed = false;
    for (i, step) in selected.iter().enumerate() {
        if failed {
            records.push(Record::not_run(step, "not run"));
            continue;
        }
        println!();
        println!("==> [{}/{total}] {}: {}", i + 1, step.name, step.about);
        if quick && step.slow {
            println!("skipped: --quick");
            records.push(Record::not_run(step, "skipped (--quick)"));
            continue;
        }
        let start = started.elapsed().as_secs_f64();
        let cpu_before = cpu_seconds(false);
        let outcome = (step.run)(ctx);
        let seconds = started.elapsed().as_secs_f64() - start;
        let cpu = cpu_seconds(false)
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        if let Ok(Outcome::Skipped(why)) = &outcome {
            println!("skipped: {why}");
        }
        let result = outcome_text(&outcome);
        failed |= outcome.is_err();
        println!("<== {} {result} in {seconds:.1} s", step.name);
        records.push(Record {
            name: step.name,
            lane: step.lane,
            start,
            seconds,
            cpu,
            result,
        });
    }
    records
}

/// `xtask ci --step NAME`: one step, its output to stdout (the parent sends
/// it to the step's log), its verdict and CPU time to the status file.
fn child_step(ctx: &Ctx, name: &str) -> Result<(), String> {
    let step = STEPS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("unknown step `{name}`"))?;
    println!("==> {}: {}", step.name, step.about);
    let outcome = (step.run)(ctx);
    let text = match &outcome {
        Ok(Outcome::Passed) => "ok".to_owned(),
        Ok(Outcome::Skipped(why)) => format!("skipped {why}"),
        Err(msg) => format!("failed {msg}"),
    };
    if let Err(msg) = &outcome {
        println!("step `{name}` failed: {msg}");
    }
    let cpu = cpu_seconds(true).unwrap_or(-1.0);
    let status = format!("{}\ncpu {cpu:.2}\n", text.replace('\n', " "));
    std::fs::write(status_path(ctx, name), status)
        .map_err(|e| format!("writing the status of step `{name}`: {e}"))?;
    match outcome {
        Ok(_) => Ok(()),
        Err(msg) => Err(msg),
    }
}

/// The verdict a step's child left: result text and CPU seconds.
fn read_status(ctx: &Ctx, name: &str) -> Option<(String, Option<f64>)> {
    let text = std::fs::read_to_string(status_path(ctx, name)).ok()?;
    let mut lines = text.lines();
    let verdict = lines.next()?;
    let result = if verdict == "ok" {
        "ok".to_owned()
    } else if let Some(why) = verdict.strip_prefix("skipped ") {
        format!("skipped ({why})")
    } else {
        format!(
            "FAILED: {}",
            verdict.strip_prefix("failed ").unwrap_or(verdict)
        )
    };
    let cpu = lines
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .and_then(|c| c.parse::<f64>().ok())
        .filter(|c| *c >= 0.0);
    Some((result, cpu))
}

/// Runs one step as a child process with its output in its log file.
fn run_child(ctx: &Ctx, step: &Step) -> (String, Option<f64>) {
    let log_path = log_dir(ctx).join(format!("{}.log", step.name));
    let _ = std::fs::remove_file(status_path(ctx, step.name));
    let spawn = || -> Result<std::process::ExitStatus, String> {
        let exe = std::env::current_exe().map_err(|e| format!("xtask's own path: {e}"))?;
        let log =
            File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        Command::new(exe)
            .args(["ci", "--step", step.name])
            .current_dir(&ctx.root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .status()
            .map_err(|e| format!("starting step `{}`: {e}", step.name))
    };
    match spawn() {
        Err(msg) => (format!("FAILED: {msg}"), None),
        Ok(status) => match read_status(ctx, step.name) {
            Some((result, cpu)) if status.success() || result.starts_with("FAILED") => {
                (result, cpu)
            }
            _ => (
                format!("FAILED: the step's process ended ({status}) without a verdict"),
                None,
            ),
        },
    }
}

/// The selected steps in their two lanes at once.
fn lanes(
    ctx: &Ctx,
    selected: &[&'static Step],
    quick: bool,
    started: Instant,
) -> Result<Vec<Record>, String> {
    let dir = log_dir(ctx);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // The Debian packages of the test step first, alone: two apt-get runs
    // at once (test's softhsm2, firmware's qemu) would fight over dpkg's lock.
    if selected.iter().any(|s| s.name == "test") {
        crate::packages::ensure(ctx, crate::packages::TEST_PACKAGES)?;
    }
    println!(
        "xtask ci: two lanes at once; each step's output goes to {}/<step>.log and is printed whole if the step fails",
        dir.display()
    );
    let failed = AtomicBool::new(false);
    let out = Mutex::new(Vec::<Record>::new());
    let dir = &dir;
    std::thread::scope(|scope| {
        for lane in [Lane::Main, Lane::Side] {
            let (failed, out) = (&failed, &out);
            scope.spawn(move || {
                for step in selected.iter().filter(|s| s.lane == lane) {
                    let record = if failed.load(Ordering::SeqCst) {
                        Record::not_run(step, "not run")
                    } else if quick && step.slow {
                        Record::not_run(step, "skipped (--quick)")
                    } else {
                        let start = started.elapsed().as_secs_f64();
                        say(&format!(
                            "==> [{:>6.1} s] {} lane: {}: {}",
                            start,
                            lane.name(),
                            step.name,
                            step.about
                        ));
                        let (result, cpu) = run_child(ctx, step);
                        let seconds = started.elapsed().as_secs_f64() - start;
                        let cpu_text = cpu.map_or_else(String::new, |c| format!(", cpu {c:.1} s"));
                        if result.starts_with("FAILED") {
                            failed.store(true, Ordering::SeqCst);
                            let log = dir.join(format!("{}.log", step.name));
                            let text = std::fs::read_to_string(&log).unwrap_or_else(|e| {
                                format!("(could not read {}: {e})", log.display())
                            });
                            say(&format!(
                                "\n==== log of step `{}` ({}) ====\n{text}==== end of the log of `{}` ====\n<== {} {result} in {seconds:.1} s{cpu_text}",
                                step.name,
                                log.display(),
                                step.name,
                                step.name
                            ));
                        } else {
                            say(&format!(
                                "<== [{:>6.1} s] {} {result} in {seconds:.1} s{cpu_text}",
                                start + seconds,
                                step.name
                            ));
                        }
                        Record {
                            name: step.name,
                            lane,
                            start,
                            seconds,
                            cpu,
                            result,
                        }
                    };
                    if let Ok(mut v) = out.lock() {
                        v.push(record);
                    }
                }
            });
        }
    });
    let mut records = out.into_inner().map_err(|_| "a lane panicked".to_owned())?;
    records.sort_by_key(|r| STEPS.iter().position(|s| s.name == r.name));
    Ok(records)
}

/// One message from a lane, printed whole (lanes print at once).
fn say(text: &str) {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let _ = writeln!(lock, "{text}");
    let _ = lock.flush();
}

fn summary(records: &[Record], total: f64, total_cpu: Option<f64>, ok: bool) {
    let cpu = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
    println!();
    println!(
        "{:<10} {:<5} {:>7} {:>8} {:>8}  result",
        "step", "lane", "start", "seconds", "cpu s"
    );
    for r in records {
        println!(
            "{:<10} {:<5} {:>7.1} {:>8.1} {:>8}  {}",
            r.name,
            r.lane.name(),
            r.start,
            r.seconds,
            cpu(r.cpu),
            r.result
        );
    }
    println!(
        "{:<10} {:<5} {:>7} {:>8.1} {:>8}  {}",
        "total",
        "",
        "",
        total,
        cpu(total_cpu),
        if ok { "ok" } else { "FAILED" }
    );
    println!("load average at the end: {}", load_average());
}

/// Separate workspaces (not members) that exist in this checkout.
fn separate_workspaces(ctx: &Ctx) -> Vec<&'static str> {
    let mut all = vec![
        "xtask/nopanic/Cargo.toml",
        "fuzz/Cargo.toml",
        "examples/cortex-m/Cargo.toml",
    ];
    all.extend(EXTRA_CRATES.iter().map(|c| c.manifest));
    all.into_iter().filter(|m| ctx.path(m).is_file()).collect()
}

/// Give a separate workspace the root's lock file when it has none, so it
/// builds with exactly the versions the workspace tests (and offline).
pub fn seed_lock(ctx: &Ctx, manifest: &str, always: bool) -> Result<(), String> {
    let dir = ctx
        .path(manifest)
        .parent()
        .ok_or_else(|| format!("{manifest} has no directory"))?
        .to_owned();
    let lock = dir.join("Cargo.lock");
    if always || !lock.exists() {
        std::fs::copy(ctx.path("Cargo.lock"), &lock)
            .map_err(|e| format!("copying Cargo.lock to {}: {e}", lock.display()))?;
        println!("(seeded {} from the root Cargo.lock)", lock.display());
    }
    Ok(())
}

/// `--config` overrides for builds whose target directory nobody else
/// shares (`loom/`, `miri/`, the thumbv7em build): dependencies unoptimised
/// and without debug info, which compiles them about four times faster (a
/// cold loom build: 418 -> 109 CPU seconds). The ordinary steps keep the
/// workspace's profile so they share artifacts with everyday builds.
const LEAN_DEPS: &[&str] = &[
    "--config",
    "profile.dev.package.\"*\".opt-level=0",
    "--config",
    "profile.dev.package.\"*\".debug=false",
    "--config",
    "profile.dev.debug=false",
];

/// Append `extra` to the flags already in the environment variable `key`.
fn with_env_flags(key: &str, extra: &str) -> String {
    match std::env::var(key) {
        Ok(old) if !old.trim().is_empty() => format!("{old} {extra}"),
        _ => extra.to_owned(),
    }
}

fn fmt(ctx: &Ctx) -> Result<Outcome, String> {
    ctx.cargo().args(["fmt", "--all", "--", "--check"]).run()?;
    for manifest in separate_workspaces(ctx) {
        ctx.cargo()
            .args(["fmt", "--manifest-path", manifest, "--", "--check"])
            .run()?;
    }
    Ok(Outcome::Passed)
}

fn clippy(ctx: &Ctx) -> Result<Outcome, String> {
    ctx.cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    Ok(Outcome::Passed)
}

/// The test directories of the packages, each with its manifest.
const TEST_DIRS: &[(&str, &str)] = &[
    ("tests", "Cargo.toml"),
    ("entropyd/tests", "entropyd/Cargo.toml"),
];

/// With `autotests = false`, a test file that no `[[test]]` entry names and
/// no aggregator includes (`#[path = "x.rs"] mod x;`) would never be
/// compiled: the test files nobody builds, by directory.
fn orphan_test_files(ctx: &Ctx) -> Result<Vec<String>, String> {
    let mut orphans = Vec::new();
    for (dir, manifest) in TEST_DIRS {
        let Ok(manifest_text) = std::fs::read_to_string(ctx.path(manifest)) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(ctx.path(dir)) else {
            continue;
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {dir}: {e}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") && entry.path().is_file() {
                files.push(name);
            }
        }
        let mut sources = String::new();
        for f in &files {
            let path = ctx.path(&format!("{dir}/{f}"));
            sources.push_str(
                &std::fs::read_to_string(&path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?,
            );
        }
        let rel = dir.strip_prefix("entropyd/").unwrap_or(dir);
        for f in files {
            let listed = manifest_text.contains(&format!("path = \"{rel}/{f}\""));
            let included = sources.contains(&format!("#[path = \"{f}\"]"));
            if !listed && !included {
                orphans.push(format!("{dir}/{f}"));
            }
        }
    }
    orphans.sort();
    Ok(orphans)
}

fn test(ctx: &Ctx) -> Result<Outcome, String> {
    let orphans = orphan_test_files(ctx)?;
    if !orphans.is_empty() {
        return Err(format!(
            "test files that no test target compiles: {} (add `#[path = \"<file>\"] mod <name>;` to the aggregator, \
             tests/integration.rs or entropyd/tests/integration.rs, or a `[[test]]` entry; see tests/README.md)",
            orphans.join(", ")
        ));
    }
    // Real components of the tests (SoftHSM2): installed, or a failure.
    crate::packages::ensure(ctx, crate::packages::TEST_PACKAGES)?;
    ctx.cargo()
        .args(["test", "--workspace", "--all-features"])
        .run()?;
    // The core alone, as firmware builds it (tests still link std).
    ctx.cargo()
        .args(["test", "-p", "entropool", "--no-default-features", "--lib"])
        .run()?;
    Ok(Outcome::Passed)
}

fn doc(ctx: &Ctx) -> Result<Outcome, String> {
    ctx.cargo()
        .env(
            "RUSTDOCFLAGS",
            &with_env_flags("RUSTDOCFLAGS", "-D warnings"),
        )
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .run()?;
    Ok(Outcome::Passed)
}

fn thumbv7em(ctx: &Ctx) -> Result<Outcome, String> {
    let libdir = Cmd::new("rustc", &ctx.root)
        .args(["--print", "target-libdir", "--target", EMBEDDED_TARGET])
        .probe()
        .map(|s| PathBuf::from(s.trim()));
    let installed = libdir.as_ref().is_some_and(|d| d.is_dir());
    if installed {
        println!("({EMBEDDED_TARGET} is installed)");
    } else {
        println!("({EMBEDDED_TARGET} is not installed: adding its standard library with rustup)");
        Cmd::new("rustup", &ctx.root)
            .args(["target", "add", EMBEDDED_TARGET])
            .run()?;
    }
    ctx.cargo()
        .args([
            "build",
            "-p",
            "entropool",
            "--no-default-features",
            "--target",
            EMBEDDED_TARGET,
            "--target-dir",
        ])
        // Its own directory: no wait for the main lane's build lock.
        .arg(ctx.target.join("thumbv7em"))
        .args(LEAN_DEPS)
        .run()?;
    Ok(Outcome::Passed)
}

fn fuzz(ctx: &Ctx) -> Result<Outcome, String> {
    let manifest = "fuzz/Cargo.toml";
    if !ctx.path(manifest).is_file() {
        return Ok(Outcome::Skipped("no fuzz workspace".to_owned()));
    }
    seed_lock(ctx, manifest, false)?;
    ctx.cargo()
        .args(["test", "--manifest-path", manifest, "--target-dir"])
        .arg(&ctx.target)
        .run()?;
    Ok(Outcome::Passed)
}

/// Whether `tests/<name>.rs` or `tests/<name>/main.rs` exists.
fn test_target_exists(ctx: &Ctx, name: &str) -> bool {
    ctx.path(&format!("tests/{name}.rs")).is_file()
        || ctx.path(&format!("tests/{name}/main.rs")).is_file()
}

fn miri(ctx: &Ctx) -> Result<Outcome, String> {
    let probe = ctx.cargo().args(["+nightly", "miri", "--version"]).probe();
    let Some(version) = probe else {
        return Ok(Outcome::Skipped("no miri".to_owned()));
    };
    println!("({})", version.trim());
    let flags = match std::env::var("MIRIFLAGS") {
        Ok(v) => v,
        Err(_) => MIRIFLAGS.to_owned(),
    };
    // Builds the miri sysroot once (cached in ~/.cache/miri); quick after.
    ctx.cargo().args(["+nightly", "miri", "setup"]).run()?;
    // The library run first, then the test targets, grouped by filters so
    // each group is one cargo invocation.
    let mut groups: Vec<(Vec<&str>, &[&str])> = Vec::new();
    for run in MIRI_RUNS {
        let target = match run.test {
            None => None,
            Some(name) if test_target_exists(ctx, name) => Some(name),
            Some(name) => {
                println!("(note: no tests/{name}.rs yet: its miri run is skipped)");
                continue;
            }
        };
        let mut args = match target {
            None => vec!["--lib"],
            Some(name) => vec!["--test", name],
        };
        match groups
            .iter_mut()
            .find(|(a, f)| *f == run.filters && target.is_some() && a.first() == Some(&"--test"))
        {
            Some((group, _)) => group.append(&mut args),
            None => groups.push((args, run.filters)),
        }
    }
    if groups.is_empty() {
        return Ok(Outcome::Skipped("no miri targets exist yet".to_owned()));
    }
    for (targets, filters) in groups {
        let mut cmd = ctx
            .cargo()
            .env("MIRIFLAGS", &flags)
            .args([
                "+nightly",
                "miri",
                "test",
                "-p",
                "entropool",
                "--all-features",
            ])
            .args(LEAN_DEPS)
            .args(targets);
        if !filters.is_empty() {
            cmd = cmd.arg("--").args(filters);
        }
        cmd.run()?;
    }
    Ok(Outcome::Passed)
}

/// The loom test targets: `tests/loom_*.rs` and `tests/loom_*/main.rs`.
fn loom_tests(ctx: &Ctx) -> Result<Vec<String>, String> {
    let dir = ctx.path("tests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.starts_with("loom_") {
            continue;
        }
        if let Some(stem) = file.strip_suffix(".rs") {
            if path.is_file() {
                names.push(stem.to_owned());
            }
        } else if path.join("main.rs").is_file() {
            names.push(file);
        }
    }
    names.sort();
    Ok(names)
}

fn loom(ctx: &Ctx) -> Result<Outcome, String> {
    let tests = loom_tests(ctx)?;
    if tests.is_empty() {
        return Ok(Outcome::Skipped("no tests/loom_*.rs yet".to_owned()));
    }
    let mut cmd = ctx
        .cargo()
        .env("RUSTFLAGS", &with_env_flags("RUSTFLAGS", "--cfg loom"))
        .args(["test", "-p", "entropool", "--all-features", "--target-dir"])
        .arg(ctx.target.join("loom"))
        .args(LEAN_DEPS)
        // loom itself runs every interleaving: keep it optimised.
        .args(["--config", "profile.dev.package.loom.opt-level=3"]);
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        // Bounds the interleavings explored (loom's advice: 2 or 3 finds
        // nearly every bug); a model may still set its own bound.
        cmd = cmd.env("LOOM_MAX_PREEMPTIONS", "3");
    }
    for t in &tests {
        cmd = cmd.args(["--test", t]);
    }
    cmd.run()?;
    Ok(Outcome::Passed)
}

fn extra(ctx: &Ctx) -> Result<Outcome, String> {
    let mut ran = 0;
    for krate in EXTRA_CRATES {
        if !ctx.path(krate.manifest).is_file() {
            println!("(note: {} does not exist yet: skipped)", krate.manifest);
            continue;
        }
        seed_lock(ctx, krate.manifest, false)?;
        let mut cmd = ctx
            .cargo()
            .args(["test", "--manifest-path", krate.manifest, "--target-dir"]);
        if krate.env.iter().any(|(k, _)| *k == "RUSTFLAGS") {
            let slug: String = krate
                .manifest
                .trim_end_matches("/Cargo.toml")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            cmd = cmd.arg(ctx.target.join(format!("extra-{slug}")));
        } else {
            cmd = cmd.arg(&ctx.target);
        }
        for (k, v) in krate.env {
            let value = if k.ends_with("FLAGS") {
                with_env_flags(k, v)
            } else {
                (*v).to_owned()
            };
            cmd = cmd.env(k, &value);
        }
        cmd.run()?;
        ran += 1;
    }
    if ran == 0 {
        return Ok(Outcome::Skipped("no extra crates exist yet".to_owned()));
    }
    Ok(Outcome::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique_and_options_parse() {
        for (i, a) in STEPS.iter().enumerate() {
            assert!(STEPS.iter().skip(i + 1).all(|b| b.name != a.name));
        }
        let o = parse(&["--quick".into(), "--only".into(), "fmt,miri".into()]).unwrap();
        assert!(o.quick);
        assert_eq!(o.only.unwrap(), vec!["fmt", "miri"]);
        assert!(!o.serial && o.step.is_none());
        assert!(parse(&["--only=nosuch".into()]).is_err());
        assert!(parse(&["--fast".into()]).is_err());
        let o = parse(&["--serial".into(), "--step".into(), "doc".into()]).unwrap();
        assert!(o.serial);
        assert_eq!(o.step.as_deref(), Some("doc"));
        assert!(parse(&["--step".into(), "nosuch".into()]).is_err());
        assert!(parse(&["--step".into()]).is_err());
    }

    #[test]
    fn every_step_has_a_lane_and_the_side_lane_builds_elsewhere() {
        // The main lane shares the target directory's lock; the side lane
        // must not build there, or the lanes wait on each other.
        let side: Vec<&str> = STEPS
            .iter()
            .filter(|s| s.lane == Lane::Side)
            .map(|s| s.name)
            .collect();
        assert_eq!(side, ["thumbv7em", "nopanic", "firmware", "miri", "loom"]);
    }

    #[test]
    fn every_test_file_of_this_checkout_is_compiled() {
        let ctx = Ctx::discover().unwrap();
        assert_eq!(orphan_test_files(&ctx).unwrap(), Vec::<String>::new());
    }

    /// The `[profile.dev*]` headers and settings of a manifest, comments
    /// and blank lines left out.
    fn dev_profile(manifest: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut inside = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                inside = line.starts_with("[profile.dev]") || line.starts_with("[profile.dev.");
            }
            if inside && !line.is_empty() && !line.starts_with('#') {
                out.push(line.to_owned());
            }
        }
        out
    }

    #[test]
    fn the_fuzz_workspace_builds_dependencies_as_the_root_does() {
        // The fuzz replay shares the root's target directory; with equal
        // dev profiles it reuses the root's dependency builds.
        let ctx = Ctx::discover().unwrap();
        let root = std::fs::read_to_string(ctx.path("Cargo.toml")).unwrap();
        let fuzz = std::fs::read_to_string(ctx.path("fuzz/Cargo.toml")).unwrap();
        assert!(dev_profile(&root).len() > 4);
        assert_eq!(dev_profile(&root), dev_profile(&fuzz));
    }

    #[test]
    fn an_orphan_test_file_is_found() {
        let dir = std::env::temp_dir().join(format!("xtask-orphans-{}", std::process::id()));
        let tests = dir.join("tests");
        std::fs::create_dir_all(tests.join("sub")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[[test]]\nname = \"all\"\npath = \"tests/all.rs\"\n",
        )
        .unwrap();
        std::fs::write(tests.join("all.rs"), "#[path = \"a.rs\"]\nmod a;\n").unwrap();
        std::fs::write(tests.join("a.rs"), "").unwrap();
        std::fs::write(tests.join("b.rs"), "").unwrap();
        std::fs::write(tests.join("sub").join("mod.rs"), "").unwrap();
        let ctx = Ctx {
            root: dir.clone(),
            target: dir.join("target"),
        };
        let found = orphan_test_files(&ctx);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap(), vec!["tests/b.rs".to_owned()]);
    }
}
