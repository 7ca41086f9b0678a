//! SP 800-90B 6.3.7 to 6.3.10: the prediction estimates (multi-MCW, lag,
//! multi-MMC, LZ78Y) and the shared `P_global` / `P_local` bound of 6.3.7
//! steps 4 to 6. Multi-MCW needs no allocation; the others keep tables that
//! grow with the alphabet (feature `alloc`).

use super::basic::bisect;
use super::{ZALPHA, count};
use crate::error::Error;

#[cfg(feature = "alloc")]
use alloc::{collections::BTreeMap, vec, vec::Vec};

/// `log(1 - p x) - log((r + 1 - r x) q) - (N + 1) log x` of 6.3.7 step 6,
/// with `x` found by fixed-point iteration as NIST's tool does.
fn prediction_function(p: f64, r: u64, n: u64) -> f64 {
    let q = 1.0 - p;
    let rf = count(r);
    let mut x = 1.0f64;
    let mut last = 0.0f64;
    let pr = libm::pow(p, rf);
    let mut i = 0;
    while i <= 65 && (x - last) > f64::EPSILON * x {
        last = x;
        x = 1.0 + q * pr * libm::pow(x, rf + 1.0);
        i += 1;
    }
    libm::log(1.0 - p * x) - libm::log((rf + 1.0 - rf * x) * q) - (count(n) + 1.0) * libm::log(x)
}

/// The prediction estimate from `correct` right guesses out of `n`, the
/// longest run of right guesses, and the alphabet size `k`.
#[must_use]
pub fn prediction_estimate(correct: u64, n: u64, max_run: u64, k: u64) -> f64 {
    let mut cur_max = 1.0 / count(k.max(1));
    let nf = count(n);
    let p_global = count(correct) / nf;
    let p_global_prime = if p_global > 0.0 {
        (p_global + ZALPHA * libm::sqrt(p_global * (1.0 - p_global) / (nf - 1.0))).min(1.0)
    } else {
        1.0 - libm::pow(0.01, 1.0 / nf)
    };
    cur_max = cur_max.max(p_global_prime);
    let log_alpha = libm::log(0.99);
    if cur_max < 1.0 && prediction_function(cur_max, max_run + 1, n) > log_alpha {
        let p_local = bisect(cur_max, 1.0, log_alpha, 1.0, |p| {
            prediction_function(p, max_run + 1, n)
        });
        cur_max = cur_max.max(p_local);
    }
    -libm::log2(cur_max)
}

/// Counts right guesses and the longest run of them.
#[derive(Default)]
struct Score {
    correct: u64,
    run: u64,
    max_run: u64,
}

impl Score {
    fn hit(&mut self) {
        self.correct += 1;
        self.run += 1;
        self.max_run = self.max_run.max(self.run);
    }
    fn miss(&mut self) {
        self.run = 0;
    }
}

/// Windows of the multi-MCW estimate.
const MCW_WINDOWS: [usize; 4] = [63, 255, 1023, 4095];

