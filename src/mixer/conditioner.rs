//! The conditioning function: SHA-256 over an injective framing, one hash
//! per emitted block, driven directly through SHA-256's compression
//! function so the keyed prefix is compressed once per instance (a
//! midstate) and a block whose message fits in 55 bytes costs exactly one
//! compression.
//!
//! Two backends compute those compressions, bit for bit the same: the
//! portable one (`sha2`'s `compress256` through `crypto::sha256`, on every
//! target and under miri) and, where CPUID reports the SHA extensions, the
//! multi-lane one for the one-shot path (`crypto::sha256::digest_blocks`,
//! which chooses between them: [`LANES`] independent blocks' compressions
//! in flight at once; for fully credited 40-byte frames
//! `crypto::sha_ni::digest_run_frames40`, which also assembles their
//! messages, [`RUN`] frames per call, where `lanes_available` says so).
//! The frame models (tests/mixer_frames.rs, mixer_digest.rs) pin the
//! output, and this module's property test compares the two backends.
//!
//! Message of block `n` (all integers little-endian):
//! `DOMAIN (32) || key (32) || n (u64) || frame* ` where
//! `frame = tag (u8: the source's bit) || byte_len (u32) || bytes`,
//! then standard SHA-256 padding. The first 64 bytes are one SHA-256 block,
//! kept as a midstate.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Block, DOMAIN};
use crate::crypto::sha256::{IV, compress, digest_blocks, state_bytes};

/// Running SHA-256 of the current block's message.
///
/// Invariant: `buf[buf_len..]` is all zeros (every compressed buffer is
/// cleared at once), so padding never needs a variable-length fill.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Hash {
    /// State after the keyed prefix block.
    key_state: [u32; 8],
    state: [u32; 8],
    buf: [u8; 64],
    /// Bytes buffered, `0..64`.
    buf_len: usize,
    /// Message bytes so far, prefix included.
    len: u64,
    /// Index of the block being built.
    counter: u64,
}

/// The conditioner. Buffered input lives only in its own zeroized buffers,
/// never in stack temporaries.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct Conditioner {
    hash: Hash,
    /// The one-shot path's buffers: one set where the mixer has a fast
    /// path (its only caller), none on bare metal, where they would be
    /// static RAM never used ([`ONE_SHOT_SETS`]).
    one_shot: [OneShot; ONE_SHOT_SETS],
}

/// Sets of one-shot buffers a conditioner holds: 1 with the mixer's fast
/// path, 0 without (bare metal: the 1440 bytes of [`OneShot`] saved).
const ONE_SHOT_SETS: usize = if super::FAST_PATH { 1 } else { 0 };

/// The one-shot path's buffers (all zeros between calls).
#[derive(Zeroize)]
struct OneShot {
    /// Message buffers, two groups of [`LANES`].
    pipe: [[[u8; 64]; LANES]; 2],
    /// The wide one-shot path's frames, as words, a run at a time.
    wide: [[u64; 5]; RUN],
    /// The wide one-shot path's digests, a run at a time.
    digests: [[u8; 32]; RUN],
}

impl OneShot {
    const CLEAR: OneShot = OneShot {
        pipe: [[[0; 64]; LANES]; 2],
        wide: [[0; 5]; RUN],
        digests: [[0; 32]; RUN],
    };
}

/// Frames the wide one-shot path hashes in one call of the lanes'
/// kernel (`digest_run_frames40`, two lanes at a time): a run's frames are
/// copied first, then compressed back to back, then emitted. Measured on
/// the development machine (condition_samples_8B, best of many batches):
/// a kernel call per pair of blocks 64.0 us, runs of 8 to 64 frames
/// 58.7-59.1 us, and with the messages assembled in the kernel (no 64-bit
/// funnel shifts) 54.5 us.
const RUN: usize = 16;

/// Frames the one-shot path hashes at once: independent compressions in
/// flight on the multi-lane backend. Two saturate the SHA unit of the
/// development machine (AMD family 0x17, model 49): about 24 ns a compression
/// against 29 ns for one lane and 38 ns for sha2's chained ones; three
/// and four lanes measured slower (27 and 29 ns: more vector registers
/// live than x86_64 has, so they spill).
const LANES: usize = 2;

