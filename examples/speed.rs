#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Best-of-many-batches timing of the DRBG and conditioning groups beside
//! their peers, for a machine shared with other work: each case runs many
//! short batches and keeps the fastest per-call time, which shows the quiet
//! mode a loaded machine hides. Not a test and not criterion (BENCHMARKS.md
//! is judged on criterion); a tool for before/after comparisons.
//!
//! `cargo run --release --example speed [--features std] [FILTER...]`: runs
//! the cases whose name contains any FILTER (all without one).

use core::hint::black_box;
use std::time::Instant;

use entropool::mixer::{Block, Mixer};
use entropool::testing::FakeClock;
use entropool::{
    BlockSlot, HashDrbg, HmacDrbg, MixerConfig, Pool, PoolRng, PoolRngConfig, Slot, Source,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[path = "../benches/common/vdso.rs"]
mod vdso;

#[path = "../benches/common/fixtures.rs"]
mod fixtures;
use fixtures::FastFake;

/// The fastest per-call time in ns over `batches` batches of `per` calls
/// (times `SPEED_SCALE` batches from the environment, for a profiler).
fn best(batches: usize, per: usize, mut f: impl FnMut()) -> f64 {
    let scale: usize = std::env::var("SPEED_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let batches = batches.saturating_mul(scale);
    for _ in 0..per {
        f();
    }
    let mut min = f64::MAX;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..per {
            f();
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / f64::from(u32::try_from(per).unwrap());
        min = min.min(ns);
    }
    min
}

fn discard(b: Block) -> Result<(), Block> {
    black_box(b.as_bytes());
    Ok(())
}

fn report(name: &str, ns: f64, peers: &[(&str, f64)]) {
    let mut line = format!("{name:<28} {:>10.1} ns", ns);
    for (p, pns) in peers {
        line.push_str(&format!("   {p} {pns:.1} ns ({:.2}x)", pns / ns));
    }
    println!("{line}");
}

const BULK: usize = 64 * 1024;
const SAMPLES: usize = 8192;

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let mut out32 = [0u8; 32];
    let mut big = vec![0u8; BULK];

    // The vDSO peer's best time, `None` (and said once) where there is none.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    let mut vdso = vdso::VdsoGetrandom::new()
        .map_err(|why| eprintln!("vdso peer skipped: {why}"))
        .ok();
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    eprintln!("vdso peer skipped: not 64-bit Linux");
    let mut vdso_best = |batches: usize, per: usize, out: &mut [u8]| -> Option<f64> {
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        {
            let v = vdso.as_mut()?;
            Some(best(batches, per, || v.fill(black_box(&mut *out)).unwrap()))
        }
        #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
        {
            let _ = (batches, per, out);
            None
        }
    };
    let with_vdso = |vd: Option<f64>, rest: &[(&'static str, f64)]| -> Vec<(&'static str, f64)> {
        vd.map(|v| ("vdso", v))
            .into_iter()
            .chain(rest.iter().copied())
            .collect()
    };

    if want("drbg_32B") {
        let vd = vdso_best(300, 20_000, &mut out32);
        let sys = best(100, 2_000, || {
            getrandom::fill(black_box(&mut out32)).unwrap()
        });
        let mut rng = PoolRng::new(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
        let ours = best(300, 20_000, || rng.fill(black_box(&mut out32)).unwrap());
        report("drbg_32B", ours, &with_vdso(vd, &[("syscall", sys)]));
        let mut rng =
            PoolRng::<_, HashDrbg>::with_drbg(FastFake(1), PoolRngConfig::DEFAULT).unwrap();
        let ours = best(300, 20_000, || rng.fill(black_box(&mut out32)).unwrap());
        report("drbg_32B_hash", ours, &with_vdso(vd, &[("syscall", sys)]));
    }
    if want("drbg_bulk") {
        let vd = vdso_best(200, 4, &mut big);
        let mut peer = hmac_drbg::HmacDRBG::<sha2_09::Sha256>::new(&[1; 32], &[2; 16], b"bench");
        let crate_peer = best(50, 4, || peer.generate_to_slice(black_box(&mut big), None));
        let mut ours = HmacDrbg::new(&[1; 32], &[2; 16], b"bench").unwrap();
        let t = best(200, 4, || ours.generate(black_box(&mut big), b"").unwrap());
        report(
            "drbg_bulk_64KiB",
            t,
            &with_vdso(vd, &[("hmac_drbg", crate_peer)]),
        );
        let mut hash = HashDrbg::new(&[1; 32], &[2; 16], b"bench").unwrap();
        let t = best(200, 4, || hash.generate(black_box(&mut big), b"").unwrap());
        report("drbg_bulk_64KiB_hash", t, &with_vdso(vd, &[]));
    }
    if want("condition_samples") {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let w: Vec<u64> = (0..SAMPLES).map(|_| rng.next_u64()).collect();
        let warm: Vec<u64> = (0..1024).map(|_| rng.next_u64()).collect();
        let mut m = Mixer::new(&MixerConfig::DEFAULT, &[7; 32]).unwrap();
        m.absorb_words(Source::Rdseed, &warm, &mut discard).unwrap();
        let peer = best(200, 4, || {
            let mut h = Sha256::new();
            for x in black_box(&w) {
                h.update(x.to_le_bytes());
            }
            black_box(h.finalize());
        });
        let ours = best(200, 4, || {
            let a = m
                .absorb_words(Source::Rdseed, black_box(&w), &mut discard)
                .unwrap();
            assert_eq!(a.consumed, SAMPLES);
        });
        report("condition_samples_8B", ours, &[("sha2", peer)]);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut data = vec![0u8; BULK];
    rng.fill_bytes(&mut data);
    let sha = if want("condition_bulk") || want("screen") || want("pool_fill") {
        best(200, 4, || {
            black_box(Sha256::digest(black_box(&data)));
        })
    } else {
        0.0
    };
    if want("condition_bulk") {
        let mut warm = vec![0u8; 1024];
        rng.fill_bytes(&mut warm);
        let mut m = Mixer::new(&MixerConfig::DEFAULT, &[7; 32]).unwrap();
        m.absorb_external(&warm, &mut discard).unwrap();
        let ours = best(200, 4, || {
            let a = m.absorb_external(black_box(&data), &mut discard).unwrap();
            assert_eq!(a.consumed, BULK);
        });
        report("condition_bulk_64KiB", ours, &[("sha2", sha)]);
    }
    if want("screen") {
        let ours = best(200, 4, || {
            black_box(entropool::mixer::screen::screen(black_box(&data)));
        });
        report("screen_64KiB", ours, &[("sha2", sha)]);
    }
    if want("pool_fill") {
        let data = fixtures::external_bytes(BULK);
        let cpu = fixtures::cpu_without_rng();
        let clock = FakeClock::new(0);
        let mut mem: Vec<BlockSlot> = (0..128 * 32).map(|_| Slot::default()).collect();
        let (mut pool, _) =
            Pool::new(fixtures::external_pool_parts(&cpu, &clock, &mut mem)).unwrap();
        pool.submit(&data[..2048]).unwrap();
        while pool.fill(&mut big[..32]).is_ok() {}
        let ours = best(200, 4, || {
            let took = pool.submit(black_box(&data)).unwrap();
            assert_eq!(took, BULK);
            pool.poll().unwrap();
            let blocks = pool.status().memory_len_blocks;
            pool.fill(&mut big[..blocks * 32]).unwrap();
            black_box(&big);
        });
        report("pool_fill_external", ours, &[("sha2", sha)]);
    }
}
