//! The health-test state machine (start-up, quarantine, disable, strike
//! forgetting) and exact trip points, on `HealthTest` directly.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::health::{HealthTest, STRIKE_FORGET_SAMPLES, Verdict, apt_cutoff, rct_cutoff};
use entropool::{
    DISABLE_AFTER, HealthConfig, HealthState, HealthTestKind, MinEntropy, STARTUP_SAMPLES,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Bytes with H = 8 bits, alpha = 2^-30: the external source's defaults.
fn byte_tester() -> HealthTest {
    let cfg = HealthConfig::new(MinEntropy::from_bits(8).unwrap(), 30).unwrap();
    HealthTest::new(cfg, 8).unwrap()
}

/// A byte stream with no two equal neighbours (so the RCT never runs past
/// 1) and no byte equal to `avoid`.
struct Distinct {
    rng: ChaCha20Rng,
    last: u8,
    avoid: u8,
}

impl Distinct {
    fn new(seed: u64, avoid: u8) -> Self {
        Distinct {
            rng: ChaCha20Rng::seed_from_u64(seed),
            last: avoid,
            avoid,
        }
    }
    fn next(&mut self) -> u8 {
        loop {
            let b = self.rng.next_u32().to_le_bytes()[0];
            if b != self.last && b != self.avoid {
                self.last = b;
                return b;
            }
        }
    }
}

fn feed(t: &mut HealthTest, src: &mut Distinct, n: u64) -> (u64, u64) {
    let (mut cred, mut not) = (0, 0);
    for _ in 0..n {
        match t.step(u64::from(src.next())) {
            Verdict::Creditable => cred += 1,
            Verdict::NotCreditable => not += 1,
            v => panic!("unexpected {v:?}"),
        }
    }
    (cred, not)
}

#[test]
fn cutoffs_follow_the_formulas() {
    let t = byte_tester();
    let h = MinEntropy::from_bits(8).unwrap();
    assert_eq!(t.rct_cutoff(), rct_cutoff(h, 30));
    assert_eq!(t.rct_cutoff(), 1 + 30_u32.div_ceil(8));
    assert_eq!(t.apt_cutoff(), apt_cutoff(h, 512, 30));
    assert_eq!(t.window(), 512);
}

#[test]
fn startup_credits_nothing_for_1024_samples() {
    let mut t = byte_tester();
    let mut src = Distinct::new(1, 0);
    assert_eq!(t.state(), HealthState::Startup);
    assert_eq!(
        feed(&mut t, &mut src, u64::from(STARTUP_SAMPLES) - 1),
        (0, 1023)
    );
    assert_eq!(t.state(), HealthState::Startup);
    assert_eq!(feed(&mut t, &mut src, 1), (0, 1));
    assert_eq!(t.state(), HealthState::Healthy);
    assert_eq!(feed(&mut t, &mut src, 1), (1, 0));
}

/// Brings a tester to Healthy, then feeds `v` until it fails; returns the
/// number of `v`s fed.
fn repeat_until_fail(t: &mut HealthTest, v: u8) -> (u32, HealthTestKind) {
    for i in 1..=10_000 {
        if let Verdict::Failed(k) = t.step(u64::from(v)) {
            return (i, k);
        }
    }
    panic!("never failed");
}

#[test]
fn stuck_source_trips_the_rct_at_exactly_the_cutoff() {
    let mut t = byte_tester();
    let mut src = Distinct::new(2, 0x5a);
    feed(&mut t, &mut src, 2000);
    assert_eq!(t.state(), HealthState::Healthy);
    let (n, kind) = repeat_until_fail(&mut t, 0x5a);
    assert_eq!(n, t.rct_cutoff(), "fails on the C-th identical sample");
    assert_eq!(kind, HealthTestKind::RepetitionCount);
    assert_eq!(t.state(), HealthState::Quarantined);
    assert_eq!(t.failures(), 1);

    // Same for 64-bit words at H = 64 (C = 2) and H = 1 bit (C = 31).
    for (bits, c) in [(64u32, 2u32), (1, 31)] {
        let cfg = HealthConfig::new(MinEntropy::from_bits(bits).unwrap(), 30).unwrap();
        let mut t = HealthTest::new(cfg, 64).unwrap();
        assert_eq!(t.rct_cutoff(), c);
        for i in 1..c {
            assert!(!matches!(t.step(7), Verdict::Failed(_)), "sample {i}");
        }
        assert_eq!(t.step(7), Verdict::Failed(HealthTestKind::RepetitionCount));
    }
}

#[test]
fn biased_source_trips_the_apt_exactly() {
    // 0, x1, 0, x2, ...: no two neighbours equal, so only the APT can see
    // that half the samples are 0. The window starts on a 0 (A = 0), and the
    // C-th 0 in the window fails.
    let mut t = byte_tester();
    let c = t.apt_cutoff();
    let mut src = Distinct::new(3, 0);
    let mut n = 0u32;
    let kind = loop {
        let x = if n % 2 == 0 { 0 } else { src.next() };
        n += 1;
        if let Verdict::Failed(k) = t.step(u64::from(x)) {
            break k;
        }
        assert!(n < 512);
    };
    assert_eq!(kind, HealthTestKind::AdaptiveProportion);
    assert_eq!(n, 2 * (c - 1) + 1, "fails on the C-th zero");
}

#[test]
fn quarantine_lasts_one_full_clean_window() {
    let mut t = byte_tester();
    let mut src = Distinct::new(4, 9);
    feed(&mut t, &mut src, 1100);
    repeat_until_fail(&mut t, 9);
    assert_eq!(t.state(), HealthState::Quarantined);
    assert_eq!(feed(&mut t, &mut src, 511), (0, 511));
    assert_eq!(t.state(), HealthState::Quarantined);
    assert_eq!(feed(&mut t, &mut src, 1), (0, 1));
    assert_eq!(t.state(), HealthState::Healthy);
    assert_eq!(feed(&mut t, &mut src, 1), (1, 0));
    assert_eq!(t.strikes(), 1);
}

#[test]
fn failing_again_in_quarantine_restarts_it_and_disables_at_the_limit() {
    let mut t = byte_tester();
    let mut src = Distinct::new(5, 9);
    feed(&mut t, &mut src, 1100);
    for strike in 1..DISABLE_AFTER {
        repeat_until_fail(&mut t, 9);
        assert_eq!(t.strikes(), strike);
        assert_eq!(t.state(), HealthState::Quarantined);
        // Part of a window, then another failure: the window restarts.
        feed(&mut t, &mut src, 300);
    }
    assert_eq!(t.state(), HealthState::Quarantined);
    let (n, _) = repeat_until_fail(&mut t, 9);
    assert_eq!(n, t.rct_cutoff());
    assert_eq!(t.state(), HealthState::Disabled);
    assert_eq!(t.failures(), u64::from(DISABLE_AFTER));
    assert_eq!(t.step(1), Verdict::Disabled);
    assert_eq!(t.run(&[1u8, 2, 3], 10).consumed, 0);

    t.reset();
    assert_eq!(t.state(), HealthState::Startup);
    assert_eq!(t.strikes(), 0);
    assert_eq!(t.failures(), u64::from(DISABLE_AFTER), "history is kept");
    assert_eq!(feed(&mut t, &mut src, 1024), (0, 1024));
    assert_eq!(t.state(), HealthState::Healthy);
}

#[test]
fn strikes_are_forgotten_after_a_long_healthy_run() {
    let mut t = byte_tester();
    let mut src = Distinct::new(6, 9);
    feed(&mut t, &mut src, 1100);
    for _ in 0..DISABLE_AFTER - 1 {
        repeat_until_fail(&mut t, 9);
        feed(&mut t, &mut src, 512);
    }
    assert_eq!(t.strikes(), DISABLE_AFTER - 1);
    assert_eq!(t.state(), HealthState::Healthy);
    feed(&mut t, &mut src, STRIKE_FORGET_SAMPLES - 1);
    assert_eq!(t.strikes(), DISABLE_AFTER - 1);
    feed(&mut t, &mut src, 1);
    assert_eq!(t.strikes(), 0);
    repeat_until_fail(&mut t, 9);
    assert_eq!(t.state(), HealthState::Quarantined, "not disabled");
}

#[test]
fn config_rejects_weak_alpha_and_oversized_h() {
    assert!(HealthConfig::new(MinEntropy::from_bits(8).unwrap(), 29).is_err());
    assert!(HealthConfig::new(MinEntropy::from_bits(8).unwrap(), 65).is_err());
    let cfg = HealthConfig::new(MinEntropy::from_bits(9).unwrap(), 30).unwrap();
    assert!(HealthTest::new(cfg, 8).is_err(), "9 bits in a byte");
    assert!(HealthTest::new(cfg, 64).is_ok());
    assert!(MinEntropy::from_eighths(0).is_err());
    assert!(MinEntropy::from_eighths(513).is_err());
}

#[test]
fn debug_shows_no_samples() {
    let mut t = byte_tester();
    t.step(0xab);
    let s = format!("{t:?}");
    assert!(s.starts_with("HealthTest {") && s.ends_with(".. }"), "{s}");
    assert!(!s.contains("171") && !s.contains("ab"), "{s}");
}

#[test]
fn runs_see_repeats_and_counts_across_call_boundaries() {
    let cfg = HealthConfig::new(MinEntropy::from_bits(64).unwrap(), 30).unwrap();
    let mut t = HealthTest::new(cfg, 64).unwrap();
    let good: Vec<u64> = (1..=1100u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    assert_eq!(t.run(&good, u64::MAX).consumed, 1100);
    assert_eq!(t.state(), HealthState::Healthy);
    // One sample, then a stretch that starts with the same value: C = 2.
    assert_eq!(t.run(&[42u64], 1).creditable, 1);
    let r = t.run(&[42u64, 43, 44, 45], 3);
    assert_eq!(r.consumed, 1);
    assert_eq!(r.failed, Some(HealthTestKind::RepetitionCount));
}

/// Checks `run` against per-sample `step`s, call by call.
fn check_run_equals_stepping<T: entropool::health::HealthSample + Into<u64>>(
    xs: &[T],
    cfg: HealthConfig,
    bits: u32,
    wants: &[u64],
) -> Result<(), TestCaseError> {
    let mut fast = HealthTest::new(cfg, bits).unwrap();
    let mut slow = HealthTest::new(cfg, bits).unwrap();
    let mut pos = 0;
    for (i, &want) in wants.iter().cycle().take(20_000).enumerate() {
        let want = if i % 5 == 4 { u64::MAX } else { want };
        let r = fast.run(&xs[pos..], want);
        // The model: step until `want` creditable, a failure, or the end.
        let (mut used, mut cred, mut failed) = (0usize, 0u64, None);
        while cred < want && pos + used < xs.len() {
            let v = slow.step(xs[pos + used].into());
            if v == Verdict::Disabled {
                break;
            }
            used += 1;
            match v {
                Verdict::Creditable => cred += 1,
                Verdict::Failed(k) => {
                    failed = Some(k);
                    break;
                }
                _ => {}
            }
        }
        prop_assert_eq!((r.consumed, r.creditable, r.failed), (used, cred, failed));
        prop_assert_eq!(fast.state(), slow.state());
        prop_assert_eq!(fast.failures(), slow.failures());
        prop_assert_eq!(fast.strikes(), slow.strikes());
        pos += used;
        if pos == xs.len() || fast.state() == HealthState::Disabled {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    /// `run` (the fast path) agrees with per-sample `step`s on streams
    /// with small alphabets and small cutoffs that fail often, for byte
    /// and word samples.
    #[test]
    fn run_equals_stepping(
        alphabet in prop_oneof![Just(1u64), Just(2), Just(3), Just(16), Just(256), Just(5000)],
        wide: bool,
        eighths in 1u32..=64,
        wide_eighths in 1u32..=512,
        seed: u64,
        len in 0usize..6000,
        wants in proptest::collection::vec(prop_oneof![0u64..6, 0u64..700], 1..12),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let xs: Vec<u64> = (0..len).map(|_| rng.next_u64() % alphabet).collect();
        if wide {
            let cfg = HealthConfig::new(MinEntropy::from_eighths(wide_eighths).unwrap(), 30).unwrap();
            check_run_equals_stepping(&xs, cfg, 64, &wants)?;
        } else {
            let cfg = HealthConfig::new(MinEntropy::from_eighths(eighths).unwrap(), 30).unwrap();
            let bytes: Vec<u8> = xs.iter().map(|&x| x.to_le_bytes()[0]).collect();
            check_run_equals_stepping(&bytes, cfg, 8, &wants)?;
        }
    }
}
