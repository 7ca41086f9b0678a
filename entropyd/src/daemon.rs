//! The daemon's pool: building an entropool [`Pool`] from the config store
//! and the OS, the [`PoolBackend`] the API serves from it, the status
//! snapshot, and the daemon's log lines.
//!
//! Contract:
//! - [`build_pool`] resolves the sources mask against the real CPU (a mask
//!   naming a missing instruction is an error naming it), starts the
//!   CPU execution-jitter collector thread feeding a shared interrupt ring
//!   when the mask includes interrupts (credited as [`mixer_config`] says:
//!   the assessed credit from the state directory, else the default), keys the conditioner with 32 bytes from the OS
//!   (`/dev/urandom`; the key is wiped after use) and opens the pool over
//!   the given memory slots and storage medium.
//! - [`DaemonBackend`] wraps the pool in one `Mutex`, and no storage I/O
//!   of the steady state happens while it is held: the pool defers its
//!   storage writes ([`Pool::defer_storage_writes`]), so a poll or an add
//!   only sets aside the blocks the storage cache should get (at most 16);
//!   [`DaemonBackend::spill`] takes them with the store under the lock,
//!   writes them and flushes once *without* the lock ([`spill_outside_lock`]),
//!   then hands the store back under the lock. The run loop calls it once
//!   per poll: one `fsync` per poll, not one per block or per add, and API
//!   readers never wait for a disk. A block is the pool's, the job's or
//!   the store's, one at a time: a crash mid-write loses the job's blocks
//!   and replays none. What still does I/O under the lock: the start-up
//!   load of stored blocks (a few batches per poll), a take from storage
//!   when the memory cache is empty, the install-time seed, a
//!   storage-cache-size change and the shutdown save.
//! - An add takes at most
//!   the room there is when it starts (capacity - currently_available),
//!   absorbed in pieces of [`ADD_PIECE`] bytes, each under one hold of the
//!   lock, where [`Pool::submit`] checks the room and takes at most that
//!   much in one step: concurrent adds never exceed the capacity together,
//!   and a read waits for one piece at most. The first piece not taken
//!   whole ends the add. No method waits for entropy.
//! - [`DaemonBackend::external_pool`] advertises the room as
//!   [`Pool::external_room`] (what fills the memory cache: 40 bytes a
//!   block at 8 bits/byte, plus the health tests' start-up window), capped
//!   at the capacity: `currently_available` is `capacity - room`, so a
//!   feeder that sends `capacity - currently_available` fills the cache in
//!   at most three adds, and in one when the room fits the capacity.
//! - [`snapshot`] maps the pool's status to the API's [`StatusSnapshot`].
//! - [`ForwardCounters`] count what the forwarder gave the kernel or the
//!   sink (in total, at start, from storage, when last); the snapshot
//!   shows them.
//! - [`log`] writes one line to stderr: an RFC 3339 UTC timestamp, then the
//!   message; it clears a live status line first when one is shown.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use entropool::Error;
use entropool::assess::{AssessedCredit, interrupts_config};
use entropool::storage::LoadReport;
use entropool::store::StateDir;
use entropool::{
    BlockSlot, Clock, Config, Cpu, CpuJitterThread, FileStorage, InterruptRing, MixerConfig, Pool,
    PoolParts, PoolStatus, RealCpu, Source, SourceMask, Storage, StorageMove, SystemClock,
    blocks_for_kib,
};
use zeroize::Zeroizing;

use crate::backend::{
    ExternalPoolInfo, ExternalStatus, MemoryCacheStatus, OutputStatus, PoolBackend, SourceStatus,
    StatusSnapshot, StorageCacheStatus,
};
use crate::failure::Failure;

/// The pool the daemon and `generate` run.
pub type DaemonPool = Pool<'static, RealCpu, SystemClock, FileStorage>;

/// Timestamps the interrupt ring holds (a few milliseconds of the CPU
/// jitter collector; it parks while the ring is full).
pub const INTERRUPT_RING_CAPACITY: usize = 8192;

/// Bytes of one add absorbed under one hold of the pool lock.
pub const ADD_PIECE: usize = 64 * 1024;

/// The OS device the conditioner key is read from.
pub const KEY_DEVICE: &str = "/dev/urandom";

