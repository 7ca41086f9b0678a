//! From an assessment to a credit: the rule `entropyd assess` applies and
//! the interrupt source's configuration that follows from it.

use crate::error::Error;
use crate::health::{HealthConfig, MinEntropy};
use crate::mixer::{CreditRate, SourceConfig, UNITS_PER_BIT};
use crate::source::Source;

/// The credit per sample to recommend for a source assessed at
/// `min_entropy` bits per sample: half of it, never above `cap`, rounded
/// down to the `1/65536`-bit unit. A non-finite or non-positive assessment
/// gives [`CreditRate::ZERO`].
#[must_use]
pub fn recommended_credit(min_entropy: f64, cap: CreditRate) -> CreditRate {
    if !min_entropy.is_finite() || min_entropy <= 0.0 {
        return CreditRate::ZERO;
    }
    let half_units = libm::floor(min_entropy / 2.0 * super::count(UNITS_PER_BIT));
    // Clamp in f64 first: the conversion below is then exact and in range.
    let cap_units = super::count(cap.units());
    let units = if half_units >= cap_units {
        cap.units()
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // 0 < half_units < cap_units <= u64::MAX, already an integer.
        let u = half_units as u64;
        u
    };
    CreditRate::from_units(units)
}

/// The interrupt source's configuration for `credit` per sample: that
/// credit, and health tests whose cutoffs assume exactly the credited
/// min-entropy (`H` = the credit rounded up to an eighth of a bit, at least
/// one eighth). A zero credit keeps the default health parameters.
///
/// # Errors
/// [`Error::InvalidValue`] (`interrupts-credit-units`) when `credit` is
/// above the interrupt source's cap of 1 bit per sample.
pub fn interrupts_config(credit: CreditRate) -> Result<SourceConfig, Error> {
    let default = SourceConfig::default_for(Source::Interrupts);
    let cfg = if credit == CreditRate::ZERO {
        SourceConfig {
            credit,
            health: default.health,
        }
    } else {
        let eighths = credit.units().div_ceil(UNITS_PER_BIT / 8).max(1);
        let eighths = u32::try_from(eighths).unwrap_or(u32::MAX);
        SourceConfig {
            credit,
            health: HealthConfig::with_default_alpha(MinEntropy::saturating_from_eighths(eighths)),
        }
    };
    cfg.validate(Source::Interrupts)?;
    Ok(cfg)
}

/// The interrupt-source credit an assessment recommended, as the state
/// directory keeps it (`entropyd assess` writes it; `run` and `generate`
/// use it; `get` shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssessedCredit {
    /// The credit per sample in force.
    pub credit: CreditRate,
    /// The assessed min-entropy per sample, in millionths of a bit
    /// (rounded down).
    pub min_entropy_micro_bits: u64,
    /// How many samples were assessed.
    pub samples: u64,
}

/// Half of `micro` millionths of a bit, in credit units, rounded down:
/// `micro * 65536 / 2 / 1e6` (the most a record may credit).
fn half_units(micro: u64) -> u64 {
    let half = u128::from(micro) * u128::from(UNITS_PER_BIT) / 2_000_000;
    u64::try_from(half).unwrap_or(u64::MAX)
}

/// Labels of the stored form, one line each.
const CREDIT_UNITS_LABEL: &str = "Credit Units Per Sample";
const MIN_ENTROPY_LABEL: &str = "Assessed Min-Entropy Micro-Bits Per Sample";
const SAMPLES_LABEL: &str = "Assessed Samples";

impl AssessedCredit {
    /// The record of an assessment at `min_entropy` bits per sample over
    /// `samples` samples, crediting [`recommended_credit`] with the
    /// interrupt source's cap (1 bit per sample).
    #[must_use]
    pub fn from_assessment(min_entropy: f64, samples: u64) -> AssessedCredit {
        let micro = if min_entropy.is_finite() && min_entropy > 0.0 {
            let m = libm::floor(min_entropy * 1e6).min(64e6);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // 0 < m <= 64e6, an integer.
            let m = m as u64;
            m
        } else {
            0
        };
        let credit = recommended_credit(min_entropy, CreditRate::max_for(Source::Interrupts));
        // The record must pass its own check (`parse_text`): at most half
        // the min-entropy as recorded, which is rounded down to a
        // millionth of a bit, so it can be up to 0.033 units below half of
        // the exact value (one assessment in about thirty: the stored
        // credit was then refused as corrupt at the next start).
        let units = credit.units().min(half_units(micro));
        AssessedCredit {
            credit: CreditRate::from_units(units),
            min_entropy_micro_bits: micro,
            samples,
        }
    }

    /// Writes the stored form: three `Label: integer` lines.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_text(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        writeln!(w, "{CREDIT_UNITS_LABEL}: {}", self.credit.units())?;
        writeln!(w, "{MIN_ENTROPY_LABEL}: {}", self.min_entropy_micro_bits)?;
        writeln!(w, "{SAMPLES_LABEL}: {}", self.samples)
    }

    /// Parses the stored form (lines in any order, each once). The credit
    /// must be within the interrupt source's cap and at most half the
    /// recorded min-entropy.
    ///
    /// # Errors
    /// [`Error::ConfigCorrupt`] for anything else.
    pub fn parse_text(text: &str) -> Result<AssessedCredit, Error> {
        let mut values = [None::<u64>; 3];
        for line in text.split_terminator('\n') {
            let (label, value) = line.split_once(": ").ok_or(Error::ConfigCorrupt)?;
            let slot = match label {
                CREDIT_UNITS_LABEL => values.get_mut(0),
                MIN_ENTROPY_LABEL => values.get_mut(1),
                SAMPLES_LABEL => values.get_mut(2),
                _ => None,
            }
            .ok_or(Error::ConfigCorrupt)?;
            if slot.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::ConfigCorrupt);
            }
            *slot = Some(value.parse().map_err(|_| Error::ConfigCorrupt)?);
        }
        if !text.ends_with('\n') {
            return Err(Error::ConfigCorrupt);
        }
        let [Some(units), Some(micro), Some(samples)] = values else {
            return Err(Error::ConfigCorrupt);
        };
        let cap = CreditRate::max_for(Source::Interrupts).units();
        if units > cap || units > half_units(micro) {
            return Err(Error::ConfigCorrupt);
        }
        Ok(AssessedCredit {
            credit: CreditRate::from_units(units),
            min_entropy_micro_bits: micro,
            samples,
        })
    }
}
