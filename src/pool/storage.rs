//! The pool's storage component: the one place that moves blocks between
//! the pool and its [`StorageCache`].
//!
//! # Contract
//!
//! - **One spill routine.** Every block that leaves the pool for storage
//!   goes through [`StorageTier::store`]: the overflow of an absorb step
//!   ([`Pool::poll`], [`Pool::submit`], [`Pool::seed_external`]), the
//!   excess of a memory cache that shrinks ([`Pool::set_tunables`]) and
//!   the shutdown save ([`Pool::flush_to_storage`]). It answers
//!   [`StorageMove`]: each block offered is either stored or discarded
//!   (wiped and counted in [`PoolStatus::blocks_discarded`]), never both,
//!   never neither. A block the medium took before a write failed counts
//!   as stored (the cache counts it; a later take checks it), the others
//!   as discarded. Every caller's copy is wiped either way.
//! - **One flush per call.** `store` writes without flushing;
//!   [`StorageTier::commit`] flushes once when anything was written, at
//!   the end of the pool call (a crash before it loses those blocks,
//!   never replays them: the pool's copies are gone).
//! - **Resize is all or nothing.** [`StorageTier::resize`] re-opens the
//!   store for a new storage-cache-size in place; on an error the store
//!   keeps its old size and an idle medium stays idle (never dropped).
//! - **Spill jobs** ([`SpillJob`]): with [`Pool::defer_storage_writes`],
//!   `poll` and `submit` write nothing; blocks for storage wait in the
//!   overflow (at most [`OVERFLOW_BLOCKS`]), and [`Pool::take_spill`] lends
//!   the store to a job together with those blocks, the pool's copies
//!   wiped. The caller writes the job without holding whatever guards the
//!   pool ([`SpillJob::write`]: the writes and one flush), then gives it
//!   back ([`Pool::finish_spill`]). Meanwhile the pool serves from memory,
//!   counts the store's room less the job's blocks, and refuses what
//!   needs the store itself ([`STORAGE_LENT`]). A block is owned by the
//!   pool, by the job, or by the store, one at a time: a crash mid-write
//!   loses the job's blocks and replays none.
//!
//! [`PoolStatus::blocks_discarded`]: super::PoolStatus::blocks_discarded

use core::fmt;

use zeroize::Zeroizing;

use super::kind::{PoolCpu, PoolStorage, Tier};
use super::{FLUSH_BATCH, OVERFLOW_BLOCKS, Pool, StorageStatus, storage_slots};
use crate::config::Tunables;
use crate::error::Error;
use crate::mixer::Block;
use crate::source::SourceMask;
use crate::storage::{LoadReport, Storage, StorageCache, drop_blocks};
use crate::watch::Clock;

/// The error of a call that needs the storage cache while a [`SpillJob`]
/// has it (`EBUSY`); nothing changed.
pub const STORAGE_LENT: Error = Error::StorageIo { errno: 16 };

/// What one move of blocks to the storage cache did: each block offered
/// was stored or discarded, exactly one of the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageMove {
    /// Blocks the store took.
    pub stored: usize,
    /// Blocks wiped unused (the store was full, absent or failing).
    pub discarded: usize,
}

impl StorageMove {
    fn add(&mut self, other: Self) {
        self.stored = self.stored.saturating_add(other.stored);
        self.discarded = self.discarded.saturating_add(other.discarded);
    }
}

/// The store as a [`SpillJob`] took it: what the pool shows and counts
/// meanwhile.
#[derive(Clone, Copy, Debug)]
struct Lent {
    len: u64,
    capacity: u64,
    corrupt: u64,
    /// Blocks the job carries (on their way in).
    blocks: usize,
}

/// Blocks the mixer could not put into the memory cache, on their way to
/// the storage cache (each wipes itself when dropped).
pub(super) struct Overflow {
    pub(super) blocks: [Option<Block>; OVERFLOW_BLOCKS],
    pub(super) len: usize,
    /// How many more blocks the storage cache can take.
    room: usize,
}

impl Overflow {
    const fn new() -> Self {
        Overflow {
            blocks: [const { None }; OVERFLOW_BLOCKS],
            len: 0,
            room: 0,
        }
    }
}

