//! The pool facade through its public API, with fake CPUs, a fake clock and
//! storage in memory: external feed, fill, the external-lost state, restart
//! without replay, hardware harvest and faults, run-time reconfiguration.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use entropool::storage::layout_len;
use entropool::testing::{FakeClock, FakeCpu, FakeOutput};
use entropool::{
    BlockSlot, Config, CpuFeatures, Error, MemStorage, MixerConfig, Pool, PoolParts, Slot, Source,
    SourceMask, Tunables,
};

const NO_HW: CpuFeatures = CpuFeatures {
    rdrand: false,
    rdseed: false,
};

fn slots(n: usize) -> Vec<BlockSlot> {
    (0..n).map(|_| Slot::default()).collect()
}

/// Bytes of a storage medium for `kib` KiB of storage-cache-size.
fn medium(kib: u64) -> Vec<u8> {
    // storage-cache-size counts entropy: 32 blocks per KiB.
    let n = kib * 32;
    vec![0u8; usize::try_from(layout_len(n).unwrap()).unwrap()]
}

fn tunables(timeout: u32, watermark: u32, mem_kib: u32, storage_kib: u32) -> Tunables {
    Tunables::new(timeout, watermark, mem_kib, storage_kib).unwrap()
}

fn config(mask: u64, t: Tunables) -> Config {
    Config {
        tunables: t,
        sources: SourceMask::new(mask).unwrap(),
    }
}

/// A deterministic stream standing in for an HSM's output.
fn feed(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(&entropool::testing::splitmix64(&mut s).to_le_bytes());
    }
    out.truncate(len);
    out
}

type TestPool<'s, 'c> = Pool<'s, &'c FakeCpu, &'c FakeClock, MemStorage<'s>>;

fn external_pool<'s, 'c>(
    cpu: &'c FakeCpu,
    clock: &'c FakeClock,
    mem: &'s mut [BlockSlot],
    storage: Option<&'s mut [u8]>,
    t: Tunables,
) -> TestPool<'s, 'c> {
    let (pool, _) = Pool::new(PoolParts {
        config: config(8, t),
        cpu,
        clock,
        memory: mem,
        storage: storage.map(MemStorage::new),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [7; 32],
        storage_key: [0x5B; 32],
    })
    .unwrap();
    pool
}

/// A pool on `cpu` with a memory cache only (no storage), sources `mask`.
fn memory_only_pool<'s, 'c>(
    cpu: &'c FakeCpu,
    clock: &'c FakeClock,
    mem: &'s mut [BlockSlot],
    mask: u64,
    t: Tunables,
) -> Result<TestPool<'s, 'c>, Error> {
    Pool::new(PoolParts {
        config: config(mask, t),
        cpu,
        clock,
        memory: mem,
        storage: None,
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [0; 32],
        storage_key: [0x5B; 32],
    })
    .map(|(pool, _)| pool)
}

#[test]
fn submit_takes_at_most_the_room_and_blocks_follow_credit() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut mem = slots(32 * 4);
    // 4 KiB memory cache = 128 blocks; no storage. The room is what fills
    // it: the start-up test's 1024 bytes (no credit), then 40 bytes (320
    // bits at 8 bits per byte) per block.
    let mut pool = external_pool(&cpu, &clock, &mut mem, None, tunables(60, 20, 4, 0));
    assert_eq!(pool.external_room(), 1024 + 128 * 40);
    let data = feed(10_000, 3);
    let accepted = pool.submit(&data).unwrap();
    assert_eq!(accepted, 1024 + 128 * 40, "takes exactly the room");
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 128, "the room filled the cache");
    assert_eq!(pool.external_room(), 0);
    assert_eq!(st.external_bytes_accepted, 6144);
    assert_eq!(st.external_bytes_discarded, 10_000 - 6144);
    // Every byte after the start-up test is credited; nothing is pending.
    let credited = st.per_source[Source::External.index()].credited;
    assert_eq!(credited.whole_bits(), (6144 - 1024) * 8);
    assert_eq!(
        credited.units(),
        st.mixer.blocks_emitted * 320 * 65536 + st.mixer.pending.units()
    );
}

