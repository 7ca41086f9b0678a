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
//!   window trips the piece. The work is three passes over each window
//!   (a byte histogram; all eight difference counts at once, 16 positions
//!   per step; one hash pass over its 8-byte groups): linear in the piece,
//!   no allocation, no panic.
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
    let (missing, most) = byte_counts(b);
    if missing >= missing_cutoff(w) {
        return Err(ScreenTrip::ByteSubset);
    }
    if most >= binomial_cutoff(&BIAS_CUTOFF, w) {
        return Err(ScreenTrip::ByteBias);
    }
    let counts = difference_counts(b);
    for (k, c) in LAGS.iter().zip(counts.iter()) {
        // First difference at lag k is zero (`b[i+k] == b[i]`) at `equal`
        // of the `w - k` positions; the second (an arithmetic progression)
        // at `flat` of the `w - 2k`.
        let n1 = w.saturating_sub(*k);
        if n1 > 0 && c.equal >= binomial_cutoff(&DIFF_CUTOFF, n1) {
            return Err(ScreenTrip::ConstantDifference);
        }
        let n2 = w.saturating_sub(k.saturating_mul(2));
        if n2 > 0 && c.flat >= binomial_cutoff(&DIFF_CUTOFF, n2) {
            return Err(ScreenTrip::ConstantDifference);
        }
    }
    if repeats(b) >= REPEAT_CUTOFF {
        return Err(ScreenTrip::Repeats);
    }
    Ok(())
}

/// Byte values that do not occur in `b` (`b.len() <= WINDOW`), and the
/// count of the most frequent one.
///
/// Eight bytes are read at once and counted into four sub-tables of `u16`
/// (byte `j` of each group into table `j % 4`; 2 KiB of stack): an increment rarely waits
/// on the store of the one before it (a store-to-load forward of the same
/// counter), and one load serves eight counts.
fn byte_counts(b: &[u8]) -> (u32, u32) {
    // A table counts at most a quarter of the window plus the tail:
    // below 2048, no wrap in u16.
    let mut hist = [[0u16; 256]; 4];
    let mut groups = b.chunks_exact(8);
    for g in &mut groups {
        let Some(g) = g.first_chunk::<8>() else {
            continue;
        };
        let v = u64::from_le_bytes(*g);
        for j in 0..8usize {
            // A byte value (below 256) in table j % 4: never misses.
            let x = usize::try_from((v >> (8 * j)) & 0xff).unwrap_or(0);
            if let Some(c) = hist.get_mut(j % 4).and_then(|h| h.get_mut(x)) {
                *c = c.wrapping_add(1);
            }
        }
    }
    for (j, &x) in groups.remainder().iter().enumerate() {
        if let Some(c) = hist.get_mut(j % 4).and_then(|h| h.get_mut(usize::from(x))) {
            *c = c.wrapping_add(1);
        }
    }
    let [h0, h1, h2, h3] = hist;
    let mut missing = 0u32;
    let mut most = 0u32;
    for (((a, b), c), d) in h0.iter().zip(&h1).zip(&h2).zip(&h3) {
        // Counts are at most WINDOW: the sum never wraps.
        let n = u32::from(*a)
            .wrapping_add(u32::from(*b))
            .wrapping_add(u32::from(*c))
            .wrapping_add(u32::from(*d));
        missing = missing.wrapping_add(u32::from(n == 0));
        most = most.max(n);
    }
    (missing, most)
}

/// The difference counts at one lag `k`.
#[derive(Clone, Copy, Default)]
struct LagCounts {
    /// Positions `i < w - k` with `b[i+k] == b[i]`.
    equal: u32,
    /// Positions `i < w - 2k` with `b[i+2k] - 2 b[i+k] + b[i] == 0`
    /// (mod 256).
    flat: u32,
}

/// Positions per step of [`difference_counts`]' main loop.
const STEP: usize = 16;
/// Bytes each step reads: its positions plus the largest offset, `2 * 8`.
const REACH: usize = STEP + 16;

