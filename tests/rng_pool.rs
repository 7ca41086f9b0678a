//! `PoolRng`: output equals a model of plain HMAC_DRBG instances (one per
//! lane, each taking its half of every generate call), reseeds happen when
//! due, a due reseed that cannot be supplied fails closed, prediction
//! resistance reseeds every call, and (with `std`) a changed process id
//! forces a reseed that makes the child's stream differ from the parent's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::cell::Cell;
use std::rc::Rc;

use entropool::rng::{BUFFER_LEN, SMALL_REQUEST_MAX};
use entropool::{EntropySource, Error, HashDrbg, HmacDrbg, PoolRng, PoolRngConfig};
use proptest::prelude::*;
use rand_core::{TryCryptoRng, TryRng};

/// Deterministic fake source: byte i of call c is `c * 31 + i`; can be made
/// to fail; counts successful calls.
#[derive(Clone, Default)]
struct Fake {
    calls: Rc<Cell<u64>>,
    bytes: Rc<Cell<u64>>,
    failing: Rc<Cell<bool>>,
}

impl EntropySource for Fake {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if self.failing.get() {
            return Err(Error::Starving);
        }
        let c = self.calls.get();
        for (i, b) in out.iter_mut().enumerate() {
            *b = c.to_le_bytes()[0]
                .wrapping_mul(31)
                .wrapping_add(i.to_le_bytes()[0]);
        }
        self.calls.set(c + 1);
        self.bytes.set(self.bytes.get() + out.len() as u64);
        Ok(())
    }
}

fn pid() -> u32 {
    if cfg!(feature = "std") {
        std::process::id()
    } else {
        0
    }
}

/// The model: one HMAC_DRBG per lane, instantiated exactly as the module
/// doc says (one source read of 48 bytes per lane: entropy then nonce;
/// personalization "entropool PoolRng v2" || pid || lane).
struct Model(Vec<HmacDrbg>);

impl Model {
    fn new(lanes: u8) -> Self {
        let mut seed = vec![0u8; 48 * usize::from(lanes)];
        Fake::default().fill_full_entropy(&mut seed).unwrap();
        Model(
            seed.chunks(48)
                .zip(0u8..)
                .map(|(s, lane)| {
                    let mut pers = b"entropool PoolRng v2".to_vec();
                    pers.extend_from_slice(&pid().to_be_bytes());
                    pers.push(lane);
                    HmacDrbg::new(&s[..32], &s[32..], &pers).unwrap()
                })
                .collect(),
        )
    }

    /// One generate call per lane: lane 0 the first half (rounded up).
    fn generate(&mut self, out: &mut [u8]) {
        let half = out.len().div_ceil(self.0.len());
        for (drbg, part) in self.0.iter_mut().zip(out.chunks_mut(half.max(1))) {
            drbg.generate(part, b"").unwrap();
        }
    }
}

/// A generator with `lanes` lanes (1 or 2) chosen at run time, for the
/// tests that run both: the lane count is `PoolRng`'s `LANES` parameter.
enum WithLanes<const BUF: usize> {
    One(PoolRng<Fake, HmacDrbg, BUF, 1>),
    Two(PoolRng<Fake, HmacDrbg, BUF, 2>),
}

impl<const BUF: usize> WithLanes<BUF> {
    fn new(source: Fake, config: PoolRngConfig, lanes: u8) -> Result<Self, Error> {
        match lanes {
            1 => PoolRng::with_drbg(source, config).map(Self::One),
            2 => PoolRng::with_drbg(source, config).map(Self::Two),
            _ => panic!("PoolRng has 1 or 2 lanes, not {lanes}"),
        }
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        match self {
            Self::One(rng) => rng.fill(out),
            Self::Two(rng) => rng.fill(out),
        }
    }

    fn reseed_now(&mut self) -> Result<(), Error> {
        match self {
            Self::One(rng) => rng.reseed_now(),
            Self::Two(rng) => rng.reseed_now(),
        }
    }

    /// The type's `SEED_LEN` and `RESEED_LEN`.
    fn seed_and_reseed_len(&self) -> (usize, usize) {
        match self {
            Self::One(_) => (
                PoolRng::<Fake, HmacDrbg, BUF, 1>::SEED_LEN,
                PoolRng::<Fake, HmacDrbg, BUF, 1>::RESEED_LEN,
            ),
            Self::Two(_) => (
                PoolRng::<Fake, HmacDrbg, BUF, 2>::SEED_LEN,
                PoolRng::<Fake, HmacDrbg, BUF, 2>::RESEED_LEN,
            ),
        }
    }
}

