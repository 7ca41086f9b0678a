//! `reset-source external`: bring back an external source that the pool
//! disabled (repeated health-test failures, or a piece that tripped the
//! screen for patterned data).
//!
//! Contract:
//! - A running daemon notices a disabled external source within
//!   [`CHECK_EVERY`], writes the audit line
//!   `entropyd: audit event=source-disabled source=external reason=R`
//!   (through [`log`]; `R` is `health`, `screen-<test>` or `carried-over`),
//!   and records it in the state directory as [`MARKER`] (one line,
//!   `reason=R`, mode 0600). From then on `GET external-pool` says
//!   `DISABLED` and adds take nothing.
//! - While the marker exists the source stays disabled, across restarts:
//!   `run` disables it at start (audit reason `carried-over`). The only way
//!   back is this subcommand, which removes the marker; a running daemon
//!   then re-enables the source within [`CHECK_EVERY`] (its health tests
//!   restart with the start-up test) and writes
//!   `entropyd: audit event=source-reset source=external`. No automatic
//!   rule re-enables it.
//! - `reset-source` works whether or not a daemon runs, and changes nothing
//!   but the marker. With no marker it says so and exits 0.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::ExternalDisable;

use crate::cli::Context;
use crate::daemon::{DaemonBackend, DaemonPool, log};
use crate::failure::Failure;

/// The marker's file name in the state directory.
pub const MARKER: &str = "external.disabled";
/// How often the running daemon looks at the source and the marker.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// `reset-source` arguments.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The source to re-enable: `external` (the only one that stays
    /// disabled; hardware sources are re-tested at every start).
    #[arg(value_name = "SOURCE")]
    pub source: String,
}

/// The marker's path in `state_dir`.
#[must_use]
pub fn marker_path(state_dir: &Path) -> PathBuf {
    state_dir.join(MARKER)
}

/// Runs `reset-source`.
///
/// # Errors
/// An invalid-input [`Failure`] for a source other than `external`; a
/// runtime one when the marker cannot be removed.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    if args.source != "external" {
        return Err(Failure::invalid(format!(
            "reset-source: unknown source {:?}; only `external` stays disabled (hardware sources are re-tested at every start)",
            args.source
        )));
    }
    let path = marker_path(&ctx.state_dir);
    let message = match fs::remove_file(&path) {
        Ok(()) => {
            "external source reset: a running entropyd re-enables it within a second; the next start does too"
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => "external source is not disabled",
        Err(e) => {
            return Err(Failure::runtime(format!(
                "cannot remove {}: {e}",
                path.display()
            )));
        }
    };
    writeln!(out, "{message}").map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}

/// The daemon's side: the audit line, the marker, the reset.
#[derive(Debug)]
pub struct DisabledWatch {
    marker: PathBuf,
    /// The marker was written (or found) for the current disable.
    recorded: bool,
    /// The audit line was written for the current disable.
    audited: bool,
    last_check: Instant,
}

impl DisabledWatch {
    /// At start, before the pool serves anything: a marker left by an
    /// earlier run disables the external source again.
    pub fn start(state_dir: &Path, pool: &mut DaemonPool) -> DisabledWatch {
        let marker = marker_path(state_dir);
        let recorded = marker.exists();
        if recorded {
            pool.disable_external();
            audit_disabled(ExternalDisable::Carried, &marker);
        }
        DisabledWatch {
            marker,
            recorded,
            audited: recorded,
            last_check: Instant::now(),
        }
    }

    /// Called from the run loop; does its work at most every
    /// [`CHECK_EVERY`].
    pub fn check(&mut self, backend: &DaemonBackend) {
        if self.last_check.elapsed() < CHECK_EVERY {
            return;
        }
        self.last_check = Instant::now();
        self.step(backend);
    }

    /// One check, now.
    fn step(&mut self, backend: &DaemonBackend) {
        let disabled = backend.lock().external_disabled();
        match (disabled, self.recorded) {
            (Some(why), false) => {
                if !self.audited {
                    audit_disabled(why, &self.marker);
                    self.audited = true;
                }
                match write_marker(&self.marker, why) {
                    Ok(()) => self.recorded = true,
                    Err(e) => log(format_args!(
                        "cannot record the disabled external source in {} (retrying): {e}",
                        self.marker.display()
                    )),
                }
            }
            (Some(_), true) if !self.marker.exists() => {
                backend.lock().reset_source(entropool::Source::External);
                self.recorded = false;
                self.audited = false;
                log("audit event=source-reset source=external");
            }
            (None, true) => {
                // Reset some other way (none today): drop a stale marker.
                let _ = fs::remove_file(&self.marker);
                self.recorded = false;
                self.audited = false;
            }
            _ => {}
        }
    }
}

fn audit_disabled(why: ExternalDisable, marker: &Path) {
    log(format_args!(
        "audit event=source-disabled source=external reason={}",
        why.reason()
    ));
    log(format_args!(
        "the external source is disabled: adds take nothing until `entropyd reset-source external` (marker {})",
        marker.display()
    ));
}

fn write_marker(path: &Path, why: ExternalDisable) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    writeln!(f, "reason={}", why.reason())?;
    f.sync_all()
}
