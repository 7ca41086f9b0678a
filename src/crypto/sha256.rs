//! SHA-256 and HMAC-SHA-256 on top of `sha2`'s raw compression function.
//!
//! Contract: [`Sha256Stream`] computes SHA-256 of everything fed to it,
//! starting from any midstate; [`HmacKey`] holds the keyed inner and outer
//! midstates of HMAC-SHA-256 with a 32-byte key, so a MAC costs only the
//! compressions of the message (one inner and one outer block for a 32-byte
//! message), never the key schedule again. Both are checked against the
//! `sha2` and `hmac` crates in this module's tests and by the CAVP vectors.
//! All state is secret: zeroized on drop, never `Clone`, redacted in `Debug`.

use core::fmt;

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256 block size in bytes.
pub(crate) const BLOCK: usize = 64;

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Compresses one block into `state`.
#[inline]
pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    compress256(state, core::slice::from_ref(block));
}

/// Writes `state` as the 32-byte big-endian digest.
#[inline]
pub(crate) fn state_bytes(state: &[u32; 8], out: &mut [u8; 32]) {
    for (chunk, word) in out.chunks_exact_mut(4).zip(state.iter()) {
        for (dst, src) in chunk.iter_mut().zip(word.to_be_bytes()) {
            *dst = src;
        }
    }
}

/// A running SHA-256 computation over a byte stream.
pub(crate) struct Sha256Stream {
    state: [u32; 8],
    block: [u8; BLOCK],
    /// Bytes in `block`; always `< BLOCK` between calls.
    fill: usize,
    /// Bytes absorbed so far, including those before the midstate.
    len: u64,
}

impl Sha256Stream {
    /// Starts from the standard initial value.
    pub(crate) fn new() -> Self {
        Self::from_midstate(IV, 0)
    }

    /// Starts from `state`, which has absorbed `len` bytes (a multiple of 64).
    pub(crate) fn from_midstate(state: [u32; 8], len: u64) -> Self {
        Self {
            state,
            block: [0; BLOCK],
            fill: 0,
            len,
        }
    }

    /// Absorbs `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        let mut rest = data;
        // Each pass either consumes at least one byte or compresses a full
        // block (which empties it), so the loop ends.
        while !rest.is_empty() {
            if self.fill == 0 {
                // Whole blocks straight from the input.
                let mut chunks = rest.chunks_exact(BLOCK);
                for chunk in &mut chunks {
                    if let Ok(block) = <&[u8; BLOCK]>::try_from(chunk) {
                        compress(&mut self.state, block);
                    }
                }
                rest = chunks.remainder();
                if rest.is_empty() {
                    break;
                }
            }
            let free = self.block.get_mut(self.fill..).unwrap_or_default();
            let n = free.len().min(rest.len());
            for (dst, src) in free.iter_mut().zip(rest.iter()) {
                *dst = *src;
            }
            self.fill = self.fill.saturating_add(n);
            rest = rest.get(n..).unwrap_or_default();
            if self.fill >= BLOCK {
                compress(&mut self.state, &self.block);
                self.fill = 0;
            }
        }
    }

    /// Pads, finishes and writes the digest.
    pub(crate) fn finalize_into(mut self, out: &mut [u8; 32]) {
        let bit_len = self.len.wrapping_mul(8);
        // `fill < BLOCK` holds between calls.
        if let Some(b) = self.block.get_mut(self.fill) {
            *b = 0x80;
        }
        for b in self.block.iter_mut().skip(self.fill.saturating_add(1)) {
            *b = 0;
        }
        if self.fill >= BLOCK - 8 {
            compress(&mut self.state, &self.block);
            self.block = [0; BLOCK];
        }
        if let Some(tail) = self.block.get_mut(BLOCK - 8..) {
            for (dst, src) in tail.iter_mut().zip(bit_len.to_be_bytes()) {
                *dst = src;
            }
        }
        compress(&mut self.state, &self.block);
        state_bytes(&self.state, out);
    }
}

impl Zeroize for Sha256Stream {
    fn zeroize(&mut self) {
        self.state.zeroize();
        self.block.zeroize();
        self.fill = 0;
        self.len = 0;
    }
}

impl Drop for Sha256Stream {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Sha256Stream {}

impl fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Stream { .. }")
    }
}

