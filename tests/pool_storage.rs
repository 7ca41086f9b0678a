//! The pool's storage component through the public API: every spill,
//! resize and flush accounts for each block exactly once (stored,
//! discarded, still in memory, held by the mixer, or served), and a
//! `set_tunables` whose storage re-open fails changes nothing.
//!
//! The ledger every test checks: each block the mixer emitted is in
//! exactly one place. `blocks_emitted = memory + stored since start +
//! discarded + held + served`.
#![allow(clippy::unwrap_used)]

use core::cell::Cell;

use entropool::cache::BlockSlot;
use entropool::config::{Config, Tunables};
use entropool::error::Error;
use entropool::hw::fake::FakeCpu;
use entropool::mixer::MixerConfig;
use entropool::pool::{OVERFLOW_BLOCKS, Pool, PoolParts, PoolStatus, STORAGE_LENT, StorageMove};
use entropool::ring::Slot;
use entropool::source::{CpuFeatures, SourceMask};
use entropool::storage::{MemStorage, Storage, layout_len};
use entropool::watch::FakeClock;

const NO_HW: CpuFeatures = CpuFeatures {
    rdrand: false,
    rdseed: false,
};

/// What a [`Flaky`] medium does.
#[derive(Default)]
struct Faults {
    /// Every operation fails.
    all: Cell<bool>,
    /// Writes left before every write fails (`None`: no limit).
    writes_left: Cell<Option<u32>>,
}

/// A memory medium that fails on command.
struct Flaky<'a> {
    inner: MemStorage<'a>,
    faults: &'a Faults,
}

const EIO: Error = Error::StorageIo { errno: 5 };

impl Flaky<'_> {
    fn check(&self) -> Result<(), Error> {
        if self.faults.all.get() {
            return Err(EIO);
        }
        Ok(())
    }
}

impl Storage for Flaky<'_> {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check()?;
        self.inner.read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.check()?;
        match self.faults.writes_left.get() {
            Some(0) => return Err(EIO),
            Some(n) => self.faults.writes_left.set(Some(n - 1)),
            None => {}
        }
        self.inner.write(offset, data)
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.check()?;
        self.inner.flush()
    }
    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        self.check()?;
        self.inner.set_capacity(bytes)
    }
}

type TestPool<'s> = Pool<'s, &'s FakeCpu, &'s FakeClock, Flaky<'s>>;

fn slots(n: usize) -> Vec<BlockSlot> {
    (0..n).map(|_| Slot::default()).collect()
}

/// A medium for `kib` KiB of storage-cache-size (32 blocks per KiB).
fn medium(kib: u64) -> Vec<u8> {
    vec![0u8; usize::try_from(layout_len(kib * 32).unwrap()).unwrap()]
}

fn tunables(timeout: u32, watermark: u32, mem_kib: u32, storage_kib: u32) -> Tunables {
    Tunables::new(timeout, watermark, mem_kib, storage_kib).unwrap()
}

/// A deterministic stream standing in for an HSM's output.
fn feed(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&entropool::hw::fake::splitmix64(&mut s).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The start-up window (no credit), then 40 bytes a block.
fn bytes_for_blocks(blocks: usize) -> usize {
    1024 + 40 * blocks
}

fn pool<'s>(
    cpu: &'s FakeCpu,
    clock: &'s FakeClock,
    mem: &'s mut [BlockSlot],
    disk: Option<&'s mut [u8]>,
    faults: &'s Faults,
    t: Tunables,
) -> TestPool<'s> {
    pool_of(8, cpu, clock, mem, disk, faults, t)
}

/// A pool on the sources `mask`.
fn pool_of<'s>(
    mask: u64,
    cpu: &'s FakeCpu,
    clock: &'s FakeClock,
    mem: &'s mut [BlockSlot],
    disk: Option<&'s mut [u8]>,
    faults: &'s Faults,
    t: Tunables,
) -> TestPool<'s> {
    let (pool, _) = Pool::new(PoolParts {
        config: Config {
            tunables: t,
            sources: SourceMask::new(mask).unwrap(),
        },
        cpu,
        clock,
        memory: mem,
        storage: disk.map(|d| Flaky {
            inner: MemStorage::new(d),
            faults,
        }),
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [7; 32],
        storage_key: [0x5B; 32],
    })
    .unwrap();
    pool
}

/// Blocks accounted for: memory, storage gained since `stored_at_start`,
/// on their way to storage, discarded, held, served.
fn ledger(st: &PoolStatus, stored_at_start: u64) -> u64 {
    st.memory_len_blocks as u64 + st.storage.len_blocks - stored_at_start
        + st.storage.pending_blocks
        + st.blocks_discarded
        + u64::from(st.mixer.held)
        + st.blocks_served
}