/// 6.3.7 Multi Most Common in Window prediction estimate of `symbols`
/// (values below `k`).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for at most 4095 symbols, (`symbol`)
/// for a symbol `>= k`.
pub fn multi_mcw(symbols: &[u8], k: u16) -> Result<f64, Error> {
    super::check_alphabet(symbols, k)?;
    let len = symbols.len();
    super::need("samples", len, 4096)?;
    let mut win_cnts = [[0u64; 256]; 4];
    let mut win_poses = [[0usize; 256]; 4];
    let mut max_cnts = [0u64; 4];
    let mut frequent = [0u8; 4];
    let mut scoreboard = [0u64; 4];
    let mut winner = 0usize;
    let mut score = Score::default();
    for (i, &s) in symbols.iter().enumerate().take(MCW_WINDOWS[3]) {
        for j in 0..4 {
            if i < MCW_WINDOWS[j] {
                win_cnts[j][usize::from(s)] += 1;
                if max_cnts[j] <= win_cnts[j][usize::from(s)] {
                    max_cnts[j] = win_cnts[j][usize::from(s)];
                    frequent[j] = s;
                }
                win_poses[j][usize::from(s)] = i;
            }
        }
    }
    for i in MCW_WINDOWS[0]..len {
        let s = symbols.get(i).copied().unwrap_or(0);
        if frequent[winner] == s {
            score.hit();
        } else {
            score.miss();
        }
        for j in 0..4 {
            if i >= MCW_WINDOWS[j] && frequent[j] == s {
                scoreboard[j] += 1;
                if scoreboard[j] >= scoreboard[winner] {
                    winner = j;
                }
            }
        }
        for j in 0..4 {
            let w = MCW_WINDOWS[j];
            if i < w {
                continue;
            }
            let old = symbols.get(i - w).copied().unwrap_or(0);
            let cnts = &mut win_cnts[j];
            cnts[usize::from(old)] = cnts[usize::from(old)].saturating_sub(1);
            cnts[usize::from(s)] += 1;
            win_poses[j][usize::from(s)] = i;
            if old != frequent[j] && max_cnts[j] <= cnts[usize::from(s)] {
                max_cnts[j] = cnts[usize::from(s)];
                frequent[j] = s;
            } else if old == frequent[j] {
                max_cnts[j] = max_cnts[j].saturating_sub(1);
                let mut max_pos = i - w;
                for sym in 0..usize::from(k).min(256) {
                    let c = cnts[sym];
                    let pos = win_poses[j][sym];
                    if max_cnts[j] < c || (max_cnts[j] == c && max_pos <= pos) {
                        max_cnts[j] = c;
                        frequent[j] = u8::try_from(sym).unwrap_or(u8::MAX);
                        max_pos = pos;
                    }
                }
            }
        }
    }
    let n = (len - MCW_WINDOWS[0]) as u64;
    Ok(prediction_estimate(
        score.correct,
        n,
        score.max_run,
        u64::from(k),
    ))
}

/// Lags of the lag prediction estimate.
#[cfg(feature = "alloc")]
const D_LAG: usize = 128;

/// 6.3.8 Lag prediction estimate of `symbols` (values below `k`).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 3 symbols, (`symbol`)
/// for a symbol `>= k`.
#[cfg(feature = "alloc")]
pub fn lag(symbols: &[u8], k: u16) -> Result<f64, Error> {
    super::check_alphabet(symbols, k)?;
    let len = symbols.len();
    super::need("samples", len, 3)?;
    // For each symbol, the positions of its last D_LAG occurrences (ring).
    let mut rings: Vec<([usize; D_LAG], u8, u8)> = vec![([0; D_LAG], 0, 0); 256];
    let mut scoreboard = [0u64; D_LAG];
    let mut winner = 0usize;
    let mut high = 0u64;
    let mut score = Score::default();
    if let Some(r) = rings.get_mut(usize::from(symbols.first().copied().unwrap_or(0))) {
        r.0[0] = 0;
        r.1 = 0;
        r.2 = 1;
    }
    for i in 1..len {
        let cur = symbols.get(i).copied().unwrap_or(0);
        if i > winner && symbols.get(i - winner - 1) == Some(&cur) {
            score.hit();
        } else {
            score.miss();
        }
        let Some((buf, start, end)) = rings.get_mut(usize::from(cur)) else {
            continue;
        };
        if *start != *end {
            let mut idx = *end;
            let cutoff = i.saturating_sub(D_LAG);
            loop {
                idx = idx.wrapping_sub(1);
                let pos = buf[usize::from(idx) & (D_LAG - 1)];
                if pos >= cutoff {
                    let offset = i - pos - 1;
                    if let Some(sc) = scoreboard.get_mut(offset) {
                        *sc += 1;
                        if *sc >= high {
                            winner = offset;
                            high = *sc;
                        }
                    }
                } else {
                    *start = idx.wrapping_add(1);
                    break;
                }
                if idx == *start {
                    break;
                }
            }
        }
        if usize::from(end.wrapping_sub(*start)) == D_LAG {
            *start = start.wrapping_add(1);
        }
        buf[usize::from(*end) & (D_LAG - 1)] = i;
        *end = end.wrapping_add(1);
    }
    Ok(prediction_estimate(
        score.correct,
        (len - 1) as u64,
        score.max_run,
        u64::from(k),
    ))
}