fn with_lanes(lanes: u8) -> WithLanes<BUFFER_LEN> {
    WithLanes::new(Fake::default(), PoolRngConfig::DEFAULT, lanes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Small requests of any sizes concatenate to the model's stream of
    /// `BUFFER_LEN`-byte generate calls (the buffer changes nothing but
    /// speed); a large request is one model call per 64 KiB.
    #[test]
    fn output_equals_plain_drbg_model(sizes in proptest::collection::vec(0usize..=SMALL_REQUEST_MAX, 1..60), big in (SMALL_REQUEST_MAX + 1)..140_000usize, lanes in 1u8..=2) {
        let mut rng = with_lanes(lanes);
        let mut m = Model::new(lanes);
        let total: usize = sizes.iter().sum();
        let mut expected = vec![0u8; total.div_ceil(BUFFER_LEN) * BUFFER_LEN];
        for block in expected.chunks_mut(BUFFER_LEN) {
            m.generate(block);
        }
        let mut got = Vec::new();
        for n in sizes {
            let mut out = vec![0u8; n];
            rng.fill(&mut out).unwrap();
            got.extend_from_slice(&out);
        }
        prop_assert_eq!(&got[..], &expected[..total]);

        // A large request bypasses the buffer (the buffered rest is kept):
        // one call per lane per 64 KiB per lane.
        let mut rng = with_lanes(lanes);
        let mut m = Model::new(lanes);
        let mut out = vec![0u8; big];
        rng.fill(&mut out).unwrap();
        let mut want = vec![0u8; big];
        for chunk in want.chunks_mut(65536 * usize::from(lanes)) {
            m.generate(chunk);
        }
        prop_assert_eq!(out, want);
    }
}

/// A smaller output buffer (firmware's choice) is the same model with
/// `BUF`-byte generate calls: requests of every small size, across refills.
#[test]
fn a_512_byte_buffer_equals_the_model_in_512_byte_calls() {
    const BUF: usize = 512;
    for lanes in 1u8..=2 {
        let mut rng =
            WithLanes::<BUF>::new(Fake::default(), PoolRngConfig::DEFAULT, lanes).unwrap();
        let mut m = Model::new(lanes);
        let sizes: Vec<usize> = (0..40)
            .map(|i| (i * 37) % (SMALL_REQUEST_MAX + 1))
            .collect();
        let total: usize = sizes.iter().sum();
        let mut expected = vec![0u8; total.div_ceil(BUF) * BUF];
        for block in expected.chunks_mut(BUF) {
            m.generate(block);
        }
        let mut got = Vec::new();
        for n in sizes {
            let mut out = vec![0u8; n];
            rng.fill(&mut out).unwrap();
            got.extend_from_slice(&out);
        }
        assert!(total > 4 * BUF, "the requests span several refills");
        assert_eq!(got, expected[..total], "lanes {lanes}");
    }
}

#[test]
fn reseeds_after_requests_and_bytes() {
    let src = Fake::default();
    let cfg = PoolRngConfig {
        reseed_after_requests: 3,
        ..PoolRngConfig::DEFAULT
    };
    let mut rng = PoolRng::new(src.clone(), cfg).unwrap();
    assert_eq!(src.calls.get(), 1, "one 48-byte instantiation read");
    let mut out = [0u8; 8];
    for _ in 0..3 {
        rng.fill(&mut out).unwrap();
    }
    assert_eq!(src.calls.get(), 1);
    rng.fill(&mut out).unwrap();
    assert_eq!(src.calls.get(), 2, "fourth request reseeds");

    let src = Fake::default();
    let cfg = PoolRngConfig {
        reseed_after_bytes: 100,
        ..PoolRngConfig::DEFAULT
    };
    let mut rng = PoolRng::new(src.clone(), cfg).unwrap();
    let mut out = [0u8; 60];
    rng.fill(&mut out).unwrap();
    rng.fill(&mut out).unwrap();
    assert_eq!(src.calls.get(), 1);
    rng.fill(&mut out).unwrap();
    assert_eq!(
        src.calls.get(),
        2,
        "reseed once 120 >= 100 bytes were served"
    );
}

#[test]
fn due_reseed_unavailable_fails_closed() {
    let src = Fake::default();
    let cfg = PoolRngConfig {
        reseed_after_requests: 2,
        ..PoolRngConfig::DEFAULT
    };
    let mut rng = PoolRng::new(src.clone(), cfg).unwrap();
    let mut out = [0xaau8; 40];
    rng.fill(&mut out).unwrap();
    rng.fill(&mut out).unwrap();
    src.failing.set(true);
    for len in [40usize, 1, 5000] {
        let mut out = vec![0xaau8; len];
        assert_eq!(rng.fill(&mut out), Err(Error::DrbgReseedUnavailable));
        assert!(out.iter().all(|&b| b == 0), "output zeroed on error");
    }
    assert_eq!(rng.try_next_u64(), Err(Error::DrbgReseedUnavailable));
    src.failing.set(false);
    rng.fill(&mut out).unwrap();
    assert_eq!(src.calls.get(), 2);
}

#[test]
fn instantiation_and_reseed_now_report_the_source_error() {
    let src = Fake::default();
    src.failing.set(true);
    assert_eq!(
        PoolRng::new(src.clone(), PoolRngConfig::DEFAULT).err(),
        Some(Error::Starving)
    );
    src.failing.set(false);
    let mut rng = PoolRng::new(src.clone(), PoolRngConfig::DEFAULT).unwrap();
    let mut a = [0u8; 32];
    rng.fill(&mut a).unwrap();
    src.failing.set(true);
    assert_eq!(rng.reseed_now(), Err(Error::Starving));
    // The asked-for reseed stays due: nothing runs on without it.
    assert_eq!(rng.fill(&mut a), Err(Error::DrbgReseedUnavailable));
    src.failing.set(false);
    rng.reseed_now().unwrap();
    assert_eq!(src.calls.get(), 2);
    rng.fill(&mut a).unwrap();
}

#[test]
fn reseed_now_discards_buffered_output() {
    // Two identical generators; one reseeds on demand: its next bytes must
    // differ from the twin's (which come from the old buffer).
    let mut a = PoolRng::new(Fake::default(), PoolRngConfig::DEFAULT).unwrap();
    let mut b = PoolRng::new(Fake::default(), PoolRngConfig::DEFAULT).unwrap();
    let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
    a.fill(&mut x).unwrap();
    b.fill(&mut y).unwrap();
    assert_eq!(x, y);
    a.reseed_now().unwrap();
    a.fill(&mut x).unwrap();
    b.fill(&mut y).unwrap();
    assert_ne!(x, y);
}

#[test]
fn prediction_resistance_reseeds_every_call() {
    let src = Fake::default();
    let cfg = PoolRngConfig {
        prediction_resistance: true,
        ..PoolRngConfig::DEFAULT
    };
    let mut rng = PoolRng::new(src.clone(), cfg).unwrap();
    let mut out = [0u8; 16];
    for i in 0..5 {
        rng.fill(&mut out).unwrap();
        assert_eq!(src.calls.get(), 2 + i);
    }
    // A 100 KiB request is one call per lane (64 KiB each at most): one
    // reseed of both lanes.
    let mut big = vec![0u8; 100 * 1024];
    rng.fill(&mut big).unwrap();
    assert_eq!(src.calls.get(), 7);
    src.failing.set(true);
    assert_eq!(rng.fill(&mut out), Err(Error::DrbgReseedUnavailable));

    // With one lane, 100 KiB is two DRBG calls: two reseeds.
    let src = Fake::default();
    let mut rng = PoolRng::<_, HmacDrbg, BUFFER_LEN, 1>::with_drbg(src.clone(), cfg).unwrap();
    rng.fill(&mut big).unwrap();
    assert_eq!(src.calls.get(), 3);
}

/// Each lane takes its own 32 bytes of entropy and 16 of nonce at
/// instantiation and 32 per reseed, in one source read; the lanes' streams
/// differ even when the source hands both the same bytes.
#[test]
fn lanes_take_their_own_entropy_and_differ() {
    for (lanes, seed, per_reseed) in [(1u8, 48u64, 32u64), (2, 96, 64)] {
        let src = Fake::default();
        let mut rng =
            WithLanes::<BUFFER_LEN>::new(src.clone(), PoolRngConfig::DEFAULT, lanes).unwrap();
        assert_eq!((src.calls.get(), src.bytes.get()), (1, seed));
        rng.reseed_now().unwrap();
        assert_eq!((src.calls.get(), src.bytes.get()), (2, seed + per_reseed));
        // What the type says a caller must wait for is what was read.
        let (seed_len, reseed_len) = rng.seed_and_reseed_len();
        assert_eq!(seed_len as u64, seed);
        assert_eq!(reseed_len as u64, per_reseed);
    }

    /// Hands out the same byte everywhere: both lanes get equal seeds.
    struct Constant;
    impl EntropySource for Constant {
        fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
            out.fill(0x5a);
            Ok(())
        }
    }
    let mut rng = PoolRng::new(Constant, PoolRngConfig::DEFAULT).unwrap();
    let mut buffer = vec![0u8; BUFFER_LEN];
    for piece in buffer.chunks_mut(32) {
        rng.fill(piece).unwrap();
    }
    let (first, second) = buffer.split_at(BUFFER_LEN / 2);
    assert_ne!(first, second, "the lane number personalizes each lane");
}

