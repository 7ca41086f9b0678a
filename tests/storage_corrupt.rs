//! Integrity of the storage cache: every corrupted byte is detected,
//! discarded and credits nothing; the documented format is what is on the
//! medium; resizing keeps what fits and wipes the rest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test-sized values (a few hundred bytes) fit every integer type.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashSet;

use entropool::mixer::Block;
use entropool::storage::{
    HEADER_LEN, HeaderState, LoadReport, MAGIC, SLOT_DOMAIN, SLOT_LEN, StorageCache, VERSION,
    key_block, layout_len,
};
use entropool::{Error, MemStorage, SourceMask, Storage};
use sha2::{Digest, Sha256};

/// The start key of every open here.
const KEY: [u8; 32] = [0x11; 32];

/// Open with every source allowed and [`KEY`].
fn open<S: Storage>(s: S, slots: u64) -> Result<(StorageCache<S>, LoadReport), Error> {
    StorageCache::open(s, slots, SourceMask::new(15).unwrap(), &KEY)
}

/// The stored block a taken block was keyed from (the taken block itself
/// when it is none of `block(0..=255)`).
fn unkey(out: [u8; 32]) -> [u8; 32] {
    (0..=255u8)
        .map(block)
        .find(|b| key_block(&KEY, b) == out)
        .unwrap_or(out)
}

fn block(n: u8) -> [u8; 32] {
    let mut b = [0xC3u8; 32];
    b[0] = n;
    b
}

/// A medium of `slots` slots holding blocks `1..=filled`.
fn store(slots: u64, filled: u8) -> Vec<u8> {
    let mut mem = vec![0u8; layout_len(slots).unwrap() as usize];
    let (mut c, r) = open(MemStorage::new(&mut mem), slots).unwrap();
    assert_eq!(r.header, HeaderState::Blank);
    for n in 1..=filled {
        assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
    }
    mem
}

/// Open and drain; returns the report and the blocks handed out.
fn drain(mem: &mut [u8], slots: u64) -> (entropool::storage::LoadReport, Vec<[u8; 32]>) {
    let (mut c, r) = open(MemStorage::new(mem), slots).unwrap();
    assert_eq!(c.len(), r.blocks);
    let mut out = Vec::new();
    let mut b = [0u8; 32];
    while c.take(&mut b).unwrap() {
        out.push(unkey(b));
    }
    assert!(c.is_empty());
    (r, out)
}

/// The documented header, built here from the format description.
fn header(magic: [u8; 8], version: u32, slot_len: u32, slots: u64, reserved: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[0..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&slot_len.to_le_bytes());
    h[16..24].copy_from_slice(&slots.to_le_bytes());
    h[24..32].copy_from_slice(&reserved.to_le_bytes());
    let d = Sha256::digest(&h[..32]);
    h[32..].copy_from_slice(&d);
    h
}

/// The documented slot for `block` at `index`, from every source.
fn slot(index: u64, block: &[u8; 32]) -> [u8; 64] {
    slot_from(index, block, 15)
}

/// The documented slot for `block` at `index` with `provenance`.
fn slot_from(index: u64, block: &[u8; 32], provenance: u8) -> [u8; 64] {
    let mut s = [0u8; 64];
    s[..32].copy_from_slice(block);
    s[32] = provenance;
    let d = Sha256::new()
        .chain_update(SLOT_DOMAIN)
        .chain_update(index.to_le_bytes())
        .chain_update(&s[..40])
        .finalize();
    s[40..].copy_from_slice(&d[..24]);
    s
}

#[test]
fn the_medium_holds_the_documented_format() {
    let mem = store(4, 3);
    assert_eq!(mem.len(), 64 + 4 * 64);
    assert_eq!(&mem[..64], &header(MAGIC, VERSION, 64, 4, 0));
    for i in 0..3u64 {
        let at = (HEADER_LEN + i * SLOT_LEN) as usize;
        assert_eq!(&mem[at..at + 64], &slot(i, &block(i as u8 + 1)));
    }
    assert!(mem[64 + 3 * 64..].iter().all(|&b| b == 0), "empty slot");
}

#[test]
fn a_store_written_by_hand_from_the_format_loads() {
    let mut mem = vec![0u8; 64 + 3 * 64];
    mem[..64].copy_from_slice(&header(MAGIC, VERSION, 64, 3, 0));
    mem[64..128].copy_from_slice(&slot(0, &block(7)));
    mem[192..256].copy_from_slice(&slot(2, &block(9)));
    let (r, out) = drain(&mut mem, 3);
    assert_eq!(r.header, HeaderState::Valid);
    assert_eq!((r.blocks, r.corrupt_slots), (2, 0));
    assert_eq!(r.check(), Ok(()));
    assert_eq!(out, vec![block(9), block(7)], "last in, first out");
    assert!(mem[64..].iter().all(|&b| b == 0), "taken slots are erased");
}

