//! `cargo xtask ci`: the whole test gate, one step after another, stopping
//! at the first failure. Each step prints the commands it runs; a summary
//! table of the steps, their time and their result closes the run.
//!
//! Target directories: every step that builds with the ordinary flags
//! shares the workspace's target directory (`$CARGO_TARGET_DIR`, else
//! `target/`), including the fuzz workspace, so dependencies are built once
//! per profile. Builds with other `RUSTFLAGS` get a subdirectory of their
//! own (`loom/`, `nopanic/`, `extra-<name>/`) so they never invalidate the
//! main build; miri keeps its own `miri/` subdirectory by itself.

use std::path::{Path, PathBuf};
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

/// One step of the gate.
#[derive(Debug)]
pub struct Step {
    /// Name used by `--only` and in the summary.
    pub name: &'static str,
    /// One line saying what it checks.
    pub about: &'static str,
    /// Left out by `--quick`.
    pub slow: bool,
    /// The step itself.
    pub run: fn(&Ctx) -> Result<Outcome, String>,
}

/// Every step, in the order the gate runs them.
pub const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        about: "rustfmt check of the workspace and of every separate workspace",
        slow: false,
        run: fmt,
    },
    Step {
        name: "clippy",
        about: "clippy on all targets and features, warnings denied",
        slow: false,
        run: clippy,
    },
    Step {
        name: "test",
        about: "all tests of the workspace (unit, integration, doc), then the library without default features; softhsm2 is installed with apt when missing",
        slow: false,
        run: test,
    },
    Step {
        name: "doc",
        about: "rustdoc of the workspace, warnings denied",
        slow: false,
        run: doc,
    },
    Step {
        name: "thumbv7em",
        about: "no_std build of the library for thumbv7em-none-eabihf",
        slow: true,
        run: thumbv7em,
    },
    Step {
        name: "nopanic",
        about: "release link of xtask/nopanic, whose panic handler is an undefined symbol",
        slow: true,
        run: nopanic::step,
    },
    Step {
        name: "firmware",
        about: "examples/cortex-m under QEMU (mps2-an386): on-target checks, then the footprint",
        slow: true,
        run: crate::firmware::step,
    },
    Step {
        name: "fuzz",
        about: "replay of the committed fuzz corpora on stable (fuzz/ workspace)",
        slow: false,
        run: fuzz,
    },
    Step {
        name: "miri",
        about: "miri over the tests of the modules with unsafe (nightly)",
        slow: true,
        run: miri,
    },
    Step {
        name: "loom",
        about: "loom models: every tests/loom_*.rs with --cfg loom",
        slow: true,
        run: loom,
    },
    Step {
        name: "extra",
        about: "tests of the extra crates listed in xtask/src/extend.rs",
        slow: false,
        run: extra,
    },
];

/// Options of `cargo xtask ci`.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    only: Option<Vec<String>>,
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
                if !STEPS.iter().any(|s| s.name == n) {
                    return Err(format!("unknown step `{n}` (steps: {})", step_names()));
                }
            }
            opts.only = Some(names);
        } else if arg == "--quick" {
            opts.quick = true;
        } else {
            return Err(format!(
                "unknown option `{arg}` to `ci` (see `cargo xtask help`)"
            ));
        }
    }
    Ok(opts)
}

fn step_names() -> String {
    STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// A finished (or not run) step, for the summary.
struct Record {
    name: &'static str,
    seconds: f64,
    /// CPU seconds (user + system) of the step's commands, where known.
    cpu: Option<f64>,
    result: String,
}

/// CPU seconds used so far by this process's finished children (Linux:
/// `cutime + cstime` of /proc/self/stat, at the usual 100 ticks a second).
/// It tells a slow step from a busy machine.
fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, after_comm) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is fields[0]; cutime is field 16, cstime field 17.
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some((cutime + cstime) / 100.0)
}

/// `cargo xtask ci [--quick] [--only STEP,...]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let ctx = Ctx::discover()?;
    println!(
        "xtask ci: repo {}, target dir {}",
        ctx.root.display(),
        ctx.target.display()
    );
    let selected: Vec<&Step> = STEPS
        .iter()
        .filter(|s| match &opts.only {
            Some(names) => names.iter().any(|n| n == s.name),
            None => true,
        })
        .collect();
    let total = selected.len();
    let started = Instant::now();
    let mut records = Vec::new();
    let mut failure = None;
    for (i, step) in selected.iter().enumerate() {
        if failure.is_some() {
            records.push(Record {
                name: step.name,
                seconds: 0.0,
                cpu: None,
                result: "not run".to_owned(),
            });
            continue;
        }
        println!();
        println!("==> [{}/{total}] {}: {}", i + 1, step.name, step.about);
        if opts.quick && step.slow {
            println!("skipped: --quick");
            records.push(Record {
                name: step.name,
                seconds: 0.0,
                cpu: None,
                result: "skipped (--quick)".to_owned(),
            });
            continue;
        }
        let t = Instant::now();
        let cpu_before = children_cpu_seconds();
        let outcome = (step.run)(&ctx);
        let seconds = t.elapsed().as_secs_f64();
        let cpu = children_cpu_seconds()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        let result = match outcome {
            Ok(Outcome::Passed) => "ok".to_owned(),
            Ok(Outcome::Skipped(why)) => {
                println!("skipped: {why}");
                format!("skipped ({why})")
            }
            Err(msg) => {
                failure = Some(format!("step `{}` failed: {msg}", step.name));
                "FAILED".to_owned()
            }
        };
        println!("<== {} {result} in {seconds:.1} s", step.name);
        records.push(Record {
            name: step.name,
            seconds,
            cpu,
            result,
        });
    }
    summary(
        &records,
        started.elapsed().as_secs_f64(),
        children_cpu_seconds(),
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

fn summary(records: &[Record], total: f64, total_cpu: Option<f64>, ok: bool) {
    let cpu = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
    println!();
    println!("{:<10} {:>8} {:>8}  result", "step", "seconds", "cpu s");
    for r in records {
        println!(
            "{:<10} {:>8.1} {:>8}  {}",
            r.name,
            r.seconds,
            cpu(r.cpu),
            r.result
        );
    }
    println!(
        "{:<10} {:>8.1} {:>8}  {}",
        "total",
        total,
        cpu(total_cpu),
        if ok { "ok" } else { "FAILED" }
    );
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

fn test(ctx: &Ctx) -> Result<Outcome, String> {
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
        ])
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
        assert!(parse(&["--only=nosuch".into()]).is_err());
        assert!(parse(&["--fast".into()]).is_err());
    }
}
