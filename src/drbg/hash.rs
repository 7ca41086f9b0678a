//! Hash_DRBG with SHA-256, seedlen 440 (SP 800-90A section 10.1.1).

use zeroize::Zeroize;

use super::{MAX_RESEED_INTERVAL, check_generate, check_instantiate, check_reseed};
use crate::crypto::sha256::{BLOCK, IV, Sha256Stream, digest_blocks};
use crate::error::Error;

/// seedlen for SHA-256: 440 bits.
const SEEDLEN: usize = 55;
/// seedlen in bits, as Hash_df encodes it.
const SEEDLEN_BITS: u32 = 440;

/// SP 800-90A Hash_DRBG with SHA-256 at 256-bit security strength.
///
/// Same API and limits as [`HmacDrbg`](super::HmacDrbg) (see the
/// [module doc](super)). Each 32-byte output block costs one SHA-256
/// compression (`V + i` is 55 bytes and pads into one block) against
/// HMAC_DRBG's two, and the blocks are independent: on the SHA extensions
/// two are compressed at once, and a large request costs about a third of
/// HMAC_DRBG's chained loop (BENCHMARKS.md).
///
/// ```
/// use entropool::drbg::HashDrbg;
/// let mut drbg = HashDrbg::new(&[7u8; 32], &[9u8; 16], b"my app")?;
/// let mut key = [0u8; 32];
/// drbg.generate(&mut key, b"")?;
/// # Ok::<(), entropool::Error>(())
/// ```
pub struct HashDrbg {
    v: [u8; SEEDLEN],
    c: [u8; SEEDLEN],
    reseed_counter: u64,
    reseed_interval: u64,
}

impl HashDrbg {
    /// Instantiate (SP 800-90A 10.1.1.2).
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes or
    /// `entropy` + `nonce` under 48 bytes; [`Error::DrbgInputTooLong`] when an
    /// input exceeds [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN).
    pub fn new(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Result<HashDrbg, Error> {
        check_instantiate(entropy, nonce, personalization)?;
        let mut drbg = HashDrbg {
            v: [0; SEEDLEN],
            c: [0; SEEDLEN],
            reseed_counter: 1,
            reseed_interval: MAX_RESEED_INTERVAL,
        };
        hash_df(&[entropy, nonce, personalization], &mut drbg.v);
        drbg.derive_c();
        Ok(drbg)
    }

    /// Reseed (SP 800-90A 10.1.1.3).
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes;
    /// [`Error::DrbgInputTooLong`] when an input exceeds
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN). The state is unchanged then.
    pub fn reseed(&mut self, entropy: &[u8], additional: &[u8]) -> Result<(), Error> {
        check_reseed(entropy, additional)?;
        let mut seed = [0u8; SEEDLEN];
        hash_df(&[&[0x01], &self.v, entropy, additional], &mut seed);
        self.v = seed;
        seed.zeroize();
        self.derive_c();
        self.reseed_counter = 1;
        Ok(())
    }

    /// Generate (SP 800-90A 10.1.1.4): fills `out` (at most 64 KiB).
    ///
    /// # Errors
    /// [`Error::DrbgRequestTooLarge`] when `out` is over 64 KiB,
    /// [`Error::DrbgInputTooLong`] when `additional` is over
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN), [`Error::DrbgReseedRequired`]
    /// when the reseed interval is exhausted. Then `out` and the state are
    /// unchanged.
    pub fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), Error> {
        check_generate(out, additional, self.reseed_counter, self.reseed_interval)?;
        let mut w = [0u8; 32];
        if !additional.is_empty() {
            hash(&[&[0x02], &self.v, additional], &mut w);
            add_be(&mut self.v, &w);
        }
        hashgen(&self.v, out);
        // V = V + H + C + reseed_counter, H = Hash(0x03 || V).
        hash(&[&[0x03], &self.v], &mut w);
        add_be(&mut self.v, &w);
        add_be(&mut self.v, &self.c);
        add_be(&mut self.v, &self.reseed_counter.to_be_bytes());
        w.zeroize();
        self.reseed_counter = self.reseed_counter.saturating_add(1);
        Ok(())
    }

    /// Two generate calls on two independent instances: the same result
    /// as `self.generate(out, additional)` followed by
    /// `other.generate(other_out, additional)`.
    ///
    /// # Errors
    /// As [`generate`](Self::generate), for either instance; both are
    /// checked first, so on error neither state nor output is changed.
    pub fn generate_pair(
        &mut self,
        other: &mut HashDrbg,
        out: &mut [u8],
        other_out: &mut [u8],
        additional: &[u8],
    ) -> Result<(), Error> {
        self.check_pair(other, out, other_out, additional)?;
        self.generate(out, additional)?;
        other.generate(other_out, additional)
    }

    /// `C = Hash_df(0x00 || V, seedlen)`.
    fn derive_c(&mut self) {
        hash_df(&[&[0x00], &self.v], &mut self.c);
    }
}

