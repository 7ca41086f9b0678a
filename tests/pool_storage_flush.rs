//! Blocks spilled to the storage cache are flushed once per call, not once
//! per batch (issue 15 item 5: each absorb step fsynced while the daemon
//! held its pool lock).
#![allow(clippy::unwrap_used)]

use core::cell::Cell;

use entropool::storage::layout_len;
use entropool::testing::{FakeClock, FakeCpu};
use entropool::{
    BlockSlot, Config, CpuFeatures, Error, MemStorage, MixerConfig, Pool, PoolParts, Slot,
    SourceMask, Storage, Tunables,
};

/// A memory medium that counts flushes.
struct Counting<'a> {
    inner: MemStorage<'a>,
    flushes: &'a Cell<u32>,
}

impl Storage for Counting<'_> {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.inner.read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.inner.write(offset, data)
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.flushes.set(self.flushes.get() + 1);
        self.inner.flush()
    }
}

#[test]
fn a_seed_that_fills_storage_flushes_once() {
    let cpu = FakeCpu::good(1).with_features(CpuFeatures {
        rdrand: false,
        rdseed: false,
    });
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..32).map(|_| Slot::default()).collect();
    // storage-cache-size 16 KiB counts entropy: 512 blocks.
    let mut disk = vec![0u8; usize::try_from(layout_len(16 * 32).unwrap()).unwrap()];
    let flushes = Cell::new(0);
    let (mut pool, _) = Pool::new(PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 1, 16).unwrap(),
            sources: SourceMask::new(8).unwrap(),
        },
        cpu: &cpu,
        clock: &clock,
        memory: &mut mem,
        storage: Some(Counting {
            inner: MemStorage::new(&mut disk),
            flushes: &flushes,
        }),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [1; 32],
        storage_key: [2; 32],
    })
    .unwrap();
    let opened = flushes.get();
    let mut state = 3u64;
    let seed: Vec<u8> = (0..2048)
        .flat_map(|_| entropool::testing::splitmix64(&mut state).to_le_bytes())
        .collect();
    pool.seed_external(&seed).unwrap();
    let st = pool.status();
    // 16 KiB of seed past the 1 KiB start-up: hundreds of blocks, most of
    // them spilled to storage in batches of 16.
    assert!(st.storage.len_blocks > 100, "{}", st.storage.len_blocks);
    assert_eq!(flushes.get() - opened, 1, "one flush for the whole seed");
}

#[test]
fn deferred_writes_flush_once_per_spill_job_and_never_in_poll() {
    let cpu = FakeCpu::good(5);
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..32).map(|_| Slot::default()).collect();
    let mut disk = vec![0u8; usize::try_from(layout_len(2 * 32).unwrap()).unwrap()];
    let flushes = Cell::new(0);
    let (mut pool, _) = Pool::new(PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 1, 2).unwrap(),
            sources: SourceMask::new(4).unwrap(),
        },
        cpu: &cpu,
        clock: &clock,
        memory: &mut mem,
        storage: Some(Counting {
            inner: MemStorage::new(&mut disk),
            flushes: &flushes,
        }),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [1; 32],
        storage_key: [2; 32],
    })
    .unwrap();
    pool.defer_storage_writes(true);
    let mut jobs = 0;
    let mut stored = 0;
    for _ in 0..2_000 {
        let before = flushes.get();
        pool.poll().unwrap();
        assert_eq!(flushes.get(), before, "a deferred poll never flushes");
        if let Some(mut job) = pool.take_spill() {
            job.write();
            stored += pool.finish_spill(job).unwrap().stored;
            jobs += 1;
            assert_eq!(flushes.get(), before + 1, "one flush per job");
        }
        if pool.status().storage.len_blocks == 64 {
            break;
        }
    }
    assert_eq!(stored, 64, "the store filled");
    assert!(jobs >= 64 / 16, "{jobs} jobs");
}
