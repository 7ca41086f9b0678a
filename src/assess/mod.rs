//! SP 800-90B min-entropy assessment made by the crate itself: the section
//! 6.3 non-IID estimators, ported from NIST's `SP800-90B_EntropyAssessment`
//! tool (the version the `sp800-90b` 0.1.1 binding carries), so that an
//! entropy source can be assessed on the machine where it runs.
//!
//! Contract:
//! - Each estimator takes symbols and returns the min-entropy per symbol
//!   that SP 800-90B assigns them, computed as NIST's tool computes it
//!   (same constants, same search loops, same tie rules), in `f64` where
//!   the tool uses `long double` in places; the tests hold every estimate
//!   to within 1e-6 of the tool's on fixed data (`tests/assess_reference.rs`).
//! - Symbols are bytes. [`most_common`], the t-tuple/LRS pair and the
//!   prediction estimates take any alphabet (values below `k`); collision,
//!   Markov and compression take binary symbols (0 and 1) only, as the
//!   standard says. Bad input (too few symbols, a symbol outside the
//!   alphabet) is an [`Error::InvalidValue`] naming `samples` or `symbol`;
//!   nothing panics.
//! - Memory: [`most_common`], [`collision`], [`markov`], [`compression`],
//!   [`multi_mcw`] and [`prediction_estimate`] need no allocation and are
//!   always built (`no_std`, a few KiB of stack). The suffix array of the
//!   t-tuple/LRS estimates (about 12 bytes per symbol), the lag rings and
//!   the multi-MMC/LZ78Y dictionaries (bounded: 100,000 entries per depth,
//!   65,536 in all, as the standard caps them) live on the heap, behind the
//!   feature `alloc` (which `std` turns on), together with `assess`, the
//!   whole assessment of 3.1.3 (`H_original`, `H_bitstring`, their
//!   minimum).
//! - [`recommended_credit`] turns an assessment into a credit (half the
//!   min-entropy, capped), and [`interrupts_config`] into the interrupt
//!   source's configuration whose health-test cutoffs assume exactly the
//!   credited min-entropy.
//! - `restart_test` is the restart test of 3.1.4 (behind `alloc`): the
//!   sanity check with the standard's own cutoff (not the tool's
//!   simulated one) and the estimates of the row and column data sets.

mod basic;
mod credit;
mod predict;
#[cfg(feature = "alloc")]
mod restart;
#[cfg(feature = "alloc")]
mod tuple;

pub use basic::{collision, compression, markov, most_common};
pub use credit::{AssessedCredit, interrupts_config, recommended_credit};
#[cfg(feature = "alloc")]
pub use predict::{lag, lz78y, multi_mmc};
pub use predict::{multi_mcw, prediction_estimate};
#[cfg(feature = "alloc")]
pub use restart::{
    RESTART_SAMPLES, RESTARTS, RestartFailure, RestartReport, restart_test, sanity_cutoff,
};
#[cfg(feature = "alloc")]
pub use tuple::t_tuple_lrs;

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::error::Error;

/// The upper-bound quantile SP 800-90B uses (`Z_(1 - 0.005)`), as NIST's
/// tool spells it.
#[allow(clippy::excessive_precision)] // the tool's literal, digit for digit
pub const ZALPHA: f64 = 2.575_829_303_548_900_8;

/// The number of samples SP 800-90B asks for (3.1.1): one million.
pub const RECOMMENDED_SAMPLES: usize = 1_000_000;

/// A count as `f64` (exact below 2^53, which every count here is).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn count(n: u64) -> f64 {
    n as f64
}

/// `Err` naming `param` when `len < min`.
fn need(param: &'static str, len: usize, min: usize) -> Result<(), Error> {
    if len < min {
        return Err(Error::InvalidValue {
            param,
            value: len as u64,
            min: min as u64,
            max: u64::MAX,
        });
    }
    Ok(())
}

/// `Err` naming `symbol` for the first value `>= k`.
fn check_alphabet(symbols: &[u8], k: u16) -> Result<(), Error> {
    if !(2..=256).contains(&k) {
        return Err(Error::InvalidValue {
            param: "alphabet",
            value: u64::from(k),
            min: 2,
            max: 256,
        });
    }
    match symbols.iter().find(|&&s| u16::from(s) >= k) {
        Some(&s) => Err(Error::InvalidValue {
            param: "symbol",
            value: u64::from(s),
            min: 0,
            max: u64::from(k) - 1,
        }),
        None => Ok(()),
    }
}

