//! SP 800-90B section 4.4 continuous health tests, one [`HealthTest`] per
//! source: the Repetition Count Test (RCT) and the Adaptive Proportion Test
//! (APT), a start-up test, and the quarantine / disable state machine.
//!
//! Contract:
//! - Cutoffs follow SP 800-90B exactly: RCT `C = 1 + ceil(-log2(alpha) / H)`;
//!   APT `C = 1 + CRITBINOM(W, 2^-H, 1 - alpha)` with `W = 512` (1024 for
//!   binary samples). `H` is the assessed min-entropy per raw sample in
//!   eighths of a bit ([`MinEntropy`]), `alpha = 2^-alpha_exp`. A mixer source
//!   always uses `alpha_exp >= 30` ([`HealthConfig::new`] refuses less); the
//!   free functions [`rct_cutoff`] and [`apt_cutoff`] take any exponent so the
//!   standard's table (alpha = 2^-20) can be reproduced.
//! - No floating point: the binomial tail is computed with a small
//!   integer-only soft float (64-bit mantissa, truncating) in `const fn`s.
//! - Cutoffs are computed once per configuration, when the
//!   [`HealthConfig`] is made (at compile time for a `const` one, such as
//!   [`crate::mixer::MixerConfig::DEFAULT`]), never in
//!   [`HealthTest::new`]: a firmware that only uses constant
//!   configurations links none of the soft-float code.
//!   When the formula gives an APT cutoff of 1 (possible only when even one
//!   repeat in a window is rarer than alpha, e.g. 64-bit words with
//!   `H = 64`), the cutoff is 2: `B` starts at 1, so a cutoff of 1 would fail
//!   every window, and `P(B >= 2) <= alpha` in exactly that case.
//! - State machine ([`HealthState`]): a new source is in `Startup` for its
//!   first 1024 samples and earns no credit. Any RCT or APT failure counts a
//!   health failure and a strike, restarts both tests, and puts the source in
//!   `Quarantined` for one full APT window (512 samples): those samples and
//!   the failing one earn nothing. A failure inside a quarantine or start-up
//!   window is another failure and another strike. [`DISABLE_AFTER`] (3)
//!   strikes make the source `Disabled` for good (until [`HealthTest::reset`]):
//!   every later sample is refused. Strikes are forgotten after
//!   [`STRIKE_FORGET_SAMPLES`] (65536) consecutive healthy samples, so rare
//!   false alarms of a good source never add up to disabling it.
//! - A sample is *creditable* only when it passed both tests while the
//!   source was already `Healthy`.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;

/// Start-up test length in samples (SP 800-90B 4.3 (6): at least 1024).
pub const STARTUP_SAMPLES: u32 = 1024;
/// Strikes that disable a source.
pub const DISABLE_AFTER: u8 = 3;
/// Consecutive creditable samples after which strikes are forgotten.
pub const STRIKE_FORGET_SAMPLES: u64 = 65_536;
/// APT window for non-binary samples.
pub const APT_WINDOW: u32 = 512;
/// APT window for binary (one-bit) samples.
pub const APT_WINDOW_BINARY: u32 = 1024;
/// The smallest `alpha_exp` a source may be configured with (alpha = 2^-30).
pub const MIN_ALPHA_EXP: u32 = 30;
/// The largest `alpha_exp` accepted anywhere.
pub const MAX_ALPHA_EXP: u32 = 64;

/// Assessed min-entropy per raw sample, in eighths of a bit (`1..=512`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MinEntropy(u32);

impl MinEntropy {
    /// One eighth of a bit.
    pub const EIGHTH: MinEntropy = MinEntropy(1);
    /// The largest value: 64 bits (a full 64-bit word).
    pub const MAX: MinEntropy = MinEntropy(512);

    /// `eighths / 8` bits per sample.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] (`min-entropy-eighths`) unless `1..=512`.
    pub const fn from_eighths(eighths: u32) -> Result<Self, Error> {
        if eighths == 0 || eighths > Self::MAX.0 {
            Err(Error::InvalidValue {
                param: "min-entropy-eighths",
                value: eighths as u64,
                min: 1,
                max: Self::MAX.0 as u64,
            })
        } else {
            Ok(MinEntropy(eighths))
        }
    }

    /// Whole bits per sample.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless `1..=64`.
    pub const fn from_bits(bits: u32) -> Result<Self, Error> {
        if bits == 0 || bits > 64 {
            Err(Error::InvalidValue {
                param: "min-entropy-bits",
                value: bits as u64,
                min: 1,
                max: 64,
            })
        } else {
            Ok(MinEntropy(bits * 8))
        }
    }

    /// `eighths / 8` bits per sample, clamped to `1..=512`.
    #[must_use]
    pub const fn saturating_from_eighths(eighths: u32) -> Self {
        if eighths == 0 {
            MinEntropy(1)
        } else if eighths > Self::MAX.0 {
            Self::MAX
        } else {
            MinEntropy(eighths)
        }
    }

    /// The value in eighths of a bit.
    #[must_use]
    pub const fn eighths(self) -> u32 {
        self.0
    }
}

/// RCT cutoff `C = 1 + ceil(alpha_exp / H)` (SP 800-90B 4.4.1).
/// `alpha_exp` is clamped to `1..=64`.
#[must_use]
pub const fn rct_cutoff(h: MinEntropy, alpha_exp: u32) -> u32 {
    let a = clamp_alpha(alpha_exp);
    // h.0 >= 1 by construction; the guard lets the compiler see it too
    // (no division-by-zero panic path). a * 8 <= 512.
    let e = if h.0 == 0 { 1 } else { h.0 };
    1 + (a * 8).div_ceil(e)
}

