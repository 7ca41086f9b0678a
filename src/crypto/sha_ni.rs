#![allow(unsafe_code)]
//! HMAC-SHA-256 output loops on the x86 SHA extensions (SHA-NI).
//!
//! Contract: [`hmac_chain`] runs `N` independent HMAC_DRBG output loops,
//! each `v = HMAC(key, v)` followed by writing the new `v` to the next
//! whole 32-byte piece of its `out`, for as many steps as every loop has
//! whole pieces, and returns that step count. It computes exactly what the
//! portable path in `crypto::sha256` computes (checked against the `hmac`
//! crate in this module's tests, against the portable path by the property
//! test there, and by the CAVP vectors, whose 128-byte outputs run here on
//! a CPU with SHA-NI), and
//! runs only when CPUID reported SHA, SSSE3 and SSE4.1; otherwise it
//! touches nothing and returns 0, and the caller does all the steps.
//!
//! Why it exists: sha2's compression takes bytes and returns words, so
//! HMAC_DRBG's chain pays a byte swap and a store-to-load round trip twice
//! per step, and one chain leaves the SHA unit idle most of the time. Here
//! the inner digest goes to the outer compression (and the outer digest to
//! the next inner one) in registers, and the rounds of `N` loops are
//! interleaved so their latencies overlap: on the development machine one
//! loop costs about 90 ns per 32 bytes against 120 ns through sha2, and two
//! loops about 63 ns per 32 bytes each.
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
            compress(
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
            compress(
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

/// A state as words `[a..h]` into the SHA-NI layout (as sha2 does).
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn to_state(words: &[u32; 8]) -> State {
    // SAFETY: the caller (the kernel) runs with the needed features;
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
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn digest_words(state: State) -> [__m128i; 2] {
    // SAFETY: the caller (the kernel) runs with the needed features.
    unsafe {
        let fe_ba = _mm_shuffle_epi32(state.abef, 0x1B);
        let hg_dc = _mm_shuffle_epi32(state.cdgh, 0x1B);
        [
            _mm_unpacklo_epi64(fe_ba, hg_dc),
            _mm_unpackhi_epi64(fe_ba, hg_dc),
        ]
    }
}

/// One compression of each of `N` independent states, their rounds
/// interleaved.
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn compress<const N: usize>(state: &mut [State; N], mut w: [Words; N]) {
    // SAFETY: the caller (the kernel) runs with the needed features.
    unsafe {
        let start = *state;
        rounds::<N, 0>(state, &mut w);
        rounds::<N, 1>(state, &mut w);
        rounds::<N, 2>(state, &mut w);
        rounds::<N, 3>(state, &mut w);
        rounds::<N, 4>(state, &mut w);
        rounds::<N, 5>(state, &mut w);
        rounds::<N, 6>(state, &mut w);
        rounds::<N, 7>(state, &mut w);
        rounds::<N, 8>(state, &mut w);
        rounds::<N, 9>(state, &mut w);
        rounds::<N, 10>(state, &mut w);
        rounds::<N, 11>(state, &mut w);
        rounds::<N, 12>(state, &mut w);
        rounds::<N, 13>(state, &mut w);
        rounds::<N, 14>(state, &mut w);
        rounds::<N, 15>(state, &mut w);
        for (s, s0) in state.iter_mut().zip(start.iter()) {
            s.abef = _mm_add_epi32(s.abef, s0.abef);
            s.cdgh = _mm_add_epi32(s.cdgh, s0.cdgh);
        }
    }
}

/// Rounds `4R..4R+4` of every state; from `R = 4` on, the message word
/// vector is first extended (FIPS 180-4, 6.2.2 step 1).
#[inline(always)]
#[allow(unused_unsafe)]
unsafe fn rounds<const N: usize, const R: usize>(state: &mut [State; N], w: &mut [Words; N]) {
    // SAFETY: the caller (the kernel) runs with the needed features; `K32`
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

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
