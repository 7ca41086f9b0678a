//! A pool over `NoCpu` and `NoStorage` (no hardware random-number
//! instructions, no storage cache: the firmware pool) through the public
//! API: it refuses what needs hardware or a storage cache with a clear
//! error, and otherwise behaves exactly as the model, a pool over a CPU
//! without RDRAND and RDSEED given no storage medium.

#![allow(clippy::unwrap_used)]

use entropool::testing::{FakeClock, FakeCpu, splitmix64};
use entropool::{
    BlockSlot, Config, CpuFeatures, Error, InterruptRing, MemStorage, MixerConfig, NoCpu,
    NoStorage, Pool, PoolParts, Slot, Source, SourceMask, StorageStatus, Tunables,
};
use proptest::prelude::*;

const NO_HW: CpuFeatures = CpuFeatures {
    rdrand: false,
    rdseed: false,
};

fn slots(n: usize) -> Vec<BlockSlot> {
    (0..n).map(|_| Slot::default()).collect()
}

fn tunables(mem_kib: u32, storage_kib: u32) -> Tunables {
    Tunables::new(60, 20, mem_kib, storage_kib).unwrap()
}

fn config(mask: u64, t: Tunables) -> Config {
    Config {
        tunables: t,
        sources: SourceMask::new(mask).unwrap(),
    }
}

fn parts<'s, C, K, S>(
    cpu: C,
    clock: K,
    memory: &'s mut [BlockSlot],
    config: Config,
) -> PoolParts<'s, C, K, S> {
    PoolParts {
        config,
        cpu,
        clock,
        memory,
        storage: None,
        interrupts: None,
        mixer: MixerConfig::default(),
        key: [7; 32],
        storage_key: [0x5B; 32],
    }
}

type Bare<'s, 'c> = Pool<'s, NoCpu, &'c FakeClock, NoStorage>;
type Model<'s, 'c> = Pool<'s, &'c FakeCpu, &'c FakeClock, MemStorage<'s>>;

#[test]
fn a_mask_naming_rdrand_or_rdseed_is_refused_as_on_a_cpu_without_them() {
    let clock = FakeClock::new(0);
    let cpu = FakeCpu::good(1).with_features(NO_HW);
    for mask in [2, 4, 6, 1 | 2, 1 | 4, 8 | 4, 15] {
        let mut mem = slots(32);
        let bare = Bare::new(parts(NoCpu, &clock, &mut mem, config(mask, tunables(1, 0))));
        let mut mem = slots(32);
        let model = Model::new(parts(&cpu, &clock, &mut mem, config(mask, tunables(1, 0))));
        let bare = bare.map(|_| ()).unwrap_err();
        assert!(
            matches!(
                bare,
                Error::SourceUnavailable {
                    source: Source::Rdrand | Source::Rdseed
                }
            ),
            "mask {mask}: {bare:?}"
        );
        assert_eq!(Err(bare), model.map(|_| ()), "mask {mask}");
    }
    // The default mask: every source but external, so interrupts alone.
    let mut mem = slots(32);
    let (pool, report) =
        Bare::new(parts(NoCpu, &clock, &mut mem, config(0, tunables(1, 0)))).unwrap();
    assert_eq!(pool.sources(), SourceMask::new(1).unwrap());
    assert!(report.is_none());
}

#[test]
fn a_storage_cache_size_is_refused_and_changes_nothing() {
    let clock = FakeClock::new(0);
    let refused = |kib: u32| Error::InvalidValue {
        param: "storage-cache-size",
        value: u64::from(kib),
        min: 0,
        max: 0,
    };
    // At start.
    let mut mem = slots(64);
    let err = Bare::new(parts(NoCpu, &clock, &mut mem, config(8, tunables(1, 4))))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err, refused(4));
    assert_eq!(
        err.to_string(),
        "E0103: storage-cache-size=4 is out of range 0..=0"
    );
    // The default tunables ask for a storage cache.
    let mut mem = slots(512 * 32);
    let err = Bare::new(parts(
        NoCpu,
        &clock,
        &mut mem,
        config(8, Tunables::default()),
    ))
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err, refused(Tunables::default().storage_cache_size_kib()));

    // At run time: refused whole, even with a valid memory change beside it.
    let mut mem = slots(64);
    let (mut pool, _) =
        Bare::new(parts(NoCpu, &clock, &mut mem, config(8, tunables(1, 0)))).unwrap();
    pool.submit(&bytes(4096, 3)).unwrap();
    let before = pool.status();
    assert_eq!(pool.set_tunables(&tunables(2, 1)), Err(refused(1)));
    assert_eq!(pool.status(), before);
    assert_eq!(pool.tunables(), &tunables(1, 0));
    // Without a storage cache the same change applies.
    pool.set_tunables(&tunables(2, 0)).unwrap();
    assert_eq!(pool.tunables(), &tunables(2, 0));
    assert_eq!(pool.status().memory_capacity_blocks, 64);
}

#[test]
fn its_status_shows_no_hardware_and_no_storage_cache() {
    let clock = FakeClock::new(0);
    let mut mem = slots(32);
    let (mut pool, _) = Bare::new(parts(
        NoCpu,
        &clock,
        &mut mem,
        config(1 | 8, tunables(1, 0)),
    ))
    .unwrap();
    pool.submit(&bytes(4096, 11)).unwrap();
    pool.poll().unwrap();
    let status = pool.status();
    assert_eq!(status.rdrand, None);
    assert_eq!(status.rdseed, None);
    assert_eq!(status.storage, StorageStatus::default());
    assert!(!status.storage.present);
    assert!(!pool.loading_storage());
    // A full memory cache wants nothing more: there is no store to fill.
    assert_eq!(pool.external_room(), 0);
    assert!(!pool.blocks_wanted());
}

