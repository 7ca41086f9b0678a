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
//!   of one start state (Hash_DRBG's hashgen, the conditioner's keyed
//!   midstate), and writes each lane's digest bytes.
//! - [`digest_run_frames40`] does the same for a run of messages of one
//!   fixed layout (a counter, a 5-byte header, 40 data bytes, padding: the
//!   conditioner's fully credited frames), assembled in registers, two
//!   lanes at a time.
//! - All three compute exactly what the portable path in `crypto::sha256`
//!   computes (checked against the `hmac` crate and `compress256` in this
//!   module's tests, against the portable path by the property tests of
//!   `mixer::conditioner` and `drbg::hash` (which covers
//!   `crypto::sha256::digest_blocks`), and by the CAVP vectors,
//!   whose 128-byte outputs run here on a CPU with SHA-NI), and run only
//!   when CPUID reported SHA, SSSE3 and SSE4.1; otherwise they touch
//!   nothing and say so (0 steps, `false`), and the caller does the work.
//! - Every unsafe helper runs under `#[target_feature(enable = "sha,sse2,
//!   ssse3,sse4.1")]` and states that precondition in its `# Safety`; the
//!   three safe entry points establish it with `has_sha_ni` (as sha2's x86
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
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_or_si128, _mm_set_epi32,
    _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_srli_si128, _mm_unpackhi_epi64, _mm_unpacklo_epi64,
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
/// This is the conditioner's one-compression block (one frame's message
/// after the keyed midstate) and Hash_DRBG's hashgen block (`V + i` after
/// the IV, through `crypto::sha256::digest_blocks`). Independent lanes keep the SHA unit busy
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

/// One-block digests of a run of messages that differ only in a counter
/// and 40 data bytes (the conditioner's fully credited frames, each its own
/// block): message `i` is `counter + i` (8 bytes, little-endian), the low
/// 5 bytes of `head` (little-endian), `frames[i]` (40 bytes: its words
/// little-endian), then SHA-256 padding for a message of `bits` bits in
/// all (the `0x80` marker, two zero bytes, `bits` big-endian). Each is
/// compressed into a copy of `start` and its digest bytes written to
/// `digests[i]`, for every `i` below the shorter of the two; two
/// compressions interleaved at a time (the SHA unit's throughput on the
/// development machine) and an odd last one alone.
///
/// The messages are assembled in vector registers (byte shifts of the
/// frame words, no 64-bit funnel shifts, which cost three cycles each on
/// AMD family 0x17), and one call for the whole run keeps the start state
/// and the constants in registers. Returns `false` and touches nothing
/// without SHA-NI.
pub(crate) fn digest_run_frames40(
    start: &[u32; 8],
    head: u64,
    counter: u64,
    bits: u64,
    frames: &[[u64; 5]],
    digests: &mut [[u8; 32]],
) -> bool {
    if !crate::hw::has_sha_ni() {
        return false;
    }
    // The kernel pairs them two by two: same lengths first.
    let n = frames.len().min(digests.len());
    let (Some(frames), Some(digests)) = (frames.get(..n), digests.get_mut(..n)) else {
        return true;
    };
    let layout = Frames40 {
        head: head & 0xff_ffff_ffff,
        counter,
        pad: [0x80 << 40, bits.swap_bytes()],
    };
    // SAFETY: CPUID reported SHA, SSSE3 and SSE4.1 (`has_sha_ni`), and SSE2
    // is part of x86_64: every feature the kernel is compiled with exists.
    unsafe { digest_run_frames40_sha_ni(start, &layout, frames, digests) };
    true
}

/// The fixed parts of [`digest_run_frames40`]'s messages.
struct Frames40 {
    /// Message bytes 8..13 (the rest zero).
    head: u64,
    /// The first message's counter (bytes 0..8).
    counter: u64,
    /// Message bytes 48..64 with the frame's bytes zero: the marker and
    /// the length.
    pad: [u64; 2],
}

/// A `u64`'s bits as the `i64` the vector intrinsics take.
#[inline(always)]
const fn bits64(x: u64) -> i64 {
    i64::from_ne_bytes(x.to_ne_bytes())
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
        let bswap = bswap_mask();
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
        let bswap = bswap_mask();
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
            *d = digest_bytes(*s, bswap);
        }
    }
}

/// The kernel of [`digest_run_frames40`], for `frames` and `digests` of
/// the same length.
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn digest_run_frames40_sha_ni(
    start: &[u32; 8],
    layout: &Frames40,
    frames: &[[u64; 5]],
    digests: &mut [[u8; 32]],
) {
    // SAFETY: (the whole body) the caller guarantees the target features;
    // the intrinsics have no other preconditions.
    unsafe {
        let bswap = bswap_mask();
        let first = to_state(start);
        let [pad_lo, pad_hi] = layout.pad;
        let pad = _mm_set_epi64x(bits64(pad_hi), bits64(pad_lo));
        let mut counter = layout.counter;
        let mut f_pairs = frames.chunks_exact(2);
        let mut d_pairs = digests.chunks_exact_mut(2);
        for (f, d) in (&mut f_pairs).zip(&mut d_pairs) {
            if let ([f0, f1], [d0, d1]) = (f, d) {
                let w0 = frame40_words(f0, layout.head, counter, pad, bswap);
                let w1 = frame40_words(f1, layout.head, counter.wrapping_add(1), pad, bswap);
                counter = counter.wrapping_add(2);
                let mut state = [first; 2];
                compress!(&mut state, [w0, w1]);
                let [s0, s1] = state;
                *d0 = digest_bytes(s0, bswap);
                *d1 = digest_bytes(s1, bswap);
            }
        }
        let rest = f_pairs.remainder().iter().zip(d_pairs.into_remainder());
        for (f, d) in rest {
            let mut state = [first];
            compress!(
                &mut state,
                [frame40_words(f, layout.head, counter, pad, bswap)]
            );
            let [s] = state;
            *d = digest_bytes(s, bswap);
        }
    }
}

