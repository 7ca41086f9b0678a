//! The memory cache: full-entropy 32-byte blocks in a lock-free ring over
//! caller-provided storage.
//!
//! # Contract
//!
//! - Storage: `&mut [BlockSlot]` (a `static` array in firmware, a boxed
//!   slice with `std`); nothing is allocated. The configured capacity is
//!   `memory-cache-size` KiB × 32 blocks ([`blocks_for_kib`]) and may be
//!   anything up to the storage length; a size the storage cannot hold is
//!   [`Error::CapacityTooSmall`] (and nothing changes).
//! - Blocks travel by reference, never by value: [`MemoryCache::push`]
//!   copies the caller's block into a slot and zeroizes the caller's array;
//!   [`MemoryCache::pop`] copies a block into the caller's array and
//!   zeroizes the slot (with `zeroize`, before the slot is released). No
//!   block leaves an unwiped copy in a slot. Dropping or
//!   [`clear`](MemoryCache::clear)ing the cache zeroizes every queued block.
//! - FIFO: blocks come out in the order they went in.
//! - Resizing at run time ([`MemoryCache::set_size_kib`]): growing takes
//!   effect at once; shrinking below the current level hands the oldest
//!   excess blocks to the caller's `spill` callback one by one (for the
//!   storage cache, say), zeroizing each slot after the callback returns,
//!   and reports how many. No block is lost silently.
//! - The [`LowWatermark`] state is updated after every operation, so
//!   [`MemoryCache::refill_wanted`] is always current.
//! - The ring under this type is SPSC; this type is its single-owner face
//!   (`&mut self`). Threads that produce and consume concurrently use
//!   [`crate::ring`] halves directly.

use core::fmt;

use zeroize::Zeroize;

use super::LowWatermark;
use crate::error::Error;
use crate::ring::{Ring, Slot};

/// Bytes in one block.
pub const BLOCK_LEN: usize = 32;

/// Blocks per KiB of `memory-cache-size` (1024 / 32).
pub const BLOCKS_PER_KIB: u64 = 1024 / 32;

/// One storage slot of the memory cache.
pub type BlockSlot = Slot<[u8; BLOCK_LEN]>;

/// Blocks in `kib` KiB (`kib * 32`); `None` if that overflows `usize`.
#[must_use]
pub fn blocks_for_kib(kib: u64) -> Option<usize> {
    kib.checked_mul(BLOCKS_PER_KIB)
        .and_then(|blocks| usize::try_from(blocks).ok())
}

/// The memory cache of full-entropy blocks.
pub struct MemoryCache<'s> {
    ring: Ring<'s, [u8; BLOCK_LEN]>,
    /// Configured capacity in blocks; at most the storage length.
    capacity: usize,
    watermark: LowWatermark,
}

impl<'s> MemoryCache<'s> {
    /// An empty cache over `storage`, `size_kib` KiB large, with a low
    /// watermark of `low_watermark_percent`.
    ///
    /// # Errors
    ///
    /// - [`Error::CapacityTooSmall`] if `storage` is empty or holds fewer
    ///   than `size_kib * 32` blocks.
    /// - [`Error::InvalidValue`] if `low_watermark_percent > 100`.
    pub fn new(
        storage: &'s mut [BlockSlot],
        size_kib: u64,
        low_watermark_percent: u8,
    ) -> Result<Self, Error> {
        let mut watermark = LowWatermark::new(low_watermark_percent)?;
        let ring = Ring::new(storage)?;
        let capacity = Self::fit(&ring, size_kib)?;
        watermark.update(0, capacity);
        Ok(Self {
            ring,
            capacity,
            watermark,
        })
    }

    fn fit(ring: &Ring<'s, [u8; BLOCK_LEN]>, size_kib: u64) -> Result<usize, Error> {
        match blocks_for_kib(size_kib) {
            Some(blocks) if blocks <= ring.capacity() => Ok(blocks),
            _ => Err(Error::CapacityTooSmall),
        }
    }

    /// Configured capacity in blocks.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest capacity the storage allows, in blocks.
    #[must_use]
    pub fn storage_capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Blocks held now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// `true` when no block is held.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// `true` when the configured capacity is reached.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// The low-watermark threshold in percent.
    #[must_use]
    pub fn low_watermark(&self) -> u8 {
        self.watermark.percent()
    }

