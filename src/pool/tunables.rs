//! Run-time reconfiguration: new tunables applied to a running pool.

use zeroize::Zeroize;

use super::storage::wipe;
use super::{OVERFLOW_BLOCKS, Overflow, Pool, storage_slots};
use crate::config::Tunables;
use crate::error::Error;
use crate::hw::Cpu;
use crate::storage::{Storage, StorageCache};
use crate::watch::Clock;

impl<C: Cpu + Clone, K: Clock, S: Storage> Pool<'_, C, K, S> {
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
}
