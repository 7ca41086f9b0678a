//! Project automation for entropool: `cargo xtask <command>`.
//!
//! Std only, no dependencies (it must build on a fresh machine with
//! nothing but the Rust toolchain). `cargo xtask help` lists the commands.

mod bench_api;
mod ci;
mod cmd;
mod extend;
mod firmware;
mod fuzz;
mod nopanic;
mod packages;
mod validate;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <command>

Commands:
  ci [--quick] [--serial] [--only STEP,...]
        The whole test gate (what .ci/run runs). Runs its steps in two
        lanes at once (main: the workspace's target dir; side: steps with
        target dirs of their own), each step's output in
        <target>/ci-logs/STEP.log, printed whole when the step fails; a
        failure stops both lanes at their next step. Ends with a table of
        steps, lanes, start, seconds, CPU seconds and results, and the load
        average. --quick leaves out the slow steps (thumbv7em, nopanic,
        firmware, miri, loom); --only runs the named steps; --serial runs
        them one after another with their output streamed (as a single
        step always is).
  validate [--bytes=N] [--file=PATH]...
        Output validation: >= 20 MB from the full-entropy path and from
        PoolRng (`entropyd generate`) through rngtest (FIPS 140-2) and a
        quick dieharder subset; fails on a failure rate beyond expectation.
  firmware [--size | --bless-readme]
        Builds examples/cortex-m and runs its on-target checks under QEMU
        (mps2-an386, a Cortex-M4F); the semihosting exit status is the
        verdict. --size prints .text/.rodata/.data/.bss of the footprint
        builds (pool; + HMAC_DRBG and PoolRng; + flash storage) and fails
        when (b) is over its goals: 24 KiB of flash, 2 KiB of static RAM
        beyond the caller's ring and cache slots.
        --bless-readme copies the example's code into README's Firmware
        section (which the run checks).
  bench-api [--adds=N] [--gets=N] [--handshakes=N] [--attackers=N]
        Submit throughput over loopback in 1 MiB adds, plain and TLS;
        p50/p99 latency of GET /entropy/external-pool under a steady load;
        TLS handshakes per second; GET and add latency while 1000 slow
        clients trickle request heads or stall TLS handshakes.
  fuzz [--minutes=N] [--only=T,...] [--sanitizer=S]
        Runs every fuzz target (fuzz/Cargo.toml [[bin]]) N minutes each
        (default 1) with cargo-fuzz on nightly; prints execs, execs/s, new
        units and crashes per target; fails on a crash. New inputs go to
        target/fuzz-corpus/, never into the committed corpus.
  help  This text.

Steps of `ci`, in order (lane in brackets):
";

const CONVENTIONS: &str = "
Extending the gate (no edit of the steps needed):
  no-panic calls   one function per module in xtask/nopanic/src/checks.rs
  miri             MIRI_RUNS in xtask/src/extend.rs (lib filters, test targets)
  loom             any tests/loom_*.rs (start it with #![cfg(loom)]) with
                   a [[test]] entry in Cargo.toml
  test files       a module of tests/integration.rs (or unsafe_paths.rs
                   for miri), or a [[test]] entry: see tests/README.md
  fuzz replay      fuzz/Cargo.toml: `cargo test` there replays the corpora
  extra crates     EXTRA_CRATES in xtask/src/extend.rs (manifest + env)
";

fn help() {
    print!("{HELP}");
    for step in ci::STEPS {
        let quick = if step.slow { " (not in --quick)" } else { "" };
        let lane = match step.lane {
            ci::Lane::Main => "[main]",
            ci::Lane::Side => "[side]",
        };
        println!("  {:<10} {lane} {}{quick}", step.name, step.about);
    }
    print!("{CONVENTIONS}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "ci" => ci::main(rest),
        "validate" => validate::run(rest),
        "bench-api" => bench_api::run(rest),
        "firmware" => firmware::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "--help" | "-h" => {
            help();
            Ok(())
        }
        other => Err(format!(
            "unknown command `{other}` (see `cargo xtask help`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
