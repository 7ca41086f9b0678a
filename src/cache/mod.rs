//! Caches of full-entropy 32-byte blocks.
//!
//! - [`MemoryCache`]: the lock-free ring of conditioned blocks, sized by
//!   `memory-cache-size`, over caller-provided storage; a slot is zeroized
//!   as its block leaves.
//! - [`LowWatermark`]: the refill state machine (below
//!   `memory-cache-low-watermark` percent of capacity: refill wanted, until
//!   the cache is full again).
//!
//! Contracts are stated in each submodule.

mod memory;
mod watermark;

pub use memory::{BLOCK_LEN, BLOCKS_PER_KIB, BlockSlot, MemoryCache, blocks_for_kib};
pub use watermark::LowWatermark;