/// Whether a live status line is on the terminal (log lines clear it
/// first).
static LIVE_LINE: AtomicBool = AtomicBool::new(false);

/// Marks whether a live status line is shown on stderr.
pub fn set_live_line(shown: bool) {
    LIVE_LINE.store(shown, Ordering::Relaxed);
}

/// Writes `message` to stderr as one timestamped log line.
pub fn log(message: impl Display) {
    let clear = if LIVE_LINE.load(Ordering::Relaxed) {
        "\r\x1b[K"
    } else {
        ""
    };
    let stderr = io::stderr();
    let mut err = stderr.lock();
    let _ = writeln!(err, "{clear}{} entropyd: {message}", utc_now());
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_text(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic
/// Gregorian calendar; H. Hinnant's `civil_from_days`).
#[must_use]
pub fn utc_text(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem / 60) % 60, rem % 60);
    // Shift the epoch to 0000-03-01; all values stay non-negative.
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(u64::from(month <= 2));
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// 32 bytes from [`KEY_DEVICE`] for the conditioner key.
///
/// # Errors
/// A runtime [`Failure`] when the device cannot be read.
pub fn os_key() -> Result<Zeroizing<[u8; 32]>, Failure> {
    let mut key = Zeroizing::new([0u8; 32]);
    File::open(KEY_DEVICE)
        .and_then(|mut f| f.read_exact(key.as_mut()))
        .map_err(|e| {
            Failure::runtime(format!(
                "cannot read the conditioner key from {KEY_DEVICE}: {e}"
            ))
        })?;
    Ok(key)
}

/// `kib` KiB of memory-cache slots that live for the rest of the process
/// (allocated once; a daemon keeps its pool until it exits).
///
/// # Errors
/// A runtime [`Failure`] when the size overflows.
pub fn leak_slots(kib: u32) -> Result<&'static mut [BlockSlot], Failure> {
    let blocks = blocks_for_kib(u64::from(kib))
        .ok_or_else(|| Failure::runtime(format!("a memory cache of {kib} KiB is too large")))?;
    let slots: Vec<BlockSlot> = std::iter::repeat_with(BlockSlot::default)
        .take(blocks)
        .collect();
    Ok(Box::leak(slots.into_boxed_slice()))
}

/// The sources `config` resolves to on this CPU.
///
/// # Errors
/// An invalid-input [`Failure`] naming the missing hardware source.
pub fn resolve_sources(sources: SourceMask) -> Result<SourceMask, Failure> {
    sources
        .resolve(RealCpu::new().features())
        .map_err(|e| Failure::invalid(format!("sources {}: {e}", sources.value())))
}

/// A pool and what runs beside it.
#[derive(Debug)]
pub struct BuiltPool {
    /// The pool.
    pub pool: DaemonPool,
    /// The CPU-jitter collector thread feeding the interrupt ring (when
    /// the sources include interrupts); stop it before exiting.
    pub jitter: Option<CpuJitterThread>,
    /// What opening the storage cache found, when there is one.
    pub load: Option<LoadReport>,
}

/// Builds the pool (see the module documentation).
///
/// # Errors
/// An invalid-input [`Failure`] for a mask naming a missing instruction; a
/// runtime one when the key cannot be read, the jitter thread cannot start
/// or the pool cannot be built (the driver self-tests, the storage cache).
pub fn build_pool(
    config: Config,
    memory: &'static mut [BlockSlot],
    storage: Option<FileStorage>,
) -> Result<BuiltPool, Failure> {
    build_pool_with(config, memory, storage, MixerConfig::DEFAULT)
}

/// The mixer configuration `run` and `generate` use: the interrupt credit
/// `entropyd assess` recorded in `state` (with health cutoffs from it),
/// else the defaults; and that record.
///
/// # Errors
/// A runtime [`Failure`] naming the record when it is unreadable or
/// corrupt (never silently ignored).
pub fn mixer_config(state: &StateDir) -> Result<(MixerConfig, Option<AssessedCredit>), Failure> {
    let mut mixer = MixerConfig::DEFAULT;
    let record = state.load_credit()?;
    if let Some(r) = record {
        let cfg = interrupts_config(r.credit)
            .and_then(|c| mixer.set(Source::Interrupts, c))
            .map_err(|e| Failure::runtime(format!("assessed credit: {e}")));
        cfg?;
    }
    Ok((mixer, record))
}

