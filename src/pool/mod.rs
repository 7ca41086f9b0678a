//! The pool: the one type that ties configuration, hardware sources, the
//! interrupt ring, the mixer, the memory and storage caches and the
//! external-lost timer together. Firmware and the daemon use this.
//!
//! # Contract
//!
//! - [`Pool::new`] resolves the sources mask against the CPU (an unusable
//!   hardware source is an error that names it), starts the drivers (their
//!   self-tests run), opens the storage cache (a torn or corrupted store is
//!   discarded and reported, never credited) and moves a first batch of
//!   stored blocks into the memory cache; [`Pool::poll`] moves the rest, a
//!   few batches per call, until the memory cache is full or the storage
//!   cache empty ([`Pool::loading_storage`]), harvesting no hardware
//!   meanwhile. So a start costs one flush, not one per batch of a large
//!   store (the daemon seeds the kernel from storage at once), and the
//!   stored blocks stay the oldest in the memory cache. Every block taken
//!   from storage is erased there, durably, before it is used
//!   ([`crate::storage`]).
//! - [`Pool::poll`] does a bounded amount of work and never blocks: it
//!   drains the interrupt ring (at most [`INTERRUPT_BATCH`] timestamps),
//!   and, while blocks are wanted, harvests at most [`RDSEED_BATCH`]
//!   RDSEED words and [`RDRAND_BATCH`] RDRAND words. Blocks go to the
//!   memory cache first; when it is full they refill the storage cache,
//!   written per batch and flushed once at the end of the call (one
//!   `fsync` per poll, submit or seed, not one per batch of blocks), or,
//!   with [`Pool::defer_storage_writes`], set aside for a [`SpillJob`]
//!   that the caller writes (with one flush) outside its lock.
//!   Blocks are wanted while the memory cache is below its low watermark
//!   (until it is full again: hysteresis) or, once it is full, while the
//!   storage cache has room.
//! - [`Pool::submit`] takes external entropy: at most
//!   [`Pool::external_room`] bytes, the rest discarded; it says how many
//!   bytes it took, and each accepted submission restarts the external-lost
//!   timer. The room is what it takes to fill the memory cache, not the
//!   free bytes (ESXi's `capacity - currently_available`): a block costs
//!   320 credited bits (40 bytes at the default 8 bits/byte), less the
//!   credit already pending, plus what is left of the health tests'
//!   start-up window. So an external-only pool fed the room it advertises
//!   is full after that add: no cache stuck one block short (the room of
//!   one free block, 32 bytes, never earned the 40 bytes a block needs).
//! - [`Pool::seed_external`] takes the staged install-time seed through
//!   the same external path (health tests, credit per byte), whatever the
//!   sources mask: seed material is used at first boot even when the
//!   steady-state sources do not include external.
//! - The storage cache holds storage-cache-size KiB of entropy
//!   ([`Tunables::storage_cache_blocks`] blocks); its medium is larger by
//!   the store's header and per-slot overhead
//!   ([`crate::storage::layout_len`]).
//! - [`Pool::fill`] hands out full-entropy bytes from the memory cache, then
//!   the storage cache, or fails without handing out anything: it never
//!   reports a partial fill as success. Every block is used once: the tail
//!   of a block a request does not need is wiped, never kept. When both
//!   caches are empty the error is [`Error::ExternalLost`] if external is
//!   the only source and it is lost, else [`Error::Starving`].
//! - [`Pool::set_tunables`] applies a new configuration to the running
//!   pool, all or nothing: a configuration the pool cannot take, or a
//!   storage re-open that fails, changes nothing.
//! - What the pool holds for its CPU and its storage follows their types
//!   (`src/pool/kind.rs`): over [`NoCpu`](crate::NoCpu) no RDRAND/RDSEED
//!   drivers and no word buffer, over [`NoStorage`](crate::NoStorage) no
//!   storage tier and no overflow; such a pool behaves as one over a CPU
//!   without those instructions and without a medium, except that it
//!   refuses a storage-cache-size other than 0.
//! - Storage: one component (`src/pool/storage.rs`) moves every block
//!   to the storage cache, for the spill of an absorb step, the excess of
//!   a shrinking memory cache and the shutdown flush, and counts each
//!   block as stored or discarded ([`StorageMove`]). A caller that shares
//!   the pool behind a lock can do the storage I/O outside it
//!   ([`Pool::defer_storage_writes`], [`Pool::take_spill`], [`SpillJob`]).
//! - After construction nothing here allocates; nothing panics; every loop
//!   is bounded by a batch size or a cache capacity (see *Never hang*).
//! - Time comes only from the caller's [`Clock`]; a clock that steps back
//!   counts as no time passing.
//!
//! # Never hang: every bound
//!
//! No call of the library blocks, sleeps or spins without a limit. Each
//! bound is a named constant (or a size the caller chose); this is the one
//! list of them. The daemon's own sleeps and deadlines are in its `run`
//! command's documentation.
//!
//! | bound | value | what it limits |
//! | --- | --- | --- |
//! | [`INTERRUPT_BATCH`] | 1024 | interrupt timestamps drained per [`Pool::poll`] |
//! | [`INTERRUPT_MIN_DRAIN`] | 256 | timestamps drained per poll even when nothing is gained (the ring never overflows for lack of a reader) |
//! | [`WORD_CHUNK`] | 256 (32 on 32-bit targets) | words hashed per absorb step: the work between two checks of the caches |
//! | [`RDSEED_BATCH`] | 32 | RDSEED words per poll |
//! | [`RDRAND_BATCH`] | 2560 | RDRAND words per poll |
//! | [`RDSEED_RETRY_LIMIT`](crate::hw::RDSEED_RETRY_LIMIT) | 100 | RDSEED attempts (with `PAUSE`) before a call gives up and comes back at the next poll: about 85 us at most |
//! | [`RDRAND_RETRY_LIMIT`](crate::hw::RDRAND_RETRY_LIMIT) | 10 | consecutive failed RDRAND attempts that mean a hardware failure, not exhaustion (Intel DRNG guide 5.2.1) |
//! | [`RDSEED_SELF_TEST_ROUNDS`](crate::hw::RDSEED_SELF_TEST_ROUNDS) | 20 | rounds of [`RDSEED_RETRY_LIMIT`](crate::hw::RDSEED_RETRY_LIMIT) attempts the RDSEED start-up self-test may use before [`Error::RdseedNotNow`] |
//! | [`RDSEED_SELF_TEST_WORDS`](crate::hw::RDSEED_SELF_TEST_WORDS), [`RDRAND_SELF_TEST_WORDS`](crate::hw::RDRAND_SELF_TEST_WORDS) | 8 | words each start-up self-test reads |
//! | [`OVERFLOW_BLOCKS`] | 16 (2 on 32-bit targets) | blocks between the mixer and the storage cache per absorb step (and per [`SpillJob`]); past it the mixer holds one block and the step stops |
//! | [`LOAD_BATCHES_PER_POLL`] | 4 | batches of [`OVERFLOW_BLOCKS`] stored blocks moved into memory per poll at start |
//! | [`FLUSH_BATCH`] | 128 | blocks per storage write at shutdown ([`Pool::flush_to_storage`]); the whole save is bounded by the memory cache's capacity |
//! | [`StorageCache::capacity_blocks`](crate::storage::StorageCache::capacity_blocks) | storage-cache-size | every scan, wipe, take and push of the store |
//! | [`MemoryCache::capacity`](crate::cache::MemoryCache::capacity) | memory-cache-size | [`Pool::fill`], a shrink, the shutdown save |
//! | [`MAX_FRAME_SAMPLES`](crate::mixer::MAX_FRAME_SAMPLES) | 65536 | samples in one conditioning frame |
//! | [`WINDOW`](crate::mixer::screen::WINDOW) | 4096 | bytes per window of the external screen (the work per judgement) |
//! | [`STARTUP_SAMPLES`] | 1024 | samples a source must pass before it earns credit |
//! | [`DISABLE_AFTER`](crate::health::DISABLE_AFTER) | 3 | health-test strikes before a failing source is disabled (a stalled or stuck source stops costing work) |
//! | [`STRIKE_FORGET_SAMPLES`](crate::health::STRIKE_FORGET_SAMPLES) | 65536 | healthy samples after which strikes are forgotten |
//! | external-entropy-lost-timeout ([`ExternalLostTimer`]) | 60 s by default | the deadline after which an external-only pool with empty caches answers [`Error::ExternalLost`] instead of [`Error::Starving`] (never a wait) |
//! | [`MAX_REQUEST_LEN`](crate::drbg::MAX_REQUEST_LEN) | 65536 bytes | one DRBG generate call |
//! | [`MAX_RESEED_INTERVAL`](crate::drbg::MAX_RESEED_INTERVAL) | 2^48 | DRBG requests between reseeds |
#![cfg_attr(
    feature = "getrandom-custom",
    doc = "| [`NO_STD_SPINS`](crate::getrandom_custom::NO_STD_SPINS) | 256 | tries of a busy getrandom slot without std |"
)]
#![cfg_attr(
    all(feature = "getrandom-custom", feature = "std"),
    doc = "| [`WAIT_LIMIT`](crate::getrandom_custom::WAIT_LIMIT) | 5 s | wait for a busy getrandom slot with std, then an error |"
)]
#![cfg_attr(
    feature = "std",
    doc = "| [`CPU_JITTER_BURST`](crate::hw::cpu_jitter::CPU_JITTER_BURST) | 1024 | timestamps the jitter thread takes between checks of its stop flag |"
)]
#![cfg_attr(
    feature = "std",
    doc = "| [`CPU_JITTER_IDLE_PARK`](crate::hw::cpu_jitter::CPU_JITTER_IDLE_PARK) | 5 ms | the jitter thread's park when its ring is full or nobody wants samples (a stop cuts it short) |"
)]

