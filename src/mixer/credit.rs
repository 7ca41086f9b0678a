//! Entropy credit in exact fixed point, per-source rates, their caps, the
//! per-source configuration, and the one credit routine both mixer paths
//! use.
//!
//! # The credit routine
//!
//! A block is emitted when the credit pending toward it reaches
//! [`BLOCK_CREDIT`]; then pending restarts at zero (nothing carries over).
//! That arithmetic lives here once: [`credit_samples`] credits samples that
//! passed the health tests, [`forfeit`] throws pending credit away on a
//! failure, [`samples_to_block`] says how many samples complete the block
//! (with [`samples_for`], a 32-bit division a Cortex-M links cheaply).
//! The mixer's general path (sample by sample through the health tests) and
//! its fast path (whole frames proved clean at once) both call them: the
//! fast path only decides how many samples are provably clean, and never
//! counts credit itself.

use core::fmt;

use crate::error::Error;
use crate::health::{HealthConfig, MinEntropy};
use crate::source::Source;

/// Credit units per bit: credit is counted in `1/65536` bit, exactly.
pub const UNITS_PER_BIT: u64 = 1 << 16;

/// Credit needed before a block is emitted: 256 + 64 = 320 bits.
pub const BLOCK_CREDIT: Credit = Credit(320 * UNITS_PER_BIT);

/// Credits `creditable` samples at `rate` (units per sample) toward the
/// block being built: adds their credit to `pending` and to the source's
/// running total `credited`. Returns `true` when that completes the block;
/// `pending` is then zero again (credit beyond [`BLOCK_CREDIT`], at most one
/// sample's worth when callers stop at [`samples_to_block`], is not carried
/// over).
#[inline]
pub(super) fn credit_samples(
    pending: &mut u64,
    credited: &mut u64,
    creditable: u64,
    rate: u64,
) -> bool {
    let credit = creditable.saturating_mul(rate);
    *credited = credited.saturating_add(credit);
    *pending = pending.saturating_add(credit);
    if *pending >= BLOCK_CREDIT.0 {
        *pending = 0;
        true
    } else {
        false
    }
}

/// A health failure: everything pending for the current block (from every
/// source) is thrown away and counted in `forfeited`.
#[inline]
pub(super) fn forfeit(pending: &mut u64, forfeited: &mut u64) {
    *forfeited = forfeited.saturating_add(*pending);
    *pending = 0;
}

/// Samples at `rate` that complete the block from `pending` credit
/// (`ceil((BLOCK_CREDIT - pending) / rate)`, with [`samples_for`]'s 32-bit
/// division); `u64::MAX` (never) at rate 0.
#[inline]
#[must_use]
pub(super) fn samples_to_block(pending: u64, rate: u64) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    samples_for(BLOCK_CREDIT.0.saturating_sub(pending), rate)
}

/// Samples at `rate` units each (`rate > 0`; 0 gives 0) that earn `need`
/// units, `ceil(need / rate)`, for `need` at most [`BLOCK_CREDIT`] (a
/// larger `need` counts as that). Both then fit 32 bits, so the division
/// is a 32-bit one: a 32-bit target links no 64-bit division routine.
#[inline]
pub(super) fn samples_for(need: u64, rate: u64) -> u64 {
    // Checked to fit just below, so the cast keeps every bit.
    #[allow(clippy::cast_possible_truncation)]
    const MAX: u32 = {
        let units = BLOCK_CREDIT.units();
        assert!(units <= u32::MAX as u64);
        units as u32
    };
    let need = u32::try_from(need).map_or(MAX, |n| n.min(MAX));
    match u32::try_from(rate) {
        Ok(0) => 0,
        Ok(rate) => u64::from(need.div_ceil(rate)),
        // A rate above any `need`: one sample, unless nothing is needed.
        Err(_) => u64::from(need > 0),
    }
}


/// An amount of entropy credit, in units of `1/65536` bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credit(pub u64);

impl Credit {
    /// No credit.
    pub const ZERO: Credit = Credit(0);

    /// `bits` whole bits.
    #[must_use]
    pub const fn from_bits(bits: u64) -> Credit {
        Credit(bits.saturating_mul(UNITS_PER_BIT))
    }

