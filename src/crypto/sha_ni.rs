#![allow(unsafe_code)]
//! SHA-256 on the x86 SHA extensions (SHA-NI): HMAC output loops and
//! independent one-block digests, several in flight at once.
//!
//! Contract:
//! - [`hmac_chain`] runs `N` independent HMAC_DRBG output loops, each
//!   `v = HMAC(key, v)` followed by writing the new `v` to the next whole
//!   32-byte piece of its `out`, for as many steps as every loop has whole
//!   pieces, and returns that step count.
//! - [`digest_lanes`] compresses `N` message blocks, each into its own copy
//!   of one start state (the conditioner's keyed midstate), and writes each
//!   lane's digest bytes.
//! - Both compute exactly what the portable path in `crypto::sha256`
//!   computes (checked against the `hmac` crate and `compress256` in this
//!   module's tests, against the portable path by the property tests of
//!   `crypto::sha256` and `mixer::conditioner`, and by the CAVP vectors,
//!   whose 128-byte outputs run here on a CPU with SHA-NI), and run only
//!   when CPUID reported SHA, SSSE3 and SSE4.1; otherwise they touch
//!   nothing and say so (0 steps, `false`), and the caller does the work.
//! - Every unsafe helper runs under `#[target_feature(enable = "sha,sse2,
//!   ssse3,sse4.1")]` and states that precondition in its `# Safety`; the
//!   two safe entry points establish it with `has_sha_ni` (as sha2's x86
//!   backend does with its CPUID check). The helpers are `#[inline]` (not
//!   `inline(always)`, which `target_feature` does not allow) and inline
//!   into the kernels, whose features they share.
//!
//! Why it exists: sha2's compression takes bytes and returns words, so
//! HMAC_DRBG's chain pays a byte swap and a store-to-load round trip twice
//! per step, and one chain leaves the SHA unit idle most of the time. Here
//! the inner digest goes to the outer compression (and the outer digest to
//! the next inner one) in registers, and the rounds of `N` loops are
//! interleaved so their latencies overlap: on the development machine one
//! loop costs about 90 ns per 32 bytes against 120 ns through sha2, and two
//! loops about 63 ns per 32 bytes each. The conditioner's blocks are
//! independent too (each starts from the keyed midstate), so the same
//! interleaving keeps several in flight (the conditioner runs two).
//!
//! No raw pointer is used: vectors are moved to and from byte arrays by
//! value. Intermediate values live in vector registers; spilled stack
//! slots, if any, are not wiped (as in sha2's own backend).

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_set_epi32, _mm_set_epi64x,
    _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi8,
    _mm_shuffle_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi64,
};
use core::mem::transmute;

/// One compression of each of `N` independent states (`$state: &mut
/// [State; N]`), their rounds interleaved, with message words `$w: [Words;
/// N]`. A macro, not a function, as in sha2's backend: a `#[target_feature]`
/// function cannot be `#[inline(always)]`, and measured, `compress` as an
/// `#[inline]` function was left out of line in some kernels, its states
/// and words passed through memory (each kernel about 20 % slower). Used
/// only inside the kernels' `unsafe` bodies, whose target features the
/// `# Safety` of [`rounds`] needs.
macro_rules! compress {
    ($state:expr, $w:expr $(,)?) => {{
        let state = $state;
        let mut w = $w;
        let start = *state;
        rounds::<_, 0>(state, &mut w);
        rounds::<_, 1>(state, &mut w);
        rounds::<_, 2>(state, &mut w);
        rounds::<_, 3>(state, &mut w);
        rounds::<_, 4>(state, &mut w);
        rounds::<_, 5>(state, &mut w);
        rounds::<_, 6>(state, &mut w);
        rounds::<_, 7>(state, &mut w);
        rounds::<_, 8>(state, &mut w);
        rounds::<_, 9>(state, &mut w);
        rounds::<_, 10>(state, &mut w);
        rounds::<_, 11>(state, &mut w);
        rounds::<_, 12>(state, &mut w);
        rounds::<_, 13>(state, &mut w);
        rounds::<_, 14>(state, &mut w);
        rounds::<_, 15>(state, &mut w);
        for (s, s0) in state.iter_mut().zip(start.iter()) {
            s.abef = _mm_add_epi32(s.abef, s0.abef);
            s.cdgh = _mm_add_epi32(s.cdgh, s0.cdgh);
        }
    }};
}

/// One output loop: the keyed HMAC midstates, the running `v` and where its
/// 32-byte outputs go.
pub(crate) struct Chain<'a> {
    pub(crate) inner: &'a [u32; 8],
    pub(crate) outer: &'a [u32; 8],
    pub(crate) v: &'a mut [u8; 32],
    pub(crate) out: &'a mut [u8],
}