#[test]
fn config_ranges_and_debug() {
    for cfg in [
        PoolRngConfig {
            reseed_after_requests: 0,
            ..PoolRngConfig::DEFAULT
        },
        PoolRngConfig {
            reseed_after_bytes: (1 << 48) + 1,
            ..PoolRngConfig::DEFAULT
        },
    ] {
        assert!(matches!(
            PoolRng::new(Fake::default(), cfg),
            Err(Error::InvalidValue { .. })
        ));
    }
    let rng = PoolRng::new(Fake::default(), PoolRngConfig::DEFAULT).unwrap();
    assert_eq!(format!("{rng:?}"), "PoolRng { .. }");
}

#[test]
fn rand_core_traits_and_hash_drbg_mechanism() {
    fn draw<R: TryCryptoRng<Error = Error>>(r: &mut R) -> (u32, u64, [u8; 7]) {
        let mut b = [0u8; 7];
        r.try_fill_bytes(&mut b).unwrap();
        (r.try_next_u32().unwrap(), r.try_next_u64().unwrap(), b)
    }
    let mut a = PoolRng::new(Fake::default(), PoolRngConfig::DEFAULT).unwrap();
    let mut h = PoolRng::<_, HashDrbg>::with_drbg(Fake::default(), PoolRngConfig::DEFAULT).unwrap();
    let (x, y) = (draw(&mut a), draw(&mut h));
    assert_ne!(x, y, "HMAC and Hash mechanisms give different streams");
    // The u32/u64 are the next buffered bytes, little-endian.
    let mut m = Model::new(2); // the default `LANES`
    let mut block = [0u8; BUFFER_LEN];
    m.generate(&mut block);
    assert_eq!(x.2[..], block[..7]);
    assert_eq!(x.0, u32::from_le_bytes(block[7..11].try_into().unwrap()));
    assert_eq!(x.1, u64::from_le_bytes(block[11..19].try_into().unwrap()));
}

