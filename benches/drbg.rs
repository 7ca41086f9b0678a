#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! DRBG output speed beside its peers (group and id names are fixed).

use core::hint::black_box;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use entropool::{EntropySource, Error, HashDrbg, HmacDrbg, PoolRng, PoolRngConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A fast in-memory stand-in for the pool.
struct FastFake(u8);

impl EntropySource for FastFake {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        out.fill(self.0);
        self.0 = self.0.wrapping_add(1);
        Ok(())
    }
}

fn small(c: &mut Criterion) {
    let mut g = c.benchmark_group("drbg_32B");
    g.throughput(Throughput::Bytes(32));
    let mut rng = PoolRng::new(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
    let mut out = [0u8; 32];
    g.bench_function(BenchmarkId::new("entropool", 32), |b| {
        b.iter(|| {
            rng.fill(black_box(&mut out)).unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("getrandom", 32), |b| {
        b.iter(|| getrandom::fill(black_box(&mut out)).unwrap())
    });
    g.finish();

    // The same over Hash_DRBG (one compression per 32 bytes instead of two).
    let mut g = c.benchmark_group("drbg_32B_hash");
    g.throughput(Throughput::Bytes(32));
    let mut rng = PoolRng::<_, HashDrbg>::with_drbg(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
    g.bench_function(BenchmarkId::new("entropool", 32), |b| {
        b.iter(|| {
            rng.fill(black_box(&mut out)).unwrap();
        })
    });
    g.finish();

    // With `std`: the cost of each fork detector per 32-byte request.
    #[cfg(feature = "std")]
    {
        use entropool::ForkDetection;
        let mut g = c.benchmark_group("drbg_32B_fork_check");
        g.throughput(Throughput::Bytes(32));
        for (id, how) in [
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
    g.finish();
}

criterion_group!(benches, small, bulk);
criterion_main!(benches);