/// The storage state of a pool over a [`Storage`] (a pool over
/// [`NoStorage`](crate::NoStorage) has none): the storage tier and the
/// overflow toward it.
pub struct StorageState<S: Storage> {
    pub(super) tier: StorageTier<S>,
    pub(super) overflow: Overflow,
}

impl<S: Storage> fmt::Debug for StorageState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageState { .. }")
    }
}

impl<S: Storage> Tier for StorageState<S> {
    type Medium = S;

    fn open(
        medium: Option<S>,
        tunables: &Tunables,
        sources: SourceMask,
        key: &[u8; 32],
    ) -> Result<(Self, Option<LoadReport>), Error> {
        let (tier, report) = StorageTier::open(medium, storage_slots(tunables), sources, key)?;
        let state = StorageState {
            tier,
            overflow: Overflow::new(),
        };
        Ok((state, report))
    }

    fn present(&self) -> bool {
        self.tier.present()
    }

    fn room(&self) -> usize {
        self.tier.room()
    }

    fn available(&self) -> usize {
        self.tier.available()
    }

    fn is_lent(&self) -> bool {
        self.tier.is_lent()
    }

    fn store(&mut self, blocks: &mut [Option<Block>]) -> (StorageMove, Result<(), Error>) {
        self.tier.store(blocks)
    }

    fn commit(&mut self) -> Result<(), Error> {
        self.tier.commit()
    }

    fn resize(&mut self, tunables: &Tunables, sources: SourceMask) -> Result<(), Error> {
        self.tier.resize(storage_slots(tunables), sources)
    }

    fn take_blocks(&mut self, out: &mut [Option<Block>]) -> Result<usize, Error> {
        self.tier.take_blocks(out)
    }

    fn set_provenance(&mut self, sources: SourceMask) {
        self.tier.set_provenance(sources);
    }

    fn status(&self) -> StorageStatus {
        self.tier.status(self.overflow.len)
    }

    fn begin_step(&mut self) {
        self.overflow.room = self.tier.room();
    }

    fn offer_overflow(&mut self, block: Block) -> Result<(), Block> {
        let overflow = &mut self.overflow;
        let limit = overflow.room.min(OVERFLOW_BLOCKS);
        if overflow.len < limit {
            if let Some(slot) = overflow.blocks.get_mut(overflow.len) {
                *slot = Some(block);
                overflow.len = overflow.len.saturating_add(1);
                return Ok(());
            }
        }
        Err(block)
    }

    /// A store is open with room beyond the blocks waiting for it, and
    /// fewer than [`OVERFLOW_BLOCKS`] wait.
    fn wants_blocks(&self) -> bool {
        self.tier.present()
            && self.tier.room() > self.overflow.len
            && self.overflow.len < OVERFLOW_BLOCKS
    }

    /// Writes the overflow blocks to the storage cache (not flushed: see
    /// [`Pool::commit_spilled`]). While the store is lent to a job they
    /// wait in the overflow.
    fn spill_overflow(&mut self) -> StorageMove {
        let len = self.overflow.len;
        if len == 0 || self.tier.is_lent() {
            return StorageMove::default();
        }
        self.overflow.len = 0;
        let Some(blocks) = self.overflow.blocks.get_mut(..len) else {
            return StorageMove::default();
        };
        let (moved, _) = self.tier.store(blocks);
        moved
    }

    fn store_overflow(&mut self) -> (StorageMove, Result<(), Error>) {
        let waiting = core::mem::take(&mut self.overflow.len);
        match self.overflow.blocks.get_mut(..waiting) {
            Some(blocks) => self.tier.store(blocks),
            None => (StorageMove::default(), Ok(())),
        }
    }
}

/// The pool's storage cache, its idle medium and its bookkeeping.
pub(super) struct StorageTier<S: Storage> {
    cache: Option<StorageCache<S>>,
    /// A medium kept while storage-cache-size is 0.
    idle: Option<S>,
    /// This start's storage key, kept for re-opening the store.
    key: Zeroizing<[u8; 32]>,
    error: Option<Error>,
    /// Blocks were written and not flushed yet.
    unflushed: bool,
    /// Corrupt slots discarded by earlier opens of the store.
    corrupt_before: u64,
    lent: Option<Lent>,
}