#[cfg(feature = "std")]
mod fork {
    use super::*;

    thread_local! {
        static FAKE_PID: Cell<u32> = const { Cell::new(1000) };
    }

    fn fake_pid() -> u32 {
        FAKE_PID.with(Cell::get)
    }

    /// A fork copies the generator and its (fake) source: parent and child
    /// start from identical state. Two generators built from identical
    /// deterministic sources stand for that copy; the child's pid changes.
    #[test]
    fn child_with_new_pid_reseeds_and_diverges() {
        let parent_src = Fake::default();
        let child_src = Fake::default();
        let mut parent = PoolRng::new(parent_src.clone(), PoolRngConfig::DEFAULT).unwrap();
        let mut child = PoolRng::new(child_src.clone(), PoolRngConfig::DEFAULT).unwrap();
        parent.set_pid_source(fake_pid);
        child.set_pid_source(fake_pid);
        let (mut p, mut c) = ([0u8; 32], [0u8; 32]);
        parent.fill(&mut p).unwrap();
        child.fill(&mut c).unwrap();
        assert_eq!(p, c, "identical state before the fork");

        FAKE_PID.with(|f| f.set(1001)); // the child runs under a new pid
        child.fill(&mut c).unwrap();
        assert_eq!(child_src.calls.get(), 2, "the child reseeded");
        FAKE_PID.with(|f| f.set(1000)); // the parent keeps its pid
        parent.fill(&mut p).unwrap();
        assert_eq!(parent_src.calls.get(), 1, "the parent did not reseed");
        assert_ne!(p, c, "parent and child streams differ");

        // Even if the parent reseeds from an identical copy of the pool
        // (same entropy as the child got), the pid in the additional input
        // keeps the streams apart.
        parent.reseed_now().unwrap();
        parent.fill(&mut p).unwrap();
        FAKE_PID.with(|f| f.set(1001));
        child.fill(&mut c).unwrap();
        assert_ne!(p, c);
        assert_eq!(child_src.calls.get(), 2, "no second reseed at the same pid");

        // A fork while the pool cannot supply the reseed fails closed.
        FAKE_PID.with(|f| f.set(1002));
        child_src.failing.set(true);
        assert_eq!(child.fill(&mut c), Err(Error::DrbgReseedUnavailable));
        assert_eq!(c, [0u8; 32]);
    }
}