/// Most frame data bytes for which a whole block message (counter, frame
/// header, data, padding) fits one compression: `8 + 5 + n + 9 <= 64`.
pub(super) const ONE_SHOT_MAX: usize = 42;

/// Raw samples as the bytes the framing hashes.
pub(super) trait FrameData: Sized {
    /// Bytes per sample.
    const BYTES: usize;

    /// Writes `xs` as framed bytes into `dst` (exactly `xs.len() * BYTES`
    /// long; nothing is written otherwise).
    fn write(xs: &[Self], dst: &mut [u8]);

    /// The framed bytes of `xs` as five little-endian words, when they are
    /// exactly [`WIDE`] bytes.
    #[cfg_attr(
        not(all(target_arch = "x86_64", target_feature = "sse2")),
        allow(dead_code)
    )]
    fn words40(xs: &[Self]) -> Option<[u64; 5]>;
}

/// Frame bytes of a fully credited frame (320 bits at 8 bits a byte, or
/// five 64-bit words): the wide one-shot path builds its messages in
/// registers.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const WIDE: usize = 40;

/// The length in bits, for its padding, of the message of a block holding
/// one [`WIDE`]-byte frame (the bytes [`one_shot_message`] writes): the
/// prefix block (64), the block counter (8), the frame header (tag and
/// `u32` length: 5) and the data (40). The wide path's kernel
/// (`digest_run_frames40`) assembles that message from the counter, the
/// header and the frame's five words.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "sse2")),
    allow(dead_code)
)]
const BITS40: u64 = (64 + 8 + 5 + WIDE as u64) * 8;

impl FrameData for u8 {
    const BYTES: usize = 1;

    #[inline(always)]
    fn write(xs: &[u8], dst: &mut [u8]) {
        copy_small(dst, xs);
    }

    #[inline(always)]
    fn words40(xs: &[u8]) -> Option<[u64; 5]> {
        let b = xs.first_chunk::<WIDE>().filter(|_| xs.len() == WIDE)?;
        let mut w = [0u64; 5];
        for (w, c) in w.iter_mut().zip(b.chunks_exact(8)) {
            *w = u64::from_le_bytes(*c.first_chunk::<8>()?);
        }
        Some(w)
    }
}

impl FrameData for u64 {
    const BYTES: usize = 8;

    #[inline(always)]
    fn write(xs: &[u64], dst: &mut [u8]) {
        if dst.len() != xs.len().saturating_mul(8) {
            return;
        }
        for (d, w) in dst.chunks_exact_mut(8).zip(xs) {
            if let Ok(d) = <&mut [u8; 8]>::try_from(d) {
                *d = w.to_le_bytes();
            }
        }
    }

    #[inline(always)]
    fn words40(xs: &[u64]) -> Option<[u64; 5]> {
        xs.first_chunk::<5>().filter(|_| xs.len() == 5).copied()
    }
}

/// Writes the whole message block of block `counter` holding one frame of
/// `xs` (at most [`ONE_SHOT_MAX`] bytes) into `buf`, which is all zeros or
/// holds a message of the same length (the bytes this leaves alone are
/// zero in both): exactly the bytes the incremental path hashes after the
/// keyed prefix.
#[inline(always)]
fn one_shot_message<T: FrameData>(buf: &mut [u8; 64], counter: u64, tag: u8, xs: &[T]) {
    let n = xs.len().saturating_mul(T::BYTES);
    if let Some(c) = buf.first_chunk_mut::<8>() {
        *c = counter.to_le_bytes();
    }
    if let Some(t) = buf.get_mut(8) {
        *t = tag;
    }
    if let Some(l) = buf.get_mut(9..).and_then(|d| d.first_chunk_mut::<4>()) {
        // n <= ONE_SHOT_MAX: never truncates.
        *l = u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    }
    let end = n.saturating_add(13);
    if let Some(d) = buf.get_mut(13..end) {
        T::write(xs, d);
    }
    if let Some(m) = buf.get_mut(end) {
        *m = 0x80;
    }
    // Prefix block (64) + counter (8) + header (5) + data, in bits.
    let bits = u64::try_from(end.saturating_add(64))
        .unwrap_or(u64::MAX)
        .wrapping_mul(8);
    if let Some(tail) = buf.last_chunk_mut::<8>() {
        *tail = bits.to_be_bytes();
    }
}