fn assert_ledger(st: &PoolStatus, stored_at_start: u64, what: &str) {
    assert_eq!(
        ledger(st, stored_at_start),
        st.mixer.blocks_emitted,
        "{what}: every emitted block is in exactly one place ({st:?})"
    );
}

#[test]
fn a_shrink_that_overflows_storage_counts_every_discarded_block() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32 * 4);
    let mut disk = medium(1);
    // 4 KiB of memory (128 blocks), 1 KiB of storage (32 blocks).
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 4, 1),
    );
    // Memory full, storage full, one block held.
    pool.seed_external(&feed(bytes_for_blocks(128 + 32 + 4), 1))
        .unwrap();
    let st = pool.status();
    assert_eq!((st.memory_len_blocks, st.storage.len_blocks), (128, 32));
    assert!(st.mixer.held);
    assert_ledger(&st, 0, "after the seed");

    // Shrink memory to 1 KiB: 96 blocks leave it, storage has no room.
    pool.set_tunables(&tunables(60, 20, 1, 1)).unwrap();
    let after = pool.status();
    assert_eq!(after.memory_len_blocks, 32);
    assert_eq!(after.storage.len_blocks, 32);
    assert_eq!(
        after.blocks_discarded - st.blocks_discarded,
        96,
        "each block that fit nowhere is counted once"
    );
    assert_ledger(&after, 0, "after the shrink");
}

#[test]
fn a_shrink_into_partial_room_stores_what_fits_and_counts_the_rest() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32 * 4);
    let mut disk = medium(1);
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 4, 1),
    );
    // Memory full, 10 blocks or so in storage.
    pool.seed_external(&feed(bytes_for_blocks(128 + 10), 2))
        .unwrap();
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 128);
    let room = st.storage.capacity_blocks - st.storage.len_blocks;
    assert!(room > 16 && room < 32, "room {room}");
    pool.set_tunables(&tunables(60, 20, 1, 1)).unwrap();
    let after = pool.status();
    assert_eq!(after.storage.len_blocks, 32, "storage took what fit");
    assert_eq!(after.blocks_discarded - st.blocks_discarded, 96 - room);
    assert_ledger(&after, 0, "after the shrink");
}

#[test]
fn a_flush_without_storage_counts_the_held_block() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        None,
        &faults,
        tunables(60, 20, 1, 0),
    );
    pool.seed_external(&feed(bytes_for_blocks(40), 3)).unwrap();
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 32);
    assert!(
        st.mixer.held,
        "the mixer holds a block it could not deliver"
    );
    assert_eq!(pool.flush_to_storage(), Ok(0));
    let after = pool.status();
    assert_eq!(after.memory_len_blocks, 0);
    assert!(!after.mixer.held);
    assert_eq!(
        after.blocks_discarded - st.blocks_discarded,
        33,
        "32 from memory and the held one"
    );
    assert_ledger(&after, 0, "after the flush");
}

#[test]
fn a_flush_that_overflows_storage_counts_what_did_not_fit() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32 * 8);
    let mut disk = medium(1);
    // 8 KiB of memory (256 blocks) into 1 KiB of storage (32 blocks).
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 8, 1),
    );
    pool.submit(&feed(bytes_for_blocks(200), 4)).unwrap();
    let st = pool.status();
    assert_eq!((st.memory_len_blocks, st.storage.len_blocks), (200, 0));
    assert_eq!(pool.flush_to_storage(), Ok(32));
    let after = pool.status();
    assert_eq!(after.storage.len_blocks, 32);
    assert_eq!(after.blocks_discarded - st.blocks_discarded, 168);
    assert_ledger(&after, 0, "after the flush");
}

#[test]
fn a_spill_into_failing_storage_counts_each_block_once() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut disk = medium(2);
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 1, 2),
    );
    // The fifth slot write fails: the spill batch (16 blocks) lands four
    // blocks, loses the rest.
    faults.writes_left.set(Some(4));
    let err = pool.seed_external(&feed(bytes_for_blocks(32 + 40), 5));
    assert!(err.is_ok(), "{err:?}");
    let st = pool.status();
    assert_eq!(st.memory_len_blocks, 32);
    assert_eq!(st.storage.last_error, Some(EIO));
    assert!(st.storage.len_blocks <= 4);
    assert!(st.blocks_discarded >= 12, "{}", st.blocks_discarded);
    assert_ledger(&st, 0, "after the failed spill");
}

