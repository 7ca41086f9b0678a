//! The screen on external pieces: patterned data earns no credit.
//!
//! The SP 800-90B health tests (RCT, APT) catch only a stuck or grossly
//! biased source. An external feeder can hand in data that passes them and
//! carries next to no entropy: a counter, a test pattern, a text file. This
//! screen looks at each external piece (one add, one kickstart seed) before
//! it is credited and trips on:
//!
//! - **byte-subset**: too few distinct byte values (text, hex, base64,
//!   7-bit data: data confined to a subset of byte values);
//! - **byte-bias**: one byte value far too frequent (zero padding, sparse
//!   data, the constant high bytes of wide counters);
//! - **constant-difference**: too many positions where `b[i+k] == b[i]`
//!   or `b[i+2k] - 2 b[i+k] + b[i] == 0` (mod 256), for `k` in 1, 2, 4, 8:
//!   byte runs, counters of 1, 2, 4 or 8 bytes (either byte order) and other
//!   constant-difference (arithmetic) sequences;
//! - **repeats**: two 8-byte groups at 8-aligned offsets of a window that
//!   are equal: any byte-periodic data with a period up to 64 (equal groups
//!   recur every `lcm(8, p) <= 512` bytes), and repeated blocks of any
//!   length of 16 bytes or more (what a general-purpose compressor shrinks).
//!
//! # Contract
//!
//! - The piece is cut into windows of [`WINDOW`] bytes (the last one ends at
//!   the piece's end and may overlap the one before); a piece shorter than
//!   one window is one window. Every test runs on every window; one tripped
//!   window trips the piece. The work is a fixed number of branch-free
//!   passes over each window (a byte histogram, eight difference counts,
//!   one sampled hash pass): linear in the piece, no allocation, no panic.
//! - A piece shorter than [`CONTEXT`] bytes is judged together with the
//!   external bytes before it ([`ScreenContext`]: the last [`CONTEXT`]
//!   bytes taken), as one window of up to [`CONTEXT`] bytes, so feeding
//!   text a few bytes at a time does not dodge the screen. A window shorter
//!   than [`MIN_WINDOW`] (the first bytes after start) is
//!   [`Screen::TooShort`]: too short to judge, so the caller absorbs it
//!   without credit (the health tests' start-up gives the first 1024
//!   external bytes no credit anyway).
//! - **False alarms.** On uniformly random bytes each window trips with
//!   probability at most `2^-44.6`: each of the eight difference counts is
//!   exactly binomial `Bin(N, 1/256)` on random data (the differences are a
//!   bijection of the input), and its cutoff `t` ([`DIFF_CUTOFF`], for the
//!   power of two at or above `N`) bounds `P(X >= t) <= C(N, t) 256^-t <=
//!   (eN/(256 t))^t <= 2^-48`; the count of each byte value is binomial
//!   too, and [`BIAS_CUTOFF`] reaches `2^-56`, so the most frequent of the
//!   256 values stays under `2^-48`;
//!   the missing-values cutoffs ([`MISSING_CUTOFF`]) satisfy
//!   `C(256, t) (1 - t/256)^w <= 2^-48`; two equal 8-byte groups among at
//!   most 512 independent ones have probability at most
//!   `(512^2/2 * 2^-64)^2 = 2^-94`. A piece of `n` bytes has
//!   `ceil(n / WINDOW)` windows, so its false-alarm rate is at most
//!   `2^-30` for every piece up to 64 MiB (the largest external input, a
//!   kickstart seed, is 10 MiB: at most `2^-33`).
//! - What the screen cannot see: a pattern that is not in any window whole
//!   (a period above 512 bytes, data that is random-looking but known to an
//!   attacker). It is a screen against broken or misconfigured feeders, not
//!   a proof of entropy: the feeder's credit rate is still what it claims.

use core::fmt;

use zeroize::Zeroize;

/// Bytes per window.
pub const WINDOW: usize = 4096;
/// Pieces shorter than this are judged with the bytes before them.
pub const CONTEXT: usize = 256;
/// Windows shorter than this are not judged (and not credited).
pub const MIN_WINDOW: usize = 16;
/// The exponent every single test's false-alarm bound reaches: `2^-48`.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
pub const TEST_ALPHA_EXP: u32 = 48;

