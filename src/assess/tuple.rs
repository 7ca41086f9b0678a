//! SP 800-90B 6.3.5 t-tuple and 6.3.6 longest-repeated-substring (LRS)
//! estimates, both from one suffix array and its LCP array (feature
//! `alloc`: about 12 bytes of working memory per symbol).
//!
//! The tuple counts follow Aaron Kaufer's method, as NIST's tool does:
//! `Q[t]` (the largest count of any `t`-tuple) and the LRS sums come from
//! one pass over the LCP array.

use alloc::{vec, vec::Vec};

use super::{ZALPHA, count};
use crate::error::Error;

/// A string must occur at least this often to count in the t-tuple
/// estimate.
const TUPLE_MIN_COUNT: u64 = 35;

/// The suffix array of `text` (prefix doubling with counting sorts:
/// O(n log n)); a suffix that is a prefix of another sorts first.
fn suffix_array(text: &[u8]) -> Vec<u32> {
    let n = text.len();
    let mut sa: Vec<u32> = (0..n)
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    // Ranks are 1-based; 0 stands for "past the end".
    let mut rank: Vec<u32> = text.iter().map(|&b| u32::from(b) + 1).collect();
    let mut tmp: Vec<u32> = vec![0; n];
    let mut cnt: Vec<u32> = vec![0; n.max(257) + 2];
    let at = |v: &Vec<u32>, i: usize| v.get(i).copied().unwrap_or(0);
    sa.sort_unstable_by_key(|&i| at(&rank, i as usize));
    let mut k = 1usize;
    loop {
        // Order by the second key: suffixes with no second half first.
        let mut w = 0usize;
        for i in n.saturating_sub(k)..n {
            if let Some(t) = tmp.get_mut(w) {
                *t = u32::try_from(i).unwrap_or(u32::MAX);
            }
            w += 1;
        }
        for j in 0..n {
            let s = at(&sa, j) as usize;
            if s >= k {
                if let Some(t) = tmp.get_mut(w) {
                    *t = u32::try_from(s - k).unwrap_or(u32::MAX);
                }
                w += 1;
            }
        }
        // Stable counting sort by the first key.
        let max_rank = rank.iter().copied().max().unwrap_or(0) as usize;
        cnt.iter_mut().take(max_rank + 2).for_each(|c| *c = 0);
        for &r in &rank {
            if let Some(c) = cnt.get_mut(r as usize + 1) {
                *c += 1;
            }
        }
        for r in 1..=max_rank + 1 {
            let prev = at(&cnt, r - 1);
            if let Some(c) = cnt.get_mut(r) {
                *c += prev;
            }
        }
        for &i in &tmp {
            let r = at(&rank, i as usize) as usize;
            if let Some(c) = cnt.get_mut(r) {
                if let Some(slot) = sa.get_mut(*c as usize) {
                    *slot = i;
                }
                *c += 1;
            }
        }
        // New ranks: equal (first, second) pairs share a rank.
        let key =
            |rank: &Vec<u32>, i: usize| (at(rank, i), if i + k < n { at(rank, i + k) } else { 0 });
        let mut classes = 0u32;
        let mut prev = (u32::MAX, u32::MAX);
        for j in 0..n {
            let i = at(&sa, j) as usize;
            let kk = key(&rank, i);
            if kk != prev {
                classes += 1;
                prev = kk;
            }
            if let Some(t) = tmp.get_mut(i) {
                *t = classes;
            }
        }
        core::mem::swap(&mut rank, &mut tmp);
        if classes as usize >= n || k >= n {
            break;
        }
        k *= 2;
    }
    sa
}

/// `L` in Kaufer's convention: `L[0] = 0`, `L[i]` (1 <= i < n) the longest
/// common prefix of the suffixes ranked `i - 1` and `i`, `L[n] = 0`.
fn lcp_array(text: &[u8], sa: &[u32]) -> Vec<u32> {
    let n = text.len();
    let mut rank = vec![0u32; n];
    for (r, &s) in sa.iter().enumerate() {
        if let Some(x) = rank.get_mut(s as usize) {
            *x = u32::try_from(r).unwrap_or(u32::MAX);
        }
    }
    let mut l = vec![0u32; n + 1];
    let mut h = 0usize;
    for i in 0..n {
        let r = rank.get(i).copied().unwrap_or(0) as usize;
        if r > 0 {
            let j = sa.get(r - 1).copied().unwrap_or(0) as usize;
            while i + h < n && j + h < n && text.get(i + h) == text.get(j + h) {
                h += 1;
            }
            if let Some(x) = l.get_mut(r) {
                *x = u32::try_from(h).unwrap_or(u32::MAX);
            }
        }
        h = h.saturating_sub(1);
    }
    l
}

