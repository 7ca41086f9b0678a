//! The mixer: per-source SP 800-90B health tests, entropy credit in exact
//! fixed point, and SHA-256 conditioning into 32-byte full-entropy
//! [`Block`]s.
//!
//! Contract:
//! - A block is emitted only once at least 320 bits (256 + 64,
//!   [`BLOCK_CREDIT`]) have been credited since the previous block; then the
//!   credit restarts from zero. Nothing carries over: credit beyond 320 in a
//!   block (at most one sample's rate) is not counted again, and there is no
//!   way to make the mixer emit early. This arithmetic lives once, in the
//!   credit routine of `mixer/credit.rs`; the fast path (frames proved
//!   clean at once) only decides how many samples are clean and credits
//!   them through the same routine as the general path.
//! - Each block is the SHA-256 of `DOMAIN || key || counter || frames`
//!   (see [`DOMAIN`] and the framing below). Input is chunked so a block
//!   hashes exactly the samples that earned its credit: a batch that earns
//!   credit for several blocks yields several blocks, each over only its own
//!   samples (64 KiB of fully credited external input yields
//!   `floor(65536 * 8 / 320) = 1638` blocks). At most one block is emitted
//!   per frame.
//! - Framing (injective): `counter` is the block's index as `u64` LE; every
//!   frame is `tag: u8 (the source's bit) || len: u32 LE (bytes) || bytes`,
//!   where words (RDRAND, RDSEED, interrupt timestamps) are hashed as 8
//!   little-endian bytes each. Frames hold up to [`MAX_FRAME_SAMPLES`]
//!   samples; a batch may span several frames.
//! - Health: a sample is credited only if it passed its source's tests while
//!   the source was healthy ([`crate::health`]). A failure forfeits all
//!   credit pending for the current block (from every source: the block may
//!   hold bad samples credited before the failure was detected), and
//!   quarantines the source; its samples are still absorbed.
//! - Sink: blocks go to a [`BlockSink`]. If it refuses a block, the mixer
//!   keeps that one block ("held"), stops, and reports how many samples it
//!   consumed (all of them hashed and counted, none of them to be submitted
//!   again). While a block is held, absorbing first offers it again and
//!   consumes nothing if it is still refused. Credit is never lost silently
//!   and never counted twice.
//! - External pieces pass a screen for patterned data ([`screen`]) before
//!   they earn credit: [`Mixer::screen_external`] judges a whole piece
//!   once (a short piece together with the external bytes before it); a
//!   piece that trips disables the external source (its samples are
//!   refused, its state reads [`HealthState::Disabled`]) until
//!   [`Mixer::reset_source`]. A piece too short to judge (the first bytes
//!   after start) is absorbed without credit
//!   ([`Mixer::absorb_external_uncredited`]).
//! - All secret state (midstates, buffered input, last health samples, the
//!   held block) is zeroized on drop; `Debug` prints `Mixer { .. }`.

mod block;
mod conditioner;
mod credit;
pub mod screen;

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;
use crate::health::{HealthState, HealthTest, HealthTestKind, PieceSample, Run};
use crate::source::Source;
use conditioner::{Conditioner, FrameData, ONE_SHOT_MAX};
use credit::{credit_samples, forfeit, samples_to_block};

pub use block::{BLOCK_LEN, Block};
pub use credit::{
    BLOCK_CREDIT, Credit, CreditRate, MixerConfig, SourceConfig, UNITS_PER_BIT, sample_bits,
};

/// The 32-byte domain-separation string that opens every block's message
/// (followed by the 32-byte instance key: together one SHA-256 block).
pub const DOMAIN: &[u8; 32] = b"entropool mixer v1 SHA-256 cond\0";

/// Most samples hashed in one frame (so a frame's byte length fits `u32`).
pub const MAX_FRAME_SAMPLES: usize = 1 << 16;

/// Where emitted blocks go (the pool's memory cache, a test's `Vec`...).
pub trait BlockSink {
    /// Takes `block`, or gives it back when there is no room.
    ///
    /// # Errors
    /// `Err(block)`: no room; the mixer keeps the block and stops.
    fn offer(&mut self, block: Block) -> Result<(), Block>;
}

impl<F: FnMut(Block) -> Result<(), Block>> BlockSink for F {
    fn offer(&mut self, block: Block) -> Result<(), Block> {
        self(block)
    }
}

/// What one absorb call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Absorbed {
    /// Samples consumed from the front of the input (bytes for external,
    /// words otherwise): hashed and counted; never submit them again.
    pub consumed: usize,
    /// Blocks the sink accepted during this call (a previously held block
    /// included).
    pub blocks: u32,
    /// The sink refused a block: the mixer holds it and stopped early.
    pub sink_full: bool,
    /// Health-test failures during this call.
    pub failures: u32,
    /// The source's health state after the call.
    pub state: HealthState,
}

/// Why the external source is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalDisable {
    /// Repeated health-test failures (the SP 800-90B RCT and APT).
    Health,
    /// A piece tripped the screen.
    Screen(screen::ScreenTrip),
    /// The caller disabled it (the daemon: it was disabled when the last
    /// run stopped, and nobody reset it since).
    Carried,
}