#[test]
fn fill_is_all_or_nothing_and_never_repeats_a_block() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut mem = slots(32 * 4);
    let mut pool = external_pool(&cpu, &clock, &mut mem, None, tunables(60, 20, 4, 0));
    pool.submit(&feed(4096, 9)).unwrap();
    let blocks = pool.status().memory_len_blocks;
    assert!(blocks > 10);

    // More than available: an error, nothing taken, `out` untouched.
    let mut big = vec![0xAAu8; (blocks + 1) * 32];
    assert_eq!(pool.fill(&mut big), Err(Error::Starving));
    assert!(big.iter().all(|&b| b == 0xAA));
    assert_eq!(pool.status().memory_len_blocks, blocks);

    // A 40-byte request uses two whole blocks; the tail of the second is
    // thrown away, never handed out later.
    let mut seen = HashSet::new();
    let mut out = [0u8; 40];
    pool.fill(&mut out).unwrap();
    assert_eq!(pool.status().memory_len_blocks, blocks - 2);
    seen.insert(out[..32].to_vec());
    let mut one = [0u8; 32];
    while pool.fill(&mut one).is_ok() {
        assert!(seen.insert(one.to_vec()), "a block was handed out twice");
    }
    assert_eq!(seen.len(), blocks - 1);
    assert_eq!(pool.status().bytes_served, 40 + 32 * (blocks as u64 - 2));
}

#[test]
fn external_lost_after_timeout_then_recovers() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(1_000);
    let mut mem = slots(32);
    let mut pool = external_pool(&cpu, &clock, &mut mem, None, tunables(2, 20, 1, 0));
    assert!(!pool.status().external.lost);
    // Lost once more than the timeout has passed with nothing arriving.
    clock.advance(2_000);
    assert!(!pool.status().external.lost);
    clock.advance(1);
    assert!(pool.status().external.lost);
    // External only, caches empty: the clear error, not a hang.
    let mut out = [0u8; 32];
    assert_eq!(pool.fill(&mut out), Err(Error::ExternalLost));
    // A clock stepping back counts as no time passing.
    clock.set(0);
    assert!(pool.status().external.lost);
    // Fresh external entropy ends the state and refills.
    assert!(pool.submit(&feed(1024, 5)).unwrap() > 0);
    let st = pool.status();
    assert!(!st.external.lost);
    assert_eq!(st.external.ms_since_last, Some(0));
}

#[test]
fn serving_from_caches_continues_while_external_is_lost() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut pool = external_pool(&cpu, &clock, &mut mem, None, tunables(1, 20, 1, 0));
    pool.submit(&feed(1024, 1)).unwrap();
    assert_eq!(
        pool.status().memory_len_blocks,
        0,
        "start-up test: no credit"
    );
    pool.submit(&feed(1024, 2)).unwrap();
    assert!(pool.status().memory_len_blocks > 0);
    clock.advance(5_000);
    assert!(pool.status().external.lost);
    let mut out = [0u8; 32];
    assert_eq!(pool.fill(&mut out), Ok(()));
}

#[test]
fn restart_never_replays_a_block() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut disk = medium(8);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut total_out = 0usize;
    for round in 0..4u64 {
        let mut mem = slots(32 * 2);
        let mut pool = external_pool(
            &cpu,
            &clock,
            &mut mem,
            Some(&mut disk),
            tunables(60, 20, 2, 8),
        );
        // Feed, take some, flush the rest to storage as at SIGTERM.
        pool.submit(&feed(2048, round)).unwrap();
        let mut out = [0u8; 32];
        for _ in 0..10 {
            if pool.fill(&mut out).is_ok() {
                assert!(seen.insert(out.to_vec()), "replayed after restart");
                total_out += 1;
            }
        }
        pool.flush_to_storage().unwrap();
        assert_eq!(pool.status().memory_len_blocks, 0);
        drop(pool);
    }
    // Finally drain everything that was stored: all new.
    let mut mem = slots(32 * 2);
    let mut pool = external_pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        tunables(60, 20, 2, 8),
    );
    let mut out = [0u8; 32];
    while pool.fill(&mut out).is_ok() {
        assert!(seen.insert(out.to_vec()), "replayed after restart");
        total_out += 1;
    }
    assert_eq!(seen.len(), total_out);
    assert!(total_out > 40);
}