/// The eight difference counts of `b` (one [`LagCounts`] per lag of
/// [`LAGS`]) in one pass: each step loads 16 positions and their
/// neighbours at offsets 1, 2, 4, 8 and 16 once and updates all eight
/// counts with byte-wide compares (the compiler turns the fixed-size
/// arrays into vector registers). Counters are bytes, emptied into the
/// totals at least every 255 steps; the positions the main loop cannot
/// reach (within [`REACH`] of the end) are counted one at a time.
fn difference_counts(b: &[u8]) -> [LagCounts; 4] {
    let w = b.len();
    let mut totals = [LagCounts::default(); 4];
    let mut lanes = [[0u8; STEP]; 8];
    let mut steps = 0u32;
    let mut i = 0usize;
    while let Some(a) = b.get(i..).and_then(|s| s.first_chunk::<REACH>()) {
        let at = |o: usize| -> [u8; STEP] {
            a.get(o..)
                .and_then(|s| s.first_chunk::<STEP>())
                .copied()
                .unwrap_or([0; STEP])
        };
        let (x, y1, y2, y4, y8, y16) = (at(0), at(1), at(2), at(4), at(8), at(16));
        // Lane j holds position i + j; `[equal, flat]` per lag in turn.
        // Indices are below the arrays' fixed lengths: no bounds checks.
        for j in 0..STEP {
            let (p, q1, q2, q4, q8, q16) = (x[j], y1[j], y2[j], y4[j], y8[j], y16[j]);
            let flat =
                |q: u8, r: u8| u8::from(r.wrapping_sub(q.wrapping_add(q)).wrapping_add(p) == 0);
            lanes[0][j] = lanes[0][j].wrapping_add(u8::from(p == q1));
            lanes[1][j] = lanes[1][j].wrapping_add(flat(q1, q2));
            lanes[2][j] = lanes[2][j].wrapping_add(u8::from(p == q2));
            lanes[3][j] = lanes[3][j].wrapping_add(flat(q2, q4));
            lanes[4][j] = lanes[4][j].wrapping_add(u8::from(p == q4));
            lanes[5][j] = lanes[5][j].wrapping_add(flat(q4, q8));
            lanes[6][j] = lanes[6][j].wrapping_add(u8::from(p == q8));
            lanes[7][j] = lanes[7][j].wrapping_add(flat(q8, q16));
        }
        // i + REACH <= w: never wraps.
        i = i.wrapping_add(STEP);
        steps = steps.wrapping_add(1);
        if steps == 255 {
            drain(&mut lanes, &mut totals);
            steps = 0;
        }
    }
    drain(&mut lanes, &mut totals);
    // The rest of each lag's positions.
    for (k, t) in LAGS.iter().zip(totals.iter_mut()) {
        let k2 = k.saturating_mul(2);
        for p in i..w.saturating_sub(*k) {
            let (Some(&x), Some(&y)) = (b.get(p), b.get(p.saturating_add(*k))) else {
                continue;
            };
            t.equal = t.equal.wrapping_add(u32::from(x == y));
            if let Some(&z) = b.get(p.saturating_add(k2)) {
                t.flat = t.flat.wrapping_add(u32::from(
                    z.wrapping_sub(y.wrapping_add(y)).wrapping_add(x) == 0,
                ));
            }
        }
    }
    totals
}

/// Adds the byte counters (`[equal, flat]` per lag) to the totals and
/// clears them. Inlined, so the counters stay in vector registers.
#[inline(always)]
fn drain(lanes: &mut [[u8; STEP]; 8], totals: &mut [LagCounts; 4]) {
    for (pair, t) in lanes.chunks_exact(2).zip(totals.iter_mut()) {
        if let [eq, flat] = pair {
            t.equal = t
                .equal
                .wrapping_add(eq.iter().map(|&c| u32::from(c)).sum::<u32>());
            t.flat = t
                .flat
                .wrapping_add(flat.iter().map(|&c| u32::from(c)).sum::<u32>());
        }
    }
    *lanes = [[0; STEP]; 8];
}

