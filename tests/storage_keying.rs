//! Restored or cloned storage never makes two pools share a block, and
//! stored blocks are served only under a mask that covers their sources.
//!
//! Issue 15 item 1 and issue 13's provenance point: before the format
//! change, two pools opened from byte-identical copies of one store handed
//! out the same blocks, and blocks stored under RDSEED were served after a
//! restart with `--sources=8`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashSet;

use entropool::storage::{HeaderState, MAGIC, OLD_VERSION, StorageCache, key_block, layout_len};
use entropool::testing::{FakeClock, FakeCpu};
use entropool::{
    Block, BlockSlot, Config, CpuFeatures, MemStorage, MixerConfig, Pool, PoolParts, Slot,
    SourceMask, Tunables,
};
use sha2::{Digest, Sha256};

fn mask(v: u64) -> SourceMask {
    SourceMask::new(v).unwrap()
}

fn block(n: u16) -> [u8; 32] {
    let mut b = [0x3Cu8; 32];
    b[..2].copy_from_slice(&n.to_le_bytes());
    b
}

/// A store of `slots` slots holding `block(1..=filled)` stamped `stamp`.
fn store(slots: u64, filled: u16, stamp: u64) -> Vec<u8> {
    let mut mem = vec![0u8; layout_len(slots).unwrap() as usize];
    let (mut c, _) =
        StorageCache::open(MemStorage::new(&mut mem), slots, mask(stamp), &[1; 32]).unwrap();
    for n in 1..=filled {
        assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
    }
    mem
}

fn drain(mem: &mut [u8], slots: u64, sources: u64, key: &[u8; 32]) -> Vec<[u8; 32]> {
    let (mut c, _) = StorageCache::open(MemStorage::new(mem), slots, mask(sources), key).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 32];
    while c.take(&mut b).unwrap() {
        out.push(b);
    }
    out
}

#[test]
fn copies_of_one_store_share_no_block_under_different_start_keys() {
    let original = store(64, 64, 8);
    let mut a = original.clone();
    let mut b = original.clone();
    let out_a = drain(&mut a, 64, 8, &[0xA1; 32]);
    let out_b = drain(&mut b, 64, 8, &[0xB2; 32]);
    assert_eq!((out_a.len(), out_b.len()), (64, 64));
    let set_a: HashSet<_> = out_a.iter().collect();
    let set_b: HashSet<_> = out_b.iter().collect();
    assert_eq!(set_a.len(), 64, "no block twice within one run");
    assert!(set_a.is_disjoint(&set_b), "two copies shared a block");
    // Nothing comes out as it was stored.
    let stored: HashSet<_> = (1..=64).map(block).collect();
    assert!(out_a.iter().all(|o| !stored.contains(o)));
    // The transform is the documented one.
    let want: HashSet<_> = (1..=64)
        .map(|n| key_block(&[0xA1; 32], &block(n)))
        .collect();
    assert_eq!(set_a.into_iter().copied().collect::<HashSet<_>>(), want);
}

#[test]
fn the_start_key_is_what_separates_copies() {
    // The stated assumption: a start key used twice on copies of one store
    // gives the same blocks. This is why it must be fresh at every start.
    let original = store(8, 8, 4);
    let (mut a, mut b) = (original.clone(), original);
    assert_eq!(drain(&mut a, 8, 4, &[5; 32]), drain(&mut b, 8, 4, &[5; 32]));
}

#[test]
fn blocks_from_a_source_outside_the_mask_are_wiped_not_served() {
    // Stored while RDSEED (4) was the source; restarted with --sources=8.
    let mut mem = store(16, 10, 4);
    let (mut c, r) = StorageCache::open(MemStorage::new(&mut mem), 16, mask(8), &[2; 32]).unwrap();
    assert_eq!((r.blocks, r.foreign_wiped), (0, 10));
    assert!(!r.found_corruption(), "foreign is not corrupt");
    assert!(!c.take(&mut [0; 32]).unwrap());
    drop(c);
    assert!(mem[64..].iter().all(|&b| b == 0), "foreign slots wiped");
    // And they do not come back under the old mask either.
    assert!(drain(&mut mem, 16, 4, &[2; 32]).is_empty());
}

#[test]
fn provenance_within_the_mask_is_served_and_mixed_stores_split() {
    // 4 then 12 (RDSEED + external): a mask of 12 serves both, 8 neither,
    // 4 only the first kind.
    let mut mem = vec![0u8; layout_len(8).unwrap() as usize];
    {
        let (mut c, _) =
            StorageCache::open(MemStorage::new(&mut mem), 8, mask(4), &[1; 32]).unwrap();
        for n in 1..=3 {
            assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
        }
        c.set_provenance(mask(12)).unwrap();
        assert_eq!(c.provenance(), mask(12));
        for n in 4..=5 {
            assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
        }
        assert_eq!(
            c.set_provenance(SourceMask::DEFAULT),
            Err(entropool::Error::SourceMaskOutOfRange { value: 0 })
        );
    }
    assert_eq!(drain(&mut mem.clone(), 8, 12, &[3; 32]).len(), 5);
    assert_eq!(drain(&mut mem.clone(), 8, 8, &[3; 32]).len(), 0);
    let only4 = drain(&mut mem, 8, 4, &[3; 32]);
    let want: HashSet<_> = (1..=3).map(|n| key_block(&[3; 32], &block(n))).collect();
    assert_eq!(only4.into_iter().collect::<HashSet<_>>(), want);
}

