//! The full-entropy block: the one unit every cache and every output moves.
//!
//! # Contract
//!
//! - A [`Block`] is [`BLOCK_LEN`] bytes that earned at least 320 credited
//!   bits ([`super::BLOCK_CREDIT`]) in the mixer, or that the storage loader
//!   read back (keyed with this start's key) from a block the mixer once
//!   emitted. Only those two may make one: the constructors are
//!   `pub(crate)`, so no caller outside the crate can mint "full entropy"
//!   from arbitrary bytes.
//! - It is not `Copy` or `Clone`: a block exists in one place. It leaves only
//!   by being written out (`Pool::fill`, the storage write), and its bytes
//!   are wiped as it leaves; any block dropped unused is wiped on drop.
//! - Comparisons are constant time ([`subtle`]); `Debug` prints
//!   `Block { .. }`.

use core::fmt;

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes in one full-entropy block (the only definition; `cache` and
/// `storage` re-export it).
pub const BLOCK_LEN: usize = 32;

/// A 32-byte full-entropy block: the unit everything downstream moves.
///
/// Zeroized on drop, never `Copy`/`Clone`, printed as `Block { .. }`,
/// compared in constant time. Made only inside the crate (the mixer and the
/// storage loader): outside it there is no constructor, no `Default` and no
/// `Clone`.
///
/// ```compile_fail
/// // Minting "full entropy" from chosen bytes does not compile.
/// let b = entropool::mixer::Block::from_bytes([0; 32]);
/// ```
///
/// ```compile_fail
/// fn twice(b: entropool::mixer::Block) -> (entropool::mixer::Block, entropool::mixer::Block) {
///     (b.clone(), b)
/// }
/// ```
pub struct Block(
    /// The bytes; the conditioner writes its output here in place.
    pub(super) [u8; BLOCK_LEN],
);

impl Zeroize for Block {
    fn zeroize(&mut self) {
        // The slice impl wipes with one fill and an optimisation barrier
        // (the array impl writes byte by byte).
        self.0.as_mut_slice().zeroize();
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Block {}

impl Block {
    /// Bytes in a block.
    pub const LEN: usize = BLOCK_LEN;

    /// An all-zero placeholder: what an empty cache slot holds. Never
    /// handed out as entropy (the cache's ring tells queued slots from
    /// empty ones).
    pub(crate) const EMPTY: Block = Block([0; BLOCK_LEN]);

    /// Wraps bytes that are a full-entropy block: the conditioner's wide
    /// path's output. Crate-internal on purpose:
    /// anything else would claim entropy nobody credited.
    #[must_use]
    #[cfg_attr(
        not(any(test, all(target_arch = "x86_64", target_feature = "sse2"))),
        allow(dead_code)
    )] // the wide one-shot path, and tests
    pub(crate) const fn from_bytes(bytes: [u8; BLOCK_LEN]) -> Block {
        Block(bytes)
    }

    /// A block from chosen bytes, for this repository's tests only (they
    /// need known blocks to check the storage format and keying): it claims
    /// entropy nobody credited. Feature `testing`, hidden, not covered by
    /// semver, never enabled by `cargo build`.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    #[must_use]
    pub const fn from_test_bytes(bytes: [u8; BLOCK_LEN]) -> Block {
        Block(bytes)
    }

    /// The block's bytes, for writing it out (the caller's own buffer
    /// should be wiped by its owner).
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }

    /// The bytes, writable in place (the storage loader keys each block
    /// into a scratch copy, wiped on drop, and copies it in here).
    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; BLOCK_LEN] {
        &mut self.0
    }

    /// Writes the first `out.len()` bytes (at most [`BLOCK_LEN`]) into
    /// `out` and wipes the block: how a block leaves. Returns the bytes
    /// written.
    pub fn write_out(mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(BLOCK_LEN);
        if let (Some(dst), Some(src)) = (out.get_mut(..n), self.0.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.zeroize();
        n
    }
}

impl ConstantTimeEq for Block {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Block {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Block {}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Block { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_out_copies_a_prefix_and_wipes() {
        let mut b = Block::EMPTY;
        b.as_mut_bytes()
            .copy_from_slice(&core::array::from_fn::<u8, 32, _>(|i| {
                u8::try_from(i + 1).unwrap_or(0)
            }));
        let mut short = [0u8; 5];
        assert_eq!(b.write_out(&mut short), 5);
        assert_eq!(short, [1, 2, 3, 4, 5]);
        let mut long = [9u8; 40];
        let b = Block::from_bytes([7; BLOCK_LEN]);
        assert_eq!(b.write_out(&mut long), BLOCK_LEN);
        assert_eq!(&long[..BLOCK_LEN], &[7; BLOCK_LEN]);
        assert_eq!(&long[BLOCK_LEN..], &[9; 8]);
        let mut z = Block::from_bytes([7; BLOCK_LEN]);
        z.zeroize();
        assert_eq!(z.as_bytes(), &[0; BLOCK_LEN]);
    }
}
