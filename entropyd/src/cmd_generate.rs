//! `generate`: random bytes to stdout from a fresh in-process pool.
//!
//! Contract:
//! - The pool is this process's own: sources from `--sources` or the
//!   config store (resolved on this CPU), the configured memory cache, and
//!   no storage cache (a running daemon owns the state directory's; nothing
//!   in the state directory is written or read besides the config store).
//!   A mask with no source but external is refused: nothing feeds this
//!   pool from outside.
//! - Default: an SP 800-90A HMAC_DRBG ([`PoolRng`]) seeded (and reseeded
//!   every 16 MiB) with full-entropy blocks from the pool. With
//!   `--full-entropy`: conditioned blocks only, straight from the pool.
//! - Never hangs: when the sources produce nothing (no sample, no block)
//!   for [`STALL_LIMIT`], it fails with an error naming the sources. It
//!   sleeps a millisecond whenever a poll produced nothing: never a spin.
//! - On a terminal stderr and for at least [`PROGRESS_MIN_BYTES`], a
//!   progress bar is drawn on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::Error;
use entropool::config::Config;
use entropool::rng::{PoolRng, PoolRngConfig};
use entropool::source::{Source, SourceMask};
use zeroize::Zeroizing;

use crate::cli::Context;
use crate::daemon::{self, DaemonPool};
use crate::failure::Failure;
use crate::view;

/// Fail when the sources produced nothing for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Requests at least this large get a progress bar on a terminal.
pub const PROGRESS_MIN_BYTES: u64 = 1024 * 1024;
/// Bytes produced and written per step.
const CHUNK: usize = 64 * 1024;
/// Sleep after a poll that produced nothing.
const NOTHING_SLEEP: Duration = Duration::from_millis(1);

/// Arguments of `generate`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// How many bytes to write.
    #[arg(long, value_name = "N")]
    pub bytes: u64,
    /// Write conditioned full-entropy blocks only (no DRBG): slower.
    #[arg(long)]
    pub full_entropy: bool,
    /// Sources mask 0..=15 for this pool (default: the stored mask).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=15))]
    pub sources: Option<u8>,
}

/// Polls the pool and fails when nothing has come for [`STALL_LIMIT`].
#[derive(Debug)]
struct Harvester {
    last_progress: Instant,
    sources: SourceMask,
}

impl Harvester {
    /// One poll; sleeps a little when it produced nothing.
    fn poll(&mut self, pool: &mut DaemonPool) -> Result<(), Failure> {
        let report = pool
            .poll()
            .map_err(|e| Failure::runtime(format!("the pool failed: {e}")))?;
        let produced = report.blocks > 0
            || report.rdseed_words > 0
            || report.rdrand_words > 0
            || report.interrupt_samples > 0;
        if produced {
            self.last_progress = Instant::now();
            return Ok(());
        }
        if self.last_progress.elapsed() >= STALL_LIMIT {
            return Err(Failure::runtime(format!(
                "no entropy for {} s: the sources {} ({}) produced nothing (see `entropyd status`; try another --sources)",
                STALL_LIMIT.as_secs(),
                self.sources.value(),
                view::mask_names(self.sources.value())
            )));
        }
        std::thread::sleep(NOTHING_SLEEP);
        Ok(())
    }

    /// Polls until the memory cache holds at least `blocks` blocks.
    fn wait_for(&mut self, pool: &mut DaemonPool, blocks: usize) -> Result<(), Failure> {
        // Bounded: every round either polls with progress or sleeps, and
        // `poll` fails after STALL_LIMIT without progress.
        while pool.status().memory_len_blocks < blocks {
            self.poll(pool)?;
        }
        Ok(())
    }
}

