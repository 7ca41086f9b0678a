//! Hash_DRBG with SHA-256, seedlen 440 (SP 800-90A section 10.1.1).

use zeroize::Zeroize;

use super::{MAX_RESEED_INTERVAL, check_generate, check_instantiate, check_reseed};
use crate::crypto::sha256::{BLOCK, IV, Sha256Stream, compress, state_bytes};
use crate::error::Error;

/// seedlen for SHA-256: 440 bits.
const SEEDLEN: usize = 55;
/// seedlen in bits, as Hash_df encodes it.
const SEEDLEN_BITS: u32 = 440;

/// SP 800-90A Hash_DRBG with SHA-256 at 256-bit security strength.
///
/// Same API and limits as [`HmacDrbg`](super::HmacDrbg) (see the
/// [module doc](super)). Each 32-byte output block costs one SHA-256
/// compression (`V` is 55 bytes and pads into one block) against HMAC_DRBG's
/// two; where HMAC_DRBG's loop runs on the SHA extensions the two are about
/// as fast (BENCHMARKS.md).
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
        // Hashgen (10.1.1.4): data = V, V + 1, ...; each is one block.
        let mut block = [0u8; BLOCK];
        for (dst, src) in block.iter_mut().zip(self.v.iter()) {
            *dst = *src;
        }
        block[SEEDLEN] = 0x80;
        // 440 = 0x01b8 bits, big-endian in the last 8 bytes.
        block[62] = 0x01;
        block[63] = 0xb8;
        let mut state = IV;
        for chunk in out.chunks_mut(32) {
            state = IV;
            compress(&mut state, &block);
            state_bytes(&state, &mut w);
            for (dst, src) in chunk.iter_mut().zip(w.iter()) {
                *dst = *src;
            }
            if let Some(data) = block.get_mut(..SEEDLEN) {
                increment_be(data);
            }
        }
        block.zeroize();
        state.zeroize();
        // V = V + H + C + reseed_counter, H = Hash(0x03 || V).
        hash(&[&[0x03], &self.v], &mut w);
        add_be(&mut self.v, &w);
        let c = self.c;
        add_be(&mut self.v, &c);
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

/// `data = (data + 1) mod 2^(8 * data.len())`, big-endian; stops at the
/// first byte that does not carry.
#[inline]
fn increment_be(data: &mut [u8]) {
    for b in data.iter_mut().rev() {
        let (sum, carry) = b.overflowing_add(1);
        *b = sum;
        if !carry {
            break;
        }
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
    use super::{add_be, increment_be};

    #[test]
    fn increment_matches_add_be() {
        for start in [
            [0u8; 3],
            [0, 0, 0xff],
            [0, 0xff, 0xff],
            [0xff; 3],
            [1, 2, 3],
        ] {
            let (mut a, mut b) = (start, start);
            increment_be(&mut a);
            add_be(&mut b, &[1]);
            assert_eq!(a, b, "{start:?}");
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