#[test]
fn hardware_harvest_fills_memory_then_storage() {
    let cpu = FakeCpu::good(42);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut disk = medium(1);
    let (mut pool, report) = Pool::new(PoolParts {
        config: config(4, tunables(60, 20, 1, 1)),
        cpu: &cpu,
        clock: &clock,
        memory: &mut mem,
        storage: Some(MemStorage::new(&mut disk)),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [0; 32],
        storage_key: [0x5B; 32],
    })
    .unwrap();
    assert!(report.is_some());
    let store_cap = pool.status().storage.capacity_blocks;
    assert!(store_cap > 0);
    let mut polls = 0;
    while pool.blocks_wanted() {
        pool.poll().unwrap();
        polls += 1;
        assert!(polls < 10_000, "pool never filled");
    }
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, st.memory_capacity_blocks);
    assert_eq!(st.storage.len_blocks, store_cap);
    assert_eq!(st.refill_wanted, None);
    // RDSEED at full credit: 5 words per block after a 1024-word start-up.
    let rdseed = st.per_source[Source::Rdseed.index()];
    // Every emitted block is in a cache or held by the mixer (the caches
    // being full); credit short of a block waits in the mixer.
    let blocks = st.memory_len_blocks as u64 + st.storage.len_blocks + u64::from(st.mixer.held);
    assert_eq!(st.mixer.blocks_emitted, blocks);
    assert_eq!(
        rdseed.credited.units(),
        blocks * 320 * 65536 + st.mixer.pending.units()
    );
    // Once full, polling harvests nothing.
    let before = cpu.rdseed_attempts();
    let r = pool.poll().unwrap();
    assert_eq!(r.rdseed_words, 0);
    assert_eq!(cpu.rdseed_attempts(), before);
}

#[test]
fn rdrand_credit_is_capped_at_128_bits_per_1024_words() {
    let cpu = FakeCpu::good(7);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut pool = memory_only_pool(&cpu, &clock, &mut mem, 2, tunables(60, 20, 1, 0)).unwrap();
    for _ in 0..20 {
        pool.poll().unwrap();
    }
    let st = pool.status();
    let rdrand = st.per_source[Source::Rdrand.index()];
    // Credited samples are those after the 1024-word start-up test.
    let credited_words = rdrand.samples - 1024;
    assert_eq!(rdrand.credited.units(), credited_words * (128 << 16) / 1024);
    assert_eq!(
        st.memory_len_blocks as u64,
        rdrand.credited.whole_bits() / 320
    );
}

#[test]
fn failing_rdseed_never_hangs_and_credits_nothing() {
    let cpu = FakeCpu::good(1);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut pool = memory_only_pool(&cpu, &clock, &mut mem, 4, tunables(60, 20, 1, 0)).unwrap();
    // After a good self-test, RDSEED stops delivering.
    cpu.set_rdseed(FakeOutput::Fail);
    let before = cpu.rdseed_attempts();
    let r = pool.poll().unwrap();
    assert_eq!(r.rdseed_words, 0);
    // Bounded: one retry budget per poll.
    assert!(cpu.rdseed_attempts() - before <= 100);
    let st = pool.status();
    assert_eq!(st.rdseed.unwrap().last_error, Some(Error::RdseedNotNow));
    assert_eq!(st.per_source[Source::Rdseed.index()].credited.units(), 0);
    let mut out = [0u8; 32];
    assert_eq!(pool.fill(&mut out), Err(Error::Starving));
}

#[test]
fn missing_hardware_is_named_at_start() {
    let cpu = FakeCpu::good(1).with_features(CpuFeatures {
        rdrand: true,
        rdseed: false,
    });
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let err = memory_only_pool(&cpu, &clock, &mut mem, 4, tunables(60, 20, 1, 0)).unwrap_err();
    assert_eq!(
        err,
        Error::SourceUnavailable {
            source: Source::Rdseed
        }
    );
    // Default (0) resolves to interrupts + RDRAND here.
    let mut mem = slots(32);
    let pool = memory_only_pool(&cpu, &clock, &mut mem, 0, tunables(60, 20, 1, 0)).unwrap();
    assert_eq!(pool.sources().value(), 3);
}