/// The progress bar on stderr.
#[derive(Debug)]
struct Progress {
    total: u64,
    shown: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            total,
            shown: total >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn update(&mut self, done: u64) {
        if !self.shown {
            return;
        }
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(200));
        if !due && done < self.total {
            return;
        }
        self.last = Some(Instant::now());
        let pct = view::percent(done, self.total);
        let filled = usize::try_from(pct / 5).unwrap_or(20).min(20);
        eprint!(
            "\r[{}{}] {pct:>3} % {done}/{} bytes",
            "#".repeat(filled),
            ".".repeat(20usize.saturating_sub(filled)),
            self.total
        );
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

fn write_all(out: &mut dyn Write, data: &[u8]) -> Result<(), Failure> {
    out.write_all(data)
        .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}

/// Writes `args.bytes` random bytes to `out`.
///
/// # Errors
/// Invalid input for a mask naming a missing instruction or only external;
/// runtime when the pool cannot start, stalls for [`STALL_LIMIT`], or
/// stdout fails.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    let loaded = ctx
        .open_state()
        .and_then(|s| s.load_config().map_err(Failure::from));
    let mut config = match loaded {
        Ok(c) => c,
        // With --sources the store only gives the memory cache size: an
        // unreadable one (e.g. a root-only state directory) is no reason
        // to fail.
        Err(f) if args.sources.is_some() => {
            eprintln!("entropyd: {f}; using the default tunables");
            Config::DEFAULT
        }
        Err(f) => return Err(f),
    };
    if let Some(s) = args.sources {
        config.sources =
            SourceMask::new(u64::from(s)).map_err(|e| Failure::invalid(e.to_string()))?;
    }
    let resolved = daemon::resolve_sources(config.sources)?;
    if resolved.iter().all(|s| s == Source::External) {
        return Err(Failure::invalid(format!(
            "sources {} ({}): generate runs its own pool, which no feeder reaches; add a local source, e.g. --sources=4 (RDSEED) or --sources=3 (interrupts+RDRAND)",
            resolved.value(),
            view::mask_names(resolved.value())
        )));
    }
    let memory = daemon::leak_slots(config.tunables.memory_cache_size_kib())?;
    let built = daemon::build_pool(config, memory, None)?;
    let mut pool = built.pool;
    let mut harvester = Harvester {
        last_progress: Instant::now(),
        sources: resolved,
    };
    let mut progress = Progress::new(args.bytes);
    let result = if args.full_entropy {
        full_entropy(&mut pool, &mut harvester, &mut progress, args.bytes, out)
    } else {
        drbg(&mut pool, &mut harvester, &mut progress, args.bytes, out)
    };
    progress.finish();
    if let Some(jitter) = built.jitter {
        let _ = jitter.stop();
    }
    result
}

/// Conditioned blocks straight from the pool.
fn full_entropy(
    pool: &mut DaemonPool,
    harvester: &mut Harvester,
    progress: &mut Progress,
    total: u64,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut done = 0u64;
    progress.update(0);
    while done < total {
        let left = usize::try_from(total.saturating_sub(done)).unwrap_or(usize::MAX);
        let have = pool.status().memory_len_blocks.saturating_mul(32);
        let n = left.min(have).min(CHUNK);
        let Some(piece) = buf.get_mut(..n).filter(|p| !p.is_empty()) else {
            harvester.poll(pool)?;
            continue;
        };
        pool.fill(piece)
            .map_err(|e| Failure::runtime(format!("the pool failed: {e}")))?;
        write_all(out, piece)?;
        zeroize::Zeroize::zeroize(piece);
        done = done.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        progress.update(done);
    }
    Ok(())
}

/// The DRBG over the pool.
fn drbg(
    pool: &mut DaemonPool,
    harvester: &mut Harvester,
    progress: &mut Progress,
    total: u64,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    // Instantiation takes a 32-byte seed and a 16-byte nonce: two blocks.
    harvester.wait_for(pool, 2)?;
    let mut rng = PoolRng::new(&mut *pool, PoolRngConfig::DEFAULT)
        .map_err(|e| Failure::runtime(format!("cannot seed the generator: {e}")))?;
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut done = 0u64;
    progress.update(0);
    while done < total {
        let left = usize::try_from(total.saturating_sub(done)).unwrap_or(usize::MAX);
        let Some(piece) = buf.get_mut(..left.min(CHUNK)) else {
            break;
        };
        match rng.fill(piece) {
            Ok(()) => {
                write_all(out, piece)?;
                zeroize::Zeroize::zeroize(piece);
                done = done.saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
                progress.update(done);
            }
            Err(Error::DrbgReseedUnavailable) => {
                // A reseed is due: one block is enough.
                harvester.wait_for(rng.source_mut(), 1)?;
            }
            Err(e) => return Err(Failure::runtime(format!("the generator failed: {e}"))),
        }
    }
    Ok(())
}
