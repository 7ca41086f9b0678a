//! `generate`: random bytes to stdout from a fresh in-process pool.
//!
//! Contract:
//! - The pool is this process's own: sources from `--sources` or the
//!   config store (resolved on this CPU), the configured memory cache, and
//!   no storage cache (a running daemon owns the state directory's; nothing
//!   in the state directory is written or read besides the config store).
//!   A mask with no source but external is refused: nothing feeds this
//!   pool from outside.
//! - Default: [`PoolRng`] (two SP 800-90A `HMAC_DRBG` lanes) seeded (and
//!   reseeded every 16 MiB) with full-entropy blocks from the pool; it
//!   waits until the memory cache holds what a seed or reseed takes
//!   ([`PoolRng::SEED_LEN`], [`PoolRng::RESEED_LEN`]). With
//!   `--full-entropy`: conditioned blocks only, straight from the pool.
//! - The private pool refills whenever its memory cache is not full (low
//!   watermark 100 %, whatever the store says): it exists only to serve
//!   this run, and a stored watermark of 0 would never refill it.
//! - Never hangs: while it waits for entropy, when the sources produce
//!   nothing (no sample, no block) for [`STALL_LIMIT`], it fails with an
//!   error naming the sources (time spent writing to stdout does not
//!   count). A seed or reseed that keeps failing although the cache holds
//!   what it takes fails the run after [`STALL_LIMIT`] too. Every failed
//!   attempt polls at least once and every retry that found nothing new
//!   sleeps a millisecond: never a spin.
//! - On a terminal stderr, for at least [`PROGRESS_MIN_BYTES`] or once the
//!   run has taken [`PROGRESS_AFTER`], a progress line (count, rate, ETA)
//!   is drawn on stderr; nothing extra otherwise.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::config::Param;
use entropool::{
    BLOCK_LEN, Config, EntropySource, Error, MixerConfig, PoolRng, PoolRngConfig, Source,
    SourceMask,
};
use zeroize::Zeroizing;

use crate::cli::Context;
use crate::daemon::{self, DaemonPool};
use crate::failure::Failure;
use crate::view;

/// Fail when the sources produced nothing for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);
/// Requests at least this large get a progress bar on a terminal.
pub const PROGRESS_MIN_BYTES: u64 = 1024 * 1024;
/// Smaller requests show the progress line once they have taken this long.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(1);
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

/// What `generate` needs from its pool: polls and full-entropy bytes. The
/// daemon's pool implements it; the tests use a slow fake.
trait Feed: EntropySource {
    /// One poll of the sources; `true` when any of them produced anything.
    ///
    /// # Errors
    /// The pool's error.
    fn poll_sources(&mut self) -> Result<bool, Error>;
    /// Full-entropy bytes the memory cache holds now.
    fn available(&mut self) -> usize;
}

impl Feed for DaemonPool {
    fn poll_sources(&mut self) -> Result<bool, Error> {
        let report = self.poll()?;
        Ok(report.blocks > 0
            || report.rdseed_words > 0
            || report.rdrand_words > 0
            || report.interrupt_samples > 0)
    }

    fn available(&mut self) -> usize {
        self.status().memory_len_blocks.saturating_mul(BLOCK_LEN)
    }
}

/// Polls the pool and fails when nothing has come, or the generator could
/// not be (re)seeded, for `stall_limit` ([`STALL_LIMIT`]).
#[derive(Debug)]
struct Harvester {
    last_progress: Instant,
    /// Since when seeding or reseeding has kept failing.
    failing_since: Option<Instant>,
    stall_limit: Duration,
    sources: SourceMask,
}

impl Harvester {
    fn new(sources: SourceMask, stall_limit: Duration) -> Self {
        Harvester {
            last_progress: Instant::now(),
            failing_since: None,
            stall_limit,
            sources,
        }
    }

