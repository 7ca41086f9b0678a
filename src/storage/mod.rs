//! The persistent storage cache: full-entropy 32-byte blocks kept on a
//! byte-addressed medium (a file for the daemon, a flash region or a RAM
//! slice for firmware) across restarts, and never handed out twice.
//!
//! # Contract
//!
//! - **Never replay.** [`StorageCache::take`] overwrites a block's slot with
//!   zeros and flushes the medium *before* it copies the block to the
//!   caller; if the erase or the flush fails, the block is not handed out.
//!   A crash at any point can therefore lose blocks but can never hand one
//!   out twice. [`StorageCache::push`] writes one empty slot and nothing
//!   else, so a failed or torn push leaves every earlier block intact; the
//!   caller's copy of a pushed block is zeroized whether the push succeeded
//!   or not, because a block that may be in storage must not be used
//!   anywhere else.
//! - **Keyed at every start.** A stored block is never handed out as it
//!   is: [`StorageCache::take`] returns `HMAC-SHA-256(start_key,
//!   TAKE_DOMAIN || block)` (see [`key_block`]), where `start_key` is
//!   material the caller supplies fresh for each start of the process (the
//!   daemon: `FileStorage::start_key`, 32 bytes of the OS RNG and the
//!   boot id). Two pools opened from byte-identical copies of one store
//!   with different start keys therefore never share an output block.
//! - **Provenance.** Every slot records the sources mask its block came
//!   from (the pool's resolved mask when the block was stored, plus
//!   external when install-time entropy was mixed in). [`StorageCache::open`]
//!   takes the mask in force now and wipes, never serves, every block whose
//!   provenance names a source outside it (counted in
//!   [`LoadReport::foreign_wiped`]): an EAL4 host (`--sources=8`) serves
//!   only external entropy even from a store written under RDSEED.
//! - **Integrity.** The medium holds a header (magic, version, slot size,
//!   slot count, SHA-256 checksum) and slots that each carry a checksum
//!   bound to the slot's index. A torn or corrupted header discards
//!   (wipes) the whole store; a torn or corrupted slot discards (wipes)
//!   that slot. Nothing that fails its checksum is ever credited, and
//!   every discard is counted in the [`LoadReport`] and in
//!   [`StorageCache::corrupt_discarded`]. A store of an older format
//!   version ([`HeaderState::OldVersion`]) is wiped and formatted: its
//!   blocks carry no provenance, so they are never credited.
//! - **Resizing.** [`StorageCache::open`] takes the slot count wanted now
//!   (from storage-cache-size). A store written with another slot count
//!   keeps the valid blocks whose slots lie below the new count (the store
//!   fills from slot 0, so that is every block that fits unless corruption
//!   left holes) and wipes every slot beyond it. Blocks are never moved:
//!   a copy would exist twice until the original is erased.
//! - No allocation, no panics, and every loop is bounded by the slot count.
//!   Every buffer that held a block is zeroized, and so is the start key.
//! - One `StorageCache` owns its medium: two processes sharing one store
//!   could both take the same block. The daemon holds the state directory
//!   exclusively (an `flock(2)` on a file in it).
//!
//! # Threat model: never replay
//!
//! The promise: no block leaves two pools, or one pool twice, whatever
//! happens to the process, the machine or the medium. What a store can go
//! through, what may be lost (losing entropy is allowed, replaying it is
//! not), what holds, and the test that tries it:
//!
//! | event | may be lost | what holds | why | tried by |
//! | --- | --- | --- | --- | --- |
//! | **crash** (power loss, SIGKILL) at any write or flush of the store | blocks in flight | none handed out twice; a torn slot or header is wiped, never credited | a take erases and flushes *before* the block leaves; a push writes one empty slot; every slot and the header carry a checksum | `tests/storage_crash.rs` (every crash point, fixed and file-like media) |
//! | **crash while resizing** (storage-cache-size changed) | the blocks beyond the new size | a half-done resize serves nothing twice | slots beyond the new count are wiped and flushed *before* the header shrinks; new slots are wiped before the header counts them | `no_replay_at_any_crash_point_while_resizing` |
//! | **crash during a spill outside the lock** (the daemon writes a [`SpillJob`](crate::pool::SpillJob) without its pool lock) | the job's blocks | a block is the pool's, the job's or the store's, one at a time | the pool wipes its copies when it lends the store and the blocks to the job; the job wipes its own after writing | `a_crash_mid_spill_replays_nothing` (tests/pool_storage.rs) |
//! | **restore** (a backup put back, a disk snapshot reverted while the host was down) | nothing new | no output block repeats one of the earlier run | the restored blocks were handed out keyed with the earlier start key; this start keys them with a new one ([`key_block`]) | `copies_of_one_store_share_no_block_under_different_start_keys` |
//! | **clone** (a template VM or a disk image copied to several hosts) | nothing | the hosts never share an output block | each host keys with its own start key; a stored block then earns full credit only as far as the start key does: a copy adds nothing beyond the start key's own entropy | `two_pools_from_copies_of_one_disk_share_no_block`; `two_daemons_from_copies_of_one_storage_file_share_no_block` (entropyd) |
//! | **snapshot of the running process** (a VM's memory and disk reverted together) | - | *not held*: the process itself is replayed, start key included; no storage format can tell | out of scope here; a VM generation counter is the remedy | - |
//! | **two owners** (a second process on the same store: a bind mount, another mount or network namespace, a copy of the path) | - | held by the daemon, not by the store: the store cannot prevent it by itself | the daemon takes an exclusive `flock(2)` on a file in the state directory before opening the store (the lock follows the inode, not the path or the namespace); inside one process, a [`StorageCache`] owns its medium by value | `the_lock_is_exclusive_through_any_path` (tests/state_files.rs) |
//! | **firmware without an OS RNG** | - | held *if* the start key differs at every start of every device | the caller supplies the start key: the hardware TRNG, or HMAC of a device-unique secret and a boot counter kept durably elsewhere and incremented before use; two starts with one start key on copies of one store hand out the same blocks | the firmware's own responsibility; stated here |
//!
//! In the daemon the start key is 32 bytes of the kernel's RNG (which
//! Linux reseeds on a VM generation change) and the boot id (fresh at
//! every boot): `FileStorage::start_key`, with `std` on Unix.
//!
//! # On-medium format (version 2, all integers little-endian)
//!
//! ```text
//! offset 0, header, 64 bytes:
//!    0..8   magic  "ENTPOOLS"
//!    8..12  version, u32 = 2
//!   12..16  slot length in bytes, u32 = 64
//!   16..24  slot count N, u64
//!   24..32  reserved, zero
//!   32..64  SHA-256(bytes 0..32)
//! offset 64 + 64*i, slot i (0 <= i < N), 64 bytes:
//!    0..32  the block
//!   32      provenance: the sources mask (1..=15) the block came from
//!   33..40  reserved, zero
//!   40..64  the first 24 bytes of
//!           SHA-256("entropool.slot.2" || i as u64 || slot bytes 0..40)
//!           (the 16-byte domain string, then 8 bytes, then 40 bytes)
//! An empty slot is 64 zero bytes. The layout is 64 + 64*N bytes; the
//! medium may be longer (the tail is ignored), never shorter.
//! ```
//!
//! A header of all-zero or all-`0xFF` bytes (a new file, erased flash) is
//! *blank* and is formatted silently; a valid header of version 1 is
//! *old* and is wiped and formatted (version 1 slots carry no provenance);
//! any other invalid header (wrong magic, version, slot length, reserved
//! bytes, checksum, or a slot count the medium is too short for) is
//! *corrupt*: the store is wiped, the load report says so, and nothing is
//! credited.
//!
//! Blocks leave in last-in, first-out order (the store is a stack from
//! slot 0 up), which keeps the occupied slots packed at the start.

