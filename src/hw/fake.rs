//! Fake CPUs for tests: every fault a hardware source can show, on demand
//! and deterministically, without the hardware.
//!
//! Contract: `no_std`, no allocation; a [`FakeCpu`] is `Sync` (its state is
//! in atomics) so a driver and the pool can share it by reference. Each
//! instruction's behaviour is a [`FakeOutput`] that a test can change at any
//! time; the fake counts every attempt and every `PAUSE`, so tests can
//! assert that a driver gave up after exactly its retry limit. A fake
//! answers even when it reports the feature absent (returning CF=0 and
//! counting the attempt), so a test can prove the driver never tried.
//! Randomness comes from SplitMix64 (Steele, Lea, Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014), seeded by the test.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::{Cpu, CpuIdentity, Vendor};
use crate::source::CpuFeatures;

/// What one fake instruction (RDRAND or RDSEED) does on each attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeOutput {
    /// CF=0 on every attempt.
    Fail,
    /// CF=0 on `percent` % of attempts (clamped to 100), chosen by a
    /// SplitMix64 stream from `seed`; other attempts return words of the
    /// same stream.
    FailPercent {
        /// Failure rate in percent.
        percent: u8,
        /// Seed of the stream that decides and supplies.
        seed: u64,
    },
    /// CF=1 with this word on every attempt.
    Constant(u64),
    /// CF=1 with all ones (AMD RDRAND after suspend).
    AllOnes,
    /// CF=1 with zero (AMD Zen 5 RDSEED erratum, 16/32-bit forms).
    ZeroSuccess,
    /// CF=1 with the SplitMix64 stream from `seed`: a healthy source.
    Good {
        /// Stream seed.
        seed: u64,
    },
    /// Like `Good` for `good` attempts, then CF=0 forever.
    GoodThenFail {
        /// Stream seed.
        seed: u64,
        /// Successful attempts before it breaks.
        good: u64,
    },
}

const KIND_FAIL: u8 = 0;
const KIND_FAIL_PERCENT: u8 = 1;
const KIND_CONSTANT: u8 = 2;
const KIND_GOOD: u8 = 3;
const KIND_GOOD_THEN_FAIL: u8 = 4;

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function of state `z`.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One step of SplitMix64: advance `state` and return the next output
/// (public so tests can model a fake's stream).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix(*state)
}

/// One fake instruction's state.
#[derive(Debug)]
struct FakeUnit {
    kind: AtomicU8,
    percent: AtomicU8,
    /// Stream state, or the constant word.
    state: AtomicU64,
    /// `GoodThenFail`: successes left.
    remaining: AtomicU64,
    attempts: AtomicU64,
}

impl FakeUnit {
    fn new(output: FakeOutput) -> Self {
        let unit = FakeUnit {
            kind: AtomicU8::new(KIND_FAIL),
            percent: AtomicU8::new(0),
            state: AtomicU64::new(0),
            remaining: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        };
        unit.set(output);
        unit
    }

    /// Relaxed throughout: a fake is driven from one thread at a time in
    /// tests; concurrent draws still get distinct stream words because the
    /// stream advances with one `fetch_add`.
    fn set(&self, output: FakeOutput) {
        let (kind, percent, state, remaining) = match output {
            FakeOutput::Fail => (KIND_FAIL, 0, 0, 0),
            FakeOutput::FailPercent { percent, seed } => {
                (KIND_FAIL_PERCENT, percent.min(100), seed, 0)
            }
            FakeOutput::Constant(word) => (KIND_CONSTANT, 0, word, 0),
            FakeOutput::AllOnes => (KIND_CONSTANT, 0, u64::MAX, 0),
            FakeOutput::ZeroSuccess => (KIND_CONSTANT, 0, 0, 0),
            FakeOutput::Good { seed } => (KIND_GOOD, 0, seed, 0),
            FakeOutput::GoodThenFail { seed, good } => (KIND_GOOD_THEN_FAIL, 0, seed, good),
        };
        self.percent.store(percent, Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
        self.remaining.store(remaining, Ordering::Relaxed);
        self.kind.store(kind, Ordering::Relaxed);
    }

    fn next_stream(&self) -> u64 {
        let state = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        mix(state)
    }

    fn attempt(&self) -> Option<u64> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        match self.kind.load(Ordering::Relaxed) {
            KIND_FAIL_PERCENT => {
                let roll = self.next_stream() % 100;
                if roll < u64::from(self.percent.load(Ordering::Relaxed)) {
                    None
                } else {
                    Some(self.next_stream())
                }
            }
            KIND_CONSTANT => Some(self.state.load(Ordering::Relaxed)),
            KIND_GOOD => Some(self.next_stream()),
            KIND_GOOD_THEN_FAIL => self
                .remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
                .ok()
                .map(|_| self.next_stream()),
            _ => None,
        }
    }
}