/// Writes the messages of blocks `counter`, `counter + 1`, ... from the
/// next frames into `bufs`, one frame each; returns how many frames there
/// were (0 to [`LANES`]).
#[inline(always)]
fn write_group<'x, T: FrameData + 'x>(
    bufs: &mut [[u8; 64]; LANES],
    counter: u64,
    tag: u8,
    frames: &mut impl Iterator<Item = &'x [T]>,
) -> usize {
    let mut n = 0usize;
    for buf in bufs.iter_mut() {
        let Some(f) = frames.next() else {
            break;
        };
        // n < LANES: never truncates.
        let i = u64::try_from(n).unwrap_or(0);
        one_shot_message(buf, counter.wrapping_add(i), tag, f);
        n = n.saturating_add(1);
    }
    n
}

/// The digests of the first `have` messages of `msgs`, each compressed
/// from `start`, written into the first `have` of `blocks`
/// ([`digest_blocks`]: in lanes on the SHA extensions, else one after
/// another).
#[inline(always)]
fn digest_group(
    start: &[u32; 8],
    msgs: &[[u8; 64]; LANES],
    have: usize,
    blocks: &mut [Block; LANES],
) {
    if have == LANES {
        digest_blocks(start, msgs, blocks.each_mut().map(|b| &mut b.0));
    } else {
        // The last, partial group: one block at a time.
        for (m, b) in msgs.iter().zip(blocks.iter_mut()).take(have) {
            digest_blocks(start, core::array::from_ref(m), [&mut b.0]);
        }
    }
}

/// The digest in `state` as a block, written straight into it (no
/// temporary copy to wipe).
#[inline(always)]
fn state_block(state: &[u32; 8]) -> Block {
    let mut block = Block::EMPTY;
    state_bytes(state, &mut block.0);
    block
}

/// Copies `K` bytes at offset `at` of `src` to the same offset of `dst`
/// (nothing if either is too short; callers guarantee they are not).
#[inline(always)]
fn copy_at<const K: usize>(dst: &mut [u8], src: &[u8], at: usize) {
    let d = dst.get_mut(at..).and_then(|d| d.first_chunk_mut::<K>());
    let s = src.get(at..).and_then(|s| s.first_chunk::<K>());
    if let (Some(d), Some(s)) = (d, s) {
        *d = *s;
    }
}

/// `dst.copy_from_slice(src)` for up to 64 bytes, in a few fixed-size
/// (possibly overlapping) moves instead of a call to `memcpy`.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    if n >= 32 {
        let tail = n.saturating_sub(32);
        if n > 64 {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        } else {
            copy_at::<32>(dst, src, 0);
            copy_at::<32>(dst, src, tail);
        }
    } else if n >= 16 {
        copy_at::<16>(dst, src, 0);
        copy_at::<16>(dst, src, n.saturating_sub(16));
    } else if n >= 8 {
        copy_at::<8>(dst, src, 0);
        copy_at::<8>(dst, src, n.saturating_sub(8));
    } else if n >= 4 {
        copy_at::<4>(dst, src, 0);
        copy_at::<4>(dst, src, n.saturating_sub(4));
    } else if n > 0 {
        copy_at::<1>(dst, src, 0);
        copy_at::<2>(dst, src, n.saturating_sub(2));
        copy_at::<1>(dst, src, n.saturating_sub(1));
    }
}

impl Hash {
    /// Starts block `counter`'s message after the keyed prefix. The buffer
    /// is all zeros here (invariant).
    #[inline]
    fn begin_block(&mut self) {
        self.state = self.key_state;
        if let Some(c) = self.buf.first_chunk_mut::<8>() {
            *c = self.counter.to_le_bytes();
        }
        self.buf_len = 8;
        self.len = 72;
    }

    /// Compresses the full buffer and clears it.
    #[inline]
    fn flush(&mut self) {
        compress(&mut self.state, &self.buf);
        self.buf = [0; 64];
        self.buf_len = 0;
    }

