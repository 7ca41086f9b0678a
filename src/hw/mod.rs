//! Hardware entropy sources: CPU feature detection, the RDRAND and RDSEED
//! drivers, the cycle counter, the CPU execution-jitter collector, and (with
//! `std`) the timer-jitter thread.
//!
//! Contract:
//! - Everything the drivers ask of the CPU goes through the [`Cpu`] seam, so
//!   every path runs against fake CPUs (feature `testing`) as well as the [`RealCpu`].
//!   Each `Cpu` method makes exactly ONE attempt and never loops.
//! - [`RealCpu`] detects features once with CPUID, caches the answer in an
//!   atomic, and executes RDRAND/RDSEED only when CPUID reported them. On
//!   architectures other than x86_64 it compiles and reports no hardware
//!   sources (see [`RealCpu`]).
//! - The drivers never assume an instruction works because it exists: they
//!   refuse known-bad CPUs, self-test at start, treat stuck values as
//!   failures, and retry only up to a named, cited limit
//!   ([`RDRAND_RETRY_LIMIT`], [`RDSEED_RETRY_LIMIT`]). No call loops without
//!   bound; every failure is an `Err` and no word is returned from it.
//! - `unsafe` lives only in `x86_64.rs` (CPUID, RDRAND, RDSEED, the cycle
//!   counter). The SHA extensions are not an entropy source and live in
//!   `crate::crypto`.

use crate::error::Error;
use crate::source::{CpuFeatures, Source};

mod rdrand;
mod rdseed;

#[cfg(all(any(test, feature = "testing"), target_has_atomic = "64"))]
pub mod fake;

pub mod cpu_jitter;

#[cfg(feature = "std")]
pub mod jitter;

#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;

#[cfg(not(target_arch = "x86_64"))]
#[path = "other.rs"]
mod arch;

pub use arch::RealCpu;
/// Whether the SHA-NI backend in `crate::crypto` may run (CPUID, cached).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) use arch::has_sha_ni;
#[cfg_attr(not(feature = "testing"), allow(unused_imports))] // tests only
pub use rdrand::{RDRAND_RETRY_LIMIT, RDRAND_SELF_TEST_WORDS, Rdrand};
#[cfg_attr(not(feature = "testing"), allow(unused_imports))] // tests only
pub use rdseed::{RDSEED_RETRY_LIMIT, RDSEED_SELF_TEST_ROUNDS, RDSEED_SELF_TEST_WORDS, Rdseed};

/// No hardware random-number instructions: the CPU type of a pool that
/// uses interrupts and external entropy only (firmware on a
/// microcontroller). Zero-sized, and a pool over it
/// ([`Pool<'_, NoCpu, _, _>`](crate::Pool)) holds no RDRAND or RDSEED
/// driver state and no word buffer for them. Its features are none: the
/// default sources mask resolves to interrupts, and a mask that names
/// RDRAND or RDSEED is [`Error::SourceUnavailable`], as on a CPU that
/// lacks the instruction. It is not a [`Cpu`] (it has no cycle counter
/// either: the interrupt ring's timestamps come from the caller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoCpu;

/// The CPU's vendor, from the CPUID leaf 0 vendor string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// `GenuineIntel`.
    Intel,
    /// `AuthenticAMD`.
    Amd,
    /// Any other vendor string, or no CPUID at all.
    Other,
}

/// Who made the CPU and which family it is: what the known-bad-CPU rules
/// need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuIdentity {
    /// The vendor.
    pub vendor: Vendor,
    /// The display family: CPUID leaf 1 EAX base family (bits 8..12), plus
    /// the extended family (bits 20..28) when the base family is `0xF`
    /// (e.g. `0x1A` for AMD Zen 5, `6` for most Intel cores).
    pub family: u32,
}

/// The backend seam between the drivers and the hardware.
///
/// Every method takes `&self` (fakes keep their state in atomics) so that
/// drivers and the pool can share one backend, and makes exactly one
/// attempt: retry policy belongs to the drivers.
pub trait Cpu {
    /// The hardware random-number features, as CPUID reports them.
    fn features(&self) -> CpuFeatures;

    /// Vendor and family, for the known-bad-CPU rules.
    fn identity(&self) -> CpuIdentity;

    /// One 64-bit RDRAND attempt: `Some(word)` when the CPU set CF=1,
    /// `None` when it did not, or when the CPU has no RDRAND.
    fn rdrand64(&self) -> Option<u64>;

    /// One 64-bit RDSEED attempt: `Some(word)` when the CPU set CF=1,
    /// `None` when it did not, or when the CPU has no RDSEED. Only the
    /// 64-bit form is ever used (AMD Zen 5 erratum on the 16/32-bit forms).
    fn rdseed64(&self) -> Option<u64>;

    /// A spin-wait hint between attempts (`PAUSE` on x86).
    fn pause(&self);

    /// A cycle counter for timing (`RDTSC` on x86_64). Monotonic enough for
    /// jitter deltas; not a wall clock.
    fn cycles(&self) -> u64;
}

impl<C: Cpu + ?Sized> Cpu for &C {
    #[inline]
    fn features(&self) -> CpuFeatures {
        (**self).features()
    }
    #[inline]
    fn identity(&self) -> CpuIdentity {
        (**self).identity()
    }
    #[inline]
    fn rdrand64(&self) -> Option<u64> {
        (**self).rdrand64()
    }
    #[inline]
    fn rdseed64(&self) -> Option<u64> {
        (**self).rdseed64()
    }
    #[inline]
    fn pause(&self) {
        (**self).pause();
    }
    #[inline]
    fn cycles(&self) -> u64 {
        (**self).cycles()
    }
}