/// Missing-values cutoffs: a window of at least `16 << i` bytes trips
/// `byte-subset` when `MISSING_CUTOFF[i]` or more of the 256 byte values do
/// not occur in it. Each is the smallest `t` with
/// `log2 C(256, t) + w log2(1 - t/256) <= -48` for `w = 16 << i` (a larger
/// window only lowers the probability, so a window uses the cutoff of the
/// largest power of two not above its length).
pub const MISSING_CUTOFF: [u16; 9] = [250, 241, 223, 191, 142, 79, 29, 9, 3];

/// Cutoffs of a count that is `Bin(N, 1/256)` on random data, for
/// `N <= 1 << i`: the smallest `t > eN/256` with
/// `t log2(256 t / (e 2^i)) >= 48`, so `(eN/(256 t))^t <= 2^-48`.
pub const DIFF_CUTOFF: [u16; 13] = [6, 6, 7, 8, 9, 10, 12, 15, 18, 24, 32, 46, 70];

/// As [`DIFF_CUTOFF`] with `2^-56`: the count of one byte value, so that
/// the most frequent of 256 values stays under `2^-48`.
pub const BIAS_CUTOFF: [u16; 13] = [7, 7, 8, 9, 10, 12, 14, 16, 20, 26, 35, 49, 74];

/// Lags of the difference tests.
const LAGS: [usize; 4] = [1, 2, 4, 8];
/// Slots in the repeat test's hash table (positions of 8-byte groups).
const TABLE: usize = 1024;
/// Equal 8-byte groups that trip `repeats`.
const REPEAT_CUTOFF: u32 = 2;

/// Which test a piece tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScreenTrip {
    /// Too few distinct byte values (text and other subsets).
    ByteSubset,
    /// One byte value far too frequent.
    ByteBias,
    /// Runs, counters or other constant-difference sequences.
    ConstantDifference,
    /// Repeated 8-byte groups: periodic or compressible data.
    Repeats,
}

impl ScreenTrip {
    /// A short stable name for logs and audit lines.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ScreenTrip::ByteSubset => "byte-subset",
            ScreenTrip::ByteBias => "byte-bias",
            ScreenTrip::ConstantDifference => "constant-difference",
            ScreenTrip::Repeats => "repeats",
        }
    }
}

impl fmt::Display for ScreenTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The screen's verdict on one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Nothing found: the piece may earn its configured credit.
    Pass,
    /// A window shorter than [`MIN_WINDOW`]: absorbed without credit.
    TooShort,
    /// A test tripped: the piece earns nothing.
    Trip(ScreenTrip),
}

/// The last [`CONTEXT`] external bytes taken, for judging short pieces.
/// External input: zeroized on drop, never printed.
pub struct ScreenContext {
    last: [u8; CONTEXT],
    len: usize,
}

impl ScreenContext {
    /// No bytes yet.
    #[must_use]
    pub const fn new() -> Self {
        ScreenContext {
            last: [0; CONTEXT],
            len: 0,
        }
    }

    /// Screens `piece` after the bytes recorded so far (a piece of at
    /// least [`CONTEXT`] bytes is judged alone), and on a pass records its
    /// tail.
    #[must_use]
    pub fn screen(&mut self, piece: &[u8]) -> Screen {
        let n = piece.len();
        let verdict = if n >= CONTEXT {
            screen(piece)
        } else {
            let mut window = [0u8; CONTEXT];
            let keep = self.len.min(CONTEXT.saturating_sub(n));
            let from = self.len.saturating_sub(keep);
            let mut len = 0usize;
            for (w, b) in window.iter_mut().zip(
                self.last
                    .get(from..self.len)
                    .unwrap_or(&[])
                    .iter()
                    .chain(piece),
            ) {
                *w = *b;
                len = len.saturating_add(1);
            }
            let v = screen(window.get(..len).unwrap_or(&[]));
            window.zeroize();
            v
        };
        if verdict == Screen::Pass {
            self.record(piece);
        }
        verdict
    }

