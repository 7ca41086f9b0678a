//! `kickstart FILE`: validate a kickstart file's `entropy` command and stage
//! its seed for the first start.

use std::io::Write;
use std::path::PathBuf;

use clap::Args as ClapArgs;
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

/// Check the state is fresh, validate the file, stage the seed, record the
/// sources, and print what was staged.
///
/// # Errors
/// An invalid-input [`Failure`] for an invalid or unreadable file and for a
/// state directory that is not fresh (nothing changed); a runtime one when
/// the state directory cannot be written.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let state = ctx.open_state()?;
    if !state.is_fresh()? {
        return Err(Failure::invalid(format!(
            "{}: {}",
            state.path().display(),
            entropool::Error::NotFreshInstall
        )));
    }
    let file = args.file.display();
    let seed = kickstart::read_file(&args.file)
        .map_err(|e: ReadError| Failure::invalid(format!("{file}: {e}")))?;
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