    /// Appends `data`; the common case (it fits in the buffer) inline.
    #[inline]
    fn update(&mut self, data: &[u8]) {
        // usize -> u64 never truncates on supported targets.
        self.len = self
            .len
            .wrapping_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        let free = 64usize.saturating_sub(self.buf_len);
        if data.len() < free {
            let end = self.buf_len.saturating_add(data.len());
            if let Some(dst) = self.buf.get_mut(self.buf_len..end) {
                copy_small(dst, data);
            }
            self.buf_len = end;
        } else {
            self.update_long(data, free);
        }
    }

    /// `update` when `data` fills the buffer (`free` bytes left in it).
    #[inline(never)]
    fn update_long(&mut self, data: &[u8], free: usize) {
        let mut data = data;
        if self.buf_len > 0 {
            let Some((head, rest)) = data.split_at_checked(free) else {
                return;
            };
            if let Some(dst) = self.buf.get_mut(self.buf_len..) {
                copy_small(dst, head);
            }
            self.flush();
            data = rest;
        }
        let mut blocks = data.chunks_exact(64);
        for b in &mut blocks {
            if let Ok(block) = <&[u8; 64]>::try_from(b) {
                compress(&mut self.state, block);
            }
        }
        let rem = blocks.remainder();
        if let Some(dst) = self.buf.get_mut(..rem.len()) {
            copy_small(dst, rem);
        }
        self.buf_len = rem.len();
    }

    /// Appends the 5-byte frame header.
    #[inline]
    fn header(&mut self, tag: u8, byte_len: u32) {
        let l = byte_len.to_le_bytes();
        let at = self.buf_len;
        let end = at.saturating_add(5);
        if end < 64 {
            // Two stores straight from registers (a 5-byte array on the
            // stack would be reloaded across two stores: a forwarding
            // stall).
            if let Some(t) = self.buf.get_mut(at) {
                *t = tag;
            }
            if let Some(dst) = self
                .buf
                .get_mut(at.saturating_add(1)..)
                .and_then(|d| d.first_chunk_mut::<4>())
            {
                *dst = l;
            }
            self.buf_len = end;
            self.len = self.len.wrapping_add(5);
        } else {
            self.update(&[tag, l[0], l[1], l[2], l[3]]);
        }
    }

    /// Appends words as little-endian bytes, straight into the buffer.
    #[inline]
    fn update_words(&mut self, words: &[u64]) {
        // 8 * len never overflows for a slice of u64 in memory.
        let bytes = u64::try_from(words.len())
            .unwrap_or(u64::MAX)
            .wrapping_mul(8);
        self.len = self.len.wrapping_add(bytes);
        for w in words {
            let b = w.to_le_bytes();
            let end = self.buf_len.saturating_add(8);
            if end <= 64 {
                if let Some(dst) = self
                    .buf
                    .get_mut(self.buf_len..)
                    .and_then(|d| d.first_chunk_mut::<8>())
                {
                    *dst = b;
                }
                self.buf_len = end;
                if end == 64 {
                    self.flush();
                }
            } else {
                // Straddles the buffer end: `free` in 1..8.
                let free = 64usize.saturating_sub(self.buf_len);
                let (head, tail) = b.split_at(free.min(8));
                if let Some(dst) = self.buf.get_mut(self.buf_len..) {
                    copy_small(dst, head);
                }
                self.flush();
                if let Some(dst) = self.buf.get_mut(..tail.len()) {
                    copy_small(dst, tail);
                }
                self.buf_len = tail.len();
            }
        }
    }

    fn finish(&mut self) -> Block {
        let bit_len = self.len.wrapping_mul(8).to_be_bytes();
        // The buffer past `buf_len` is zero (invariant): only the 0x80
        // marker and the length need writing.
        if let Some(b) = self.buf.get_mut(self.buf_len) {
            *b = 0x80;
        }
        if self.buf_len >= 56 {
            self.flush();
        }
        if let Some(tail) = self.buf.last_chunk_mut::<8>() {
            *tail = bit_len;
        }
        compress(&mut self.state, &self.buf);
        self.buf = [0; 64];
        let block = state_block(&self.state);
        self.counter = self.counter.wrapping_add(1);
        self.begin_block();
        block
    }
}