/// Depth of the multi-MMC estimate.
#[cfg(feature = "alloc")]
const D_MMC: usize = 16;
/// Entries per depth of the multi-MMC estimate.
#[cfg(feature = "alloc")]
const MMC_MAX_ENTRIES: u64 = 100_000;
/// Longest prefix of the LZ78Y estimate.
#[cfg(feature = "alloc")]
const LZ_B: usize = 16;
/// Dictionary size of the LZ78Y estimate.
#[cfg(feature = "alloc")]
const LZ_MAX_DICTIONARY: u64 = 65_536;

/// The counts of the symbols seen after one prefix, and the current
/// prediction (highest count; on a tie at increment, the larger symbol).
#[cfg(feature = "alloc")]
#[derive(Default)]
struct Postfixes {
    counts: Vec<(u8, u64)>,
    best: u64,
    prediction: u8,
}

#[cfg(feature = "alloc")]
impl Postfixes {
    /// Counts `y`; adds it when new and `make_new`. True when added.
    fn increment(&mut self, y: u8, make_new: bool) -> bool {
        let (c, new) = if let Some(e) = self.counts.iter_mut().find(|e| e.0 == y) {
            e.1 += 1;
            (e.1, false)
        } else if make_new {
            self.counts.push((y, 1));
            (1, true)
        } else {
            return false;
        };
        if c > self.best || (c == self.best && y > self.prediction) {
            self.prediction = y;
            self.best = c;
        }
        new
    }
}

/// A prefix of up to 16 symbols, zero-padded.
#[cfg(feature = "alloc")]
fn prefix(symbols: &[u8], from: usize, len: usize) -> [u8; 16] {
    let mut x = [0u8; 16];
    if let (Some(src), Some(dst)) = (symbols.get(from..from + len), x.get_mut(..len)) {
        dst.copy_from_slice(src);
    }
    x
}

/// The binary dictionaries of multi-MMC and LZ78Y: for each prefix length
/// `m` in `1..=16`, two counters for each of the `2^m` prefixes.
#[cfg(feature = "alloc")]
struct BinaryDict {
    table: Vec<u64>,
}

#[cfg(feature = "alloc")]
impl BinaryDict {
    fn new() -> Self {
        // Lengths 1..=16 take 2^(m+1) counters each: 2^18 - 4 in all.
        BinaryDict {
            table: vec![0; 1 << 18],
        }
    }
    /// The index of the counter pair of the length-`m` prefix `pattern`.
    fn at(m: usize, pattern: u32) -> usize {
        let base = (1usize << (m + 1)) - 4;
        let masked = (pattern as usize) & ((1usize << m) - 1);
        base + (masked << 1)
    }
    fn get(&self, m: usize, pattern: u32, y: u8) -> u64 {
        self.table
            .get(Self::at(m, pattern) + usize::from(y & 1))
            .copied()
            .unwrap_or(0)
    }
    fn slot(&mut self, m: usize, pattern: u32, y: u8) -> Option<&mut u64> {
        self.table
            .get_mut(Self::at(m, pattern) + usize::from(y & 1))
    }
}

