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