impl ExternalDisable {
    /// A short stable reason for logs and audit lines (`health`,
    /// `screen-<test>`, `carried-over`).
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            ExternalDisable::Health => "health",
            ExternalDisable::Screen(screen::ScreenTrip::ByteSubset) => "screen-byte-subset",
            ExternalDisable::Screen(screen::ScreenTrip::ByteBias) => "screen-byte-bias",
            ExternalDisable::Screen(screen::ScreenTrip::ConstantDifference) => {
                "screen-constant-difference"
            }
            ExternalDisable::Screen(screen::ScreenTrip::Repeats) => "screen-repeats",
            ExternalDisable::Carried => "carried-over",
        }
    }
}

/// A snapshot of one source's counters (what `status` shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceStats {
    /// The source.
    pub source: Source,
    /// Raw samples absorbed (words, events or bytes).
    pub samples: u64,
    /// Credit granted to blocks from this source (before any forfeit).
    pub credited: Credit,
    /// Health-test failures.
    pub health_failures: u64,
    /// Current health state.
    pub state: HealthState,
    /// Current strikes toward disabling.
    pub strikes: u8,
    /// Which test failed last.
    pub last_failure: Option<HealthTestKind>,
}

/// A snapshot of the mixer's own counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixerStats {
    /// Blocks emitted (delivered or held).
    pub blocks_emitted: u64,
    /// Blocks the sink accepted.
    pub blocks_delivered: u64,
    /// Credit accumulated toward the next block.
    pub pending: Credit,
    /// Credit thrown away because a health test failed mid-block.
    pub forfeited: Credit,
    /// A refused block is held.
    pub held: bool,
}

/// One source's runtime state.
struct SourceState {
    rate: u64,
    health: HealthTest,
    samples: u64,
    credited: u64,
}

/// The input of one absorb call.
#[derive(Clone, Copy)]
enum Input<'a> {
    Bytes(&'a [u8]),
    Words(&'a [u64]),
    Timestamps(&'a [u64]),
}

impl Input<'_> {
    fn len(self) -> usize {
        match self {
            Input::Bytes(b) => b.len(),
            Input::Words(w) | Input::Timestamps(w) => w.len(),
        }
    }
}

/// The mixer. See the module documentation for its contract.
pub struct Mixer {
    cond: Conditioner,
    /// Credit (units) toward the block being built; always `< BLOCK_CREDIT`
    /// between calls.
    pending: u64,
    held: Option<Block>,
    slots: [SourceState; 4],
    /// Interrupt-delta bytes under test (secret: zeroized on drop).
    deltas: [u8; DELTA_PIECE],
    /// The last interrupt timestamp tested (secret-ish: zeroized on drop).
    /// Only the interrupts source has timestamps, so it is kept here, not
    /// in every source's slot (24 bytes of static RAM on firmware).
    prev_ts: u64,
    blocks_emitted: u64,
    blocks_delivered: u64,
    forfeited: u64,
    /// The external source was disabled by the screen or the caller.
    external_block: Option<ExternalDisable>,
    /// The last external bytes screened, for judging short pieces.
    screen_ctx: screen::ScreenContext,
}

impl ZeroizeOnDrop for Mixer {}

impl Drop for Mixer {
    fn drop(&mut self) {
        // `cond`, `held` and the slots wipe themselves.
        self.deltas.zeroize();
        self.prev_ts.zeroize();
    }
}

impl fmt::Debug for Mixer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mixer { .. }")
    }
}

fn slot_mut(slots: &mut [SourceState; 4], source: Source) -> &mut SourceState {
    source.of_mut(slots)
}

fn slot(slots: &[SourceState; 4], source: Source) -> &SourceState {
    source.of(slots)
}

impl Mixer {
    /// A mixer with `config`, keyed by `key` (a per-instance value: a
    /// device-unique secret where firmware has one, random bytes otherwise;
    /// all zeros is allowed and still gives a correct SHA-256 conditioner).
    /// Every source starts in its start-up test.
    ///
    /// # Errors
    /// As [`MixerConfig::validate`].
    pub fn new(config: &MixerConfig, key: &[u8; 32]) -> Result<Mixer, Error> {
        config.validate()?;
        let mk = |s: Source| -> Result<SourceState, Error> {
            let c = config.source(s);
            Ok(SourceState {
                rate: c.credit.units(),
                health: HealthTest::new(c.health, sample_bits(s))?,
                samples: 0,
                credited: 0,
            })
        };
        Ok(Mixer {
            cond: Conditioner::new(key),
            pending: 0,
            held: None,
            slots: [
                mk(Source::Interrupts)?,
                mk(Source::Rdrand)?,
                mk(Source::Rdseed)?,
                mk(Source::External)?,
            ],
            deltas: [0; DELTA_PIECE],
            prev_ts: 0,
            blocks_emitted: 0,
            blocks_delivered: 0,
            forfeited: 0,
            external_block: None,
            screen_ctx: screen::ScreenContext::new(),
        })
    }