#[cfg(all(feature = "std", unix))]
pub(crate) mod file;
#[cfg(all(feature = "std", unix))]
pub use file::FileStorage;

use core::fmt;

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::sha256::{HmacKey, IV, state_bytes};
use crate::error::Error;
use crate::mixer::Block;
use crate::source::SourceMask;

pub use crate::mixer::BLOCK_LEN;
/// Bytes in the header at offset 0.
pub const HEADER_LEN: u64 = 64;
/// Bytes in one slot (a block and its checksum).
pub const SLOT_LEN: u64 = 64;
/// The header's magic bytes.
pub const MAGIC: [u8; 8] = *b"ENTPOOLS";
/// The format version this code reads and writes.
pub const VERSION: u32 = 2;
/// The last earlier format version, recognised and wiped (its slots carry
/// no provenance).
pub const OLD_VERSION: u32 = 1;
/// The domain string that starts every slot checksum's input.
pub const SLOT_DOMAIN: [u8; 16] = *b"entropool.slot.2";
/// The domain string that starts the input of [`key_block`].
pub const TAKE_DOMAIN: [u8; 24] = *b"entropool/storage/v2/use";
/// Offset of the provenance byte in a slot.
pub const PROVENANCE_AT: usize = 32;
/// Bytes of a slot covered by its checksum (block, provenance, reserved).
const SLOT_BODY: usize = 40;
/// Bytes of the (truncated) slot checksum.
const SLOT_CHECK: usize = 24;

/// `SLOT_LEN` as a `usize`, for buffers.
const SLOT: usize = 64;
/// `HEADER_LEN` as a `usize`, for buffers.
const HEADER: usize = 64;
/// Slots read or wiped per medium access.
const CHUNK_SLOTS: usize = 8;
/// Zeros for wiping.
const ZEROS: [u8; SLOT * CHUNK_SLOTS] = [0; SLOT * CHUNK_SLOTS];
/// An empty slot.
const ZERO_SLOT: [u8; SLOT] = [0; SLOT];
/// `SLOT_LEN` as the header's u32 field.
const SLOT_LEN_U32: u32 = 64;

/// No storage cache: the storage type of a pool that has none (firmware
/// without a flash region for it). Uninhabited, so zero-sized, and
/// `PoolParts::storage` can only be `None`; a pool over it
/// ([`Pool<'_, _, _, NoStorage>`](crate::Pool)) holds no storage-tier
/// state and no overflow toward storage. Its storage-cache-size must be 0:
/// another value is [`Error::InvalidValue`] naming storage-cache-size
/// (at `Pool::new` and `Pool::set_tunables`, which then change
/// nothing). It is not a [`Storage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoStorage {}

/// A byte-addressed persistent medium, like a flash region or a file.
///
/// `write` may be buffered; only `flush` makes earlier writes durable (a
/// file's `fsync`). Implementations report every failure as an error and
/// never write outside `0..capacity()`.
pub trait Storage {
    /// Bytes addressable now.
    fn capacity(&self) -> u64;

    /// Read `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] when the range lies beyond
    /// [`capacity`](Self::capacity); [`Error::StorageIo`] when the medium
    /// fails.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;

    /// Write `data` at `offset` (durable only after [`flush`](Self::flush)).
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] when the range lies beyond
    /// [`capacity`](Self::capacity); [`Error::StorageIo`] when the medium
    /// fails (some prefix of `data` may then have been written).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error>;

    /// Make every earlier write durable.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when the medium fails; earlier writes may then
    /// be durable, partly durable or lost.
    fn flush(&mut self) -> Result<(), Error>;

    /// Ask for `bytes` of capacity. A file grows (new bytes read as zero)
    /// or shrinks to exactly `bytes`, durably. The default, for fixed-size
    /// media, accepts any size up to the current capacity and leaves the
    /// medium as it is (the cache then uses a prefix of it).
    ///
    /// # Errors
    /// [`Error::CapacityTooSmall`] when a fixed-size medium is smaller than
    /// `bytes`; [`Error::StorageIo`] when resizing fails.
    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes <= self.capacity() {
            Ok(())
        } else {
            Err(Error::CapacityTooSmall)
        }
    }
}

impl<S: Storage + ?Sized> Storage for &mut S {
    fn capacity(&self) -> u64 {
        (**self).capacity()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        (**self).write(offset, data)
    }
    fn flush(&mut self) -> Result<(), Error> {
        (**self).flush()
    }
    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        (**self).set_capacity(bytes)
    }
}

