#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)]
//! Ring benches.
//!
//! - `memory_cache_spsc_32B`: a producer thread and a consumer thread move
//!   32-byte blocks through a ring of capacity 1023 (heapless: `N = 1024`,
//!   which holds N - 1); ids `entropool` (our ring), `entropool_batch` (the
//!   consumer takes up to 128 at a time in place with `pop_many_with`, as
//!   the memory cache's `write_out` does), `rtrb`, `heapless`. Both threads
//!   spin briefly, then yield (2 vCPUs).
//! - `memory_cache_drain_32B`: one thread drains 4 KiB (128 blocks) from a
//!   full ring into a fill buffer: `pop_with` one block at a time (one index
//!   update each) against `pop_many_with` (one update for the batch).
//!   Elements are blocks.
//! - `interrupt_record`: `entropool` = one `record` of a fresh cycle-counter
//!   reading (the consumer drains between timed chunks, so the ring never
//!   fills); `rdtsc` = reading the counter alone, timed the same way.

use core::hint::black_box;
use core::time::Duration;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entropool::ring::Ring;
use entropool::{InterruptRing, Slot};

/// Blocks moved per criterion iteration.
const ITEMS: u64 = 1 << 16;
const CAPACITY: usize = 1023;
const SPINS: u32 = 64;
/// Blocks per batch pop: a 4 KiB fill.
const BATCH: usize = 128;

#[inline(always)]
fn backoff(spins: &mut u32) {
    if *spins < SPINS {
        *spins += 1;
        core::hint::spin_loop();
    } else {
        *spins = 0;
        std::thread::yield_now();
    }
}

#[inline(always)]
fn item(i: u64) -> [u8; 32] {
    let mut b = [0_u8; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

/// The producer side: pushes items `0..total`, backing off while the ring
/// is full (`push` hands a refused item back).
#[inline(always)]
fn produce(total: u64, mut push: impl FnMut([u8; 32]) -> Result<(), [u8; 32]>) {
    let mut spins = 0;
    for i in 0..total {
        let mut v = item(i);
        while let Err(back) = push(v) {
            v = back;
            backoff(&mut spins);
        }
    }
}

/// The one-at-a-time consumer side: pops `total` items, backing off while
/// the ring is empty.
#[inline(always)]
fn consume(total: u64, mut pop: impl FnMut() -> Option<[u8; 32]>) {
    let mut spins = 0;
    let mut n = 0;
    while n < total {
        match pop() {
            Some(v) => {
                black_box(v);
                n += 1;
            }
            None => backoff(&mut spins),
        }
    }
}

/// Runs `produce` and `consume` on two threads; returns the elapsed time.
fn two_threads(produce: impl FnOnce() + Send, consume: impl FnOnce() + Send) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(produce);
        consume();
    });
    start.elapsed()
}

