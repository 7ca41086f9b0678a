//! The conditioning function: SHA-256 over an injective framing, one hash
//! per emitted block, driven directly through `sha2`'s compression function
//! so the keyed prefix is compressed once per instance (a midstate) and a
//! block whose message fits in 55 bytes costs exactly one compression.
//!
//! Message of block `n` (all integers little-endian):
//! `DOMAIN (32) || key (32) || n (u64) || frame* ` where
//! `frame = tag (u8: the source's bit) || byte_len (u32) || bytes`,
//! then standard SHA-256 padding. The first 64 bytes are one SHA-256 block,
//! kept as a midstate.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{Block, DOMAIN};

/// SHA-256 initial hash value (FIPS 180-4 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Words converted per scratch fill.
pub(super) const SCRATCH_WORDS: usize = 64;

/// Running SHA-256 of the current block's message.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Hash {
    /// State after the keyed prefix block.
    key_state: [u32; 8],
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    /// Message bytes so far, prefix included.
    len: u64,
    /// Index of the block being built.
    counter: u64,
}

/// The conditioner: the hash plus a scratch area for word conversion (kept
/// here so it is zeroized with the rest, never left on the stack).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct Conditioner {
    hash: Hash,
    scratch: [u8; SCRATCH_WORDS * 8],
}

#[inline]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::block_api::compress256(state, core::slice::from_ref(block));
}

impl Hash {
    fn begin_block(&mut self) {
        self.state = self.key_state;
        self.buf_len = 0;
        self.len = 64;
        let n = self.counter.to_le_bytes();
        self.update(&n);
    }

    #[inline]
    fn update(&mut self, mut data: &[u8]) {
        // usize -> u64 never truncates on supported targets.
        self.len = self
            .len
            .wrapping_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if self.buf_len > 0 {
            let free = 64usize.saturating_sub(self.buf_len);
            let take = free.min(data.len());
            let Some((head, rest)) = data.split_at_checked(take) else {
                return;
            };
            if let Some(dst) = self.buf.get_mut(self.buf_len..) {
                for (d, s) in dst.iter_mut().zip(head) {
                    *d = *s;
                }
            }
            self.buf_len = self.buf_len.saturating_add(take);
            data = rest;
            if self.buf_len < 64 {
                return;
            }
            compress(&mut self.state, &self.buf);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            if let Ok(block) = <&[u8; 64]>::try_from(c) {
                compress(&mut self.state, block);
            }
        }
        let rem = chunks.remainder();
        for (d, s) in self.buf.iter_mut().zip(rem) {
            *d = *s;
        }
        self.buf_len = rem.len();
    }

    fn finish(&mut self) -> Block {
        let bit_len = self.len.wrapping_mul(8).to_be_bytes();
        if let Some(b) = self.buf.get_mut(self.buf_len) {
            *b = 0x80;
        }
        let start = self.buf_len.saturating_add(1);
        if let Some(rest) = self.buf.get_mut(start..) {
            rest.fill(0);
        }
        if start > 56 {
            compress(&mut self.state, &self.buf);
            self.buf.fill(0);
        }
        if let Some(tail) = self.buf.get_mut(56..) {
            for (d, s) in tail.iter_mut().zip(bit_len) {
                *d = s;
            }
        }
        compress(&mut self.state, &self.buf);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            for (d, s) in o.iter_mut().zip(w.to_be_bytes()) {
                *d = s;
            }
        }
        let block = Block::from_bytes(out);
        out.zeroize();
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
            scratch: [0; SCRATCH_WORDS * 8],
        }
    }

    /// Index of the block being built (= blocks finished so far).
    #[cfg(test)]
    pub(super) fn counter(&self) -> u64 {
        self.hash.counter
    }

    /// Appends a frame header.
    #[inline]
    pub(super) fn header(&mut self, tag: u8, byte_len: u32) {
        let l = byte_len.to_le_bytes();
        self.hash.update(&[tag, l[0], l[1], l[2], l[3]]);
    }

    /// Appends bytes.
    #[inline]
    pub(super) fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    /// Appends words as little-endian bytes.
    #[inline]
    pub(super) fn update_words(&mut self, words: &[u64]) {
        for chunk in words.chunks(SCRATCH_WORDS) {
            for (d, w) in self.scratch.chunks_exact_mut(8).zip(chunk) {
                for (b, s) in d.iter_mut().zip(w.to_le_bytes()) {
                    *b = s;
                }
            }
            let n = chunk.len().saturating_mul(8);
            if let Some(bytes) = self.scratch.get(..n) {
                self.hash.update(bytes);
            }
        }
    }

    /// Finishes the current block's hash, returns it, and starts the next
    /// block (counter + 1).
    pub(super) fn finish(&mut self) -> Block {
        self.hash.finish()
    }

    #[cfg(test)]
    pub(super) fn is_zeroed(&self) -> bool {
        self.hash.state == [0; 8]
            && self.hash.key_state == [0; 8]
            && self.hash.buf == [0; 64]
            && self.scratch.iter().all(|&b| b == 0)
    }
}
