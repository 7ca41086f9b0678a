//! HMAC_DRBG with SHA-256 (SP 800-90A section 10.1.2).

use zeroize::Zeroize;

use super::{MAX_RESEED_INTERVAL, check_generate, check_instantiate, check_reseed};
use crate::crypto::sha256::HmacKey;
use crate::error::Error;

/// SP 800-90A HMAC_DRBG with SHA-256 at 256-bit security strength.
///
/// Limits and their errors are listed in the [module doc](super).
///
/// ```
/// use entropool::drbg::HmacDrbg;
/// let mut drbg = HmacDrbg::new(&[7u8; 32], &[9u8; 16], b"my app")?;
/// let mut key = [0u8; 32];
/// drbg.generate(&mut key, b"")?;
/// drbg.reseed(&[3u8; 32], b"")?;
/// # Ok::<(), entropool::Error>(())
/// ```
pub struct HmacDrbg {
    /// `Key`, kept as its keyed HMAC midstates.
    key: HmacKey,
    /// `V`.
    v: [u8; 32],
    /// Generate calls since the last (re)seed, plus one (the standard's
    /// `reseed_counter`).
    reseed_counter: u64,
    /// Largest allowed `reseed_counter` value.
    reseed_interval: u64,
}

impl HmacDrbg {
    /// Instantiate (SP 800-90A 10.1.2.3) from `entropy`, `nonce` and
    /// `personalization`.
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes or
    /// `entropy` + `nonce` under 48 bytes; [`Error::DrbgInputTooLong`] when an
    /// input exceeds [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN).
    pub fn new(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Result<HmacDrbg, Error> {
        check_instantiate(entropy, nonce, personalization)?;
        let mut drbg = HmacDrbg {
            key: HmacKey::new(&[0u8; 32]),
            v: [0x01; 32],
            reseed_counter: 1,
            reseed_interval: MAX_RESEED_INTERVAL,
        };
        drbg.update(entropy, nonce, personalization);
        Ok(drbg)
    }

    /// Reseed (SP 800-90A 10.1.2.4) with `entropy` and `additional` input.
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes;
    /// [`Error::DrbgInputTooLong`] when an input exceeds
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN). The state is unchanged then.
    pub fn reseed(&mut self, entropy: &[u8], additional: &[u8]) -> Result<(), Error> {
        check_reseed(entropy, additional)?;
        self.update(entropy, additional, &[]);
        self.reseed_counter = 1;
        Ok(())
    }

    /// Generate (SP 800-90A 10.1.2.5): fills `out` (at most 64 KiB).
    ///
    /// # Errors
    /// [`Error::DrbgRequestTooLarge`] when `out` is over 64 KiB,
    /// [`Error::DrbgInputTooLong`] when `additional` is over
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN), [`Error::DrbgReseedRequired`]
    /// when the reseed interval is exhausted. Then `out` and the state are
    /// unchanged.
    pub fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), Error> {
        check_generate(out, additional, self.reseed_counter, self.reseed_interval)?;
        if !additional.is_empty() {
            self.update(additional, &[], &[]);
        }
        if !out.is_empty() {
            self.key.chain(&mut self.v, out);
        }
        self.update(additional, &[], &[]);
        self.reseed_counter = self.reseed_counter.saturating_add(1);
        Ok(())
    }

    /// Two generate calls on two independent instances at once: the same
    /// result as `self.generate(out, additional)` followed by
    /// `other.generate(other_out, additional)`, with the two output loops
    /// run in lockstep so the CPU overlaps their compressions (about 1.5
    /// times the throughput of one instance).
    ///
    /// # Errors
    /// As [`generate`](Self::generate), for either instance; both are
    /// checked first, so on error neither state nor output is changed.
    pub fn generate_pair(
        &mut self,
        other: &mut HmacDrbg,
        out: &mut [u8],
        other_out: &mut [u8],
        additional: &[u8],
    ) -> Result<(), Error> {
        self.check_pair(other, out, other_out, additional)?;
        if !additional.is_empty() {
            self.update(additional, &[], &[]);
            other.update(additional, &[], &[]);
        }
        match (out.is_empty(), other_out.is_empty()) {
            (false, false) => HmacKey::chain_pair(
                (&self.key, &mut self.v, out),
                (&other.key, &mut other.v, other_out),
            ),
            (false, true) => self.key.chain(&mut self.v, out),
            (true, false) => other.key.chain(&mut other.v, other_out),
            (true, true) => {}
        }
        for drbg in [self, other] {
            drbg.update(additional, &[], &[]);
            drbg.reseed_counter = drbg.reseed_counter.saturating_add(1);
        }
        Ok(())
    }

    /// The HMAC_DRBG_Update function (10.1.2.2) over `a || b || c`.
    fn update(&mut self, a: &[u8], b: &[u8], c: &[u8]) {
        self.update_round(0x00, a, b, c);
        if !(a.is_empty() && b.is_empty() && c.is_empty()) {
            self.update_round(0x01, a, b, c);
        }
    }

    /// `K = HMAC(K, V || round || a || b || c); V = HMAC(K, V)`.
    fn update_round(&mut self, round: u8, a: &[u8], b: &[u8], c: &[u8]) {
        let mut new_key = [0u8; 32];
        self.key.mac(&[&self.v, &[round], a, b, c], &mut new_key);
        self.key = HmacKey::new(&new_key);
        new_key.zeroize();
        self.key.mac32_in_place(&mut self.v);
    }
}

drbg_common!(HmacDrbg, secrets: [key, v]);
