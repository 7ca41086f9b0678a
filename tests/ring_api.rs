//! Public API of `entropool::ring`: ownership on failure, FIFO order,
//! wrap-around, wiping, the single-owner API and the shared (`std`) halves.

use core::cell::Cell;
use entropool::ring::Ring;
use entropool::{Error, Slot};
use std::rc::Rc;

fn storage<T: Default>(n: usize) -> Vec<Slot<T>> {
    (0..n).map(|_| Slot::default()).collect()
}

#[test]
fn push_returns_value_when_full_and_pop_none_when_empty() {
    let mut s = storage::<u32>(2);
    let mut ring = Ring::new(&mut s).unwrap();
    assert_eq!(ring.capacity(), 2);
    assert!(ring.is_empty());
    assert_eq!(ring.pop(), None);
    ring.push(1).unwrap();
    ring.push(2).unwrap();
    assert!(ring.is_full());
    assert_eq!(ring.push(3), Err(3));
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.pop(), Some(1));
    assert_eq!(ring.pop(), Some(2));
    assert_eq!(ring.pop(), None);
}

#[test]
fn halves_keep_fifo_order_across_many_wraps() {
    let mut s = storage::<u64>(3);
    let mut ring = Ring::new(&mut s).unwrap();
    let (mut p, mut c) = ring.split();
    let mut next_in = 0_u64;
    let mut next_out = 0_u64;
    for round in 0..50_u64 {
        // Push 1..=3 values, pop 1..=3 values: crosses the wrap point often.
        for _ in 0..=(round % 3) {
            if p.push(next_in).is_ok() {
                next_in += 1;
            }
        }
        assert_eq!(p.len(), c.len());
        assert!(p.len() <= 3);
        assert_eq!(p.free(), 3 - p.len());
        for _ in 0..=((round + 1) % 3) {
            if let Some(v) = c.pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
    while let Some(v) = c.pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_in, next_out);
    assert!(next_in > 50);
}

#[test]
fn split_again_after_halves_are_dropped() {
    let mut s = storage::<u8>(4);
    let mut ring = Ring::new(&mut s).unwrap();
    {
        let (mut p, _c) = ring.split();
        p.push(7).unwrap();
        p.push(8).unwrap();
    }
    {
        let (mut p, mut c) = ring.split();
        assert_eq!(c.pop(), Some(7));
        p.push(9).unwrap();
    }
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.pop(), Some(8));
    assert_eq!(ring.pop(), Some(9));
}

#[test]
fn pop_into_moves_a_batch_and_wipes() {
    let mut s = storage::<u64>(5);
    let mut ring = Ring::new(&mut s).unwrap();
    {
        let (mut p, mut c) = ring.split();
        for v in 10..14 {
            p.push(v).unwrap();
        }
        let mut out = [0_u64; 3];
        assert_eq!(c.pop_into(&mut out), 3);
        assert_eq!(out, [10, 11, 12]);
        let mut out = [0_u64; 8];
        assert_eq!(c.pop_into(&mut out), 1);
        assert_eq!(out[0], 13);
        assert_eq!(c.pop_into(&mut out), 0);
        assert_eq!(c.pop_into(&mut []), 0);
    }
    drop(ring);
    // Every value left through a pop: storage holds only defaults now.
    let left: Vec<u64> = s.into_iter().map(Slot::into_inner).collect();
    assert_eq!(left, [0; 5]);
}

#[test]
fn popped_and_dropped_values_leave_wiped_slots() {
    let mut s = storage::<[u8; 32]>(4);
    {
        let mut ring = Ring::new(&mut s).unwrap();
        for i in 1..=7_u8 {
            ring.push([i; 32]).unwrap();
            if i % 2 == 0 {
                assert_eq!(ring.pop().map(|b| b[0]), Some(i / 2));
            }
        }
        // Dropped with values still queued.
        assert!(!ring.is_empty());
    }
    for slot in s {
        assert_eq!(slot.into_inner(), [0; 32]);
    }
}