impl Conditioner {
    pub(super) fn new(key: &[u8; 32]) -> Self {
        let mut prefix = [0u8; 64];
        for (d, s) in prefix.iter_mut().zip(DOMAIN.iter().chain(key.iter())) {
            *d = *s;
        }
        let mut key_state = IV;
        compress(&mut key_state, &prefix);
        prefix.zeroize();
        let mut hash = Hash {
            key_state,
            state: key_state,
            buf: [0; 64],
            buf_len: 0,
            len: 64,
            counter: 0,
        };
        hash.begin_block();
        Conditioner {
            hash,
            one_shot: [OneShot::CLEAR; ONE_SHOT_SETS],
        }
    }

    /// The block being built holds nothing but its counter yet.
    #[inline]
    pub(super) fn is_fresh(&self) -> bool {
        self.hash.buf_len == 8 && self.hash.len == 72
    }

    /// The one-shot path: hashes consecutive blocks of one frame each,
    /// every frame `per` samples of `xs` (whole frames only, each at most
    /// [`ONE_SHOT_MAX`] bytes), giving each block to `emit` until it
    /// returns `false`. Returns the frames hashed (= blocks given to
    /// `emit`). Requires [`Self::is_fresh`]; does nothing otherwise.
    ///
    /// The digests are exactly those of [`Self::frame_bytes`] /
    /// [`Self::frame_words`] then [`Self::finish`]. What differs is the
    /// order of work. Fully credited [`WIDE`]-byte frames on the SHA
    /// extensions take [`Self::one_shot_wide`]: runs of [`RUN`] frames,
    /// all hashed before any is emitted. Otherwise blocks go in groups of
    /// up to [`LANES`], and the next
    /// group's messages are written before the current group is
    /// compressed, so those stores have left the store buffer by the time
    /// their compressions load them (instead of stalling on a failed
    /// store-to-load forward); the group's compressions are independent
    /// (each starts from the keyed midstate), so the backend runs them
    /// interleaved on the SHA extensions, or back to back for the CPU to
    /// overlap.
    pub(super) fn one_shot_blocks<T: FrameData>(
        &mut self,
        tag: u8,
        xs: &[T],
        per: usize,
        mut emit: impl FnMut(Block) -> bool,
    ) -> usize {
        if !self.is_fresh() || per == 0 || per.saturating_mul(T::BYTES) > ONE_SHOT_MAX {
            return 0;
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        if per.saturating_mul(T::BYTES) == WIDE && crate::crypto::sha256::lanes_available() {
            return self.one_shot_wide(tag, xs, per, emit);
        }
        let Conditioner { hash, one_shot } = self;
        let Some(OneShot { pipe, .. }) = one_shot.first_mut() else {
            return 0;
        };
        let [cur, next] = pipe;
        let (mut cur, mut next) = (cur, next);
        let mut frames = xs.chunks_exact(per);
        let mut have = write_group(cur, hash.counter, tag, &mut frames);
        let mut done = 0usize;
        'groups: while have > 0 {
            // The next group's messages first (see above), then the
            // group's compressions.
            let ahead_at = hash.counter.wrapping_add(u64::try_from(have).unwrap_or(0));
            let ahead = write_group(next, ahead_at, tag, &mut frames);
            let mut blocks: [Block; LANES] = [Block::EMPTY; LANES];
            digest_group(&hash.key_state, cur, have, &mut blocks);
            // Blocks computed after a refused one are never handed out:
            // they drop (and wipe themselves) with the iterator, and their
            // frames are not consumed.
            for block in blocks.into_iter().take(have) {
                hash.counter = hash.counter.wrapping_add(1);
                done = done.saturating_add(1);
                if !emit(block) {
                    break 'groups;
                }
            }
            core::mem::swap(&mut cur, &mut next);
            have = ahead;
        }
        // Every message of one call has the same layout (one frame of `per`
        // samples), so a buffer is overwritten in place from block to block
        // (wiping it each time measured slower) and all are wiped here;
        // some may hold frames written ahead of a refused block, never
        // handed out.
        *pipe = [[[0; 64]; LANES]; 2];
        hash.begin_block();
        done
    }