mod kind;
mod storage;
mod tunables;

use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::cache::{BLOCK_LEN, BlockSlot, MemoryCache};
use crate::config::{Config, Tunables};
use crate::error::Error;
use crate::health::{HealthState, STARTUP_SAMPLES};
use crate::hw::HwStats;
use crate::interrupt::InterruptDrain;
use crate::mixer::{BLOCK_CREDIT, Block, BlockSink, Mixer, MixerConfig, MixerStats, SourceStats};
use crate::source::{Source, SourceMask};
use crate::storage::LoadReport;
use crate::watch::{Clock, ExternalLostTimer, ExternalStatus};
use kind::{Drivers, Tier};
pub use kind::{PoolCpu, PoolStorage};
pub use storage::{STORAGE_LENT, SpillJob, StorageMove};

/// Interrupt timestamps drained per [`Pool::poll`] at most (in chunks of
/// 256: a CPU-jitter collector credited near 1 bit per sample earns about
/// three blocks per poll).
pub const INTERRUPT_BATCH: usize = 1024;
/// Interrupt timestamps drained per [`Pool::poll`] at least when the ring
/// holds them, even with the caches full or the source failing its health
/// tests: a producer's ring is never left to overflow because the pool has
/// nothing to gain from its samples.
pub const INTERRUPT_MIN_DRAIN: usize = 256;
/// RDSEED words harvested per [`Pool::poll`] at most (2048 bits: six blocks
/// at full credit).
pub const RDSEED_BATCH: usize = 32;
/// RDRAND words harvested per [`Pool::poll`] at most: 2560 words earn
/// exactly one block at RDRAND's cap of 128 bits per 1024 words.
pub const RDRAND_BATCH: usize = 2560;
/// Blocks held between the mixer and the storage cache within one absorb
/// call (the storage cache is written once per batch, not per block), and
/// the most a [`SpillJob`] carries: 16, or 2 where pointers are 32 bits
/// (microcontrollers: 64 bytes of static RAM instead of 512; flushes stay
/// one per poll either way, and a firmware earns far fewer than 2 blocks
/// per poll). A pool over [`NoStorage`](crate::NoStorage) holds no
/// overflow.
pub const OVERFLOW_BLOCKS: usize = if cfg!(target_pointer_width = "32") {
    2
} else {
    16
};
/// Batches of stored blocks loaded into the memory cache per
/// [`Pool::poll`] at start (one flush each).
pub const LOAD_BATCHES_PER_POLL: usize = 4;
/// Blocks written per batch when saving the memory cache at shutdown.
pub const FLUSH_BATCH: usize = 128;
/// Words moved through the pool's word buffer per absorb call: 256, or 32
/// where pointers are 32 bits (microcontrollers: 256 bytes instead of
/// 2 KiB; 32 is still one [`RDSEED_BATCH`]). A poll then drains the
/// interrupt ring in chunks, still at most [`INTERRUPT_BATCH`]. The buffer
/// is part of a pool over a [`Cpu`](crate::Cpu); a pool over
/// [`NoCpu`](crate::NoCpu) holds none and drains through one on
/// [`Pool::poll`]'s stack (wiped before it returns).
pub const WORD_CHUNK: usize = if cfg!(target_pointer_width = "32") {
    32
} else {
    256
};
const _: () = assert!(
    RDSEED_BATCH <= WORD_CHUNK
        && WORD_CHUNK <= INTERRUPT_MIN_DRAIN
        && INTERRUPT_MIN_DRAIN <= INTERRUPT_BATCH
);