impl<S: Storage> StorageTier<S> {
    /// Opens `medium` for `slots` slots (kept idle when `slots` is 0).
    pub(super) fn open(
        medium: Option<S>,
        slots: u64,
        sources: SourceMask,
        key: &[u8; 32],
    ) -> Result<(Self, Option<LoadReport>), Error> {
        // The one copy: kept (wiped on drop) to re-open the store.
        let key = Zeroizing::new(*key);
        let (cache, idle, report) = match medium {
            Some(medium) if slots > 0 => {
                let (cache, report) = StorageCache::open(medium, slots, sources, &key)?;
                (Some(cache), None, Some(report))
            }
            other => (None, other, None),
        };
        let tier = StorageTier {
            cache,
            idle,
            key,
            error: None,
            unflushed: false,
            corrupt_before: 0,
            lent: None,
        };
        Ok((tier, report))
    }

    /// A store is open (possibly lent to a job).
    pub(super) const fn present(&self) -> bool {
        self.cache.is_some() || self.lent.is_some()
    }

    /// Blocks stored, as far as the pool knows.
    fn len(&self) -> u64 {
        match (&self.cache, self.lent) {
            (Some(c), _) => c.len(),
            (None, Some(l)) => l.len,
            (None, None) => 0,
        }
    }

    fn capacity(&self) -> u64 {
        match (&self.cache, self.lent) {
            (Some(c), _) => c.capacity_blocks(),
            (None, Some(l)) => l.capacity,
            (None, None) => 0,
        }
    }

    /// Blocks the store can take beyond those stored and on their way.
    pub(super) fn room(&self) -> usize {
        let on_the_way = self.lent.map_or(0, |l| l.blocks);
        let room = self.capacity().saturating_sub(self.len());
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .saturating_sub(on_the_way)
    }

    /// Blocks that can be taken now (none while lent).
    pub(super) fn available(&self) -> usize {
        self.cache
            .as_ref()
            .map_or(0, |c| usize::try_from(c.len()).unwrap_or(usize::MAX))
    }

    /// Whether the store is lent to a [`SpillJob`].
    pub(super) const fn is_lent(&self) -> bool {
        self.lent.is_some()
    }

    /// Writes `blocks` into free slots, not flushed (see
    /// [`commit`](Self::commit)); wipes every one of them. A failure is
    /// recorded and returned beside the counts.
    pub(super) fn store(
        &mut self,
        blocks: &mut [Option<Block>],
    ) -> (StorageMove, Result<(), Error>) {
        let n = blocks.len();
        let (stored, result) = match self.cache.as_mut() {
            None if self.lent.is_some() => (0, Err(STORAGE_LENT)),
            None => (0, Ok(())),
            Some(cache) => {
                let before = cache.len();
                match cache.push_many_deferred(blocks) {
                    Ok(k) => (k, Ok(())),
                    Err(e) => {
                        // The slots written before the failure hold their
                        // blocks (the cache counts them); the rest are lost.
                        let landed = cache.len().saturating_sub(before);
                        (usize::try_from(landed).unwrap_or(n).min(n), Err(e))
                    }
                }
            }
        };
        drop_blocks(blocks);
        if stored > 0 {
            self.unflushed = true;
        }
        if let Err(e) = result {
            if e != STORAGE_LENT {
                self.error = Some(e);
            }
        }
        let moved = StorageMove {
            stored,
            discarded: n.saturating_sub(stored),
        };
        (moved, result)
    }

    /// Makes what [`store`](Self::store) wrote durable: one flush, when
    /// anything was written since the last one.
    pub(super) fn commit(&mut self) -> Result<(), Error> {
        if !core::mem::take(&mut self.unflushed) {
            return Ok(());
        }
        let result = self.cache.as_mut().map_or(Ok(()), StorageCache::flush);
        if let Err(e) = result {
            self.error = Some(e);
        }
        result
    }