    /// `Some(blocks needed to fill the cache)` while a refill is wanted
    /// (from falling below the low watermark until full again), else `None`.
    #[must_use]
    pub fn refill_wanted(&self) -> Option<usize> {
        if self.watermark.refill_wanted() {
            Some(self.watermark.blocks_wanted(self.len(), self.capacity))
        } else {
            None
        }
    }

    fn update_watermark(&mut self) {
        let len = self.len();
        self.watermark.update(len, self.capacity);
    }

    /// Takes a copy of `block` and zeroizes `block`.
    ///
    /// # Errors
    ///
    /// [`Error::MemoryCacheFull`] when the cache is at capacity: `block` is
    /// left untouched with the caller.
    pub fn push(&mut self, block: &mut [u8; BLOCK_LEN]) -> Result<(), Error> {
        if self.is_full() {
            return Err(Error::MemoryCacheFull);
        }
        let pushed = self.ring.push_with(|slot| *slot = *block);
        if pushed.is_err() {
            // Unreachable while capacity <= storage, kept as a clean error.
            return Err(Error::MemoryCacheFull);
        }
        block.zeroize();
        self.update_watermark();
        Ok(())
    }

    /// Takes a copy of `block`, leaving `block` as it is: for a caller whose
    /// own copy wipes itself (a [`crate::mixer::Block`] does on drop).
    ///
    /// # Errors
    ///
    /// [`Error::MemoryCacheFull`] when the cache is at capacity.
    pub fn push_copy(&mut self, block: &[u8; BLOCK_LEN]) -> Result<(), Error> {
        if self.is_full() {
            return Err(Error::MemoryCacheFull);
        }
        if self.ring.push_with(|slot| *slot = *block).is_err() {
            return Err(Error::MemoryCacheFull);
        }
        self.update_watermark();
        Ok(())
    }

    /// Moves the oldest block into `out`; its slot is zeroized.
    ///
    /// # Errors
    ///
    /// [`Error::Starving`] when the cache is empty (`out` untouched).
    pub fn pop(&mut self, out: &mut [u8; BLOCK_LEN]) -> Result<(), Error> {
        // The ring overwrites the slot with zeros (`T::default()`) before it
        // releases it to the producer: a store the compiler must keep, as
        // the slot stays reachable through the ring.
        let popped = self.ring.pop_with(|slot| *out = *slot);
        self.update_watermark();
        popped.ok_or(Error::Starving)
    }

    /// Changes the capacity to `size_kib * 32` blocks. Blocks beyond a
    /// smaller capacity (the oldest first) are passed to `spill` one at a
    /// time; each slot is zeroized after `spill` returns, so `spill` must
    /// copy what it keeps. Returns how many blocks were spilled.
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if the storage cannot hold the new size
    /// (nothing changes).
    pub fn set_size_kib(
        &mut self,
        size_kib: u64,
        mut spill: impl FnMut(&mut [u8; BLOCK_LEN]),
    ) -> Result<usize, Error> {
        let capacity = Self::fit(&self.ring, size_kib)?;
        let excess = self.len().saturating_sub(capacity);
        let mut spilled = 0_usize;
        for _ in 0..excess {
            let moved = self.ring.pop_with(|slot| {
                spill(slot);
                slot.zeroize();
            });
            if moved.is_none() {
                break;
            }
            spilled = spilled.wrapping_add(1);
        }
        self.capacity = capacity;
        self.update_watermark();
        Ok(spilled)
    }

    /// Changes the low watermark; it applies at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] if `percent > 100` (nothing changes).
    pub fn set_low_watermark(&mut self, percent: u8) -> Result<(), Error> {
        let len = self.len();
        self.watermark.set_percent(percent, len, self.capacity)?;
        Ok(())
    }

    /// Zeroizes and discards every block; returns how many.
    pub fn clear(&mut self) -> usize {
        let mut removed = 0_usize;
        // Bounded: the ring holds at most its capacity.
        while self.ring.pop_with(Zeroize::zeroize).is_some() {
            removed = removed.wrapping_add(1);
        }
        self.update_watermark();
        removed
    }
}

impl Drop for MemoryCache<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for MemoryCache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}
