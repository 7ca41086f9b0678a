//! The pool's storage side: the start-up load, the spill of blocks the
//! memory cache cannot take, and the shutdown flush.

use zeroize::Zeroize;

use super::{FLUSH_BATCH, OVERFLOW_BLOCKS, Pool};
use crate::cache::BLOCK_LEN;
use crate::error::Error;
use crate::hw::Cpu;
use crate::storage::Storage;
use crate::watch::Clock;

impl<C: Cpu + Clone, K: Clock, S: Storage> Pool<'_, C, K, S> {
    /// Moves stored blocks into the memory cache, at most `batches` batches
    /// of [`OVERFLOW_BLOCKS`] (each batch is erased from storage, durably,
    /// before it moves). Loading ends for good once the memory cache is
    /// full or the storage cache empty (or failing).
    pub(super) fn load_from_storage(&mut self, batches: usize) -> usize {
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

    pub(super) fn storage_room(&self) -> usize {
        self.storage.as_ref().map_or(0, |s| {
            usize::try_from(s.capacity_blocks().saturating_sub(s.len())).unwrap_or(usize::MAX)
        })
    }

    /// Writes the overflow blocks to the storage cache (or wipes them when
    /// that fails).
    pub(super) fn spill_overflow(&mut self) {
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
    pub(super) fn flush_spilled(&mut self) {
        if !core::mem::take(&mut self.spilled_unflushed) {
            return;
        }
        if let Some(storage) = self.storage.as_mut() {
            if let Err(e) = storage.flush() {
                self.storage_error = Some(e);
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
}

/// Zeroizes every block of `blocks`.
pub(super) fn wipe(blocks: &mut [[u8; BLOCK_LEN]]) {
    for block in blocks {
        block.zeroize();
    }
}