    /// Absorbs 64-bit samples of `source`: RDRAND or RDSEED words, or
    /// interrupt timestamps (cycle counts; the health tests see the low
    /// byte of each delta from the previous timestamp, the first ever
    /// timestamp's delta being from 0). Emits the blocks the credit earns
    /// into `sink`.
    ///
    /// # Errors
    /// [`Error::SourceDisabled`] (nothing consumed) when repeated health
    /// failures disabled the source; [`Error::WrongSampleKind`] for
    /// [`Source::External`], whose samples are bytes (use
    /// [`Self::absorb_external`]).
    pub fn absorb_words<S: BlockSink + ?Sized>(
        &mut self,
        source: Source,
        words: &[u64],
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        match source {
            Source::External => Err(Error::WrongSampleKind { source }),
            Source::Interrupts => self.absorb_timestamps(words, sink),
            Source::Rdrand | Source::Rdseed => self.absorb_hardware_words(source, words, sink),
        }
    }

    /// [`Self::absorb`] for interrupt timestamps. Each sample kind has its
    /// own copy of the absorb loop (`absorb` is inlined into one function
    /// per kind), so an image that never feeds a kind, such as a firmware
    /// with interrupts + external and no RDRAND/RDSEED, links none of its
    /// code (the word health-test and framing paths).
    #[inline(never)]
    fn absorb_timestamps<S: BlockSink + ?Sized>(
        &mut self,
        words: &[u64],
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        self.absorb::<FAST_PATH, _>(Source::Interrupts, Input::Timestamps(words), sink)
    }

    /// [`Self::absorb`] for RDRAND or RDSEED words (see
    /// [`Self::absorb_timestamps`]).
    #[inline(never)]
    fn absorb_hardware_words<S: BlockSink + ?Sized>(
        &mut self,
        source: Source,
        words: &[u64],
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        self.absorb::<FAST_PATH, _>(source, Input::Words(words), sink)
    }

    /// Absorbs external entropy bytes, emitting the blocks they earn into
    /// `sink`.
    ///
    /// # Errors
    /// [`Error::SourceDisabled`] (nothing consumed) when repeated health
    /// failures disabled the external source.
    pub fn absorb_external<S: BlockSink + ?Sized>(
        &mut self,
        bytes: &[u8],
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        self.absorb::<FAST_PATH, _>(Source::External, Input::Bytes(bytes), sink)
    }

    /// Judges one external piece with the [`screen`] before any of it is
    /// absorbed. `Ok(true)`: it may earn credit; `Ok(false)`: too short to
    /// judge (absorb it with [`Self::absorb_external_uncredited`]).
    ///
    /// # Errors
    /// [`Error::SourceDisabled`] when the external source is disabled, or
    /// when `piece` tripped the screen: the source is disabled then
    /// ([`Self::external_disabled`] says why) until
    /// [`Self::reset_source`]. Nothing is absorbed either way.
    pub fn screen_external(&mut self, piece: &[u8]) -> Result<bool, Error> {
        if self.external_disabled().is_some() {
            return Err(Error::SourceDisabled {
                source: Source::External,
            });
        }
        match self.screen_ctx.screen(piece) {
            screen::Screen::Pass => Ok(true),
            screen::Screen::TooShort => Ok(false),
            screen::Screen::Trip(trip) => {
                self.external_block = Some(ExternalDisable::Screen(trip));
                Err(Error::SourceDisabled {
                    source: Source::External,
                })
            }
        }
    }

    /// As [`Self::absorb_external`], but the bytes earn no credit (they
    /// still pass the health tests and are hashed into the next block).
    ///
    /// # Errors
    /// As [`Self::absorb_external`].
    pub fn absorb_external_uncredited<S: BlockSink + ?Sized>(
        &mut self,
        bytes: &[u8],
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        let s = slot_mut(&mut self.slots, Source::External);
        let rate = s.rate;
        s.rate = 0;
        // The same copy of the byte path as `absorb_external`.
        let result = self.absorb_external(bytes, sink);
        slot_mut(&mut self.slots, Source::External).rate = rate;
        result
    }

    /// Disables the external source as [`ExternalDisable::Carried`] (the
    /// caller's record says it was disabled and not reset).
    pub fn disable_external(&mut self) {
        if self.external_disabled().is_none() {
            self.external_block = Some(ExternalDisable::Carried);
        }
    }

    /// Why the external source is disabled, if it is.
    #[must_use]
    pub fn external_disabled(&self) -> Option<ExternalDisable> {
        self.external_block.or_else(|| {
            (slot(&self.slots, Source::External).health.state() == HealthState::Disabled)
                .then_some(ExternalDisable::Health)
        })
    }

    /// Offers the held block (if any) to `sink` again. Returns `true` when
    /// no block is held afterwards.
    pub fn deliver_held<S: BlockSink + ?Sized>(&mut self, sink: &mut S) -> bool {
        match self.held.take() {
            None => true,
            Some(b) => match sink.offer(b) {
                Ok(()) => {
                    self.blocks_delivered = self.blocks_delivered.saturating_add(1);
                    true
                }
                Err(b) => {
                    self.held = Some(b);
                    false
                }
            },
        }
    }

    /// Takes the held block out (e.g. to write it to storage at shutdown).
    pub fn take_held(&mut self) -> Option<Block> {
        let b = self.held.take();
        if b.is_some() {
            self.blocks_delivered = self.blocks_delivered.saturating_add(1);
        }
        b
    }