/// One padded block holding a 32-byte message that follows one earlier
/// block: bytes 32.. are the padding for a 96-byte (768-bit) message.
#[inline]
fn padded_96(msg: &[u8; 32]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    for (dst, src) in block.iter_mut().zip(msg.iter()) {
        *dst = *src;
    }
    block[32] = 0x80;
    // 768 = 0x0300, big-endian in the last 8 bytes.
    block[62] = 0x03;
    block
}

/// HMAC-SHA-256 keyed with a 32-byte key: the inner and outer midstates.
pub(crate) struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacKey {
    /// Runs the key schedule once (two compressions).
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key.iter()) {
            *i ^= *k;
            *o ^= *k;
        }
        let mut inner = IV;
        let mut outer = IV;
        compress(&mut inner, &ipad);
        compress(&mut outer, &opad);
        ipad.zeroize();
        opad.zeroize();
        Self { inner, outer }
    }

    /// The outer hash over an inner digest.
    #[inline]
    fn outer(&self, inner_digest: &[u8; 32], out: &mut [u8; 32]) {
        let mut block = padded_96(inner_digest);
        let mut state = self.outer;
        compress(&mut state, &block);
        state_bytes(&state, out);
        block.zeroize();
        state.zeroize();
    }

    /// `HMAC(key, v)` written back into `v`: exactly two compressions.
    #[inline]
    pub(crate) fn mac32_in_place(&self, v: &mut [u8; 32]) {
        self.chain(v, &mut []);
    }

    /// HMAC_DRBG's output loop: for each 32-byte piece of `out`,
    /// `v = HMAC(key, v)` and the piece takes the leftmost bytes of `v`; with
    /// an empty `out`, one step. Two compressions per step; the scratch
    /// space is wiped once at the end, not per step (per-step volatile
    /// wiping cost about a third of the throughput).
    pub(crate) fn chain(&self, v: &mut [u8; 32], out: &mut [u8]) {
        self.chain_with(v, out, accelerate());
    }

    /// [`chain`](Self::chain), on the SHA extensions when `accelerate` and
    /// the CPU has them (all whole pieces), else (and for a partial last
    /// piece) on the portable path. Tests compare the two.
    fn chain_with(&self, v: &mut [u8; 32], out: &mut [u8], accelerate: bool) {
        if out.is_empty() {
            let mut lane = Lane::new(self, v);
            lane.inner();
            lane.outer();
            return;
        }
        let done = if accelerate {
            accelerated(&mut [(self, &mut *v, &mut *out)])
        } else {
            0
        };
        let mut lane = Lane::new(self, v);
        for piece in out.get_mut(done..).unwrap_or_default().chunks_mut(32) {
            lane.inner();
            lane.outer();
            lane.emit(piece);
        }
    }

    /// Two independent output loops, `a.chain(va, out_a)` and
    /// `b.chain(vb, out_b)` (both outputs non-empty for the same result),
    /// run in lockstep: the compressions of one loop do not depend on the
    /// other's, so the CPU overlaps them (on the SHA extensions, about 1.5
    /// times the throughput of one loop here).
    pub(crate) fn chain_pair(
        a: (&Self, &mut [u8; 32], &mut [u8]),
        b: (&Self, &mut [u8; 32], &mut [u8]),
    ) {
        Self::chain_pair_with(a, b, accelerate());
    }

    /// [`chain_pair`](Self::chain_pair), accelerated as in
    /// [`chain_with`](Self::chain_with).
    fn chain_pair_with(
        (a, va, out_a): (&Self, &mut [u8; 32], &mut [u8]),
        (b, vb, out_b): (&Self, &mut [u8; 32], &mut [u8]),
        accelerate: bool,
    ) {
        let done = if accelerate {
            accelerated(&mut [(a, &mut *va, &mut *out_a), (b, &mut *vb, &mut *out_b)])
        } else {
            0
        };
        let mut la = Lane::new(a, va);
        let mut lb = Lane::new(b, vb);
        let mut pieces_a = out_a.get_mut(done..).unwrap_or_default().chunks_mut(32);
        let mut pieces_b = out_b.get_mut(done..).unwrap_or_default().chunks_mut(32);
        loop {
            match (pieces_a.next(), pieces_b.next()) {
                (Some(pa), Some(pb)) => {
                    la.inner();
                    lb.inner();
                    la.outer();
                    lb.outer();
                    la.emit(pa);
                    lb.emit(pb);
                }
                (Some(piece), None) => {
                    la.inner();
                    la.outer();
                    la.emit(piece);
                }
                (None, Some(piece)) => {
                    lb.inner();
                    lb.outer();
                    lb.emit(piece);
                }
                (None, None) => break,
            }
        }
    }

    /// `HMAC(key, parts[0] || parts[1] || ...)`.
    pub(crate) fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) {
        let mut stream = Sha256Stream::from_midstate(self.inner, BLOCK as u64);
        for part in parts {
            stream.update(part);
        }
        let mut digest = [0u8; 32];
        stream.finalize_into(&mut digest);
        self.outer(&digest, out);
        digest.zeroize();
    }
}

