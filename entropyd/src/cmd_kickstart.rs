//! `kickstart FILE`: validate a kickstart file's `entropy` command and stage
//! its seed for the first start.
//!
//! Contract: the file is checked first (a missing or invalid file is
//! reported as such, whatever the state directory holds), then the state
//! directory's freshness: no pool state yet (no staged seed, no storage
//! cache); a config store written by an earlier `set` is allowed and keeps
//! its tunables. A `--data` value that is too small because the base64 was
//! wrapped over several lines (as `base64` writes it by default) gets a
//! hint to write it on one line (`base64 -w0`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;
use entropool::KickstartReason;
use entropool::kickstart::{self, ReadError};

use crate::cli::Context;
use crate::failure::Failure;

/// Arguments of `kickstart`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The kickstart file holding `entropy --sources=N --data=BASE64`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// How far past the `entropy` line the hint looks for wrapped base64.
const WRAP_LOOKAHEAD_BYTES: u64 = 64 * 1024;

/// Whether the line after line `line` (1-based) of `path` is nothing but
/// base64 characters: the rest of a wrapped `--data` value.
fn wrapped_after(path: &Path, line: u32) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let reader = BufReader::new(std::io::Read::take(
        file,
        WRAP_LOOKAHEAD_BYTES.saturating_mul(u64::from(line).saturating_add(1)),
    ));
    let Some(Ok(next)) = reader
        .split(b'\n')
        .nth(usize::try_from(line).unwrap_or(usize::MAX))
    else {
        return false;
    };
    let next = next.strip_suffix(b"\r").unwrap_or(&next);
    !next.is_empty()
        && next
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Validate the file, check the state is fresh, stage the seed, record the
/// sources, and print what was staged.
///
/// # Errors
/// An invalid-input [`Failure`] for an invalid or unreadable file and for a
/// state directory that is not fresh (nothing changed); a runtime one when
/// the state directory cannot be written.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let file = args.file.display();
    let seed = kickstart::read_file(&args.file).map_err(|e: ReadError| {
        let hint = match &e {
            ReadError::Invalid(entropool::Error::Kickstart {
                line,
                reason: KickstartReason::SizeOutOfRange { .. },
            }) if wrapped_after(&args.file, *line) => {
                " (the base64 looks wrapped over several lines: write it on one line, e.g. `base64 -w0 seed.bin`)"
            }
            _ => "",
        };
        Failure::invalid(format!("{file}: {e}{hint}"))
    })?;
    let state = ctx.open_state()?;
    if !state.is_fresh()? {
        return Err(Failure::invalid(format!(
            "{}: {} (a seed is already staged or the daemon has run: there is pool state)",
            state.path().display(),
            entropool::Error::NotFreshInstall
        )));
    }
    state.stage_kickstart(&seed.data, seed.sources)?;
    writeln!(
        out,
        "staged {} bytes of install-time entropy from {file} line {}\nsources: {}",
        seed.data.len(),
        seed.line,
        seed.sources
    )
    .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}