    /// Operator action: restart `source`'s health tests from the start-up
    /// test (re-enables a disabled source; failures stay counted).
    pub fn reset_source(&mut self, source: Source) {
        if source == Source::External {
            self.external_block = None;
        }
        slot_mut(&mut self.slots, source).health.reset();
    }

    /// `source`'s counters.
    #[must_use]
    pub fn stats(&self, source: Source) -> SourceStats {
        let s = slot(&self.slots, source);
        let blocked = source == Source::External && self.external_block.is_some();
        SourceStats {
            source,
            samples: s.samples,
            credited: Credit(s.credited),
            health_failures: s.health.failures(),
            state: if blocked {
                HealthState::Disabled
            } else {
                s.health.state()
            },
            strikes: s.health.strikes(),
            last_failure: s.health.last_failure(),
        }
    }

    /// The mixer's own counters.
    #[must_use]
    pub fn mixer_stats(&self) -> MixerStats {
        MixerStats {
            blocks_emitted: self.blocks_emitted,
            blocks_delivered: self.blocks_delivered,
            pending: Credit(self.pending),
            forfeited: Credit(self.forfeited),
            held: self.held.is_some(),
        }
    }

    /// `source`'s health-test cutoffs `(rct, apt)`.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn cutoffs(&self, source: Source) -> (u32, u32) {
        let h = &slot(&self.slots, source).health;
        (h.rct_cutoff(), h.apt_cutoff())
    }

    /// The absorb loop, inlined into one function per sample kind (see
    /// [`Self::absorb_timestamps`]); `FAST`: with the fast path
    /// ([`FAST_PATH`]).
    #[inline(always)]
    fn absorb<const FAST: bool, S: BlockSink + ?Sized>(
        &mut self,
        source: Source,
        input: Input<'_>,
        sink: &mut S,
    ) -> Result<Absorbed, Error> {
        if slot(&self.slots, source).health.state() == HealthState::Disabled
            || (source == Source::External && self.external_block.is_some())
        {
            return Err(Error::SourceDisabled { source });
        }
        let mut out = Absorbed {
            consumed: 0,
            blocks: 0,
            sink_full: false,
            failures: 0,
            state: HealthState::Disabled,
        };
        if self.held.is_some() {
            if self.deliver_held(sink) {
                out.blocks = 1;
            } else {
                out.sink_full = true;
                out.state = slot(&self.slots, source).health.state();
                return Ok(out);
            }
        }
        let len = input.len();
        let tag = source.bit();
        while out.consumed < len {
            // Whole frames of provably clean samples first; the general
            // frame below handles everything else (start-up, quarantine,
            // a possible failure, timestamps, zero credit).
            let stop = FAST
                && match input {
                    Input::Bytes(b) => self.absorb_clean(source, b, &mut out, sink),
                    Input::Words(w) => self.absorb_clean(source, w, &mut out, sink),
                    Input::Timestamps(_) => false,
                };
            if stop || out.consumed >= len {
                break;
            }
            let Mixer {
                cond,
                pending,
                slots,
                deltas,
                prev_ts,
                ..
            } = self;
            let s = slot_mut(slots, source);
            if s.health.state() == HealthState::Disabled {
                break;
            }
            let want = samples_to_block(*pending, s.rate);
            let end = out.consumed.saturating_add(MAX_FRAME_SAMPLES).min(len);
            let run = match input {
                Input::Bytes(b) => match b.get(out.consumed..end) {
                    Some(chunk) => s.health.run(chunk, want),
                    None => break,
                },
                Input::Words(w) => match w.get(out.consumed..end) {
                    Some(chunk) => s.health.run(chunk, want),
                    None => break,
                },
                Input::Timestamps(t) => match t.get(out.consumed..end) {
                    Some(chunk) => run_timestamps(s, deltas, prev_ts, chunk, want),
                    None => break,
                },
            };
            let Some(taken) = out.consumed.checked_add(run.consumed) else {
                break;
            };
            if run.consumed == 0 {
                break;
            }
            // Hash the frame: exactly the samples the health tests took.
            match input {
                Input::Bytes(b) => {
                    if let Some(f) = b.get(out.consumed..taken) {
                        cond.frame_bytes(tag, f);
                    }
                }
                Input::Words(w) | Input::Timestamps(w) => {
                    if let Some(f) = w.get(out.consumed..taken) {
                        cond.frame_words(tag, f);
                    }
                }
            }
            out.consumed = taken;
            s.samples = s
                .samples
                .saturating_add(u64::try_from(run.consumed).unwrap_or(u64::MAX));
            if run.failed.is_some() {
                out.failures = out.failures.saturating_add(1);
                forfeit(pending, &mut self.forfeited);
                continue;
            }
            if credit_samples(pending, &mut s.credited, run.creditable, s.rate) {
                let block = cond.finish();
                if !emit_block(
                    block,
                    sink,
                    &mut self.held,
                    &mut self.blocks_emitted,
                    &mut self.blocks_delivered,
                    &mut out,
                ) {
                    break;
                }
            }
        }
        out.state = slot(&self.slots, source).health.state();
        Ok(out)
    }
}

