//! SP 800-90B 6.3.1 to 6.3.4: most common value, collision, Markov and
//! compression estimates. No allocation; the last three take binary symbols.

use super::{ZALPHA, check_binary, count, relative_epsilon_equal};
use crate::error::Error;

/// 6.3.1 Most Common Value estimate of `symbols` (any alphabet).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 2 symbols.
pub fn most_common(symbols: &[u8]) -> Result<f64, Error> {
    let len = symbols.len();
    super::need("samples", len, 2)?;
    let mut counts = [0u64; 256];
    for &s in symbols {
        counts[usize::from(s)] = counts[usize::from(s)].saturating_add(1);
    }
    let mode = counts.iter().copied().max().unwrap_or(0);
    let n = count(len as u64);
    let pmax = count(mode) / n;
    let ubound = (pmax + ZALPHA * libm::sqrt(pmax * (1.0 - pmax) / (n - 1.0))).min(1.0);
    Ok(-libm::log2(ubound))
}

/// 6.3.2 Collision estimate of a binary sequence (symbols 0 and 1).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for a sequence too short to hold two
/// collisions, or (`symbol`) for a symbol above 1.
pub fn collision(bits: &[u8]) -> Result<f64, Error> {
    check_binary(bits)?;
    let len = bits.len();
    super::need("samples", len, 6)?;
    let mut i = 0usize;
    let mut v = 0u64;
    let mut s = 0.0f64;
    while i + 1 < len {
        let t: usize = if bits.get(i) == bits.get(i + 1) {
            2
        } else if i + 2 < len {
            3
        } else {
            break;
        };
        v += 1;
        s += count(t as u64) * count(t as u64);
        i += t;
    }
    let v = count(v);
    let x = count(i as u64) / v;
    let sigma = libm::sqrt((s - count(i as u64) * x) / (v - 1.0));
    let x = (x - ZALPHA * sigma / libm::sqrt(v)).max(2.0);
    // SP 800-90B step 7 reduces to X' = -2p^2 + 2p + 2 (root above 1/2).
    if x < 2.5 {
        let p = 0.5 + libm::sqrt(1.25 - 0.5 * x);
        Ok(-libm::log2(p))
    } else {
        Ok(1.0)
    }
}

/// 6.3.3 Markov estimate of a binary sequence (symbols 0 and 1).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 2 symbols, (`symbol`)
/// for a symbol above 1.
pub fn markov(bits: &[u8]) -> Result<f64, Error> {
    check_binary(bits)?;
    let len = bits.len();
    super::need("samples", len, 2)?;
    let (mut c0, mut c00, mut c10) = (0u64, 0u64, 0u64);
    for w in bits.windows(2) {
        if let [a, b] = *w {
            if a == 0 {
                c0 += 1;
                if b == 0 {
                    c00 += 1;
                }
            } else if b == 0 {
                c10 += 1;
            }
        }
    }
    let c1 = (len as u64 - 1) - c0;
    let (p00, p01) = if c0 > 0 {
        let p = count(c00) / count(c0);
        (p, 1.0 - p)
    } else {
        (0.0, 0.0)
    };
    let (p10, p11) = if c1 > 0 {
        let p = count(c10) / count(c1);
        (p, 1.0 - p)
    } else {
        (0.0, 0.0)
    };
    if bits.last() == Some(&0) {
        c0 += 1;
    }
    let p0 = count(c0) / count(len as u64);
    let p1 = 1.0 - p0;
    let lg = libm::log2;
    let mut h = 128.0f64;
    if p00 > 0.0 {
        h = h.min(-lg(p0) - 127.0 * lg(p00));
    }
    if p01 > 0.0 && p10 > 0.0 {
        h = h.min(-lg(p0) - 64.0 * lg(p01) - 63.0 * lg(p10));
    }
    if p01 > 0.0 && p11 > 0.0 {
        h = h.min(-lg(p0) - lg(p01) - 126.0 * lg(p11));
    }
    if p10 > 0.0 && p00 > 0.0 {
        h = h.min(-lg(p1) - lg(p10) - 126.0 * lg(p00));
    }
    if p10 > 0.0 && p01 > 0.0 {
        h = h.min(-lg(p1) - 64.0 * lg(p10) - 63.0 * lg(p01));
    }
    if p11 > 0.0 {
        h = h.min(-lg(p1) - 127.0 * lg(p11));
    }
    Ok((h / 128.0).min(1.0))
}

/// Kahan-compensated running sum.
#[derive(Clone, Copy, Default)]
struct Kahan {
    sum: f64,
    comp: f64,
}

impl Kahan {
    fn add(&mut self, x: f64) {
        let y = x - self.comp;
        let t = self.sum + y;
        self.comp = (t - self.sum) - y;
        self.sum = t;
    }
}

