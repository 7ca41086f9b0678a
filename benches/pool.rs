#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! The whole pool path for external entropy (`entropool`: submit 64 KiB,
//! poll, fill every full-entropy byte it earned) beside hashing the same
//! 64 KiB with sha2 (`sha2`). Throughput is input bytes.
//!
//! The pool hashes each 40 input bytes (320 credited bits) into its own
//! 32-byte block: about the cost of hashing the input once with sha2 on
//! SHA-NI (see benches/mixer.rs). Before that it screens every byte for
//! patterns (a histogram, eight difference counts, a repeat table: about
//! 1.2x SHA-256 of the same bytes on the development machine), then moves
//! each block through the memory cache and out through `fill`. The ratio
//! therefore cannot exceed about 1 / (1.0 + 1.2) = 0.45x while the screen
//! reads every byte.

use core::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entropool::testing::FakeClock;
use entropool::{BlockSlot, Pool, Slot};
use sha2::{Digest, Sha256};

#[path = "common/fixtures.rs"]
mod fixtures;

const INPUT: usize = 64 * 1024;

fn pool_fill_external(c: &mut Criterion) {
    let data = fixtures::external_bytes(INPUT);
    let cpu = fixtures::cpu_without_rng();
    let clock = FakeClock::new(0);
    let mut mem: Vec<BlockSlot> = (0..128 * 32).map(|_| Slot::default()).collect();
    let (mut pool, _) = Pool::new(fixtures::external_pool_parts(&cpu, &clock, &mut mem)).unwrap();
    // Pass the start-up health test once, outside the measurement.
    pool.submit(&data[..2048]).unwrap();
    let mut out = vec![0u8; INPUT];
    while pool.fill(&mut out[..32]).is_ok() {}

    let mut g = c.benchmark_group("pool_fill_external");
    g.throughput(Throughput::Bytes(INPUT as u64));
    g.bench_function("entropool", |b| {
        b.iter(|| {
            let took = pool.submit(black_box(&data)).unwrap();
            assert_eq!(took, INPUT);
            pool.poll().unwrap();
            let blocks = pool.status().memory_len_blocks;
            pool.fill(&mut out[..blocks * 32]).unwrap();
            black_box(&out);
        });
    });
    g.bench_function("sha2", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&data))));
    });
    g.finish();
}

criterion_group!(benches, pool_fill_external);
criterion_main!(benches);