/// [`build_pool`] with the mixer configuration `mixer` (see
/// [`mixer_config`]).
///
/// # Errors
/// As [`build_pool`].
pub fn build_pool_with(
    config: Config,
    memory: &'static mut [BlockSlot],
    storage: Option<FileStorage>,
    mixer: MixerConfig,
) -> Result<BuiltPool, Failure> {
    let resolved = resolve_sources(config.sources)?;
    let key = os_key()?;
    let (interrupts, jitter) = if resolved.contains(Source::Interrupts) {
        let (mut recorder, drain) = InterruptRing::new_shared(INTERRUPT_RING_CAPACITY)
            .map_err(|e| Failure::runtime(format!("interrupt ring: {e}")))?;
        let jitter = CpuJitterThread::spawn(RealCpu::new(), move |ts| {
            // A full ring refuses the timestamp: the collector parks.
            recorder.record(ts).is_ok()
        })
        .map_err(|e| Failure::runtime(format!("CPU jitter thread: {e}")))?;
        (Some(drain), Some(jitter))
    } else {
        (None, None)
    };
    let parts = PoolParts {
        config: Config {
            sources: resolved,
            ..config
        },
        cpu: RealCpu::new(),
        clock: SystemClock::new(),
        memory,
        storage,
        interrupts,
        mixer,
        key: *key,
        storage_key: *FileStorage::start_key()
            .map_err(|e| Failure::runtime(format!("cannot make the storage start key: {e}")))?,
    };
    let (pool, load) =
        Pool::new(parts).map_err(|e| Failure::runtime(format!("cannot start the pool: {e}")))?;
    Ok(BuiltPool { pool, jitter, load })
}

/// Blocks at or above which the memory cache is not below its low
/// watermark: `ceil(percent * capacity / 100)`.
#[must_use]
pub fn watermark_blocks(capacity: usize, percent: u8) -> u64 {
    let cap = u64::try_from(capacity).unwrap_or(u64::MAX);
    let p = u128::from(cap).saturating_mul(u128::from(percent));
    u64::try_from(p.div_ceil(100)).unwrap_or(u64::MAX)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What the daemon forwarded to the kernel or the sink, counted by the
/// forwarder and shown in the status.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    total: AtomicU64,
    at_start: AtomicU64,
    from_storage: AtomicU64,
    /// Seconds since the Unix epoch of the last forward; 0 = none yet.
    last_unix: AtomicU64,
}

/// A reading of [`ForwardCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardTotals {
    /// Bytes the output accepted since start.
    pub total: u64,
    /// Of those, the initial seed.
    pub at_start: u64,
    /// Of those, bytes of blocks that came from the storage cache.
    pub from_storage: u64,
    /// When the last forward happened (seconds since the Unix epoch).
    pub last_unix: Option<u64>,
}

/// Seconds since the Unix epoch now.
#[must_use]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ForwardCounters {
    /// Counts `sent` bytes the output accepted, `at_start` of them the
    /// initial seed and `from_storage` of them from the storage cache.
    pub fn record(&self, sent: u64, at_start: u64, from_storage: u64) {
        if sent == 0 {
            return;
        }
        // Counters only: no ordering with other memory is needed.
        self.total.fetch_add(sent, Ordering::Relaxed);
        self.at_start
            .fetch_add(at_start.min(sent), Ordering::Relaxed);
        self.from_storage
            .fetch_add(from_storage.min(sent), Ordering::Relaxed);
        self.last_unix.store(unix_now().max(1), Ordering::Relaxed);
    }

    /// The counts now.
    #[must_use]
    pub fn totals(&self) -> ForwardTotals {
        let last = self.last_unix.load(Ordering::Relaxed);
        ForwardTotals {
            total: self.total.load(Ordering::Relaxed),
            at_start: self.at_start.load(Ordering::Relaxed),
            from_storage: self.from_storage.load(Ordering::Relaxed),
            last_unix: (last != 0).then_some(last),
        }
    }
}