/// Runs the loops as far as every one has a whole 32-byte piece left;
/// returns the number of steps (pieces written per loop). 0 without SHA-NI.
pub(crate) fn hmac_chain<const N: usize>(chains: &mut [Chain<'_>; N]) -> usize {
    if !crate::hw::has_sha_ni() {
        return 0;
    }
    // SAFETY: CPUID reported SHA, SSSE3 and SSE4.1 (`has_sha_ni`), and SSE2
    // is part of x86_64: every instruction the kernel is compiled with
    // exists on this CPU.
    unsafe { chain_sha_ni(chains) }
}

/// Compresses `blocks[l]` into a copy of `start` for every lane `l`, the
/// `N` compressions' rounds interleaved, and writes each lane's state as
/// its big-endian digest bytes to `digests[l]` (what `compress` then
/// `state_bytes` give, lane by lane). Returns `false` and touches nothing
/// without SHA-NI.
///
/// This is the conditioner's one-compression block: one frame's message
/// after the keyed midstate. Independent lanes keep the SHA unit busy
/// where one chained compression waits on its own rounds' latency.
pub(crate) fn digest_lanes<const N: usize>(
    start: &[u32; 8],
    blocks: &[[u8; 64]; N],
    digests: [&mut [u8; 32]; N],
) -> bool {
    if !crate::hw::has_sha_ni() {
        return false;
    }
    // SAFETY: CPUID reported SHA, SSSE3 and SSE4.1 (`has_sha_ni`), and SSE2
    // is part of x86_64: every feature the kernel is compiled with exists.
    unsafe { digest_lanes_sha_ni(start, blocks, digests) };
    true
}

/// [`digest_lanes`] with each message block given as eight little-endian
/// 64-bit words (block bytes `8j..8j + 8` are `msgs[l][j].to_le_bytes()`).
/// The words go to vector registers with 8-byte loads, so a message just
/// stored as words is read back without a failed store-to-load forward
/// (a 16-byte load of two 8-byte stores would stall).
pub(crate) fn digest_lanes_words<const N: usize>(
    start: &[u32; 8],
    msgs: &[[u64; 8]; N],
    digests: [&mut [u8; 32]; N],
) -> bool {
    if !crate::hw::has_sha_ni() {
        return false;
    }
    // SAFETY: CPUID reported SHA, SSSE3 and SSE4.1 (`has_sha_ni`), and SSE2
    // is part of x86_64: every feature the kernel is compiled with exists.
    unsafe { digest_lanes_words_sha_ni(start, msgs, digests) };
    true
}

/// SHA-256 round constants in the order the kernel adds them, four per
/// vector (FIPS 180-4, 4.2.2).
const K32: [[u32; 4]; 16] = [
    [0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5],
    [0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5],
    [0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3],
    [0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174],
    [0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc],
    [0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da],
    [0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7],
    [0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967],
    [0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13],
    [0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85],
    [0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3],
    [0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070],
    [0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5],
    [0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3],
    [0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208],
    [0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2],
];

/// A SHA-256 state in the SHA-NI register layout.
#[derive(Clone, Copy)]
struct State {
    abef: __m128i,
    cdgh: __m128i,
}

/// Message words 0-3, 4-7, 8-11, 12-15, each vector's lane 0 first.
type Words = [__m128i; 4];

/// The kernel.
///
/// # Safety
/// The CPU must have SHA, SSSE3 and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn chain_sha_ni<const N: usize>(chains: &mut [Chain<'_>; N]) -> usize {
    // SAFETY: (the whole body) the caller guarantees the target features;
    // the intrinsics have no other preconditions, and every `transmute` is
    // between plain 16- or 32-byte values of the same size.
    unsafe {
        let steps = chains.iter().map(|c| c.out.len() / 32).min().unwrap_or(0);
        // Big-endian words <-> bytes within each 32-bit lane.
        let bswap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
        // Words 8-15 of the second block of a 96-byte message: 0x80 after
        // the 32 message bytes, then the length 768 bits.
        let pad8 = _mm_set_epi32(0, 0, 0, i32::from_ne_bytes(0x8000_0000u32.to_ne_bytes()));
        let pad12 = _mm_set_epi32(0x300, 0, 0, 0);
        let inner: [State; N] =
            core::array::from_fn(|l| to_state(chains.get(l).map_or(&[0; 8], |c| c.inner)));
        let outer: [State; N] =
            core::array::from_fn(|l| to_state(chains.get(l).map_or(&[0; 8], |c| c.outer)));
        // `v` as message words 0-7.
        let mut v: [[__m128i; 2]; N] = core::array::from_fn(|l| {
            let bytes =
                transmute::<[u8; 32], [__m128i; 2]>(chains.get(l).map_or([0; 32], |c| *c.v));
            [
                _mm_shuffle_epi8(bytes[0], bswap),
                _mm_shuffle_epi8(bytes[1], bswap),
            ]
        });
        for step in 0..steps {
            let mut state = inner;
            compress!(
                &mut state,
                core::array::from_fn(|l| {
                    let [w0, w4] = v.get(l).copied().unwrap_or([pad8; 2]);
                    [w0, w4, pad8, pad12]
                }),
            );
            let digest: [[__m128i; 2]; N] = core::array::from_fn(|l| {
                digest_words(state.get(l).copied().unwrap_or(State {
                    abef: pad8,
                    cdgh: pad8,
                }))
            });
            let mut state = outer;
            compress!(
                &mut state,
                core::array::from_fn(|l| {
                    let [w0, w4] = digest.get(l).copied().unwrap_or([pad8; 2]);
                    [w0, w4, pad8, pad12]
                }),
            );
            for ((chain, words), s) in chains.iter_mut().zip(v.iter_mut()).zip(state.iter()) {
                *words = digest_words(*s);
                let bytes = transmute::<[__m128i; 2], [u8; 32]>([
                    _mm_shuffle_epi8(words[0], bswap),
                    _mm_shuffle_epi8(words[1], bswap),
                ]);
                let at = step.saturating_mul(32);
                if let Some(Ok(piece)) = chain
                    .out
                    .get_mut(at..at.saturating_add(32))
                    .map(<&mut [u8; 32]>::try_from)
                {
                    *piece = bytes;
                }
            }
        }
        for (chain, words) in chains.iter_mut().zip(v.iter()) {
            *chain.v = transmute::<[__m128i; 2], [u8; 32]>([
                _mm_shuffle_epi8(words[0], bswap),
                _mm_shuffle_epi8(words[1], bswap),
            ]);
        }
        steps
    }
}

