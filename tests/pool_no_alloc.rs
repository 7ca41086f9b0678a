//! After construction the pool never touches the heap: `poll`, interrupt
//! `record`, `submit`, `fill`, `status` and `flush_to_storage` are run
//! under a counting global allocator that must see no allocation.
//! Only the test's own thread is counted: the harness's threads allocate
//! when they please (the "running for over 60 seconds" notice on a loaded
//! machine, say).

#![allow(clippy::unwrap_used, clippy::std_instead_of_core)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use entropool::storage::layout_len;
use entropool::testing::{FakeClock, FakeCpu};
use entropool::{
    BlockSlot, Config, InterruptRing, MemStorage, MixerConfig, Pool, PoolParts, Slot, SourceMask,
    Tunables,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the test's thread while its allocations count.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Counts one allocation when it happens on a counted thread.
fn count() {
    // A const-initialised, drop-free thread local: reading it never
    // allocates, so this is safe inside the allocator.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_heap_allocation_after_construction() {
    let cpu = FakeCpu::good(5);
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..64).map(|_| Slot::default()).collect();
    let n = 4 * 32; // storage-cache-size=4 KiB of entropy
    let mut disk = vec![0u8; usize::try_from(layout_len(n).unwrap()).unwrap()];
    let mut ring_slots: Vec<Slot<u64>> = (0..512).map(|_| Slot::new(0u64)).collect();
    let mut ring = InterruptRing::new(&mut ring_slots).unwrap();
    let (mut recorder, drain) = ring.split();
    let data = vec![0x5Au8; 8192];
    let (mut pool, _) = Pool::new(PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 2, 4).unwrap(),
            sources: SourceMask::new(15).unwrap(),
        },
        cpu: &cpu,
        clock: &clock,
        memory: &mut mem,
        storage: Some(MemStorage::new(&mut disk)),
        interrupts: Some(drain),
        mixer: MixerConfig::default(),
        key: [1; 32],
        storage_key: [2; 32],
    })
    .unwrap();
    let mut out = [0u8; 100];

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.set(true);
    let mut ts = 0u64;
    let mut served = 0;
    for i in 0..200u64 {
        for _ in 0..64 {
            ts = ts.wrapping_add(1000 + (i * 7919) % 613);
            let _ = recorder.record(ts);
        }
        pool.poll().unwrap();
        let _ = pool.submit(&data[..usize::try_from(i % 97).unwrap() * 16]);
        if pool.fill(&mut out).is_ok() {
            served += 1;
        }
        let _ = pool.status();
        clock.advance(10);
    }
    pool.flush_to_storage().unwrap();
    COUNTED.set(false);
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    assert!(served > 0, "the loop must exercise fill");
    assert_eq!(after - before, 0, "the pool allocated on a runtime path");
}
