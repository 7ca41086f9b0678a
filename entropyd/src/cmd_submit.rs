//! `submit`: stdin to a running daemon as external entropy.
//!
//! Contract: reads stdin and sends it with the add call in pieces of
//! [`SUBMIT_CHUNK`] (1 MiB) until the input ends or the pool takes less
//! than a whole piece (it is full: the rest of that piece was discarded
//! and the rest of the input is not read). Prints how many bytes the pool
//! accepted. Needs the write token (`--token-file`, mode 0600) on TCP; it
//! is sent over TLS or to loopback, never in clear to another address.
//! The daemon is at `--listen` when given (`IP:PORT`, `https://HOST:PORT`
//! with `--ca` and, for a daemon that asks for one, `--client-cert` and
//! `--client-key`, or `unix:/path`), else at the address in the state
//! directory's runtime file, else at the default; while nothing answers
//! there it retries for up to `--wait` seconds, so `run &` followed at once
//! by `submit` works (nothing is read from stdin before a daemon answers).
//! The wait covers connecting only: once a call reached the daemon, an
//! error ends the submit. Stdin is read unbuffered (a duplicate of its
//! descriptor, not std's never-wiped stdin buffer), so only the submit's
//! wiped piece buffer ever holds the entropy.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::cli::{self, Context};
use crate::client::{ClientError, DEFAULT_CLIENT_TIMEOUT, SUBMIT_CHUNK};
use crate::failure::Failure;
use crate::runtime;

/// Arguments of `submit`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The daemon: --listen, --wait, --token-file and TLS (as `status`).
    #[command(flatten)]
    pub client: cli::ClientArgs,
}

/// Sends stdin and prints `accepted N of M bytes`.
///
/// # Errors
/// Invalid input for a bad address, TLS file or token file, an https
/// address without `--ca`, or a token bound for plain HTTP off loopback;
/// runtime for `https://0.0.0.0:PORT` from the runtime file (no
/// certificate names it), when a TLS or token file cannot be read, the daemon is
/// unreachable, TLS fails, the daemon refuses
/// (e.g. 401 for a wrong token), or stdin fails.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    // The flags are checked before any waiting, as `run` checks them.
    let setup = args.client.load()?;
    // Find the daemon first (waiting while it starts); stdin is read only
    // once one answers. The probe carries the token: a daemon off loopback
    // needs it for reads too.
    // The client of the last probe is the one of the target it answered
    // from, so it is built once per probe and kept for the submit.
    let mut probed = None;
    let (found, target) = runtime::with_daemon(
        setup.listen(),
        &ctx.state_dir,
        Duration::from_secs(args.client.wait),
        true,
        false,
        |listen| {
            let client = probed.insert(setup.client(listen, DEFAULT_CLIENT_TIMEOUT)?);
            client.external_pool()
        },
    )
    .map_err(Failure::invalid)?;
    found.map_err(|e| target.failure(e, &ctx.state_dir))?;
    let client = probed.ok_or_else(|| Failure::runtime("no daemon was called"))?;
    // Stdin unbuffered: `io::stdin()` reads through a process-wide buffer
    // that is never wiped, so entropy read that way could stay in it after
    // the submit. Reading a duplicate of the descriptor instead, only
    // `submit`'s wiped buffer holds what is read.
    let mut input =
        stdin_unbuffered().map_err(|e| Failure::runtime(format!("cannot read stdin: {e}")))?;
    let summary = client
        .submit(&mut input, SUBMIT_CHUNK)
        .map_err(ClientError::into_failure)?;
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

/// Stdin as a file of its own (a duplicate of descriptor 0), read without
/// any buffer of std's.
fn stdin_unbuffered() -> std::io::Result<File> {
    Ok(File::from(std::io::stdin().as_fd().try_clone_to_owned()?))
}
