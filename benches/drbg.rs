#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! DRBG output speed beside its peers (group and id names are fixed).
//!
//! `drbg_32B`'s `entropool` runs with the build's default fork detection:
//! none without `std`, the MADV_WIPEONFORK word with `--features std` on
//! Linux (the figure the goal is judged on). `getrandom` is getrandom 0.3,
//! a system call per request with glibc before 2.41; `vdso_getrandom` is
//! the kernel's vDSO function, called directly.

use core::hint::black_box;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use entropool::{HashDrbg, HmacDrbg, PoolRng, PoolRngConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

#[path = "common/fixtures.rs"]
mod fixtures;
use fixtures::FastFake;

fn small(c: &mut Criterion) {
    let mut g = c.benchmark_group("drbg_32B");
    g.throughput(Throughput::Bytes(32));
    let mut rng = PoolRng::new(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
    // Which fork detection the figure includes (the goal is judged with
    // `std`, where the default is the wipe-on-fork word on Linux).
    #[cfg(feature = "std")]
    eprintln!(
        "drbg_32B/entropool: fork detection {:?}",
        rng.fork_detection()
    );
    #[cfg(not(feature = "std"))]
    eprintln!("drbg_32B/entropool: no fork detection (built without `std`)");
    let mut out = [0u8; 32];
    g.bench_function(BenchmarkId::new("entropool", 32), |b| {
        b.iter(|| {
            rng.fill(black_box(&mut out)).unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("getrandom", 32), |b| {
        b.iter(|| getrandom::fill(black_box(&mut out)).unwrap())
    });
    bench_vdso(&mut g, "drbg_32B", &mut out[..]);
    g.finish();

    // The same over Hash_DRBG (one compression per 32 bytes instead of two,
    // two at a time on SHA-NI), beside the vDSO for the ratio.
    let mut g = c.benchmark_group("drbg_32B_hash");
    g.throughput(Throughput::Bytes(32));
    let mut rng = PoolRng::<_, HashDrbg>::with_drbg(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
    g.bench_function(BenchmarkId::new("entropool", 32), |b| {
        b.iter(|| {
            rng.fill(black_box(&mut out)).unwrap();
        })
    });
    bench_vdso(&mut g, "drbg_32B_hash", &mut out[..]);
    g.finish();

    // With `std`: the cost of each fork detector per 32-byte request.
    #[cfg(feature = "std")]
    {
        use entropool::ForkDetection;
        let mut g = c.benchmark_group("drbg_32B_fork_check");
        g.throughput(Throughput::Bytes(32));
        for (id, how) in [
            ("wipe_on_fork", ForkDetection::WipeOnFork),
            ("process_id", ForkDetection::ProcessId),
            ("atfork_counter", ForkDetection::AtforkCounter),
        ] {
            let mut rng = PoolRng::new(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
            rng.set_fork_detection(how);
            g.bench_function(BenchmarkId::new(id, 32), |b| {
                b.iter(|| rng.fill(black_box(&mut out)).unwrap())
            });
        }
        g.finish();
    }
}

const BULK: usize = 64 * 1024;

fn bulk(c: &mut Criterion) {
    let mut out = vec![0u8; BULK];
    let mut g = c.benchmark_group("drbg_bulk_64KiB");
    g.throughput(Throughput::Bytes(BULK as u64));
    let mut ours = HmacDrbg::new(&[1; 32], &[2; 16], b"bench").unwrap();
    g.bench_function(BenchmarkId::new("entropool", BULK), |b| {
        b.iter(|| ours.generate(black_box(&mut out), b"").unwrap())
    });
    let mut peer = hmac_drbg::HmacDRBG::<sha2_09::Sha256>::new(&[1; 32], &[2; 16], b"bench");
    g.bench_function(BenchmarkId::new("hmac_drbg", BULK), |b| {
        b.iter(|| peer.generate_to_slice(black_box(&mut out), None))
    });
    bench_vdso(&mut g, "drbg_bulk_64KiB", &mut out[..]);
    let mut chacha = ChaCha20Rng::from_seed([3; 32]);
    g.bench_function(BenchmarkId::new("chacha20", BULK), |b| {
        b.iter(|| chacha.fill_bytes(black_box(&mut out)))
    });
    g.finish();

    let mut g = c.benchmark_group("drbg_bulk_64KiB_hash");
    g.throughput(Throughput::Bytes(BULK as u64));
    let mut hash = HashDrbg::new(&[1; 32], &[2; 16], b"bench").unwrap();
    g.bench_function(BenchmarkId::new("entropool", BULK), |b| {
        b.iter(|| hash.generate(black_box(&mut out), b"").unwrap())
    });
    bench_vdso(&mut g, "drbg_bulk_64KiB_hash", &mut out[..]);
    g.finish();
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[path = "common/vdso.rs"]
mod vdso;

/// The vDSO getrandom peer in group `g` (id `vdso_getrandom`, parameter
/// `out.len()`), filling `out` per iteration; says so loudly where the
/// kernel lacks it.
fn bench_vdso(g: &mut BenchmarkGroup<'_, WallTime>, group: &str, out: &mut [u8]) {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    match vdso::VdsoGetrandom::new() {
        Ok(mut v) => {
            g.bench_function(BenchmarkId::new("vdso_getrandom", out.len()), |b| {
                b.iter(|| v.fill(black_box(&mut *out)).unwrap())
            });
        }
        Err(why) => eprintln!("SKIPPED {group}/vdso_getrandom: {why}"),
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        let _ = (g, out);
        eprintln!("SKIPPED {group}/vdso_getrandom: not 64-bit Linux");
    }
}

criterion_group!(benches, small, bulk);
criterion_main!(benches);
