//! The low-watermark refill state machine, kept apart from any storage so it
//! can be tested alone.
//!
//! # Contract
//!
//! - *Below* means `len * 100 < percent * capacity` (exact integer
//!   arithmetic, no rounding): with 20 % of 10 blocks, 1 block is below and
//!   2 are not.
//! - Not refilling → refilling as soon as an update finds the level below.
//! - Refilling → not refilling only when an update finds the cache full
//!   (`len >= capacity`). In between it stays refilling whatever the level:
//!   hysteresis, so no flapping at the boundary.
//! - A watermark or size change applies at once: call [`LowWatermark::update`]
//!   with the new figures (the [`MemoryCache`](super::MemoryCache) does).
//! - 0 % never wants a refill; 100 % wants one whenever the cache is not
//!   full; a capacity of 0 never wants one.

use crate::error::Error;

/// The parameter name used in errors.
const PARAM: &str = "memory-cache-low-watermark";

/// The low-watermark state: the threshold percent and whether a refill is
/// wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowWatermark {
    percent: u8,
    refilling: bool,
}

impl LowWatermark {
    /// Largest accepted percent.
    pub const MAX_PERCENT: u8 = 100;

    /// A watermark at `percent` of capacity, not yet refilling (call
    /// [`update`](Self::update) with the current level).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] if `percent > 100`.
    pub const fn new(percent: u8) -> Result<Self, Error> {
        if percent > Self::MAX_PERCENT {
            return Err(Self::invalid(percent));
        }
        Ok(Self {
            percent,
            refilling: false,
        })
    }

    const fn invalid(percent: u8) -> Error {
        Error::InvalidValue {
            param: PARAM,
            value: percent as u64,
            min: 0,
            max: Self::MAX_PERCENT as u64,
        }
    }

    /// The threshold in percent of capacity.
    #[must_use]
    pub const fn percent(&self) -> u8 {
        self.percent
    }

    /// `true` while a refill is wanted.
    #[must_use]
    pub const fn refill_wanted(&self) -> bool {
        self.refilling
    }

    /// Whether `len` blocks out of `capacity` are below the watermark.
    #[must_use]
    pub fn is_below(&self, len: usize, capacity: usize) -> bool {
        let len = u128::from(u64::try_from(len).unwrap_or(u64::MAX));
        let capacity = u128::from(u64::try_from(capacity).unwrap_or(u64::MAX));
        // Cannot overflow: both products are below 2^64 * 101.
        len.saturating_mul(100) < u128::from(self.percent).saturating_mul(capacity)
    }

    /// Applies the current level; returns whether a refill is wanted.
    pub fn update(&mut self, len: usize, capacity: usize) -> bool {
        if self.refilling {
            if len >= capacity {
                self.refilling = false;
            }
        } else if self.is_below(len, capacity) {
            self.refilling = true;
        }
        self.refilling
    }

    /// Changes the threshold and applies it at once to the current level;
    /// returns whether a refill is wanted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] if `percent > 100` (nothing changes).
    pub fn set_percent(&mut self, percent: u8, len: usize, capacity: usize) -> Result<bool, Error> {
        if percent > Self::MAX_PERCENT {
            return Err(Self::invalid(percent));
        }
        self.percent = percent;
        Ok(self.update(len, capacity))
    }

    /// Blocks needed to fill the cache while refilling, else 0.
    #[must_use]
    pub fn blocks_wanted(&self, len: usize, capacity: usize) -> usize {
        if self.refilling {
            capacity.saturating_sub(len)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_exact() {
        let w = LowWatermark::new(20).unwrap();
        // 20 % of 10 is 2: 1 is below, 2 is not.
        assert!(w.is_below(1, 10));
        assert!(!w.is_below(2, 10));
        // 20 % of 7 is 1.4: 1 is below, 2 is not.
        assert!(w.is_below(1, 7));
        assert!(!w.is_below(2, 7));
        assert!(!w.is_below(0, 0));
        assert!(w.is_below(usize::MAX / 5 - 1, usize::MAX));
    }

    #[test]
    fn hysteresis_holds_until_full() {
        let mut w = LowWatermark::new(50).unwrap();
        assert!(!w.update(5, 10));
        assert!(w.update(4, 10));
        assert!(w.update(5, 10), "must not flap at the boundary");
        assert!(w.update(9, 10));
        assert_eq!(w.blocks_wanted(9, 10), 1);
        assert!(!w.update(10, 10));
        assert!(!w.update(5, 10));
        assert_eq!(w.blocks_wanted(5, 10), 0);
    }

    #[test]
    fn percent_over_100_is_rejected() {
        assert_eq!(
            LowWatermark::new(101).err(),
            Some(Error::InvalidValue {
                param: "memory-cache-low-watermark",
                value: 101,
                min: 0,
                max: 100
            })
        );
        let mut w = LowWatermark::new(10).unwrap();
        assert!(w.set_percent(101, 0, 10).is_err());
        assert_eq!(w.percent(), 10);
        assert!(!w.refill_wanted(), "a rejected change changes nothing");
    }
}