#[test]
fn push_with_and_pop_with_work_in_place() {
    let mut s = storage::<[u8; 32]>(1);
    let mut ring = Ring::new(&mut s).unwrap();
    let pushed = ring.push_with(|slot| {
        assert_eq!(*slot, [0; 32], "a free slot holds a wiped default");
        slot.fill(0xAB);
    });
    assert!(pushed.is_ok());
    let mut called = false;
    assert!(ring.push_with(|_| called = true).is_err());
    assert!(!called, "a full ring must not call the closure");
    let mut copy = [0_u8; 32];
    assert_eq!(ring.pop_with(|slot| copy = *slot), Some(()));
    assert_eq!(copy, [0xAB; 32]);
    assert_eq!(ring.pop_with(|_| ()), None);
}

/// Counts drops, so the test sees each value dropped exactly once.
#[derive(Default)]
struct Tracked(Option<Rc<Cell<u32>>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.set(c.get() + 1);
        }
    }
}

#[test]
fn clear_and_drop_release_every_value_once() {
    let drops = Rc::new(Cell::new(0));
    let mut s = storage::<Tracked>(3);
    {
        let mut ring = Ring::new(&mut s).unwrap();
        for _ in 0..3 {
            assert!(ring.push(Tracked(Some(drops.clone()))).is_ok());
        }
        assert_eq!(ring.clear(), 3);
        assert_eq!(drops.get(), 3);
        for _ in 0..2 {
            assert!(ring.push(Tracked(Some(drops.clone()))).is_ok());
        }
        let popped = ring.pop();
        assert!(popped.is_some());
        drop(popped);
        assert_eq!(drops.get(), 4);
    }
    // The ring was dropped with one value queued: dropped too.
    assert_eq!(drops.get(), 5);
    drop(s);
    assert_eq!(drops.get(), 5, "storage held only defaults");
}

#[test]
fn empty_storage_is_an_error() {
    let mut s = storage::<u8>(0);
    assert_eq!(Ring::new(&mut s).err(), Some(Error::CapacityTooSmall));
}

#[test]
fn halves_report_capacity_and_debug_without_contents() {
    let mut s = storage::<u64>(4);
    let mut ring = Ring::new(&mut s).unwrap();
    ring.push(0xdead_beef).unwrap();
    let text = format!("{ring:?}");
    assert!(!text.contains("3735928559"), "{text}");
    assert!(text.contains("len: 1"), "{text}");
    let (p, c) = ring.split();
    assert_eq!(p.capacity(), 4);
    assert_eq!(c.capacity(), 4);
    assert!(!c.is_empty());
    assert!(!p.is_empty());
}

#[cfg(feature = "std")]
#[test]
fn shared_halves_move_to_threads_and_free_on_drop() {
    let drops = std::sync::Arc::new(core::sync::atomic::AtomicU32::new(0));
    #[derive(Default)]
    struct Counted(Option<std::sync::Arc<core::sync::atomic::AtomicU32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            if let Some(c) = &self.0 {
                c.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    assert_eq!(
        Ring::<u8>::new_shared(0).err(),
        Some(Error::CapacityTooSmall)
    );
    let (mut p, mut c) = Ring::<Counted>::new_shared(4).unwrap();
    let d = drops.clone();
    std::thread::spawn(move || {
        for _ in 0..3 {
            assert!(p.push(Counted(Some(d.clone()))).is_ok());
        }
    })
    .join()
    .unwrap();
    c = std::thread::spawn(move || {
        let v = c.pop();
        assert!(v.is_some());
        c
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(core::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(c.len(), 2);
    assert!(c.pop().is_some());
    drop(c);
    // Both halves gone: the last queued value was dropped with the ring.
    assert_eq!(drops.load(core::sync::atomic::Ordering::Relaxed), 3);
}