/// What the pool is built from.
pub struct PoolParts<'s, C, K, S> {
    /// Tunables and the (unresolved) sources mask.
    pub config: Config,
    /// The CPU backend: [`crate::hw::RealCpu`], a fake in tests, or
    /// [`NoCpu`](crate::NoCpu) for a pool without RDRAND and RDSEED that
    /// holds no driver state.
    pub cpu: C,
    /// The monotonic clock.
    pub clock: K,
    /// The memory cache's slots: at least `memory-cache-size` KiB × 32.
    pub memory: &'s mut [BlockSlot],
    /// The storage cache's medium, if any (always `None` with
    /// [`NoStorage`](crate::NoStorage), which holds no storage state).
    pub storage: Option<S>,
    /// The drain half of the interrupt ring, when the interrupts source is
    /// used (the interrupt handler keeps the recorder half).
    pub interrupts: Option<InterruptDrain<'s>>,
    /// Per-source credit and health configuration.
    pub mixer: MixerConfig,
    /// The conditioner's per-instance key (a device-unique secret where
    /// firmware has one).
    pub key: [u8; 32],
    /// Fresh material for this start: every block taken from the storage
    /// cache is keyed with it, so pools started from copies of one store
    /// never share a block (see [`crate::storage`]'s threat model). The
    /// daemon uses `FileStorage::start_key` (with `std`);
    /// firmware supplies a value that differs at every start. Wiped after
    /// use.
    pub storage_key: [u8; 32],
}

impl<C, K, S> fmt::Debug for PoolParts<'_, C, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolParts { .. }")
    }
}

/// One hardware source's state in the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardwareStatus {
    /// Driver counters (attempts, failures, words, exhausted calls).
    pub stats: HwStats,
    /// The last error the driver gave during a poll, if any.
    pub last_error: Option<Error>,
}

/// The storage cache as status shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStatus {
    /// A storage cache is configured and open.
    pub present: bool,
    /// Blocks stored.
    pub len_blocks: u64,
    /// Capacity in blocks.
    pub capacity_blocks: u64,
    /// Corrupt slots or stores discarded (never credited).
    pub corrupt_discarded: u64,
    /// The last storage error, if any.
    pub last_error: Option<Error>,
    /// Blocks on their way to the store: waiting in the pool for a spill
    /// job ([`Pool::defer_storage_writes`]) or carried by one.
    pub pending_blocks: u64,
}