/// APT cutoff `C = 1 + CRITBINOM(window, 2^-H, 1 - 2^-alpha_exp)`
/// (SP 800-90B 4.4.2), never below 2 (see the module doc). `window` is
/// clamped to `2..=4096`, `alpha_exp` to `1..=64`.
#[must_use]
pub const fn apt_cutoff(h: MinEntropy, window: u32, alpha_exp: u32) -> u32 {
    let w = if window < 2 {
        2
    } else if window > 4096 {
        4096
    } else {
        window
    };
    let c = 1 + soft::crit_binom_upper(w, h.0, clamp_alpha(alpha_exp));
    if c < 2 { 2 } else { c }
}

const fn clamp_alpha(alpha_exp: u32) -> u32 {
    if alpha_exp == 0 {
        1
    } else if alpha_exp > MAX_ALPHA_EXP {
        MAX_ALPHA_EXP
    } else {
        alpha_exp
    }
}

/// Integer-only soft float for the binomial tail (no `f32`/`f64` anywhere).
mod soft {
    // Every cast here is on values whose range is shown in the comment next
    // to it; `From` is not usable in `const fn`.
    #![allow(
        clippy::cast_possible_truncation,
        clippy::cast_lossless,
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss
    )]

    /// `m * 2^e`, with `m == 0` or `m >= 2^63` (normalised).
    #[derive(Clone, Copy)]
    pub(super) struct Soft {
        m: u64,
        e: i64,
    }

    const ZERO: Soft = Soft { m: 0, e: 0 };
    const ONE: Soft = Soft { m: 1 << 63, e: -63 };

    const fn norm(x: u128, e: i64) -> Soft {
        if x == 0 {
            return ZERO;
        }
        let lz = x.leading_zeros(); // 0..=127 since x != 0
        let x = x << lz;
        Soft {
            m: (x >> 64) as u64, // top 64 bits
            e: e - lz as i64 + 64,
        }
    }

    const fn pow2_neg(k: u32) -> Soft {
        Soft {
            m: 1 << 63,
            e: -63 - k as i64,
        }
    }

    const fn mul(a: Soft, b: Soft) -> Soft {
        norm(a.m as u128 * b.m as u128, a.e + b.e)
    }

    const fn mul_int(a: Soft, k: u32) -> Soft {
        norm(a.m as u128 * k as u128, a.e)
    }

    const fn div_int(a: Soft, k: u32) -> Soft {
        if k == 0 {
            return ZERO;
        }
        norm(((a.m as u128) << 64) / k as u128, a.e - 64)
    }

    const fn div(a: Soft, b: Soft) -> Soft {
        if b.m == 0 {
            return ZERO;
        }
        norm(((a.m as u128) << 64) / b.m as u128, a.e - b.e - 64)
    }

    /// Aligns `a` and `b` to a common exponent: `(big, small, exp)`, both
    /// shifted so `big < 2^127` and the sum fits in `u128`.
    const fn align(a: Soft, b: Soft) -> (u128, u128, i64) {
        let ah = (a.m as u128) << 63;
        let bh = (b.m as u128) << 63;
        if a.e >= b.e {
            let sh = a.e - b.e;
            let bl = if sh >= 127 || b.m == 0 { 0 } else { bh >> sh };
            (ah, bl, a.e - 63)
        } else {
            let sh = b.e - a.e;
            let al = if sh >= 127 || a.m == 0 { 0 } else { ah >> sh };
            (al, bh, b.e - 63)
        }
    }

    const fn add(a: Soft, b: Soft) -> Soft {
        if a.m == 0 {
            return b;
        }
        if b.m == 0 {
            return a;
        }
        let (x, y, e) = align(a, b);
        norm(x + y, e)
    }

    /// `a - b`, or zero when `b >= a`.
    const fn sub(a: Soft, b: Soft) -> Soft {
        if b.m == 0 {
            return a;
        }
        let (x, y, e) = align(a, b);
        if y >= x { ZERO } else { norm(x - y, e) }
    }

    const fn gt(a: Soft, b: Soft) -> bool {
        if a.m == 0 {
            return false;
        }
        if b.m == 0 {
            return true;
        }
        a.e > b.e || (a.e == b.e && a.m > b.m)
    }

    const fn pow(a: Soft, n: u32) -> Soft {
        let mut r = ONE;
        let mut b = a;
        let mut n = n;
        while n > 0 {
            if n & 1 == 1 {
                r = mul(r, b);
            }
            b = mul(b, b);
            n >>= 1;
        }
        r
    }

    /// `2^(-j/8)` for `j` in `0..8`, by bisection on the mantissa: the
    /// largest `m` with `(m 2^-64)^8 <= 2^-j` (within a few units in the
    /// last place of the truncating arithmetic).
    const fn exp2_neg_eighths(j: u32) -> Soft {
        if j == 0 {
            return ONE;
        }
        let target = pow2_neg(j);
        let mut lo: u64 = 1 << 63; // 0.5^8 = 2^-8 <= 2^-j
        let mut hi: u64 = u64::MAX; // ~1 > 2^-j
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if gt(pow(Soft { m: mid, e: -64 }, 8), target) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Soft { m: lo, e: -64 }
    }

    /// `p = 2^(-eighths/8)`.
    pub(super) const fn p_of(eighths: u32) -> Soft {
        mul(exp2_neg_eighths(eighths % 8), pow2_neg(eighths / 8))
    }

    /// The smallest `k` with `P(X > k) <= 2^-alpha_exp` for
    /// `X ~ Binomial(w, 2^(-eighths/8))`, i.e. Excel's
    /// `CRITBINOM(w, p, 1 - alpha)`. Walks down from `k = w`, summing the
    /// upper tail exactly term by term (no cancellation against 1).
    pub(super) const fn crit_binom_upper(w: u32, eighths: u32, alpha_exp: u32) -> u32 {
        let p = p_of(eighths);
        let alpha = pow2_neg(alpha_exp);
        let q = sub(ONE, p);
        let r = div(q, p);
        let mut pmf = pow(p, w); // P(X = w)
        let mut tail = ZERO; // P(X > j)
        let mut j = w;
        while j > 0 {
            let t = add(tail, pmf); // P(X >= j) = P(X > j - 1)
            if gt(t, alpha) {
                return j;
            }
            tail = t;
            // P(X = j-1) = P(X = j) * j / (w - j + 1) * q / p
            pmf = mul(div_int(mul_int(pmf, j), w - j + 1), r);
            j -= 1;
        }
        0
    }

    #[cfg(test)]
    pub(super) fn to_f64(a: Soft) -> f64 {
        #![allow(clippy::cast_precision_loss)]
        (a.m as f64) * 2f64.powi(a.e as i32)
    }
}

