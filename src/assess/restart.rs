//! The SP 800-90B restart test (section 3.1.4): it checks that a noise
//! source's initial entropy estimate `H_I` also holds across restarts.
//!
//! Contract:
//! - Input: the restart matrix of 3.1.4.1, exactly [`RESTARTS`] rows
//!   (restarts) of [`RESTART_SAMPLES`] samples each, row-major, each sample
//!   the low `bits_per_symbol` bits of a noise-source output; `H_I` in
//!   `0..=bits_per_symbol`. Anything else is an [`Error::InvalidValue`]
//!   naming `restarts`, `restart-samples`, `samples`, `bits-per-symbol`, `symbol` or
//!   `initial-entropy`, and nothing runs.
//! - Sanity check (3.1.4.3), as the standard defines it: `alpha =
//!   0.01 / (k * 2000)` with `k = 2^bits_per_symbol` (the number of possible
//!   sample values, the standard's `k`), `p = 2^-H_I`, cutoff `U = 1000 p +
//!   Z_(1-alpha) * sqrt(1000 p (1 - p))`; the test fails when the most
//!   common value of some row or column occurs more than `U` times. NIST's
//!   tool (`ea_restart`) instead takes `alpha = 1 - 0.99^(1/2000)` and a
//!   cutoff found by simulation, so the two can disagree near the cutoff:
//!   this module does not claim agreement with the tool there.
//! - Validation (3.1.4.2), when the sanity check passes: the 6.3 non-IID
//!   estimators run on the row data set (the rows, concatenated) and the
//!   column data set (the columns, concatenated), symbols mapped to the
//!   values seen as NIST's tool maps them, no bit-string pass (the tool runs
//!   none here either); `H_r` and `H_c` are their minimums, each at most
//!   `bits_per_symbol`. The test fails when `min(H_r, H_c) < H_I / 2`;
//!   otherwise the restart test supports `min(H_r, H_c, H_I)`. These
//!   estimates agree with the tool's on fixed data
//!   (`tests/assess_restart.rs`).
//! - A failed test supports no entropy (0). Memory: two copies of the
//!   matrix (1 MB each) plus what the estimators need; behind `alloc`.

use alloc::vec::Vec;

use super::{Estimates, count, estimate_all};
use crate::error::Error;

/// Restarts (rows of the restart matrix) SP 800-90B asks for: 1000.
pub const RESTARTS: usize = 1000;

/// Samples per restart (columns of the restart matrix): 1000.
pub const RESTART_SAMPLES: usize = 1000;

/// The check a restart test failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RestartFailure {
    /// 3.1.4.3: a value occurred `count` times in one row or column,
    /// more than the `cutoff` that `H_I` allows.
    Sanity {
        /// `true`: a column (one sample position across restarts);
        /// `false`: a row (one restart).
        column: bool,
        /// The row or column (0-based): the first with the largest count.
        index: usize,
        /// The most common value's count there.
        count: u32,
        /// The cutoff `U` it exceeded.
        cutoff: f64,
    },
    /// 3.1.4.2: `min(H_r, H_c)` is below `H_I / 2`.
    Validation,
}

/// The outcome of [`restart_test`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestartReport {
    /// `H_I`, as given.
    pub initial_entropy: f64,
    /// The sanity check's cutoff `U` (counts above it fail).
    pub cutoff: f64,
    /// The largest most-common-value count over all rows and columns.
    pub max_count: u32,
    /// The estimates of the row data set (`None`: not run, the sanity
    /// check failed).
    pub rows: Option<Estimates>,
    /// The estimates of the column data set (`None`: not run).
    pub columns: Option<Estimates>,
    /// `H_r`: the smallest row estimate, at most `bits_per_symbol`.
    pub h_rows: Option<f64>,
    /// `H_c`: the smallest column estimate, at most `bits_per_symbol`.
    pub h_columns: Option<f64>,
    /// `None`: the test passed; else the check that failed.
    pub failure: Option<RestartFailure>,
    /// The min-entropy per sample the restart test supports:
    /// `min(H_r, H_c, H_I)` when it passed, 0 when it failed.
    pub supported: f64,
}

