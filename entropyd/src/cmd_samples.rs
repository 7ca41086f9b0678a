//! `samples`: raw noise samples for assessment with NIST SP 800-90B tools.
//!
//! Contract: `--source=interrupts` runs the daemon's timer-jitter thread
//! (the same interval, [`JITTER_DEFAULT_INTERVAL`]) into an interrupt ring
//! and writes the low 8 bits of each raw delta between consecutive wake-up
//! timestamps, one byte per sample, exactly `--count` bytes, to stdout
//! (the format `ea_non_iid` reads with 8 bits per symbol). The ring is
//! drained every [`DRAIN_EVERY`], far sooner than it fills; if it ever
//! overflowed, the deltas would span missed ticks, so the command then
//! fails rather than emit unrepresentative samples. RDRAND and RDSEED
//! deliver conditioned output, not raw noise, and external entropy is
//! whatever the feeder sends: they have no samples to give. It never
//! hangs: no sample for [`STALL_LIMIT`] is an error.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::hw::RealCpu;
use entropool::hw::jitter::{JITTER_DEFAULT_INTERVAL, JitterThread};
use entropool::interrupt::InterruptRing;
use entropool::source::Source;

use crate::cli::Context;
use crate::failure::Failure;

/// How often the ring is drained.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Fail when no sample arrived for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Ring capacity in timestamps (8 s of ticks).
const RING_CAPACITY: usize = 8192;

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

/// Writes `args.count` samples of `args.source` to `out`.
///
/// # Errors
/// Invalid input for a source other than `interrupts`; runtime when the
/// jitter thread cannot start, stalls, drops samples, or stdout fails.
pub fn run(args: &Args, _ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let source = Source::ALL
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(&args.source));
    match source {
        Some(Source::Interrupts) => {}
        Some(other) => {
            return Err(Failure::invalid(format!(
                "--source={}: {} has no raw samples to assess (RDRAND and RDSEED output is already conditioned; external entropy is assessed where it is made); use --source=interrupts",
                args.source,
                other.name()
            )));
        }
        None => {
            return Err(Failure::invalid(format!(
                "--source={}: unknown source; use --source=interrupts",
                args.source
            )));
        }
    }
    let (mut recorder, mut drain) = InterruptRing::new_shared(RING_CAPACITY)
        .map_err(|e| Failure::runtime(format!("interrupt ring: {e}")))?;
    let jitter = JitterThread::spawn(RealCpu::new(), JITTER_DEFAULT_INTERVAL, move |ts| {
        let _ = recorder.record(ts);
    })
    .map_err(|e| Failure::runtime(format!("timer-jitter thread: {e}")))?;
    let mut deltas = vec![0u64; RING_CAPACITY];
    let mut bytes = Vec::with_capacity(RING_CAPACITY);
    let mut written = 0u64;
    let mut last_sample = Instant::now();
    let result = loop {
        if written >= args.count {
            break Ok(());
        }
        std::thread::sleep(DRAIN_EVERY);
        if drain.counters().dropped() > 0 {
            break Err(Failure::runtime(
                "the interrupt ring overflowed (the machine is too loaded to drain it); samples would span missed ticks",
            ));
        }
        let n = drain.drain(&mut deltas);
        if n == 0 {
            if last_sample.elapsed() >= STALL_LIMIT {
                break Err(Failure::runtime(format!(
                    "no timer-jitter sample for {} s",
                    STALL_LIMIT.as_secs()
                )));
            }
            continue;
        }
        last_sample = Instant::now();
        let want = usize::try_from(args.count.saturating_sub(written)).unwrap_or(usize::MAX);
        bytes.clear();
        // The low 8 bits of each delta: truncation is the point.
        bytes.extend(deltas.iter().take(n.min(want)).map(|d| d.to_le_bytes()[0]));
        if let Err(e) = out.write_all(&bytes) {
            break Err(Failure::runtime(format!("cannot write to stdout: {e}")));
        }
        written = written.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    };
    let _ = jitter.stop();
    result
}
