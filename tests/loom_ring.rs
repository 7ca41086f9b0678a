//! loom models of the ring: push / pop / len / pop_into / pop_many_with
//! from two threads, across wrap-around and the full and empty states. loom
//! explores every interleaving (within the preemption bound) and checks the
//! slot accesses for data races through its `UnsafeCell`.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --test loom_ring --release`
#![cfg(loom)]
#![allow(clippy::expect_used)]

use entropool::Slot;
use entropool::ring::{Consumer, Producer, Ring};
use loom::thread;

/// Halves over leaked storage, so they are `'static` for `loom::thread`.
fn halves(capacity: usize) -> (Producer<'static, u32>, Consumer<'static, u32>) {
    let storage: &'static mut [Slot<u32>] =
        Box::leak((0..capacity).map(|_| Slot::default()).collect::<Box<[_]>>());
    let ring: &'static mut Ring<'static, u32> =
        Box::leak(Box::new(Ring::new(storage).expect("capacity >= 1")));
    ring.split()
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn push_all(mut p: Producer<'static, u32>, values: core::ops::Range<u32>) {
    let cap = p.capacity();
    for v in values {
        loop {
            assert!(p.len() <= cap);
            if p.push(v).is_ok() {
                break;
            }
            thread::yield_now();
        }
    }
}

#[test]
fn push_pop_wraps_in_order() {
    // Capacity 2, 4 values: positions run 0,1,2,3 and wrap to 0.
    model(|| {
        let (p, mut c) = halves(2);
        let producer = thread::spawn(move || push_all(p, 1..5));
        let mut expected = 1;
        while expected < 5 {
            let len = c.len();
            assert!(len <= 2);
            match c.pop() {
                Some(v) => {
                    assert_eq!(v, expected);
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(), None);
        assert_eq!(c.len(), 0);
    });
}

#[test]
fn full_ring_of_one_hands_over_each_value() {
    model(|| {
        let (mut p, mut c) = halves(1);
        let producer = thread::spawn(move || {
            assert_eq!(p.push(10), Ok(()));
            // Full until the consumer pops: the value comes back.
            let mut v = 11;
            loop {
                match p.push(v) {
                    Ok(()) => break,
                    Err(back) => {
                        assert_eq!(back, 11);
                        v = back;
                        thread::yield_now();
                    }
                }
            }
            p
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            match c.pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        assert_eq!(got, [10, 11]);
        let p = producer.join().unwrap();
        assert_eq!(p.len(), 0);
        assert_eq!(c.pop(), None);
    });
}

#[test]
fn batch_pop_sees_only_published_values() {
    model(|| {
        let (p, mut c) = halves(2);
        let producer = thread::spawn(move || push_all(p, 1..4));
        let mut got = Vec::new();
        let mut out = [0_u32; 2];
        while got.len() < 3 {
            let n = c.pop_into(&mut out);
            if n == 0 {
                thread::yield_now();
            }
            got.extend_from_slice(&out[..n]);
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn in_place_batch_pop_hands_slots_back_once() {
    // Capacity 2, 4 values: the producer can only finish if each batch's
    // single release store hands the wiped slots back.
    model(|| {
        let (p, mut c) = halves(2);
        let producer = thread::spawn(move || push_all(p, 1..5));
        let mut got = Vec::new();
        while got.len() < 4 {
            let n = c.pop_many_with(2, |v| {
                got.push(*v);
                *v = 99;
            });
            assert!(n <= 2);
            if n == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(c.pop_many_with(2, |_| unreachable!()), 0);
    });
}

#[test]
fn len_is_bounded_seen_from_both_sides() {
    model(|| {
        let (mut p, mut c) = halves(2);
        let producer = thread::spawn(move || {
            let mut pushed = 0;
            for v in 0..3 {
                if p.push(v).is_ok() {
                    pushed += 1;
                }
                let len = p.len();
                assert!(len <= 2);
            }
            pushed
        });
        let mut popped = 0;
        for _ in 0..2 {
            let before = c.len();
            assert!(before <= 2);
            if c.pop().is_some() {
                popped += 1;
            } else {
                assert_eq!(before, 0, "len said a value was there but pop found none");
            }
        }
        let pushed = producer.join().unwrap();
        assert!(popped <= pushed);
        assert_eq!(c.len(), pushed - popped);
    });
}
