//! Entropy credit in exact fixed point, per-source rates, their caps and
//! the per-source configuration.

use core::fmt;

use crate::error::Error;
use crate::health::{HealthConfig, MinEntropy};
use crate::source::Source;

/// Credit units per bit: credit is counted in `1/65536` bit, exactly.
pub const UNITS_PER_BIT: u64 = 1 << 16;

/// Credit needed before a block is emitted: 256 + 64 = 320 bits.
pub const BLOCK_CREDIT: Credit = Credit(320 * UNITS_PER_BIT);

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