/// Which test failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthTestKind {
    /// Repetition Count Test.
    RepetitionCount,
    /// Adaptive Proportion Test.
    AdaptiveProportion,
}

/// A source's health, as `status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// In its first [`STARTUP_SAMPLES`] samples: absorbed, not credited.
    Startup,
    /// Credited.
    Healthy,
    /// After a failure, until a full clean APT window: absorbed, not credited.
    Quarantined,
    /// [`DISABLE_AFTER`] strikes: refused until reset.
    Disabled,
}

impl HealthState {
    /// Stable lower-case name for status output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            HealthState::Startup => "startup",
            HealthState::Healthy => "healthy",
            HealthState::Quarantined => "quarantined",
            HealthState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A source's health-test configuration, with the cutoffs it implies
/// (computed when it is made: see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    min_entropy: MinEntropy,
    alpha_exp: u32,
    /// [`rct_cutoff`] of the two above.
    rct_cutoff: u32,
    /// [`apt_cutoff`] with the window [`APT_WINDOW`].
    apt_cutoff: u32,
    /// [`apt_cutoff`] with the window [`APT_WINDOW_BINARY`] when
    /// `H <= 1` bit (binary samples carry no more), else 0 (unused: such a
    /// configuration is refused for binary samples).
    apt_cutoff_binary: u32,
}

impl HealthConfig {
    /// `H` per raw sample and `alpha = 2^-alpha_exp`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] (`alpha-exponent`) unless
    /// `30 <= alpha_exp <= 64`.
    pub const fn new(min_entropy: MinEntropy, alpha_exp: u32) -> Result<Self, Error> {
        if alpha_exp < MIN_ALPHA_EXP || alpha_exp > MAX_ALPHA_EXP {
            return Err(Error::InvalidValue {
                param: "alpha-exponent",
                value: alpha_exp as u64,
                min: MIN_ALPHA_EXP as u64,
                max: MAX_ALPHA_EXP as u64,
            });
        }
        Ok(Self::with_cutoffs(min_entropy, alpha_exp))
    }

    /// `H` per raw sample with the default alpha = 2^-30.
    #[must_use]
    pub const fn with_default_alpha(min_entropy: MinEntropy) -> Self {
        Self::with_cutoffs(min_entropy, MIN_ALPHA_EXP)
    }

    /// The configuration and its cutoffs (`alpha_exp` already checked).
    const fn with_cutoffs(min_entropy: MinEntropy, alpha_exp: u32) -> Self {
        HealthConfig {
            min_entropy,
            alpha_exp,
            rct_cutoff: rct_cutoff(min_entropy, alpha_exp),
            apt_cutoff: apt_cutoff(min_entropy, APT_WINDOW, alpha_exp),
            apt_cutoff_binary: if min_entropy.0 <= 8 {
                apt_cutoff(min_entropy, APT_WINDOW_BINARY, alpha_exp)
            } else {
                0
            },
        }
    }

    /// `H` per raw sample.
    #[must_use]
    pub const fn min_entropy(self) -> MinEntropy {
        self.min_entropy
    }

    /// `-log2(alpha)`.
    #[must_use]
    pub const fn alpha_exp(self) -> u32 {
        self.alpha_exp
    }
}

/// A raw sample type the tests accept: `u8` or `u64`.
pub trait HealthSample: Copy + PartialEq + sealed::Sealed {
    /// The sample widened to a `u64` (zero-extended).
    fn widen(self) -> u64;
    /// The low bits of `x` as a sample (exact for a widened sample).
    fn narrow(x: u64) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u64 {}
}

impl HealthSample for u8 {
    #[inline]
    fn widen(self) -> u64 {
        u64::from(self)
    }
    #[inline]
    fn narrow(x: u64) -> Self {
        x.to_le_bytes()[0]
    }
}

impl HealthSample for u64 {
    #[inline]
    fn widen(self) -> u64 {
        self
    }
    #[inline]
    fn narrow(x: u64) -> Self {
        x
    }
}

/// The verdict on one sample (see [`HealthTest::step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed while the source is healthy: may be credited.
    Creditable,
    /// Passed, but the source is in start-up or quarantine.
    NotCreditable,
    /// Failed this test; the source is now quarantined (or disabled).
    Failed(HealthTestKind),
    /// The source is disabled: the sample was not tested.
    Disabled,
}

