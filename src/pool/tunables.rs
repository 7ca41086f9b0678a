//! Run-time reconfiguration: new tunables applied to a running pool, all
//! or nothing.
//!
//! # Contract
//!
//! Every step that can fail runs before anything changes: the memory
//! slots must hold the new memory-cache-size, the watermark must be a
//! percentage, and a new storage-cache-size re-opens the store in place
//! ([`StorageTier::resize`](super::storage::StorageTier::resize), which
//! on an error leaves the store at its old size and an idle medium idle).
//! Only then does the memory cache change size (its excess goes through
//! the storage component, stored or discarded and counted), and the
//! watermark, the external-lost timeout and the tunables follow. Nothing
//! after the re-open can fail.

use super::kind::{PoolCpu, PoolStorage, Tier};
use super::storage::STORAGE_LENT;
use super::{OVERFLOW_BLOCKS, Pool, storage_slots};
use crate::cache::LowWatermark;
use crate::config::Tunables;
use crate::error::Error;
use crate::mixer::Block;
use crate::storage::drop_blocks;
use crate::watch::Clock;

impl<C: PoolCpu, K: Clock, S: PoolStorage> Pool<'_, C, K, S> {
    /// Applies new tunables to the running pool, all or nothing: a
    /// configuration the pool cannot take, or a storage re-open that
    /// fails, changes nothing (tunables, watermark, memory cache, store,
    /// timer). Shrinking the memory cache moves the excess blocks to the
    /// storage cache, or wipes and counts them (a write failure there is
    /// recorded in the status; the new tunables still apply); changing
    /// storage-cache-size re-opens the store with the new size (blocks
    /// that fit are kept). One flush for the whole change.
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] when the memory slots cannot hold the
    /// new memory-cache-size or the medium the new storage-cache-size;
    /// [`Error::InvalidValue`] for a watermark above 100 %;
    /// [`Error::StorageIo`] when re-opening the store failed, or
    /// [`STORAGE_LENT`] while a spill job has it; [`Error::InvalidValue`]
    /// (storage-cache-size, range `0..=0`) for a storage-cache-size other
    /// than 0 with [`NoStorage`](crate::NoStorage). Nothing changed in
    /// each case.
    pub fn set_tunables(&mut self, new: &Tunables) -> Result<(), Error> {
        let want = crate::cache::blocks_for_kib(u64::from(new.memory_cache_size_kib()))
            .ok_or(Error::CapacityTooSmall)?;
        if want > self.memory.storage_capacity() {
            return Err(Error::CapacityTooSmall);
        }
        LowWatermark::new(new.low_watermark_percent())?;
        if self.storage.is_lent() {
            return Err(STORAGE_LENT);
        }
        let new_slots = storage_slots(new);
        if new_slots != storage_slots(&self.tunables) {
            self.storage.resize(new, self.provenance)?;
        }

        // Nothing below fails: the size was checked against the slots.
        let mut batch: [Option<Block>; OVERFLOW_BLOCKS] = [const { None }; OVERFLOW_BLOCKS];
        let mut n = 0usize;
        let storage = &mut self.storage;
        let mut discarded = 0usize;
        let res = self
            .memory
            .set_size_kib(u64::from(new.memory_cache_size_kib()), |block| {
                if n == OVERFLOW_BLOCKS {
                    let (moved, _) = storage.store(&mut batch);
                    discarded = discarded.saturating_add(moved.discarded);
                    n = 0;
                }
                if let Some(slot) = batch.get_mut(n) {
                    *slot = Some(block);
                    n = n.saturating_add(1);
                }
            });
        if let Some(tail) = batch.get_mut(..n) {
            let (moved, _) = storage.store(tail);
            discarded = discarded.saturating_add(moved.discarded);
        }
        drop_blocks(&mut batch);
        let _ = self.storage.commit();
        self.blocks_discarded = self
            .blocks_discarded
            .saturating_add(u64::try_from(discarded).unwrap_or(u64::MAX));
        // The oldest blocks (loaded from storage first) spilled first.
        if let Ok(spilled) = res {
            self.memory_from_storage = self.memory_from_storage.saturating_sub(spilled);
        }
        // Checked above: cannot fail.
        let _ = self.memory.set_low_watermark(new.low_watermark_percent());
        self.timer
            .set_timeout_secs(u64::from(new.external_entropy_lost_timeout_s()));
        self.tunables = *new;
        Ok(())
    }
}
