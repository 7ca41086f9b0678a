//! The file backend: round trips across re-opens, sizing from
//! storage-cache-size, permissions, truncation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test-sized values (a few hundred bytes) fit every integer type.
#![allow(clippy::cast_possible_truncation)]
// Miri cannot open files under isolation.
#![cfg(all(feature = "std", not(miri)))]

use std::collections::HashSet;
use std::fs;

use entropool::mixer::Block;
use entropool::storage::{
    HeaderState, LoadReport, StorageCache, key_block, layout_len, slots_for_bytes,
};
use entropool::{Error, FileStorage, SourceMask, Storage};

/// The start key of every open here.
const KEY: [u8; 32] = [0x33; 32];

/// Open with every source allowed and [`KEY`].
fn open_cache<S: Storage>(s: S, slots: u64) -> Result<(StorageCache<S>, LoadReport), Error> {
    StorageCache::open(s, slots, SourceMask::new(15).unwrap(), &KEY)
}

/// What block `n` is when taken.
fn taken(n: u32) -> [u8; 32] {
    key_block(&KEY, &block(n))
}

fn block(n: u32) -> [u8; 32] {
    let mut b = [0x3Cu8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    b
}

fn open(dir: &std::path::Path, slots: u64) -> (StorageCache<FileStorage>, HeaderState, u64) {
    let f = FileStorage::open_in(dir).unwrap();
    let (c, r) = open_cache(f, slots).unwrap();
    (c, r.header, r.blocks)
}

#[test]
fn round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let slots = slots_for_bytes(16 * 1024); // the slots of a 16 KiB file
    assert_eq!(slots, 255);
    let path = dir.path().join(FileStorage::FILE_NAME);
    {
        let (mut c, h, n) = open(dir.path(), slots);
        assert_eq!((h, n), (HeaderState::Blank, 0));
        for i in 0..100 {
            assert!(c.push(Block::from_test_bytes(block(i))).unwrap().is_none());
        }
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), 16 * 1024);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut seen = HashSet::new();
    {
        let (mut c, h, n) = open(dir.path(), slots);
        assert_eq!((h, n), (HeaderState::Valid, 100));
        let mut out = [0u8; 32];
        for _ in 0..40 {
            assert!(c.take(&mut out).unwrap());
            assert!(seen.insert(out));
        }
    }
    // The 40 taken are gone for good; the other 60 are still there.
    let (mut c, _, n) = open(dir.path(), slots);
    assert_eq!(n, 60);
    let mut out = [0u8; 32];
    while c.take(&mut out).unwrap() {
        assert!(seen.insert(out), "replayed across a re-open");
    }
    assert_eq!(seen, (0..100).map(taken).collect());
    // No taken block's bytes remain anywhere in the file.
    drop(c);
    let bytes = fs::read(&path).unwrap();
    for b in (0..100).map(block) {
        assert!(!bytes.windows(32).any(|w| w == b));
    }
}

#[test]
fn resizing_the_file_keeps_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FileStorage::FILE_NAME);
    {
        let (mut c, _, _) = open(dir.path(), 10);
        for i in 0..8 {
            assert!(c.push(Block::from_test_bytes(block(i))).unwrap().is_none());
        }
    }
    {
        let f = FileStorage::open_in(dir.path()).unwrap();
        let (c, r) = open_cache(f, 5).unwrap();
        assert_eq!(
            (r.blocks, r.dropped_by_resize, r.resized_from),
            (5, 3, Some(10))
        );
        assert_eq!(c.len(), 5);
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), layout_len(5).unwrap());
    {
        let f = FileStorage::open_in(dir.path()).unwrap();
        let (mut c, r) = open_cache(f, 20).unwrap();
        assert_eq!((r.blocks, r.resized_from), (5, Some(5)));
        let mut got = HashSet::new();
        let mut out = [0u8; 32];
        while c.take(&mut out).unwrap() {
            got.insert(out);
        }
        assert_eq!(got, (0..5).map(taken).collect());
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), layout_len(20).unwrap());
}

#[test]
fn a_truncated_file_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FileStorage::FILE_NAME);
    {
        let (mut c, _, _) = open(dir.path(), 4);
        for i in 0..4 {
            assert!(c.push(Block::from_test_bytes(block(i))).unwrap().is_none());
        }
    }
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(layout_len(4).unwrap() - 10).unwrap();
    drop(f);
    let f = FileStorage::open_in(dir.path()).unwrap();
    let (mut c, r) = open_cache(f, 4).unwrap();
    assert_eq!(r.header, HeaderState::Corrupt);
    assert_eq!(r.check(), Err(Error::StorageCorrupt));
    assert!(
        !c.take(&mut [0; 32]).unwrap(),
        "a truncated store credits nothing"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), layout_len(4).unwrap());
}

#[cfg(unix)]
#[test]
fn loose_permissions_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FileStorage::FILE_NAME);
    fs::write(&path, b"").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let _f = FileStorage::open(&path).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn out_of_range_access_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = FileStorage::open_in(dir.path()).unwrap();
    assert_eq!(f.capacity(), 0);
    assert_eq!(f.write(0, &[1]), Err(Error::CapacityTooSmall));
    f.set_capacity(100).unwrap();
    f.write(90, &[1; 10]).unwrap();
    assert_eq!(f.write(91, &[1; 10]), Err(Error::CapacityTooSmall));
    assert_eq!(f.read(u64::MAX, &mut [0; 2]), Err(Error::CapacityTooSmall));
    let mut b = [0u8; 10];
    f.read(90, &mut b).unwrap();
    assert_eq!(b, [1; 10]);
    f.flush().unwrap();
}

#[test]
fn a_directory_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(FileStorage::FILE_NAME)).unwrap();
    assert_eq!(
        FileStorage::open_in(dir.path()).err(),
        Some(Error::StorageIo { errno: 21 }),
        "EISDIR, kept in the error"
    );
}