/// A snapshot of everything `status` shows. Plain data, no secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// The resolved sources mask.
    pub sources: SourceMask,
    /// The tunables in force.
    pub tunables: Tunables,
    /// Blocks in the memory cache.
    pub memory_len_blocks: usize,
    /// Memory cache capacity in blocks.
    pub memory_capacity_blocks: usize,
    /// Low watermark in percent.
    pub low_watermark_percent: u8,
    /// Blocks wanted to refill the memory cache (`Some` while below the
    /// low watermark and until full again).
    pub refill_wanted: Option<usize>,
    /// The storage cache.
    pub storage: StorageStatus,
    /// Per-source mixer counters, indexed by [`Source::index`].
    pub per_source: [SourceStats; 4],
    /// RDRAND driver state (when used).
    pub rdrand: Option<HardwareStatus>,
    /// RDSEED driver state (when used).
    pub rdseed: Option<HardwareStatus>,
    /// Interrupt timestamps recorded and dropped (ring full).
    pub interrupts_recorded: u64,
    /// Interrupt timestamps dropped because the ring was full.
    pub interrupts_dropped: u64,
    /// The external-lost timer.
    pub external: ExternalStatus,
    /// External bytes accepted.
    pub external_bytes_accepted: u64,
    /// External bytes discarded (no room).
    pub external_bytes_discarded: u64,
    /// Mixer counters.
    pub mixer: MixerStats,
    /// Blocks handed out through [`Pool::fill`].
    pub blocks_served: u64,
    /// Bytes handed out through [`Pool::fill`].
    pub bytes_served: u64,
    /// Of [`PoolStatus::bytes_served`], the bytes of blocks that came from
    /// the storage cache (loaded at start or taken from it directly).
    pub bytes_served_from_storage: u64,
    /// Blocks zeroized without being used (a cache shrank with nowhere to
    /// put them, or they did not fit storage at shutdown).
    pub blocks_discarded: u64,
}

/// What one [`Pool::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Blocks the mixer delivered to the caches.
    pub blocks: u32,
    /// Stored blocks moved into the memory cache (the start-up load).
    pub loaded: usize,
    /// Interrupt deltas absorbed.
    pub interrupt_samples: usize,
    /// RDSEED words absorbed.
    pub rdseed_words: usize,
    /// RDRAND words absorbed.
    pub rdrand_words: usize,
    /// Blocks still wanted after the poll (see [`Pool::blocks_wanted`]).
    pub still_wanted: bool,
}

/// The mixer's sink: the memory cache, then the overflow to storage.
struct CacheSink<'a, 's, T> {
    memory: &'a mut MemoryCache<'s>,
    storage: &'a mut T,
}

impl<T: Tier> BlockSink for CacheSink<'_, '_, T> {
    fn offer(&mut self, block: Block) -> Result<(), Block> {
        match self.memory.push(block) {
            Ok(()) => Ok(()),
            Err(block) => self.storage.offer_overflow(block),
        }
    }
}

/// The entropy pool. See the module documentation for its contract.
///
/// `C` is the CPU ([`PoolCpu`]): a [`Cpu`](crate::Cpu) (the pool keeps
/// RDRAND and RDSEED drivers and a word buffer for them), or
/// [`NoCpu`](crate::NoCpu), which has neither instruction and costs no
/// state. `S` is the storage ([`PoolStorage`]): a
/// [`Storage`](crate::Storage) medium (the pool keeps a storage tier and
/// an overflow toward it, used when a medium is given), or
/// [`NoStorage`](crate::NoStorage), which has no storage cache and costs
/// no state. A firmware pool with interrupts and external entropy only is
/// `Pool<'static, NoCpu, MyClock, NoStorage>`:
///
/// ```
/// use entropool::{
///     BlockCell, BlockSlot, Clock, Config, Error, MixerConfig, NoCpu, NoStorage, Pool, PoolParts,
///     Slot, SourceMask, StorageStatus, Tunables,
/// };
///
/// /// The firmware's millisecond counter (a SysTick count, say).
/// struct Millis;
/// impl Clock for Millis {
///     fn now_ms(&self) -> u64 {
///         0
///     }
/// }
///
/// let mut memory: [BlockSlot; 32] = [const { Slot::new(BlockCell::EMPTY) }; 32];
/// let (mut pool, _) = Pool::new(PoolParts {
///     // 1 KiB memory cache; storage-cache-size must be 0 without storage.
///     config: Config { tunables: Tunables::new(60, 20, 1, 0)?, sources: SourceMask::new(8)? },
///     cpu: NoCpu,
///     clock: Millis,
///     memory: &mut memory,
///     storage: None::<NoStorage>,
///     interrupts: None,
///     mixer: MixerConfig::default(),
///     key: [0x5A; 32],      // a device-unique secret where there is one
///     storage_key: [0; 32], // no storage cache
/// })?;
/// let status = pool.status();
/// assert_eq!((status.rdrand, status.rdseed), (None, None));
/// assert_eq!(status.storage, StorageStatus::default());
/// // Nothing credited yet: an error, never a wait.
/// assert_eq!(pool.fill(&mut [0; 32]), Err(Error::Starving));
/// # Ok::<(), Error>(())
/// ```
pub struct Pool<'s, C: PoolCpu, K: Clock, S: PoolStorage> {
    tunables: Tunables,
    sources: SourceMask,
    clock: K,
    /// The RDRAND and RDSEED drivers and their word buffer (nothing over
    /// [`NoCpu`](crate::NoCpu)).
    hw: C::Drivers,
    interrupts: Option<InterruptDrain<'s>>,
    mixer: Mixer,
    memory: MemoryCache<'s>,
    /// The storage cache and the overflow toward it (nothing over
    /// [`NoStorage`](crate::NoStorage)).
    storage: S::Tier,
    /// The sources blocks made from now on may come from: the resolved
    /// mask, plus external once install-time entropy was mixed in.
    provenance: SourceMask,
    /// `poll` and `submit` leave storage writes to spill jobs.
    defer_spill: bool,
    timer: ExternalLostTimer,
    external_accepted: u64,
    external_discarded: u64,
    blocks_served: u64,
    bytes_served: u64,
    bytes_from_storage: u64,
    /// Blocks at the front of the memory cache (it is FIFO) that were
    /// loaded from the storage cache.
    memory_from_storage: usize,
    /// The external source's credit per byte, in credit units.
    external_rate: u64,
    /// Stored blocks are still being loaded into the memory cache.
    loading: bool,
    blocks_discarded: u64,
}