/// Whether the mixer takes its fast path for clean stretches
/// ([`Mixer::absorb_clean`]): everywhere but on bare-metal targets, where
/// its code (about 4 KiB of Thumb-2) matters more than its speed. Blocks,
/// counters and health states are the same either way (the path only
/// batches what stepping sample by sample does; a unit test compares the
/// two).
const FAST_PATH: bool = !cfg!(target_os = "none");

/// Samples the fast path proves clean at once (it bounds the scan wasted
/// when the sink refuses a block early).
const PLAN_SAMPLES: usize = 4096;

/// A raw sample kind the fast path frames: external bytes or words.
trait Framed: PieceSample + FrameData {
    /// Appends a frame of `xs` tagged `tag`.
    fn frame(cond: &mut Conditioner, tag: u8, xs: &[Self]);
}

impl Framed for u8 {
    #[inline]
    fn frame(cond: &mut Conditioner, tag: u8, xs: &[u8]) {
        cond.frame_bytes(tag, xs);
    }
}

impl Framed for u64 {
    #[inline]
    fn frame(cond: &mut Conditioner, tag: u8, xs: &[u64]) {
        cond.frame_words(tag, xs);
    }
}

/// Samples in the frame that starts with `pending` credit at `rate > 0`
/// with `avail` samples of input left: what the general path's health run
/// takes when every sample is creditable. `full` is the size from zero.
#[inline]
fn frame_len(pending: u64, rate: u64, full: usize, avail: usize) -> usize {
    let n = if pending == 0 {
        full
    } else {
        usize::try_from(samples_to_block(pending, rate)).unwrap_or(usize::MAX)
    };
    n.min(MAX_FRAME_SAMPLES).min(avail)
}

/// Credit pending after a whole creditable frame of `n` samples (zero
/// when it completes a block).
#[inline]
fn pending_after(pending: u64, rate: u64, n: usize) -> u64 {
    let (mut p, mut credited) = (pending, 0);
    credit_samples(
        &mut p,
        &mut credited,
        u64::try_from(n).unwrap_or(u64::MAX),
        rate,
    );
    p
}

/// Samples in the whole frames (from `pending` credit, `avail` samples
/// left) that fit in `limit` samples.
fn frames_within(pending: u64, rate: u64, full: usize, avail: usize, limit: usize) -> usize {
    if pending == 0 && full > 0 && full <= MAX_FRAME_SAMPLES {
        // Every frame is `full` samples and completes a block (pending
        // stays 0), but the last, which ends the input: the loop below in
        // closed form.
        return if avail <= limit {
            avail
        } else {
            limit / full * full
        };
    }
    let mut len = 0usize;
    let mut pending = pending;
    // Each frame takes at least one sample: at most `limit` rounds.
    while len < limit {
        let n = frame_len(pending, rate, full, avail.saturating_sub(len));
        let next = len.saturating_add(n);
        if n == 0 || next > limit {
            break;
        }
        len = next;
        pending = pending_after(pending, rate, n);
    }
    len
}