    /// The amount in `1/65536` bit.
    #[must_use]
    pub const fn units(self) -> u64 {
        self.0
    }

    /// Whole bits (rounded down).
    #[must_use]
    pub const fn whole_bits(self) -> u64 {
        self.0 / UNITS_PER_BIT
    }
}

impl fmt::Display for Credit {
    /// `12 bits`, or `0+1024/65536 bits` when there is a fraction.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frac = self.0 % UNITS_PER_BIT;
        if frac == 0 {
            write!(f, "{} bits", self.whole_bits())
        } else {
            write!(f, "{}+{frac}/65536 bits", self.whole_bits())
        }
    }
}

/// Credit per raw sample: per 64-bit word (RDRAND, RDSEED), per event
/// (interrupts) or per byte (external), in `1/65536` bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CreditRate(u64);

impl CreditRate {
    /// Nothing: the samples are absorbed but never credited.
    pub const ZERO: CreditRate = CreditRate(0);

    /// A rate in `1/65536` bit per sample.
    #[must_use]
    pub const fn from_units(units: u64) -> CreditRate {
        CreditRate(units)
    }

    /// `bits` whole bits per sample.
    #[must_use]
    pub const fn from_bits(bits: u64) -> CreditRate {
        CreditRate(bits.saturating_mul(UNITS_PER_BIT))
    }

    /// `bits` per `samples` samples, rounded down to the unit (never up).
    /// `samples == 0` gives [`CreditRate::ZERO`].
    #[must_use]
    pub const fn ratio(bits: u64, samples: u64) -> CreditRate {
        if samples == 0 {
            return CreditRate::ZERO;
        }
        CreditRate(bits.saturating_mul(UNITS_PER_BIT) / samples)
    }

    /// The rate in `1/65536` bit per sample.
    #[must_use]
    pub const fn units(self) -> u64 {
        self.0
    }

    /// The largest rate a source may ever be configured with:
    /// RDSEED 64 bits per word; RDRAND 128 bits per 1024 words (Intel's
    /// seed-derivation rule: 1/8 bit per word); interrupts 1 bit per event;
    /// external 8 bits per byte.
    #[must_use]
    pub const fn max_for(source: Source) -> CreditRate {
        match source {
            Source::Rdseed => CreditRate::from_bits(64),
            Source::Rdrand => CreditRate::ratio(128, 1024),
            Source::Interrupts => CreditRate::from_bits(1),
            Source::External => CreditRate::from_bits(8),
        }
    }

    /// The default rate: the cap for RDSEED, RDRAND and external; 1 bit per
    /// 64 events for interrupts (Linux's rule).
    #[must_use]
    pub const fn default_for(source: Source) -> CreditRate {
        match source {
            Source::Interrupts => CreditRate::ratio(1, 64),
            Source::Rdrand | Source::Rdseed | Source::External => CreditRate::max_for(source),
        }
    }
}

/// Bits in one raw health-test sample of `source`: 64 for RDRAND/RDSEED
/// words, 8 for external bytes and for interrupts (the low byte of the
/// delta between consecutive timestamps).
#[must_use]
pub const fn sample_bits(source: Source) -> u32 {
    match source {
        Source::Rdrand | Source::Rdseed => 64,
        Source::Interrupts | Source::External => 8,
    }
}

/// One source's configuration: its credit rate and health-test parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    /// Credit per raw sample.
    pub credit: CreditRate,
    /// Health-test parameters (`H` per raw sample, alpha).
    pub health: HealthConfig,
}

impl SourceConfig {
    /// The conservative defaults: credit [`CreditRate::default_for`];
    /// `H` = 64 bits per word for RDSEED and RDRAND (the tests then catch
    /// any repeated word), 8 bits per byte for external (what its default
    /// credit claims), 1 bit per interrupt-delta byte (far above its
    /// 1/64-bit credit, low enough for a jittery VM); alpha = 2^-30.
    #[must_use]
    pub const fn default_for(source: Source) -> SourceConfig {
        let eighths = match source {
            Source::Rdrand | Source::Rdseed => 512,
            Source::External => 64,
            Source::Interrupts => 8,
        };
        SourceConfig {
            credit: CreditRate::default_for(source),
            health: HealthConfig::with_default_alpha(MinEntropy::saturating_from_eighths(eighths)),
        }
    }

