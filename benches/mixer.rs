#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Conditioning cost against SHA-256 itself.
//!
//! Bound: emitting 32 bytes per 40 credited input bytes needs one SHA-256
//! compression per 40 bytes (1638 for 64 KiB), hashing alone one per 64
//! (1024). sha2's compressions are chained, each waiting on the one
//! before; ours are independent (each block starts from the keyed
//! midstate), and on SHA-NI the conditioner interleaves two at a time.
//! On the development machine (AMD family 0x1A) a chained compression
//! costs about 38 ns and an interleaved one about 24 ns (the SHA unit's
//! throughput), so 1638 x 24 ns ~ 1024 x 38 ns: the bulk ratio to `sha2`
//! cannot exceed about 1.0x, before any health test or framing work. The
//! 8-byte case's peer pays per `update` call, so its ceiling is higher.

use core::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entropool::mixer::{Block, Mixer};
use entropool::{MixerConfig, Source};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

const BULK: usize = 64 * 1024;
const SAMPLES: usize = 8192;

/// Discards blocks (their drop zeroizes them).
fn discard(b: Block) -> Result<(), Block> {
    black_box(b.as_bytes());
    Ok(())
}

fn ready_mixer(source: Source, rng: &mut ChaCha20Rng) -> Mixer {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[7; 32]).unwrap();
    // Past the start-up test, so every sample is credited.
    if source == Source::External {
        let mut b = vec![0u8; 1024];
        rng.fill_bytes(&mut b);
        m.absorb_external(&b, &mut discard).unwrap();
    } else {
        let w = words(source, rng, 1024, 0);
        m.absorb_words(source, &w, &mut discard).unwrap();
    }
    m
}

fn words(source: Source, rng: &mut ChaCha20Rng, n: usize, start: u64) -> Vec<u64> {
    let mut t = start;
    (0..n)
        .map(|_| {
            if source == Source::Interrupts {
                t += 5_000 + (rng.next_u64() & 0xfff);
                t
            } else {
                rng.next_u64()
            }
        })
        .collect()
}

fn bulk(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut data = vec![0u8; BULK];
    rng.fill_bytes(&mut data);
    let mut g = c.benchmark_group("condition_bulk_64KiB");
    g.throughput(Throughput::Bytes(BULK as u64));
    let mut m = ready_mixer(Source::External, &mut rng);
    g.bench_function("entropool", |b| {
        b.iter(|| {
            let a = m.absorb_external(black_box(&data), &mut discard).unwrap();
            assert_eq!(a.consumed, BULK);
        });
    });
    g.bench_function("sha2", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&data))));
    });
    g.finish();
}

/// The external screen alone on 64 KiB of random data (16 windows), beside
/// one SHA-256 pass over the same bytes (what absorbing them costs at
/// least).
fn screen(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut data = vec![0u8; BULK];
    rng.fill_bytes(&mut data);
    let mut g = c.benchmark_group("screen_64KiB");
    g.throughput(Throughput::Bytes(BULK as u64));
    g.bench_function("entropool", |b| {
        b.iter(|| {
            let v = entropool::mixer::screen::screen(black_box(&data));
            assert_eq!(v, entropool::mixer::screen::Screen::Pass);
        });
    });
    g.bench_function("sha2", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&data))));
    });
    g.finish();
}

fn samples(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let w = words(Source::Rdseed, &mut rng, SAMPLES, 0);
    let mut g = c.benchmark_group("condition_samples_8B");
    g.throughput(Throughput::Bytes((SAMPLES * 8) as u64));
    // RDSEED at full credit (64 bits/word): the worst case, a block per
    // 5 words.
    let mut m = ready_mixer(Source::Rdseed, &mut rng);
    g.bench_function("entropool", |b| {
        b.iter(|| {
            let a = m
                .absorb_words(Source::Rdseed, black_box(&w), &mut discard)
                .unwrap();
            assert_eq!(a.consumed, SAMPLES);
        });
    });
    g.bench_function("sha2", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            for x in black_box(&w) {
                h.update(x.to_le_bytes());
            }
            black_box(h.finalize())
        });
    });
    g.finish();

    // The same 8192 samples per source (not a fixed-name group): RDRAND
    // (1/8 bit per word: a block per 2560 words) and interrupts (1/64 bit
    // per event) show the cost of hashing plus health tests alone.
    let mut g = c.benchmark_group("mixer_samples_8B_by_source");
    g.throughput(Throughput::Bytes((SAMPLES * 8) as u64));
    for source in [Source::Rdseed, Source::Rdrand, Source::Interrupts] {
        let mut m = ready_mixer(source, &mut rng);
        // Interrupt timestamps keep increasing across iterations.
        let mut start = 1u64 << 40;
        let batches: Vec<Vec<u64>> = (0..64)
            .map(|_| {
                let v = words(source, &mut rng, SAMPLES, start);
                start = v[SAMPLES - 1];
                v
            })
            .collect();
        let mut i = 0;
        g.bench_function(source.name(), |b| {
            b.iter(|| {
                let batch = &batches[i % batches.len()];
                i += 1;
                let a = m.absorb_words(source, black_box(batch), &mut discard);
                // Interrupt batches wrap around after 64: an old timestamp
                // is just a large delta, still fine for the tests.
                black_box(a.unwrap());
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bulk, screen, samples);
criterion_main!(benches);