impl Mixer {
    /// The fast path: while `source` is healthy with a non-zero rate,
    /// proves up to [`PLAN_SAMPLES`] samples clean at once
    /// ([`HealthTest::plan_clean`]) and hashes them as the very frames the
    /// general path would make (every sample creditable, so a frame ends
    /// exactly when its credit completes a block, at [`MAX_FRAME_SAMPLES`]
    /// or at the end of the input), then commits the health state. Returns
    /// `true` when the sink refused a block (the caller stops); `false`
    /// when the general path must take over (or the input is used up).
    fn absorb_clean<T: Framed, S: BlockSink + ?Sized>(
        &mut self,
        source: Source,
        xs: &[T],
        out: &mut Absorbed,
        sink: &mut S,
    ) -> bool {
        let tag = source.bit();
        let Mixer {
            cond,
            pending,
            held,
            slots,
            blocks_emitted,
            blocks_delivered,
            ..
        } = self;
        let s = slot_mut(slots, source);
        let rate = s.rate;
        if rate == 0 {
            return false;
        }
        // Frame size from zero pending credit: ceil(320 bits / rate).
        let full = usize::try_from(samples_to_block(0, rate)).unwrap_or(usize::MAX);
        loop {
            let Some(rest) = xs.get(out.consumed..) else {
                return false;
            };
            if rest.is_empty() || s.health.state() != HealthState::Healthy {
                return false;
            }
            let avail = rest.len();
            let mut region = frames_within(*pending, rate, full, avail, PLAN_SAMPLES);
            if region == 0 {
                // One frame longer than `PLAN_SAMPLES`.
                region = frame_len(*pending, rate, full, avail);
            }
            let Some(planned) = rest.get(..region) else {
                return false;
            };
            let mut plan = s.health.plan_clean(planned);
            if plan.len < region {
                // Keep only the whole frames proved clean.
                region = frames_within(*pending, rate, full, avail, plan.len);
                let Some(planned) = rest.get(..region) else {
                    return false;
                };
                plan = s.health.plan_clean(planned);
                if region == 0 || plan.len != region {
                    return false;
                }
            }
            let mut pos = 0usize;
            // A refused block ends the region early (`out.sink_full`).
            while pos < region && !out.sink_full {
                // Whole one-compression frames from a fresh block: the
                // pipelined path. Each frame's credit (`full * rate`)
                // completes its block, so nothing stays pending.
                let whole = region.saturating_sub(pos) / full.max(1);
                if *pending == 0
                    && whole > 1
                    && full.saturating_mul(T::BYTES) <= ONE_SHOT_MAX
                    && cond.is_fresh()
                {
                    let span = pos..pos.saturating_add(whole.saturating_mul(full));
                    if let Some(frames) = rest.get(span) {
                        let full64 = u64::try_from(full).unwrap_or(u64::MAX);
                        let credited = &mut s.credited;
                        let done = cond.one_shot_blocks(tag, frames, full, |block| {
                            // Each frame completes its block (`full * rate`
                            // from zero), as the routine confirms.
                            let _complete = credit_samples(pending, credited, full64, rate);
                            emit_block(block, sink, held, blocks_emitted, blocks_delivered, out)
                        });
                        let n = done.saturating_mul(full);
                        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
                        s.samples = s.samples.saturating_add(n64);
                        pos = pos.saturating_add(n);
                        if done > 0 {
                            continue;
                        }
                    }
                }
                let n = frame_len(*pending, rate, full, avail.saturating_sub(pos));
                let end = pos.saturating_add(n);
                let Some(frame) = rest.get(pos..end) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                T::frame(cond, tag, frame);
                let n64 = u64::try_from(n).unwrap_or(u64::MAX);
                s.samples = s.samples.saturating_add(n64);
                pos = end;
                if credit_samples(pending, &mut s.credited, n64, rate) {
                    let block = cond.finish();
                    emit_block(block, sink, held, blocks_emitted, blocks_delivered, out);
                }
            }
            // Only the consumed prefix is committed to the health tests.
            if pos == plan.len {
                s.health.commit_clean(&plan);
            } else if let Some(done) = rest.get(..pos) {
                commit_prefix(&mut s.health, done);
            }
            out.consumed = out.consumed.saturating_add(pos);
            if out.sink_full {
                return true;
            }
        }
    }
}

/// Counts `block` as emitted and offers it to `sink`: delivered (and
/// counted in `out`), or kept in `held` with `out.sink_full` set. Returns
/// whether the sink took it.
fn emit_block<S: BlockSink + ?Sized>(
    block: Block,
    sink: &mut S,
    held: &mut Option<Block>,
    emitted: &mut u64,
    delivered: &mut u64,
    out: &mut Absorbed,
) -> bool {
    *emitted = emitted.saturating_add(1);
    match sink.offer(block) {
        Ok(()) => {
            *delivered = delivered.saturating_add(1);
            out.blocks = out.blocks.saturating_add(1);
            true
        }
        Err(block) => {
            *held = Some(block);
            out.sink_full = true;
            false
        }
    }
}

/// Applies the health tests to `done`, a prefix of a proved-clean plan:
/// re-proved (a prefix of a clean stretch is clean), with the exact
/// stepping path for anything not re-proved. Either way the state is the
/// one stepping each sample gives.
fn commit_prefix<T: PieceSample>(health: &mut HealthTest, done: &[T]) {
    let plan = health.plan_clean(done);
    health.commit_clean(&plan);
    if let Some(tail) = done.get(plan.len..) {
        if !tail.is_empty() {
            health.run(tail, u64::MAX);
        }
    }
}

/// Interrupt timestamps health-tested at once (through their delta low
/// bytes): 64, or 32 where pointers are 32 bits (the scratch is static RAM
/// on a microcontroller). The size changes nothing but the work per piece:
/// [`run_timestamps`] stops exactly where one [`HealthTest::run`] over all
/// the deltas would.
const DELTA_PIECE: usize = if cfg!(target_pointer_width = "32") {
    32
} else {
    64
};