/// The compression estimate's `G` function (UL's recurrence, as NIST's
/// tool computes it).
fn g(z: f64, d: u64, num_blocks: u64) -> f64 {
    let v = num_blocks - d;
    let mut ai = Kahan::default();
    let mut first = Kahan::default();
    let bterm = 1.0 - z;
    let mut bi = bterm;
    for i in 2..=d {
        ai.add(libm::log2(count(i)) * bi);
        bi *= bterm;
    }
    let ad1 = ai.sum;
    let mut truncated = false;
    for i in (d + 1)..num_blocks {
        let a = libm::log2(count(i)) * bi;
        ai.add(a);
        let scaled = count(num_blocks - i) * a;
        if scaled > 0.0 {
            first.add(scaled);
        } else {
            truncated = true;
            break;
        }
        bi *= bterm;
    }
    first.add(count(num_blocks - d) * ad1);
    if !truncated {
        ai.add(libm::log2(count(num_blocks)) * bi);
    }
    1.0 / count(v) * z * (z * first.sum + (ai.sum - ad1))
}

fn com_exp(p: f64, alph: f64, d: u64, num_blocks: u64) -> f64 {
    let q = (1.0 - p) / (alph - 1.0);
    g(p, d, num_blocks) + (alph - 1.0) * g(q, d, num_blocks)
}

/// Bits per block of the compression estimate.
const COMPRESSION_B: usize = 6;
/// Dictionary-initialisation blocks of the compression estimate.
const COMPRESSION_D: u64 = 1000;
/// [`COMPRESSION_D`] as a length.
const COMPRESSION_D_LEN: usize = 1000;

/// 6.3.4 Compression estimate of a binary sequence (symbols 0 and 1).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 6 * 1001 bits,
/// (`symbol`) for a symbol above 1.
pub fn compression(bits: &[u8]) -> Result<f64, Error> {
    check_binary(bits)?;
    let b = COMPRESSION_B;
    let d = COMPRESSION_D;
    super::need("samples", bits.len(), b * (COMPRESSION_D_LEN + 1))?;
    let alph_size = 1usize << b;
    let alph = count(alph_size as u64);
    let num_blocks = (bits.len() / b) as u64;
    let mut dict = [0u64; 64];
    let mut x = Kahan::default();
    let mut sigma = Kahan::default();
    for (i, chunk) in bits.chunks_exact(b).enumerate() {
        let block = chunk
            .iter()
            .fold(0usize, |acc, &bit| (acc << 1) | usize::from(bit & 1));
        let i = i as u64;
        if i >= d {
            let last = dict.get(block).copied().unwrap_or(0);
            let l = libm::log2(count(i + 1 - last));
            x.add(l);
            sigma.add(l * l);
        }
        if let Some(slot) = dict.get_mut(block) {
            *slot = i + 1;
        }
    }
    let v = count(num_blocks - d);
    let mean = x.sum / v;
    let sigma = 0.5907 * libm::sqrt(sigma.sum / (v - 1.0) - mean * mean);
    let target = mean - ZALPHA * sigma / libm::sqrt(v);
    let ldomain = 1.0 / alph;
    let p = if com_exp(ldomain, alph, d, num_blocks) > target {
        let hdomain = 1.0;
        bisect(ldomain, hdomain, target, ldomain, |p| {
            com_exp(p, alph, d, num_blocks)
        })
    } else {
        -1.0
    };
    if p > ldomain {
        Ok(-libm::log2(p) / count(b as u64))
    } else {
        Ok(1.0)
    }
}

/// True when `x` lies in the closed interval between `a` and `b`.
pub(super) fn in_closed(x: f64, a: f64, b: f64) -> bool {
    if a > b {
        x >= b && x <= a
    } else {
        x >= a && x <= b
    }
}

/// True when `x` lies in the open interval between `a` and `b`.
pub(super) fn in_open(x: f64, a: f64, b: f64) -> bool {
    if a > b {
        x > b && x < a
    } else {
        x > a && x < b
    }
}

/// Iteration limit of the bisections (NIST's `ITERMAX`).
const ITERMAX: u32 = 1076;

/// NIST's bisection for `f(p) = target` over `[ldomain, 1]` with `f`
/// decreasing; `on_domain_failure` is what a broken invariant returns (the
/// low end for the compression estimate: full entropy; 1 for `P_local`).
pub(super) fn bisect(
    ldomain: f64,
    hdomain: f64,
    target: f64,
    on_domain_failure: f64,
    f: impl Fn(f64) -> f64,
) -> f64 {
    let (mut lbound, mut hbound) = (ldomain, hdomain);
    let (mut lvalue, mut hvalue) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut p = (lbound + hbound) / 2.0;
    let mut pval = f(p);
    for _ in 0..ITERMAX {
        if relative_epsilon_equal(pval, target, f64::MIN_POSITIVE, f64::EPSILON, 4) {
            break;
        }
        if target < pval {
            lbound = p;
            lvalue = pval;
        } else {
            hbound = p;
            hvalue = pval;
        }
        if lbound >= hbound {
            p = lbound.max(hbound).min(hdomain);
            break;
        }
        if !(in_closed(lbound, ldomain, hdomain) && in_closed(hbound, ldomain, hdomain)) {
            p = on_domain_failure;
            break;
        }
        if !in_closed(target, lvalue, hvalue) {
            p = on_domain_failure;
            break;
        }
        let last = p;
        p = (lbound + hbound) / 2.0;
        if !in_open(p, lbound, hbound) {
            p = hbound;
            break;
        }
        #[allow(clippy::float_cmp)] // NIST's cycle check: exact repetition.
        if last == p {
            p = hbound;
            break;
        }
        pval = f(p);
        if !in_closed(pval, lvalue, hvalue) {
            p = hbound;
            break;
        }
    }
    p
}
