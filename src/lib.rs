#![no_std]
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
//!
//! # Public API
//!
//! What semver covers, all at the crate root unless a module is named:
//!
//! - The pool: [`Pool`], [`PoolParts`], [`PoolStatus`], [`PollReport`],
//!   [`HardwareStatus`], [`StorageStatus`]; what it is built over, the
//!   sealed [`PoolCpu`] (a [`Cpu`], or [`NoCpu`]: no hardware
//!   random-number instructions and no driver state) and [`PoolStorage`]
//!   (a [`Storage`], or [`NoStorage`]: no storage cache and no storage
//!   state); its memory, [`BlockSlot`] (a
//!   [`Slot`] of a [`BlockCell`], which holds a [`Block`] of [`BLOCK_LEN`]
//!   bytes: only the mixer and the storage loader make one),
//!   [`BLOCKS_PER_KIB`],
//!   [`blocks_for_kib`]; the interrupt ring [`InterruptRing`] with
//!   [`InterruptRecorder`], [`InterruptDrain`], [`InterruptCounters`].
//! - Output: [`PoolRng`], [`PoolRngConfig`], [`EntropySource`],
//!   `ForkDetection` (with `std`), and the DRBGs [`HmacDrbg`], [`HashDrbg`] behind
//!   [`Drbg`].
//! - Errors: [`Error`] (its codes are stable), [`KickstartReason`].
//! - Configuration: [`Config`], [`Tunables`] and the module [`config`]
//!   (esxcli parameters, `set` arguments, ranges); sources: [`Source`],
//!   [`SourceMask`], [`CpuFeatures`]; per-source mixing: [`MixerConfig`],
//!   [`SourceConfig`], [`CreditRate`], [`UNITS_PER_BIT`], [`HealthConfig`],
//!   [`MinEntropy`]; what the pool reports about them: [`HealthState`],
//!   [`HealthTestKind`], [`STARTUP_SAMPLES`], [`DISABLE_AFTER`], [`SourceStats`], [`MixerStats`],
//!   [`ExternalDisable`], [`ExternalStatus`].
//! - Traits a user implements, and what they need: [`Cpu`] ([`RealCpu`],
//!   [`CpuIdentity`], [`Vendor`], [`HwStats`], and the execution-jitter
//!   collector [`CpuJitter`]; with `std` the threads `CpuJitterThread` and
//!   `JitterThread`), [`Clock`] (`SystemClock` with `std`),
//!   [`Storage`] ([`MemStorage`], `FileStorage` with `std`, and the
//!   module [`storage`], whose layout is the on-medium format).
//! - Modules: [`assess`] (the SP 800-90B estimators; `entropyd assess`
//!   uses them), [`kickstart`] (install-time seeding), `store` (`std`: the
//!   state directory), `getrandom_custom` (feature `getrandom-custom`).
//!
//! Not covered: the feature `testing`, which exports fakes (module `testing`:
//! `FakeCpu`, `FakeClock`, `splitmix64`) and, hidden from these docs, the
//! internal modules for this repository's own tests, benches and fuzz
//! targets. Nothing outside this repository should enable it.

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

/// Declares internal modules: `pub(crate)`, or public but hidden from the
/// docs under the feature `testing` (for the repository's integration
/// tests, benches and fuzz targets; not covered by semver).
macro_rules! internal_modules {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        pub(crate) mod $name;
    )*};
}

internal_modules! {
    mod cache;
    mod error;
    mod health;
    mod hw;
    mod interrupt;
    mod mixer;
    mod pool;
    mod ring;
    mod source;
    mod watch;
}

pub(crate) mod crypto;

/// Visible skips of hardware tests (`ENTROPOOL_REQUIRE_HW`).
#[cfg(test)]
#[path = "../tests/support/hw.rs"]
pub(crate) mod hw_support;

pub mod assess;
pub mod config;
pub mod drbg;
pub mod kickstart;
pub mod rng;
pub mod storage;

#[cfg(all(feature = "std", target_os = "linux", not(miri)))]
mod os;

#[cfg(all(feature = "std", unix))]
pub mod store;

#[cfg(feature = "getrandom-custom")]
pub mod getrandom_custom;

#[cfg(all(feature = "testing", target_has_atomic = "64"))]
pub mod testing;

pub use cache::{BLOCK_LEN, BLOCKS_PER_KIB, BlockCell, BlockSlot, blocks_for_kib};
pub use config::{Config, Tunables};
pub use drbg::{Drbg, HashDrbg, HmacDrbg};
pub use error::{Error, KickstartReason};
pub use health::{
    DISABLE_AFTER, HealthConfig, HealthState, HealthTestKind, MinEntropy, STARTUP_SAMPLES,
};
#[cfg(feature = "std")]
pub use hw::cpu_jitter::CpuJitterThread;
pub use hw::cpu_jitter::{CPU_JITTER_SCRATCH, CPU_JITTER_SCRATCH_MIN, CpuJitter};
#[cfg(feature = "std")]
pub use hw::jitter::{
    JITTER_DEFAULT_INTERVAL, JITTER_INTERVAL_MAX_US, JITTER_INTERVAL_MIN_US, JitterThread,
};
pub use hw::{Cpu, CpuIdentity, HwStats, NoCpu, RealCpu, Vendor};
pub use interrupt::{InterruptCounters, InterruptDrain, InterruptRecorder, InterruptRing};
pub use mixer::{
    Block, CreditRate, ExternalDisable, MixerConfig, MixerStats, SourceConfig, SourceStats,
    UNITS_PER_BIT,
};
pub use pool::{
    FLUSH_BATCH, HardwareStatus, INTERRUPT_BATCH, INTERRUPT_MIN_DRAIN, LOAD_BATCHES_PER_POLL,
    OVERFLOW_BLOCKS, PollReport, Pool, PoolCpu, PoolParts, PoolStatus, PoolStorage, RDRAND_BATCH,
    RDSEED_BATCH, STORAGE_LENT, SpillJob, StorageMove, StorageStatus, WORD_CHUNK,
};
pub use ring::Slot;
#[cfg(feature = "std")]
pub use rng::ForkDetection;
pub use rng::{EntropySource, PoolRng, PoolRngConfig};
pub use source::{CpuFeatures, Source, SourceMask};
#[cfg(feature = "std")]
pub use storage::FileStorage;
pub use storage::{MemStorage, NoStorage, Storage};
#[cfg(feature = "std")]
pub use watch::SystemClock;
pub use watch::{Clock, ExternalStatus};
