//! The RDRAND driver.
//!
//! Contract: [`Rdrand::new`] refuses a CPU without RDRAND, an AMD CPU before
//! family 0x17, and a CPU whose start-up self-test shows stuck or repeating
//! output. After that each word costs at most [`RDRAND_RETRY_LIMIT`]
//! attempts; a call that runs out returns `Err(RdrandFailed)` and no word.

use super::{Cpu, HwStats, RetryRule, admit, has_stuck_or_repeat, is_stuck, retry};
use crate::error::Error;
use crate::source::Source;

/// Attempts per word before RDRAND is declared failed.
///
/// Intel, "Digital Random Number Generator (DRNG) Software Implementation
/// Guide", section 5.2.1: ten consecutive CF=0 results indicate a hardware
/// failure, not exhaustion (also Intel SDM vol. 1, 7.3.17.1; getrandom's
/// `rdrand` backend uses the same limit).
pub const RDRAND_RETRY_LIMIT: u32 = 10;

/// Words drawn by the start-up self-test.
///
/// As in getrandom's `rdrand` backend (adapted from Linux
/// `arch/x86/kernel/cpu/rdrand.c`) a short run of draws catches an RDRAND
/// that repeats itself or is stuck at all ones (AMD after suspend). We are
/// stricter than getrandom, which tolerates two repeats: ANY repeat among
/// the 8 words (28 pairs), or any all-zeros / all-ones word, refuses the
/// source. A healthy RDRAND fails this with probability below
/// 28 * 2^-64 + 16 * 2^-64 < 2^-58.
pub const RDRAND_SELF_TEST_WORDS: usize = 8;

/// Every RDRAND word: [`RDRAND_RETRY_LIMIT`] attempts, no `PAUSE`.
const RULE: RetryRule = RetryRule {
    limit: RDRAND_RETRY_LIMIT,
    pause: false,
};

/// RDRAND, self-tested, with a bounded retry rule.
#[derive(Debug)]
pub struct Rdrand<C> {
    cpu: C,
    stats: HwStats,
}

impl<C: Cpu> Rdrand<C> {
    /// Check the CPU and run the start-up self-test.
    ///
    /// # Errors
    /// - [`Error::HardwareUnsupported`] when CPUID does not report RDRAND
    ///   (no instruction is executed);
    /// - [`Error::KnownBadCpu`] for AMD before family 0x17 (no instruction
    ///   is executed);
    /// - [`Error::SelfTestFailed`] when one of the [`RDRAND_SELF_TEST_WORDS`]
    ///   draws fails [`RDRAND_RETRY_LIMIT`] times in a row, or the words
    ///   hold a repeat or an all-zeros / all-ones value.
    pub fn new(cpu: C) -> Result<Self, Error> {
        let source = Source::Rdrand;
        admit(&cpu, source, cpu.features().rdrand)?;
        let mut driver = Rdrand {
            cpu,
            stats: HwStats::default(),
        };
        let mut words = [0u64; RDRAND_SELF_TEST_WORDS];
        for slot in &mut words {
            // Take the first CF=1 word as it is, stuck or not: the check
            // below judges it.
            *slot = retry(&driver.cpu, &mut driver.stats, RULE, C::rdrand64, |_| true)
                .ok_or(Error::SelfTestFailed { source })?;
        }
        if has_stuck_or_repeat(&words) {
            return Err(Error::SelfTestFailed { source });
        }
        Ok(driver)
    }

    /// One 64-bit word.
    ///
    /// An attempt fails on CF=0, and also on an all-ones word (AMD RDRAND
    /// after suspend keeps CF=1 and returns all ones) or an all-zeros word;
    /// discarding those two values biases the output by 2^-63, nothing
    /// measurable.
    ///
    /// # Errors
    /// [`Error::RdrandFailed`] after [`RDRAND_RETRY_LIMIT`] failed attempts.
    #[inline]
    pub fn next_u64(&mut self) -> Result<u64, Error> {
        let word = retry(&self.cpu, &mut self.stats, RULE, C::rdrand64, |w| !is_stuck(w))
            .ok_or(Error::RdrandFailed)?;
        self.stats.words = self.stats.words.wrapping_add(1);
        Ok(word)
    }

    /// Fill `out` with words, all or nothing.
    ///
    /// # Errors
    /// [`Error::RdrandFailed`] when any word fails; `out` is then zeroed,
    /// so no word of a failed call can be mistaken for output.
    pub fn fill(&mut self, out: &mut [u64]) -> Result<(), Error> {
        for i in 0..out.len() {
            match self.next_u64() {
                Ok(word) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = word;
                    }
                }
                Err(e) => {
                    out.fill(0);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The counters so far (self-test attempts included).
    #[must_use]
    pub fn stats(&self) -> HwStats {
        self.stats
    }

    /// The backend.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn cpu(&self) -> &C {
        &self.cpu
    }
}