    /// Keeps the last [`CONTEXT`] bytes of what was recorded plus `piece`.
    fn record(&mut self, piece: &[u8]) {
        // The kept tail of the old bytes, then the piece, into a fresh
        // buffer (element-wise: no length assertion, no panic path).
        let keep = self.len.min(CONTEXT.saturating_sub(piece.len()));
        let old = self
            .last
            .get(self.len.saturating_sub(keep)..self.len)
            .unwrap_or(&[]);
        let skip = piece.len().saturating_sub(CONTEXT);
        let mut next = [0u8; CONTEXT];
        let mut len = 0usize;
        for (d, b) in next
            .iter_mut()
            .zip(old.iter().chain(piece.iter().skip(skip)))
        {
            *d = *b;
            len = len.saturating_add(1);
        }
        self.last.zeroize();
        self.last = next;
        next.zeroize();
        self.len = len;
    }

    /// Forgets the recorded bytes.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn clear(&mut self) {
        self.last.zeroize();
        self.len = 0;
    }
}

impl Default for ScreenContext {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ScreenContext {
    fn drop(&mut self) {
        self.last.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for ScreenContext {}

impl fmt::Debug for ScreenContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScreenContext { .. }")
    }
}

/// Screens `piece` alone (see the module documentation).
#[must_use]
pub fn screen(piece: &[u8]) -> Screen {
    let n = piece.len();
    if n < MIN_WINDOW {
        return Screen::TooShort;
    }
    let w = n.min(WINDOW);
    let mut end = w;
    // ceil(n / w) windows; each round moves `end` forward by `w` (at least
    // MIN_WINDOW) or stops at `n`.
    loop {
        let start = end.saturating_sub(w);
        if let Some(window) = piece.get(start..end) {
            if let Err(trip) = screen_window(window) {
                return Screen::Trip(trip);
            }
        }
        if end >= n {
            return Screen::Pass;
        }
        end = end.saturating_add(w).min(n);
    }
}

/// The cutoff in `table` for a binomial count over `n` trials (`n <=
/// WINDOW`): the entry of the power of two at or above `n`.
fn binomial_cutoff(table: &[u16; 13], n: usize) -> u32 {
    let bucket = usize::try_from(n.max(1).next_power_of_two().ilog2()).unwrap_or(usize::MAX);
    table.get(bucket).map_or(u32::MAX, |&t| u32::from(t))
}

/// The missing-values cutoff for a window of `w >= 16` bytes.
fn missing_cutoff(w: usize) -> u32 {
    // floor(log2(w / 16)), capped at the table's end.
    let bucket = usize::try_from((w / MIN_WINDOW).max(1).ilog2()).unwrap_or(usize::MAX);
    let last = MISSING_CUTOFF.len().saturating_sub(1);
    MISSING_CUTOFF
        .get(bucket.min(last))
        .map_or(u32::MAX, |&t| u32::from(t))
}

/// All tests on one window of `MIN_WINDOW..=WINDOW` bytes.
fn screen_window(b: &[u8]) -> Result<(), ScreenTrip> {
    let w = b.len();
    // Byte histogram, four interleaved tables (counts fit u16: w <= 4096).
    let mut hist = [[0u16; 256]; 4];
    let mut quads = b.chunks_exact(4);
    for q in &mut quads {
        for (h, &x) in hist.iter_mut().zip(q) {
            if let Some(c) = h.get_mut(usize::from(x)) {
                *c = c.wrapping_add(1);
            }
        }
    }
    for &x in quads.remainder() {
        if let Some(c) = hist[0].get_mut(usize::from(x)) {
            *c = c.wrapping_add(1);
        }
    }
    let mut missing = 0u32;
    let mut most = 0u32;
    for v in 0..256 {
        let c: u32 = hist
            .iter()
            .map(|h| h.get(v).map_or(0, |&c| u32::from(c)))
            .sum();
        missing = missing.saturating_add(u32::from(c == 0));
        most = most.max(c);
    }
    if missing >= missing_cutoff(w) {
        return Err(ScreenTrip::ByteSubset);
    }
    if most >= binomial_cutoff(&BIAS_CUTOFF, w) {
        return Err(ScreenTrip::ByteBias);
    }
    for k in LAGS {
        // First difference at lag k is zero: b[i+k] == b[i].
        let (Some(x), Some(y)) = (b.get(..w.saturating_sub(k)), b.get(k..)) else {
            continue;
        };
        let equal = count_equal(x, y);
        if !x.is_empty() && equal >= binomial_cutoff(&DIFF_CUTOFF, x.len()) {
            return Err(ScreenTrip::ConstantDifference);
        }
        // Second difference at lag k is zero: an arithmetic progression.
        let n2 = w.saturating_sub(k.saturating_mul(2));
        let (Some(x), Some(y), Some(z)) = (b.get(..n2), b.get(k..), b.get(k.saturating_mul(2)..))
        else {
            continue;
        };
        let flat = count_flat(x, y, z);
        if n2 > 0 && flat >= binomial_cutoff(&DIFF_CUTOFF, n2) {
            return Err(ScreenTrip::ConstantDifference);
        }
    }
    if repeats(b) >= REPEAT_CUTOFF {
        return Err(ScreenTrip::Repeats);
    }
    Ok(())
}

/// Positions `i` where `x[i] == y[i]` (up to the shorter length). Counted
/// in byte lanes of at most 255 positions, which the compiler turns into
/// byte-wide vector compares.
fn count_equal(x: &[u8], y: &[u8]) -> u32 {
    let mut total = 0u32;
    for (cx, cy) in x.chunks(255).zip(y.chunks(255)) {
        let mut lane = 0u8;
        for (p, q) in cx.iter().zip(cy) {
            lane = lane.wrapping_add(u8::from(p == q));
        }
        total = total.saturating_add(u32::from(lane));
    }
    total
}

/// Positions `i` where `z[i] - 2 y[i] + x[i] == 0` (mod 256), as
/// [`count_equal`].
fn count_flat(x: &[u8], y: &[u8], z: &[u8]) -> u32 {
    let mut total = 0u32;
    for ((cx, cy), cz) in x.chunks(255).zip(y.chunks(255)).zip(z.chunks(255)) {
        let mut lane = 0u8;
        for ((&p, &q), &r) in cx.iter().zip(cy).zip(cz) {
            lane = lane.wrapping_add(u8::from(
                r.wrapping_sub(q.wrapping_add(q)).wrapping_add(p) == 0,
            ));
        }
        total = total.saturating_add(u32::from(lane));
    }
    total
}

/// Equal 8-byte groups at 8-aligned offsets of `b`, found through a table
/// of the last offset seen per hash (a miss only lowers the count).
fn repeats(b: &[u8]) -> u32 {
    // Offset + 1 of the last group per slot; 0 is empty. Offsets < 4096.
    let mut table = [0u16; TABLE];
    let mut found = 0u32;
    for (i, group) in b.chunks_exact(8).enumerate() {
        let Ok(g) = <[u8; 8]>::try_from(group) else {
            continue;
        };
        let g = u64::from_le_bytes(g);
        // Fibonacci hashing: the top 10 bits of the product.
        let slot = usize::try_from(g.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54).unwrap_or(0);
        let Some(entry) = table.get_mut(slot) else {
            continue;
        };
        if let Some(prev) = usize::from(*entry).checked_sub(1) {
            let at = prev.saturating_mul(8);
            let same = b
                .get(at..at.saturating_add(8))
                .and_then(|p| <[u8; 8]>::try_from(p).ok())
                .is_some_and(|p| u64::from_le_bytes(p) == g);
            found = found.saturating_add(u32::from(same));
        }
        *entry = u16::try_from(i.saturating_add(1)).unwrap_or(0);
    }
    found
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_lossless
)]
mod tests {
    use super::*;