/// Hashgen's blocks in flight at once. Two are the SHA unit's throughput
/// on the development machine (AMD family 0x17, SHA-NI; best of many
/// batches, 64 KiB per generate call): one lane 88.7 us, two 57.9, three
/// 59.3, four 61.4 (more lanes spill the vector registers). The group
/// split in [`hashgen`] names two pieces.
const LANES: usize = 2;
const _: () = assert!(LANES == 2);

/// Hashgen (10.1.1.4): `out` is the leftmost bytes of `SHA-256(V) ||
/// SHA-256(V + 1) || ...`. `V + i` (55 bytes) with its padding is one
/// block, and the blocks are independent, so [`LANES`] of them are
/// compressed at once (on the SHA extensions; one after the other
/// elsewhere: `digest_blocks`); a last whole or partial piece is digested
/// alone.
fn hashgen(v: &[u8; SEEDLEN], out: &mut [u8]) {
    let mut block = [0u8; BLOCK];
    for (dst, src) in block.iter_mut().zip(v.iter()) {
        *dst = *src;
    }
    block[SEEDLEN] = 0x80;
    // 440 = 0x01b8 bits, big-endian in the last 8 bytes.
    block[62] = 0x01;
    block[63] = 0xb8;
    // blocks[l] holds V + i for the next group's piece i = l (mod LANES).
    let mut blocks = [block; LANES];
    block.zeroize();
    if let Some(data) = blocks[1].get_mut(..SEEDLEN) {
        add_small_be(data, 1);
    }
    let mut groups = out.chunks_exact_mut(32 * LANES);
    for group in &mut groups {
        // The digests go straight to the output. Both splits succeed:
        // the group is 64 bytes.
        let Some((first, rest)) = group.split_first_chunk_mut::<32>() else {
            break;
        };
        let Some((second, _)) = rest.split_first_chunk_mut::<32>() else {
            break;
        };
        digest_blocks(&IV, &blocks, [first, second]);
        for b in &mut blocks {
            if let Some(data) = b.get_mut(..SEEDLEN) {
                add_small_be(data, 2);
            }
        }
    }
    let mut digest = [0u8; 32];
    for (piece, b) in groups.into_remainder().chunks_mut(32).zip(blocks.iter()) {
        digest_blocks(&IV, core::array::from_ref(b), [&mut digest]);
        for (dst, src) in piece.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    }
    blocks.zeroize();
    digest.zeroize();
}

/// SHA-256 of the concatenation of `parts`.
fn hash(parts: &[&[u8]], out: &mut [u8; 32]) {
    let mut s = Sha256Stream::new();
    for p in parts {
        s.update(p);
    }
    s.finalize_into(out);
}

/// Hash_df (10.3.1) returning 440 bits: two SHA-256 calls, truncated.
fn hash_df(parts: &[&[u8]], out: &mut [u8; SEEDLEN]) {
    let mut temp = [0u8; 64];
    for (counter, half) in (1u8..).zip(temp.chunks_exact_mut(32)) {
        let mut s = Sha256Stream::new();
        s.update(&[counter]);
        s.update(&SEEDLEN_BITS.to_be_bytes());
        for p in parts {
            s.update(p);
        }
        let mut digest = [0u8; 32];
        s.finalize_into(&mut digest);
        for (dst, src) in half.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        digest.zeroize();
    }
    for (dst, src) in out.iter_mut().zip(temp.iter()) {
        *dst = *src;
    }
    temp.zeroize();
}

/// `data = (data + n) mod 2^(8 * data.len())`, big-endian; stops at the
/// first byte that does not carry.
#[inline]
fn add_small_be(data: &mut [u8], n: u8) {
    let mut carry = n;
    for b in data.iter_mut().rev() {
        let (sum, over) = b.overflowing_add(carry);
        *b = sum;
        if !over {
            break;
        }
        carry = 1;
    }
}

