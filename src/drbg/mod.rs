//! SP 800-90A deterministic random bit generators with SHA-256.
//!
//! Contract: [`HmacDrbg`] (section 10.1.2) and [`HashDrbg`] (section 10.1.1,
//! seedlen 440) implement the standard's instantiate, reseed and generate
//! functions bit for bit (every SHA-256 case of NIST's CAVP vectors passes),
//! at a security strength of 256 bits. Every limit of the standard is an
//! [`Error`], never a panic, and a failed call leaves the state unchanged:
//!
//! | limit | value here | standard (SHA-256) | error |
//! | --- | --- | --- | --- |
//! | entropy input, minimum | 32 bytes (256 bits) | security strength | [`Error::DrbgEntropyTooShort`] |
//! | entropy input + nonce at instantiation, minimum | 48 bytes | 3/2 security strength (8.6.7) | [`Error::DrbgEntropyTooShort`] |
//! | entropy, nonce, personalization, additional input, maximum | [`MAX_INPUT_LEN`] = 64 KiB each | 2^35 bits | [`Error::DrbgInputTooLong`] |
//! | one request, maximum | [`MAX_REQUEST_LEN`] = 64 KiB (2^19 bits) | 2^19 bits | [`Error::DrbgRequestTooLarge`] |
//! | generate calls between reseeds | [`MAX_RESEED_INTERVAL`] = 2^48, or smaller via `set_reseed_interval` | 2^48 | [`Error::DrbgReseedRequired`] |
//!
//! The input cap of 64 KiB (far below 2^35 bits) bounds the time one call
//! may take; callers with longer inputs should condition them first.
//!
//! The working state is secret: zeroized on drop, never `Clone` or `Copy`,
//! printed as `HmacDrbg { .. }`. HMAC_DRBG keeps the keyed inner and outer
//! HMAC midstates of its key, so each 32-byte output block costs exactly two
//! SHA-256 compressions; Hash_DRBG costs one per 32-byte block. On x86_64
//! CPUs with the SHA extensions (CPUID), HMAC_DRBG's output loop runs on
//! them with the inner digest kept in registers, and
//! [`HmacDrbg::generate_pair`] interleaves the loops of two instances so
//! their compressions overlap; Hash_DRBG's output blocks are independent
//! (`SHA-256(V + i)`), so its generate compresses two at a time there.
//! Elsewhere (and under miri) the portable path over `sha2` runs. Both give
//! the same bytes: the CAVP vectors of both mechanisms run on both paths
//! (the unit tests force the portable one), and property tests check the
//! HMAC output loops against each other and the `hmac` crate, and
//! Hash_DRBG's lanes against its portable path and the standard's hashgen.
//!
//! Wiping: the state and the scratch buffers this module owns are
//! zeroized. Copies the compiler makes of secret values (registers spilled
//! to the stack, temporaries inside `sha2` and the SHA-NI kernel) are not
//! wiped, as in the `sha2` and `hmac` crates themselves; a caller that must
//! erase those too should wipe its stack (e.g. run on a dedicated stack it
//! zeroes afterwards).
//!
//! Prediction resistance is a property of the caller: reseed before each
//! generate call (as [`crate::rng::PoolRng`] does when asked to).