/// What [`HealthTest::run`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Samples taken from the front of the slice (tested).
    pub consumed: usize,
    /// How many of them are creditable.
    pub creditable: u64,
    /// The failure that ended the run early, if any (it is the last sample
    /// consumed; nothing in the run should then be credited).
    pub failed: Option<HealthTestKind>,
}

/// Samples per piece [`HealthTest::plan_clean`] proves at once.
pub(crate) const PLAN_PIECE: usize = 64;

/// A clean prefix proved by [`HealthTest::plan_clean`] and the test state
/// after it. Holds raw samples (secret): zeroized on drop.
pub(crate) struct CleanPlan {
    /// Samples proved clean (and creditable).
    pub(crate) len: usize,
    rct_last: u64,
    rct_run: u32,
    apt_first: u64,
    apt_count: u32,
    apt_pos: u32,
}

impl Drop for CleanPlan {
    fn drop(&mut self) {
        self.rct_last.zeroize();
        self.apt_first.zeroize();
    }
}

/// A sample type [`HealthTest::plan_clean`] can count a piece of at once.
pub(crate) trait PieceSample: HealthSample {
    /// For a piece of at most [`PLAN_PIECE`] samples: the equal neighbour
    /// pairs inside it and the samples equal to `a`.
    fn piece_counts(seg: &[Self], a: Self) -> (u32, u32);
}

impl PieceSample for u8 {
    #[inline]
    fn piece_counts(seg: &[u8], a: u8) -> (u32, u32) {
        match <&[u8; PLAN_PIECE]>::try_from(seg) {
            Ok(piece) => byte_piece_counts(piece, a),
            Err(_) => piece_counts(seg, a),
        }
    }
}

impl PieceSample for u64 {
    #[inline]
    fn piece_counts(seg: &[u64], a: u64) -> (u32, u32) {
        match <&[u64; PLAN_PIECE]>::try_from(seg) {
            Ok(piece) => piece_counts(piece, a),
            Err(_) => piece_counts(seg, a),
        }
    }
}

/// The 16 bytes of `piece` from `at` (zeros if out of range: callers use
/// constant in-range offsets).
#[inline(always)]
fn lane(piece: &[u8; PLAN_PIECE], at: usize) -> [u8; 16] {
    piece
        .get(at..at.saturating_add(16))
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .unwrap_or([0; 16])
}

/// [`piece_counts`] for a whole piece of bytes, in 16-byte lanes with byte
/// counters (at most 4 per lane: no overflow) so it compiles to a handful
/// of vector compares. The pairs are the lanes at 0, 16, 32 and 47 against
/// the same lanes one byte on; the pair at 47/48 is seen twice.
#[inline]
fn byte_piece_counts(piece: &[u8; PLAN_PIECE], a: u8) -> (u32, u32) {
    let mut hits = [0u8; 16];
    let mut pairs = [0u8; 16];
    for at in [0, 16, 32, 48] {
        for (h, x) in hits.iter_mut().zip(lane(piece, at)) {
            *h = h.wrapping_add(u8::from(x == a));
        }
    }
    for at in [0usize, 16, 32, 47] {
        let next = lane(piece, at.saturating_add(1));
        for ((c, x), y) in pairs.iter_mut().zip(lane(piece, at)).zip(next) {
            *c = c.wrapping_add(u8::from(x == y));
        }
    }
    // `black_box` keeps the counters a vector: without it LLVM folds the
    // byte compares of `hits` into a bit mask and a software bit count
    // (x86_64's baseline has no `popcnt`), about 2.3 us of the 59 us
    // conditioning of 64 KiB on the development machine. It changes no
    // value.
    let sum = |v: [u8; 16]| {
        core::hint::black_box(v)
            .iter()
            .fold(0u32, |t, &x| t.wrapping_add(u32::from(x)))
    };
    let twice = u32::from(piece.get(47) == piece.get(48));
    (sum(pairs).wrapping_sub(twice), sum(hits))
}

/// Equal neighbour pairs inside `seg` and samples equal to `a`.
#[inline]
fn piece_counts<T: HealthSample>(seg: &[T], a: T) -> (u32, u32) {
    let Some(after) = seg.get(1..) else {
        return (0, 0);
    };
    let pairs = seg
        .iter()
        .zip(after)
        .fold(0u32, |c, (x, y)| c.wrapping_add(u32::from(x == y)));
    let hits = seg
        .iter()
        .fold(0u32, |c, x| c.wrapping_add(u32::from(*x == a)));
    (pairs, hits)
}

/// The last sample of non-empty `seg` and the length of the run of equal
/// samples `seg` ends with (at least 1; `seg.len()` if all are equal).
#[inline]
fn trailing_run<T: HealthSample>(seg: &[T]) -> (T, usize) {
    let mut it = seg.iter().rev();
    let Some(&last) = it.next() else {
        return (T::narrow(0), 0);
    };
    let same = it.take_while(|&&x| x == last).count();
    (last, same.saturating_add(1))
}

/// `v` as a tester's `u16` field. Every window (clamped to 4096 by
/// [`apt_cutoff`]; in use 512 or 1024), cutoff (RCT at most 513, APT at
/// most its window + 1), start-up length (1024) and the APT count and
/// position (below the window) fits; anything larger would saturate, never
/// wrap.
#[allow(
    clippy::cast_possible_truncation,
    reason = "checked against u16::MAX just before; From is not const"
)]
const fn small(v: u32) -> u16 {
    if v > 0xFFFF { u16::MAX } else { v as u16 }
}

/// A tester's `u16` field as `u32` (lossless).
#[allow(clippy::cast_lossless, reason = "u32::from is not const")]
const fn wide(v: u16) -> u32 {
    v as u32
}

