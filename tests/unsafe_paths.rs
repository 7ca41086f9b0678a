//! The integration tests of the modules that hold `unsafe` (the rings, the
//! interrupt ring, the memory cache built on them, the hardware drivers on
//! fake CPUs), linked into one test binary that miri runs whole
//! (`MIRI_RUNS` in `xtask/src/extend.rs`).
//!
//! Each `tests/<name>.rs` stays a self-contained file; this file only
//! includes it as a module (`cargo test --test unsafe_paths ring_api::`
//! runs one file). Tests here shrink their loops under `cfg(miri)` and mark
//! real-hardware or file tests `#[cfg_attr(miri, ignore)]`. The rule for
//! new files is in `tests/integration.rs`.

#[path = "cache_memory.rs"]
mod cache_memory;
#[path = "hw_fakes.rs"]
mod hw_fakes;
#[path = "ring_api.rs"]
mod ring_api;
#[path = "ring_interrupt.rs"]
mod ring_interrupt;
#[path = "ring_proptest.rs"]
mod ring_proptest;
#[path = "ring_stress.rs"]
mod ring_stress;