fn spsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_cache_spsc_32B");
    group.throughput(Throughput::Elements(ITEMS));

    group.bench_function("entropool", |b| {
        b.iter_custom(|iters| {
            let total = iters * ITEMS;
            let mut storage: Vec<Slot<[u8; 32]>> = (0..CAPACITY).map(|_| Slot::default()).collect();
            let mut ring = Ring::new(&mut storage).unwrap();
            let (mut p, mut c) = ring.split();
            two_threads(
                move || produce(total, |v| p.push(v)),
                move || consume(total, || c.pop()),
            )
        });
    });

    group.bench_function("entropool_batch", |b| {
        b.iter_custom(|iters| {
            let total = iters * ITEMS;
            let mut storage: Vec<Slot<[u8; 32]>> = (0..CAPACITY).map(|_| Slot::default()).collect();
            let mut ring = Ring::new(&mut storage).unwrap();
            let (mut p, mut c) = ring.split();
            two_threads(
                move || produce(total, |v| p.push(v)),
                move || {
                    let mut spins = 0;
                    let mut n = 0;
                    let mut out = [0_u8; 32 * BATCH];
                    while n < total {
                        let mut chunks = out.chunks_exact_mut(32);
                        let got = c.pop_many_with(BATCH, |v| {
                            if let Some(dst) = chunks.next() {
                                dst.copy_from_slice(v);
                            }
                        });
                        if got == 0 {
                            backoff(&mut spins);
                        } else {
                            black_box(&out);
                            n += got as u64;
                        }
                    }
                },
            )
        });
    });

    group.bench_function("rtrb", |b| {
        b.iter_custom(|iters| {
            let total = iters * ITEMS;
            let (mut p, mut c) = rtrb::RingBuffer::<[u8; 32]>::new(CAPACITY);
            two_threads(
                move || {
                    produce(total, |v| {
                        p.push(v).map_err(|rtrb::PushError::Full(back)| back)
                    });
                },
                move || consume(total, || c.pop().ok()),
            )
        });
    });

    group.bench_function("heapless", |b| {
        b.iter_custom(|iters| {
            let total = iters * ITEMS;
            let mut queue: Box<heapless::spsc::Queue<[u8; 32], { CAPACITY + 1 }>> =
                Box::new(heapless::spsc::Queue::new());
            assert_eq!(queue.capacity(), CAPACITY);
            let (mut p, mut c) = queue.split();
            two_threads(
                move || produce(total, |v| p.enqueue(v)),
                move || consume(total, || c.dequeue()),
            )
        });
    });
    group.finish();
}

fn drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_cache_drain_32B");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut storage: Vec<Slot<[u8; 32]>> = (0..BATCH).map(|_| Slot::default()).collect();
    let mut ring = Ring::new(&mut storage).unwrap();
    let mut out = vec![0_u8; 32 * BATCH];
    // Fill the ring (untimed), then time draining it into `out`.
    let mut timed = |ring: &mut Ring<'_, [u8; 32]>, iters: u64, batch: bool| {
        let mut elapsed = Duration::ZERO;
        for i in 0..iters {
            for k in 0..BATCH as u64 {
                ring.push(item(i ^ k)).unwrap();
            }
            let start = Instant::now();
            let mut chunks = out.chunks_exact_mut(32);
            if batch {
                let n = ring.pop_many_with(BATCH, |v| {
                    if let Some(dst) = chunks.next() {
                        dst.copy_from_slice(v);
                    }
                });
                assert_eq!(n, BATCH);
            } else {
                for dst in &mut chunks {
                    ring.pop_with(|v| dst.copy_from_slice(v)).unwrap();
                }
            }
            black_box(&out);
            elapsed += start.elapsed();
        }
        elapsed
    };
    group.bench_function("pop_with", |b| {
        b.iter_custom(|iters| timed(&mut ring, iters, false));
    });
    group.bench_function("pop_many_with", |b| {
        b.iter_custom(|iters| timed(&mut ring, iters, true));
    });
    group.finish();
}

/// Records timed per chunk; the ring (capacity 2 * CHUNK) is drained between
/// chunks, outside the timed region.
const CHUNK: u64 = 512;
const RING: usize = 1024;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "x86_64")]
fn interrupt_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("interrupt_record");
    group.throughput(Throughput::Elements(1));

    group.bench_function("entropool", |b| {
        let mut storage: Vec<Slot<u64>> = (0..RING).map(|_| Slot::default()).collect();
        let mut ring = InterruptRing::new(&mut storage).unwrap();
        let (mut rec, mut drain) = ring.split();
        let mut out = vec![0_u64; RING];
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    let _ = black_box(rec.record(rdtsc()));
                }
                elapsed += start.elapsed();
                left -= n;
                black_box(drain.drain(&mut out));
            }
            elapsed
        });
        assert_eq!(rec.counters().dropped(), 0, "the ring must never fill");
    });

    group.bench_function("rdtsc", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    black_box(rdtsc());
                }
                elapsed += start.elapsed();
                left -= n;
            }
            elapsed
        });
    });
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn interrupt_record(_: &mut Criterion) {
    eprintln!("interrupt_record: no RDTSC on this architecture; skipped");
}

criterion_group!(benches, spsc, drain, interrupt_record);
criterion_main!(benches);