/// The API's status snapshot of a pool status and the forward counts.
#[must_use]
pub fn snapshot(
    st: &PoolStatus,
    forwarded: ForwardTotals,
    uptime_seconds: u64,
    running: bool,
) -> StatusSnapshot {
    let capacity = st.memory_capacity_blocks;
    let sources = Source::ALL
        .iter()
        .zip(st.per_source.iter())
        .map(|(&source, stats)| {
            let enabled = st.sources.contains(source);
            SourceStatus {
                source,
                enabled,
                samples: stats.samples,
                credited_bits: stats.credited.whole_bits(),
                // `None` (`off`) when not in the mask, else the mixer's
                // state (`disabled` only after repeated health failures).
                health: enabled.then_some(stats.state),
                health_failures: stats.health_failures,
            }
        })
        .collect();
    StatusSnapshot {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds,
        running,
        sources_mask: st.sources.value(),
        memory_cache: MemoryCacheStatus {
            len_blocks: to_u64(st.memory_len_blocks),
            capacity_blocks: to_u64(capacity),
            low_watermark_percent: st.low_watermark_percent,
            low_watermark_blocks: watermark_blocks(capacity, st.low_watermark_percent),
            refill_wanted: st.refill_wanted.is_some(),
        },
        storage_cache: StorageCacheStatus {
            len_blocks: st.storage.len_blocks,
            capacity_blocks: st.storage.capacity_blocks,
        },
        sources,
        external: ExternalStatus {
            lost: st.external.lost,
            seconds_since_last: st.external.ms_since_last.map(|ms| ms / 1000),
            lost_timeout_seconds: st.external.timeout_ms / 1000,
        },
        output: OutputStatus {
            blocks_emitted: st.mixer.blocks_emitted,
            bytes_forwarded: forwarded.total,
            bytes_forwarded_at_start: forwarded.at_start,
            bytes_forwarded_from_storage: forwarded.from_storage,
            last_forward_unix_seconds: forwarded.last_unix,
            seconds_since_last_forward: forwarded.last_unix.map(|t| unix_now().saturating_sub(t)),
        },
        api: None,
    }
}

/// The running daemon's pool behind one lock, as the API sees it.
#[derive(Debug)]
pub struct DaemonBackend {
    pool: Mutex<DaemonPool>,
    started: Instant,
    forwarded: ForwardCounters,
}

/// `pool` locked, whether or not an earlier holder panicked (see
/// [`DaemonBackend::lock`]).
fn lock_pool<T>(pool: &Mutex<T>) -> MutexGuard<'_, T> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes the blocks `pool` set aside for its storage cache without
/// holding the lock: takes them with the store under the lock
/// ([`Pool::take_spill`]), writes and flushes once unlocked, then gives
/// the store back under the lock ([`Pool::finish_spill`]). `None` when
/// nothing waited.
pub fn spill_outside_lock<C: Cpu + Clone, K: Clock, S: Storage>(
    pool: &Mutex<Pool<'_, C, K, S>>,
) -> Option<Result<StorageMove, Error>> {
    let mut job = lock_pool(pool).take_spill()?;
    // The lock is released here: readers and adds go on meanwhile.
    job.write();
    Some(lock_pool(pool).finish_spill(job))
}

impl DaemonBackend {
    /// Wraps `pool` (deferring its storage writes to [`Self::spill`]);
    /// uptime counts from now.
    #[must_use]
    pub fn new(mut pool: DaemonPool) -> Self {
        pool.defer_storage_writes(true);
        DaemonBackend {
            pool: Mutex::new(pool),
            started: Instant::now(),
            forwarded: ForwardCounters::default(),
        }
    }

    /// The pool, locked. (A panic while it was held cannot leave it
    /// half-changed in a way that replays entropy: every pool operation
    /// wipes what it hands out before returning. Keep serving.)
    pub fn lock(&self) -> MutexGuard<'_, DaemonPool> {
        lock_pool(&self.pool)
    }

    /// Writes the blocks set aside for the storage cache, outside the
    /// lock ([`spill_outside_lock`]); the run loop calls it once per poll.
    /// A failure is also in the pool's status (storage `last_error`).
    pub fn spill(&self) -> Option<Result<StorageMove, Error>> {
        spill_outside_lock(&self.pool)
    }

    /// What was forwarded to the kernel or the sink (the forwarder counts
    /// here).
    #[must_use]
    pub fn forwarded(&self) -> &ForwardCounters {
        &self.forwarded
    }

    /// Seconds since start.
    #[must_use]
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