/// A fake CPU: configurable RDRAND and RDSEED behaviour, features,
/// identity and cycle counter; counts attempts and pauses.
///
/// Defaults from [`FakeCpu::new`]: both features present, an Intel family 6
/// identity, cycle counter at 0 with step 0.
#[derive(Debug)]
pub struct FakeCpu {
    features: CpuFeatures,
    identity: CpuIdentity,
    rdrand: FakeUnit,
    rdseed: FakeUnit,
    pauses: AtomicU64,
    cycles: AtomicU64,
    cycles_step: AtomicU64,
}

impl FakeCpu {
    /// A fake with the given RDRAND and RDSEED behaviour.
    #[must_use]
    pub fn new(rdrand: FakeOutput, rdseed: FakeOutput) -> Self {
        FakeCpu {
            features: CpuFeatures {
                rdrand: true,
                rdseed: true,
            },
            identity: CpuIdentity {
                vendor: Vendor::Intel,
                family: 6,
            },
            rdrand: FakeUnit::new(rdrand),
            rdseed: FakeUnit::new(rdseed),
            pauses: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            cycles_step: AtomicU64::new(0),
        }
    }

    /// A healthy fake: both instructions produce SplitMix64 streams
    /// (RDRAND from `seed`, RDSEED from `!seed`).
    #[must_use]
    pub fn good(seed: u64) -> Self {
        FakeCpu::new(FakeOutput::Good { seed }, FakeOutput::Good { seed: !seed })
    }

    /// Report these features (e.g. a CPU lacking RDSEED).
    #[must_use]
    pub fn with_features(self, features: CpuFeatures) -> Self {
        FakeCpu { features, ..self }
    }

    /// Report this vendor and family.
    #[must_use]
    pub fn with_identity(self, identity: CpuIdentity) -> Self {
        FakeCpu { identity, ..self }
    }

    /// Change RDRAND's behaviour from the next attempt on.
    pub fn set_rdrand(&self, output: FakeOutput) {
        self.rdrand.set(output);
    }

    /// Change RDSEED's behaviour from the next attempt on.
    pub fn set_rdseed(&self, output: FakeOutput) {
        self.rdseed.set(output);
    }

    /// RDRAND attempts so far.
    #[must_use]
    pub fn rdrand_attempts(&self) -> u64 {
        self.rdrand.attempts.load(Ordering::Relaxed)
    }

    /// RDSEED attempts so far.
    #[must_use]
    pub fn rdseed_attempts(&self) -> u64 {
        self.rdseed.attempts.load(Ordering::Relaxed)
    }

    /// `PAUSE`s so far.
    #[must_use]
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Set the cycle counter.
    pub fn set_cycles(&self, value: u64) {
        self.cycles.store(value, Ordering::Relaxed);
    }

    /// Move the cycle counter forward by `delta` (wrapping).
    pub fn advance_cycles(&self, delta: u64) {
        self.cycles.fetch_add(delta, Ordering::Relaxed);
    }

    /// Make every read of the counter advance it by `step` afterwards
    /// (`0`, the default, freezes it between `set_cycles` calls).
    pub fn set_cycles_step(&self, step: u64) {
        self.cycles_step.store(step, Ordering::Relaxed);
    }
}

impl Cpu for FakeCpu {
    fn features(&self) -> CpuFeatures {
        self.features
    }

    fn identity(&self) -> CpuIdentity {
        self.identity
    }

    fn rdrand64(&self) -> Option<u64> {
        self.rdrand.attempt()
    }

    fn rdseed64(&self) -> Option<u64> {
        self.rdseed.attempt()
    }

    fn pause(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    fn cycles(&self) -> u64 {
        let step = self.cycles_step.load(Ordering::Relaxed);
        self.cycles.fetch_add(step, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // Reference outputs of SplitMix64 seeded with 0 (Vigna's
        // splitmix64.c; also recomputed independently in Python).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut s), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn good_unit_follows_the_stream() {
        let unit = FakeUnit::new(FakeOutput::Good { seed: 0 });
        let mut s = 0u64;
        for _ in 0..10 {
            assert_eq!(unit.attempt(), Some(splitmix64(&mut s)));
        }
        assert_eq!(unit.attempts.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn good_then_fail_counts_down() {
        let unit = FakeUnit::new(FakeOutput::GoodThenFail { seed: 1, good: 3 });
        let got: [Option<u64>; 5] = core::array::from_fn(|_| unit.attempt());
        assert!(got[..3].iter().all(Option::is_some));
        assert_eq!(got[3..], [None, None]);
    }
}