#[test]
fn a_failed_storage_reopen_changes_nothing() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let (fa, fb) = (Faults::default(), Faults::default());
    let (mut mem_a, mut mem_b) = (slots(32 * 4), slots(32 * 4));
    // Media with room for the new size (a fixed medium cannot grow).
    let (mut disk_a, mut disk_b) = (medium(2), medium(2));
    let old = tunables(60, 20, 4, 1);
    let mut a = pool(&cpu, &clock, &mut mem_a, Some(&mut disk_a), &fa, old);
    let mut b = pool(&cpu, &clock, &mut mem_b, Some(&mut disk_b), &fb, old);
    // Memory full, a few blocks in storage: the same in both pools.
    let data = feed(bytes_for_blocks(128 + 6), 6);
    a.seed_external(&data).unwrap();
    b.seed_external(&data).unwrap();
    let before = a.status();
    assert_eq!(before, b.status());
    assert!(before.storage.len_blocks > 0);

    // A new storage size (and memory size, watermark, timeout) whose
    // re-open fails at its first access of the medium.
    fa.all.set(true);
    let new = tunables(5, 50, 1, 2);
    assert_eq!(a.set_tunables(&new), Err(EIO));
    fa.all.set(false);
    assert_eq!(*a.tunables(), old);
    assert_eq!(a.status(), before, "every observable is as it was");

    // The same contents: both pools hand out the same blocks.
    let mut out_a = vec![0u8; 32 * 128];
    let mut out_b = vec![0u8; 32 * 128];
    a.fill(&mut out_a).unwrap();
    b.fill(&mut out_b).unwrap();
    assert_eq!(out_a, out_b);
    // And the store still works at its old size.
    let mut one = [0u8; 32];
    a.fill(&mut one).unwrap();
    let st = a.status();
    assert_eq!(st.storage.len_blocks, before.storage.len_blocks - 1);
    // The change applies once the medium works.
    a.set_tunables(&new).unwrap();
    assert_eq!(*a.tunables(), new);
    assert_eq!(a.status().storage.capacity_blocks, 64);
}

#[test]
fn a_failed_open_of_an_idle_medium_keeps_it() {
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut disk = medium(1);
    // storage-cache-size 0: the medium is kept idle.
    let mut pool = pool(
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 1, 0),
    );
    assert!(!pool.status().storage.present);
    faults.all.set(true);
    assert_eq!(pool.set_tunables(&tunables(60, 20, 1, 1)), Err(EIO));
    assert_eq!(pool.tunables().storage_cache_size_kib(), 0);
    faults.all.set(false);
    pool.set_tunables(&tunables(60, 20, 1, 1)).unwrap();
    let st = pool.status();
    assert!(st.storage.present, "the medium was not lost to the failure");
    assert_eq!(st.storage.capacity_blocks, 32);
}

/// Polls until the memory cache is full (RDSEED at full credit).
fn fill_memory(pool: &mut TestPool<'_>) {
    for _ in 0..10_000 {
        if pool.status().memory_len_blocks == pool.status().memory_capacity_blocks {
            return;
        }
        pool.poll().unwrap();
    }
    unreachable!("the memory cache never filled");
}

#[test]
fn deferred_writes_wait_for_a_spill_job_and_land_once() {
    let cpu = FakeCpu::good(11);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut disk = medium(1);
    let mut pool = pool_of(
        4,
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 1, 1),
    );
    pool.defer_storage_writes(true);
    assert!(pool.take_spill().is_none(), "nothing waits yet");
    fill_memory(&mut pool);
    // Count the writes from here: deferred polls make none.
    faults.writes_left.set(Some(1_000));
    pool.poll().unwrap();
    let st = pool.status();
    assert!(st.storage.pending_blocks > 0, "{st:?}");
    assert_eq!(st.storage.len_blocks, 0);
    assert_eq!(faults.writes_left.get(), Some(1_000), "poll wrote nothing");
    assert_ledger(&st, 0, "blocks waiting");

    let mut job = pool.take_spill().unwrap();
    let carried = job.len();
    let carried64 = u64::try_from(carried).unwrap();
    assert_eq!(carried64, st.storage.pending_blocks);
    // While the job has the store: the pool serves from memory, counts
    // the job's blocks as on their way, and refuses what needs the store.
    let lent = pool.status();
    assert!(lent.storage.present);
    assert_eq!(lent.storage.pending_blocks, carried64);
    assert_ledger(&lent, 0, "store lent");
    // Polls go on; new blocks wait beside the job's.
    pool.poll().unwrap();
    let polled = pool.status();
    assert!(polled.storage.pending_blocks > carried64, "{polled:?}");
    assert_ledger(&polled, 0, "polled while lent");
    let mut out = [0u8; 64];
    pool.fill(&mut out).unwrap();
    assert_eq!(
        pool.set_tunables(&tunables(60, 20, 1, 2)),
        Err(STORAGE_LENT)
    );
    assert_eq!(pool.tunables().storage_cache_size_kib(), 1);
    assert_eq!(pool.flush_to_storage(), Err(STORAGE_LENT));
    assert!(pool.take_spill().is_none(), "one job at a time");
    assert_ledger(&pool.status(), 0, "served while lent");

    job.write();
    assert_eq!(
        faults.writes_left.get(),
        Some(1_000 - u32::try_from(carried).unwrap())
    );
    let moved = pool.finish_spill(job).unwrap();
    assert_eq!(
        moved,
        StorageMove {
            stored: carried,
            discarded: 0
        }
    );
    let st = pool.status();
    assert_eq!(st.storage.len_blocks, carried64);
    assert_ledger(&st, 0, "job done");

    // Until the store is full, with every block in one place (first
    // below the low watermark, so that the pool wants blocks again).
    let mut drain = vec![0u8; 32 * (pool.status().memory_len_blocks - 5)];
    pool.fill(&mut drain).unwrap();
    fill_memory(&mut pool);
    for _ in 0..100 {
        pool.poll().unwrap();
        if let Some(mut job) = pool.take_spill() {
            job.write();
            pool.finish_spill(job).unwrap();
        }
        assert_ledger(&pool.status(), 0, "filling");
    }
    let st = pool.status();
    assert_eq!(st.storage.len_blocks, st.storage.capacity_blocks);
    assert_eq!(st.blocks_discarded, 0);
    // The shutdown save takes what still waits, with the memory cache.
    let saved = pool.flush_to_storage().unwrap();
    assert_eq!(saved, 0, "the store is full");
    let st = pool.status();
    assert_eq!(st.storage.pending_blocks, 0);
    assert_ledger(&st, 0, "after the save");
}