    /// [`Self::one_shot_blocks`] for [`WIDE`]-byte frames on the lanes:
    /// a run of up to [`RUN`] frames is copied into `wide` as five words
    /// each, and `digest_run_frames40` builds every message (header,
    /// frame, counter, padding) in vector registers and compresses the run
    /// two lanes at a time into `digests`. Then the blocks are emitted in
    /// order; those after a refused one are wiped, never handed out, and
    /// their frames not consumed. The same digests as the general path.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn one_shot_wide<T: FrameData>(
        &mut self,
        tag: u8,
        xs: &[T],
        per: usize,
        mut emit: impl FnMut(Block) -> bool,
    ) -> usize {
        use crate::crypto::sha_ni::digest_run_frames40;
        let Conditioner { hash, one_shot, .. } = self;
        let Some(OneShot { wide, digests, .. }) = one_shot.first_mut() else {
            return 0;
        };
        let mut frames = xs.chunks_exact(per);
        let mut done = 0usize;
        'runs: loop {
            let mut have = 0usize;
            // `wide` first: a frame is taken only when a slot is free.
            for (m, f) in wide.iter_mut().zip(&mut frames) {
                let Some(d) = T::words40(f) else {
                    break;
                };
                *m = d;
                have = have.saturating_add(1);
            }
            if have == 0 {
                break;
            }
            let (Some(run), Some(out)) = (wide.get(..have), digests.get_mut(..have)) else {
                break;
            };
            let hashed = digest_run_frames40(
                &hash.key_state,
                // The frame header: the tag and the length (u32).
                u64::from(tag) | ((WIDE as u64) << 8),
                hash.counter,
                BITS40,
                run,
                out,
            );
            if !hashed {
                // Only where CPUID did not report the SHA extensions, which
                // `lanes_available` ruled out: nothing of this run counts.
                break;
            }
            // As in `one_shot_blocks`: the digests after a refused block
            // are never handed out (wiped below), their frames not
            // consumed.
            for digest in out.iter() {
                hash.counter = hash.counter.wrapping_add(1);
                done = done.saturating_add(1);
                if !emit(Block::from_bytes(*digest)) {
                    break 'runs;
                }
            }
            if have < RUN {
                break;
            }
        }
        *wide = [[0; 5]; RUN];
        *digests = [[0; 32]; RUN];
        hash.begin_block();
        done
    }

    /// Index of the block being built (= blocks finished so far).
    #[cfg(test)]
    pub(super) fn counter(&self) -> u64 {
        self.hash.counter
    }

    /// Appends a frame of bytes: header and data.
    #[inline]
    pub(super) fn frame_bytes(&mut self, tag: u8, data: &[u8]) {
        self.hash
            .header(tag, u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.hash.update(data);
    }

    /// Appends a frame of words (as little-endian bytes): header and data.
    #[inline]
    pub(super) fn frame_words(&mut self, tag: u8, words: &[u64]) {
        let bytes = words.len().saturating_mul(8);
        self.hash
            .header(tag, u32::try_from(bytes).unwrap_or(u32::MAX));
        self.hash.update_words(words);
    }

    /// Appends bytes (no header).
    #[cfg(test)]
    pub(super) fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    /// Finishes the current block's hash, returns it, and starts the next
    /// block (counter + 1).
    #[inline]
    pub(super) fn finish(&mut self) -> Block {
        self.hash.finish()
    }

    #[cfg(test)]
    pub(super) fn is_zeroed(&self) -> bool {
        self.hash.state == [0; 8]
            && self.hash.key_state == [0; 8]
            && self.hash.buf == [0; 64]
            && self.pipe_is_clear()
    }

    #[cfg(test)]
    pub(super) fn pipe_is_clear(&self) -> bool {
        self.one_shot.iter().all(|o| {
            o.pipe == [[[0; 64]; LANES]; 2]
                && o.wide == [[0; 5]; RUN]
                && o.digests == [[0; 32]; RUN]
        })
    }
}

/// The two one-shot backends against each other and the incremental path.
#[cfg(test)]
mod tests;