/// One step of the comparison.
#[derive(Clone, Debug)]
enum Op {
    /// Record `n` timestamps, `stride` apart plus a jitter from `seed`.
    Record {
        n: usize,
        stride: u64,
        seed: u64,
    },
    Poll,
    Submit {
        len: usize,
        seed: u64,
    },
    Seed {
        len: usize,
        seed: u64,
    },
    Fill {
        len: usize,
    },
    Advance {
        ms: u64,
    },
    SetTunables {
        mem_kib: u32,
        watermark: u32,
        storage_kib: u32,
    },
    Flush,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..700, 1u64..5000, any::<u64>())
            .prop_map(|(n, stride, seed)| Op::Record { n, stride, seed }),
        3 => Just(Op::Poll),
        3 => (0usize..3000, any::<u64>()).prop_map(|(len, seed)| Op::Submit { len, seed }),
        1 => (0usize..3000, any::<u64>()).prop_map(|(len, seed)| Op::Seed { len, seed }),
        3 => (0usize..200).prop_map(|len| Op::Fill { len }),
        1 => (0u64..90_000).prop_map(|ms| Op::Advance { ms }),
        1 => (1u32..=3, 0u32..=100, prop_oneof![4 => Just(0u32), 1 => 1u32..3])
            .prop_map(|(mem_kib, watermark, storage_kib)| Op::SetTunables { mem_kib, watermark, storage_kib }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reset),
    ]
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out: Vec<u8> = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 48 },
        ..ProptestConfig::default()
    })]

    /// The same steps on a pool over `NoCpu` and `NoStorage` and on the
    /// model (a CPU without RDRAND/RDSEED, no storage medium): the same
    /// results, the same bytes out, the same status after every step.
    /// A storage-cache-size other than 0 is the one difference: refused by
    /// the bare pool, ignored by the model (it has no medium); the step is
    /// then skipped on the model.
    #[test]
    fn behaves_as_a_pool_without_hardware_or_medium(
        mask in prop_oneof![Just(1u64), Just(8), Just(9), Just(0)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let clock = FakeClock::new(0);
        let cpu = FakeCpu::good(5).with_features(NO_HW);
        let ring = || (0..512).map(|_| Slot::new(0u64)).collect::<Vec<_>>();
        let (mut ring_a, mut ring_b) = (ring(), ring());
        let mut ring_a = InterruptRing::new(&mut ring_a).unwrap();
        let mut ring_b = InterruptRing::new(&mut ring_b).unwrap();
        let (mut rec_a, drain_a) = ring_a.split();
        let (mut rec_b, drain_b) = ring_b.split();
        let (mut mem_a, mut mem_b) = (slots(96), slots(96));
        let mut a = parts(NoCpu, &clock, &mut mem_a, config(mask, tunables(1, 0)));
        a.interrupts = Some(drain_a);
        let mut b = parts(&cpu, &clock, &mut mem_b, config(mask, tunables(1, 0)));
        b.interrupts = Some(drain_b);
        let (mut bare, ra): (Bare<'_, '_>, _) = Pool::new(a).unwrap();
        let (mut model, rb): (Model<'_, '_>, _) = Pool::new(b).unwrap();
        prop_assert_eq!(ra, rb);
        let mut t = 0u64;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Record { n, stride, seed } => {
                    let mut s = *seed;
                    for _ in 0..*n {
                        t = t.wrapping_add(stride + (splitmix64(&mut s) & 0xFF));
                        prop_assert_eq!(rec_a.record(t), rec_b.record(t));
                    }
                }
                Op::Poll => prop_assert_eq!(bare.poll(), model.poll()),
                Op::Submit { len, seed } => {
                    let data = bytes(*len, *seed);
                    prop_assert_eq!(bare.submit(&data), model.submit(&data));
                }
                Op::Seed { len, seed } => {
                    let data = bytes(*len, *seed);
                    prop_assert_eq!(bare.seed_external(&data), model.seed_external(&data));
                }
                Op::Fill { len } => {
                    let (mut x, mut y) = (vec![0u8; *len], vec![0u8; *len]);
                    prop_assert_eq!(bare.fill(&mut x), model.fill(&mut y));
                    prop_assert_eq!(x, y);
                }
                Op::Advance { ms } => clock.advance(*ms),
                Op::SetTunables { mem_kib, watermark, storage_kib } => {
                    let new = Tunables::new(60, *watermark, *mem_kib, *storage_kib).unwrap();
                    let got = bare.set_tunables(&new);
                    if *storage_kib == 0 {
                        prop_assert_eq!(got, model.set_tunables(&new));
                    } else {
                        prop_assert_eq!(got, Err(Error::InvalidValue {
                            param: "storage-cache-size",
                            value: u64::from(*storage_kib),
                            min: 0,
                            max: 0,
                        }));
                    }
                }
                Op::Flush => prop_assert_eq!(bare.flush_to_storage(), model.flush_to_storage()),
                Op::Reset => {
                    bare.reset_source(Source::External);
                    model.reset_source(Source::External);
                }
            }
            prop_assert_eq!(bare.status(), model.status(), "after step {} ({:?})", i, op);
            prop_assert_eq!(bare.blocks_wanted(), model.blocks_wanted());
            prop_assert_eq!(bare.external_room(), model.external_room());
        }
    }
}