    /// Re-opens the store for `slots` slots (0 closes it and keeps the
    /// medium idle). On an error nothing changed: the store keeps its old
    /// size, an idle medium stays idle, and no error is recorded (the
    /// caller gets it).
    pub(super) fn resize(&mut self, slots: u64, sources: SourceMask) -> Result<(), Error> {
        if self.lent.is_some() {
            return Err(STORAGE_LENT);
        }
        if slots == 0 {
            if let Some(cache) = self.cache.take() {
                self.corrupt_before = self
                    .corrupt_before
                    .saturating_add(cache.corrupt_discarded());
                self.idle = Some(cache.into_storage());
            }
            return Ok(());
        }
        if let Some(cache) = self.cache.as_mut() {
            if cache.capacity_blocks() == slots {
                return Ok(());
            }
            // It flushes whatever it changes, earlier writes included.
            cache.resize(slots, sources)?;
            self.unflushed = false;
            return Ok(());
        }
        let Some(medium) = self.idle.take() else {
            return Ok(());
        };
        match StorageCache::open_or_return(medium, slots, sources, &self.key) {
            Ok((cache, _report)) => {
                self.cache = Some(cache);
                Ok(())
            }
            Err((e, medium)) => {
                self.idle = Some(medium);
                Err(e)
            }
        }
    }

    /// Takes up to `out.len()` blocks as [`Block`]s (the loader, see
    /// [`StorageCache::take_many`] for the rules); 0 when there is no store
    /// or it is lent. A failure is recorded.
    pub(super) fn take_blocks(&mut self, out: &mut [Option<Block>]) -> Result<usize, Error> {
        let Some(cache) = self.cache.as_mut() else {
            return Ok(0);
        };
        let result = cache.take_blocks(out);
        if let Err(e) = result {
            self.error = Some(e);
        }
        result
    }

    /// Stamps `sources` on every block stored from now on.
    pub(super) fn set_provenance(&mut self, sources: SourceMask) {
        if let Some(c) = self.cache.as_mut() {
            // `sources` is never 0 here (the pool's masks are resolved).
            let _ = c.set_provenance(sources);
        }
    }

    /// The store as status shows it; `pending` blocks wait in the pool's
    /// overflow.
    pub(super) fn status(&self, pending: usize) -> StorageStatus {
        let (corrupt, on_the_way) = match (&self.cache, self.lent) {
            (Some(c), _) => (c.corrupt_discarded(), 0),
            (None, Some(l)) => (l.corrupt, l.blocks),
            (None, None) => (0, 0),
        };
        StorageStatus {
            present: self.present(),
            len_blocks: self.len(),
            capacity_blocks: self.capacity(),
            corrupt_discarded: self.corrupt_before.saturating_add(corrupt),
            last_error: self.error,
            pending_blocks: u64::try_from(pending.saturating_add(on_the_way)).unwrap_or(u64::MAX),
        }
    }

    /// Lends the store to a job carrying `blocks` blocks.
    fn lend(&mut self, blocks: usize) -> Option<StorageCache<S>> {
        let cache = self.cache.take()?;
        self.lent = Some(Lent {
            len: cache.len(),
            capacity: cache.capacity_blocks(),
            corrupt: cache.corrupt_discarded(),
            blocks,
        });
        Some(cache)
    }

    /// Takes the store back from a job.
    fn give_back(&mut self, cache: StorageCache<S>, sources: SourceMask) {
        self.lent = None;
        self.cache = Some(cache);
        self.set_provenance(sources);
    }
}

/// Blocks on their way to the storage cache, with the store lent to carry
/// them there outside the pool's lock. See the module documentation
/// ([`Pool::take_spill`]). The blocks are wiped on drop; a job dropped
/// without [`Pool::finish_spill`] takes the store with it (the pool then
/// runs without one, and never replays a block).
pub struct SpillJob<S: Storage> {
    cache: Option<StorageCache<S>>,
    blocks: [Option<Block>; OVERFLOW_BLOCKS],
    len: usize,
    done: Option<(StorageMove, Result<(), Error>)>,
}