/// Health-tests interrupt timestamps through their delta low bytes, in
/// pieces of [`DELTA_PIECE`], with the same stopping rules as
/// [`HealthTest::run`].
fn run_timestamps<const N: usize>(
    s: &mut SourceState,
    deltas: &mut [u8; N],
    prev_ts: &mut u64,
    ts: &[u64],
    want: u64,
) -> Run {
    let mut total = Run {
        consumed: 0,
        creditable: 0,
        failed: None,
    };
    for piece in ts.chunks(deltas.len()) {
        let mut prev = *prev_ts;
        for (d, &t) in deltas.iter_mut().zip(piece) {
            // Only the low byte is kept.
            *d = t.wrapping_sub(prev).to_le_bytes()[0];
            prev = t;
        }
        let Some(ds) = deltas.get(..piece.len()) else {
            break;
        };
        let r = s.health.run(ds, want.saturating_sub(total.creditable));
        if let Some(last) = r.consumed.checked_sub(1).and_then(|i| piece.get(i)) {
            *prev_ts = *last;
        }
        total.consumed = total.consumed.saturating_add(r.consumed);
        total.creditable = total.creditable.saturating_add(r.creditable);
        total.failed = r.failed;
        if r.failed.is_some() || r.consumed < piece.len() || total.creditable >= want {
            break;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delta scratch's size changes nothing: pieces of 1, 7, 32
    /// (firmware) and 64 stop where one `HealthTest::run` over all the
    /// deltas does, with the same state after, through start-up, a clean
    /// stretch and a stuck timer's failure, for several credit targets.
    #[test]
    fn timestamp_pieces_of_any_size_stop_where_one_run_does() {
        use crate::health::{HealthConfig, MinEntropy};
        let cfg = HealthConfig::new(MinEntropy::from_eighths(8).unwrap(), 30).unwrap();
        // Varied deltas for 1500 samples, then a stuck timer (delta 0).
        let mut t = 5u64;
        let ts: std::vec::Vec<u64> = (0..3000u64)
            .map(|i| {
                if i < 1500 {
                    t += 1 + (i * 2_654_435_761) % 251;
                }
                t
            })
            .collect();
        for want in [1u64, 300, 2000, u64::MAX] {
            let mut model = HealthTest::new(cfg, 8).unwrap();
            let mut prev = 0u64;
            let deltas: std::vec::Vec<u8> = ts
                .iter()
                .map(|&x| {
                    let d = x.wrapping_sub(prev).to_le_bytes()[0];
                    prev = x;
                    d
                })
                .collect();
            let whole = model.run(&deltas, want);
            let check = |got: Run, s: &SourceState, prev_ts: u64| {
                assert_eq!(got, whole, "want {want}");
                assert_eq!(s.health.state(), model.state(), "want {want}");
                assert_eq!(s.health.failures(), model.failures(), "want {want}");
                let last = whole.consumed.checked_sub(1).map_or(0, |i| ts[i]);
                assert_eq!(prev_ts, last, "want {want}");
            };
            let slot = || SourceState {
                rate: 0,
                health: HealthTest::new(cfg, 8).unwrap(),
                samples: 0,
                credited: 0,
            };
            let (mut s, mut p) = (slot(), 0);
            check(
                run_timestamps(&mut s, &mut [0u8; 1], &mut p, &ts, want),
                &s,
                p,
            );
            let (mut s, mut p) = (slot(), 0);
            check(
                run_timestamps(&mut s, &mut [0u8; 7], &mut p, &ts, want),
                &s,
                p,
            );
            let (mut s, mut p) = (slot(), 0);
            check(
                run_timestamps(&mut s, &mut [0u8; 32], &mut p, &ts, want),
                &s,
                p,
            );
            let (mut s, mut p) = (slot(), 0);
            check(
                run_timestamps(&mut s, &mut [0u8; 64], &mut p, &ts, want),
                &s,
                p,
            );
        }
    }

    #[test]
    fn conditioner_zeroize_wipes_state() {
        let mut c = Conditioner::new(&[9; 32]);
        c.update(&[1, 2, 3]);
        assert!(!c.is_zeroed());
        c.zeroize();
        assert!(c.is_zeroed());
    }

    #[test]
    fn one_shot_blocks_match_the_incremental_path_and_leave_no_message() {
        let data: [u8; 200] = core::array::from_fn(|i| u8::try_from(i * 37 % 251).unwrap_or(0));
        let mut inc = Conditioner::new(&[5; 32]);
        let want: [Block; 5] = core::array::from_fn(|i| {
            inc.frame_bytes(8, &data[i * 40..(i + 1) * 40]);
            inc.finish()
        });
        // Refused at the third block: three blocks out, the fourth frame
        // (written ahead) wiped, the counter after the third.
        let mut one = Conditioner::new(&[5; 32]);
        let mut got = [const { None }; 5];
        let mut n = 0;
        let done = one.one_shot_blocks(8, &data, 40, |b| {
            got[n] = Some(b);
            n += 1;
            n < 3
        });
        assert_eq!(done, 3);
        assert!(one.pipe_is_clear());
        assert_eq!(one.counter(), 3);
        for (g, w) in got.iter().zip(&want).take(3) {
            assert_eq!(g.as_ref(), Some(w));
        }
        // The rest continues where the incremental path would.
        let rest = one.one_shot_blocks(8, &data[120..], 40, |b| {
            got[n] = Some(b);
            n += 1;
            true
        });
        assert_eq!(rest, 2);
        assert!(one.pipe_is_clear());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.as_ref(), Some(w));
        }
        // Not at the start of a block, or frames too long: nothing done.
        one.frame_bytes(8, &data[..3]);
        assert_eq!(one.one_shot_blocks(8, &data, 40, |_| true), 0);
        let mut fresh = Conditioner::new(&[5; 32]);
        assert_eq!(fresh.one_shot_blocks(8, &data, 43, |_| true), 0);
        let words = [7u64; 10];
        assert_eq!(fresh.one_shot_blocks(2, &words, 6, |_| true), 0);
        assert_eq!(fresh.one_shot_blocks(2, &words, 5, |_| true), 2);
    }

    /// Feeds `pieces` of `source` to two mixers, one with the fast path and
    /// one without (as bare-metal builds run), through sinks that take at
    /// most `room` blocks per call; everything observable must match.
    fn fast_and_general_agree(
        cfg: &MixerConfig,
        source: Source,
        pieces: &[(bool, &[u8])],
        room: usize,
    ) -> usize {
        let key = [0x3c; 32];
        let mut fast = Mixer::new(cfg, &key).unwrap();
        let mut general = Mixer::new(cfg, &key).unwrap();
        let (mut got_fast, mut got_general) = (std::vec::Vec::new(), std::vec::Vec::new());
        for (i, &(credited, piece)) in pieces.iter().enumerate() {
            let words: std::vec::Vec<u64> = piece
                .chunks(8)
                .map(|c| c.iter().fold(0u64, |w, &b| (w << 8) | u64::from(b)))
                .collect();
            let mut results = [None, None];
            for (j, (m, got)) in [(&mut fast, &mut got_fast), (&mut general, &mut got_general)]
                .into_iter()
                .enumerate()
            {
                let mut sink = |b: Block| {
                    if got.len() < room * (i + 1) {
                        got.push(b);
                        Ok(())
                    } else {
                        Err(b)
                    }
                };
                let rate = slot(&m.slots, source).rate;
                if !credited {
                    slot_mut(&mut m.slots, source).rate = 0;
                }
                let input = match source {
                    Source::External => Input::Bytes(piece),
                    Source::Interrupts => Input::Timestamps(&words),
                    Source::Rdrand | Source::Rdseed => Input::Words(&words),
                };
                results[j] = Some(if j == 0 {
                    m.absorb::<true, _>(source, input, &mut sink)
                } else {
                    m.absorb::<false, _>(source, input, &mut sink)
                });
                slot_mut(&mut m.slots, source).rate = rate;
            }
            assert_eq!(results[0], results[1], "piece {i}");
            assert_eq!(fast.stats(source), general.stats(source), "piece {i}");
            assert_eq!(fast.mixer_stats(), general.mixer_stats(), "piece {i}");
        }
        assert_eq!(got_fast, got_general);
        got_fast.len()
    }

    #[test]
    fn the_fast_path_changes_nothing_but_speed() {
        let mut r = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let mut half = MixerConfig::DEFAULT;
        let mut ext = half.source(Source::External);
        ext.credit = CreditRate::from_units(UNITS_PER_BIT * 5 / 2);
        half.set(Source::External, ext).unwrap();
        let mut blocks = [0usize; 3];
        for round in 0..24u32 {
            // Clean random stretches, runs long enough to fail the RCT,
            // biased stretches for the APT, uncredited pieces, any length.
            let mut data = std::vec::Vec::new();
            let mut cuts = std::vec::Vec::new();
            for _ in 0..40 {
                let len = usize::try_from(next() % 3000).unwrap();
                let kind = next() % 10;
                let at = data.len();
                for k in 0..len {
                    let x = next().to_le_bytes()[0];
                    data.push(match kind {
                        0 if k > len / 2 && k < len / 2 + 9 => 0x55,
                        1 => x % 3,
                        _ => x,
                    });
                }
                cuts.push((next() % 7 != 0, at));
            }
            let pieces: std::vec::Vec<(bool, &[u8])> = cuts
                .iter()
                .zip(cuts.iter().skip(1).map(|c| c.1).chain([data.len()]))
                .map(|(&(credited, a), b)| (credited, &data[a..b]))
                .collect();
            let room = 1 + usize::try_from(round % 5).unwrap() * 40;
            let cfg = if round % 2 == 0 {
                &half
            } else {
                &MixerConfig::DEFAULT
            };
            for (n, source) in
                blocks
                    .iter_mut()
                    .zip([Source::External, Source::Rdseed, Source::Interrupts])
            {
                *n += fast_and_general_agree(cfg, source, &pieces, room);
            }
        }
        // Interrupt timestamps have no fast path (and earn too little here
        // for a block); the others made plenty.
        assert!(blocks[0] > 1000 && blocks[1] > 100, "{blocks:?}");
    }

    #[test]
    fn samples_for_is_ceil_division_without_64_bit_division() {
        use super::credit::samples_for;
        let block = BLOCK_CREDIT.units();
        let needs = [0, 1, 2, 319, 8191, 65_536, block - 1, block];
        let rates = [1, 2, 3, 1024, 8192, 65_536, 4_194_304, block, block + 1];
        for need in needs {
            for rate in rates {
                assert_eq!(
                    samples_for(need, rate),
                    need.div_ceil(rate),
                    "{need}/{rate}"
                );
            }
            assert_eq!(samples_for(need, u64::MAX), u64::from(need > 0));
            assert_eq!(samples_for(need, 1 << 32), u64::from(need > 0));
            assert_eq!(samples_for(need, 0), 0);
        }
        // A larger need counts as a whole block.
        assert_eq!(samples_for(u64::MAX, 1), block);
        assert_eq!(samples_for(block + 5, 7), block.div_ceil(7));
    }

    #[test]
    fn counter_advances_per_block() {
        let mut c = Conditioner::new(&[0; 32]);
        assert_eq!(c.counter(), 0);
        let a = c.finish();
        let b = c.finish();
        assert_eq!(c.counter(), 2);
        assert_ne!(a, b, "equal (empty) inputs give different blocks");
    }
}