/// What both mechanisms share around their own SP 800-90A functions, so
/// each file holds only its mechanism: `set_reseed_interval`, the [`Drbg`]
/// impl (each function delegates to the inherent one of the same name),
/// and the wipe: `Zeroize` over the named secret fields and then a reseed
/// counter that refuses to generate, `Drop`, `ZeroizeOnDrop`, and a
/// `Debug` that prints no state. The type keeps its `reseed_counter` and
/// `reseed_interval` fields and the inherent `new`, `reseed`, `generate`
/// and `generate_pair` (the last checks both requests before either
/// instance changes).
macro_rules! drbg_common {
    ($ty:ident, secrets: [$($secret:ident),+ $(,)?]) => {
        impl $ty {
            /// Lowers the reseed interval (generate calls allowed between
            /// reseeds) from the default 2^48. Takes effect at once,
            /// counting calls made since the last reseed.
            ///
            /// # Errors
            /// [`Error::InvalidValue`] unless `1 <= interval <= 2^48`.
            pub fn set_reseed_interval(&mut self, interval: u64) -> Result<(), Error> {
                super::check_interval(interval)?;
                self.reseed_interval = interval;
                Ok(())
            }

            /// The checks of `generate_pair`: both requests against their
            /// own instance, before either changes.
            fn check_pair(
                &self,
                other: &Self,
                out: &[u8],
                other_out: &[u8],
                additional: &[u8],
            ) -> Result<(), Error> {
                super::check_generate(out, additional, self.reseed_counter, self.reseed_interval)?;
                super::check_generate(
                    other_out,
                    additional,
                    other.reseed_counter,
                    other.reseed_interval,
                )
            }
        }

        impl super::Drbg for $ty {
            fn instantiate(
                entropy: &[u8],
                nonce: &[u8],
                personalization: &[u8],
            ) -> Result<Self, Error> {
                $ty::new(entropy, nonce, personalization)
            }

            fn reseed(&mut self, entropy: &[u8], additional: &[u8]) -> Result<(), Error> {
                $ty::reseed(self, entropy, additional)
            }

            fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), Error> {
                $ty::generate(self, out, additional)
            }

            fn generate_pair(
                &mut self,
                other: &mut Self,
                out: &mut [u8],
                other_out: &mut [u8],
                additional: &[u8],
            ) -> Result<(), Error> {
                $ty::generate_pair(self, other, out, other_out, additional)
            }
        }

        impl zeroize::Zeroize for $ty {
            fn zeroize(&mut self) {
                $(zeroize::Zeroize::zeroize(&mut self.$secret);)+
                // A wiped generator refuses to generate until it is reseeded.
                self.reseed_counter = u64::MAX;
            }
        }

        impl Drop for $ty {
            fn drop(&mut self) {
                zeroize::Zeroize::zeroize(self);
            }
        }

        impl zeroize::ZeroizeOnDrop for $ty {}

        impl core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($ty), " { .. }"))
            }
        }
    };
}

mod hash;
mod hmac;

pub use hash::HashDrbg;
pub use hmac::HmacDrbg;

use crate::error::Error;

/// Security strength in bytes (256 bits): the minimum entropy input.
pub const SECURITY_STRENGTH: usize = 32;

/// Largest entropy input, nonce, personalization string or additional input
/// accepted, in bytes (a documented cap below the standard's 2^35 bits).
pub const MAX_INPUT_LEN: usize = 64 * 1024;

/// Largest request in bytes: 2^19 bits.
pub const MAX_REQUEST_LEN: usize = (1 << 19) / 8;

/// Largest (and default) number of generate calls between reseeds: 2^48.
pub const MAX_RESEED_INTERVAL: u64 = 1 << 48;