/// The message words of one [`digest_run_frames40`] message: bytes 0..16
/// are the counter, the head and frame bytes 0..3; 16..32 and 32..48 frame
/// bytes 3..19 and 19..35 (byte shifts across two frame vectors); 48..64
/// frame bytes 35..40 over `pad`.
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn frame40_words(
    frame: &[u64; 5],
    head: u64,
    counter: u64,
    pad: __m128i,
    bswap: __m128i,
) -> Words {
    // SAFETY: the caller guarantees the target features (`# Safety`).
    unsafe {
        let [f0, f1, f2, f3, f4] = *frame;
        let m0 = _mm_set_epi64x(bits64(head | (f0 << 40)), bits64(counter));
        let d0 = _mm_set_epi64x(bits64(f1), bits64(f0));
        let d1 = _mm_set_epi64x(bits64(f3), bits64(f2));
        let d2 = _mm_set_epi64x(0, bits64(f4));
        let m1 = _mm_alignr_epi8(d1, d0, 3);
        let m2 = _mm_alignr_epi8(d2, d1, 3);
        let m3 = _mm_or_si128(_mm_srli_si128(d2, 3), pad);
        [
            _mm_shuffle_epi8(m0, bswap),
            _mm_shuffle_epi8(m1, bswap),
            _mm_shuffle_epi8(m2, bswap),
            _mm_shuffle_epi8(m3, bswap),
        ]
    }
}

/// The shuffle that turns big-endian words into bytes (and back) within
/// each 32-bit lane.
///
/// # Safety
/// The CPU must have SSE2 (the feature this is compiled with).
#[inline]
#[target_feature(enable = "sse2")]
#[allow(unused_unsafe)]
unsafe fn bswap_mask() -> __m128i {
    // SAFETY: the caller guarantees SSE2; the intrinsic has no other
    // precondition.
    unsafe { _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203) }
}

/// A state's big-endian digest bytes (what `state_bytes` gives).
///
/// # Safety
/// The CPU must have SHA, SSE2, SSSE3 and SSE4.1 (the features this is
/// compiled with).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unused_unsafe)]
unsafe fn digest_bytes(state: State, bswap: __m128i) -> [u8; 32] {
    // SAFETY: the caller guarantees the target features (`# Safety`);
    // `[__m128i; 2]` and `[u8; 32]` are both 32 plain bytes.
    unsafe {
        let [abcd, efgh] = digest_words(state);
        transmute::<[__m128i; 2], [u8; 32]>([
            _mm_shuffle_epi8(abcd, bswap),
            _mm_shuffle_epi8(efgh, bswap),
        ])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw_support;
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
                hw_support::skip("sha", &"CPUID reports no SHA extensions");
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
        }

        /// A run of frame messages equals `compress256` of each message
        /// as the contract lays it out, for runs of odd and even length,
        /// with fewer or more digest slots than frames (the shorter
        /// decides), and a counter that wraps.
        #[test]
        #[cfg_attr(miri, ignore = "executes CPUID")]
        fn frame_runs_equal_compress256(start in any::<[u32; 8]>(), head in any::<u64>(),
                                        counter in prop_oneof![any::<u64>(), (u64::MAX - 8)..=u64::MAX],
                                        bits in any::<u64>(),
                                        frames in proptest::collection::vec(any::<[u64; 5]>(), 0..9),
                                        slots in 0usize..10) {
            if !crate::hw::has_sha_ni() {
                hw_support::skip("sha", &"CPUID reports no SHA extensions");
                return Ok(());
            }
            let mut got = std::vec![[0u8; 32]; slots];
            prop_assert!(digest_run_frames40(&start, head, counter, bits, &frames, &mut got));
            for (i, slot) in got.iter().enumerate() {
                let Some(f) = frames.get(i) else {
                    prop_assert_eq!(*slot, [0u8; 32], "slot {} past the frames", i);
                    continue;
                };
                let mut m = [0u8; 64];
                let n = counter.wrapping_add(u64::try_from(i).unwrap());
                m[..8].copy_from_slice(&n.to_le_bytes());
                m[8..13].copy_from_slice(&head.to_le_bytes()[..5]);
                for (j, w) in f.iter().enumerate() {
                    m[13 + 8 * j..21 + 8 * j].copy_from_slice(&w.to_le_bytes());
                }
                m[53] = 0x80;
                m[56..].copy_from_slice(&bits.to_be_bytes());
                prop_assert_eq!(*slot, digest_ref(&start, &m), "message {}", i);
            }
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