/// The t-tuple (6.3.5) and LRS (6.3.6) estimates of `symbols`: `None` where
/// the estimate does not apply (no string occurs 35 times; no repeated
/// string longer than the t-tuple range).
///
/// # Errors
/// [`Error::InvalidValue`] (`samples`) for fewer than 2 symbols or more
/// than `u32::MAX - 1`.
pub fn t_tuple_lrs(symbols: &[u8]) -> Result<(Option<f64>, Option<f64>), Error> {
    let n = symbols.len();
    super::need("samples", n, 2)?;
    if n >= u32::MAX as usize {
        return Err(Error::InvalidValue {
            param: "samples",
            value: n as u64,
            min: 2,
            max: u64::from(u32::MAX) - 1,
        });
    }
    let sa = suffix_array(symbols);
    let l = lcp_array(symbols, &sa);
    drop(sa);
    let get = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
    let li = |i: usize| l.get(i).copied().unwrap_or(0) as usize;
    let v = (1..n).map(li).max().unwrap_or(0);
    if v == 0 {
        // Every symbol differs: nothing repeats, neither estimate applies.
        return Ok((None, None));
    }
    let mut q = vec![1u64; v + 1];
    let mut a = vec![0u64; v + 2];
    let mut idx = vec![0usize; v + 3];
    let mut j = 0usize;
    for i in 1..=n {
        let mut c = 0u64;
        let (cur, prev) = (li(i), li(i - 1));
        if cur < prev {
            let mut t = prev;
            j = j.saturating_sub(1);
            while t > cur {
                let ij = idx.get(j).copied().unwrap_or(0);
                if j > 0 && ij == t {
                    let ij1 = idx.get(j + 1).copied().unwrap_or(0);
                    let add = get(&a, ij1);
                    if let Some(x) = a.get_mut(ij) {
                        *x += add;
                    }
                    if let Some(x) = a.get_mut(ij1) {
                        *x = 0;
                    }
                    j -= 1;
                }
                let ij1 = idx.get(j + 1).copied().unwrap_or(0);
                let cand = get(&a, ij1) + 1;
                if get(&q, t) >= cand {
                    t = if j > 0 {
                        idx.get(j).copied().unwrap_or(0)
                    } else {
                        cur
                    };
                } else {
                    if let Some(x) = q.get_mut(t) {
                        *x = cand;
                    }
                    t -= 1;
                }
            }
            let ij1 = idx.get(j + 1).copied().unwrap_or(0);
            c = get(&a, ij1);
            if let Some(x) = a.get_mut(ij1) {
                *x = 0;
            }
        }
        if cur > 0 {
            if j < 1 || idx.get(j).copied().unwrap_or(0) < cur {
                j += 1;
                if let Some(x) = idx.get_mut(j) {
                    *x = cur;
                }
            }
            let ij = idx.get(j).copied().unwrap_or(0);
            if let Some(x) = a.get_mut(ij) {
                *x += c + 1;
            }
        }
    }
    let mut u = 1usize;
    while u <= v && get(&q, u) >= TUPLE_MIN_COUNT {
        u += 1;
    }
    let nf = count(n as u64);
    let bound = |pmax: f64| (pmax + ZALPHA * libm::sqrt(pmax * (1.0 - pmax) / (nf - 1.0))).min(1.0);
    let mut pmax = -1.0f64;
    for i in 1..u {
        let p = count(get(&q, i)) / count((n - i + 1) as u64);
        pmax = pmax.max(libm::pow(p, 1.0 / count(i as u64)));
    }
    let t_tuple = (pmax > 0.0).then(|| -libm::log2(bound(pmax)));
    let lrs = if v >= u {
        let mut s = vec![0u64; v + 1];
        a.iter_mut().for_each(|x| *x = 0);
        for i in 1..=n {
            let (cur, prev) = (li(i), li(i - 1));
            if prev >= u && cur < prev {
                let b = if cur < u { u - 1 } else { cur };
                let mut t = prev;
                while t > b {
                    let add = get(&a, t + 1);
                    if let Some(x) = a.get_mut(t) {
                        *x += add;
                    }
                    if let Some(x) = a.get_mut(t + 1) {
                        *x = 0;
                    }
                    let at = get(&a, t);
                    if let Some(x) = s.get_mut(t) {
                        *x += ((at + 1) * at) >> 1;
                    }
                    t -= 1;
                }
                if b >= u {
                    let add = get(&a, b + 1);
                    if let Some(x) = a.get_mut(b) {
                        *x += add;
                    }
                }
                if let Some(x) = a.get_mut(b + 1) {
                    *x = 0;
                }
            }
            if cur >= u {
                if let Some(x) = a.get_mut(cur) {
                    *x += 1;
                }
            }
        }
        let mut pmax = 0.0f64;
        for i in u..=v {
            let pairs = (((n - i) as u64) * ((n - i + 1) as u64)) >> 1;
            let p = count(get(&s, i)) / count(pairs);
            pmax = pmax.max(libm::pow(p, 1.0 / count(i as u64)));
        }
        Some(-libm::log2(bound(pmax)))
    } else {
        None
    };
    Ok((t_tuple, lrs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The suffix array against a plain sort of all suffixes.
    #[test]
    fn suffix_array_matches_a_plain_sort() {
        let mut x = 12345u32;
        for len in [1usize, 2, 3, 10, 100, 1000] {
            for alphabet in [1u32, 2, 3, 256] {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        u8::try_from((x >> 16) % alphabet).unwrap_or(0)
                    })
                    .collect();
                let mut plain: Vec<u32> = (0..u32::try_from(len).unwrap()).collect();
                plain.sort_by(|&a, &b| text[a as usize..].cmp(&text[b as usize..]));
                assert_eq!(suffix_array(&text), plain, "len {len} alphabet {alphabet}");
            }
        }
    }
}