#[test]
fn submit_without_external_source_is_refused() {
    let cpu = FakeCpu::good(1);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut pool = memory_only_pool(&cpu, &clock, &mut mem, 2, tunables(60, 20, 1, 0)).unwrap();
    assert_eq!(
        pool.submit(&[1; 64]),
        Err(Error::SourceUnavailable {
            source: Source::External
        })
    );
    assert_eq!(pool.status().external_bytes_accepted, 0);
}

#[test]
fn install_seed_is_used_whatever_the_sources_mask() {
    // RDRAND only: external submissions are refused, but the staged
    // install-time seed still goes through the external path.
    let cpu = FakeCpu::good(1);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut pool = memory_only_pool(&cpu, &clock, &mut mem, 2, tunables(60, 20, 1, 0)).unwrap();
    assert_eq!(
        pool.seed_external(&feed(1024 + 40 * 3, 5)),
        Ok(1024 + 40 * 3)
    );
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 3);
    assert_eq!(
        st.per_source[Source::External.index()]
            .credited
            .whole_bits(),
        3 * 320
    );
}

#[test]
fn blocks_served_from_storage_are_counted() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut disk = medium(2);
    {
        let mut mem = slots(32);
        let mut pool = external_pool(
            &cpu,
            &clock,
            &mut mem,
            Some(&mut disk),
            tunables(60, 20, 1, 2),
        );
        pool.seed_external(&feed(1024 + 40 * 5, 1)).unwrap();
        assert_eq!(pool.flush_to_storage().unwrap(), 5);
    }
    let mut mem = slots(32);
    let mut pool = external_pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        tunables(60, 20, 1, 2),
    );
    // Three fresh blocks behind the five loaded ones.
    pool.submit(&feed(1024 + 40 * 3, 2)).unwrap();
    assert_eq!(pool.status().memory_len_blocks, 8);
    let mut out = [0u8; 32 * 4 + 8];
    pool.fill(&mut out).unwrap();
    let st = pool.status();
    assert_eq!(st.bytes_served, 136);
    assert_eq!(
        st.bytes_served_from_storage, 136,
        "the oldest (stored) blocks go first"
    );
    let mut out = [0u8; 64];
    pool.fill(&mut out).unwrap();
    // 136 bytes took the five stored blocks (the tail of the fifth was
    // wiped); these two are fresh.
    assert_eq!(pool.status().bytes_served_from_storage, 136);
    assert_eq!(pool.status().bytes_served, 200);
}

#[test]
fn stored_blocks_load_a_batch_at_start_and_the_rest_through_poll() {
    let clock = FakeClock::new(0);
    let mut disk = medium(4);
    {
        let cpu = FakeCpu::good(1).with_features(NO_HW);
        let mut mem = slots(128);
        let mut pool = external_pool(
            &cpu,
            &clock,
            &mut mem,
            Some(&mut disk),
            tunables(60, 20, 4, 4),
        );
        pool.seed_external(&feed(1024 + 40 * 100, 1)).unwrap();
        assert_eq!(pool.flush_to_storage().unwrap(), 100);
    }
    // With RDRAND in the mask (beside external, which the stored blocks
    // came from: storage serves no block from outside the mask): nothing is
    // harvested while loading.
    let cpu = FakeCpu::good(2);
    let mut mem = slots(128);
    let pool = memory_only_pool(&cpu, &clock, &mut mem, 2, tunables(60, 20, 4, 0)).unwrap();
    assert!(!pool.loading_storage(), "no storage: nothing to load");
    drop(pool);
    let (mut pool, _) = Pool::new(PoolParts {
        config: config(10, tunables(60, 20, 4, 4)),
        cpu: &cpu,
        clock: &clock,
        memory: &mut mem,
        storage: Some(MemStorage::new(&mut disk)),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [7; 32],
        storage_key: [8; 32],
    })
    .unwrap();
    // One batch (16 blocks, one flush) at start, already erased in storage.
    assert!(pool.loading_storage());
    let st = pool.status();
    assert_eq!((st.memory_len_blocks, st.storage.len_blocks), (16, 84));
    let r = pool.poll().unwrap();
    assert_eq!((r.loaded, r.rdrand_words), (64, 0));
    assert!(r.still_wanted);
    let r = pool.poll().unwrap();
    assert_eq!((r.loaded, r.rdrand_words), (20, 0));
    assert!(!pool.loading_storage());
    let st = pool.status();
    assert_eq!((st.memory_len_blocks, st.storage.len_blocks), (100, 0));
    // Loaded: the hardware refills as usual.
    let r = pool.poll().unwrap();
    assert!(r.rdrand_words > 0);
    // The stored blocks are the oldest: a fill of them counts as storage's.
    let mut out = [0u8; 32 * 100];
    pool.fill(&mut out).unwrap();
    assert_eq!(pool.status().bytes_served_from_storage, 3200);
}