impl PoolBackend for DaemonBackend {
    fn external_pool(&self) -> ExternalPoolInfo {
        let (st, room) = {
            let mut pool = self.lock();
            (pool.status(), pool.external_room())
        };
        let capacity = to_u64(st.memory_capacity_blocks).saturating_mul(32);
        ExternalPoolInfo {
            enabled: st.sources.contains(Source::External)
                && st.per_source[Source::External.index()].state
                    != entropool::HealthState::Disabled,
            capacity,
            // capacity - currently_available is the room: the external
            // bytes that fill the memory cache (at most the capacity), so
            // a feeder that sends it gets the cache full.
            currently_available: capacity.saturating_sub(to_u64(room)),
            low_watermark: watermark_blocks(st.memory_capacity_blocks, st.low_watermark_percent)
                .saturating_mul(32),
            inactive_source_timeout: u64::from(st.tunables.external_entropy_lost_timeout_s()),
        }
    }

    fn add_external(&self, data: &[u8]) -> usize {
        // At most the room advertised now (capacity - currently_available)...
        let room = {
            let pool = self.lock();
            let capacity = pool.tunables().memory_cache_blocks().saturating_mul(32);
            pool.external_room()
                .min(usize::try_from(capacity).unwrap_or(usize::MAX))
        };
        let offered = data.get(..room.min(data.len())).unwrap_or(&[]);
        // ...absorbed piece by piece, each under the lock on its own, so
        // status reads wait for at most one piece's hashing, not a whole
        // 1 MiB add. Each piece takes at most the room there is at that
        // moment (one atomic step), so concurrent adds never exceed the
        // capacity together; the first piece not taken whole ends the add
        // (the rest is discarded).
        let mut taken = 0usize;
        for piece in offered.chunks(ADD_PIECE) {
            let result = self.lock().submit(piece);
            match result {
                Ok(n) => {
                    taken = taken.saturating_add(n);
                    if n < piece.len() {
                        break;
                    }
                }
                Err(e) => {
                    log(format_args!("external entropy refused: {e}"));
                    break;
                }
            }
        }
        taken
    }

