//! `samples`: raw noise samples for assessment with SP 800-90B tools.
//!
//! Contract: `--source=interrupts` runs the interrupt source's collector,
//! the CPU execution-jitter collector (`entropool::hw::cpu_jitter`), on this
//! thread and writes its raw-sample export, the low 8 bits of each delta
//! between consecutive timestamps, one byte per sample, exactly `--count`
//! bytes, to stdout (the format `ea_non_iid` reads with 8 bits per symbol).
//! These are the samples the daemon's interrupt source credits. It never
//! sleeps and never waits: a million samples take well under a second on
//! an idle x86_64 host. RDRAND and RDSEED deliver conditioned output, not
//! raw noise, and external entropy is whatever the feeder sends: they have
//! no samples to give. On a terminal, stderr shows a progress line.

use std::io::Write;

use clap::Args as ClapArgs;
use entropool::{CPU_JITTER_SCRATCH, CpuJitter, RealCpu, Source};

use crate::cli::Context;
use crate::failure::Failure;
use crate::progress::Progress;

/// Samples collected and written per round.
pub const CHUNK: usize = 64 * 1024;

/// Arguments of `samples`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The noise source: `interrupts` (the only one with raw samples).
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// How many samples (bytes) to write.
    #[arg(long, value_name = "N")]
    pub count: u64,
}

/// Checks that `name` is a source with raw samples (`interrupts`).
///
/// # Errors
/// An invalid-input [`Failure`] naming the value and what is accepted.
pub fn check_source(name: &str) -> Result<(), Failure> {
    let source = Source::ALL
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name));
    match source {
        Some(Source::Interrupts) => Ok(()),
        Some(other) => Err(Failure::invalid(format!(
            "--source={name}: {} has no raw samples to assess (RDRAND and RDSEED output is already conditioned; external entropy is assessed where it is made); use --source=interrupts",
            other.name()
        ))),
        None => Err(Failure::invalid(format!(
            "--source={name}: unknown source; use --source=interrupts"
        ))),
    }
}

/// Collects `count` raw interrupt-source samples in chunks of at most
/// [`CHUNK`], handing each chunk to `take` and the running total to
/// `progress`.
///
/// # Errors
/// A runtime [`Failure`] when the collector cannot start, or `take`'s.
pub fn collect(
    count: u64,
    progress: &Progress,
    mut take: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut scratch = vec![0u8; CPU_JITTER_SCRATCH];
    let mut collector = CpuJitter::new(RealCpu::new(), &mut scratch)
        .map_err(|e| Failure::runtime(format!("CPU jitter collector: {e}")))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < count {
        let n = usize::try_from(count - done).map_or(CHUNK, |left| left.min(CHUNK));
        let chunk = buf.get_mut(..n).unwrap_or_default();
        collector.fill_samples(chunk);
        take(chunk)?;
        done = done.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        progress.set(done);
    }
    Ok(())
}

/// Writes `args.count` samples of `args.source` to `out`.
///
/// # Errors
/// Invalid input for a source other than `interrupts`; runtime when the
/// collector cannot start or stdout fails.
pub fn run(args: &Args, _ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    check_source(&args.source)?;
    let progress = Progress::new("samples", args.count, "samples", true);
    let result = collect(args.count, &progress, |chunk| {
        out.write_all(chunk)
            .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
    });
    progress.finish();
    result
}