impl<S: Storage> fmt::Debug for SpillJob<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpillJob")
            .field("blocks", &self.len)
            .field("written", &self.done.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> SpillJob<S> {
    /// Blocks the job carries.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the job carries no block.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the blocks to the store and flushes once; the blocks are
    /// wiped whatever happens. Does the I/O: call it without holding the
    /// pool's lock. A second call does nothing.
    pub fn write(&mut self) {
        if self.done.is_some() {
            return;
        }
        let n = self.len;
        self.len = 0;
        let blocks = self.blocks.get_mut(..n).unwrap_or_default();
        let (stored, mut result) = match self.cache.as_mut() {
            None => (0, Ok(())),
            Some(cache) => {
                let before = cache.len();
                match cache.push_many_deferred(blocks) {
                    Ok(k) => (k, Ok(())),
                    Err(e) => {
                        let landed = cache.len().saturating_sub(before);
                        (usize::try_from(landed).unwrap_or(n).min(n), Err(e))
                    }
                }
            }
        };
        if stored > 0 {
            if let Some(cache) = self.cache.as_mut() {
                let flushed = cache.flush();
                if result.is_ok() {
                    result = flushed;
                }
            }
        }
        drop_blocks(&mut self.blocks);
        let moved = StorageMove {
            stored,
            discarded: n.saturating_sub(stored),
        };
        self.done = Some((moved, result));
    }
}

impl<C: PoolCpu, K: Clock, S: PoolStorage> Pool<'_, C, K, S> {
    /// Moves stored blocks into the memory cache, at most `batches` batches
    /// of [`OVERFLOW_BLOCKS`] (each batch is erased from storage, durably,
    /// before it moves). Loading ends for good once the memory cache is
    /// full or the storage cache empty (or failing).
    pub(super) fn load_from_storage(&mut self, batches: usize) -> usize {
        if !self.loading {
            return 0;
        }
        if !self.storage.present() {
            self.loading = false;
            return 0;
        }
        let mut moved = 0usize;
        let mut batch: [Option<Block>; OVERFLOW_BLOCKS] = [const { None }; OVERFLOW_BLOCKS];
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
            match self.storage.take_blocks(dst) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    done = false;
                    for block in batch.iter_mut().take(n).filter_map(Option::take) {
                        if self.memory.push(block).is_err() {
                            // Cannot happen (room was checked); the block
                            // wipes itself as it drops.
                            self.blocks_discarded = self.blocks_discarded.saturating_add(1);
                        }
                    }
                    moved = moved.saturating_add(n);
                    self.memory_from_storage = self.memory_from_storage.saturating_add(n);
                }
            }
        }
        if done {
            self.loading = false;
        }
        moved
    }

    /// Counts a move to storage: its discarded blocks.
    pub(super) fn count_move(&mut self, moved: StorageMove) {
        self.blocks_discarded = self
            .blocks_discarded
            .saturating_add(u64::try_from(moved.discarded).unwrap_or(u64::MAX));
    }

    /// Writes the overflow blocks to the storage cache (not flushed: see
    /// [`Pool::commit_spilled`]). While the store is lent to a job they
    /// wait in the overflow.
    pub(super) fn spill_overflow(&mut self) {
        let moved = self.storage.spill_overflow();
        self.count_move(moved);
    }

    /// Makes the blocks spilled to storage since the last call durable: one
    /// flush per [`Pool::poll`], [`Pool::submit`] or
    /// [`Pool::seed_external`], not one per batch of blocks. A failure is
    /// recorded in the status.
    pub(super) fn commit_spilled(&mut self) {
        let _ = self.storage.commit();
    }

    /// Makes [`Pool::poll`] and [`Pool::submit`] leave storage writes to
    /// the caller (`true`) or write themselves (`false`, the default).
    /// Deferred, the blocks for storage wait in the pool (at most
    /// [`OVERFLOW_BLOCKS`], then the mixer holds one and stops) until
    /// [`Pool::take_spill`] hands them out; a caller that shares the pool
    /// behind a lock writes them without holding it. Other calls
    /// ([`Pool::seed_external`], [`Pool::set_tunables`],
    /// [`Pool::flush_to_storage`]) still write themselves.
    pub fn defer_storage_writes(&mut self, deferred: bool) {
        self.defer_spill = deferred;
    }

    /// Moves every block of the memory cache (and a block the mixer holds,
    /// and blocks waiting for storage) to the storage cache, for a
    /// shutdown, with one flush; blocks that do not fit are wiped and
    /// counted. Returns the blocks saved.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when writing failed (the blocks concerned are
    /// wiped, never kept in two places; the rest are wiped without being
    /// offered to the failing medium); [`STORAGE_LENT`] while a
    /// [`SpillJob`] has the store (nothing changed).
    pub fn flush_to_storage(&mut self) -> Result<usize, Error> {
        if self.storage.is_lent() {
            return Err(STORAGE_LENT);
        }
        let mut total = StorageMove::default();
        // Blocks waiting for a spill job go first.
        let (moved, result) = self.storage.store_overflow();
        total.add(moved);
        let mut failed = result.err();
        let mut batch: [Option<Block>; FLUSH_BATCH] = [const { None }; FLUSH_BATCH];
        let mut n = 0usize;
        if let Some(held) = self.mixer.take_held() {
            if let Some(slot) = batch.first_mut() {
                *slot = Some(held);
                n = 1;
            }
        }
        // Bounded by the memory cache's capacity.
        loop {
            for slot in batch.iter_mut().skip(n) {
                let Some(block) = self.memory.pop() else {
                    break;
                };
                *slot = Some(block);
                n = n.saturating_add(1);
            }
            if n == 0 {
                break;
            }
            let Some(blocks) = batch.get_mut(..n) else {
                break;
            };
            n = 0;
            if failed.is_some() {
                // Never offered to a medium that failed this save.
                let k = blocks.len();
                drop_blocks(blocks);
                total.add(StorageMove {
                    stored: 0,
                    discarded: k,
                });
                continue;
            }
            let (moved, result) = self.storage.store(blocks);
            total.add(moved);
            if let Err(e) = result {
                failed = Some(e);
            }
        }
        drop_blocks(&mut batch);
        self.memory_from_storage = 0;
        self.count_move(total);
        // One flush for the whole save.
        let committed = self.storage.commit();
        match failed {
            Some(e) => Err(e),
            None => committed.map(|()| total.stored),
        }
    }
}