/// Flip each bit pattern at every byte of a store (header, blocks,
/// checksums, empty slots): the damage is detected and reported, the
/// damaged part credits nothing, and the rest still loads.
#[test]
fn every_flipped_byte_is_detected_and_credits_nothing() {
    let slots = 4u64;
    let clean = store(slots, 3);
    let originals: HashSet<[u8; 32]> = (1..=3).map(block).collect();
    // Under miri, every 13th byte (SHA-256 is slow there).
    for at in (0..clean.len()).step_by(if cfg!(miri) { 13 } else { 1 }) {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut mem = clean.clone();
            mem[at] ^= flip;
            let (r, out) = drain(&mut mem, slots);
            let ctx = format!("byte {at} ^ {flip:#x}: {r:?}");
            assert!(r.found_corruption(), "{ctx}");
            assert_eq!(r.check(), Err(Error::StorageCorrupt), "{ctx}");
            for b in &out {
                assert!(originals.contains(b), "{ctx}: credited a damaged block");
            }
            if at < 64 {
                assert_eq!(r.header, HeaderState::Corrupt, "{ctx}");
                assert!(out.is_empty(), "{ctx}: a corrupt header credits nothing");
                // Wiped and re-formatted: the medium is a clean empty store.
                assert_eq!(&mem[..64], &header(MAGIC, VERSION, 64, slots, 0), "{ctx}");
                assert!(mem[64..].iter().all(|&b| b == 0), "{ctx}");
            } else {
                let hit = (at - 64) / 64;
                assert_eq!(r.header, HeaderState::Valid, "{ctx}");
                assert_eq!(r.corrupt_slots, 1, "{ctx}");
                let want = if hit < 3 { 2 } else { 3 };
                assert_eq!(out.len(), want, "{ctx}");
                if hit < 3 {
                    assert!(!out.contains(&block(hit as u8 + 1)), "{ctx}");
                }
            }
            // Opening again finds a clean store.
            let (r2, _) = drain(&mut mem, slots);
            assert!(!r2.found_corruption(), "{ctx}: {r2:?}");
        }
    }
}

#[test]
fn wrong_magic_version_slot_length_or_reserved_is_corrupt() {
    let good = store(3, 2);
    let mut bad_magic = MAGIC;
    bad_magic[0] ^= 0x20;
    for h in [
        header(bad_magic, VERSION, 64, 3, 0),
        header(MAGIC, VERSION + 1, 64, 3, 0),
        header(MAGIC, 0, 64, 3, 0),
        header(MAGIC, VERSION, 32, 3, 0),
        header(MAGIC, VERSION, 64, 3, 1),
    ] {
        let mut mem = good.clone();
        mem[..64].copy_from_slice(&h);
        let (r, out) = drain(&mut mem, 3);
        assert_eq!(r.header, HeaderState::Corrupt, "{h:?}");
        assert_eq!(r.blocks, 0);
        assert!(out.is_empty());
    }
}

#[test]
fn a_slot_count_the_medium_cannot_hold_is_corrupt() {
    // The header claims more slots than the medium has: truncated.
    let good = store(3, 2);
    for claimed in [4u64, 1 << 40, u64::MAX / 64, u64::MAX] {
        let mut mem = good.clone();
        mem[..64].copy_from_slice(&header(MAGIC, VERSION, 64, claimed, 0));
        let (r, out) = drain(&mut mem, 3);
        assert_eq!(r.header, HeaderState::Corrupt, "claimed {claimed}");
        assert!(out.is_empty());
    }
}

#[test]
fn a_truncated_medium_is_corrupt() {
    let good = store(3, 3);
    for len in [1usize, 10, 63, 64, 65, 64 + 64, good.len() - 1] {
        // A fixed medium cut short cannot hold the 3 slots asked for;
        // give it room for them but the old contents only up to `len`.
        let mut mem = vec![0u8; good.len()];
        mem[..len].copy_from_slice(&good[..len]);
        // Only `len` bytes "exist": open a medium of that size.
        let mut short = mem[..len].to_vec();
        let res = open(MemStorage::new(&mut short), 3);
        assert_eq!(res.err(), Some(Error::CapacityTooSmall), "len {len}");
        // With the header claiming 3 slots but only `len` bytes, opening
        // for fewer slots that do fit still refuses to trust the header.
        if len >= 64 {
            let fits = (len as u64 - 64) / 64;
            if fits < 3 {
                let (c, r) = open(MemStorage::new(&mut short), fits).unwrap();
                assert_eq!(r.header, HeaderState::Corrupt, "len {len}");
                assert_eq!(c.len(), 0);
            }
        }
    }
}