    fn status(&self) -> StatusSnapshot {
        let st = self.lock().status();
        snapshot(&st, self.forwarded.totals(), self.uptime_seconds(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use entropool::config::Tunables;
    use entropool::hw::{CpuIdentity, Vendor};
    use entropool::source::CpuFeatures;
    use entropool::storage::{MemStorage, layout_len};

    /// A CPU with a good RDSEED (splitmix64 words) and nothing else.
    #[derive(Clone, Debug, Default)]
    struct SeedCpu(std::sync::Arc<AtomicU64>);

    impl Cpu for SeedCpu {
        fn features(&self) -> CpuFeatures {
            CpuFeatures {
                rdrand: false,
                rdseed: true,
            }
        }
        fn identity(&self) -> CpuIdentity {
            CpuIdentity {
                vendor: Vendor::Intel,
                family: 6,
            }
        }
        fn rdrand64(&self) -> Option<u64> {
            None
        }
        fn rdseed64(&self) -> Option<u64> {
            let mut z = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Some(z ^ (z >> 31))
        }
        fn pause(&self) {}
        fn cycles(&self) -> u64 {
            0
        }
    }

    /// Where a [`Gated`] medium's writes wait while it is closed.
    #[derive(Debug, Default)]
    struct Gate {
        closed: Mutex<bool>,
        opened: Condvar,
        /// Writes waiting at the gate now.
        waiting: AtomicUsize,
    }

    impl Gate {
        fn set(&self, closed: bool) {
            *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = closed;
            self.opened.notify_all();
        }
        fn pass(&self) {
            let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
            self.waiting.fetch_add(1, Ordering::SeqCst);
            // Bounded: a test that fails opens the gate; this only keeps
            // a broken test from hanging forever.
            let mut rounds = 0;
            while *closed && rounds < 600 {
                closed = self
                    .opened
                    .wait_timeout(closed, Duration::from_millis(100))
                    .map_or_else(|e| e.into_inner().0, |(g, _)| g);
                rounds += 1;
            }
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A medium in memory whose writes wait at a gate: a disk that stalls.
    struct Gated {
        inner: MemStorage<'static>,
        gate: std::sync::Arc<Gate>,
    }

    impl Storage for Gated {
        fn capacity(&self) -> u64 {
            self.inner.capacity()
        }
        fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
            self.inner.read(offset, buf)
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
            self.gate.pass();
            self.inner.write(offset, data)
        }
        fn flush(&mut self) -> Result<(), Error> {
            self.inner.flush()
        }
    }

    /// Whether `f` holds within a generous bound (the machine is loaded;
    /// the bound only keeps a failing test from hanging).
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..30_000 {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn readers_of_the_pool_do_not_wait_for_a_storage_write() {
        let gate = std::sync::Arc::new(Gate::default());
        let len = usize::try_from(layout_len(32).unwrap_or(0)).unwrap_or(0);
        let disk: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        let parts = PoolParts {
            config: Config {
                tunables: Tunables::new(60, 20, 1, 1).unwrap_or_default(),
                sources: SourceMask::new(4).unwrap_or_default(),
            },
            cpu: SeedCpu::default(),
            clock: SystemClock::new(),
            memory: leak_slots(1).unwrap_or_default(),
            storage: Some(Gated {
                inner: MemStorage::new(disk),
                gate: gate.clone(),
            }),
            interrupts: None,
            mixer: MixerConfig::DEFAULT,
            key: [1; 32],
            storage_key: [2; 32],
        };
        let Ok((mut pool, _)) = Pool::new(parts) else {
            unreachable!("the pool starts");
        };
        pool.defer_storage_writes(true);
        // The memory cache full, and blocks waiting for the store.
        for _ in 0..10_000 {
            if pool.status().storage.pending_blocks > 0 {
                break;
            }
            let _ = pool.poll();
        }
        assert!(pool.status().storage.pending_blocks > 0);
        let pool = Mutex::new(pool);
        gate.set(true);
        std::thread::scope(|s| {
            let writer = s.spawn(|| spill_outside_lock(&pool));
            // The writer is stuck in the medium's write...
            let stuck = eventually(|| gate.waiting.load(Ordering::SeqCst) > 0);
            // ...and a reader locks the pool, reads the status and takes
            // a block meanwhile (the writer cannot finish before the gate
            // opens, so this is ordering, not timing).
            let read = eventually(|| {
                pool.try_lock().is_ok_and(|mut p| {
                    let st = p.status();
                    let mut out = [0u8; 32];
                    st.storage.pending_blocks > 0 && p.fill(&mut out).is_ok()
                })
            });
            let still_stuck = gate.waiting.load(Ordering::SeqCst) > 0;
            gate.set(false);
            let result = writer.join().ok().flatten();
            assert!(stuck, "the writer reached the medium");
            assert!(read, "a reader got the pool while the write was stalled");
            assert!(still_stuck, "the write was still stalled then");
            assert!(
                matches!(result, Some(Ok(m)) if m.stored > 0 && m.discarded == 0),
                "{result:?}"
            );
        });
        let st = lock_pool(&pool).status();
        assert!(st.storage.len_blocks > 0);
        assert_eq!(st.storage.pending_blocks, 0);
    }

    #[test]
    fn utc_text_matches_known_dates() {
        // Independent derivations: 0 is the epoch; 951_782_400 s is
        // 11016 days (30 years, 7 of them leap, + 59 days) = 2000-02-29;
        // one day later is 2000-03-01.
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(11_016 * 86_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(11_017 * 86_400 + 3661), "2000-03-01T01:01:01Z");
        // 2025-01-01 is 55 * 365 + 14 leap days = 20_089 days after the
        // epoch; the last second of the day before:
        assert_eq!(utc_text(20_088 * 86_400 + 86_399), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn watermark_blocks_is_the_first_level_not_below() {
        // 20 % of 32 = 6.4: 6 blocks are below, 7 are not.
        assert_eq!(watermark_blocks(32, 20), 7);
        assert_eq!(watermark_blocks(10, 20), 2);
        assert_eq!(watermark_blocks(10, 0), 0);
        assert_eq!(watermark_blocks(10, 100), 10);
    }
}