impl<C: PoolCpu, K: Clock, S: PoolStorage> fmt::Debug for Pool<'_, C, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pool { .. }")
    }
}

/// Storage slots for `tunables`: storage-cache-size counts entropy bytes.
fn storage_slots(tunables: &Tunables) -> u64 {
    u64::from(tunables.storage_cache_blocks())
}

impl<'s, C: PoolCpu, K: Clock, S: PoolStorage> Pool<'s, C, K, S> {
    /// Builds the pool and loads the storage cache into the memory cache.
    /// Returns the storage cache's load report too (it says whether a
    /// corrupt store was discarded).
    ///
    /// # Errors
    /// - [`Error::SourceUnavailable`] when the mask names a hardware source
    ///   the CPU lacks (either one with [`NoCpu`](crate::NoCpu)); the
    ///   drivers' errors ([`Error::KnownBadCpu`], [`Error::SelfTestFailed`],
    ///   [`Error::RdseedNotNow`] when RDSEED gave no seed for its whole
    ///   self-test budget).
    /// - [`Error::CapacityTooSmall`] when `memory` holds fewer slots than
    ///   memory-cache-size asks for, or the medium is too small.
    /// - [`Error::StorageIo`] when the storage cache cannot be opened.
    /// - [`Error::InvalidValue`] (storage-cache-size, range `0..=0`) when
    ///   storage-cache-size is not 0 with [`NoStorage`](crate::NoStorage).
    /// - The mixer configuration's errors.
    pub fn new(parts: PoolParts<'s, C, K, S>) -> Result<(Self, Option<LoadReport>), Error> {
        let PoolParts {
            config,
            cpu,
            clock,
            memory,
            storage,
            interrupts,
            mixer,
            key,
            storage_key,
        } = parts;
        // Wiped on every way out, errors included.
        let key = Zeroizing::new(key);
        let storage_key = Zeroizing::new(storage_key);
        let tunables = config.tunables;
        let (hw, sources) = C::Drivers::start(cpu, config.sources)?;
        let external_rate = mixer.source(Source::External).credit.units();
        let mixer = Mixer::new(&mixer, &key);
        drop(key);
        let mixer = mixer?;
        let memory = MemoryCache::new(
            memory,
            u64::from(tunables.memory_cache_size_kib()),
            tunables.low_watermark_percent(),
        )?;
        let (storage, report) = S::Tier::open(storage, &tunables, sources, &storage_key)?;
        drop(storage_key);
        let now = clock.now_ms();
        let timer = ExternalLostTimer::new(
            sources,
            u64::from(tunables.external_entropy_lost_timeout_s()),
            now,
        );
        let mut pool: Self = Pool {
            tunables,
            sources,
            clock,
            hw,
            interrupts,
            mixer,
            memory,
            storage,
            provenance: sources,
            defer_spill: false,
            timer,
            external_accepted: 0,
            external_discarded: 0,
            blocks_served: 0,
            bytes_served: 0,
            bytes_from_storage: 0,
            memory_from_storage: 0,
            external_rate,
            loading: false,
            blocks_discarded: 0,
        };
        pool.loading = pool.storage.present();
        pool.load_from_storage(1);
        Ok((pool, report))
    }

    /// Whether stored blocks are still being moved into the memory cache
    /// (a few batches per [`Pool::poll`] after the first at [`Pool::new`]).
    #[must_use]
    pub const fn loading_storage(&self) -> bool {
        self.loading
    }

    /// The resolved sources mask.
    #[must_use]
    pub const fn sources(&self) -> SourceMask {
        self.sources
    }

    /// The tunables in force.
    #[must_use]
    pub const fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    /// Whether the pool wants blocks now: the memory cache is below its low
    /// watermark (until full again), or it is full and the storage cache
    /// has room (beyond the blocks waiting for a spill job, while fewer
    /// than [`OVERFLOW_BLOCKS`] wait), or the mixer holds a block it could
    /// not deliver.
    #[must_use]
    pub fn blocks_wanted(&self) -> bool {
        self.memory.refill_wanted().is_some()
            || (self.memory.is_full() && self.storage.wants_blocks())
    }