/// Spill jobs need a real medium: a pool over
/// [`NoStorage`](crate::NoStorage) has no store to lend.
impl<C: PoolCpu, K: Clock, S: Storage> Pool<'_, C, K, S> {
    /// The blocks waiting for storage, with the store lent to carry them
    /// there; `None` when none wait, there is no store, it is lent already
    /// or stored blocks are still loading. Until [`Pool::finish_spill`],
    /// the pool serves from memory only, counts the store's room less the
    /// job's blocks, and calls that need the store itself fail with
    /// [`STORAGE_LENT`] having changed nothing.
    pub fn take_spill(&mut self) -> Option<SpillJob<S>> {
        let len = self.storage.overflow.len;
        if len == 0 || self.loading {
            return None;
        }
        let cache = self.storage.tier.lend(len)?;
        let mut job = SpillJob {
            cache: Some(cache),
            blocks: [const { None }; OVERFLOW_BLOCKS],
            len,
            done: None,
        };
        // The blocks move (no copy stays behind in the overflow).
        for (dst, src) in job.blocks.iter_mut().zip(self.storage.overflow.blocks.iter_mut()) {
            *dst = src.take();
        }
        self.storage.overflow.len = 0;
        Some(job)
    }

    /// Takes the store back from `job` and counts what it did (writing it
    /// first if [`SpillJob::write`] was not called: then the I/O happens
    /// here).
    ///
    /// # Errors
    /// [`Error::StorageIo`] when a write or the flush failed (the counts
    /// stand: the blocks the medium took are stored, the rest discarded).
    pub fn finish_spill(&mut self, mut job: SpillJob<S>) -> Result<StorageMove, Error> {
        job.write();
        let (moved, result) = job.done.take().unwrap_or((StorageMove::default(), Ok(())));
        if let Some(cache) = job.cache.take() {
            self.storage.tier.give_back(cache, self.provenance);
        }
        self.count_move(moved);
        if let Err(e) = result {
            self.storage.tier.error = Some(e);
        }
        result.map(|()| moved)
    }

}
