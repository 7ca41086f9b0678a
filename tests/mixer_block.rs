//! `Block` and `Mixer` as secrets: redacted Debug, constant-time equality,
//! zeroize, and the one way out (`write_out`). Blocks come from a real
//! mixer: nothing outside the crate can make one.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::mixer::{Block, Mixer};
use entropool::{BLOCK_LEN, MixerConfig};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

fn is_zeroize_on_drop<T: ZeroizeOnDrop>() {}

/// `n` blocks from a mixer keyed `key` fed `seed`'s bytes (only the crate
/// can make a `Block`).
fn blocks(key: u8, seed: u8, n: usize) -> Vec<Block> {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[key; 32]).unwrap();
    let mut out = Vec::new();
    let mut x = u64::from(seed) + 1;
    while out.len() < n {
        let bytes: Vec<u8> = (0..512)
            .flat_map(|_| entropool::hw::fake::splitmix64(&mut x).to_le_bytes())
            .collect();
        m.absorb_external(&bytes, &mut |b: Block| -> Result<(), Block> {
            out.push(b);
            Ok(())
        })
        .unwrap();
    }
    out.truncate(n);
    out
}

#[test]
fn debug_is_redacted() {
    let b = blocks(0xab, 1, 1).pop().unwrap();
    assert_eq!(format!("{b:?}"), "Block { .. }");
    assert_eq!(format!("{b:#?}"), "Block { .. }");
    let m = Mixer::new(&MixerConfig::DEFAULT, &[0xcd; 32]).unwrap();
    assert_eq!(format!("{m:?}"), "Mixer { .. }");
}

#[test]
fn constant_time_equality() {
    let a = blocks(1, 2, 4);
    let same = blocks(1, 2, 4);
    let other_key = blocks(2, 2, 4);
    for (x, y) in a.iter().zip(&same) {
        assert!(bool::from(x.ct_eq(y)));
        assert_eq!(x, y);
    }
    for (x, y) in a.iter().zip(&other_key) {
        assert!(!bool::from(x.ct_eq(y)));
        assert_ne!(x, y);
    }
    assert_ne!(a[0], a[1], "successive blocks differ");
}

#[test]
fn write_out_is_the_way_out_and_wipes() {
    let mut bs = blocks(3, 4, 2);
    let b = bs.pop().unwrap();
    let bytes = *b.as_bytes();
    let mut out = [0u8; 40];
    assert_eq!(b.write_out(&mut out), BLOCK_LEN);
    assert_eq!(out[..BLOCK_LEN], bytes);
    assert_eq!(out[BLOCK_LEN..], [0; 8]);
    let b = bs.pop().unwrap();
    let bytes = *b.as_bytes();
    let mut short = [0u8; 7];
    assert_eq!(b.write_out(&mut short), 7);
    assert_eq!(short, bytes[..7]);
}

#[test]
fn zeroize_wipes_a_block_and_secrets_wipe_on_drop() {
    let mut b = blocks(5, 6, 1).pop().unwrap();
    assert_ne!(b.as_bytes(), &[0; 32]);
    b.zeroize();
    assert_eq!(b.as_bytes(), &[0; 32]);
    // Reading freed memory would need `unsafe`; the marker traits document
    // (and the in-crate unit tests check) that drop runs the wipe.
    is_zeroize_on_drop::<Block>();
    is_zeroize_on_drop::<Mixer>();
    is_zeroize_on_drop::<entropool::health::HealthTest>();
}