/// `acc = (acc + x) mod 2^(8 * acc.len())`, both big-endian; `x` may be
/// shorter than `acc` (it is right-aligned).
fn add_be(acc: &mut [u8], x: &[u8]) {
    let mut carry = 0u16;
    let mut xs = x.iter().rev();
    for a in acc.iter_mut().rev() {
        let sum = u16::from(*a) + u16::from(xs.next().copied().unwrap_or(0)) + carry;
        *a = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
}

drbg_common!(HashDrbg, secrets: [v, c]);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::super::{MAX_RESEED_INTERVAL, cavp};
    use super::{HashDrbg, SEEDLEN, add_be, add_small_be};
    use crate::crypto::sha256::PORTABLE_ONLY;

    /// Hashgen as SP 800-90A writes it, on the `sha2` crate: the leftmost
    /// `len` bytes of SHA-256(V) || SHA-256(V + 1) || ...
    fn hashgen_model(v: &[u8; SEEDLEN], len: usize) -> std::vec::Vec<u8> {
        let mut data = *v;
        let mut out = std::vec::Vec::new();
        while out.len() < len {
            out.extend_from_slice(&Sha256::digest(data));
            add_be(&mut data, &[1]);
        }
        out.truncate(len);
        out
    }

    fn seedlen(bytes: &[u8]) -> [u8; SEEDLEN] {
        let mut a = [0u8; SEEDLEN];
        a.copy_from_slice(bytes);
        a
    }

    /// What one generate call gives and leaves: output, V, C, counter.
    type Outcome = (std::vec::Vec<u8>, [u8; SEEDLEN], [u8; SEEDLEN], u64);

    /// One generate call from the given state, on the portable path or
    /// (where the CPU has the SHA extensions) the lanes.
    fn generate(
        portable: bool,
        v: [u8; SEEDLEN],
        c: [u8; SEEDLEN],
        counter: u64,
        len: usize,
        additional: &[u8],
    ) -> Outcome {
        PORTABLE_ONLY.with(|p| p.set(portable));
        let mut d = HashDrbg {
            v,
            c,
            reseed_counter: counter,
            reseed_interval: MAX_RESEED_INTERVAL,
        };
        let mut out = std::vec![0u8; len];
        d.generate(&mut out, additional).unwrap();
        PORTABLE_ONLY.with(|p| p.set(false));
        (out, d.v, d.c, d.reseed_counter)
    }

    #[test]
    fn hash_cavp_cases_pass_on_the_portable_path() {
        PORTABLE_ONLY.with(|p| p.set(true));
        let mut files = 0;
        for (name, text) in cavp::FILES.iter().filter(|(n, _)| n.starts_with("Hash")) {
            assert_eq!(
                cavp::run::<HashDrbg>(name, text),
                cavp::CASES_PER_FILE,
                "{name}"
            );
            files += 1;
        }
        PORTABLE_ONLY.with(|p| p.set(false));
        assert_eq!(files, 3);
    }

    /// A whole 64 KiB request from a V whose low bytes carry on the first
    /// increments: both paths equal the model.
    #[test]
    fn largest_request_with_carries_equals_the_model() {
        let mut v = [0x5au8; SEEDLEN];
        v[SEEDLEN - 3..].fill(0xff);
        v[SEEDLEN - 1] = 0xfe;
        let want = hashgen_model(&v, 65536);
        for portable in [true, false] {
            let got = generate(portable, v, [3; SEEDLEN], 1, 65536, b"");
            assert!(got.0 == want, "portable: {portable}");
        }
    }

    proptest! {
        // No failure file: finding it calls getcwd, which miri's isolation refuses.
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The lanes (on a CPU with the SHA extensions) and the portable
        /// path give the same output and the same next state, for random
        /// states (some with V's low bytes all 0xff, so `V + i` carries),
        /// any length (not only multiples of 32 or of a lane group's 64)
        /// and additional input; the output is hashgen as the standard
        /// writes it, from V after the additional input.
        #[test]
        fn lanes_equal_portable_and_the_model(
            v in proptest::collection::vec(any::<u8>(), SEEDLEN),
            ff_tail in 0usize..=4,
            c in proptest::collection::vec(any::<u8>(), SEEDLEN),
            counter in 1u64..1_000_000,
            len in prop_oneof![0usize..=300, 300usize..=4200],
            additional in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut v = seedlen(&v);
            if let Some(tail) = v.get_mut(SEEDLEN - ff_tail..) {
                tail.fill(0xff);
            }
            let c = seedlen(&c);
            let portable = generate(true, v, c, counter, len, &additional);
            let lanes = generate(false, v, c, counter, len, &additional);
            prop_assert_eq!(&portable, &lanes);
            let mut v1 = v;
            if !additional.is_empty() {
                let w: [u8; 32] = Sha256::new()
                    .chain_update([0x02])
                    .chain_update(v)
                    .chain_update(&additional)
                    .finalize()
                    .into();
                add_be(&mut v1, &w);
            }
            prop_assert_eq!(lanes.0, hashgen_model(&v1, len));
        }
    }

    #[test]
    fn add_small_matches_add_be() {
        for start in [
            [0u8; 3],
            [0, 0, 0xff],
            [0, 0xff, 0xff],
            [0xff; 3],
            [1, 2, 3],
            [0, 0xfe, 0xfd],
        ] {
            for n in [0u8, 1, 2, 3, 4, 0xff] {
                let (mut a, mut b) = (start, start);
                add_small_be(&mut a, n);
                add_be(&mut b, &[n]);
                assert_eq!(a, b, "{start:?} + {n}");
            }
        }
    }

    #[test]
    fn add_be_matches_u128_model() {
        let cases: [(u128, u128); 4] = [(0, 0), (u128::MAX, 1), (0xff00, 0x0100), (12345, 99999)];
        for (a, b) in cases {
            let mut acc = a.to_be_bytes();
            add_be(&mut acc, &b.to_be_bytes()[8..]);
            assert_eq!(acc, a.wrapping_add(b & u128::from(u64::MAX)).to_be_bytes());
        }
    }
}
