//! The command line: global options, the subcommands, and the dispatcher.
//!
//! To add a subcommand: write `cmd_NAME.rs` with `pub struct Args` (clap
//! `Args` derive) and `pub fn run(args: &Args, ctx: &Context, out: &mut dyn
//! Write) -> Result<(), Failure>`, add a variant to [`Command`], and one arm
//! to [`run`].

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use entropool::store::StateDir;

use crate::failure::{EXIT_INVALID, Failure};
use crate::{
    cmd_config, cmd_generate, cmd_kickstart, cmd_reset_source, cmd_run, cmd_samples, cmd_status,
    cmd_submit,
};

/// The environment variable naming the state directory.
pub const STATE_DIR_ENV: &str = "ENTROPYD_STATE_DIR";

/// entropyd: the reference entropy daemon of entropool.
#[derive(Debug, Parser)]
#[command(name = "entropyd", version, about, long_about = None)]
pub struct Cli {
    /// The state directory (config store, staged seed, storage cache).
    /// Default: $ENTROPYD_STATE_DIR, else /var/lib/entropyd.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the tunables (esxcli `system entropyd get`).
    Get(cmd_config::GetArgs),
    /// Change tunables; the whole request is validated before anything
    /// changes. Prints nothing on success.
    Set(cmd_config::SetArgs),
    /// Validate a kickstart file and stage its `entropy` seed for the first
    /// start (fresh state directory only).
    Kickstart(cmd_kickstart::Args),
    /// Run the daemon: keep the caches full, serve the API, forward
    /// surplus entropy to the kernel or a sink; SIGTERM saves the memory
    /// cache to the storage cache and exits 0.
    Run(cmd_run::Args),
    /// Show the pool's health: a running daemon's through the API, else
    /// what the state directory holds.
    Status(cmd_status::Args),
    /// Write N random bytes to stdout from a fresh in-process pool.
    Generate(cmd_generate::Args),
    /// Write raw timing samples (low 8 bits of each delta, one byte each)
    /// to stdout, for SP 800-90B assessment tools.
    Samples(cmd_samples::Args),
    /// Send stdin to a running daemon as external entropy.
    Submit(cmd_submit::Args),
    /// Re-enable the external source after the pool disabled it (health
    /// tests, or the screen for patterned data).
    ResetSource(cmd_reset_source::Args),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub struct Context {
    /// The state directory's path (not opened yet).
    pub state_dir: PathBuf,
}

impl Context {
    /// Open the state directory.
    ///
    /// # Errors
    /// A runtime [`Failure`] naming the path when it is not a directory.
    pub fn open_state(&self) -> Result<StateDir, Failure> {
        StateDir::open(&self.state_dir).map_err(Failure::from)
    }
}

/// The state directory: `--state-dir`, else a non-empty `$ENTROPYD_STATE_DIR`,
/// else [`StateDir::DEFAULT_PATH`].
#[must_use]
pub fn resolve_state_dir(flag: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(StateDir::DEFAULT_PATH))
}

/// Run a parsed command line, writing normal output to `out`.
///
/// # Errors
/// The command's [`Failure`].
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let ctx = Context {
        state_dir: resolve_state_dir(cli.state_dir, std::env::var_os(STATE_DIR_ENV)),
    };
    match &cli.command {
        Command::Get(args) => cmd_config::get(args, &ctx, out),
        Command::Set(args) => cmd_config::set(args, &ctx, out),
        Command::Kickstart(args) => cmd_kickstart::run(args, &ctx, out),
        Command::Run(args) => cmd_run::run(args, &ctx, out),
        Command::Status(args) => cmd_status::run(args, &ctx, out),
        Command::Generate(args) => cmd_generate::run(args, &ctx, out),
        Command::Samples(args) => cmd_samples::run(args, &ctx, out),
        Command::Submit(args) => cmd_submit::run(args, &ctx, out),
        Command::ResetSource(args) => cmd_reset_source::run(args, &ctx, out),
    }
}

/// The binary's entry point: parse `std::env::args`, run, report.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to
            // stderr with status 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli, &mut out).and_then(|()| {
        out.flush()
            .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("entropyd: {f}");
            f.exit_code()
        }
    }
}
