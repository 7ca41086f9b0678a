//! Caches of full-entropy [`crate::mixer::Block`]s.
//!
//! - [`MemoryCache`]: the lock-free ring of conditioned blocks, sized by
//!   `memory-cache-size`, over caller-provided storage; blocks leave in
//!   batches and a slot is wiped as its block leaves.
//! - [`LowWatermark`]: the refill state machine (below
//!   `memory-cache-low-watermark` percent of capacity: refill wanted, until
//!   the cache is full again).
//!
//! Contracts are stated in each submodule.

mod memory;
mod watermark;

pub use crate::mixer::BLOCK_LEN;
pub use memory::{BLOCKS_PER_KIB, BlockCell, BlockSlot, MemoryCache, blocks_for_kib};
pub use watermark::LowWatermark;