const _: () = assert!(STRIKE_FORGET_SAMPLES <= 0xFFFF_FFFF && STARTUP_SAMPLES <= 0xFFFF);

/// The continuous health tests and state machine of one source.
///
/// Holds the last raw samples it saw (secret): zeroized on drop, never
/// printed.
pub struct HealthTest {
    // Windows, cutoffs and the counts bounded by them are `u16` (all at
    // most 4097: see [`small`]), and the clean run saturates in a `u32`
    // (only `>= STRIKE_FORGET_SAMPLES` matters): 48 bytes instead of 64,
    // for each of the mixer's four sources.
    rct_cutoff: u16,
    apt_cutoff: u16,
    window: u16,
    rct_last: u64,
    rct_run: u32,
    apt_first: u64,
    apt_count: u16,
    /// Samples seen in the current APT window; 0 = the next starts one.
    apt_pos: u16,
    /// Clean samples still needed before credit (start-up or quarantine).
    remaining: u16,
    startup: bool,
    disabled: bool,
    strikes: u8,
    clean_run: u32,
    failures: u64,
    last_failure: Option<HealthTestKind>,
}

impl HealthTest {
    /// A tester in `Startup`, for samples of `sample_bits` bits (1 = binary,
    /// window 1024; 8 or 64 = window 512). Cheap: the cutoffs were
    /// computed when `cfg` was made.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] (`min-entropy-eighths`) when `H` exceeds
    /// `sample_bits`, or (`sample-bits`) when `sample_bits` is not 1, 8 or 64.
    pub const fn new(cfg: HealthConfig, sample_bits: u32) -> Result<Self, Error> {
        if !matches!(sample_bits, 1 | 8 | 64) {
            return Err(Error::InvalidValue {
                param: "sample-bits",
                value: sample_bits as u64,
                min: 1,
                max: 64,
            });
        }
        if cfg.min_entropy.0 > sample_bits * 8 {
            return Err(Error::InvalidValue {
                param: "min-entropy-eighths",
                value: cfg.min_entropy.0 as u64,
                min: 1,
                max: (sample_bits * 8) as u64,
            });
        }
        // The cutoffs come with `cfg` (computed once per configuration);
        // a binary tester has `H <= 1` bit (checked above), for which `cfg`
        // holds the binary window's cutoff.
        let (window, apt_cutoff) = if sample_bits == 1 {
            (APT_WINDOW_BINARY, cfg.apt_cutoff_binary)
        } else {
            (APT_WINDOW, cfg.apt_cutoff)
        };
        Ok(HealthTest {
            rct_cutoff: small(cfg.rct_cutoff),
            apt_cutoff: small(apt_cutoff),
            window: small(window),
            rct_last: 0,
            rct_run: 0,
            apt_first: 0,
            apt_count: 0,
            apt_pos: 0,
            remaining: small(STARTUP_SAMPLES),
            startup: true,
            disabled: false,
            strikes: 0,
            clean_run: 0,
            failures: 0,
            last_failure: None,
        })
    }

    /// The RCT cutoff in use.
    #[must_use]
    pub const fn rct_cutoff(&self) -> u32 {
        wide(self.rct_cutoff)
    }

    /// The APT cutoff in use.
    #[must_use]
    pub const fn apt_cutoff(&self) -> u32 {
        wide(self.apt_cutoff)
    }

    /// The APT window in use.
    #[must_use]
    pub const fn window(&self) -> u32 {
        wide(self.window)
    }

    /// The current state.
    #[must_use]
    pub const fn state(&self) -> HealthState {
        if self.disabled {
            HealthState::Disabled
        } else if self.remaining == 0 {
            HealthState::Healthy
        } else if self.startup {
            HealthState::Startup
        } else {
            HealthState::Quarantined
        }
    }

    /// Failures counted since creation (not cleared by [`Self::reset`]).
    #[must_use]
    pub const fn failures(&self) -> u64 {
        self.failures
    }

    /// Current strikes (`0..DISABLE_AFTER`, or `DISABLE_AFTER` when disabled).
    #[must_use]
    pub const fn strikes(&self) -> u8 {
        self.strikes
    }

    /// The kind of the most recent failure.
    #[must_use]
    pub const fn last_failure(&self) -> Option<HealthTestKind> {
        self.last_failure
    }

    /// Operator action: forget strikes and samples and start the start-up
    /// test again (also re-enables a disabled source). The failure count
    /// is kept.
    pub fn reset(&mut self) {
        self.rct_last.zeroize();
        self.apt_first.zeroize();
        self.rct_run = 0;
        self.apt_count = 0;
        self.apt_pos = 0;
        self.remaining = small(STARTUP_SAMPLES);
        self.startup = true;
        self.disabled = false;
        self.strikes = 0;
        self.clean_run = 0;
    }

    /// Tests one sample.
    pub fn step(&mut self, x: u64) -> Verdict {
        if self.disabled {
            return Verdict::Disabled;
        }
        match self.test_one(x) {
            Some(kind) => {
                self.fail(kind);
                Verdict::Failed(kind)
            }
            None => {
                if self.account_clean(1) == 1 {
                    Verdict::Creditable
                } else {
                    Verdict::NotCreditable
                }
            }
        }
    }