/// A [`Storage`] over a caller's byte slice: battery-backed RAM, a mapped
/// flash region, or a test. Writes are durable at once; `flush` does
/// nothing. Needs no allocator.
pub struct MemStorage<'a> {
    bytes: &'a mut [u8],
}

impl<'a> MemStorage<'a> {
    /// A medium over `bytes` (its whole length is the capacity).
    #[must_use]
    pub fn new(bytes: &'a mut [u8]) -> Self {
        MemStorage { bytes }
    }

    /// The bytes of `offset..offset + len`, if they lie inside the slice.
    fn range(&mut self, offset: u64, len: usize) -> Result<&mut [u8], Error> {
        let start = usize::try_from(offset).map_err(|_| Error::CapacityTooSmall)?;
        let end = start.checked_add(len).ok_or(Error::CapacityTooSmall)?;
        self.bytes
            .get_mut(start..end)
            .ok_or(Error::CapacityTooSmall)
    }
}

impl fmt::Debug for MemStorage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents are cached entropy: never print them.
        f.debug_struct("MemStorage")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Storage for MemStorage<'_> {
    fn capacity(&self) -> u64 {
        u64::try_from(self.bytes.len()).unwrap_or(u64::MAX)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        buf.copy_from_slice(self.range(offset, buf.len())?);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.range(offset, data.len())?.copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The bytes a store of `slots` slots occupies, or `None` on overflow.
#[must_use]
pub const fn layout_len(slots: u64) -> Option<u64> {
    match slots.checked_mul(SLOT_LEN) {
        Some(body) => body.checked_add(HEADER_LEN),
        None => None,
    }
}

/// How many slots fit in `bytes` (storage-cache-size KiB * 1024 gives the
/// slot count for the daemon's file: 4096 KiB holds 65535 blocks).
#[must_use]
pub const fn slots_for_bytes(bytes: u64) -> u64 {
    bytes.saturating_sub(HEADER_LEN) / SLOT_LEN
}

/// Offset of slot `index`.
fn slot_offset(index: u64) -> Result<u64, Error> {
    index
        .checked_mul(SLOT_LEN)
        .and_then(|o| o.checked_add(HEADER_LEN))
        .ok_or(Error::CapacityTooSmall)
}

/// The final SHA-256 block for a 64-byte message: `0x80`, zeros, and the
/// bit length 512 as a big-endian u64 (FIPS 180-4 section 5.1.1).
const PAD_64: [u8; 64] = {
    let mut p = [0u8; 64];
    p[0] = 0x80;
    p[62] = 0x02; // 512 = 0x0200
    p
};

/// The first 24 bytes of `SHA-256(SLOT_DOMAIN || index LE || body)`,
/// computed with the bare compression function so that every copy of the
/// block (the message block, the chaining state) lives in a buffer we
/// zeroize.
fn slot_check(index: u64, body: &[u8; SLOT_BODY]) -> [u8; SLOT_CHECK] {
    let mut msg = Zeroizing::new([0u8; 64]);
    for (m, b) in msg
        .iter_mut()
        .zip(SLOT_DOMAIN.iter().chain(&index.to_le_bytes()).chain(body))
    {
        *m = *b;
    }
    let mut state = Zeroizing::new(IV);
    compress256(&mut state, &[*msg, PAD_64]);
    let mut full = Zeroizing::new([0u8; 32]);
    state_bytes(&state, &mut full);
    let mut out = [0u8; SLOT_CHECK];
    for (o, f) in out.iter_mut().zip(full.iter()) {
        *o = *f;
    }
    out
}

/// Whether provenance `p` is a mask of real sources (1..=15).
const fn provenance_ok(p: u8) -> bool {
    p != 0 && p & !0x0F == 0
}

/// Whether every source of `provenance` is in `allowed`.
const fn within(provenance: u8, allowed: u8) -> bool {
    provenance & !allowed == 0
}

/// What a block stored with `start_key` in force becomes when it is taken:
/// `HMAC-SHA-256(start_key, TAKE_DOMAIN || block)`. Public so that tests
/// and tools can check the transform; the cache applies it itself.
#[must_use]
pub fn key_block(start_key: &[u8; 32], block: &[u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
    let key = HmacKey::new(start_key);
    let mut out = [0u8; BLOCK_LEN];
    key.mac(&[&TAKE_DOMAIN, block], &mut out);
    out
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotContent {
    /// 64 zero bytes.
    Empty,
    /// A block whose checksum matches, with its provenance (1..=15).
    Valid(u8),
    /// Anything else: torn, corrupted, or written for another index.
    Corrupt,
}

/// Classify the 64 bytes of slot `index`.
fn classify(index: u64, slot: &[u8]) -> SlotContent {
    if slot.iter().all(|&b| b == 0) {
        return SlotContent::Empty;
    }
    let Some((body, check)) = slot.split_first_chunk::<SLOT_BODY>() else {
        return SlotContent::Corrupt;
    };
    let expect = slot_check(index, body);
    if check.len() != expect.len() || !bool::from(expect.ct_eq(check)) {
        return SlotContent::Corrupt;
    }
    let provenance = body.get(PROVENANCE_AT).copied().unwrap_or(0);
    let reserved_zero = body
        .get(PROVENANCE_AT.saturating_add(1)..)
        .is_some_and(|r| r.iter().all(|&b| b == 0));
    if provenance_ok(provenance) && reserved_zero {
        SlotContent::Valid(provenance)
    } else {
        SlotContent::Corrupt
    }
}

/// What the header at offset 0 said when the store was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// A valid header; its slots were checked one by one.
    Valid,
    /// All zero or all `0xFF` (or shorter than a header and so): a new
    /// store, formatted. Not an error.
    Blank,
    /// A valid header of format version [`OLD_VERSION`]: the store was
    /// wiped and formatted (its blocks carry no provenance and are never
    /// credited). Not corruption.
    OldVersion,
    /// Invalid (magic, version, slot length, reserved bytes, checksum, or
    /// a slot count the medium is too short for): the whole store was
    /// wiped and formatted, nothing credited.
    Corrupt,
}

/// What [`StorageCache::open`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// The header's state.
    pub header: HeaderState,
    /// Valid blocks in the store after opening (what [`StorageCache::len`]
    /// says).
    pub blocks: u64,
    /// Slots that failed their checksum and were wiped (not counting a
    /// whole store wiped for a corrupt header).
    pub corrupt_slots: u64,
    /// The slot count the valid header gave, when it differs from the
    /// count asked for (the store was resized).
    pub resized_from: Option<u64>,
    /// Valid blocks wiped because their slots lay beyond the new count.
    pub dropped_by_resize: u64,
    /// Valid blocks wiped because their provenance names a source outside
    /// the mask the store was opened with (never served as that mask's
    /// entropy).
    pub foreign_wiped: u64,
}

impl LoadReport {
    /// Whether anything corrupt was found (and discarded).
    #[must_use]
    pub const fn found_corruption(&self) -> bool {
        matches!(self.header, HeaderState::Corrupt) || self.corrupt_slots > 0
    }

    /// `Ok` when nothing corrupt was found.
    ///
    /// # Errors
    /// [`Error::StorageCorrupt`] when a corrupt header or slot was
    /// discarded (the cache is still usable; this is for reporting).
    pub const fn check(&self) -> Result<(), Error> {
        if self.found_corruption() {
            Err(Error::StorageCorrupt)
        } else {
            Ok(())
        }
    }
}

/// The persistent cache of full-entropy blocks over a [`Storage`]. See the
/// module documentation for the guarantees and the format.
///
/// It keeps no block in memory: only counts and indices.
pub struct StorageCache<S: Storage> {
    storage: S,
    /// This start's key: every block taken is keyed with it.
    key: HmacKey,
    /// The provenance written with every block pushed.
    stamp: u8,
    /// Slots in the layout.
    slots: u64,
    /// Every slot at or above `top` is believed empty.
    top: u64,
    /// Valid blocks believed stored.
    count: u64,
    /// Every slot below `low_full` is believed to hold a valid block.
    low_full: u64,
    /// Corrupt slots (and whole stores) discarded since opening.
    corrupt: u64,
}

impl<S: Storage> fmt::Debug for StorageCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageCache")
            .field("slots", &self.slots)
            .field("len", &self.count)
            .field("corrupt_discarded", &self.corrupt)
            .finish_non_exhaustive()
    }
}