#[test]
fn shrinking_memory_moves_blocks_to_storage_and_loses_none() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut mem = slots(32 * 4);
    let mut disk = medium(8);
    let mut pool = external_pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        tunables(60, 20, 4, 8),
    );
    pool.submit(&feed(4096, 2)).unwrap();
    let st = pool.status();
    let total = st.memory_len_blocks as u64 + st.storage.len_blocks;
    assert!(st.memory_len_blocks > 32);
    pool.set_tunables(&tunables(60, 20, 1, 8)).unwrap();
    let st = pool.status();
    assert_eq!(st.memory_capacity_blocks, 32);
    assert_eq!(st.memory_len_blocks, 32);
    assert_eq!(st.memory_len_blocks as u64 + st.storage.len_blocks, total);
    assert_eq!(st.blocks_discarded, 0);
    // Growing beyond the slots provided is refused whole.
    let before = pool.status();
    assert_eq!(
        pool.set_tunables(&tunables(5, 50, 8, 8)),
        Err(Error::CapacityTooSmall)
    );
    let after = pool.status();
    assert_eq!(after.tunables, before.tunables);
    assert_eq!(after.low_watermark_percent, 20);
    // Timeout and watermark apply at once.
    pool.set_tunables(&tunables(5, 50, 1, 8)).unwrap();
    let st = pool.status();
    assert_eq!(st.external.timeout_ms, 5_000);
    assert_eq!(st.low_watermark_percent, 50);
}

#[test]
fn seed_fills_memory_then_storage_and_discards_the_rest() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let mut disk = medium(2);
    let mut pool = external_pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        tunables(60, 20, 1, 2),
    );
    let data = feed(512 * 1024, 11);
    let used = pool.seed_external(&data).unwrap();
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 32);
    assert_eq!(st.storage.len_blocks, st.storage.capacity_blocks);
    assert!(used < data.len());
    assert_eq!(st.external_bytes_accepted, used as u64);
    assert!(!st.external.lost);
}

#[test]
fn corrupt_storage_is_discarded_and_credits_nothing() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let mut disk = medium(2);
    {
        let mut mem = slots(32);
        let mut pool = external_pool(
            &cpu,
            &clock,
            &mut mem,
            Some(&mut disk),
            tunables(60, 20, 1, 2),
        );
        pool.seed_external(&feed(1024 + 40 * 10, 1)).unwrap();
        assert_eq!(pool.flush_to_storage().unwrap(), 10);
    }
    // Flip a byte in every stored block.
    for i in 0..10 {
        disk[64 + 64 * i] ^= 1;
    }
    let mut mem = slots(32);
    let mut pool = external_pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        tunables(60, 20, 1, 2),
    );
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 0);
    assert_eq!(st.storage.len_blocks, 0);
    assert_eq!(st.storage.corrupt_discarded, 10);
    let mut out = [0u8; 32];
    assert_eq!(pool.fill(&mut out), Err(Error::Starving));
}