#[test]
fn a_crash_mid_spill_replays_nothing() {
    let cpu = FakeCpu::good(12);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut disk = medium(1);
    {
        let mut pool = pool_of(
            4,
            &cpu,
            &clock,
            &mut mem,
            Some(&mut disk),
            &faults,
            tunables(60, 20, 1, 1),
        );
        pool.defer_storage_writes(true);
        fill_memory(&mut pool);
        while pool.status().storage.pending_blocks < 3 {
            pool.poll().unwrap();
        }
        let mut job = pool.take_spill().unwrap();
        // The medium dies after two slot writes.
        faults.writes_left.set(Some(2));
        job.write();
        assert_eq!(pool.finish_spill(job), Err(EIO), "the failure is reported");
        let st = pool.status();
        assert_eq!(st.storage.len_blocks, 2, "what landed is stored");
        assert_ledger(&st, 0, "after the failed write");
        // The process dies here: no flush of the memory cache.
        core::mem::forget(pool);
    }
    faults.writes_left.set(None);
    let mut mem2 = slots(32);
    let clock2 = FakeClock::new(0);
    let mut pool = pool_of(
        4,
        &cpu,
        &clock2,
        &mut mem2,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 1, 1),
    );
    while pool.loading_storage() {
        pool.poll().unwrap();
    }
    let st = pool.status();
    assert_eq!(
        st.memory_len_blocks, 2,
        "the restart finds the two blocks that landed, nothing else"
    );
}

#[test]
fn a_full_wait_for_a_spill_job_stops_the_harvest() {
    let cpu = FakeCpu::good(13);
    let clock = FakeClock::new(0);
    let faults = Faults::default();
    let mut mem = slots(32);
    let mut disk = medium(2);
    let mut pool = pool_of(
        4,
        &cpu,
        &clock,
        &mut mem,
        Some(&mut disk),
        &faults,
        tunables(60, 20, 1, 2),
    );
    pool.defer_storage_writes(true);
    fill_memory(&mut pool);
    // Nobody takes the spill job: at most 16 blocks wait, then the pool
    // stops asking for blocks (and harvests nothing) until one is taken.
    for _ in 0..100 {
        if !pool.blocks_wanted() {
            break;
        }
        pool.poll().unwrap();
    }
    let st = pool.status();
    assert_eq!(st.storage.pending_blocks, OVERFLOW_BLOCKS as u64);
    assert!(!pool.blocks_wanted());
    let r = pool.poll().unwrap();
    assert_eq!((r.rdseed_words, r.still_wanted), (0, false));
    let mut job = pool.take_spill().unwrap();
    job.write();
    pool.finish_spill(job).unwrap();
    assert!(pool.blocks_wanted(), "room again");
    assert_ledger(&pool.status(), 0, "after the job");
    // The shutdown save takes the waiting blocks too, and counts them.
    pool.poll().unwrap();
    let st = pool.status();
    assert!(st.storage.pending_blocks > 0);
    let room = st.storage.capacity_blocks - st.storage.len_blocks;
    let offered =
        st.storage.pending_blocks + st.memory_len_blocks as u64 + u64::from(st.mixer.held);
    let saved = pool.flush_to_storage().unwrap() as u64;
    assert_eq!(saved, offered.min(room));
    let after = pool.status();
    assert_eq!(after.storage.pending_blocks, 0);
    assert_eq!(after.storage.len_blocks, st.storage.len_blocks + saved);
    assert_ledger(&after, 0, "after the save");
}