/// Zeroize every block of a slice.
fn wipe_blocks(blocks: &mut [[u8; BLOCK_LEN]]) {
    for b in blocks.iter_mut() {
        b.zeroize();
    }
}

/// Drop (and so wipe) every block of a slice. The one such function: the
/// pool's overflow and storage tier use it too.
pub(crate) fn drop_blocks(blocks: &mut [Option<Block>]) {
    for b in blocks.iter_mut() {
        *b = None;
    }
}

/// Wipe `start..end` with zeros, in chunks.
fn wipe_range<S: Storage>(storage: &mut S, start: u64, end: u64) -> Result<(), Error> {
    let mut off = start;
    while off < end {
        let n = usize::try_from(end.saturating_sub(off))
            .unwrap_or(usize::MAX)
            .min(ZEROS.len());
        let zeros = ZEROS.get(..n).ok_or(Error::CapacityTooSmall)?;
        storage.write(off, zeros)?;
        // `n >= 1` because `off < end`, so the loop advances.
        off = off.saturating_add(u64::try_from(n).map_err(|_| Error::CapacityTooSmall)?);
    }
    Ok(())
}

/// Read and judge the header. `Ok(Some(n))` for a valid header of `n`
/// slots whose layout fits the medium.
fn read_header<S: Storage>(storage: &mut S) -> Result<(HeaderState, Option<u64>), Error> {
    let mut hdr = [0u8; HEADER];
    let have = usize::try_from(storage.capacity())
        .unwrap_or(usize::MAX)
        .min(HEADER);
    let part = hdr.get_mut(..have).ok_or(Error::CapacityTooSmall)?;
    storage.read(0, part)?;
    if part.iter().all(|&b| b == 0) || part.iter().all(|&b| b == 0xFF) {
        return Ok((HeaderState::Blank, None));
    }
    if have < HEADER {
        return Ok((HeaderState::Corrupt, None));
    }
    let Some((body, check)) = hdr.split_first_chunk::<32>() else {
        return Ok((HeaderState::Corrupt, None));
    };
    let digest: [u8; 32] = Sha256::digest(body).into();
    let field = |r: core::ops::Range<usize>| body.get(r).unwrap_or(&[]);
    let le32 = |b: &[u8]| <[u8; 4]>::try_from(b).map(u32::from_le_bytes).ok();
    let le64 = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_le_bytes).ok();
    let ok = digest.as_slice() == check
        && field(0..8) == MAGIC.as_slice()
        && le32(field(12..16)).map(u64::from) == Some(SLOT_LEN)
        && field(24..32).iter().all(|&b| b == 0);
    let version = le32(field(8..12));
    let slots = le64(field(16..24));
    match (ok, version, slots) {
        (true, Some(VERSION), Some(n))
            if layout_len(n).is_some_and(|len| len <= storage.capacity()) =>
        {
            Ok((HeaderState::Valid, Some(n)))
        }
        (true, Some(OLD_VERSION), _) => Ok((HeaderState::OldVersion, None)),
        _ => Ok((HeaderState::Corrupt, None)),
    }
}

/// Write a valid header for `slots` slots (not flushed).
fn write_header<S: Storage>(storage: &mut S, slots: u64) -> Result<(), Error> {
    let mut hdr = [0u8; HEADER];
    for (h, b) in hdr.iter_mut().zip(
        MAGIC
            .iter()
            .chain(&VERSION.to_le_bytes())
            .chain(&SLOT_LEN_U32.to_le_bytes())
            .chain(&slots.to_le_bytes()),
    ) {
        *h = *b;
    }
    let (body, check) = hdr.split_at_mut(32);
    let digest: [u8; 32] = Sha256::digest(&*body).into();
    check.copy_from_slice(&digest);
    storage.write(0, &hdr)
}

