#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Timing entropy alone: the CPU execution-jitter collector feeding the
//! mixer (interrupt source, credited as an assessment allows) beside
//! rand_jitter 0.6 (the jitterentropy port) on the same run.
//!
//! - `timing_first_block`: from nothing (fresh scratch, collector and
//!   mixer, so the health tests' 1024-sample start-up window included) to
//!   the first 32-byte full-entropy block; rand_jitter: a fresh generator
//!   with its timer self-test (`test_timer`, what `JitterRng::new` runs the
//!   first time) and its first 32 bytes.
//! - `timing_throughput`: steady 32-byte full-entropy blocks; rand_jitter:
//!   32-byte outputs.
//!
//! The credit is `ENTROPOOL_TIMING_CREDIT_UNITS` (1/65536 bit per sample;
//! what `entropyd assess` recorded on this machine), else 32768 (1/2 bit).

use core::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entropool::assess::interrupts_config;
use entropool::mixer::{Block, Mixer};
use entropool::{CPU_JITTER_SCRATCH, CpuJitter, CreditRate, MixerConfig, RealCpu, Source};
use rand_core::Rng;
use rand_jitter::JitterRng;

fn credit() -> CreditRate {
    let units = std::env::var("ENTROPOOL_TIMING_CREDIT_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32_768);
    CreditRate::from_units(units)
}

fn mixer(credit: CreditRate) -> Mixer {
    let mut cfg = MixerConfig::DEFAULT;
    cfg.set(Source::Interrupts, interrupts_config(credit).unwrap())
        .unwrap();
    Mixer::new(&cfg, &[0x5c; 32]).unwrap()
}

/// Feeds `collector` into `m` until `want` blocks came out.
fn blocks(collector: &mut CpuJitter<'_, RealCpu>, m: &mut Mixer, want: u32) -> Block {
    let mut got = 0u32;
    let mut last = None;
    let mut ts = [0u64; 256];
    while got < want {
        collector.fill_timestamps(&mut ts);
        let mut sink = |b: Block| -> Result<(), Block> {
            got += 1;
            last = Some(b);
            Ok(())
        };
        m.absorb_words(Source::Interrupts, &ts, &mut sink).unwrap();
    }
    last.unwrap()
}

fn nstime() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn first_block(c: &mut Criterion) {
    let credit = credit();
    let mut g = c.benchmark_group("timing_first_block");
    g.bench_function("entropool_cpu_jitter", |b| {
        b.iter(|| {
            let mut scratch = vec![0u8; CPU_JITTER_SCRATCH];
            let mut collector = CpuJitter::new(RealCpu::new(), &mut scratch).unwrap();
            let mut m = mixer(credit);
            black_box(blocks(&mut collector, &mut m, 1))
        });
    });
    g.bench_function("rand_jitter", |b| {
        b.iter(|| {
            let mut rng = JitterRng::new_with_timer(nstime);
            let rounds = rng.test_timer().unwrap();
            rng.set_rounds(rounds);
            let mut out = [0u8; 32];
            rng.fill_bytes(&mut out);
            black_box(out)
        });
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let credit = credit();
    let mut g = c.benchmark_group("timing_throughput");
    g.throughput(Throughput::Bytes(32 * 16));
    let mut scratch = vec![0u8; CPU_JITTER_SCRATCH];
    let mut collector = CpuJitter::new(RealCpu::new(), &mut scratch).unwrap();
    let mut m = mixer(credit);
    g.bench_function("entropool_cpu_jitter", |b| {
        b.iter(|| black_box(blocks(&mut collector, &mut m, 16)));
    });
    let mut rng = JitterRng::new().unwrap();
    g.bench_function("rand_jitter", |b| {
        b.iter(|| {
            let mut out = [0u8; 32 * 16];
            rng.fill_bytes(&mut out);
            black_box(out)
        });
    });
    g.finish();
}

criterion_group!(benches, first_block, throughput);
criterion_main!(benches);