    #[test]
    fn missing_cutoffs_meet_their_bound() {
        // log2 C(256, t) + w log2(1 - t/256) <= -48 at t, and > -48 at t-1
        // (the smallest such t), for w = 16 << i.
        fn log2_choose(n: u32, k: u32) -> f64 {
            (0..k)
                .map(|i| f64::from(n - i).log2() - f64::from(i + 1).log2())
                .sum()
        }
        for (i, &t) in MISSING_CUTOFF.iter().enumerate() {
            let w = f64::from(16u32 << i);
            let bound = |t: u32| log2_choose(256, t) + w * (1.0 - f64::from(t) / 256.0).log2();
            assert!(bound(u32::from(t)) <= -48.0, "i {i}");
            assert!(bound(u32::from(t) - 1) > -48.0, "i {i}: not the smallest");
        }
    }

    #[test]
    fn binomial_cutoffs_meet_their_bound() {
        // (e N q / t)^t <= 2^-beta with t > e N q, q = 1/256, N = 2^i; and
        // t - 1 does not (the smallest).
        let ok = |n: f64, t: f64, beta: f64| {
            t > core::f64::consts::E * n / 256.0
                && t * (t * 256.0 / (core::f64::consts::E * n)).log2() >= beta
        };
        for (table, beta) in [(&DIFF_CUTOFF, 48.0), (&BIAS_CUTOFF, 56.0)] {
            for (i, &t) in table.iter().enumerate() {
                let n = f64::from(1u32 << i);
                assert!(ok(n, f64::from(t), beta), "i {i}");
                assert!(!ok(n, f64::from(t) - 1.0, beta), "i {i}: not the smallest");
            }
        }
        assert_eq!(binomial_cutoff(&DIFF_CUTOFF, 4096), 70);
        assert_eq!(binomial_cutoff(&DIFF_CUTOFF, 4095), 70);
        assert_eq!(binomial_cutoff(&DIFF_CUTOFF, 2049), 70);
        assert_eq!(binomial_cutoff(&DIFF_CUTOFF, 2048), 46);
        assert_eq!(binomial_cutoff(&DIFF_CUTOFF, 1), 6);
    }