/// `Err` naming `symbol` for the first value above 1.
fn check_binary(bits: &[u8]) -> Result<(), Error> {
    check_alphabet(bits, 2)
}

/// NIST's `relEpsilonEqual`: relative closeness, else an absolute one for
/// tiny values, else at most `max_ulp` representable values apart.
fn relative_epsilon_equal(a: f64, b: f64, max_abs: f64, max_rel: f64, max_ulp: u64) -> bool {
    if a.is_nan() || b.is_nan() {
        return false;
    }
    #[allow(clippy::float_cmp)] // exact equality first, as the tool does
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    if a.abs() > b.abs() {
        core::mem::swap(&mut a, &mut b);
    }
    let (abs_a, abs_b) = (a.abs(), b.abs());
    let diff = (b - a).abs();
    if abs_a < f64::MIN_POSITIVE
        || diff < f64::MIN_POSITIVE
        || diff.is_infinite()
        || abs_b * max_rel < f64::MIN_POSITIVE
    {
        return diff <= max_abs;
    }
    if diff <= abs_b * max_rel {
        return true;
    }
    if a.is_sign_negative() != b.is_sign_negative() {
        return false;
    }
    abs_b.to_bits().wrapping_sub(abs_a.to_bits()) <= max_ulp
}

/// The estimates of one data set (the symbols as given, or their bits).
/// `None`: the estimate was not run (collision, Markov and compression on a
/// non-binary alphabet) or does not apply (t-tuple with no string seen 35
/// times, LRS with no longer repeat, too few samples).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimates {
    /// 6.3.1 most common value.
    pub most_common: Option<f64>,
    /// 6.3.2 collision (binary only).
    pub collision: Option<f64>,
    /// 6.3.3 Markov (binary only).
    pub markov: Option<f64>,
    /// 6.3.4 compression (binary only).
    pub compression: Option<f64>,
    /// 6.3.5 t-tuple.
    pub t_tuple: Option<f64>,
    /// 6.3.6 longest repeated substring.
    pub lrs: Option<f64>,
    /// 6.3.7 multi most common in window.
    pub multi_mcw: Option<f64>,
    /// 6.3.8 lag prediction.
    pub lag: Option<f64>,
    /// 6.3.9 multi Markov model with counting.
    pub multi_mmc: Option<f64>,
    /// 6.3.10 LZ78Y.
    pub lz78y: Option<f64>,
}

impl Estimates {
    /// The estimates as `(name, value)` pairs, in the standard's order.
    #[must_use]
    pub fn named(&self) -> [(&'static str, Option<f64>); 10] {
        [
            ("most common value", self.most_common),
            ("collision", self.collision),
            ("Markov", self.markov),
            ("compression", self.compression),
            ("t-tuple", self.t_tuple),
            ("LRS", self.lrs),
            ("multi-MCW prediction", self.multi_mcw),
            ("lag prediction", self.lag),
            ("multi-MMC prediction", self.multi_mmc),
            ("LZ78Y prediction", self.lz78y),
        ]
    }

    /// The smallest estimate, capped at `cap` (the symbol width).
    #[must_use]
    pub fn min(&self, cap: f64) -> f64 {
        self.named()
            .iter()
            .filter_map(|&(_, v)| v)
            .fold(cap, f64::min)
    }
}

/// A full SP 800-90B 3.1.3 non-IID assessment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assessment {
    /// Bits per sample as assessed.
    pub bits_per_symbol: u32,
    /// Distinct symbols seen.
    pub alphabet: u16,
    /// The estimates on the samples (mapped down to `0..alphabet`).
    pub original: Estimates,
    /// The estimates on the samples' bits, most significant first (`None`
    /// when the samples take two values or fewer: NIST's tool then skips
    /// them too).
    pub bitstring: Option<Estimates>,
    /// `H_original`: the smallest of `original`, at most `bits_per_symbol`.
    pub h_original: f64,
    /// `H_bitstring`: the smallest of `bitstring`, at most 1.
    pub h_bitstring: Option<f64>,
    /// The assessed min-entropy per sample:
    /// `min(H_original, bits_per_symbol * H_bitstring)`; 0 when every
    /// sample has the same value.
    pub min_entropy: f64,
}