/// What a scan of slots `0..keep` (checked, corrupt ones wiped) and
/// `keep..end` (counted, then wiped) found.
#[derive(Default)]
struct Scan {
    top: u64,
    count: u64,
    low_full: Option<u64>,
    corrupt: u64,
    dropped: u64,
    foreign: u64,
}

impl<S: Storage> StorageCache<S> {
    /// Open the store on `storage` with `slots` slots (see
    /// [`slots_for_bytes`]): check the header and every slot, wipe what is
    /// corrupt or foreign to `sources`, format a blank, old or corrupt
    /// store, and resize a store written with another slot count (keeping
    /// the blocks whose slots lie below `slots`, wiping the rest).
    /// Everything it changes is flushed before it returns.
    ///
    /// `sources` is the resolved mask in force now: blocks stored from a
    /// source outside it are wiped, and blocks pushed from now on are
    /// stamped with it (see [`set_provenance`](Self::set_provenance)).
    /// `start_key` must be fresh for this start (see the module's threat
    /// model); every block taken is keyed with it. The caller should wipe
    /// its copy.
    ///
    /// # Errors
    /// [`Error::SourceMaskOutOfRange`] when `sources` is 0 (unresolved:
    /// nothing is read or changed); [`Error::CapacityTooSmall`] when the
    /// medium cannot hold `slots` slots; [`Error::StorageIo`] when reading,
    /// wiping or resizing fails (nothing is credited then; retrying is
    /// safe). Corruption is not an error here: it is discarded and
    /// reported in the [`LoadReport`].
    pub fn open(
        storage: S,
        slots: u64,
        sources: SourceMask,
        start_key: &[u8; 32],
    ) -> Result<(Self, LoadReport), Error> {
        Self::open_or_return(storage, slots, sources, start_key).map_err(|(e, _)| e)
    }

    /// As [`open`](Self::open), but a failure gives the medium back (a
    /// pool keeps it idle, as it was, when a re-open fails).
    pub(crate) fn open_or_return(
        mut storage: S,
        slots: u64,
        sources: SourceMask,
        start_key: &[u8; 32],
    ) -> Result<(Self, LoadReport), (Error, S)> {
        match prepare(&mut storage, slots, sources) {
            Ok((scan, report)) => {
                let whole = u64::from(matches!(report.header, HeaderState::Corrupt));
                let cache = StorageCache {
                    storage,
                    key: HmacKey::new(start_key),
                    stamp: sources.value(),
                    slots,
                    top: scan.top,
                    count: scan.count,
                    low_full: scan.low_full.unwrap_or(scan.top),
                    corrupt: scan.corrupt.saturating_add(whole),
                };
                Ok((cache, report))
            }
            Err(e) => Err((e, storage)),
        }
    }

    /// Re-opens the store with `slots` slots in place (storage-cache-size
    /// changed), exactly as [`open`](Self::open) would: blocks whose slots
    /// lie below `slots` are kept, the rest wiped, and blocks foreign to
    /// `sources` wiped. The start key and the provenance stamp stay.
    ///
    /// # Errors
    /// As [`open`](Self::open). On an error the cache keeps its old size
    /// and counts; an error before the first write (the header read, a
    /// medium that cannot grow) leaves the medium untouched. A failure
    /// partway leaves the medium as far as it got, which never serves a
    /// block twice: every step wipes before it counts (the cache's counts
    /// are beliefs that each take and push checks against the medium).
    pub(crate) fn resize(&mut self, slots: u64, sources: SourceMask) -> Result<LoadReport, Error> {
        let (scan, report) = prepare(&mut self.storage, slots, sources)?;
        let whole = u64::from(matches!(report.header, HeaderState::Corrupt));
        self.slots = slots;
        self.top = scan.top;
        self.count = scan.count;
        self.low_full = scan.low_full.unwrap_or(scan.top);
        self.corrupt = self
            .corrupt
            .saturating_add(scan.corrupt)
            .saturating_add(whole);
        Ok(report)
    }

    /// Sets the provenance recorded with every block pushed from now on:
    /// the sources the blocks may have come from (a pool adds external
    /// when it mixes in install-time entropy).
    ///
    /// # Errors
    /// [`Error::SourceMaskOutOfRange`] when `sources` is 0 (nothing
    /// changes).
    pub fn set_provenance(&mut self, sources: SourceMask) -> Result<(), Error> {
        if !provenance_ok(sources.value()) {
            return Err(Error::SourceMaskOutOfRange { value: 0 });
        }
        self.stamp = sources.value();
        Ok(())
    }

    /// The provenance recorded with every block pushed now.
    #[must_use]
    pub fn provenance(&self) -> SourceMask {
        // `stamp` is always 1..=15 (checked where it is set).
        SourceMask::new(u64::from(self.stamp)).unwrap_or_default()
    }