#[test]
fn a_version_1_store_is_wiped_and_credits_nothing() {
    // A version-1 store, built from its documented format: header, then
    // slots of block || SHA-256("entropool/storage/v1/blk" || i || block).
    let slots = 4u64;
    let mut mem = vec![0u8; layout_len(slots).unwrap() as usize];
    mem[0..8].copy_from_slice(&MAGIC);
    mem[8..12].copy_from_slice(&OLD_VERSION.to_le_bytes());
    mem[12..16].copy_from_slice(&64u32.to_le_bytes());
    mem[16..24].copy_from_slice(&slots.to_le_bytes());
    let d = Sha256::digest(&mem[..32]);
    mem[32..64].copy_from_slice(&d);
    for i in 0..3u64 {
        let at = 64 + 64 * i as usize;
        let b = block(i as u16 + 1);
        mem[at..at + 32].copy_from_slice(&b);
        let d = Sha256::new()
            .chain_update(b"entropool/storage/v1/blk")
            .chain_update(i.to_le_bytes())
            .chain_update(b)
            .finalize();
        mem[at + 32..at + 64].copy_from_slice(&d);
    }
    let (mut c, r) =
        StorageCache::open(MemStorage::new(&mut mem), slots, mask(15), &[4; 32]).unwrap();
    assert_eq!(r.header, HeaderState::OldVersion);
    assert_eq!(r.blocks, 0);
    assert!(!r.found_corruption());
    assert!(!c.take(&mut [0; 32]).unwrap());
    drop(c);
    assert!(mem[64..].iter().all(|&b| b == 0), "old slots wiped");
}

// ---- the same properties through the pool ----

const RDSEED_ONLY: CpuFeatures = CpuFeatures {
    rdrand: false,
    rdseed: true,
};

fn pool_parts<'s, 'c>(
    cpu: &'c FakeCpu,
    clock: &'c FakeClock,
    mem: &'s mut [BlockSlot],
    disk: &'s mut [u8],
    sources: u64,
    storage_key: [u8; 32],
) -> PoolParts<'s, &'c FakeCpu, &'c FakeClock, MemStorage<'s>> {
    PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 1, 1).unwrap(),
            sources: mask(sources),
        },
        cpu,
        clock,
        memory: mem,
        storage: Some(MemStorage::new(disk)),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [9; 32],
        storage_key,
    }
}

/// A storage medium of 1 KiB storage-cache-size, filled by an RDSEED pool
/// and saved at shutdown.
fn disk_filled_by_rdseed() -> Vec<u8> {
    let cpu = FakeCpu::good(77).with_features(RDSEED_ONLY);
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..32).map(|_| Slot::default()).collect();
    // storage-cache-size 1 KiB counts entropy: 32 blocks.
    let mut disk = vec![0u8; layout_len(32).unwrap() as usize];
    {
        let (mut pool, _) =
            Pool::new(pool_parts(&cpu, &clock, &mut mem, &mut disk, 4, [1; 32])).unwrap();
        let mut polls = 0;
        while pool.blocks_wanted() {
            pool.poll().unwrap();
            polls += 1;
            assert!(polls < 10_000);
        }
        pool.flush_to_storage().unwrap();
        assert!(pool.status().storage.len_blocks > 0);
    }
    disk
}

/// Every block a pool started on `disk` with `sources` can hand out.
fn drain_pool(disk: &mut [u8], sources: u64, storage_key: [u8; 32]) -> Vec<[u8; 32]> {
    let cpu = FakeCpu::good(5).with_features(RDSEED_ONLY);
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..32).map(|_| Slot::default()).collect();
    let (mut pool, _) = Pool::new(pool_parts(
        &cpu,
        &clock,
        &mut mem,
        disk,
        sources,
        storage_key,
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 32];
    // No poll: only what the caches held at start.
    while pool.fill(&mut b).is_ok() {
        out.push(b);
    }
    out
}

#[test]
fn two_pools_from_copies_of_one_disk_share_no_block() {
    let disk = disk_filled_by_rdseed();
    let (mut a, mut b) = (disk.clone(), disk);
    let out_a = drain_pool(&mut a, 4, [0xA; 32]);
    let out_b = drain_pool(&mut b, 4, [0xB; 32]);
    assert!(out_a.len() > 10, "{}", out_a.len());
    assert_eq!(out_a.len(), out_b.len());
    let set_a: HashSet<_> = out_a.into_iter().collect();
    assert!(
        out_b.iter().all(|x| !set_a.contains(x)),
        "a block was shared"
    );
}

#[test]
fn an_eal4_restart_serves_nothing_stored_under_rdseed() {
    let mut disk = disk_filled_by_rdseed();
    let cpu = FakeCpu::good(5).with_features(RDSEED_ONLY);
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..32).map(|_| Slot::default()).collect();
    let (mut pool, report) =
        Pool::new(pool_parts(&cpu, &clock, &mut mem, &mut disk, 8, [0xC; 32])).unwrap();
    let report = report.unwrap();
    assert_eq!(report.blocks, 0);
    assert!(report.foreign_wiped > 10, "{report:?}");
    let st = pool.status();
    assert_eq!((st.memory_len_blocks, st.storage.len_blocks), (0, 0));
    assert!(pool.fill(&mut [0u8; 32]).is_err());
}