    /// Tests samples from the front of `xs` until `want` creditable ones
    /// were seen, a test fails (the failing sample is the last consumed),
    /// the source is disabled, or `xs` ends. Results are identical to
    /// calling [`Self::step`] on each sample; this is the fast path (it
    /// checks whole stretches at once and falls back to per-sample steps
    /// only where a repeat or a high APT count makes a failure possible).
    pub fn run<T: HealthSample>(&mut self, xs: &[T], want: u64) -> Run {
        let mut done = 0usize;
        let mut creditable = 0u64;
        while creditable < want && !self.disabled {
            let Some(rest) = xs.get(done..) else { break };
            let Some(&first) = rest.first() else { break };
            if self.apt_pos == 0 {
                // Start of an APT window: one scalar step sets `A`.
                done = done.saturating_add(1);
                match self.step(first.widen()) {
                    Verdict::Creditable => creditable = creditable.saturating_add(1),
                    Verdict::NotCreditable | Verdict::Disabled => {}
                    Verdict::Failed(kind) => {
                        return Run {
                            consumed: done,
                            creditable,
                            failed: Some(kind),
                        };
                    }
                }
                continue;
            }
            // A stretch that stays inside this APT window and inside one
            // credit phase (start-up/quarantine, or healthy up to `want`).
            let window_left = u64::from(self.window.saturating_sub(self.apt_pos));
            let phase_left = if self.remaining > 0 {
                u64::from(self.remaining)
            } else {
                want - creditable
            };
            let n = usize::try_from(window_left.min(phase_left))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let Some(seg) = rest.get(..n) else { break };
            if let Some(hits) = self.scan_stretch(seg) {
                self.absorb_clean_stretch(seg, hits);
                done = done.saturating_add(n);
                creditable = creditable.saturating_add(self.account_clean(n as u64));
            } else {
                for &x in seg {
                    done = done.saturating_add(1);
                    match self.step(x.widen()) {
                        Verdict::Creditable => creditable = creditable.saturating_add(1),
                        Verdict::NotCreditable | Verdict::Disabled => {}
                        Verdict::Failed(kind) => {
                            return Run {
                                consumed: done,
                                creditable,
                                failed: Some(kind),
                            };
                        }
                    }
                }
            }
        }
        Run {
            consumed: done,
            creditable,
            failed: None,
        }
    }

    /// For `seg` (non-empty, inside one APT window, `apt_pos > 0`): the
    /// number of samples equal to the APT's `A`, when neither test can fail
    /// in it: no sample equals its predecessor (so every RCT run restarts
    /// at 1) and the APT count stays below its cutoff. `None` otherwise
    /// (then the caller steps sample by sample).
    #[inline]
    fn scan_stretch<T: HealthSample>(&self, seg: &[T]) -> Option<u32> {
        let (&head, _) = seg.split_first()?;
        if self.rct_run > 0 && head.widen() == self.rct_last {
            return None;
        }
        let before = seg.get(..seg.len().saturating_sub(1))?;
        let after = seg.get(1..)?;
        let repeat = before
            .iter()
            .zip(after)
            .fold(false, |acc, (x, y)| acc | (x == y));
        let a = T::narrow(self.apt_first);
        let hits = seg
            .iter()
            .fold(0u32, |c, x| c.wrapping_add(u32::from(*x == a)));
        if repeat || wide(self.apt_count).saturating_add(hits) >= self.apt_cutoff() {
            None
        } else {
            Some(hits)
        }
    }

    /// Proves a prefix of `xs` clean without changing any state: returns
    /// a plan covering the longest prefix (checked in pieces of
    /// [`PLAN_PIECE`] samples, stopping before the first piece it cannot
    /// prove) in which, the source being `Healthy` now, every sample would
    /// pass both tests and so be creditable. The plan is empty unless the
    /// source is `Healthy`. [`Self::commit_clean`] then applies it; the
    /// pair is identical to calling [`Self::step`] on each planned sample
    /// (each returning [`Verdict::Creditable`]).
    ///
    /// A piece is proved when its APT count stays below the cutoff (the
    /// count only grows inside a window, so its final value decides) and
    /// when the longest repetition it could contain, the run carried in
    /// plus every equal neighbour pair in the piece, stays below the RCT
    /// cutoff: a sufficient condition, checked with whole-piece counts.
    pub(crate) fn plan_clean<T: PieceSample>(&self, xs: &[T]) -> CleanPlan {
        let mut p = CleanPlan {
            len: 0,
            rct_last: self.rct_last,
            rct_run: self.rct_run,
            apt_first: self.apt_first,
            apt_count: wide(self.apt_count),
            apt_pos: wide(self.apt_pos),
        };
        if self.disabled || self.remaining > 0 {
            return p;
        }
        let mut rest = xs;
        loop {
            // Pieces are aligned to the APT window (whose length is a
            // multiple of `PLAN_PIECE`), so they never cross a window end
            // and are whole except at the ends of `xs`.
            let pos = usize::try_from(p.apt_pos).unwrap_or(usize::MAX);
            let window_left =
                usize::try_from(self.window().saturating_sub(p.apt_pos)).unwrap_or(usize::MAX);
            let n = PLAN_PIECE
                .saturating_sub(pos % PLAN_PIECE)
                .min(window_left)
                .min(rest.len());
            let Some((seg, tail)) = rest.split_at_checked(n) else {
                break;
            };
            let Some((&head, _)) = seg.split_first() else {
                break;
            };
            // A piece that opens a window takes its first sample as `A`
            // (which counts itself: the count starts at 1).
            let opens = p.apt_pos == 0;
            let (a, count) = if opens {
                (head, 0)
            } else {
                (T::narrow(p.apt_first), p.apt_count)
            };
            let (pairs, hits) = T::piece_counts(seg, a);
            let count = count.saturating_add(hits);
            // The run that reaches into the piece, if its first sample
            // continues it (`rct_run > 0` always holds while healthy).
            let joined = p.rct_run > 0 && head.widen() == p.rct_last;
            let carried = if joined { p.rct_run } else { 0 };
            let longest = carried.saturating_add(1).saturating_add(pairs);
            if longest >= self.rct_cutoff() || count >= self.apt_cutoff() {
                break;
            }
            // The run the piece ends with: its trailing equal samples, plus
            // the carried run when the whole piece repeats it.
            let (last, trailing) = trailing_run(seg);
            let trailing32 = u32::try_from(trailing).unwrap_or(u32::MAX);
            p.rct_run = if trailing == seg.len() {
                carried.saturating_add(trailing32)
            } else {
                trailing32
            };
            p.rct_last = last.widen();
            if opens {
                p.apt_first = head.widen();
            }
            p.apt_count = count;
            p.apt_pos = p
                .apt_pos
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            if p.apt_pos >= self.window() {
                p.apt_pos = 0;
            }
            p.len = p.len.saturating_add(n);
            rest = tail;
        }
        p
    }