/// Equal 8-byte groups at 8-aligned offsets of `b`, found through a table
/// of the last group seen per hash (a miss only lowers the count).
///
/// The table holds positions (group index + 1; 0 is empty), not the
/// groups: it holds no entropy, so it needs no wipe, and it takes 2 KiB of
/// stack, not 8 (firmware screens too).
fn repeats(b: &[u8]) -> u32 {
    let mut table = [0u16; TABLE];
    let mut found = 0u32;
    for (i, group) in b.chunks_exact(8).enumerate() {
        let Some(g) = group.first_chunk::<8>() else {
            continue;
        };
        let g = u64::from_le_bytes(*g);
        let Some(entry) = table.get_mut(repeat_slot(g)) else {
            continue;
        };
        if let Some(prev) = usize::from(*entry).checked_sub(1) {
            let at = prev.saturating_mul(8);
            let same = b
                .get(at..)
                .and_then(<[u8]>::first_chunk::<8>)
                .is_some_and(|p| u64::from_le_bytes(*p) == g);
            found = found.wrapping_add(u32::from(same));
        }
        // Group indexes stay below WINDOW / 8 = 512.
        *entry = u16::try_from(i.saturating_add(1)).unwrap_or(0);
    }
    found
}

/// The table slot of a group: Fibonacci hashing, the top 10 bits of the
/// product.
#[inline(always)]
fn repeat_slot(g: u64) -> usize {
    usize::try_from(g.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54).unwrap_or(0)
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

    /// The plain model: every count position by position.
    fn model(b: &[u8]) -> ((u32, u32), [(u32, u32); 4]) {
        let mut hist = [0u32; 256];
        for &x in b {
            hist[usize::from(x)] += 1;
        }
        let missing = hist.iter().filter(|&&c| c == 0).count() as u32;
        let most = *hist.iter().max().unwrap();
        let diffs = LAGS.map(|k| {
            let equal = (0..b.len().saturating_sub(k))
                .filter(|&i| b[i] == b[i + k])
                .count() as u32;
            let flat = (0..b.len().saturating_sub(2 * k))
                .filter(|&i| {
                    b[i + 2 * k]
                        .wrapping_sub(b[i + k].wrapping_mul(2))
                        .wrapping_add(b[i])
                        == 0
                })
                .count() as u32;
            (equal, flat)
        });
        ((missing, most), diffs)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

        /// The histogram and the one-pass difference counts equal the plain
        /// model on windows of every length, random or with a patterned
        /// stretch (a run, a counter with a random step, a short period)
        /// anywhere, so every count is exercised away from zero.
        #[test]
        fn counts_equal_the_plain_model(len in MIN_WINDOW..=WINDOW, seed in proptest::prelude::any::<u64>(),
                                        kind in 0u8..4, at in 0usize..WINDOW, span in 0usize..600,
                                        step in proptest::prelude::any::<u8>()) {
            let mut s = seed;
            let mut b: std::vec::Vec<u8> = (0..len)
                .map(|_| (crate::hw::fake::splitmix64(&mut s) >> 56) as u8)
                .collect();
            let from = at % len;
            let to = (from + span).min(len);
            let orig = b.clone();
            for (i, x) in b[from..to].iter_mut().enumerate() {
                *x = match kind {
                    0 => step,
                    1 => (i as u8).wrapping_mul(step),
                    2 => [1, 9, 250][i % 3],
                    3 if span % 2 == 0 => orig[from + i % 24],
                    _ => *x,
                };
            }
            let ((missing, most), diffs) = model(&b);
            proptest::prop_assert_eq!(byte_counts(&b), (missing, most));
            let got = difference_counts(&b).map(|c| (c.equal, c.flat));
            proptest::prop_assert_eq!(got, diffs);
            // Repeats: each group against the last earlier group with the
            // same slot, searched backwards.
            let groups: std::vec::Vec<u64> = b
                .chunks_exact(8)
                .map(|g| u64::from_le_bytes(g.try_into().unwrap()))
                .collect();
            let want = (0..groups.len())
                .filter(|&i| {
                    (0..i)
                        .rev()
                        .find(|&j| repeat_slot(groups[j]) == repeat_slot(groups[i]))
                        .is_some_and(|j| groups[j] == groups[i])
                })
                .count() as u32;
            proptest::prop_assert_eq!(repeats(&b), want);
        }
    }

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
    fn repeat_table_fillers_never_match() {
        // The empty-slot fillers hash to another slot than the one they
        // fill.
        assert_eq!(repeat_slot(0), 0);
        assert_eq!(repeat_slot(1), 632);
        // All-zero and all-one groups: only real repeats count.
        let mut b = [0u8; 64];
        assert_eq!(repeats(&b[..8]), 0);
        assert_eq!(repeats(&b[..16]), 1);
        b[..8].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(repeats(&b[..16]), 0);
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