    /// Valid blocks stored.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.count
    }

    /// Whether no block is stored.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether every slot holds a block.
    #[must_use]
    pub const fn is_full(&self) -> bool {
        self.count >= self.slots
    }

    /// Slots in the store (its capacity in blocks).
    #[must_use]
    pub const fn capacity_blocks(&self) -> u64 {
        self.slots
    }

    /// Corrupt slots (and whole corrupt stores) discarded since opening,
    /// at open and at run time. Never decreases.
    #[must_use]
    pub const fn corrupt_discarded(&self) -> u64 {
        self.corrupt
    }

    /// The medium, for a test or to re-open it with another size.
    #[must_use]
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Store one [`Block`]. Writes one empty slot and flushes.
    ///
    /// Returns `Ok(None)` when the block is stored (its `Block` wiped: it
    /// may be in storage now, so it exists nowhere else) and
    /// `Ok(Some(block))`, the block given back untouched, when the store is
    /// full. On an error the block is wiped.
    ///
    /// # Errors
    /// As [`push_many`](Self::push_many).
    pub fn push(&mut self, block: Block) -> Result<Option<Block>, Error> {
        let mut entry = Some(block);
        self.push_many(core::slice::from_mut(&mut entry))?;
        Ok(entry)
    }

    /// Store the [`Block`]s of `blocks`, front first, until they are done
    /// or the store is full, with one flush at the end; returns how many
    /// were stored. Each stored one is taken out of its entry (`None`) and
    /// wiped: it may be in storage now, so it must exist nowhere else. The
    /// rest are untouched; `None` entries are skipped. Only blocks go in,
    /// so the loader only ever reads back what the mixer once made.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when a read, a write or the flush fails; then
    /// *every* block in `blocks` is wiped (`None`: some may be stored), and
    /// every block stored before this call is intact.
    /// [`Error::CapacityTooSmall`] when the medium shrank under the cache
    /// (blocks wiped likewise).
    pub fn push_many(&mut self, blocks: &mut [Option<Block>]) -> Result<usize, Error> {
        match self.push_unflushed(blocks) {
            Ok(0) => Ok(0),
            Ok(n) => match self.storage.flush() {
                Ok(()) => Ok(n),
                Err(e) => {
                    drop_blocks(blocks);
                    Err(e)
                }
            },
            Err(e) => {
                drop_blocks(blocks);
                Err(e)
            }
        }
    }

    /// As [`push_many`](Self::push_many) but without the flush, for a run
    /// of batches closed by one [`flush`](Self::flush) (a shutdown saving
    /// the whole memory cache). Until that flush a crash may lose these
    /// blocks; it cannot replay them, since the caller's copies are
    /// zeroized here.
    ///
    /// # Errors
    /// As [`push_many`](Self::push_many).
    pub fn push_many_deferred(&mut self, blocks: &mut [Option<Block>]) -> Result<usize, Error> {
        match self.push_unflushed(blocks) {
            Ok(n) => Ok(n),
            Err(e) => {
                drop_blocks(blocks);
                Err(e)
            }
        }
    }

    /// Makes every earlier write durable.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when the medium fails.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.storage.flush()
    }

    /// Write blocks into free slots (each one slot, nothing else).
    fn push_unflushed(&mut self, blocks: &mut [Option<Block>]) -> Result<usize, Error> {
        let mut stored = 0usize;
        let mut body = Zeroizing::new([0u8; SLOT_BODY]);
        let mut record = Zeroizing::new([0u8; SLOT]);
        for entry in blocks.iter_mut() {
            let Some(block) = entry.as_ref() else {
                continue;
            };
            let Some(index) = self.free_slot()? else {
                break;
            };
            body.fill(0);
            for (d, b) in body.iter_mut().zip(block.as_bytes()) {
                *d = *b;
            }
            if let Some(p) = body.get_mut(PROVENANCE_AT) {
                *p = self.stamp;
            }
            // The block leaves: wiped as it drops.
            *entry = None;
            let check = slot_check(index, &body);
            for (r, b) in record.iter_mut().zip(body.iter().chain(&check)) {
                *r = *b;
            }
            self.storage.write(slot_offset(index)?, &*record)?;
            self.count = self.count.saturating_add(1);
            if index >= self.top {
                self.top = index.saturating_add(1);
            }
            if index == self.low_full {
                self.low_full = index.saturating_add(1);
            }
            stored = stored.saturating_add(1);
        }
        Ok(stored)
    }

    /// Take one block into `out`, erasing it from the medium (and flushing)
    /// before it counts as handed out. Returns `Ok(false)`, with `out`
    /// untouched, when the store is empty.
    ///
    /// # Errors
    /// As [`take_many`](Self::take_many).
    pub fn take(&mut self, out: &mut [u8; BLOCK_LEN]) -> Result<bool, Error> {
        Ok(self.take_many(core::slice::from_mut(out))? == 1)
    }

    /// Take up to `out.len()` blocks into the front of `out`, erasing each
    /// one's slot, with one flush before any of them counts as handed out;
    /// returns how many were taken (the rest of `out` is untouched).
    ///
    /// # Errors
    /// [`Error::StorageIo`] when a read, an erase or the flush fails: no
    /// block is handed out and all of `out` is zeroized (the blocks being
    /// erased are given up: one may survive on the medium and be taken once
    /// after a restart, never twice). [`Error::CapacityTooSmall`] when the
    /// medium shrank under the cache (likewise).
    pub fn take_many(&mut self, out: &mut [[u8; BLOCK_LEN]]) -> Result<usize, Error> {
        self.take_each(out, |dst| dst, wipe_blocks)
    }

    /// The loader: takes up to `out.len()` blocks as [`Block`]s into the
    /// front of `out` (the only place besides the mixer that makes one),
    /// with the erase-then-flush rule of [`take_many`](Self::take_many);
    /// returns how many. Each is keyed into a scratch copy (wiped on drop)
    /// and copied into its `Block`.
    ///
    /// # Errors
    /// As [`take_many`](Self::take_many): then every entry of `out` is
    /// `None` (the blocks taken so far wiped).
    pub(crate) fn take_blocks(&mut self, out: &mut [Option<Block>]) -> Result<usize, Error> {
        self.take_each(
            out,
            |dst| dst.insert(Block::EMPTY).as_mut_bytes(),
            drop_blocks,
        )
    }

    /// The one take loop: each block found is keyed (into a scratch copy
    /// wiped on drop) and copied to where `bytes` says in its entry of
    /// `out`; the erases are flushed before any entry counts as handed out,
    /// and on an error `wipe` clears all of `out`.
    fn take_each<D>(
        &mut self,
        out: &mut [D],
        mut bytes: impl FnMut(&mut D) -> &mut [u8; BLOCK_LEN],
        wipe: fn(&mut [D]),
    ) -> Result<usize, Error> {
        let mut taken = 0usize;
        let mut result = Ok(());
        for dst in out.iter_mut() {
            let mut scratch = Zeroizing::new([0u8; BLOCK_LEN]);
            match self.take_unflushed(&mut scratch) {
                Ok(true) => {
                    bytes(dst).copy_from_slice(&*scratch);
                    taken = taken.saturating_add(1);
                }
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Never replay: the erases are durable before any block leaves.
        if result.is_ok() && taken > 0 {
            result = self.storage.flush();
        }
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                wipe(out);
                Err(e)
            }
        }
    }

    /// Find the highest valid block, copy it to `out` and write zeros over
    /// its slot (not flushed: `out` is not handed out yet).
    fn take_unflushed(&mut self, out: &mut [u8; BLOCK_LEN]) -> Result<bool, Error> {
        let mut slot = Zeroizing::new([0u8; SLOT]);
        while self.count > 0 {
            // Each pass lowers `top` by one, so this runs at most `top`
            // times.
            let Some(index) = self.top.checked_sub(1) else {
                break;
            };
            let offset = slot_offset(index)?;
            self.storage.read(offset, &mut *slot)?;
            self.top = index;
            self.low_full = self.low_full.min(index);
            match classify(index, &*slot) {
                SlotContent::Empty => {}
                SlotContent::Corrupt => {
                    self.corrupt = self.corrupt.saturating_add(1);
                    self.storage.write(offset, &ZERO_SLOT)?;
                }
                SlotContent::Valid(_) => {
                    self.count = self.count.saturating_sub(1);
                    self.storage.write(offset, &ZERO_SLOT)?;
                    let (block, _) = slot
                        .split_first_chunk::<BLOCK_LEN>()
                        .ok_or(Error::CapacityTooSmall)?;
                    // Never as stored: keyed with this start's key.
                    self.key.mac(&[&TAKE_DOMAIN, block], out);
                    return Ok(true);
                }
            }
        }
        // Nothing valid below `top`: the count was high (a block lost to a
        // failed operation or to corruption found now).
        self.count = 0;
        Ok(false)
    }

    /// The slot the next push writes, or `None` when full.
    fn free_slot(&mut self) -> Result<Option<u64>, Error> {
        if self.count >= self.slots {
            return Ok(None);
        }
        if self.top < self.slots {
            return Ok(Some(self.top));
        }
        // Packed to the end, yet fewer blocks than slots: corruption left
        // holes below `top`. Find the lowest; bounded by `top`.
        let mut slot = Zeroizing::new([0u8; SLOT]);
        while self.low_full < self.top {
            let index = self.low_full;
            self.storage.read(slot_offset(index)?, &mut *slot)?;
            match classify(index, &*slot) {
                SlotContent::Valid(_) => self.low_full = index.saturating_add(1),
                SlotContent::Empty => return Ok(Some(index)),
                SlotContent::Corrupt => {
                    self.corrupt = self.corrupt.saturating_add(1);
                    return Ok(Some(index));
                }
            }
        }
        // No hole: the count was low (a push that failed yet landed).
        self.count = self.slots;
        Ok(None)
    }
}