    /// The error after `stall_limit` without entropy.
    fn stalled(&self, what: &str) -> Failure {
        Failure::runtime(format!(
            "{what} for {} s: the sources {} ({}) did not supply enough entropy (see `entropyd status`; try another --sources)",
            self.stall_limit.as_secs_f32(),
            self.sources.value(),
            view::mask_names(self.sources.value())
        ))
    }

    /// One poll; sleeps a little when it produced nothing.
    fn poll<P: Feed + ?Sized>(&mut self, pool: &mut P) -> Result<(), Failure> {
        let produced = pool
            .poll_sources()
            .map_err(|e| Failure::runtime(format!("the pool failed: {e}")))?;
        if produced {
            self.last_progress = Instant::now();
            return Ok(());
        }
        if self.last_progress.elapsed() >= self.stall_limit {
            return Err(self.stalled("no entropy"));
        }
        std::thread::sleep(NOTHING_SLEEP);
        Ok(())
    }

    /// Polls until the memory cache holds at least `bytes` bytes. The
    /// stall clock starts when the wait does.
    fn wait_for<P: Feed + ?Sized>(&mut self, pool: &mut P, bytes: usize) -> Result<(), Failure> {
        if pool.available() >= bytes {
            return Ok(());
        }
        self.last_progress = Instant::now();
        // Bounded: every round either polls with progress or sleeps, and
        // `poll` fails after `stall_limit` without progress.
        loop {
            self.poll(pool)?;
            if pool.available() >= bytes {
                return Ok(());
            }
        }
    }