    #[test]
    fn missing_cutoff_picks_the_bucket_below() {
        assert_eq!(missing_cutoff(16), 250);
        assert_eq!(missing_cutoff(64), 223);
        assert_eq!(missing_cutoff(127), 223);
        assert_eq!(missing_cutoff(128), 191);
        assert_eq!(missing_cutoff(4095), 9);
        assert_eq!(missing_cutoff(4096), 3);
    }

    #[test]
    fn context_judges_short_pieces_with_the_bytes_before() {
        let mut s = 5u64;
        let mut rnd = [0u8; 1024];
        for x in rnd.iter_mut() {
            *x = (crate::hw::fake::splitmix64(&mut s) >> 56) as u8;
        }
        let mut ctx = ScreenContext::new();
        assert_eq!(ctx.screen(&rnd[..8]), Screen::TooShort);
        assert_eq!(ctx.screen(&rnd[8..40]), Screen::Pass, "8 + 32 bytes judged");
        assert_eq!(ctx.screen(&rnd[40..]), Screen::Pass);
        assert_eq!(&ctx.last[..], &rnd[1024 - CONTEXT..]);
        // Text a few bytes at a time: random context ages out, it trips.
        let text = b"the pool mixes bytes from several sources into blocks ";
        let mut tripped = false;
        for chunk in text
            .iter()
            .cycle()
            .take(2048)
            .collect::<std::vec::Vec<_>>()
            .chunks(8)
        {
            let piece: std::vec::Vec<u8> = chunk.iter().map(|&&b| b).collect();
            if matches!(ctx.screen(&piece), Screen::Trip(_)) {
                tripped = true;
                break;
            }
        }
        assert!(tripped);
    }

    #[test]
    fn repeats_counts_equal_aligned_groups() {
        let mut b = [0u8; 64];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37) ^ 0x5A;
        }
        assert_eq!(repeats(&b), 0);
        let g: [u8; 8] = b[8..16].try_into().unwrap();
        b[40..48].copy_from_slice(&g);
        assert_eq!(repeats(&b), 1);
        b[56..64].copy_from_slice(&g);
        assert_eq!(repeats(&b), 2);
    }

    #[test]
    fn windows_cover_the_whole_piece() {
        // Random-looking bytes with one tripping run at the very end.
        let mut s = 1u64;
        let mut piece = [0u8; WINDOW * 2 + 100];
        for x in piece.iter_mut() {
            *x = (crate::hw::fake::splitmix64(&mut s) >> 56) as u8;
        }
        assert_eq!(screen(&piece), Screen::Pass);
        let n = piece.len();
        piece[n - 80..].fill(7);
        assert!(matches!(screen(&piece), Screen::Trip(_)));
    }
}
