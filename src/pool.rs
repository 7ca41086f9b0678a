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
//!   `fsync` per poll, submit or seed, not one per batch of blocks).
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
//!   pool; a configuration the pool cannot take is refused whole before
//!   anything changes.
//! - After construction nothing here allocates; nothing panics; every loop
//!   is bounded by a batch size or a cache capacity.
//! - Time comes only from the caller's [`Clock`]; a clock that steps back
//!   counts as no time passing.

use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::cache::{BLOCK_LEN, BlockSlot, MemoryCache};
use crate::config::{Config, Tunables};
use crate::error::Error;
use crate::health::{HealthState, STARTUP_SAMPLES};
use crate::hw::{Cpu, HwStats, Rdrand, Rdseed};
use crate::interrupt::InterruptDrain;
use crate::mixer::{BLOCK_CREDIT, Block, BlockSink, Mixer, MixerConfig, MixerStats, SourceStats};
use crate::source::{Source, SourceMask};
use crate::storage::{LoadReport, Storage, StorageCache};
use crate::watch::{Clock, ExternalLostTimer, ExternalStatus};

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
/// call (the storage cache is written once per batch, not per block).
const OVERFLOW_BLOCKS: usize = 16;
/// Batches of stored blocks loaded into the memory cache per
/// [`Pool::poll`] at start (one flush each).
const LOAD_BATCHES_PER_POLL: usize = 4;
/// Blocks written per batch when saving the memory cache at shutdown.
const FLUSH_BATCH: usize = 128;
/// Words moved through the pool's word buffer per absorb call: 256, or 64
/// where pointers are 32 bits (microcontrollers, where the buffer is part
/// of the pool's static RAM: 512 bytes instead of 2 KiB). A poll then
/// drains the interrupt ring in chunks, still at most [`INTERRUPT_BATCH`].
const WORD_CHUNK: usize = if cfg!(target_pointer_width = "32") {
    64
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
    /// The CPU backend: [`crate::hw::RealCpu`], or a fake in tests.
    pub cpu: C,
    /// The monotonic clock.
    pub clock: K,
    /// The memory cache's slots: at least `memory-cache-size` KiB × 32.
    pub memory: &'s mut [BlockSlot],
    /// The storage cache's medium, if any.
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
    /// daemon uses [`FileStorage::start_key`](crate::storage::FileStorage);
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

/// Blocks the mixer could not put into the memory cache, on their way to
/// the storage cache. Zeroized whenever emptied.
struct Overflow {
    blocks: [[u8; BLOCK_LEN]; OVERFLOW_BLOCKS],
    len: usize,
    /// How many more blocks the storage cache can take.
    room: usize,
}

impl Overflow {
    const fn new() -> Self {
        Overflow {
            blocks: [[0; BLOCK_LEN]; OVERFLOW_BLOCKS],
            len: 0,
            room: 0,
        }
    }
}

impl Drop for Overflow {
    fn drop(&mut self) {
        self.blocks.zeroize();
    }
}

/// The mixer's sink: the memory cache, then the overflow to storage.
struct CacheSink<'a, 's> {
    memory: &'a mut MemoryCache<'s>,
    overflow: &'a mut Overflow,
}

impl BlockSink for CacheSink<'_, '_> {
    fn offer(&mut self, block: Block) -> Result<(), Block> {
        if self.memory.push_copy(block.as_bytes()).is_ok() {
            // `block` wipes itself on drop.
            return Ok(());
        }
        let limit = self.overflow.room.min(OVERFLOW_BLOCKS);
        if self.overflow.len < limit {
            if let Some(slot) = self.overflow.blocks.get_mut(self.overflow.len) {
                slot.copy_from_slice(block.as_bytes());
                self.overflow.len = self.overflow.len.saturating_add(1);
                return Ok(());
            }
        }
        Err(block)
    }
}

/// The entropy pool. See the module documentation for its contract.
pub struct Pool<'s, C: Cpu + Clone, K: Clock, S: Storage> {
    tunables: Tunables,
    sources: SourceMask,
    clock: K,
    rdrand: Option<(Rdrand<C>, Option<Error>)>,
    rdseed: Option<(Rdseed<C>, Option<Error>)>,
    interrupts: Option<InterruptDrain<'s>>,
    mixer: Mixer,
    memory: MemoryCache<'s>,
    storage: Option<StorageCache<S>>,
    /// This start's storage key, kept for re-opening the store.
    storage_key: Zeroizing<[u8; 32]>,
    /// The sources blocks made from now on may come from: the resolved
    /// mask, plus external once install-time entropy was mixed in.
    provenance: SourceMask,
    /// A medium kept while storage-cache-size is 0.
    idle_medium: Option<S>,
    storage_error: Option<Error>,
    /// Blocks were spilled to storage and not flushed yet.
    spilled_unflushed: bool,
    /// Corrupt slots discarded by earlier opens of the store.
    storage_corrupt_before: u64,
    overflow: Overflow,
    timer: ExternalLostTimer,
    words: [u64; WORD_CHUNK],
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

impl<C: Cpu + Clone, K: Clock, S: Storage> fmt::Debug for Pool<'_, C, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pool { .. }")
    }
}