    /// Applies a plan made by [`Self::plan_clean`] on this tester with no
    /// change in between: the state after stepping its `len` samples.
    pub(crate) fn commit_clean(&mut self, plan: &CleanPlan) {
        if plan.len == 0 {
            return;
        }
        self.rct_last = plan.rct_last;
        self.rct_run = plan.rct_run;
        self.apt_first = plan.apt_first;
        // Both below the window (the plan restarts the position at its
        // end and stops before the count reaches the cutoff).
        self.apt_count = small(plan.apt_count);
        self.apt_pos = small(plan.apt_pos);
        self.add_healthy(u64::try_from(plan.len).unwrap_or(u64::MAX));
    }

    /// Updates the test state for a stretch `scan_stretch` accepted.
    #[inline]
    fn absorb_clean_stretch<T: HealthSample>(&mut self, seg: &[T], hits: u32) {
        let Some(&last) = seg.last() else { return };
        self.rct_last = last.widen();
        self.rct_run = 1;
        // `scan_stretch` kept the count below the cutoff and the stretch
        // inside the window: both stay below the window.
        self.apt_count = self.apt_count.saturating_add(small(hits));
        let n = u32::try_from(seg.len()).unwrap_or(u32::MAX);
        self.apt_pos = self.apt_pos.saturating_add(small(n));
        if self.apt_pos >= self.window {
            self.apt_pos = 0;
        }
    }

    /// Both tests on one sample; `Some(kind)` on failure.
    #[inline]
    fn test_one(&mut self, x: u64) -> Option<HealthTestKind> {
        if self.rct_run > 0 && x == self.rct_last {
            self.rct_run = self.rct_run.saturating_add(1);
        } else {
            self.rct_last = x;
            self.rct_run = 1;
        }
        if self.apt_pos == 0 {
            self.apt_first = x;
            self.apt_count = 1;
            self.apt_pos = 1;
        } else {
            if x == self.apt_first {
                self.apt_count = self.apt_count.saturating_add(1);
            }
            self.apt_pos = self.apt_pos.saturating_add(1);
        }
        let apt_fail = self.apt_count >= self.apt_cutoff;
        if self.apt_pos >= self.window {
            self.apt_pos = 0;
        }
        if self.rct_run >= self.rct_cutoff() {
            Some(HealthTestKind::RepetitionCount)
        } else if apt_fail {
            Some(HealthTestKind::AdaptiveProportion)
        } else {
            None
        }
    }

    /// Accounts `n` clean samples (`n` never crosses the end of a start-up
    /// or quarantine phase except by ending exactly on it); returns how many
    /// are creditable.
    #[inline]
    fn account_clean(&mut self, n: u64) -> u64 {
        if self.remaining > 0 {
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            let used = n32.min(wide(self.remaining));
            self.remaining = self.remaining.saturating_sub(small(used));
            if self.remaining == 0 {
                self.startup = false;
            }
            // Samples beyond the phase end are creditable (only `step`
            // with n = 1 or stretches bounded by `remaining` reach here,
            // so this is 0 in practice).
            let extra = n.saturating_sub(u64::from(used));
            self.add_healthy(extra);
            extra
        } else {
            self.add_healthy(n);
            n
        }
    }

    #[inline]
    fn add_healthy(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        self.clean_run = self.clean_run.saturating_add(n32);
        if u64::from(self.clean_run) >= STRIKE_FORGET_SAMPLES {
            self.strikes = 0;
        }
    }

    #[cold]
    fn fail(&mut self, kind: HealthTestKind) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(kind);
        self.strikes = self.strikes.saturating_add(1);
        self.clean_run = 0;
        self.rct_run = 0;
        self.apt_pos = 0;
        self.apt_count = 0;
        self.rct_last.zeroize();
        self.apt_first.zeroize();
        self.remaining = self.window;
        if self.strikes >= DISABLE_AFTER {
            self.disabled = true;
        }
    }
}

impl Zeroize for HealthTest {
    /// Wipes the remembered raw samples (the only secrets held).
    fn zeroize(&mut self) {
        self.rct_last.zeroize();
        self.apt_first.zeroize();
    }
}

impl Drop for HealthTest {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for HealthTest {}

impl fmt::Debug for HealthTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthTest")
            .field("rct_cutoff", &self.rct_cutoff)
            .field("apt_cutoff", &self.apt_cutoff)
            .field("window", &self.window)
            .field("state", &self.state())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_powers_of_two_are_accurate() {
        for j in 0..8u32 {
            let got = soft::to_f64(soft::p_of(j));
            let want = 2f64.powf(-f64::from(j) / 8.0);
            assert!((got - want).abs() / want < 1e-15, "j={j}: {got} vs {want}");
        }
        let got = soft::to_f64(soft::p_of(8 * 64));
        assert_eq!(got, 2f64.powi(-64));
    }