#[cfg(test)]
std::thread_local! {
    /// Unit tests set it to run whole DRBGs on the portable path on a CPU
    /// with the SHA extensions (per thread: other tests are unaffected).
    pub(crate) static PORTABLE_ONLY: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether the output loops may use the SHA extensions: always, except in
/// a unit test that asked for the portable path.
#[inline]
fn accelerate() -> bool {
    #[cfg(test)]
    {
        !PORTABLE_ONLY.with(core::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        true
    }
}

/// Whether the SHA extensions' kernels (`sha_ni`) may run on this CPU:
/// CPUID reports them, and no unit test asked for the portable path.
/// Callers that go to `sha_ni` directly (the conditioner's 40-byte frames)
/// ask this first, as [`digest_blocks`] and the HMAC loops do within.
#[inline]
#[cfg(any(test, all(target_arch = "x86_64", target_feature = "sse2")))]
pub(crate) fn lanes_available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        accelerate() && crate::hw::has_sha_ni()
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        false
    }
}

/// Runs the whole 32-byte steps every loop has on the SHA extensions;
/// returns the bytes done per loop (0 where the CPU lacks them or on other
/// architectures and x86_64 targets without SSE2).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn accelerated<const N: usize>(loops: &mut [(&HmacKey, &mut [u8; 32], &mut [u8]); N]) -> usize {
    use super::sha_ni::{Chain, hmac_chain};
    let mut chains = loops.each_mut().map(|(key, v, out)| Chain {
        inner: &key.inner,
        outer: &key.outer,
        v,
        out,
    });
    hmac_chain(&mut chains).saturating_mul(32)
}

/// `N` independent one-block digests: `blocks[l]` compressed into its own
/// copy of `start`, written to `digests[l]` as big-endian digest bytes (what
/// [`compress`] then [`state_bytes`] give, lane by lane). On the SHA
/// extensions the `N` compressions' rounds interleave
/// (`sha_ni::digest_lanes`); elsewhere, under miri and in a unit test that
/// asked for the portable path, they run one after the other. Hash_DRBG's
/// hashgen is its caller: each output block is `SHA-256(V + i)`, one block
/// from the initial value, independent of the others.
#[inline]
pub(crate) fn digest_blocks<const N: usize>(
    start: &[u32; 8],
    blocks: &[[u8; BLOCK]; N],
    digests: [&mut [u8; 32]; N],
) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    let digests = {
        let mut digests = digests;
        let lanes = digests.each_mut().map(|d| &mut **d);
        if accelerate() && super::sha_ni::digest_lanes(start, blocks, lanes) {
            return;
        }
        digests
    };
    for (block, digest) in blocks.iter().zip(digests) {
        let mut state = *start;
        compress(&mut state, block);
        state_bytes(&state, digest);
        state.zeroize();
    }
}

/// No SHA extensions here: the portable path does every step.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn accelerated<const N: usize>(_: &mut [(&HmacKey, &mut [u8; 32], &mut [u8]); N]) -> usize {
    0
}

/// One HMAC_DRBG output loop in progress: `v = HMAC(key, v)` split into
/// its inner and outer compressions, so two loops can be interleaved.
/// Its scratch space is wiped on drop.
struct Lane<'a> {
    key: &'a HmacKey,
    v: &'a mut [u8; 32],
    /// The next compression's message: `v` (or the inner digest) padded as
    /// the second block of a 96-byte message.
    block: [u8; BLOCK],
    state: [u32; 8],
}

impl<'a> Lane<'a> {
    fn new(key: &'a HmacKey, v: &'a mut [u8; 32]) -> Self {
        let block = padded_96(v);
        Self {
            key,
            v,
            block,
            state: [0; 8],
        }
    }

    /// The inner compression; its digest becomes the outer message.
    #[inline]
    fn inner(&mut self) {
        self.state = self.key.inner;
        compress(&mut self.state, &self.block);
        if let Some(msg) = self.block.get_mut(..32) {
            for (dst, word) in msg.chunks_exact_mut(4).zip(self.state.iter()) {
                for (d, s) in dst.iter_mut().zip(word.to_be_bytes()) {
                    *d = s;
                }
            }
        }
    }