#[test]
fn blank_media_format_silently() {
    for fill in [0x00u8, 0xFF] {
        let mut mem = vec![fill; 64 + 2 * 64];
        let (r, out) = drain(&mut mem, 2);
        assert_eq!(r.header, HeaderState::Blank);
        assert!(!r.found_corruption());
        assert!(out.is_empty());
        assert_eq!(&mem[..64], &header(MAGIC, VERSION, 64, 2, 0));
    }
}

#[test]
fn a_slot_moved_to_another_index_is_corrupt() {
    let mut mem = store(3, 1);
    let s0: Vec<u8> = mem[64..128].to_vec();
    mem[128..192].copy_from_slice(&s0);
    let (r, out) = drain(&mut mem, 3);
    assert_eq!(r.corrupt_slots, 1);
    assert_eq!(out, vec![block(1)]);
}

#[test]
fn corruption_found_at_take_time_is_wiped_and_counted() {
    let mut mem = store(3, 3);
    let (c, r) = open(MemStorage::new(&mut mem), 3).unwrap();
    assert_eq!(r.blocks, 3);
    let mut s = c.into_storage();
    // Damage slot 2 (the next to be taken) after the open checked it.
    s.write(64 + 2 * 64 + 3, &[0x55]).unwrap();
    let (mut c, r) = open(s, 3).unwrap();
    assert_eq!(r.corrupt_slots, 1);
    let mut out = [0u8; 32];
    assert!(c.take(&mut out).unwrap());
    assert_eq!(unkey(out), block(2));
    assert_eq!(c.corrupt_discarded(), 1);
}

#[test]
fn resizing_keeps_what_fits_and_wipes_the_rest() {
    let mut mem = store(6, 5); // blocks 1..=5 in slots 0..5
    // Shrink to 3: slots 3 and 4 (blocks 4 and 5) are dropped and wiped.
    let (c, r) = open(MemStorage::new(&mut mem), 3).unwrap();
    assert_eq!(r.resized_from, Some(6));
    assert_eq!((r.blocks, r.dropped_by_resize), (3, 2));
    assert_eq!(c.capacity_blocks(), 3);
    assert!(c.is_full());
    let _ = c.into_storage();
    assert_eq!(&mem[..64], &header(MAGIC, VERSION, 64, 3, 0));
    assert!(
        mem[64 + 3 * 64..].iter().all(|&b| b == 0),
        "dropped slots wiped"
    );
    // Grow back to 6: the dropped blocks do not come back.
    let (r, out) = drain(&mut mem, 6);
    assert_eq!(r.resized_from, Some(3));
    assert_eq!(r.blocks, 3);
    let got: HashSet<_> = out.into_iter().collect();
    assert_eq!(got, (1..=3).map(block).collect());
}

#[test]
fn growing_beyond_a_fixed_medium_is_refused() {
    let mut mem = store(2, 2);
    let res = open(MemStorage::new(&mut mem), 3);
    assert_eq!(res.err(), Some(Error::CapacityTooSmall));
    // Nothing was lost by the refusal.
    let (r, out) = drain(&mut mem, 2);
    assert_eq!((r.blocks, out.len()), (2, 2));
}

#[test]
fn push_and_take_basics() {
    let mut mem = vec![0u8; 64 + 2 * 64];
    let (mut c, _) = open(MemStorage::new(&mut mem), 2).unwrap();
    let mut out = [7u8; 32];
    assert!(!c.take(&mut out).unwrap());
    assert_eq!(out, [7; 32], "an empty take leaves `out` alone");
    assert!(c.push(Block::from_test_bytes(block(1))).unwrap().is_none());
    assert!(c.push(Block::from_test_bytes(block(2))).unwrap().is_none());
    let back = c.push(Block::from_test_bytes(block(3))).unwrap();
    assert_eq!(
        back.as_ref().map(Block::as_bytes),
        Some(&block(3)),
        "a full store gives the block back"
    );
    assert_eq!((c.len(), c.capacity_blocks()), (2, 2));
    assert!(c.take(&mut out).unwrap());
    assert_eq!(out, key_block(&KEY, &block(2)), "keyed, never as stored");
    let shown = format!("{c:?}");
    assert!(
        shown.starts_with("StorageCache {") && !shown.contains("195"),
        "{shown}"
    );
}

#[test]
fn zero_slots_is_a_usable_empty_store() {
    let mut mem = vec![0u8; 64];
    let (mut c, r) = open(MemStorage::new(&mut mem), 0).unwrap();
    assert_eq!(r.blocks, 0);
    assert!(c.is_full() && c.is_empty());
    assert!(c.push(Block::from_test_bytes(block(1))).unwrap().is_some());
    assert!(!c.take(&mut [0; 32]).unwrap());
}