impl<C: Cpu + Clone, K: Clock, S: Storage> Drop for Pool<'_, C, K, S> {
    fn drop(&mut self) {
        self.words.zeroize();
    }
}

/// Storage slots for `tunables`: storage-cache-size counts entropy bytes.
fn storage_slots(tunables: &Tunables) -> u64 {
    u64::from(tunables.storage_cache_blocks())
}

impl<'s, C: Cpu + Clone, K: Clock, S: Storage> Pool<'s, C, K, S> {
    /// Builds the pool and loads the storage cache into the memory cache.
    /// Returns the storage cache's load report too (it says whether a
    /// corrupt store was discarded).
    ///
    /// # Errors
    /// - [`Error::SourceUnavailable`] when the mask names a hardware source
    ///   the CPU lacks; the drivers' errors ([`Error::KnownBadCpu`],
    ///   [`Error::SelfTestFailed`], [`Error::RdseedNotNow`] when RDSEED gave
    ///   no seed for its whole self-test budget).
    /// - [`Error::CapacityTooSmall`] when `memory` holds fewer slots than
    ///   memory-cache-size asks for, or the medium is too small.
    /// - [`Error::StorageIo`] when the storage cache cannot be opened.
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
        let mut key = key;
        let storage_key = Zeroizing::new(storage_key);
        let tunables = config.tunables;
        let sources = config.sources.resolve(cpu.features())?;
        let rdrand = if sources.contains(Source::Rdrand) {
            Some((Rdrand::new(cpu.clone())?, None))
        } else {
            None
        };
        let rdseed = if sources.contains(Source::Rdseed) {
            Some((Rdseed::new(cpu)?, None))
        } else {
            None
        };
        let external_rate = mixer.source(Source::External).credit.units();
        let mixer = Mixer::new(&mixer, &key);
        key.zeroize();
        let mixer = mixer?;
        let memory = MemoryCache::new(
            memory,
            u64::from(tunables.memory_cache_size_kib()),
            tunables.low_watermark_percent(),
        )?;
        let slots = storage_slots(&tunables);
        let (storage, idle_medium, report) = match storage {
            Some(medium) if slots > 0 => {
                let (cache, report) = StorageCache::open(medium, slots, sources, &storage_key)?;
                (Some(cache), None, Some(report))
            }
            other => (None, other, None),
        };
        let now = clock.now_ms();
        let timer = ExternalLostTimer::new(
            sources,
            u64::from(tunables.external_entropy_lost_timeout_s()),
            now,
        );
        let mut pool = Pool {
            tunables,
            sources,
            clock,
            rdrand,
            rdseed,
            interrupts,
            mixer,
            memory,
            storage,
            storage_key,
            provenance: sources,
            idle_medium,
            storage_error: None,
            spilled_unflushed: false,
            storage_corrupt_before: 0,
            overflow: Overflow::new(),
            timer,
            words: [0; WORD_CHUNK],
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
        pool.loading = pool.storage.is_some();
        pool.load_from_storage(1);
        Ok((pool, report))
    }