/// The kernel of [`digest_lanes`].
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn digest_lanes_sha_ni<const N: usize>(
    start: &[u32; 8],
    blocks: &[[u8; 64]; N],
    digests: [&mut [u8; 32]; N],
) {
    // SAFETY: (the whole body) the caller guarantees the target features;
    // the intrinsics have no other preconditions, and every `transmute` is
    // between plain 16-, 32- or 64-byte values of the same size.
    unsafe {
        let bswap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
        let mut state = [to_state(start); N];
        // Plain loops, no closures: a closure (or `array::map`) is compiled
        // without this function's target features and stays a call.
        let mut w: [Words; N] = [[bswap; 4]; N];
        for (words, block) in w.iter_mut().zip(blocks.iter()) {
            let raw = transmute::<[u8; 64], Words>(*block);
            for (word, x) in words.iter_mut().zip(raw) {
                *word = _mm_shuffle_epi8(x, bswap);
            }
        }
        compress!(&mut state, w);
        for (d, s) in digests.into_iter().zip(state.iter()) {
            let [abcd, efgh] = digest_words(*s);
            *d = transmute::<[__m128i; 2], [u8; 32]>([
                _mm_shuffle_epi8(abcd, bswap),
                _mm_shuffle_epi8(efgh, bswap),
            ]);
        }
    }
}

/// The kernel of [`digest_lanes_words`].
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn digest_lanes_words_sha_ni<const N: usize>(
    start: &[u32; 8],
    msgs: &[[u64; 8]; N],
    digests: [&mut [u8; 32]; N],
) {
    // SAFETY: (the whole body) the caller guarantees the target features;
    // the intrinsics have no other preconditions, and the `transmute` is
    // between plain 32-byte values.
    unsafe {
        let bswap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
        let mut state = [to_state(start); N];
        let mut w: [Words; N] = [[bswap; 4]; N];
        for (words, m) in w.iter_mut().zip(msgs.iter()) {
            for (word, pair) in words.iter_mut().zip(m.chunks_exact(2)) {
                if let [lo, hi] = pair {
                    let v = _mm_set_epi64x(
                        i64::from_ne_bytes(hi.to_ne_bytes()),
                        i64::from_ne_bytes(lo.to_ne_bytes()),
                    );
                    *word = _mm_shuffle_epi8(v, bswap);
                }
            }
        }
        compress!(&mut state, w);
        for (d, s) in digests.into_iter().zip(state.iter()) {
            let [abcd, efgh] = digest_words(*s);
            *d = transmute::<[__m128i; 2], [u8; 32]>([
                _mm_shuffle_epi8(abcd, bswap),
                _mm_shuffle_epi8(efgh, bswap),
            ]);
        }
    }
}

