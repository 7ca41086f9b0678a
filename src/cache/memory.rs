//! The memory cache: full-entropy [`Block`]s in a lock-free ring over
//! caller-provided storage.
//!
//! # Contract
//!
//! - Storage: `&mut [BlockSlot]` (a `static` array in firmware, a boxed
//!   slice with `std`); nothing is allocated. The configured capacity is
//!   `memory-cache-size` KiB × 32 blocks ([`blocks_for_kib`]) and may be
//!   anything up to the storage length; a size the storage cannot hold is
//!   [`Error::CapacityTooSmall`] (and nothing changes).
//! - Only [`Block`]s go in ([`MemoryCache::push`]), so only what the mixer or
//!   the storage loader made is ever cached; a slot ([`BlockCell`]) is opaque
//!   outside the crate. A block is copied into its slot and the caller's
//!   `Block` wipes itself as it drops.
//! - Blocks leave in batches: [`MemoryCache::write_out`] writes the oldest
//!   `ceil(out.len() / 32)` blocks straight into the caller's buffer with one
//!   ring index update ([`crate::ring::Consumer::pop_many_with`]), and
//!   [`MemoryCache::pop`] hands one [`Block`] on (to the storage cache).
//!   Each slot is wiped before it is released to the producer. No block
//!   leaves an unwiped copy in a slot. Dropping or
//!   [`clear`](MemoryCache::clear)ing the cache wipes every queued block.
//! - FIFO: blocks come out in the order they went in.
//! - Resizing at run time ([`MemoryCache::set_size_kib`]): growing takes
//!   effect at once; shrinking below the current level hands the oldest
//!   excess blocks to the caller's `spill` callback one by one (for the
//!   storage cache, say), and reports how many. No block is lost silently.
//! - The [`LowWatermark`] state is updated after every operation, so
//!   [`MemoryCache::refill_wanted`] is always current.
//! - The ring under this type is SPSC; this type is its single-owner face
//!   (`&mut self`). Threads that produce and consume concurrently use
//!   [`crate::ring`] halves directly.

use core::fmt;


use super::LowWatermark;
use crate::error::Error;
use crate::mixer::{BLOCK_LEN, Block};
use crate::ring::{Ring, Slot};

/// Blocks per KiB of `memory-cache-size` (1024 / 32).
pub const BLOCKS_PER_KIB: u64 = 1024 / 32;

/// What one memory-cache slot holds: a queued [`Block`], or zeros when
/// empty. Opaque outside the crate (nothing can be read from or written
/// into it there); wiped on drop and printed as `BlockCell { .. }`.
pub struct BlockCell(Block);

impl BlockCell {
    /// An empty cell, for building storage in a `const` or `static`:
    /// `[const { Slot::new(BlockCell::EMPTY) }; N]`.
    pub const EMPTY: BlockCell = BlockCell(Block::EMPTY);
}

impl Default for BlockCell {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for BlockCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockCell { .. }")
    }
}

/// One storage slot of the memory cache.
pub type BlockSlot = Slot<BlockCell>;

/// Blocks in `kib` KiB (`kib * 32`); `None` if that overflows `usize`.
#[must_use]
pub fn blocks_for_kib(kib: u64) -> Option<usize> {
    kib.checked_mul(BLOCKS_PER_KIB)
        .and_then(|blocks| usize::try_from(blocks).ok())
}