    /// Moves stored blocks into the memory cache, at most `batches` batches
    /// of [`OVERFLOW_BLOCKS`] (each batch is erased from storage, durably,
    /// before it moves). Loading ends for good once the memory cache is
    /// full or the storage cache empty (or failing).
    fn load_from_storage(&mut self, batches: usize) -> usize {
        if !self.loading {
            return 0;
        }
        let Some(storage) = self.storage.as_mut() else {
            self.loading = false;
            return 0;
        };
        let mut moved = 0usize;
        let mut batch = [[0u8; BLOCK_LEN]; OVERFLOW_BLOCKS];
        let mut done = true;
        for _ in 0..batches {
            done = true;
            let room = self
                .memory
                .capacity()
                .saturating_sub(self.memory.len())
                .min(OVERFLOW_BLOCKS);
            let Some(dst) = batch.get_mut(..room) else {
                break;
            };
            if dst.is_empty() {
                break;
            }
            match storage.take_many(dst) {
                Ok(0) => break,
                Ok(n) => {
                    done = false;
                    for block in batch.iter_mut().take(n) {
                        if self.memory.push(block).is_err() {
                            // Cannot happen (room was checked); never keep it.
                            block.zeroize();
                            self.blocks_discarded = self.blocks_discarded.saturating_add(1);
                        }
                    }
                    moved = moved.saturating_add(n);
                    self.memory_from_storage = self.memory_from_storage.saturating_add(n);
                }
                Err(e) => {
                    self.storage_error = Some(e);
                    break;
                }
            }
        }
        batch.zeroize();
        if done {
            self.loading = false;
        }
        moved
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
    /// has room, or the mixer holds a block it could not deliver.
    #[must_use]
    pub fn blocks_wanted(&self) -> bool {
        self.memory.refill_wanted().is_some()
            || (self.memory.is_full() && self.storage.as_ref().is_some_and(|s| !s.is_full()))
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

    fn storage_room(&self) -> usize {
        self.storage.as_ref().map_or(0, |s| {
            usize::try_from(s.capacity_blocks().saturating_sub(s.len())).unwrap_or(usize::MAX)
        })
    }

    /// Writes the overflow blocks to the storage cache (or wipes them when
    /// that fails).
    fn spill_overflow(&mut self) {
        let len = self.overflow.len;
        if len == 0 {
            return;
        }
        self.overflow.len = 0;
        let Some(blocks) = self.overflow.blocks.get_mut(..len) else {
            return;
        };
        match self.storage.as_mut() {
            // Not flushed per batch: one flush at the end of the call
            // (`flush_spilled`). A crash before it loses these blocks; it
            // cannot replay them (the copies here are wiped).
            Some(storage) => match storage.push_many_deferred(blocks) {
                Ok(n) => {
                    self.spilled_unflushed = self.spilled_unflushed || n > 0;
                    let lost = len.saturating_sub(n);
                    self.blocks_discarded = self
                        .blocks_discarded
                        .saturating_add(u64::try_from(lost).unwrap_or(u64::MAX));
                }
                Err(e) => {
                    self.storage_error = Some(e);
                    self.blocks_discarded = self
                        .blocks_discarded
                        .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
                }
            },
            None => {
                self.blocks_discarded = self
                    .blocks_discarded
                    .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
            }
        }
        // push_many zeroizes what it stored; wipe everything regardless.
        wipe(blocks);
    }

    /// Makes the blocks spilled to storage since the last call durable: one
    /// flush per [`Pool::poll`], [`Pool::submit`] or
    /// [`Pool::seed_external`], not one per batch of blocks.
    fn flush_spilled(&mut self) {
        if !core::mem::take(&mut self.spilled_unflushed) {
            return;
        }
        if let Some(storage) = self.storage.as_mut() {
            if let Err(e) = storage.flush() {
                self.storage_error = Some(e);
            }
        }
    }

    /// Runs one absorb step with the caches as the sink, then spills the
    /// overflow to storage.
    fn absorb_step<F>(&mut self, step: F) -> Result<crate::mixer::Absorbed, Error>
    where
        F: FnOnce(
            &mut Mixer,
            &mut CacheSink<'_, 's>,
            &[u64],
        ) -> Result<crate::mixer::Absorbed, Error>,
    {
        self.overflow.room = self.storage_room();
        let mut sink = CacheSink {
            memory: &mut self.memory,
            overflow: &mut self.overflow,
        };
        // A block held from an earlier call goes first. The step offers it
        // again itself (and consumes nothing while it is refused, reporting
        // the source's real state), but not when that source is disabled:
        // this keeps the held block moving whichever source runs.
        self.mixer.deliver_held(&mut sink);
        let result = step(&mut self.mixer, &mut sink, &self.words);
        self.spill_overflow();
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
        let mut left = INTERRUPT_BATCH;
        while left > 0 {
            let Some(drain) = self.interrupts.as_mut() else {
                break;
            };
            let Some(buf) = self.words.get_mut(..left.min(WORD_CHUNK)) else {
                break;
            };
            let n = drain.drain_timestamps(buf);
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
            let a = self.absorb_step(|m, sink, words| match words.get(..n) {
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

        if !loading && self.blocks_wanted() {
            if let Some((drv, last)) = self.rdseed.as_mut() {
                let mut got = 0usize;
                if let Some(buf) = self.words.get_mut(..RDSEED_BATCH) {
                    match drv.fill(buf) {
                        Ok(n) => {
                            got = n;
                            *last = None;
                        }
                        Err(e) => *last = Some(e),
                    }
                }
                if got > 0 {
                    let a = self.absorb_step(|m, sink, words| match words.get(..got) {
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
            while left > 0 && self.rdrand.is_some() {
                let chunk = left.min(WORD_CHUNK);
                left = left.saturating_sub(chunk);
                let Some((drv, last)) = self.rdrand.as_mut() else {
                    break;
                };
                let Some(buf) = self.words.get_mut(..chunk) else {
                    break;
                };
                if let Err(e) = drv.fill(buf) {
                    *last = Some(e);
                    break;
                }
                *last = None;
                let a = self.absorb_step(|m, sink, words| match words.get(..chunk) {
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
        self.words.zeroize();
        self.flush_spilled();
        report.still_wanted = self.loading || self.blocks_wanted();
        Ok(report)
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
        self.flush_spilled();
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
    /// first); the rest is discarded. Returns the bytes absorbed.
    ///
    /// # Errors
    /// [`Error::SourceDisabled`] when repeated health failures disabled the
    /// external source.
    pub fn seed_external(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.note_provenance(Source::External);
        let consumed = self.absorb_external_piece(data)?;
        self.note_external(data.len(), consumed);
        Ok(consumed)
    }

    /// Records that blocks made from now on may carry entropy of `source`
    /// (stamped on the blocks the storage cache keeps).
    fn note_provenance(&mut self, source: Source) {
        let value = self.provenance.value() | source.bit();
        if let Ok(mask) = SourceMask::new(u64::from(value)) {
            self.provenance = mask;
            if let Some(s) = self.storage.as_mut() {
                // `mask` holds `source`, so it is never 0.
                let _ = s.set_provenance(mask);
            }
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
            let a = self.absorb_step(|m, sink, _| {
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
            if a.consumed == 0 || (a.sink_full && self.storage_room() == 0) {
                break;
            }
        }
        Ok(consumed)
    }

    /// Fills `out` with full-entropy bytes from the memory cache, then the
    /// storage cache. All or nothing.
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
        let stored = self
            .storage
            .as_ref()
            .map_or(0, |s| usize::try_from(s.len()).unwrap_or(usize::MAX));
        let have = self.memory.len().saturating_add(stored);
        if need > have {
            return Err(self.timer.empty_caches_error(now));
        }
        let mut block = [0u8; BLOCK_LEN];
        let mut result = Ok(());
        let mut from_storage = 0usize;
        for chunk in out.chunks_mut(BLOCK_LEN) {
            // A whole block goes straight into `out`: no copy left behind.
            if let Ok(whole) = <&mut [u8; BLOCK_LEN]>::try_from(&mut *chunk) {
                if self.memory.pop(whole).is_ok() {
                    self.blocks_served = self.blocks_served.saturating_add(1);
                    from_storage = from_storage.saturating_add(self.take_stored_mark(BLOCK_LEN));
                    continue;
                }
            }
            if self.memory.pop(&mut block).is_ok() {
                from_storage = from_storage.saturating_add(self.take_stored_mark(chunk.len()));
            } else {
                match self.storage.as_mut().map(|s| s.take(&mut block)) {
                    Some(Ok(true)) => from_storage = from_storage.saturating_add(chunk.len()),
                    Some(Ok(false)) | None => {
                        result = Err(Error::Starving);
                        break;
                    }
                    Some(Err(e)) => {
                        self.storage_error = Some(e);
                        result = Err(e);
                        break;
                    }
                }
            }
            if let Some(src) = block.get(..chunk.len()) {
                chunk.copy_from_slice(src);
            }
            block.zeroize();
            self.blocks_served = self.blocks_served.saturating_add(1);
        }
        block.zeroize();
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

    /// Counts one block popped from the front of the memory cache: returns
    /// `len` when it was one loaded from the storage cache, else 0.
    fn take_stored_mark(&mut self, len: usize) -> usize {
        if self.memory_from_storage == 0 {
            return 0;
        }
        self.memory_from_storage = self.memory_from_storage.saturating_sub(1);
        len
    }

    /// Applies new tunables to the running pool. Checked whole first: a
    /// memory-cache-size the slots cannot hold is refused and nothing
    /// changes. Shrinking the memory cache moves the excess blocks to the
    /// storage cache, or wipes and counts them; changing storage-cache-size
    /// re-opens the store with the new size (blocks that fit are kept).
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] (nothing changed);
    /// [`Error::StorageIo`] when re-opening the store failed (the store is
    /// then closed and its blocks stay unused on the medium).
    pub fn set_tunables(&mut self, new: &Tunables) -> Result<(), Error> {
        let want = crate::cache::blocks_for_kib(u64::from(new.memory_cache_size_kib()))
            .ok_or(Error::CapacityTooSmall)?;
        if want > self.memory.storage_capacity() {
            return Err(Error::CapacityTooSmall);
        }
        self.memory.set_low_watermark(new.low_watermark_percent())?;
        let mut spilled = Overflow::new();
        let mut storage = self.storage.take();
        let mut discarded = 0u64;
        let mut storage_error = None;
        let res = self
            .memory
            .set_size_kib(u64::from(new.memory_cache_size_kib()), |block| {
                if spilled.len == OVERFLOW_BLOCKS {
                    if let Some(s) = storage.as_mut() {
                        if let Err(e) = s.push_many(&mut spilled.blocks) {
                            storage_error = Some(e);
                        }
                    }
                    spilled.blocks.zeroize();
                    spilled.len = 0;
                }
                if let Some(slot) = spilled.blocks.get_mut(spilled.len) {
                    slot.copy_from_slice(block);
                    spilled.len = spilled.len.saturating_add(1);
                }
                block.zeroize();
            });
        if let Some(tail) = spilled.blocks.get_mut(..spilled.len) {
            match storage.as_mut() {
                Some(s) => match s.push_many(tail) {
                    Ok(n) => {
                        discarded = discarded.saturating_add(
                            u64::try_from(tail.len().saturating_sub(n)).unwrap_or(0),
                        );
                    }
                    Err(e) => storage_error = Some(e),
                },
                None => {
                    discarded =
                        discarded.saturating_add(u64::try_from(tail.len()).unwrap_or(u64::MAX));
                }
            }
            wipe(tail);
        }
        self.storage = storage;
        // The oldest blocks (loaded from storage first) spilled first.
        if let Ok(n) = &res {
            self.memory_from_storage = self.memory_from_storage.saturating_sub(*n);
        }
        self.blocks_discarded = self.blocks_discarded.saturating_add(discarded);
        if let Some(e) = storage_error {
            self.storage_error = Some(e);
        }
        res?;
        self.timer
            .set_timeout_secs(u64::from(new.external_entropy_lost_timeout_s()));
        let old_slots = storage_slots(&self.tunables);
        let new_slots = storage_slots(new);
        self.tunables = *new;
        if old_slots != new_slots {
            self.reopen_storage(new_slots)?;
        }
        Ok(())
    }

    fn reopen_storage(&mut self, slots: u64) -> Result<(), Error> {
        let medium = match (self.storage.take(), self.idle_medium.take()) {
            (Some(cache), _) => {
                self.storage_corrupt_before = self
                    .storage_corrupt_before
                    .saturating_add(cache.corrupt_discarded());
                Some(cache.into_storage())
            }
            (None, idle) => idle,
        };
        let Some(medium) = medium else {
            return Ok(());
        };
        if slots == 0 {
            self.idle_medium = Some(medium);
            return Ok(());
        }
        match StorageCache::open(medium, slots, self.provenance, &self.storage_key) {
            Ok((cache, _report)) => {
                self.storage = Some(cache);
                Ok(())
            }
            Err(e) => {
                self.storage_error = Some(e);
                Err(e)
            }
        }
    }

    /// Moves every block of the memory cache (and a block the mixer holds)
    /// to the storage cache, for a shutdown; blocks that do not fit are
    /// wiped and counted. Returns the blocks saved.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when writing failed (the blocks concerned are
    /// wiped, never kept in two places).
    pub fn flush_to_storage(&mut self) -> Result<usize, Error> {
        let mut saved = 0usize;
        let mut batch = [[0u8; BLOCK_LEN]; FLUSH_BATCH];
        let mut result = Ok(());
        if let Some(held) = self.mixer.take_held() {
            let mut bytes = *held.as_bytes();
            if self.memory.push(&mut bytes).is_err() {
                if let Some(s) = self.storage.as_mut() {
                    match s.push(&mut bytes) {
                        Ok(true) => saved = saved.saturating_add(1),
                        Ok(false) => {
                            self.blocks_discarded = self.blocks_discarded.saturating_add(1);
                        }
                        Err(e) => result = Err(e),
                    }
                }
                bytes.zeroize();
            }
        }
        // Bounded by the memory cache's capacity.
        loop {
            let mut n = 0usize;
            for slot in &mut batch {
                if self.memory.pop(slot).is_err() {
                    break;
                }
                n = n.saturating_add(1);
            }
            if n == 0 {
                break;
            }
            let Some(blocks) = batch.get_mut(..n) else {
                break;
            };
            let stored = match (self.storage.as_mut(), result.is_ok()) {
                (Some(s), true) => match s.push_many_deferred(blocks) {
                    Ok(k) => k,
                    Err(e) => {
                        result = Err(e);
                        0
                    }
                },
                _ => 0,
            };
            saved = saved.saturating_add(stored);
            self.blocks_discarded = self
                .blocks_discarded
                .saturating_add(u64::try_from(n.saturating_sub(stored)).unwrap_or(u64::MAX));
            wipe(blocks);
        }
        wipe(&mut batch);
        self.memory_from_storage = 0;
        // One flush for the whole save.
        if result.is_ok() && saved > 0 {
            if let Some(s) = self.storage.as_mut() {
                result = s.flush();
            }
        }
        if let Err(e) = result {
            self.storage_error = Some(e);
        }
        result.map(|()| saved)
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
            storage: StorageStatus {
                present: self.storage.is_some(),
                len_blocks: self.storage.as_ref().map_or(0, StorageCache::len),
                capacity_blocks: self
                    .storage
                    .as_ref()
                    .map_or(0, StorageCache::capacity_blocks),
                corrupt_discarded: self.storage_corrupt_before.saturating_add(
                    self.storage
                        .as_ref()
                        .map_or(0, StorageCache::corrupt_discarded),
                ),
                last_error: self.storage_error,
            },
            per_source: Source::ALL.map(|s| self.mixer.stats(s)),
            rdrand: self.rdrand.as_ref().map(|(d, e)| HardwareStatus {
                stats: d.stats(),
                last_error: *e,
            }),
            rdseed: self.rdseed.as_ref().map(|(d, e)| HardwareStatus {
                stats: d.stats(),
                last_error: *e,
            }),
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

/// Zeroizes every block of `blocks`.
fn wipe(blocks: &mut [[u8; BLOCK_LEN]]) {
    for block in blocks {
        block.zeroize();
    }
}

impl<C: Cpu + Clone, K: Clock, S: Storage> crate::rng::EntropySource for Pool<'_, C, K, S> {
    /// Full-entropy bytes from the caches ([`Pool::fill`]): all or nothing.
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        self.fill(out)
    }
}