    /// A seed or reseed of `bytes` failed with `error`. Short of blocks:
    /// waits for them. With enough cached (the fill failed for another
    /// reason): gives up once that has gone on for `stall_limit`, else
    /// polls once and sleeps, so the retry is never a tight loop.
    fn starved<P: Feed + ?Sized>(
        &mut self,
        pool: &mut P,
        bytes: usize,
        what: &str,
        error: &Error,
    ) -> Result<(), Failure> {
        if pool.available() < bytes {
            return self.wait_for(pool, bytes);
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.stall_limit {
            return Err(self.stalled(&format!("{what} ({error})")));
        }
        pool.poll_sources()
            .map_err(|e| Failure::runtime(format!("the pool failed: {e}")))?;
        std::thread::sleep(NOTHING_SLEEP);
        Ok(())
    }

    /// A seed, reseed or request succeeded.
    fn fed(&mut self) {
        self.failing_since = None;
    }
}

/// The progress line on stderr (indicatif; only on a terminal, and for
/// requests of at least [`PROGRESS_MIN_BYTES`] or once the run has taken
/// [`PROGRESS_AFTER`], e.g. waiting on a slow source).
#[derive(Debug)]
struct Progress {
    total: u64,
    started: Instant,
    line: Option<crate::progress::Progress>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            total,
            started: Instant::now(),
            line: None,
        }
    }

    fn update(&mut self, done: u64) {
        if self.line.is_none()
            && (self.total >= PROGRESS_MIN_BYTES || self.started.elapsed() >= PROGRESS_AFTER)
        {
            self.line = Some(crate::progress::Progress::new(
                "generate", self.total, "bytes", true,
            ));
        }
        if let Some(line) = &self.line {
            line.set(done);
        }
    }

    fn finish(&self) {
        if let Some(line) = &self.line {
            line.finish();
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
    let loaded = ctx.open_state().and_then(|s| {
        let config = s.load_config().map_err(Failure::from)?;
        let (mixer, _) = daemon::mixer_config(&s)?;
        Ok((config, mixer))
    });
    let (mut config, mixer) = match loaded {
        Ok(c) => c,
        // With --sources the store only gives the memory cache size and
        // the interrupt credit: an unreadable one (e.g. a root-only state
        // directory) is no reason to fail.
        Err(f) if args.sources.is_some() => {
            eprintln!("entropyd: {f}; using the default tunables and credits");
            (Config::DEFAULT, MixerConfig::DEFAULT)
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
    config
        .tunables
        .set(
            Param::MemoryCacheLowWatermark,
            Param::MemoryCacheLowWatermark.max_value(),
        )
        .map_err(|e| Failure::runtime(format!("cannot set the watermark: {e}")))?;
    let memory = daemon::leak_slots(config.tunables.memory_cache_size_kib())?;
    let built = daemon::build_pool_with(config, memory, None, mixer)?;
    let mut pool = built.pool;
    let mut harvester = Harvester::new(resolved, STALL_LIMIT);
    let mut progress = Progress::new(args.bytes);
    let result = if args.full_entropy {
        full_entropy(&mut pool, &mut harvester, &mut progress, args.bytes, out)
    } else {
        let config = PoolRngConfig::DEFAULT;
        drbg(
            &mut pool,
            config,
            &mut harvester,
            &mut progress,
            args.bytes,
            out,
        )
    };
    progress.finish();
    if let Some(jitter) = built.jitter {
        let _ = jitter.stop();
    }
    result
}

/// Conditioned blocks straight from the pool.
fn full_entropy<P: Feed>(
    pool: &mut P,
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
        let n = left.min(pool.available()).min(CHUNK);
        let Some(piece) = buf.get_mut(..n).filter(|p| !p.is_empty()) else {
            harvester.wait_for(pool, 1)?;
            continue;
        };
        pool.fill_full_entropy(piece)
            .map_err(|e| Failure::runtime(format!("the pool failed: {e}")))?;
        write_all(out, piece)?;
        zeroize::Zeroize::zeroize(piece);
        done = done.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        progress.update(done);
    }
    Ok(())
}

/// The DRBG over the pool.
fn drbg<P: Feed>(
    pool: &mut P,
    config: PoolRngConfig,
    harvester: &mut Harvester,
    progress: &mut Progress,
    total: u64,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    // Instantiation takes 48 bytes per lane in one read.
    let seed_len = PoolRng::<&mut P>::SEED_LEN;
    harvester.wait_for(pool, seed_len)?;
    let mut rng = loop {
        let error = match PoolRng::new(&mut *pool, config) {
            Ok(rng) => break rng,
            Err(e @ (Error::Starving | Error::ExternalLost)) => e,
            Err(e) => return Err(Failure::runtime(format!("cannot seed the generator: {e}"))),
        };
        harvester.starved(pool, seed_len, "cannot seed the generator", &error)?;
    };
    harvester.fed();
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
                harvester.fed();
                write_all(out, piece)?;
                zeroize::Zeroize::zeroize(piece);
                done = done.saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
                progress.update(done);
            }
            Err(e @ Error::DrbgReseedUnavailable) => {
                // A reseed is due: 32 bytes per lane in one read.
                let source: &mut P = rng.source_mut();
                harvester.starved(
                    source,
                    PoolRng::<&mut P>::RESEED_LEN,
                    "cannot reseed the generator",
                    &e,
                )?;
            }
            Err(e) => return Err(Failure::runtime(format!("the generator failed: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow pool: each poll produces `per_poll` 32-byte blocks (one by
    /// default, none when silent) after `poll_delay`; fills are all or
    /// nothing by whole blocks, as the pool's.
    struct SlowFeed {
        blocks: usize,
        next: u8,
        polls: usize,
        per_poll: usize,
        poll_delay: Duration,
        /// Fill calls so far, failed or not.
        attempts: usize,
        /// Fills after this many successful ones fail with `ExternalLost`,
        /// even when blocks are there.
        fills_allowed: usize,
        /// Every second fill call fails with `ExternalLost`.
        flaky: bool,
        /// This many polls produce nothing before the others do.
        quiet_first: usize,
    }

    impl SlowFeed {
        fn new(blocks: usize) -> Self {
            SlowFeed {
                blocks,
                next: 0,
                polls: 0,
                per_poll: 1,
                poll_delay: Duration::ZERO,
                attempts: 0,
                fills_allowed: usize::MAX,
                flaky: false,
                quiet_first: 0,
            }
        }
    }

    impl EntropySource for SlowFeed {
        fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
            let need = out.len().div_ceil(BLOCK_LEN);
            self.attempts += 1;
            if self.fills_allowed == 0 || (self.flaky && self.attempts % 2 == 0) {
                return Err(Error::ExternalLost);
            }
            if need > self.blocks {
                return Err(Error::Starving);
            }
            self.blocks -= need;
            self.fills_allowed -= 1;
            for b in out.iter_mut() {
                *b = self.next;
                self.next = self.next.wrapping_add(1);
            }
            Ok(())
        }
    }

    impl Feed for SlowFeed {
        fn poll_sources(&mut self) -> Result<bool, Error> {
            self.polls += 1;
            std::thread::sleep(self.poll_delay);
            if self.polls <= self.quiet_first {
                return Ok(false);
            }
            self.blocks += self.per_poll;
            Ok(self.per_poll > 0)
        }

        fn available(&mut self) -> usize {
            self.blocks * BLOCK_LEN
        }
    }

    fn harvester(limit: Duration) -> Harvester {
        Harvester::new(SourceMask::new(1).unwrap(), limit)
    }

    /// `drbg` for `total` bytes, stall limit `limit`: its result and output.
    fn run_drbg(
        pool: &mut SlowFeed,
        config: PoolRngConfig,
        limit: Duration,
        total: u64,
    ) -> (Result<(), Failure>, Vec<u8>) {
        let mut out = Vec::new();
        let mut progress = Progress::new(0);
        let result = drbg(
            pool,
            config,
            &mut harvester(limit),
            &mut progress,
            total,
            &mut out,
        );
        (result, out)
    }

    /// `full_entropy` for `total` bytes with harvester `h`.
    fn run_full(
        pool: &mut SlowFeed,
        h: &mut Harvester,
        total: u64,
    ) -> (Result<(), Failure>, Vec<u8>) {
        let mut out = Vec::new();
        let result = full_entropy(pool, h, &mut Progress::new(0), total, &mut out);
        (result, out)
    }

    fn small_reseeds() -> PoolRngConfig {
        PoolRngConfig {
            reseed_after_bytes: 4096,
            ..PoolRngConfig::DEFAULT
        }
    }

    #[test]
    fn drbg_waits_for_a_whole_seed_and_every_reseed_on_a_slow_pool() {
        let config = small_reseeds();
        let mut pool = SlowFeed::new(0);
        // Six requests of up to CHUNK bytes: each after the first is past
        // `reseed_after_bytes` and reseeds first.
        let total = 5 * CHUNK as u64 + 100;
        let (result, out) = run_drbg(&mut pool, config, Duration::from_secs(10), total);
        result.unwrap();
        assert_eq!(out.len() as u64, total);
        // One seed (3 blocks with two lanes) and five reseeds (2 each), a
        // block per poll: the generator polled for what it needed and no
        // more.
        let seed = PoolRng::<&mut SlowFeed>::SEED_LEN / BLOCK_LEN;
        let reseed = PoolRng::<&mut SlowFeed>::RESEED_LEN / BLOCK_LEN;
        assert_eq!((seed, reseed), (3, 2));
        assert_eq!(pool.polls, seed + 5 * reseed);
        assert_eq!(pool.blocks, 0);
    }

    #[test]
    fn drbg_seeds_with_exactly_the_seed_in_the_cache() {
        // 64 bytes from a pool that holds just the three seed blocks: the
        // earlier code waited for two blocks and failed "starving".
        let mut pool = SlowFeed::new(3);
        pool.per_poll = 0;
        let (result, out) = run_drbg(
            &mut pool,
            PoolRngConfig::DEFAULT,
            Duration::from_secs(10),
            64,
        );
        result.unwrap();
        assert_eq!((out.len(), pool.polls, pool.blocks), (64, 0, 0));
    }

    #[test]
    fn drbg_gives_up_when_reseeds_keep_failing_with_blocks_in_the_cache() {
        // The seed works; then polls keep producing and the cache reports
        // blocks, but every fill fails: the stall limit must end it (the
        // earlier code retried without polling, forever).
        let mut pool = SlowFeed::new(0);
        pool.fills_allowed = 1;
        let (result, out) = run_drbg(
            &mut pool,
            small_reseeds(),
            Duration::from_millis(50),
            2 * CHUNK as u64,
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains("cannot reseed the generator"), "{err}");
        assert!(err.contains("E0505"), "{err}");
        // Every failed attempt polled (the last one gave up instead).
        assert!(pool.attempts > 5, "{} attempts", pool.attempts);
        assert!(
            pool.polls + 1 >= pool.attempts,
            "{} polls for {} attempts",
            pool.polls,
            pool.attempts
        );
        assert_eq!(out.len(), CHUNK, "the first request was served");
    }

    #[test]
    fn occasional_failed_reseeds_never_add_up_to_the_stall_limit() {
        // Every second fill fails although the cache holds enough; each
        // success must restart the failure clock, or the failures of many
        // reseeds, each followed by a success, would add up past the limit.
        let mut pool = SlowFeed::new(0);
        pool.flaky = true;
        pool.per_poll = 4;
        pool.poll_delay = Duration::from_millis(5);
        let total = 20 * CHUNK as u64;
        let started = Instant::now();
        let (result, out) = run_drbg(&mut pool, small_reseeds(), Duration::from_millis(30), total);
        result.unwrap();
        assert_eq!(out.len() as u64, total);
        assert!(started.elapsed() > Duration::from_millis(30));
        // The seed, then 19 reseeds of two attempts each.
        assert_eq!(pool.attempts, 1 + 2 * 19);
    }

    #[test]
    fn drbg_gives_up_when_seeding_keeps_failing() {
        let mut pool = SlowFeed::new(0);
        pool.fills_allowed = 0;
        let (result, out) = run_drbg(
            &mut pool,
            PoolRngConfig::DEFAULT,
            Duration::from_millis(50),
            1,
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains("cannot seed the generator"), "{err}");
        assert!(err.contains("E0402"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn drbg_and_full_entropy_fail_after_the_stall_limit_on_a_silent_pool() {
        for full in [false, true] {
            let mut pool = SlowFeed::new(0);
            pool.per_poll = 0;
            let limit = Duration::from_millis(20);
            let (result, out) = if full {
                run_full(&mut pool, &mut harvester(limit), 10)
            } else {
                run_drbg(&mut pool, PoolRngConfig::DEFAULT, limit, 10)
            };
            let err = result.unwrap_err().to_string();
            assert!(err.contains("no entropy"), "{err}");
            assert!(err.contains("interrupts"), "names the sources: {err}");
            assert!(pool.polls >= 2 && out.is_empty());
        }
    }

    #[test]
    fn full_entropy_takes_blocks_as_they_come() {
        let mut pool = SlowFeed::new(0);
        let (result, out) = run_full(&mut pool, &mut harvester(Duration::from_secs(10)), 100);
        result.unwrap();
        let want: Vec<u8> = (0..100).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn time_spent_writing_does_not_count_as_a_stall() {
        // The last progress was long ago (a slow stdout), and the next
        // poll finds nothing: the wait starts its own clock instead of
        // failing at once.
        let mut pool = SlowFeed::new(0);
        pool.quiet_first = 1;
        let mut h = harvester(Duration::from_millis(200));
        h.last_progress = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        let (result, out) = run_full(&mut pool, &mut h, 40);
        result.unwrap();
        assert_eq!((out.len(), pool.polls), (40, 3));
    }
}