/// 6.3.9 Multi Markov Model with Counting prediction estimate of `symbols`
/// (values below `k`).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 4 symbols, (`symbol`)
/// for a symbol `>= k`.
#[cfg(feature = "alloc")]
pub fn multi_mmc(symbols: &[u8], k: u16) -> Result<f64, Error> {
    super::check_alphabet(symbols, k)?;
    let len = symbols.len();
    super::need("samples", len, 4)?;
    if k == 2 {
        return Ok(binary_multi_mmc(symbols));
    }
    let n = len - 2;
    let mut maps: Vec<BTreeMap<[u8; 16], Postfixes>> =
        (0..D_MMC).map(|_| BTreeMap::new()).collect();
    let mut entries = [0u64; D_MMC];
    let mut scoreboard = [0u64; D_MMC];
    let mut winner = 0usize;
    let mut score = Score::default();
    for (d, e) in entries.iter_mut().enumerate().take(n) {
        let x = prefix(symbols, 0, d + 1);
        if let (Some(m), Some(&y)) = (maps.get_mut(d), symbols.get(d + 1)) {
            m.entry(x).or_default().increment(y, true);
        }
        *e = 1;
    }
    for i in 2..len {
        let y = symbols.get(i).copied().unwrap_or(0);
        let cur_winner = winner;
        let mut found = false;
        for d in 0..D_MMC.min(i - 1) {
            let Some(map) = maps.get_mut(d) else { break };
            let x = prefix(symbols, i - d - 1, d + 1);
            if d == 0 || found {
                found = map.contains_key(&x);
            }
            if found {
                let Some(post) = map.get_mut(&x) else { break };
                if post.prediction == y {
                    scoreboard[d] += 1;
                    if scoreboard[d] >= scoreboard[winner] {
                        winner = d;
                    }
                    if d == cur_winner {
                        score.hit();
                    }
                } else if d == cur_winner {
                    score.miss();
                }
                if post.increment(y, entries[d] < MMC_MAX_ENTRIES) {
                    entries[d] += 1;
                }
            } else if entries[d] < MMC_MAX_ENTRIES {
                map.entry(x).or_default().increment(y, true);
                entries[d] += 1;
            }
        }
    }
    Ok(prediction_estimate(
        score.correct,
        n as u64,
        score.max_run,
        u64::from(k),
    ))
}

#[cfg(feature = "alloc")]
fn binary_multi_mmc(s: &[u8]) -> f64 {
    let len = s.len();
    let mut dict = BinaryDict::new();
    let mut dict_elems = [0u64; D_MMC];
    let mut scoreboard = [0u64; D_MMC];
    let mut winner = 0usize;
    let mut score = Score::default();
    let bit = |i: usize| s.get(i).copied().unwrap_or(0) & 1;
    let mut pattern = 0u32;
    for (d, e) in dict_elems.iter_mut().enumerate() {
        pattern = (pattern << 1) | u32::from(bit(d));
        if let Some(c) = dict.slot(d + 1, pattern, bit(d + 1)) {
            *c = 1;
        }
        *e = 1;
    }
    for i in 2..len {
        let y = bit(i);
        let cur_winner = winner;
        let mut found = false;
        let mut pattern = 0u32;
        for d in 0..D_MMC.min(i - 1) {
            pattern |= u32::from(bit(i - d - 1)) << d;
            let mut prediction = 2u8;
            if d == 0 || found {
                let (c0, c1) = (dict.get(d + 1, pattern, 0), dict.get(d + 1, pattern, 1));
                let c = if c0 > c1 {
                    prediction = 0;
                    c0
                } else {
                    prediction = 1;
                    c1
                };
                found = c != 0;
            }
            if found {
                if prediction == y {
                    scoreboard[d] += 1;
                    if scoreboard[d] >= scoreboard[winner] {
                        winner = d;
                    }
                    if d == cur_winner {
                        score.hit();
                    }
                } else if d == cur_winner {
                    score.miss();
                }
                let full = dict_elems[d] >= MMC_MAX_ENTRIES;
                if let Some(c) = dict.slot(d + 1, pattern, y) {
                    if *c != 0 {
                        *c += 1;
                    } else if !full {
                        *c = 1;
                        dict_elems[d] += 1;
                    }
                }
            } else if dict_elems[d] < MMC_MAX_ENTRIES {
                if let Some(c) = dict.slot(d + 1, pattern, y) {
                    *c = 1;
                }
                dict_elems[d] += 1;
            }
        }
    }
    prediction_estimate(score.correct, (len - 2) as u64, score.max_run, 2)
}

