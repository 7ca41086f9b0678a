//! The RDSEED driver.
//!
//! Contract: [`Rdseed::new`] refuses a CPU without RDSEED, an AMD CPU before
//! family 0x17, and a CPU whose start-up self-test shows stuck or repeating
//! output; a self-test that cannot gather its words within a bounded budget
//! reports [`Error::RdseedNotNow`] (try again later). Each word costs at most
//! [`RDSEED_RETRY_LIMIT`] attempts with `PAUSE` between them; running out is
//! the normal "no seed now" answer, not a fault. Only the 64-bit form is
//! used and an all-zeros word with CF=1 is a failed attempt (AMD Zen 5
//! erratum).

use super::{Cpu, HwStats, RetryRule, admit, is_stuck, retry};
use crate::error::Error;
use crate::source::Source;

/// Attempts per word, with `PAUSE` between them, before "no seed now".
///
/// Intel, "Digital Random Number Generator (DRNG) Software Implementation
/// Guide" rev. 2.1, section 5.3.1 (RDSEED retry recommendations): unlike
/// RDRAND, RDSEED legitimately runs dry when seeds are drawn faster than
/// the entropy source refills, so software should retry with PAUSE in the
/// loop and, after a bounded number of tries (the guide's figure is about
/// 100), give up and come back later rather than spin.
///
/// Where about 96 % of attempts fail (reported for AMD EPYC Zen 5, family
/// 0x1A, under KVM, at ~0.85 us per attempt) one call runs out with
/// probability 0.96^100 = 1.7 % and costs at most ~100 attempts, ~85 us.
pub const RDSEED_RETRY_LIMIT: u32 = 100;

/// Words the start-up self-test needs (checked for stuck values and for
/// any repeat among them, as for RDRAND).
pub const RDSEED_SELF_TEST_WORDS: usize = 8;

/// The self-test's budget, in rounds of [`RDSEED_RETRY_LIMIT`] attempts
/// (2000 attempts, about 1.7 ms at 0.85 us each).
///
/// At a 4 % success rate 2000 attempts yield 80 good words on average; the
/// chance of fewer than 8 (Poisson, mean 80) is below 10^-24. Even at a 1 %
/// success rate it is below 10^-3, and the answer is then `RdseedNotNow`,
/// which the caller may retry later; it never hangs.
pub const RDSEED_SELF_TEST_ROUNDS: u32 = 20;

/// Every RDSEED word: [`RDSEED_RETRY_LIMIT`] attempts, `PAUSE` between them.
const RULE: RetryRule = RetryRule {
    limit: RDSEED_RETRY_LIMIT,
    pause: true,
};

/// RDSEED, self-tested, with a bounded retry rule.
#[derive(Debug)]
pub struct Rdseed<C> {
    cpu: C,
    stats: HwStats,
}

impl<C: Cpu> Rdseed<C> {
    /// Check the CPU and run the start-up self-test.
    ///
    /// The self-test makes at most `RDSEED_SELF_TEST_ROUNDS *
    /// RDSEED_RETRY_LIMIT` attempts (PAUSE after each failure) to collect
    /// [`RDSEED_SELF_TEST_WORDS`] words. Any CF=1 word that is all zeros or
    /// all ones, or equal to an earlier one, fails it at once: at start we
    /// refuse rather than retry past a stuck value.
    ///
    /// # Errors
    /// - [`Error::HardwareUnsupported`] when CPUID does not report RDSEED
    ///   (no instruction is executed);
    /// - [`Error::KnownBadCpu`] for AMD before family 0x17 (same rule as
    ///   RDRAND; no instruction is executed);
    /// - [`Error::SelfTestFailed`] on a stuck or repeated word;
    /// - [`Error::RdseedNotNow`] when the budget ran out before enough
    ///   words came (nothing wrong was seen; try again later).
    pub fn new(cpu: C) -> Result<Self, Error> {
        admit(&cpu, Source::Rdseed, cpu.features().rdseed)?;
        let mut driver = Rdseed {
            cpu,
            stats: HwStats::default(),
        };
        driver.self_test()?;
        Ok(driver)
    }

    fn self_test(&mut self) -> Result<(), Error> {
        let source = Source::Rdseed;
        let mut words = [0u64; RDSEED_SELF_TEST_WORDS];
        // One budget for all the words: each word's retry loop gets what
        // the words before it left.
        let mut left = RDSEED_SELF_TEST_ROUNDS.saturating_mul(RDSEED_RETRY_LIMIT);
        for have in 0..RDSEED_SELF_TEST_WORDS {
            let before = self.stats.attempts;
            let rule = RetryRule { limit: left, ..RULE };
            // Any CF=1 word ends the attempt loop: it is judged below.
            let word = retry(&self.cpu, &mut self.stats, rule, C::rdseed64, |_| true)
                .ok_or(Error::RdseedNotNow)?;
            let used = self.stats.attempts.wrapping_sub(before);
            left = left.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX));
            let seen = words.get(..have).unwrap_or(&[]);
            if is_stuck(word) || seen.contains(&word) {
                self.stats.failures = self.stats.failures.wrapping_add(1);
                return Err(Error::SelfTestFailed { source });
            }
            if let Some(slot) = words.get_mut(have) {
                *slot = word;
            }
        }
        Ok(())
    }

    /// One 64-bit seed word.
    ///
    /// An attempt fails on CF=0, and also on an all-zeros word (AMD Zen 5
    /// erratum: CF=1 with 0) or an all-ones word; discarding those two
    /// values biases the output by 2^-63, nothing measurable.
    ///
    /// # Errors
    /// [`Error::RdseedNotNow`] after [`RDSEED_RETRY_LIMIT`] failed attempts
    /// (with PAUSE between them); the caller should come back later.
    #[inline]
    pub fn next_u64(&mut self) -> Result<u64, Error> {
        let word = retry(&self.cpu, &mut self.stats, RULE, C::rdseed64, |w| !is_stuck(w))
            .ok_or(Error::RdseedNotNow)?;
        self.stats.words = self.stats.words.wrapping_add(1);
        Ok(word)
    }

    /// Harvest what RDSEED gives now: fill `out` from the front, stopping
    /// at the first word that runs out of retries.
    ///
    /// Returns `Ok(n)`: `out[..n]` holds fresh words and `out[n..]` is left
    /// untouched; `n == out.len()` when every word came, and `n >= 1`
    /// unless `out` is empty. Makes at most `RDSEED_RETRY_LIMIT *
    /// out.len()` attempts.
    ///
    /// # Errors
    /// [`Error::RdseedNotNow`] when not even the first word came (`out` is
    /// untouched).
    pub fn fill(&mut self, out: &mut [u64]) -> Result<usize, Error> {
        let mut got = 0usize;
        for slot in out.iter_mut() {
            match self.next_u64() {
                Ok(word) => {
                    *slot = word;
                    got = got.saturating_add(1);
                }
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got)
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