    #[test]
    fn table_values_are_computed_at_compile_time() {
        const C: u32 = apt_cutoff(MinEntropy(8), APT_WINDOW, 20);
        assert_eq!(C, 311);
    }

    #[test]
    fn stretch_accounting_never_crosses_a_phase() {
        let mut t = HealthTest::new(HealthConfig::new(MinEntropy(64), 30).unwrap(), 8).unwrap();
        let xs: std::vec::Vec<u8> = (0..4000u32)
            .map(|i| (i * 7 + i / 256).to_le_bytes()[0])
            .collect();
        let mut m = HealthTest::new(HealthConfig::new(MinEntropy(64), 30).unwrap(), 8).unwrap();
        let r = t.run(&xs, 100);
        let mut cred = 0;
        let mut used = 0;
        for &x in &xs {
            used += 1;
            if m.step(u64::from(x)) == Verdict::Creditable {
                cred += 1;
                if cred == 100 {
                    break;
                }
            }
        }
        assert_eq!((r.consumed, r.creditable), (used, 100));
        assert_eq!(t.state(), m.state());
        assert_eq!(t.remaining, m.remaining);
        assert_eq!(
            (t.apt_pos, t.apt_count, t.rct_run),
            (m.apt_pos, m.apt_count, m.rct_run)
        );
    }

    /// The full observable and internal state of a tester.
    fn snapshot(t: &HealthTest) -> (u64, u32, u64, u16, u16, u16, bool, bool, u8, u32, u64) {
        (
            t.rct_last,
            t.rct_run,
            t.apt_first,
            t.apt_count,
            t.apt_pos,
            t.remaining,
            t.startup,
            t.disabled,
            t.strikes,
            t.clean_run,
            t.failures,
        )
    }

    /// `plan_clean` + `commit_clean` against stepping: every planned
    /// sample steps `Creditable` and the states end equal; a prefix of a
    /// plan is planned whole; the plan stops only before a piece that
    /// stepping could fail or (per the sufficient test) might fail.
    fn check_plan<T: PieceSample>(
        cfg: HealthConfig,
        bits: u32,
        warm: &[T],
        xs: &[T],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prelude::*;
        let mut a = HealthTest::new(cfg, bits).unwrap();
        let mut b = HealthTest::new(cfg, bits).unwrap();
        for &x in warm {
            a.step(x.widen());
            b.step(x.widen());
        }
        let plan = a.plan_clean(xs);
        prop_assert!(plan.len <= xs.len());
        if a.state() != HealthState::Healthy {
            prop_assert_eq!(plan.len, 0);
        }
        for k in [0, plan.len / 3, plan.len.saturating_sub(1), plan.len] {
            prop_assert_eq!(a.plan_clean(&xs[..k]).len, k);
        }
        a.commit_clean(&plan);
        for &x in &xs[..plan.len] {
            prop_assert_eq!(b.step(x.widen()), Verdict::Creditable);
        }
        prop_assert_eq!(snapshot(&a), snapshot(&b));
        Ok(())
    }

    /// Bytes from a small alphabet with runs: repeats and APT hits near
    /// the cutoffs.
    fn byte_stream() -> impl proptest::strategy::Strategy<Value = std::vec::Vec<u8>> {
        use proptest::prelude::*;
        proptest::collection::vec((any::<u8>(), 0u8..24, 1usize..10), 0..1200).prop_map(|v| {
            v.into_iter()
                .flat_map(|(x, narrow, run)| {
                    let x = if narrow == 0 { x % 3 } else { x };
                    core::iter::repeat_n(x, if narrow == 1 { run } else { 1 })
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            if cfg!(miri) { 2 } else { 256 }
        ))]

        #[test]
        fn plan_and_commit_equal_stepping_bytes(
            warm_n in 0usize..2200,
            xs in byte_stream(),
            h_eighths in 8u32..=64,
            seed: u64,
        ) {
            let cfg = HealthConfig::new(MinEntropy(h_eighths), 30).unwrap();
            let mut r = seed | 1;
            let warm: std::vec::Vec<u8> = (0..warm_n)
                .map(|_| {
                    r ^= r << 13;
                    r ^= r >> 7;
                    r ^= r << 17;
                    r.to_le_bytes()[0]
                })
                .collect();
            check_plan(cfg, 8, &warm, &xs)?;
        }

        #[test]
        fn plan_and_commit_equal_stepping_words(
            warm in proptest::collection::vec(proptest::prelude::any::<u64>(), 1024..1600),
            xs in proptest::collection::vec(0u64..6000, 0..1500),
            repeat_at in proptest::option::of(0usize..1500),
            h_bits in proptest::prop_oneof![proptest::strategy::Just(64u32), 1u32..64],
        ) {
            let cfg = HealthConfig::new(MinEntropy(h_bits * 8), 30).unwrap();
            let mut xs = xs;
            if let Some(i) = repeat_at.filter(|&i| i > 0 && i < xs.len()) {
                xs[i] = xs[i - 1];
            }
            check_plan(cfg, 64, &warm, &xs)?;
        }
    }

    #[test]
    fn zeroize_wipes_remembered_samples() {
        let mut t = HealthTest::new(HealthConfig::new(MinEntropy(64), 30).unwrap(), 64).unwrap();
        t.step(0xdead_beef_dead_beef);
        assert_eq!(t.rct_last, 0xdead_beef_dead_beef);
        t.zeroize();
        assert_eq!((t.rct_last, t.apt_first), (0, 0));
    }
}