/// The memory cache of full-entropy blocks.
pub struct MemoryCache<'s> {
    ring: Ring<'s, BlockCell>,
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

    fn fit(ring: &Ring<'s, BlockCell>, size_kib: u64) -> Result<usize, Error> {
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

    /// Caches `block` (its bytes are copied into a slot; the `Block`
    /// wipes itself as it drops).
    ///
    /// # Errors
    ///
    /// `Err(block)`, the block given back untouched, when the cache is at
    /// capacity.
    pub fn push(&mut self, block: Block) -> Result<(), Block> {
        if self.is_full() {
            return Err(block);
        }
        let pushed = self
            .ring
            .push_with(|cell| cell.0.as_mut_bytes().copy_from_slice(block.as_bytes()));
        if pushed.is_err() {
            // Unreachable while capacity <= storage, kept as a clean error.
            return Err(block);
        }
        self.update_watermark();
        Ok(())
    }

    /// Moves the oldest block out (its slot is wiped); `None` when empty.
    pub fn pop(&mut self) -> Option<Block> {
        // The ring leaves `BlockCell::default()` (zeros) in the slot.
        let out = self.ring.pop().map(|BlockCell(block)| block);
        self.update_watermark();
        out
    }

    /// Writes the oldest blocks straight into `out`, in order: up to
    /// `ceil(out.len() / 32)` of them in one batch (one ring index update),
    /// the last one cut to the bytes `out` still needs. Each slot is wiped
    /// (the unused rest of a cut block with it) before the ring releases
    /// it. Returns the bytes written: all of `out`, or `32 ×` the blocks
    /// that were cached when fewer were.
    pub fn write_out(&mut self, out: &mut [u8]) -> usize {
        let want = out.len().div_ceil(BLOCK_LEN);
        let mut chunks = out.chunks_mut(BLOCK_LEN);
        let mut written = 0usize;
        self.ring.pop_many_with(want, |cell| {
            if let Some(chunk) = chunks.next() {
                let n = chunk.len();
                if let Some(src) = cell.0.as_bytes().get(..n) {
                    chunk.copy_from_slice(src);
                    written = written.saturating_add(n);
                }
            }
        });
        self.update_watermark();
        written
    }

    /// Changes the capacity to `size_kib * 32` blocks. Blocks beyond a
    /// smaller capacity (the oldest first) are handed to `spill` one at a
    /// time (each slot wiped as its block leaves); `spill` stores or drops
    /// each. Returns how many blocks were spilled.
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if the storage cannot hold the new size
    /// (nothing changes).
    pub fn set_size_kib(
        &mut self,
        size_kib: u64,
        mut spill: impl FnMut(Block),
    ) -> Result<usize, Error> {
        let capacity = Self::fit(&self.ring, size_kib)?;
        let excess = self.len().saturating_sub(capacity);
        let mut spilled = 0_usize;
        for _ in 0..excess {
            let Some(block) = self.pop() else {
                break;
            };
            spill(block);
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
        // One batch: the ring holds at most its capacity.
        // The ring overwrites each slot with `BlockCell::default()`, which
        // drops (and so wipes) the block: nothing to do per slot here.
        let removed = self.ring.pop_many_with(usize::MAX, |_| {});
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn block(id: u8) -> Block {
        Block::from_bytes([id; BLOCK_LEN])
    }

    fn cells(s: Vec<BlockSlot>) -> Vec<[u8; BLOCK_LEN]> {
        s.into_iter()
            .map(|slot| *slot.into_inner().0.as_bytes())
            .collect()
    }

    #[test]
    fn slots_are_wiped_when_blocks_leave_or_the_cache_drops() {
        let mut s: Vec<BlockSlot> = (0..64).map(|_| BlockSlot::default()).collect();
        {
            let mut cache = MemoryCache::new(&mut s, 2, 20).unwrap();
            // 70 in, 23 out one by one, 10 cut by `write_out`, 5 spilled,
            // the rest dropped with the cache.
            for id in 1..=70 {
                cache.push(block(id)).unwrap();
                if id % 3 == 0 {
                    assert!(cache.pop().is_some());
                }
                if id % 7 == 0 {
                    assert_eq!(cache.write_out(&mut [0; 20]), 20);
                }
            }
            let mut spilled = 0;
            cache.set_size_kib(1, |_| spilled += 1).unwrap();
            assert_eq!(spilled, 5);
            assert!(!cache.is_empty(), "dropped with blocks queued");
            assert!(
                !std::format!("{cache:?}").contains("60"),
                "Debug must not print blocks"
            );
        }
        assert!(cells(s).iter().all(|c| *c == [0; BLOCK_LEN]));
    }

    #[test]
    fn write_out_wipes_each_slot_it_takes_and_only_those() {
        let mut s: Vec<BlockSlot> = (0..4).map(|_| BlockSlot::default()).collect();
        {
            let mut cache = MemoryCache::new(&mut s, 0, 0).unwrap();
            cache.capacity = 4;
            for id in 1..=3 {
                cache.push(block(id)).unwrap();
            }
            // 33 bytes: block 1 whole, one byte of block 2 (both wiped).
            let mut out = [0u8; 33];
            assert_eq!(cache.write_out(&mut out), 33);
            assert_eq!(out[..32], [1; 32]);
            assert_eq!(out[32], 2);
            // Keep the cache (and block 3) alive: leak it for the check.
            core::mem::forget(cache);
        }
        assert_eq!(
            cells(s),
            [
                [0; BLOCK_LEN],
                [0; BLOCK_LEN],
                [3; BLOCK_LEN],
                [0; BLOCK_LEN]
            ]
        );
    }
}