    /// The outer compression: the new `v`, also the next inner message.
    #[inline]
    fn outer(&mut self) {
        self.state = self.key.outer;
        compress(&mut self.state, &self.block);
        state_bytes(&self.state, self.v);
        for (dst, src) in self.block.iter_mut().zip(self.v.iter()) {
            *dst = *src;
        }
    }

    /// Copies the leftmost bytes of `v` into `piece` (at most 32 bytes); a
    /// whole piece is one fixed-size move (a loop became a `memcpy` call).
    #[inline]
    fn emit(&self, piece: &mut [u8]) {
        if let Ok(whole) = <&mut [u8; 32]>::try_from(&mut *piece) {
            *whole = *self.v;
        } else {
            for (dst, src) in piece.iter_mut().zip(self.v.iter()) {
                *dst = *src;
            }
        }
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        self.block.zeroize();
        self.state.zeroize();
    }
}

impl Zeroize for HmacKey {
    fn zeroize(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for HmacKey {}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit, Mac};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn sha_ref(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn hmac_ref(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    proptest! {
        // No failure file: finding it calls getcwd, which miri's isolation refuses.
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Streaming in arbitrary pieces equals the `sha2` crate's digest.
        #[test]
        fn stream_matches_sha2(a in proptest::collection::vec(any::<u8>(), 0..300),
                               b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = Sha256Stream::new();
            s.update(&a);
            s.update(&b);
            let mut out = [0u8; 32];
            s.finalize_into(&mut out);
            prop_assert_eq!(out, sha_ref(&[&a, &b]));
        }

        /// Both MAC paths equal the `hmac` crate's HMAC-SHA-256.
        #[test]
        fn hmac_matches_hmac_crate(key in any::<[u8; 32]>(), v in any::<[u8; 32]>(),
                                   a in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = HmacKey::new(&key);
            let mut out = [0u8; 32];
            k.mac(&[&v, &a], &mut out);
            prop_assert_eq!(out, hmac_ref(&key, &[&v, &a]));
            let mut w = v;
            k.mac32_in_place(&mut w);
            prop_assert_eq!(w, hmac_ref(&key, &[&v]));
        }

        /// The output loop, one or two at a time, accelerated (SHA
        /// extensions, where the CPU has them) or portable, equals
        /// `v = HMAC(key, v)` by the `hmac` crate once per (partial) piece.
        #[test]
        fn output_loops_match_hmac_crate(k0 in any::<[u8; 32]>(), k1 in any::<[u8; 32]>(),
                                         v0 in any::<[u8; 32]>(), v1 in any::<[u8; 32]>(),
                                         n0 in 1usize..300, n1 in 1usize..300) {
            let model = |key: &[u8; 32], v: [u8; 32], n: usize| {
                let mut v = v;
                let mut out = std::vec![0u8; n];
                for piece in out.chunks_mut(32) {
                    v = hmac_ref(key, &[&v]);
                    piece.copy_from_slice(&v[..piece.len()]);
                }
                (out, v)
            };
            let (want0, end0) = model(&k0, v0, n0);
            let (want1, end1) = model(&k1, v1, n1);
            let (a, b) = (HmacKey::new(&k0), HmacKey::new(&k1));
            for accelerate in [true, false] {
                let (mut o0, mut o1) = (std::vec![0u8; n0], std::vec![0u8; n1]);
                let (mut w0, mut w1) = (v0, v1);
                a.chain_with(&mut w0, &mut o0, accelerate);
                prop_assert_eq!((&o0, w0), (&want0, end0));
                // Fresh buffers: the pair must write every byte itself.
                let (mut w0, mut o0) = (v0, std::vec![0u8; n0]);
                HmacKey::chain_pair_with((&a, &mut w0, &mut o0), (&b, &mut w1, &mut o1), accelerate);
                prop_assert_eq!((&o0, w0), (&want0, end0));
                prop_assert_eq!((&o1, w1), (&want1, end1));
            }
        }
    }

    #[test]
    fn padding_boundaries_match_sha2() {
        // Lengths around the 55/56/64-byte padding edges.
        for len in 50..=130usize {
            let data: std::vec::Vec<u8> = (0..len).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
            let mut s = Sha256Stream::new();
            s.update(&data);
            let mut out = [0u8; 32];
            s.finalize_into(&mut out);
            assert_eq!(out, sha_ref(&[&data]), "len {len}");
        }
    }
}