/// Runs every estimator that applies to `symbols` (any alphabet; binary
/// ones for collision, Markov and compression).
#[cfg(feature = "alloc")]
fn estimate_all(symbols: &[u8], k: u16) -> Estimates {
    let binary = k == 2;
    let (t_tuple, lrs) = t_tuple_lrs(symbols).unwrap_or((None, None));
    Estimates {
        most_common: most_common(symbols).ok(),
        collision: binary.then(|| collision(symbols).ok()).flatten(),
        markov: binary.then(|| markov(symbols).ok()).flatten(),
        compression: binary.then(|| compression(symbols).ok()).flatten(),
        t_tuple,
        lrs,
        multi_mcw: multi_mcw(symbols, k).ok(),
        lag: lag(symbols, k).ok(),
        multi_mmc: multi_mmc(symbols, k).ok(),
        lz78y: lz78y(symbols, k).ok(),
    }
}

/// The SP 800-90B 3.1.3 non-IID assessment of `samples`, each the low
/// `bits_per_symbol` bits of a noise-source output, as NIST's
/// `ea_non_iid -i` (initial entropy, all bits) reports it.
///
/// Samples with one value only have no entropy: the result is 0.
///
/// # Errors
/// [`Error::InvalidValue`] naming `bits-per-symbol` (outside `1..=8`),
/// `symbol` (a sample wider than `bits_per_symbol`) or `samples` (fewer
/// than 4096, the least the multi-MCW estimate runs on).
#[cfg(feature = "alloc")]
pub fn assess(samples: &[u8], bits_per_symbol: u32) -> Result<Assessment, Error> {
    if !(1..=8).contains(&bits_per_symbol) {
        return Err(Error::InvalidValue {
            param: "bits-per-symbol",
            value: u64::from(bits_per_symbol),
            min: 1,
            max: 8,
        });
    }
    let limit = 1u16 << bits_per_symbol;
    if let Some(&s) = samples.iter().find(|&&s| u16::from(s) >= limit) {
        return Err(Error::InvalidValue {
            param: "symbol",
            value: u64::from(s),
            min: 0,
            max: u64::from(limit) - 1,
        });
    }
    need("samples", samples.len(), 4096)?;
    // Map the values seen down to 0..alphabet, keeping their order.
    let mut map = [0u8; 256];
    let mut seen = [false; 256];
    samples.iter().for_each(|&s| seen[usize::from(s)] = true);
    let mut alphabet = 0u16;
    for (v, slot) in seen.iter().zip(map.iter_mut()) {
        if *v {
            *slot = u8::try_from(alphabet).unwrap_or(u8::MAX);
            alphabet += 1;
        }
    }
    let width = count(u64::from(bits_per_symbol));
    if alphabet < 2 {
        return Ok(Assessment {
            bits_per_symbol,
            alphabet,
            original: Estimates::default(),
            bitstring: None,
            h_original: 0.0,
            h_bitstring: None,
            min_entropy: 0.0,
        });
    }
    let mapped: Vec<u8> = samples.iter().map(|&s| map[usize::from(s)]).collect();
    let original = estimate_all(&mapped, alphabet);
    drop(mapped);
    let h_original = original.min(width);
    let (bitstring, h_bitstring) = if bits_per_symbol > 1 && alphabet > 2 {
        let mut bits = Vec::with_capacity(samples.len() * bits_per_symbol as usize);
        for &s in samples {
            for j in (0..bits_per_symbol).rev() {
                bits.push((s >> j) & 1);
            }
        }
        let est = estimate_all(&bits, 2);
        (Some(est), Some(est.min(1.0)))
    } else {
        (None, None)
    };
    let min_entropy = h_bitstring.map_or(h_original, |hb| h_original.min(width * hb));
    Ok(Assessment {
        bits_per_symbol,
        alphabet,
        original,
        bitstring,
        h_original,
        h_bitstring,
        min_entropy,
    })
}