impl RestartReport {
    /// Whether both the sanity check and the validation passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// `Z_(1-alpha)`, the standard normal upper quantile, for `0 < alpha < 0.5`:
/// Acklam's rational approximation refined by one Halley step on `erfc`
/// (relative error about 1e-15).
fn z_upper(alpha: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    // The lower quantile x of p = alpha (negative); Z = -x.
    let p = alpha;
    let x = if p < 0.024_25 {
        let q = libm::sqrt(-2.0 * libm::log(p));
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step: e = Phi(x) - p.
    let e = 0.5 * libm::erfc(-x / core::f64::consts::SQRT_2) - p;
    let u = e * libm::sqrt(2.0 * core::f64::consts::PI) * libm::exp(x * x / 2.0);
    let x = x - u / (1.0 + x * u / 2.0);
    -x
}

/// The sanity check's cutoff `U` of 3.1.4.3 for `H_I` and `k` possible
/// sample values: `1000 p + Z_(1-alpha) sqrt(1000 p (1 - p))`, with
/// `p = 2^-H_I` and `alpha = 0.01 / (k * 2000)`.
#[must_use]
pub fn sanity_cutoff(initial_entropy: f64, k: u32) -> f64 {
    let alpha = 0.01 / (count(u64::from(k)) * 2000.0);
    let p = libm::exp2(-initial_entropy);
    let n = count(RESTART_SAMPLES as u64);
    n * p + z_upper(alpha) * libm::sqrt(n * p * (1.0 - p))
}

/// The largest most-common-value count among `RESTARTS` consecutive
/// groups of `RESTART_SAMPLES` samples of `data`: (group, count).
fn max_group_count(data: &[u8]) -> (usize, u32) {
    let mut best = (0usize, 0u32);
    for (i, group) in data.chunks_exact(RESTART_SAMPLES).enumerate() {
        let mut counts = [0u32; 256];
        group.iter().for_each(|&s| counts[usize::from(s)] += 1);
        let most = counts.iter().copied().max().unwrap_or(0);
        if most > best.1 {
            best = (i, most);
        }
    }
    best
}

/// The SP 800-90B 3.1.4 restart test of `matrix` (`restarts` rows of
/// `samples_per_restart` samples, row-major; both must be 1000) against the
/// initial entropy estimate `initial_entropy` (`H_I`, bits per sample).
///
/// A failed test is an `Ok` report with [`RestartReport::failure`] set and
/// nothing supported; `Err` is bad input only.
///
/// # Errors
/// [`Error::InvalidValue`] naming `restarts` or `restart-samples` (not
/// 1000), `samples` (a matrix whose length is not 1,000,000), `bits-per-symbol`
/// (outside `1..=8`), `symbol` (a sample wider than `bits_per_symbol`) or
/// `initial-entropy` (not a number in `0..=bits_per_symbol`).
pub fn restart_test(
    matrix: &[u8],
    restarts: usize,
    samples_per_restart: usize,
    bits_per_symbol: u32,
    initial_entropy: f64,
) -> Result<RestartReport, Error> {
    let exact = |param: &'static str, value: usize, want: usize| {
        if value == want {
            Ok(())
        } else {
            Err(Error::InvalidValue {
                param,
                value: value as u64,
                min: want as u64,
                max: want as u64,
            })
        }
    };
    exact("restarts", restarts, RESTARTS)?;
    exact("restart-samples", samples_per_restart, RESTART_SAMPLES)?;
    exact("samples", matrix.len(), RESTARTS * RESTART_SAMPLES)?;
    if !(1..=8).contains(&bits_per_symbol) {
        return Err(Error::InvalidValue {
            param: "bits-per-symbol",
            value: u64::from(bits_per_symbol),
            min: 1,
            max: 8,
        });
    }
    let width = count(u64::from(bits_per_symbol));
    if !(0.0..=width).contains(&initial_entropy) {
        // NaN and negatives saturate to 0, too-large values to their floor.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = initial_entropy as u64;
        return Err(Error::InvalidValue {
            param: "initial-entropy",
            value,
            min: 0,
            max: u64::from(bits_per_symbol),
        });
    }
    let limit = 1u16 << bits_per_symbol;
    if let Some(&s) = matrix.iter().find(|&&s| u16::from(s) >= limit) {
        return Err(Error::InvalidValue {
            param: "symbol",
            value: u64::from(s),
            min: 0,
            max: u64::from(limit) - 1,
        });
    }

    // 3.1.4.1: the row data set is the matrix as given; the column data
    // set is its transpose, read row by row.
    let rows = matrix;
    let mut columns = Vec::with_capacity(matrix.len());
    for j in 0..RESTART_SAMPLES {
        columns.extend(matrix.iter().skip(j).step_by(RESTART_SAMPLES));
    }

    // 3.1.4.3: the sanity check.
    let cutoff = sanity_cutoff(initial_entropy, u32::from(limit));
    let (row_index, row_count) = max_group_count(rows);
    let (col_index, col_count) = max_group_count(&columns);
    let max_count = row_count.max(col_count);
    let mut report = RestartReport {
        initial_entropy,
        cutoff,
        max_count,
        rows: None,
        columns: None,
        h_rows: None,
        h_columns: None,
        failure: None,
        supported: 0.0,
    };
    if f64::from(max_count) > cutoff {
        let (column, index) = if col_count > row_count {
            (true, col_index)
        } else {
            (false, row_index)
        };
        report.failure = Some(RestartFailure::Sanity {
            column,
            index,
            count: max_count,
            cutoff,
        });
        return Ok(report);
    }

    // 3.1.4.2: the non-IID estimates of both data sets, on the symbols
    // mapped to 0..alphabet (the values seen, in order), as the tool does.
    let mut map = [0u8; 256];
    let mut seen = [false; 256];
    matrix.iter().for_each(|&s| seen[usize::from(s)] = true);
    let mut alphabet = 0u16;
    for (v, slot) in seen.iter().zip(map.iter_mut()) {
        if *v {
            *slot = u8::try_from(alphabet).unwrap_or(u8::MAX);
            alphabet += 1;
        }
    }
    let (row_est, col_est) = if alphabet < 2 {
        // One value everywhere: no entropy (the sanity check catches this
        // for any H_I > 0; H_I = 0 gets here).
        (Estimates::default(), Estimates::default())
    } else {
        let mapped_rows: Vec<u8> = rows.iter().map(|&s| map[usize::from(s)]).collect();
        let r = estimate_all(&mapped_rows, alphabet);
        drop(mapped_rows);
        columns.iter_mut().for_each(|s| *s = map[usize::from(*s)]);
        (r, estimate_all(&columns, alphabet))
    };
    let (h_rows, h_columns) = if alphabet < 2 {
        (0.0, 0.0)
    } else {
        (row_est.min(width), col_est.min(width))
    };
    report.rows = Some(row_est);
    report.columns = Some(col_est);
    report.h_rows = Some(h_rows);
    report.h_columns = Some(h_columns);
    let h_rc = h_rows.min(h_columns);
    if h_rc < initial_entropy / 2.0 {
        report.failure = Some(RestartFailure::Validation);
    } else {
        report.supported = h_rc.min(initial_entropy);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_matches_known_quantiles() {
        // Z_(1-0.005) as the module's ZALPHA spells it, and Z_(1-1e-8).
        assert!((z_upper(0.005) - super::super::ZALPHA).abs() < 1e-12);
        assert!((z_upper(1e-8) - 5.612_001_244_174_789).abs() < 1e-9);
        assert!((z_upper(0.05) - 1.644_853_626_951_472_2).abs() < 1e-12);
    }
}