    /// Checks this configuration for `source`: the rate is at most the
    /// source's cap and at most `H` per sample; `H` fits the sample width.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming `<source>-credit-units` or
    /// `<source>-min-entropy-eighths` with the accepted range.
    pub const fn validate(&self, source: Source) -> Result<(), Error> {
        let h = self.health.min_entropy().eighths() as u64;
        let h_max = (sample_bits(source) * 8) as u64;
        if h > h_max {
            return Err(Error::InvalidValue {
                param: names(source).1,
                value: h,
                min: 1,
                max: h_max,
            });
        }
        let cap = CreditRate::max_for(source).0;
        // H eighths * 8192 = H bits * 65536.
        let by_h = h * (UNITS_PER_BIT / 8);
        let max = if cap < by_h { cap } else { by_h };
        if self.credit.0 > max {
            return Err(Error::InvalidValue {
                param: names(source).0,
                value: self.credit.0,
                min: 0,
                max,
            });
        }
        Ok(())
    }
}

const fn names(source: Source) -> (&'static str, &'static str) {
    match source {
        Source::Interrupts => ("interrupts-credit-units", "interrupts-min-entropy-eighths"),
        Source::Rdrand => ("rdrand-credit-units", "rdrand-min-entropy-eighths"),
        Source::Rdseed => ("rdseed-credit-units", "rdseed-min-entropy-eighths"),
        Source::External => ("external-credit-units", "external-min-entropy-eighths"),
    }
}

/// The mixer's configuration: one [`SourceConfig`] per source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixerConfig {
    sources: [SourceConfig; 4],
}

impl MixerConfig {
    /// Every source at [`SourceConfig::default_for`].
    pub const DEFAULT: MixerConfig = MixerConfig {
        sources: [
            SourceConfig::default_for(Source::Interrupts),
            SourceConfig::default_for(Source::Rdrand),
            SourceConfig::default_for(Source::Rdseed),
            SourceConfig::default_for(Source::External),
        ],
    };

    /// `source`'s configuration.
    #[must_use]
    pub const fn source(&self, source: Source) -> SourceConfig {
        *source.of(&self.sources)
    }

    /// Replaces `source`'s configuration after validating it (nothing
    /// changes on error).
    ///
    /// # Errors
    /// As [`SourceConfig::validate`].
    pub fn set(&mut self, source: Source, cfg: SourceConfig) -> Result<(), Error> {
        cfg.validate(source)?;
        *source.of_mut(&mut self.sources) = cfg;
        Ok(())
    }

    /// Validates every source.
    ///
    /// # Errors
    /// The first source's [`SourceConfig::validate`] error.
    pub fn validate(&self) -> Result<(), Error> {
        for s in Source::ALL {
            self.source(s).validate(s)?;
        }
        Ok(())
    }
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_completes_a_block_exactly_at_320_bits_and_restarts() {
        let rate = CreditRate::ratio(1, 3).units();
        let need = samples_to_block(0, rate);
        assert_eq!(need, (320 * UNITS_PER_BIT).div_ceil(rate));
        let (mut pending, mut credited) = (0, 0);
        assert!(!credit_samples(&mut pending, &mut credited, need - 1, rate));
        assert_eq!(pending, (need - 1) * rate);
        assert_eq!(samples_to_block(pending, rate), 1);
        assert!(credit_samples(&mut pending, &mut credited, 1, rate));
        assert_eq!(pending, 0, "nothing carries over");
        assert_eq!(credited, need * rate, "the source keeps its whole credit");
        let mut forfeited = 0;
        assert!(!credit_samples(&mut pending, &mut credited, 5, rate));
        forfeit(&mut pending, &mut forfeited);
        assert_eq!((pending, forfeited), (0, 5 * rate));
        assert_eq!(samples_to_block(0, 0), u64::MAX);
        assert!(!credit_samples(&mut pending, &mut credited, u64::MAX, 0));
    }
}