/// A state as words `[a..h]` into the SHA-NI layout (as sha2 does).
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn to_state(words: &[u32; 8]) -> State {
    // SAFETY: the caller guarantees the target features (`# Safety`);
    // `[u32; 8]` and `[__m128i; 2]` are both 32 plain bytes.
    unsafe {
        let [dcba, hgfe] = transmute::<[u32; 8], [__m128i; 2]>(*words);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        State {
            abef: _mm_alignr_epi8(cdab, efgh, 8),
            cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
        }
    }
}

/// The digest words `[a, b, c, d]`, `[e, f, g, h]` (lane 0 first): the
/// message words 0-7 of the next compression.
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn digest_words(state: State) -> [__m128i; 2] {
    // SAFETY: the caller guarantees the target features (`# Safety`).
    unsafe {
        let fe_ba = _mm_shuffle_epi32(state.abef, 0x1B);
        let hg_dc = _mm_shuffle_epi32(state.cdgh, 0x1B);
        [
            _mm_unpacklo_epi64(fe_ba, hg_dc),
            _mm_unpackhi_epi64(fe_ba, hg_dc),
        ]
    }
}

/// Rounds `4R..4R+4` of every state; from `R = 4` on, the message word
/// vector is first extended (FIPS 180-4, 6.2.2 step 1).
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn rounds<const N: usize, const R: usize>(state: &mut [State; N], w: &mut [Words; N]) {
    // SAFETY: the caller guarantees the target features (`# Safety`); `K32`
    // rows are 16 plain bytes like `__m128i`.
    unsafe {
        let k = transmute::<[u32; 4], __m128i>(K32.get(R).copied().unwrap_or_default());
        let mut t = [k; N];
        for (words, t) in w.iter_mut().zip(t.iter_mut()) {
            let [w0, w1, w2, w3] = *words;
            // Rotate so the vector to extend (words 4R-16..) comes first.
            let (a, b, c, d) = match R % 4 {
                0 => (w0, w1, w2, w3),
                1 => (w1, w2, w3, w0),
                2 => (w2, w3, w0, w1),
                _ => (w3, w0, w1, w2),
            };
            let next = if R >= 4 {
                let sum = _mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4));
                _mm_sha256msg2_epu32(sum, d)
            } else {
                a
            };
            if let Some(slot) = words.get_mut(R % 4) {
                *slot = next;
            }
            *t = _mm_add_epi32(next, *t);
        }
        for (s, t) in state.iter_mut().zip(t.iter()) {
            s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, *t);
        }
        for (s, t) in state.iter_mut().zip(t.iter()) {
            s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(*t, 0x0E));
        }
    }
}

/// Visible skips of hardware tests (`ENTROPOOL_REQUIRE_HW`).
#[cfg(test)]
#[path = "../../tests/support/hw.rs"]
mod hw_support;

#[cfg(test)]
mod tests {
    use super::hw_support;
    use super::*;
    use hmac::{KeyInit, Mac};
    use proptest::prelude::*;