#[cfg(feature = "std")]
impl<C: Cpu + ?Sized> Cpu for std::sync::Arc<C> {
    #[inline]
    fn features(&self) -> CpuFeatures {
        (**self).features()
    }
    #[inline]
    fn identity(&self) -> CpuIdentity {
        (**self).identity()
    }
    #[inline]
    fn rdrand64(&self) -> Option<u64> {
        (**self).rdrand64()
    }
    #[inline]
    fn rdseed64(&self) -> Option<u64> {
        (**self).rdseed64()
    }
    #[inline]
    fn pause(&self) {
        (**self).pause();
    }
    #[inline]
    fn cycles(&self) -> u64 {
        (**self).cycles()
    }
}

/// Counters a driver keeps, for the pool's status output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwStats {
    /// Instructions executed (every single attempt, self-test included).
    pub attempts: u64,
    /// Attempts that failed: CF=0, or a stuck value (all zeros or all ones)
    /// reported with CF=1.
    pub failures: u64,
    /// Words handed to the caller (self-test words are discarded, not
    /// counted here).
    pub words: u64,
    /// Calls that ran out of retries (`RdrandFailed` / `RdseedNotNow`).
    pub exhausted: u64,
}

/// Whether a word reported with CF=1 is a known stuck value: all zeros
/// (AMD Zen 5 RDSEED erratum) or all ones (AMD RDRAND after suspend). A
/// genuine random word is one of these with probability 2^-63, so treating
/// them as failures costs nothing measurable.
#[inline]
const fn is_stuck(word: u64) -> bool {
    word == 0 || word == u64::MAX
}

/// AMD families before 0x17 (Zen) can keep reporting CF=1 while RDRAND
/// returns all ones after a suspend/resume cycle, see
/// <https://bugzilla.redhat.com/show_bug.cgi?id=1150286> (getrandom's
/// `rdrand` backend and Linux refuse them for the same reason).
#[inline]
const fn is_known_bad(id: CpuIdentity) -> bool {
    matches!(id.vendor, Vendor::Amd) && id.family < 0x17
}

/// The checks each driver makes before it executes an instruction: CPUID
/// reported it (`reported`), and the CPU is not known-bad.
///
/// # Errors
/// [`Error::HardwareUnsupported`] or [`Error::KnownBadCpu`] for `source`.
fn admit<C: Cpu>(cpu: &C, source: Source, reported: bool) -> Result<(), Error> {
    if !reported {
        return Err(Error::HardwareUnsupported { source });
    }
    if is_known_bad(cpu.identity()) {
        return Err(Error::KnownBadCpu { source });
    }
    Ok(())
}

/// How a driver retries one word: the limit (cited where each driver
/// names it) and whether to `PAUSE` between attempts.
#[derive(Clone, Copy, Debug)]
struct RetryRule {
    /// Attempts before the word is given up.
    limit: u32,
    /// `PAUSE` before every attempt but the first (RDSEED: give the
    /// entropy source time to refill).
    pause: bool,
}

/// The drivers' one retry loop: at most `rule.limit` attempts of `draw`,
/// each counted in `stats`. An attempt fails on CF=0 (`None`) or when
/// `accept` refuses its word; the first accepted word is returned. When the
/// limit runs out the call is counted as exhausted and returns `None`, so
/// no call ever loops without bound.
#[inline]
fn retry<C: Cpu>(
    cpu: &C,
    stats: &mut HwStats,
    rule: RetryRule,
    draw: impl Fn(&C) -> Option<u64>,
    accept: impl Fn(u64) -> bool,
) -> Option<u64> {
    for i in 0..rule.limit {
        if rule.pause && i != 0 {
            cpu.pause();
        }
        stats.attempts = stats.attempts.wrapping_add(1);
        if let Some(word) = draw(cpu) {
            if accept(word) {
                return Some(word);
            }
        }
        stats.failures = stats.failures.wrapping_add(1);
    }
    stats.exhausted = stats.exhausted.wrapping_add(1);
    None
}

/// Whether the words contain a stuck value or any repeat (all pairs).
fn has_stuck_or_repeat(words: &[u64]) -> bool {
    let mut rest = words;
    while let Some((first, tail)) = rest.split_first() {
        if is_stuck(*first) || tail.contains(first) {
            return true;
        }
        rest = tail;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_values_are_exactly_zero_and_all_ones() {
        assert!(is_stuck(0));
        assert!(is_stuck(!0));
        for w in [1u64, 2, 1 << 63, u64::MAX - 1, 0x5555_5555_5555_5555] {
            assert!(!is_stuck(w), "{w:#x}");
        }
    }

    #[test]
    fn repeat_check_looks_at_every_pair() {
        assert!(!has_stuck_or_repeat(&[]));
        assert!(!has_stuck_or_repeat(&[1, 2, 3, 4]));
        assert!(has_stuck_or_repeat(&[1, 2, 3, 1]));
        assert!(has_stuck_or_repeat(&[1, 2, 2, 4]));
        assert!(has_stuck_or_repeat(&[5, 2, 3, 0]));
        assert!(has_stuck_or_repeat(&[5, u64::MAX]));
    }

    #[test]
    fn only_amd_before_zen_is_known_bad() {
        let amd = |family| CpuIdentity {
            vendor: Vendor::Amd,
            family,
        };
        assert!(is_known_bad(amd(0x15)));
        assert!(is_known_bad(amd(0x16)));
        assert!(!is_known_bad(amd(0x17)));
        assert!(!is_known_bad(amd(0x1A)));
        for vendor in [Vendor::Intel, Vendor::Other] {
            assert!(!is_known_bad(CpuIdentity { vendor, family: 6 }));
        }
    }
}
