#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
// The `raw` peers execute the instructions directly.
#![allow(unsafe_code)]
//! RDRAND / RDSEED drivers (`entropool`) beside bare intrinsic loops with
//! the same retry rule (`raw`). One iteration = one 64-bit word (one
//! driver `next_u64` call vs one raw retry loop), throughput 8 bytes.

use core::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use entropool::hw::{RDRAND_RETRY_LIMIT, RDSEED_RETRY_LIMIT, Rdrand, Rdseed};
use entropool::{Cpu, RealCpu};

#[cfg(target_arch = "x86_64")]
mod raw {
    use core::arch::x86_64::{_rdrand64_step, _rdseed64_step};

    /// Bare `_rdrand64_step` loop, up to the same 10 tries.
    ///
    /// # Safety
    /// The CPU must support RDRAND.
    #[target_feature(enable = "rdrand")]
    #[allow(unused_unsafe)]
    pub unsafe fn rdrand(limit: u32) -> Option<u64> {
        for _ in 0..limit {
            let mut v = 0u64;
            // SAFETY: the caller checked CPUID for RDRAND.
            if unsafe { _rdrand64_step(&mut v) } == 1 {
                return Some(v);
            }
        }
        None
    }

    /// Bare `_rdseed64_step` loop with PAUSE, up to the same 100 tries.
    ///
    /// # Safety
    /// The CPU must support RDSEED.
    #[target_feature(enable = "rdseed")]
    #[allow(unused_unsafe)]
    pub unsafe fn rdseed(limit: u32) -> Option<u64> {
        for i in 0..limit {
            if i != 0 {
                core::hint::spin_loop();
            }
            let mut v = 0u64;
            // SAFETY: the caller checked CPUID for RDSEED.
            if unsafe { _rdseed64_step(&mut v) } == 1 {
                return Some(v);
            }
        }
        None
    }
}

fn rdrand_u64(c: &mut Criterion) {
    let cpu = RealCpu::new();
    if !cpu.features().rdrand {
        eprintln!("rdrand_u64: skipped, this CPU has no RDRAND");
        return;
    }
    let mut g = c.benchmark_group("rdrand_u64");
    g.throughput(Throughput::Bytes(8));
    let mut d = Rdrand::new(cpu).expect("RDRAND driver");
    // Both sides hand `black_box` a plain `u64` (0 on failure): copying a
    // `Result`/`Option` through the stack for `black_box` stalls on store
    // forwarding, a harness cost (~2-4 ns here) that is not the driver's.
    g.bench_function("entropool", |b| {
        b.iter(|| black_box(d.next_u64().unwrap_or(0)))
    });
    #[cfg(target_arch = "x86_64")]
    g.bench_function("raw", |b| {
        b.iter(|| {
            // SAFETY: CPUID reported RDRAND (checked above through RealCpu).
            black_box(unsafe { raw::rdrand(RDRAND_RETRY_LIMIT) }.unwrap_or(0))
        })
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = RDRAND_RETRY_LIMIT;
    g.finish();
}

fn rdseed_u64(c: &mut Criterion) {
    let cpu = RealCpu::new();
    if !cpu.features().rdseed {
        eprintln!("rdseed_u64: skipped, this CPU has no RDSEED");
        return;
    }
    let mut g = c.benchmark_group("rdseed_u64");
    g.throughput(Throughput::Bytes(8));
    let mut d = Rdseed::new(cpu).expect("RDSEED driver (self-test said not now or failed)");
    // Both sides hand `black_box` a plain `u64` (0 on failure): copying a
    // `Result`/`Option` through the stack for `black_box` stalls on store
    // forwarding, a harness cost (~2-4 ns here) that is not the driver's.
    g.bench_function("entropool", |b| {
        b.iter(|| black_box(d.next_u64().unwrap_or(0)))
    });
    #[cfg(target_arch = "x86_64")]
    g.bench_function("raw", |b| {
        b.iter(|| {
            // SAFETY: CPUID reported RDSEED (checked above through RealCpu).
            black_box(unsafe { raw::rdseed(RDSEED_RETRY_LIMIT) }.unwrap_or(0))
        })
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = RDSEED_RETRY_LIMIT;
    g.finish();
    let st = d.stats();
    eprintln!(
        "rdseed_u64: driver {} words from {} attempts ({} calls ran dry)",
        st.words, st.attempts, st.exhausted
    );
}

criterion_group!(benches, rdrand_u64, rdseed_u64);
criterion_main!(benches);