    /// Bytes of external entropy it takes to fill the memory cache: each
    /// free block costs 320 credited bits at the external source's credit
    /// per byte, less the credit already pending toward the next block,
    /// plus the health tests' start-up window still to pass (the whole
    /// window again after a failure). 0 when the memory cache is full; the
    /// free bytes when external bytes earn no credit.
    #[must_use]
    pub fn external_room(&self) -> usize {
        let free = self.memory.capacity().saturating_sub(self.memory.len());
        if free == 0 {
            return 0;
        }
        let rate = self.external_rate;
        if rate == 0 {
            return free.saturating_mul(BLOCK_LEN);
        }
        let pending = self.mixer.mixer_stats().pending.units();
        let need = u64::try_from(free)
            .unwrap_or(u64::MAX)
            .saturating_mul(BLOCK_CREDIT.units())
            .saturating_sub(pending);
        let stats = self.mixer.stats(Source::External);
        let window = u64::from(STARTUP_SAMPLES);
        let startup = match stats.state {
            HealthState::Startup if stats.health_failures == 0 => {
                window.saturating_sub(stats.samples)
            }
            HealthState::Startup | HealthState::Quarantined => window,
            HealthState::Healthy | HealthState::Disabled => 0,
        };
        usize::try_from(need.div_ceil(rate).saturating_add(startup)).unwrap_or(usize::MAX)
    }

    /// Runs one absorb step with the caches as the sink, then spills the
    /// overflow to storage. The step gets the drivers' word buffer, or
    /// `scratch` when they keep none (a pool over [`NoCpu`](crate::NoCpu)).
    fn absorb_step<F>(&mut self, scratch: &[u64], step: F) -> Result<crate::mixer::Absorbed, Error>
    where
        F: FnOnce(
            &mut Mixer,
            &mut CacheSink<'_, 's, S::Tier>,
            &[u64],
        ) -> Result<crate::mixer::Absorbed, Error>,
    {
        self.storage.begin_step();
        let mut sink = CacheSink {
            memory: &mut self.memory,
            storage: &mut self.storage,
        };
        // A block held from an earlier call goes first. The step offers it
        // again itself (and consumes nothing while it is refused, reporting
        // the source's real state), but not when that source is disabled:
        // this keeps the held block moving whichever source runs.
        self.mixer.deliver_held(&mut sink);
        let result = step(&mut self.mixer, &mut sink, self.hw.words_or(scratch));
        if !self.defer_spill {
            self.spill_overflow();
        }
        result
    }

