//! `submit`: stdin to a running daemon as external entropy.
//!
//! Contract: reads stdin and sends it with the add call in pieces of
//! [`SUBMIT_CHUNK`] (1 MiB) until the input ends or the pool takes less
//! than a whole piece (it is full: the rest of that piece was discarded
//! and the rest of the input is not read). Prints how many bytes the pool
//! accepted. Needs the write token (`--token-file`, mode 0600) on TCP.
//! The daemon is at `--listen` when given, else at the address in the state
//! directory's runtime file, else at the default; while nothing answers
//! there it retries for up to `--wait` seconds, so `run &` followed at once
//! by `submit` works (nothing is read from stdin before a daemon answers).
//! The wait covers connecting only: once a call reached the daemon, an
//! error ends the submit.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{self, Context};
use crate::client::{Client, DEFAULT_CLIENT_TIMEOUT, SUBMIT_CHUNK};
use crate::failure::Failure;
use crate::runtime;

/// Arguments of `submit`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where the daemon's API listens (default: the address in the state
    /// directory's runtime file, else 127.0.0.1:8742).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Seconds to wait for a daemon that is starting.
    #[arg(long, value_name = "SECONDS", default_value_t = runtime::DEFAULT_WAIT_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub wait: u64,
    /// The API write token file (mode 0600 or 0400).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Sends stdin and prints `accepted N of M bytes`.
///
/// # Errors
/// Invalid input for a bad address or token file; runtime when the daemon
/// is unreachable, refuses (e.g. 401 for a wrong token), or stdin fails.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    // Both flags are checked before any waiting, as `run` checks them.
    if let Some(listen) = &args.listen {
        cli::listen_arg(listen)?;
    }
    let token = args.token_file.as_deref().map(cli::token_arg).transpose()?;
    // Find the daemon first (waiting while it starts); stdin is read only
    // once one answers.
    let (found, target) = runtime::with_daemon(
        args.listen.as_deref(),
        &ctx.state_dir,
        Duration::from_secs(args.wait),
        true,
        false,
        |listen| Client::new(listen, None, DEFAULT_CLIENT_TIMEOUT)?.external_pool(),
    )
    .map_err(Failure::invalid)?;
    found.map_err(|e| Failure::runtime(e.to_string()))?;
    let client = Client::new(&target.listen, token, DEFAULT_CLIENT_TIMEOUT)
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let summary = client
        .submit(&mut input, SUBMIT_CHUNK)
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let note = if summary.pool_full {
        " (the pool is full: the rest of the last piece was discarded and the rest of the input not sent)"
    } else {
        ""
    };
    writeln!(
        out,
        "accepted {} of {} bytes{note}",
        summary.accepted, summary.sent
    )
    .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}
