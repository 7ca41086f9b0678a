//! Two threads move 10^7 32-byte blocks through the ring; each block carries
//! its sequence number (and a check pattern derived from it), and the
//! consumer checks that each arrives exactly once, in order.
//!
//! Under miri the count shrinks to a few hundred blocks.

use entropool::Slot;
use entropool::ring::{Consumer, Producer, Ring};

#[cfg(not(miri))]
const BLOCKS: u64 = 10_000_000;
#[cfg(miri)]
const BLOCKS: u64 = 300;

#[cfg(not(miri))]
const CAPACITY: usize = 1024;
#[cfg(miri)]
const CAPACITY: usize = 7;

/// Spins this many times before yielding the CPU (2 vCPUs: unbounded spinning
/// collapses throughput).
const SPINS: u32 = 64;

fn block(seq: u64) -> [u8; 32] {
    let mut b = [0_u8; 32];
    let (head, tail) = b.split_at_mut(8);
    head.copy_from_slice(&seq.to_le_bytes());
    // The rest is a function of seq, so a torn or mixed block is detected.
    let mix = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (i, chunk) in (1_u32..).step_by(8).zip(tail.chunks_mut(8)) {
        chunk.copy_from_slice(&mix.rotate_left(i).to_le_bytes());
    }
    b
}

fn backoff(spins: &mut u32) {
    if *spins < SPINS {
        *spins += 1;
        core::hint::spin_loop();
    } else {
        *spins = 0;
        std::thread::yield_now();
    }
}

fn produce(mut p: Producer<'_, [u8; 32]>) {
    let mut spins = 0;
    for seq in 0..BLOCKS {
        let mut value = block(seq);
        loop {
            match p.push(value) {
                Ok(()) => break,
                Err(back) => {
                    value = back;
                    backoff(&mut spins);
                }
            }
        }
    }
}

fn consume(mut c: Consumer<'_, [u8; 32]>) -> u64 {
    let mut expected = 0_u64;
    let mut spins = 0;
    while expected < BLOCKS {
        match c.pop() {
            Some(b) => {
                assert_eq!(
                    b,
                    block(expected),
                    "block {expected} lost, duplicated or torn"
                );
                expected += 1;
            }
            None => backoff(&mut spins),
        }
    }
    assert_eq!(c.pop(), None, "a block arrived twice");
    expected
}

#[test]
fn ten_million_blocks_arrive_once_in_order() {
    let mut storage: Vec<Slot<[u8; 32]>> = (0..CAPACITY).map(|_| Slot::default()).collect();
    let mut ring = Ring::new(&mut storage).unwrap();
    let (p, c) = ring.split();
    let received = std::thread::scope(|s| {
        s.spawn(move || produce(p));
        s.spawn(move || consume(c)).join().unwrap()
    });
    assert_eq!(received, BLOCKS);
    assert!(ring.is_empty());
}

#[cfg(feature = "std")]
#[test]
fn shared_halves_move_blocks_in_order() {
    let (mut p, mut c) = Ring::<u64>::new_shared(if cfg!(miri) { 3 } else { 64 }).unwrap();
    let n: u64 = if cfg!(miri) { 100 } else { 200_000 };
    let producer = std::thread::spawn(move || {
        let mut spins = 0;
        for seq in 0..n {
            while p.push(seq).is_err() {
                backoff(&mut spins);
            }
        }
    });
    let mut expected = 0;
    let mut spins = 0;
    while expected < n {
        match c.pop() {
            Some(v) => {
                assert_eq!(v, expected);
                expected += 1;
            }
            None => backoff(&mut spins),
        }
    }
    producer.join().unwrap();
    assert_eq!(c.pop(), None);
}