    /// Harvests, drains and mixes; see the module documentation. Never
    /// blocks; the work per call is bounded.
    ///
    /// # Errors
    /// None at present for hardware hiccups (they are counted and shown in
    /// [`Pool::status`]); the signature leaves room for a fatal condition.
    pub fn poll(&mut self) -> Result<PollReport, Error> {
        let now = self.clock.now_ms();
        self.timer.observe(now);
        let mut report = PollReport::default();

        // The start-up load of stored blocks comes first, a few batches at
        // a time; no hardware is harvested meanwhile, so the stored blocks
        // stay the oldest in the memory cache.
        let loading = self.loading;
        if loading {
            let moved = self.load_from_storage(LOAD_BATCHES_PER_POLL);
            report.loaded = moved;
        }

        // Interrupts: always drain (at most INTERRUPT_BATCH timestamps, in
        // chunks of WORD_CHUNK: one chunk where pointers are 64 bits) so the
        // ring does not overflow. Samples the caches have no room for are
        // hashed into nothing and dropped: they carried no credit yet.
        if self.interrupts.is_some() {
            self.drain_interrupts(&mut report);
        }

        if !loading && self.blocks_wanted() {
            if let Some(got) = self.hw.fill_rdseed(RDSEED_BATCH) {
                if got > 0 {
                    let a = self.absorb_step(&[], |m, sink, words| match words.get(..got) {
                        Some(w) => m.absorb_words(Source::Rdseed, w, sink),
                        None => Err(Error::CapacityTooSmall),
                    });
                    if let Ok(a) = a {
                        report.rdseed_words = a.consumed;
                        report.blocks = report.blocks.saturating_add(a.blocks);
                    }
                }
            }
        }
        if !loading && self.blocks_wanted() {
            let mut left = RDRAND_BATCH;
            while left > 0 && self.hw.has_rdrand() {
                let chunk = left.min(WORD_CHUNK);
                left = left.saturating_sub(chunk);
                if !self.hw.fill_rdrand(chunk) {
                    break;
                }
                let a = self.absorb_step(&[], |m, sink, words| match words.get(..chunk) {
                    Some(w) => m.absorb_words(Source::Rdrand, w, sink),
                    None => Err(Error::CapacityTooSmall),
                });
                match a {
                    Ok(a) => {
                        report.rdrand_words = report.rdrand_words.saturating_add(a.consumed);
                        report.blocks = report.blocks.saturating_add(a.blocks);
                        if a.sink_full {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        self.hw.wipe_words();
        self.commit_spilled();
        report.still_wanted = self.loading || self.blocks_wanted();
        Ok(report)
    }

    /// The interrupt drain of [`Pool::poll`] (called only when the pool
    /// has one). A pool whose drivers keep no word buffer (over
    /// [`NoCpu`](crate::hw::NoCpu)) drains through a scratch buffer on the
    /// stack, made here, so a poll without a drain neither fills nor wipes
    /// one; only the words drained into it are wiped.
    fn drain_interrupts(&mut self, report: &mut PollReport) {
        let mut scratch = C::Drivers::scratch();
        // Words of the buffer written so far: each chunk is drained into
        // its front.
        let mut written = 0usize;
        let mut left = INTERRUPT_BATCH;
        while left > 0 {
            let Some(drain) = self.interrupts.as_mut() else {
                break;
            };
            let buf = match self.hw.words_mut() {
                Some(words) => words,
                None => scratch.as_mut(),
            };
            let Some(buf) = buf.get_mut(..left.min(WORD_CHUNK)) else {
                break;
            };
            let n = drain.drain_timestamps(buf);
            written = written.max(n);
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
            let a = self.absorb_step(scratch.as_ref(), |m, sink, words| match words.get(..n) {
                Some(w) => m.absorb_words(Source::Interrupts, w, sink),
                None => Err(Error::CapacityTooSmall),
            });
            // Past the minimum, stop when there is nothing to gain: the
            // caches are full or the source is failing.
            let enough = INTERRUPT_BATCH.saturating_sub(left) >= INTERRUPT_MIN_DRAIN;
            match a {
                Ok(a) => {
                    report.interrupt_samples = report.interrupt_samples.saturating_add(a.consumed);
                    report.blocks = report.blocks.saturating_add(a.blocks);
                    if a.sink_full && enough {
                        break;
                    }
                }
                Err(_) if enough => break,
                Err(_) => {}
            }
            if n < WORD_CHUNK {
                break;
            }
        }
        // The drivers' own buffer is wiped by `poll` (`wipe_words`); an
        // empty scratch (drivers with a buffer) has nothing to wipe.
        let scratch = scratch.as_mut();
        if let Some(used) = scratch.get_mut(..written.min(scratch.len())) {
            used.zeroize();
        }
    }

    /// Takes external entropy: at most [`Pool::external_room`] bytes from
    /// the front of `data`; the rest is discarded. Returns how many bytes
    /// were taken (hashed into the pool: every byte counted here is gone,
    /// even when the source became disabled partway). The taken part is
    /// one piece for the external screen (`mixer::screen`): a
    /// piece that trips it is refused whole and disables the source; a
    /// piece too short to judge even with the external bytes before it
    /// (under `mixer::screen::MIN_WINDOW` bytes in all,
    /// just after start) is taken without credit. An accepted submission restarts the
    /// external-lost timer.
    ///
    /// # Errors
    /// [`Error::SourceUnavailable`] when the sources do not include
    /// external (nothing taken); [`Error::SourceDisabled`] when the source
    /// is disabled (repeated health failures, the screen: see
    /// [`Pool::external_disabled`]) before anything was taken, including
    /// by this piece's screen.
    pub fn submit(&mut self, data: &[u8]) -> Result<usize, Error> {
        if !self.sources.contains(Source::External) {
            return Err(Error::SourceUnavailable {
                source: Source::External,
            });
        }
        let room = self.external_room();
        let take = data.len().min(room);
        let Some(accepted) = data.get(..take) else {
            return Err(Error::NoRoom);
        };
        let consumed = self.absorb_external_piece(accepted)?;
        self.note_external(data.len(), consumed);
        Ok(consumed)
    }

    /// Screens `piece`, then absorbs it (without credit when it is too
    /// short to judge); returns the bytes consumed.
    fn absorb_external_piece(&mut self, piece: &[u8]) -> Result<usize, Error> {
        if piece.is_empty() {
            return Ok(0);
        }
        let credited = self.mixer.screen_external(piece)?;
        let consumed = self.absorb_external_bytes(piece, credited);
        self.commit_spilled();
        consumed
    }

    /// Why the external source is disabled, if it is (it then takes
    /// nothing until [`Pool::reset_source`]).
    #[must_use]
    pub fn external_disabled(&self) -> Option<crate::mixer::ExternalDisable> {
        self.mixer.external_disabled()
    }

    /// Disables the external source until [`Pool::reset_source`] (the
    /// daemon: it was disabled when the last run stopped).
    pub fn disable_external(&mut self) {
        self.mixer.disable_external();
    }

    /// Takes install-time entropy (the staged kickstart data) through the
    /// external path, whatever the sources mask: absorbs as much as the
    /// memory and storage caches can hold as blocks (the memory cache
    /// first); the rest is discarded. Returns the bytes absorbed. It writes
    /// the storage cache itself even when writes are deferred
    /// ([`Pool::defer_storage_writes`]): a seed fills the whole store
    /// once, at the first start, which [`OVERFLOW_BLOCKS`] at a time could not.
    ///
    /// # Errors
    /// [`Error::SourceDisabled`] when repeated health failures disabled the
    /// external source.
    pub fn seed_external(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.note_provenance(Source::External);
        let deferred = core::mem::replace(&mut self.defer_spill, false);
        let consumed = self.absorb_external_piece(data);
        self.defer_spill = deferred;
        let consumed = consumed?;
        self.note_external(data.len(), consumed);
        Ok(consumed)
    }

    /// Records that blocks made from now on may carry entropy of `source`
    /// (stamped on the blocks the storage cache keeps).
    fn note_provenance(&mut self, source: Source) {
        let value = self.provenance.value() | source.bit();
        if let Ok(mask) = SourceMask::new(u64::from(value)) {
            self.provenance = mask;
            self.storage.set_provenance(mask);
        }
    }

    fn note_external(&mut self, offered: usize, consumed: usize) {
        let consumed64 = u64::try_from(consumed).unwrap_or(u64::MAX);
        let discarded = u64::try_from(offered.saturating_sub(consumed)).unwrap_or(u64::MAX);
        self.external_accepted = self.external_accepted.saturating_add(consumed64);
        self.external_discarded = self.external_discarded.saturating_add(discarded);
        if consumed > 0 {
            let now = self.clock.now_ms();
            self.timer.on_external(now);
        }
    }

    /// Absorbs external bytes (credited or not) until they are used up or
    /// the caches are full; returns the bytes consumed. A source disabled
    /// partway ends the absorb with what was consumed so far (an error only
    /// when that is nothing).
    fn absorb_external_bytes(&mut self, data: &[u8], credited: bool) -> Result<usize, Error> {
        let mut consumed = 0usize;
        // Each round either consumes input or stops: bounded by data.len().
        while consumed < data.len() {
            let Some(rest) = data.get(consumed..) else {
                break;
            };
            let a = self.absorb_step(&[], |m, sink, _| {
                if credited {
                    m.absorb_external(rest, sink)
                } else {
                    m.absorb_external_uncredited(rest, sink)
                }
            });
            let a = match a {
                Ok(a) => a,
                // What was taken is taken: report it.
                Err(_) if consumed > 0 => break,
                Err(e) => return Err(e),
            };
            consumed = consumed.saturating_add(a.consumed);
            if a.consumed == 0 || (a.sink_full && self.storage.room() == 0) {
                break;
            }
        }
        Ok(consumed)
    }

    /// Fills `out` with full-entropy bytes from the memory cache, then the
    /// storage cache. All or nothing. The memory cache's blocks move in one
    /// batch, written straight into `out` with one ring index update
    /// (the memory cache's `write_out`).
    ///
    /// # Errors
    /// [`Error::ExternalLost`] or [`Error::Starving`] (see the module
    /// documentation) when the caches hold fewer blocks than `out` needs:
    /// nothing is taken then. [`Error::StorageIo`] when a stored block
    /// could not be erased: `out` is zeroized.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let now = self.clock.now_ms();
        self.timer.observe(now);
        let need = out.len().div_ceil(BLOCK_LEN);
        let stored = self.storage.available();
        let have = self.memory.len().saturating_add(stored);
        if need > have {
            return Err(self.timer.empty_caches_error(now));
        }
        // The memory cache first, in one batch straight into `out`.
        let written = self.memory.write_out(out);
        let popped = written.div_ceil(BLOCK_LEN);
        // The oldest cached blocks are the ones loaded from storage.
        let marked = popped.min(self.memory_from_storage);
        self.memory_from_storage = self.memory_from_storage.saturating_sub(marked);
        let mut from_storage = marked.saturating_mul(BLOCK_LEN).min(written);
        self.blocks_served = self
            .blocks_served
            .saturating_add(u64::try_from(popped).unwrap_or(u64::MAX));
        let mut result = Ok(());
        for chunk in out
            .get_mut(written..)
            .unwrap_or_default()
            .chunks_mut(BLOCK_LEN)
        {
            match self.storage.take_block() {
                Ok(Some(block)) => {
                    from_storage = from_storage.saturating_add(block.write_out(chunk));
                }
                Ok(None) => {
                    result = Err(Error::Starving);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            self.blocks_served = self.blocks_served.saturating_add(1);
        }
        match result {
            Ok(()) => {
                self.bytes_served = self
                    .bytes_served
                    .saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX));
                self.bytes_from_storage = self
                    .bytes_from_storage
                    .saturating_add(u64::try_from(from_storage).unwrap_or(u64::MAX));
                Ok(())
            }
            Err(e) => {
                out.zeroize();
                Err(e)
            }
        }
    }

    /// Restarts `source`'s health tests (re-enables a disabled source).
    pub fn reset_source(&mut self, source: Source) {
        self.mixer.reset_source(source);
    }

    /// Milliseconds on the pool's clock.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A snapshot for `status`.
    pub fn status(&mut self) -> PoolStatus {
        let now = self.clock.now_ms();
        let external = self.timer.status(now);
        let (recorded, dropped) = self.interrupts.as_ref().map_or((0, 0), |d| {
            let c = d.counters();
            (c.recorded(), c.dropped())
        });
        PoolStatus {
            sources: self.sources,
            tunables: self.tunables,
            memory_len_blocks: self.memory.len(),
            memory_capacity_blocks: self.memory.capacity(),
            low_watermark_percent: self.memory.low_watermark(),
            refill_wanted: self.memory.refill_wanted(),
            storage: self.storage.status(),
            per_source: Source::ALL.map(|s| self.mixer.stats(s)),
            rdrand: self.hw.rdrand_status(),
            rdseed: self.hw.rdseed_status(),
            interrupts_recorded: recorded,
            interrupts_dropped: dropped,
            external,
            external_bytes_accepted: self.external_accepted,
            external_bytes_discarded: self.external_discarded,
            mixer: self.mixer.mixer_stats(),
            blocks_served: self.blocks_served,
            bytes_served: self.bytes_served,
            bytes_served_from_storage: self.bytes_from_storage,
            blocks_discarded: self.blocks_discarded,
        }
    }
}

impl<C: PoolCpu, K: Clock, S: PoolStorage> crate::rng::EntropySource for Pool<'_, C, K, S> {
    /// Full-entropy bytes from the caches ([`Pool::fill`]): all or nothing.
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        self.fill(out)
    }
}
