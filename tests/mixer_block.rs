//! `Block` and `Mixer` as secrets: redacted Debug, constant-time equality,
//! zeroize.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::MixerConfig;
use entropool::mixer::{Block, Mixer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

fn is_zeroize_on_drop<T: ZeroizeOnDrop>() {}

#[test]
fn debug_is_redacted() {
    let b = Block::from_bytes([0xab; 32]);
    assert_eq!(format!("{b:?}"), "Block { .. }");
    assert_eq!(format!("{b:#?}"), "Block { .. }");
    let m = Mixer::new(&MixerConfig::DEFAULT, &[0xcd; 32]).unwrap();
    assert_eq!(format!("{m:?}"), "Mixer { .. }");
}

#[test]
fn round_trip_and_constant_time_equality() {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    let a = Block::from_bytes(bytes);
    assert_eq!(a.as_bytes(), &bytes);
    let same = Block::from_bytes(bytes);
    assert!(bool::from(a.ct_eq(&same)));
    assert_eq!(a, same);
    for i in 0..32 {
        let mut other = bytes;
        other[i] ^= 1;
        let o = Block::from_bytes(other);
        assert!(!bool::from(a.ct_eq(&o)));
        assert_ne!(a, o);
    }
}

#[test]
fn zeroize_wipes_a_block_and_secrets_wipe_on_drop() {
    let mut b = Block::from_bytes([0x77; 32]);
    b.zeroize();
    assert_eq!(b.as_bytes(), &[0; 32]);
    // Reading freed memory would need `unsafe`; the marker traits document
    // (and the in-crate unit tests check) that drop runs the wipe.
    is_zeroize_on_drop::<Block>();
    is_zeroize_on_drop::<Mixer>();
    is_zeroize_on_drop::<entropool::health::HealthTest>();
}