/// Judge, wipe, format or resize the store on `storage` for `slots` slots
/// and `sources` (the work of [`StorageCache::open`]); returns the scan and
/// the report. Everything it changes is flushed before it returns.
fn prepare<S: Storage>(
    storage: &mut S,
    slots: u64,
    sources: SourceMask,
) -> Result<(Scan, LoadReport), Error> {
    let allowed = sources.value();
    if !provenance_ok(allowed) {
        return Err(Error::SourceMaskOutOfRange {
            value: u64::from(allowed),
        });
    }
    let want = layout_len(slots).ok_or(Error::CapacityTooSmall)?;
    // Judge the header against the medium as found (a truncated file is
    // corrupt), then make room, before anything is wiped: a medium that
    // cannot hold `slots` is refused untouched.
    let (header, found) = read_header(storage)?;
    if want > storage.capacity() {
        storage.set_capacity(want)?;
    }
    let mut report = LoadReport {
        header,
        blocks: 0,
        corrupt_slots: 0,
        resized_from: None,
        dropped_by_resize: 0,
        foreign_wiped: 0,
    };
    let scan = match found {
        Some(old) => {
            let keep = old.min(slots);
            let scan = scan(storage, keep, old, allowed)?;
            if old > slots {
                // Shrink: wipe the slots beyond the new count first, so
                // a crash before the new header leaves them empty.
                wipe_range(storage, slot_offset(slots)?, slot_offset(old)?)?;
                storage.flush()?;
                write_header(storage, slots)?;
                storage.flush()?;
                storage.set_capacity(want)?;
            } else if old < slots {
                // Grow: the new slots must be empty before the header
                // counts them.
                storage.set_capacity(want)?;
                wipe_range(storage, slot_offset(old)?, want)?;
                storage.flush()?;
                write_header(storage, slots)?;
                storage.flush()?;
            } else {
                storage.flush()?;
                if storage.capacity() > want {
                    // A shrink that crashed before truncating.
                    storage.set_capacity(want)?;
                }
            }
            if old != slots {
                report.resized_from = Some(old);
            }
            scan
        }
        None => {
            format(storage, want, slots)?;
            Scan::default()
        }
    };
    report.blocks = scan.count;
    report.corrupt_slots = scan.corrupt;
    report.dropped_by_resize = scan.dropped;
    report.foreign_wiped = scan.foreign;
    Ok((scan, report))
}

/// Wipe a medium whose header is blank or corrupt and format it for
/// `slots` slots (`want` bytes). Flushed.
fn format<S: Storage>(storage: &mut S, want: u64, slots: u64) -> Result<(), Error> {
    let had = storage.capacity();
    // Everything there now goes, header first, so that no old record can
    // ever validate again; then the new size; then the new header.
    wipe_range(storage, 0, had)?;
    storage.flush()?;
    storage.set_capacity(want)?;
    if want > had {
        wipe_range(storage, had, want)?;
    }
    storage.flush()?;
    write_header(storage, slots)?;
    storage.flush()
}

