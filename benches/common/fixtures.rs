//! Fixtures shared by the benches and `examples/speed.rs` (included with
//! `#[path]`), so the best-of-many tool times exactly what criterion does.
// Each includer uses a part of this module.
#![allow(dead_code)]

use entropool::testing::{FakeClock, FakeCpu};
use entropool::{
    BlockSlot, Config, CpuFeatures, EntropySource, Error, MemStorage, MixerConfig, PoolParts,
    SourceMask, Tunables,
};

/// A fast in-memory stand-in for the pool: each fill is one byte value,
/// the next call's the next (so reseeds differ).
pub struct FastFake(pub u8);

impl EntropySource for FastFake {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        out.fill(self.0);
        self.0 = self.0.wrapping_add(1);
        Ok(())
    }
}

/// `len` random-looking external bytes (splitmix64; a multiplicative
/// sequence would be a constant-difference pattern, which the external
/// screen refuses).
pub fn external_bytes(len: usize) -> Vec<u8> {
    let mut state = 7u64;
    (0..len.div_ceil(8))
        .flat_map(|_| entropool::testing::splitmix64(&mut state).to_le_bytes())
        .take(len)
        .collect()
}

/// The CPU of `pool_fill_external`: neither RDRAND nor RDSEED.
pub fn cpu_without_rng() -> FakeCpu {
    FakeCpu::good(1).with_features(CpuFeatures {
        rdrand: false,
        rdseed: false,
    })
}

/// The parts of `pool_fill_external`'s pool: external entropy only, a
/// 128 KiB memory cache in `memory` (room for a whole 64 KiB submission;
/// at least 4096 slots), no storage.
pub fn external_pool_parts<'s>(
    cpu: &'s FakeCpu,
    clock: &'s FakeClock,
    memory: &'s mut [BlockSlot],
) -> PoolParts<'s, &'s FakeCpu, &'s FakeClock, MemStorage<'s>> {
    PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 128, 0).expect("valid tunables"),
            sources: SourceMask::new(8).expect("valid mask"),
        },
        cpu,
        clock,
        memory,
        storage: None,
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [3; 32],
        storage_key: [4; 32],
    }
}