/// 6.3.10 LZ78Y prediction estimate of `symbols` (values below `k`).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 19 symbols, (`symbol`)
/// for a symbol `>= k`.
#[cfg(feature = "alloc")]
pub fn lz78y(symbols: &[u8], k: u16) -> Result<f64, Error> {
    super::check_alphabet(symbols, k)?;
    let len = symbols.len();
    super::need("samples", len, LZ_B + 3)?;
    if k == 2 {
        return Ok(binary_lz78y(symbols));
    }
    let mut dicts: Vec<BTreeMap<[u8; 16], Postfixes>> =
        (0..LZ_B).map(|_| BTreeMap::new()).collect();
    let mut dict_size = 0u64;
    let mut score = Score::default();
    let after = symbols.get(LZ_B).copied().unwrap_or(0);
    for j in 1..=LZ_B {
        let x = prefix(symbols, LZ_B - j, j);
        if let Some(m) = dicts.get_mut(j - 1) {
            m.entry(x).or_default().increment(after, true);
        }
        dict_size += 1;
    }
    for i in (LZ_B + 1)..len {
        let y = symbols.get(i).copied().unwrap_or(0);
        let mut have = false;
        let mut prediction = 0u8;
        let mut max_count = 0u64;
        for j in (1..=LZ_B).rev() {
            let Some(map) = dicts.get_mut(j - 1) else {
                continue;
            };
            let x = prefix(symbols, i - j, j);
            if let Some(post) = map.get_mut(&x) {
                if post.best > max_count {
                    max_count = post.best;
                    prediction = post.prediction;
                    have = true;
                }
                post.increment(y, true);
            } else if dict_size < LZ_MAX_DICTIONARY {
                map.entry(x).or_default().increment(y, true);
                dict_size += 1;
            }
        }
        if have && prediction == y {
            score.hit();
        } else {
            score.miss();
        }
    }
    Ok(prediction_estimate(
        score.correct,
        (len - LZ_B - 1) as u64,
        score.max_run,
        u64::from(k),
    ))
}

#[cfg(feature = "alloc")]
fn binary_lz78y(s: &[u8]) -> f64 {
    let len = s.len();
    let bit = |i: usize| s.get(i).copied().unwrap_or(0) & 1;
    let mut dict = BinaryDict::new();
    let mut dict_elems = 0u64;
    let mut score = Score::default();
    let mut pattern = 0u32;
    for j in 0..LZ_B {
        pattern |= u32::from(bit(LZ_B - j - 1)) << j;
        if let Some(c) = dict.slot(j + 1, pattern, bit(LZ_B)) {
            *c = 1;
        }
        dict_elems += 1;
    }
    for i in (LZ_B + 1)..len {
        let y = bit(i);
        let mut have = false;
        let mut prediction = 2u8;
        let mut max_count = 0u64;
        let full = (i - LZ_B..i).fold(0u32, |acc, t| (acc << 1) | u32::from(bit(t)));
        for j in (1..=LZ_B).rev() {
            let pattern = full & ((1u32 << j) - 1);
            let (c0, c1) = (dict.get(j, pattern, 0), dict.get(j, pattern, 1));
            let (round, c) = if c0 > c1 { (0u8, c0) } else { (1u8, c1) };
            if c != 0 {
                if c > max_count {
                    max_count = c;
                    have = true;
                    prediction = round;
                }
                if let Some(slot) = dict.slot(j, pattern, y) {
                    *slot += 1;
                }
            } else if dict_elems < LZ_MAX_DICTIONARY {
                if let Some(slot) = dict.slot(j, pattern, y) {
                    *slot = 1;
                }
                dict_elems += 1;
            }
        }
        if have && prediction == y {
            score.hit();
        } else {
            score.miss();
        }
    }
    prediction_estimate(score.correct, (len - LZ_B - 1) as u64, score.max_run, 2)
}
