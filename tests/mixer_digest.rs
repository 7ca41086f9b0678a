//! The conditioner's output for a fixed input sequence, re-derived here
//! from the documented framing with `sha2` directly, and pinned.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::mixer::{Block, DOMAIN, Mixer};
use entropool::{MixerConfig, Source};
use sha2::{Digest, Sha256};

const KEY: [u8; 32] = [0x11; 32];

/// Bytes with no equal neighbours and a flat histogram (health-clean).
fn ext_bytes(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn words(n: u64, salt: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            (i ^ salt)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(17)
        })
        .collect()
}

/// The documented message: DOMAIN || key || counter LE || frames, each
/// frame tag || len LE u32 || bytes (words as LE bytes).
fn expected(counter: u64, frames: &[(Source, Vec<u8>)]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(KEY);
    h.update(counter.to_le_bytes());
    for (s, bytes) in frames {
        h.update([s.bit()]);
        h.update(u32::try_from(bytes.len()).unwrap().to_le_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

fn le(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn blocks_are_sha256_of_the_documented_framing_and_pinned() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &KEY).unwrap();
    let mut out: Vec<Block> = Vec::new();
    let mut sink = |b: Block| -> Result<(), Block> {
        out.push(b);
        Ok(())
    };

    // Block 0: external start-up (1024 bytes, no credit) + 40 bytes (320
    // bits): one frame of 1064 bytes. 10 more bytes stay pending (80 bits).
    let e0 = ext_bytes(1074, 7);
    let a = m.absorb_external(&e0, &mut sink).unwrap();
    assert_eq!((a.consumed, a.blocks), (1074, 1));
    // Block 1 starts with the 10 leftover bytes (their frame), then RDSEED:
    // 1024 start-up words, then ceil(240 / 64) = 4 words.
    let w1 = words(1030, 5);
    let a = m.absorb_words(Source::Rdseed, &w1, &mut sink).unwrap();
    assert_eq!((a.consumed, a.blocks), (1030, 1));
    // The remaining 2 words (128 bits) and 24 bytes (192 bits) make block 2.
    let e2 = ext_bytes(30, 99);
    let a = m.absorb_external(&e2, &mut sink).unwrap();
    assert_eq!((a.consumed, a.blocks), (30, 1));
    assert_eq!(m.mixer_stats().pending.units(), (6 * 8) << 16);

    let want = [
        expected(0, &[(Source::External, e0[..1064].to_vec())]),
        expected(
            1,
            &[
                (Source::External, e0[1064..].to_vec()),
                (Source::Rdseed, le(&w1[..1028])),
            ],
        ),
        expected(
            2,
            &[
                (Source::Rdseed, le(&w1[1028..])),
                (Source::External, e2[..24].to_vec()),
            ],
        ),
    ];
    assert_eq!(out.len(), 3);
    for (got, want) in out.iter().zip(&want) {
        assert_eq!(got.as_bytes(), want);
    }
    // Pinned: catches any change of framing, domain or hash backend.
    let pinned = [
        "972afc365a84a6ae5aa852453cc34a16012a8b5c48a46b549856e11b6efb2aec",
        "66ef7dd351eac6f2e15d1b288832ca0902e1d661665492494d288950e62de6e7",
        "11c679190b6cf62eaa58b2b8f78927d2c2d7ac5c47e1beeaff10dfad1944a0e3",
    ];
    for (got, pin) in out.iter().zip(pinned) {
        assert_eq!(hex(got.as_bytes()), pin);
    }
}

#[test]
fn equal_inputs_in_two_blocks_give_different_blocks_and_keys_matter() {
    let run = |key: &[u8; 32]| {
        let mut m = Mixer::new(&MixerConfig::DEFAULT, key).unwrap();
        let mut out = Vec::new();
        let mut sink = |b: Block| -> Result<(), Block> {
            out.push(*b.as_bytes());
            Ok(())
        };
        m.absorb_external(&ext_bytes(1024, 1), &mut sink).unwrap();
        let same = ext_bytes(40, 3);
        m.absorb_external(&same, &mut sink).unwrap();
        m.absorb_external(&same, &mut sink).unwrap();
        out
    };
    let a = run(&KEY);
    assert_eq!(a.len(), 2);
    assert_ne!(a[0], a[1]);
    let b = run(&[0x12; 32]);
    assert_ne!(a[0], b[0]);
}