/// Check slots `0..keep` (wiping corrupt ones and those whose provenance
/// is not within `allowed`, not flushed) and count the valid and corrupt
/// slots in `keep..end` (which the caller wipes).
fn scan<S: Storage>(storage: &mut S, keep: u64, end: u64, allowed: u8) -> Result<Scan, Error> {
    let mut out = Scan::default();
    let mut buf = Zeroizing::new([0u8; SLOT * CHUNK_SLOTS]);
    let mut index = 0u64;
    while index < end {
        let n = usize::try_from(end.saturating_sub(index))
            .unwrap_or(usize::MAX)
            .min(CHUNK_SLOTS);
        let bytes = buf
            .get_mut(..n.saturating_mul(SLOT))
            .ok_or(Error::CapacityTooSmall)?;
        storage.read(slot_offset(index)?, bytes)?;
        for slot in bytes.chunks_exact(SLOT) {
            let state = classify(index, slot);
            if index < keep {
                match state {
                    SlotContent::Valid(p) if within(p, allowed) => {
                        out.count = out.count.saturating_add(1);
                        out.top = index.saturating_add(1);
                    }
                    SlotContent::Valid(_) => {
                        out.low_full.get_or_insert(index);
                        out.foreign = out.foreign.saturating_add(1);
                        storage.write(slot_offset(index)?, &ZERO_SLOT)?;
                    }
                    SlotContent::Empty => {
                        out.low_full.get_or_insert(index);
                    }
                    SlotContent::Corrupt => {
                        out.low_full.get_or_insert(index);
                        out.corrupt = out.corrupt.saturating_add(1);
                        storage.write(slot_offset(index)?, &ZERO_SLOT)?;
                    }
                }
            } else {
                match state {
                    SlotContent::Valid(_) => out.dropped = out.dropped.saturating_add(1),
                    SlotContent::Corrupt => out.corrupt = out.corrupt.saturating_add(1),
                    SlotContent::Empty => {}
                }
            }
            index = index.saturating_add(1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x4B; 32];

    fn all() -> SourceMask {
        SourceMask::new(15).unwrap()
    }

    fn body(block: &[u8; 32], provenance: u8) -> [u8; SLOT_BODY] {
        let mut b = [0u8; SLOT_BODY];
        b[..32].copy_from_slice(block);
        b[32] = provenance;
        b
    }

    #[test]
    fn slot_check_is_sha256_of_the_documented_message() {
        // Independent derivation: the streaming hasher over the documented
        // concatenation, truncated.
        for index in [0u64, 1, 7, u64::MAX] {
            let b = body(&[index.to_le_bytes()[0] ^ 0xA5; 32], 4);
            let mut h = Sha256::new();
            h.update(SLOT_DOMAIN);
            h.update(index.to_le_bytes());
            h.update(b);
            let want: [u8; 32] = h.finalize().into();
            assert_eq!(slot_check(index, &b), want[..24]);
        }
    }

    #[test]
    fn key_block_is_hmac_of_the_documented_message() {
        use hmac::{KeyInit, Mac};
        let block = [0x5A; 32];
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).unwrap();
        m.update(&TAKE_DOMAIN);
        m.update(&block);
        let want: [u8; 32] = m.finalize().into_bytes().into();
        assert_eq!(key_block(&KEY, &block), want);
        assert_ne!(key_block(&[0x4C; 32], &block), want);
    }

    #[test]
    fn classify_tells_empty_valid_corrupt() {
        let b = body(&[9u8; 32], 8);
        let mut slot = [0u8; 64];
        assert_eq!(classify(3, &slot), SlotContent::Empty);
        slot[..40].copy_from_slice(&b);
        slot[40..].copy_from_slice(&slot_check(3, &b));
        assert_eq!(classify(3, &slot), SlotContent::Valid(8));
        assert_eq!(
            classify(4, &slot),
            SlotContent::Corrupt,
            "bound to its index"
        );
        slot[50] ^= 1;
        assert_eq!(classify(3, &slot), SlotContent::Corrupt);
        // A correct checksum over a bad provenance or reserved byte.
        for (at, v) in [(32, 0u8), (32, 16), (35, 1)] {
            let mut b = b;
            b[at] = v;
            slot[..40].copy_from_slice(&b);
            slot[40..].copy_from_slice(&slot_check(3, &b));
            assert_eq!(classify(3, &slot), SlotContent::Corrupt, "byte {at} = {v}");
        }
    }

    #[test]
    fn layout_arithmetic() {
        assert_eq!(layout_len(0), Some(64));
        assert_eq!(layout_len(3), Some(64 + 3 * 64));
        assert_eq!(layout_len(u64::MAX), None);
        assert_eq!(slots_for_bytes(4096 * 1024), 65535);
        assert_eq!(slots_for_bytes(10), 0);
        assert_eq!(layout_len(slots_for_bytes(4096 * 1024)), Some(4096 * 1024));
    }

    #[test]
    fn free_slot_fills_holes_lowest_first() {
        let mut mem = [0u8; 64 + 4 * 64];
        let (mut c, _) = StorageCache::open(MemStorage::new(&mut mem), 4, all(), &KEY).unwrap();
        for v in 1..=4u8 {
            assert!(c.push(Block::from_bytes([v; 32])).unwrap().is_none());
        }
        let mut s = c.into_storage();
        // Corrupt slots 1 and 2.
        s.write(64 + 64 + 5, &[1]).unwrap();
        s.write(64 + 128 + 5, &[1]).unwrap();
        let (mut c, r) = StorageCache::open(s, 4, all(), &KEY).unwrap();
        assert_eq!((r.blocks, r.corrupt_slots), (2, 2));
        assert_eq!((c.top, c.low_full), (4, 1));
        assert!(c.push(Block::from_bytes([5; 32])).unwrap().is_none());
        assert_eq!(c.low_full, 2);
        assert!(c.push(Block::from_bytes([6; 32])).unwrap().is_none());
        assert!(c.push(Block::from_bytes([7; 32])).unwrap().is_some());
        let mut got = std::vec::Vec::new();
        let mut out = [0u8; 32];
        while c.take(&mut out).unwrap() {
            let v = (1..=7u8).find(|&v| key_block(&KEY, &[v; 32]) == out);
            got.push(v.unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, [1, 4, 5, 6]);
    }

    #[test]
    fn open_refuses_an_unresolved_mask_untouched() {
        let mut mem = [7u8; 64 + 4 * 64];
        let before = mem;
        let r = StorageCache::open(MemStorage::new(&mut mem), 4, SourceMask::DEFAULT, &KEY);
        assert_eq!(r.err(), Some(Error::SourceMaskOutOfRange { value: 0 }));
        assert_eq!(mem, before);
    }
}