/// The three SP 800-90A functions shared by [`HmacDrbg`] and [`HashDrbg`],
/// so [`crate::rng::PoolRng`] can run on either. Implementors wipe their
/// state on drop.
pub trait Drbg: Sized + zeroize::ZeroizeOnDrop {
    /// Instantiate (SP 800-90A 9.1).
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes or
    /// `entropy` + `nonce` under 48 bytes; [`Error::DrbgInputTooLong`] when
    /// any input exceeds [`MAX_INPUT_LEN`].
    fn instantiate(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Result<Self, Error>;

    /// Reseed (SP 800-90A 9.2); resets the reseed counter.
    ///
    /// # Errors
    /// [`Error::DrbgEntropyTooShort`] when `entropy` is under 32 bytes;
    /// [`Error::DrbgInputTooLong`] when an input exceeds [`MAX_INPUT_LEN`].
    fn reseed(&mut self, entropy: &[u8], additional: &[u8]) -> Result<(), Error>;

    /// Generate (SP 800-90A 9.3) `out.len()` bytes.
    ///
    /// # Errors
    /// [`Error::DrbgRequestTooLarge`] over [`MAX_REQUEST_LEN`] bytes,
    /// [`Error::DrbgInputTooLong`] when `additional` exceeds
    /// [`MAX_INPUT_LEN`], [`Error::DrbgReseedRequired`] when the reseed
    /// interval is exhausted. On error `out` is left untouched.
    fn generate(&mut self, out: &mut [u8], additional: &[u8]) -> Result<(), Error>;

    /// Two generate calls on two independent instances: the same result as
    /// `self.generate(out, additional)` followed by
    /// `other.generate(other_out, additional)`, which is what this provided
    /// method does. Both mechanisms here override it to check both
    /// requests before either instance changes; [`HmacDrbg`]'s also
    /// interleaves the two output loops.
    ///
    /// # Errors
    /// As [`generate`](Self::generate). Here `self` has generated already
    /// when `other` fails; an override may do better.
    fn generate_pair(
        &mut self,
        other: &mut Self,
        out: &mut [u8],
        other_out: &mut [u8],
        additional: &[u8],
    ) -> Result<(), Error> {
        self.generate(out, additional)?;
        other.generate(other_out, additional)
    }
}

/// Checks the inputs of instantiate.
fn check_instantiate(entropy: &[u8], nonce: &[u8], personalization: &[u8]) -> Result<(), Error> {
    check_entropy(entropy)?;
    if nonce.len() > MAX_INPUT_LEN || personalization.len() > MAX_INPUT_LEN {
        return Err(Error::DrbgInputTooLong);
    }
    if entropy.len().saturating_add(nonce.len()) < SECURITY_STRENGTH * 3 / 2 {
        return Err(Error::DrbgEntropyTooShort);
    }
    Ok(())
}

/// Checks an entropy input.
fn check_entropy(entropy: &[u8]) -> Result<(), Error> {
    if entropy.len() < SECURITY_STRENGTH {
        return Err(Error::DrbgEntropyTooShort);
    }
    if entropy.len() > MAX_INPUT_LEN {
        return Err(Error::DrbgInputTooLong);
    }
    Ok(())
}

/// Checks the inputs of reseed.
fn check_reseed(entropy: &[u8], additional: &[u8]) -> Result<(), Error> {
    check_entropy(entropy)?;
    if additional.len() > MAX_INPUT_LEN {
        return Err(Error::DrbgInputTooLong);
    }
    Ok(())
}

/// Checks a generate request against the limits and the reseed counter.
fn check_generate(out: &[u8], additional: &[u8], counter: u64, interval: u64) -> Result<(), Error> {
    if out.len() > MAX_REQUEST_LEN {
        return Err(Error::DrbgRequestTooLarge);
    }
    if additional.len() > MAX_INPUT_LEN {
        return Err(Error::DrbgInputTooLong);
    }
    if counter > interval {
        return Err(Error::DrbgReseedRequired);
    }
    Ok(())
}

/// Validates a reseed interval for `set_reseed_interval`.
fn check_interval(interval: u64) -> Result<(), Error> {
    if interval == 0 || interval > MAX_RESEED_INTERVAL {
        return Err(Error::InvalidValue {
            param: "reseed-interval",
            value: interval,
            min: 1,
            max: MAX_RESEED_INTERVAL,
        });
    }
    Ok(())
}

/// The CAVP parser and loop of `tests/drbg_cavp.rs`, for the unit tests.
#[cfg(test)]
#[path = "../../tests/cavp/mod.rs"]
mod cavp;

#[cfg(test)]
mod tests {
    //! HMAC_DRBG on the portable output loop, whatever the CPU: the path
    //! every target without the SHA extensions (the firmware's) runs.
    #![allow(clippy::unwrap_used)]

    use super::{HmacDrbg, cavp};
    use crate::crypto::sha256::PORTABLE_ONLY;

    #[test]
    fn hmac_cavp_cases_pass_on_the_portable_path() {
        PORTABLE_ONLY.with(|p| p.set(true));
        let mut files = 0;
        for (name, text) in cavp::FILES.iter().filter(|(n, _)| n.starts_with("HMAC")) {
            assert_eq!(
                cavp::run::<HmacDrbg>(name, text),
                cavp::CASES_PER_FILE,
                "{name}"
            );
            files += 1;
        }
        assert_eq!(files, 3);
    }

    #[test]
    fn pair_on_the_portable_path_equals_the_accelerated_one() {
        let make = |tag: u8| HmacDrbg::new(&[tag; 32], &[tag; 16], b"pair").unwrap();
        let mut outputs = std::vec::Vec::new();
        for portable in [true, false] {
            PORTABLE_ONLY.with(|p| p.set(portable));
            let (mut a, mut b) = (make(1), make(2));
            let (mut oa, mut ob) = ([0u8; 200], [0u8; 131]);
            a.generate_pair(&mut b, &mut oa, &mut ob, b"extra").unwrap();
            outputs.push((oa, ob));
        }
        assert_eq!(outputs[0], outputs[1]);
        // And the pair is two single calls.
        let (mut a, mut b) = (make(1), make(2));
        let (mut oa, mut ob) = ([0u8; 200], [0u8; 131]);
        a.generate(&mut oa, b"extra").unwrap();
        b.generate(&mut ob, b"extra").unwrap();
        assert_eq!(outputs[0], (oa, ob));
    }
}