    fn keyed(key: &[u8; 32], pad: u8) -> [u32; 8] {
        let mut block = [pad; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut state = crate::crypto::sha256::IV;
        sha2::block_api::compress256(&mut state, &[block]);
        state
    }

    /// The reference: `v = HMAC(key, v)` with the `hmac` crate, once per
    /// whole piece.
    fn reference(key: &[u8; 32], v: &mut [u8; 32], out: &mut [u8]) {
        for piece in out.chunks_exact_mut(32) {
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
            m.update(v);
            v.copy_from_slice(&m.finalize().into_bytes());
            piece.copy_from_slice(v);
        }
    }

    /// The reference for one lane: `compress256` from `start`, then the
    /// state as big-endian bytes.
    fn digest_ref(start: &[u32; 8], block: &[u8; 64]) -> [u8; 32] {
        let mut state = *start;
        sha2::block_api::compress256(&mut state, &[*block]);
        let mut out = [0u8; 32];
        crate::crypto::sha256::state_bytes(&state, &mut out);
        out
    }

    /// `digest_lanes::<N>` on the first `N` of `blocks`, lane by lane
    /// against the reference.
    fn lanes_equal<const N: usize>(
        start: &[u32; 8],
        blocks: &[[u8; 64]; 4],
    ) -> Result<(), TestCaseError> {
        let Some(msgs) = blocks.first_chunk::<N>() else {
            return Err(TestCaseError::fail("N > 4"));
        };
        let mut got = [[0u8; 32]; N];
        prop_assert!(digest_lanes(start, msgs, got.each_mut()));
        for (g, m) in got.iter().zip(msgs) {
            prop_assert_eq!(*g, digest_ref(start, m));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// One to four lanes from any start state equal `compress256`
        /// lane by lane (each lane's message differs, so a swapped or
        /// shared lane shows).
        #[test]
        #[cfg_attr(miri, ignore = "executes CPUID")]
        fn digest_lanes_equal_compress256(start in any::<[u32; 8]>(),
                                          b0 in any::<[u8; 32]>(), b1 in any::<[u8; 32]>(),
                                          tail in any::<[u8; 32]>(), lane_bytes in any::<[u8; 4]>()) {
            if !crate::hw::has_sha_ni() {
                std::eprintln!("skipped: this CPU has no SHA extensions");
                return Ok(());
            }
            let blocks: [[u8; 64]; 4] = core::array::from_fn(|l| {
                let mut b = [0u8; 64];
                b[..32].copy_from_slice(&b0);
                b[32..].copy_from_slice(&tail);
                b[l * 8] ^= lane_bytes[l] | 1;
                b[63 - l] ^= b1[l];
                b
            });
            lanes_equal::<1>(&start, &blocks)?;
            lanes_equal::<2>(&start, &blocks)?;
            lanes_equal::<3>(&start, &blocks)?;
            lanes_equal::<4>(&start, &blocks)?;
            // The same blocks as words.
            let words: [[u64; 8]; 2] = core::array::from_fn(|l| {
                core::array::from_fn(|j| u64::from_le_bytes(blocks[l][8 * j..8 * j + 8].try_into().unwrap()))
            });
            let mut got = [[0u8; 32]; 2];
            prop_assert!(digest_lanes_words(&start, &words, got.each_mut()));
            prop_assert_eq!(got[0], digest_ref(&start, &blocks[0]));
            prop_assert_eq!(got[1], digest_ref(&start, &blocks[1]));
        }

        /// One and two interleaved loops equal the `hmac` crate, step for
        /// step, and stop at the shorter loop's last whole piece.
        #[test]
        #[cfg_attr(miri, ignore = "executes CPUID")]
        fn loops_equal_hmac_crate(k0 in any::<[u8; 32]>(), k1 in any::<[u8; 32]>(),
                                  v0 in any::<[u8; 32]>(), v1 in any::<[u8; 32]>(),
                                  n0 in 0usize..300, n1 in 0usize..300) {
            if !crate::hw::has_sha_ni() {
                // Skipped, and said so (or failed under ENTROPOOL_REQUIRE_HW=sha):
                // the portable path covers this CPU.
                hw_support::skip("sha", &"CPUID reports no SHA extensions");
                return Ok(());
            }
            let (i0, o0, i1, o1) = (keyed(&k0, 0x36), keyed(&k0, 0x5c), keyed(&k1, 0x36), keyed(&k1, 0x5c));
            let (mut a, mut b) = (std::vec![0u8; n0], std::vec![0u8; n1]);
            let (mut va, mut vb) = (v0, v1);
            let steps = hmac_chain(&mut [
                Chain { inner: &i0, outer: &o0, v: &mut va, out: &mut a },
                Chain { inner: &i1, outer: &o1, v: &mut vb, out: &mut b },
            ]);
            let want = (n0 / 32).min(n1 / 32);
            prop_assert_eq!(steps, want);
            let (mut ra, mut rb) = (std::vec![0u8; n0], std::vec![0u8; n1]);
            let (mut wa, mut wb) = (v0, v1);
            reference(&k0, &mut wa, &mut ra[..32 * want]);
            reference(&k1, &mut wb, &mut rb[..32 * want]);
            prop_assert_eq!(&a, &ra);
            prop_assert_eq!(&b, &rb);
            prop_assert_eq!((va, vb), (wa, wb));

            let mut c = std::vec![0u8; n0];
            let mut vc = v0;
            let steps = hmac_chain(&mut [Chain { inner: &i0, outer: &o0, v: &mut vc, out: &mut c }]);
            prop_assert_eq!(steps, n0 / 32);
            let mut rc = std::vec![0u8; n0];
            let mut wc = v0;
            reference(&k0, &mut wc, &mut rc);
            prop_assert_eq!(c, rc);
            prop_assert_eq!(vc, wc);
        }
    }
}
