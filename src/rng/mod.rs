//! The pool-backed generator: an SP 800-90A DRBG seeded and reseeded with
//! full entropy, behind rand_core 0.10's `TryRng` + `TryCryptoRng`.
//!
//! Contract:
//! - [`EntropySource`] hands out full-entropy bytes (the pool implements it):
//!   it fills the whole buffer or returns an error, never a partial fill
//!   reported as success.
//! - [`PoolRng`] runs `LANES` (its fourth type parameter: 1 or 2, checked
//!   at compile time; default 2) independent DRBG instances, and holds the
//!   state of exactly that many: a one-lane generator carries no second
//!   instance. Each lane is instantiated with its own 32
//!   bytes (256 bits) of full entropy and 16-byte (128-bit) nonce from the
//!   source (one read of 48 bytes per lane), personalized with the process
//!   id and the lane number, and reseeded with its own 32 fresh bytes. Every
//!   generate call is split between the lanes: lane 0 produces the first
//!   half (rounded up), lane 1 the rest. Each byte of output is therefore
//!   the output of one SP 800-90A instance at full security strength; two
//!   lanes cost twice the pool entropy and, on x86_64 with the SHA
//!   extensions, run about 1.5 times as fast, because the two HMAC chains
//!   are computed interleaved ([`HmacDrbg::generate_pair`]). Lanes add
//!   speed, not strength: the generator's security strength stays 256
//!   bits, each half of an output comes from its own instance, and every
//!   rule below (reseed limits, prediction resistance, fork detection)
//!   applies to each lane.
//! - It reseeds (every lane, from one source read)
//!   after [`PoolRngConfig::reseed_after_requests`] requests or
//!   [`PoolRngConfig::reseed_after_bytes`] bytes, whichever comes first, on
//!   demand ([`PoolRng::reseed_now`]), before every DRBG call when
//!   [`PoolRngConfig::prediction_resistance`] is set, and (feature `std`) on
//!   the first request after a fork, in the child. By default on Linux a
//!   generation word on a `MADV_WIPEONFORK` page is checked with one load
//!   per request, which sees every kind of fork; where that page cannot be
//!   had, the process id is compared on every request (a system call,
//!   also seeing every fork); `PoolRng::set_fork_detection` (with `std`) chooses
//!   between them or a `pthread_atfork` counter that sees only the C
//!   library's `fork()` (`ForkDetection`).
//! - A reseed that is due and cannot be supplied fails the request with
//!   [`Error::DrbgReseedUnavailable`]; every later request retries the reseed
//!   and fails the same way until it succeeds. The generator never runs on
//!   past a due reseed.
//! - On any error the output buffer is zeroed: no partial output.
//! - Requests up to [`SMALL_REQUEST_MAX`] bytes are served from a
//!   `BUF`-byte block of DRBG output (the type's third parameter, default
//!   [`BUFFER_LEN`]; firmware may choose a smaller one, which must exceed
//!   [`SMALL_REQUEST_MAX`]: a compile-time check); each byte is zeroed as it is
//!   handed out (fast key erasure), so neither the DRBG state nor the buffer
//!   lets anyone recover bytes already returned. The buffer is discarded
//!   (zeroed) at every reseed, so no byte handed out after a reseed was
//!   generated before it. Larger requests go straight to the DRBG in calls
//!   of at most 64 KiB per lane.
//! - Every reseed's additional input holds a reseed counter, (with `std`)
//!   the process id and the lane number, so a forked child's stream differs
//!   from its parent's even if both reseed from copies of the same pool
//!   state.

#[cfg(feature = "std")]
mod fork;

#[cfg(feature = "std")]
pub use fork::ForkDetection;

use core::fmt;

use rand_core::{TryCryptoRng, TryRng};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::drbg::{Drbg, HmacDrbg, MAX_REQUEST_LEN, MAX_RESEED_INTERVAL};
use crate::error::Error;

/// Full-entropy bytes for seeding and reseeding (implemented by the pool).
pub trait EntropySource {
    /// Fills all of `out` with full-entropy bytes.
    ///
    /// # Errors
    /// When the bytes cannot be supplied now (e.g. [`Error::Starving`],
    /// [`Error::ExternalLost`]); nothing in `out` may be used then.
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error>;
}

impl<S: EntropySource + ?Sized> EntropySource for &mut S {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        (**self).fill_full_entropy(out)
    }
}

/// Size of the output buffer that serves small requests (the default of
/// [`PoolRng`]'s `BUF` parameter): 16 KiB. Each refill ends with one
/// HMAC_DRBG update per lane (about 0.5 us on the bench machine), so the
/// buffer's size sets that cost per request: a 32-byte request cost 68 ns
/// with 2 KiB, 57 ns with 8 KiB and 54 ns with 16 KiB (fastest of many
/// batches, two lanes on SHA-NI, AMD family 0x17).
pub const BUFFER_LEN: usize = 16384;

/// Largest request served from the buffer; larger ones go to the DRBG.
pub const SMALL_REQUEST_MAX: usize = 256;

/// Entropy taken from the source per lane and (re)seed: 256 bits (the
/// associated [`PoolRng::SEED_LEN`] is the whole instantiation read).
const LANE_ENTROPY: usize = 32;
/// Nonce taken from the source at instantiation: 128 bits.
const NONCE_LEN: usize = 16;
/// Personalization string (domain separation), followed by the process id
/// and the lane number; v2 marks the layout with lanes.
const PERSONALIZATION: &[u8] = b"entropool PoolRng v2";
/// Most DRBG instances a generator interleaves (the largest `LANES` of
/// [`PoolRng`], and its default). Two, because more do not
/// pay: on SHA-NI two interleaved HMAC chains already keep the SHA unit
/// busy (45 ns per 32 bytes against 78 ns for one), and three or four ran
/// slower (49 and 54 ns: their state no longer fits the 16 vector
/// registers).
pub const MAX_LANES: usize = 2;
/// Source bytes per lane at instantiation.
const LANE_SEED: usize = LANE_ENTROPY + NONCE_LEN;

/// When [`PoolRng`] reseeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRngConfig {
    /// Reseed before a request once this many requests were served since
    /// the last reseed; `1..=2^48`.
    pub reseed_after_requests: u64,
    /// Reseed before a request once this many bytes were served since the
    /// last reseed; `1..=2^48`.
    pub reseed_after_bytes: u64,
    /// Reseed before every DRBG generate call (SP 800-90A prediction
    /// resistance); each call then costs 32 bytes of pool entropy per lane.
    pub prediction_resistance: bool,
}

impl PoolRngConfig {
    /// The defaults: reseed every 65536 requests or 16 MiB, no prediction
    /// resistance. (The number of lanes is [`PoolRng`]'s `LANES`
    /// parameter, not a setting: it decides how much state the generator
    /// holds.)
    pub const DEFAULT: Self = Self {
        reseed_after_requests: 1 << 16,
        reseed_after_bytes: 1 << 24,
        prediction_resistance: false,
    };

    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the first field out of its range
    /// (`1..=2^48` for the reseed limits).
    pub fn validate(&self) -> Result<(), Error> {
        for (param, value) in [
            ("reseed-after-requests", self.reseed_after_requests),
            ("reseed-after-bytes", self.reseed_after_bytes),
        ] {
            if value == 0 || value > MAX_RESEED_INTERVAL {
                return Err(Error::InvalidValue {
                    param,
                    value,
                    min: 1,
                    max: MAX_RESEED_INTERVAL,
                });
            }
        }
        Ok(())
    }
}

impl Default for PoolRngConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A DRBG ([`HmacDrbg`] by default) seeded and reseeded from an
/// [`EntropySource`]; see the [module doc](self) for its guarantees.
///
/// ```
/// use entropool::rng::{EntropySource, PoolRng, PoolRngConfig};
/// use rand_core::TryRng;
///
/// /// Stand-in for the pool: use a real full-entropy source in practice.
/// struct Fake(u8);
/// impl EntropySource for Fake {
///     fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), entropool::Error> {
///         out.fill(self.0);
///         self.0 = self.0.wrapping_add(1);
///         Ok(())
///     }
/// }
///
/// let mut rng = PoolRng::new(Fake(1), PoolRngConfig::default())?;
/// let mut key = [0u8; 32];
/// rng.fill(&mut key)?;
/// let word = rng.try_next_u64()?;
/// # let _ = word;
/// # Ok::<(), entropool::Error>(())
/// ```
///
/// `BUF` is the output buffer's length in bytes (default [`BUFFER_LEN`]):
/// small requests are cut from DRBG calls of `BUF` bytes, so it sets the
/// output stream, the generator's RAM and the work per refill. It must be
/// larger than [`SMALL_REQUEST_MAX`] (checked at compile time); firmware
/// short of RAM may pick e.g. 512.
///
/// `LANES` is the number of independent DRBG instances, 1 or 2 (checked
/// at compile time; default [`MAX_LANES`], 2). The generator holds exactly
/// `LANES` instances, so one lane costs one instance's RAM. Two cost twice
/// the pool entropy per (re)seed ([`Self::SEED_LEN`],
/// [`Self::RESEED_LEN`]) and run about 1.5 times as fast where the CPU
/// overlaps independent SHA-256 compressions (x86_64 with SHA-NI); on a
/// core without SHA instructions they only cost. The lane count is part
/// of the output stream: one lane and two give different bytes.
///
/// ```
/// use entropool::rng::{EntropySource, PoolRng, PoolRngConfig};
/// use entropool::HmacDrbg;
/// # struct Fake;
/// # impl EntropySource for Fake {
/// #     fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), entropool::Error> {
/// #         out.fill(7);
/// #         Ok(())
/// #     }
/// # }
/// // Firmware: one HMAC_DRBG lane and a 288-byte buffer.
/// type FirmwareRng = PoolRng<Fake, HmacDrbg, 288, 1>;
/// assert_eq!(FirmwareRng::SEED_LEN, 48);
/// let mut rng = FirmwareRng::with_drbg(Fake, PoolRngConfig::DEFAULT)?;
/// let mut nonce = [0u8; 12];
/// rng.fill(&mut nonce)?;
/// # Ok::<(), entropool::Error>(())
/// ```
///
/// Any other lane count does not compile:
///
/// ```compile_fail,E0080
/// # use entropool::rng::{EntropySource, PoolRng, PoolRngConfig};
/// # use entropool::HmacDrbg;
/// # struct Fake;
/// # impl EntropySource for Fake {
/// #     fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), entropool::Error> {
/// #         out.fill(7);
/// #         Ok(())
/// #     }
/// # }
/// let rng = PoolRng::<Fake, HmacDrbg, 288, 3>::with_drbg(Fake, PoolRngConfig::DEFAULT);
/// ```
pub struct PoolRng<
    S: EntropySource,
    D: Drbg = HmacDrbg,
    const BUF: usize = BUFFER_LEN,
    const LANES: usize = MAX_LANES,
> {
    source: S,
    /// The DRBG instances. Lane 0 fills the first half (rounded up) of
    /// each buffer and of each direct request, all of it with one lane;
    /// lane 1 the second halves.
    lanes: [D; LANES],
    config: PoolRngConfig,
    /// `buf[pos..]` is unused DRBG output; `buf[..pos]` is zero.
    buf: [u8; BUF],
    pos: usize,
    /// Requests and bytes served since the last reseed.
    requests: u64,
    bytes: u64,
    /// Reseeds so far (additional input of each reseed).
    reseeds: u64,
    /// A reseed was asked for (by `reseed_now`) and has not succeeded yet.
    reseed_pending: bool,
    #[cfg(feature = "std")]
    fork: fork::ForkGuard,
}

impl<S: EntropySource> PoolRng<S> {
    /// An HMAC_DRBG-backed generator seeded from `source`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a bad `config`; the source's error (e.g.
    /// [`Error::Starving`]) when it cannot supply the
    /// [`SEED_LEN`](Self::SEED_LEN) seed bytes (48 per lane) in one read.
    pub fn new(source: S, config: PoolRngConfig) -> Result<Self, Error> {
        Self::with_drbg(source, config)
    }
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> PoolRng<S, D, BUF, LANES> {
    /// Full-entropy bytes one instantiation takes from the source: 32 of
    /// entropy and 16 of nonce per lane (96 with the default two lanes).
    /// A caller that waits for its source to fill up waits for this many.
    pub const SEED_LEN: usize = LANE_SEED * LANES;

    /// Full-entropy bytes one reseed takes from the source: 32 per lane
    /// (64 with the default two lanes).
    pub const RESEED_LEN: usize = LANE_ENTROPY * LANES;

    /// A generator on DRBG mechanism `D` (e.g.
    /// [`HashDrbg`](crate::drbg::HashDrbg)), a `BUF`-byte output buffer
    /// and `LANES` lanes, seeded from `source`.
    ///
    /// # Errors
    /// As [`PoolRng::new`].
    pub fn with_drbg(mut source: S, config: PoolRngConfig) -> Result<Self, Error> {
        // A small request must fit the buffer with room to spare (at most
        // two passes in `fill_buffered`).
        const {
            assert!(
                BUF > SMALL_REQUEST_MAX,
                "PoolRng's BUF must exceed SMALL_REQUEST_MAX"
            )
        };
        // One lane or two: no generator with another count can be made,
        // so every method below sees 1 or 2.
        const {
            assert!(
                LANES >= 1 && LANES <= MAX_LANES,
                "PoolRng's LANES must be 1 or 2"
            )
        };
        config.validate()?;
        let mut seed = [0u8; LANE_SEED * MAX_LANES];
        // `Self::SEED_LEN <= seed.len()` (checked above): the slice is never
        // short; were it empty, the instantiation below would fail
        // (entropy too short), never panic.
        let filled = source.fill_full_entropy(seed.get_mut(..Self::SEED_LEN).unwrap_or_default());
        if let Err(e) = filled {
            seed.zeroize();
            return Err(e);
        }
        #[cfg(feature = "std")]
        let fork = fork::ForkGuard::new();
        #[cfg(feature = "std")]
        let pid = fork.mark().pid;
        #[cfg(not(feature = "std"))]
        let pid = 0u32;
        let lanes = Self::instantiate_lanes(&seed, pid);
        seed.zeroize();
        Ok(Self {
            source,
            lanes: lanes?,
            config,
            buf: [0; BUF],
            pos: BUF,
            requests: 0,
            bytes: 0,
            reseeds: 0,
            reseed_pending: false,
            #[cfg(feature = "std")]
            fork,
        })
    }

    /// Instantiates the `LANES` lanes, lane `i` from the `i`-th 48 bytes of
    /// `seed`. Not inlined: it runs once per generator, and inlined into a
    /// firmware's `main` it cost 0.2 KiB (one lane) to 0.8 KiB (two lanes)
    /// of flash at opt-level "s".
    #[inline(never)]
    fn instantiate_lanes(seed: &[u8], pid: u32) -> Result<[D; LANES], Error> {
        let mut lanes = heapless::Vec::<D, LANES>::new();
        for (lane, lane_seed) in seed.chunks_exact(LANE_SEED).take(LANES).enumerate() {
            let lane = u8::try_from(lane).unwrap_or(u8::MAX);
            // Cannot be full: at most `LANES` are pushed.
            let _ = lanes.push(Self::instantiate_lane(lane_seed, pid, lane)?);
        }
        // Short only if `seed` held fewer than `LANES` lanes' bytes, which
        // the callers' buffer rules out.
        lanes.into_array().map_err(|_| Error::DrbgEntropyTooShort)
    }

    /// Instantiates one lane from its 48 seed bytes (entropy, then nonce),
    /// personalized with the process id and the lane number.
    fn instantiate_lane(seed: &[u8], pid: u32, lane: u8) -> Result<D, Error> {
        let (entropy, nonce) = seed.split_at_checked(LANE_ENTROPY).unwrap_or_default();
        let mut personalization = [0u8; PERSONALIZATION.len() + 5];
        for (dst, src) in personalization.iter_mut().zip(
            PERSONALIZATION
                .iter()
                .chain(pid.to_be_bytes().iter())
                .chain([lane].iter()),
        ) {
            *dst = *src;
        }
        D::instantiate(entropy, nonce, &personalization)
    }

    /// Fills `out` with DRBG output (any length).
    ///
    /// # Errors
    /// [`Error::DrbgReseedUnavailable`] when a reseed is due and the source
    /// cannot supply it; a DRBG error otherwise (not expected). On error
    /// `out` is zeroed.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let result = self.fill_inner(out);
        if result.is_err() {
            out.zeroize();
        }
        result
    }

    /// Reseeds from the source now and discards the buffered output.
    ///
    /// # Errors
    /// The source's error. The reseed then stays due: requests fail with
    /// [`Error::DrbgReseedUnavailable`] until a reseed succeeds.
    pub fn reseed_now(&mut self) -> Result<(), Error> {
        self.reseed_pending = true;
        self.reseed()
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &PoolRngConfig {
        &self.config
    }

    /// The entropy source (e.g. to poll the pool).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Detects forks by comparing process ids from `pid_source` (instead of
    /// `std::process::id`) on every request, for tests that simulate a fork
    /// and for sandboxes that know another way. Records the new source's
    /// current id; a fork the previous detector can still see stays
    /// pending.
    #[cfg(feature = "std")]
    pub fn set_pid_source(&mut self, pid_source: fn() -> u32) {
        self.fork.set_source(pid_source);
    }

    /// Chooses how forks are noticed (see [`ForkDetection`]; the default is
    /// [`ForkDetection::WipeOnFork`] where the kernel provides it, else
    /// [`ForkDetection::ProcessId`]). Returns the detection in force:
    /// [`ForkDetection::ProcessId`] when the wipe-on-fork page or the
    /// atfork handler cannot be had. A fork before the switch is not lost.
    #[cfg(feature = "std")]
    pub fn set_fork_detection(&mut self, how: ForkDetection) -> ForkDetection {
        self.fork.set_detection(how)
    }

    /// How forks are noticed now.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn fork_detection(&self) -> ForkDetection {
        self.fork.detection()
    }

    fn fill_inner(&mut self, out: &mut [u8]) -> Result<(), Error> {
        // A fork forces the reseed below, which discards the buffer first
        // (even when it fails).
        #[cfg(feature = "std")]
        if self.fork.changed() {
            self.reseed_pending = true;
        }
        if self.reseed_pending
            || self.requests >= self.config.reseed_after_requests
            || self.bytes >= self.config.reseed_after_bytes
        {
            self.reseed_pending = true;
            self.reseed().map_err(|_| Error::DrbgReseedUnavailable)?;
        }
        if self.config.prediction_resistance || out.len() > SMALL_REQUEST_MAX {
            self.fill_direct(out)?;
        } else {
            self.fill_buffered(out)?;
        }
        self.requests = self.requests.saturating_add(1);
        self.bytes = self.bytes.saturating_add(out.len() as u64);
        Ok(())
    }

    /// Straight from the DRBG, in calls of at most 64 KiB per lane.
    fn fill_direct(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let chunk_len = MAX_REQUEST_LEN.saturating_mul(LANES);
        for chunk in out.chunks_mut(chunk_len) {
            if self.config.prediction_resistance {
                self.reseed_pending = true;
                self.reseed().map_err(|_| Error::DrbgReseedUnavailable)?;
            }
            Self::generate_lanes(&mut self.lanes, chunk)?;
        }
        Ok(())
    }

    /// One generate call per lane: lane 0 fills the first half of `out`
    /// (rounded up), lane 1 the rest; with one lane, lane 0 fills it all.
    fn generate_lanes(lanes: &mut [D; LANES], out: &mut [u8]) -> Result<(), Error> {
        match lanes.as_mut_slice() {
            [drbg] => drbg.generate(out, &[]),
            [drbg, second] => {
                let (first_half, second_half) = out.split_at_mut(out.len().div_ceil(2));
                drbg.generate_pair(second, first_half, second_half, &[])
            }
            // No generator has another count (`with_drbg`'s compile-time
            // check); with no lane, as in `instantiate_lanes`, no lane was
            // given entropy.
            _ => Err(Error::DrbgEntropyTooShort),
        }
    }

    /// From the buffer, refilling it when it runs dry; bytes handed out are
    /// zeroed in the buffer.
    fn fill_buffered(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let mut rest = out;
        // At most two passes: `rest.len() <= SMALL_REQUEST_MAX < BUF`.
        for _ in 0..3 {
            if rest.is_empty() {
                return Ok(());
            }
            if self.pos >= BUF {
                // The whole buffer is about to hold output: `pos` says so
                // first, so a discard after a failure wipes all of it.
                self.pos = 0;
                let generated = Self::generate_lanes(&mut self.lanes, &mut self.buf);
                if let Err(e) = generated {
                    // A lane may have written its half: none of it is used.
                    self.discard_buffer();
                    return Err(e);
                }
            }
            let avail = self.buf.get_mut(self.pos..).unwrap_or_default();
            let n = avail.len().min(rest.len());
            let Some((now, later)) = core::mem::take(&mut rest).split_at_mut_checked(n) else {
                break;
            };
            let taken = avail.get_mut(..n).unwrap_or_default();
            if let (Ok(d), Ok(s)) = (
                <&mut [u8; 32]>::try_from(&mut *now),
                <&mut [u8; 32]>::try_from(&mut *taken),
            ) {
                // The common 32-byte request as two fixed-size moves.
                *d = *s;
                *s = [0; 32];
            } else {
                for (dst, src) in now.iter_mut().zip(taken.iter_mut()) {
                    *dst = *src;
                    *src = 0;
                }
            }
            self.pos = self.pos.saturating_add(n);
            rest = later;
        }
        // Unreachable: a request of at most SMALL_REQUEST_MAX bytes is done
        // within two passes; refuse rather than return a partial fill.
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Error::DrbgRequestTooLarge)
        }
    }

    /// Zeroes the unused output and marks the buffer empty. Only
    /// `buf[pos..]` can be nonzero: every byte before `pos` was zeroed as
    /// it was handed out, and a refill sets `pos` to 0 before it writes.
    /// (A 16 KiB wipe at every reseed would otherwise cost each request
    /// made with prediction resistance, which never uses the buffer.)
    fn discard_buffer(&mut self) {
        Self::wipe_unused(&mut self.buf, self.pos);
        self.pos = BUF;
    }

    /// Zeroes `buf[pos..]` (all of `buf` if `pos` were past its end, which
    /// no path allows).
    fn wipe_unused(buf: &mut [u8; BUF], pos: usize) {
        match buf.get_mut(pos..) {
            Some(unused) => unused.zeroize(),
            None => buf.zeroize(),
        }
    }

    /// Reseeds from the source; clears `reseed_pending` on success.
    fn reseed(&mut self) -> Result<(), Error> {
        self.discard_buffer();
        let mut entropy = [0u8; LANE_ENTROPY * MAX_LANES];
        // As at instantiation: `RESEED_LEN <= entropy.len()`; an empty
        // slice would fail the reseed below.
        let filled = self
            .source
            .fill_full_entropy(entropy.get_mut(..Self::RESEED_LEN).unwrap_or_default());
        if let Err(e) = filled {
            entropy.zeroize();
            return Err(e);
        }
        // Taken before the reseed: a fork from here on is still seen.
        #[cfg(feature = "std")]
        let mark = self.fork.mark();
        #[cfg(feature = "std")]
        let pid = mark.pid;
        #[cfg(not(feature = "std"))]
        let pid = 0u32;
        let mut reseeded = Ok(());
        let mut lane_entropy = entropy.chunks_exact(LANE_ENTROPY);
        for (lane, drbg) in self.lanes.iter_mut().enumerate() {
            let mut additional = [0u8; 13];
            let lane = u8::try_from(lane).unwrap_or(u8::MAX);
            for (dst, src) in additional.iter_mut().zip(
                self.reseeds
                    .to_be_bytes()
                    .iter()
                    .chain(pid.to_be_bytes().iter())
                    .chain([lane].iter()),
            ) {
                *dst = *src;
            }
            // Every lane is offered its reseed; if any lane's fails, the
            // reseed stays due (the others may already be reseeded, which
            // is harmless: the next attempt reseeds them again).
            reseeded =
                reseeded.and(drbg.reseed(lane_entropy.next().unwrap_or_default(), &additional));
        }
        entropy.zeroize();
        reseeded?;
        #[cfg(feature = "std")]
        self.fork.record(mark);
        self.reseeds = self.reseeds.wrapping_add(1);
        self.requests = 0;
        self.bytes = 0;
        self.reseed_pending = false;
        Ok(())
    }
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> TryRng
    for PoolRng<S, D, BUF, LANES>
{
    type Error = Error;

    fn try_next_u32(&mut self) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        self.fill(dst)
    }
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> TryCryptoRng
    for PoolRng<S, D, BUF, LANES>
{
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> Drop
    for PoolRng<S, D, BUF, LANES>
{
    fn drop(&mut self) {
        // The DRBG wipes itself on drop; `buf[..pos]` is already zero.
        Self::wipe_unused(&mut self.buf, self.pos);
    }
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> ZeroizeOnDrop
    for PoolRng<S, D, BUF, LANES>
{
}

impl<S: EntropySource, D: Drbg, const BUF: usize, const LANES: usize> fmt::Debug
    for PoolRng<S, D, BUF, LANES>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolRng { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl EntropySource for Counter {
        fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
            out.fill(self.0);
            self.0 = self.0.wrapping_add(1);
            Ok(())
        }
    }

    /// A one-lane generator holds one DRBG instance and no room for a
    /// second: two lanes cost exactly one more instance, for both
    /// mechanisms, and one lane is the instance, the buffer and the
    /// bookkeeping (no `Option<D>` or other second-lane state).
    #[test]
    fn one_lane_holds_one_lanes_state() {
        use crate::drbg::HashDrbg;
        use core::mem::size_of;
        type One<D> = PoolRng<Counter, D, 288, 1>;
        type Two<D> = PoolRng<Counter, D, 288, 2>;
        assert_eq!(
            size_of::<Two<HmacDrbg>>() - size_of::<One<HmacDrbg>>(),
            size_of::<HmacDrbg>()
        );
        assert_eq!(
            size_of::<Two<HashDrbg>>() - size_of::<One<HashDrbg>>(),
            size_of::<HashDrbg>()
        );
        // The same generator without its lanes: one lane adds one instance.
        let bare = size_of::<PoolRng<Counter, HmacDrbg, 288, 1>>() - size_of::<HmacDrbg>();
        assert!(
            bare < size_of::<HmacDrbg>() + 288,
            "a one-lane PoolRng holds {bare} bytes besides its lane"
        );
        // The default is two lanes.
        assert_eq!(
            size_of::<PoolRng<Counter>>(),
            size_of::<PoolRng<Counter, HmacDrbg, BUFFER_LEN, 2>>()
        );
        assert_eq!(PoolRng::<Counter, HmacDrbg, 288, 1>::SEED_LEN, 48);
        assert_eq!(PoolRng::<Counter, HmacDrbg, 288, 1>::RESEED_LEN, 32);
        assert_eq!(PoolRng::<Counter>::SEED_LEN, 96);
        assert_eq!(PoolRng::<Counter>::RESEED_LEN, 64);
    }

    /// Fast key erasure: bytes handed out are zero in the buffer, the rest
    /// is untouched output; a reseed wipes the whole buffer.
    #[test]
    fn handed_out_bytes_are_zeroed() {
        let mut rng = PoolRng::new(Counter(1), PoolRngConfig::DEFAULT).unwrap();
        let mut out = [0u8; 100];
        rng.fill(&mut out).unwrap();
        assert_eq!(rng.pos, 100);
        assert!(rng.buf[..100].iter().all(|&b| b == 0));
        // BUFFER_LEN - 100 = 16284 bytes of DRBG output remain: all-zero
        // has odds 2^-130272.
        assert!(rng.buf[100..].iter().any(|&b| b != 0));
        for _ in 0..(BUFFER_LEN / 100) {
            rng.fill(&mut out).unwrap();
        }
        assert_eq!(rng.pos, (BUFFER_LEN / 100 + 1) * 100 - BUFFER_LEN);
        assert!(rng.buf[..rng.pos].iter().all(|&b| b == 0));
        rng.reseed_now().unwrap();
        assert!(rng.buf.iter().all(|&b| b == 0));
        assert_eq!(rng.pos, BUFFER_LEN);
    }

    /// A discarded buffer is all zero: after a fork (the reseed the fork
    /// forces discards the unused output, once), and under prediction
    /// resistance (whose reseeds and requests never fill the buffer).
    #[cfg(feature = "std")]
    #[test]
    fn a_discarded_buffer_is_all_zero() {
        use core::sync::atomic::{AtomicU32, Ordering};
        static PID: AtomicU32 = AtomicU32::new(1);
        let mut rng = PoolRng::new(Counter(1), PoolRngConfig::DEFAULT).unwrap();
        rng.set_pid_source(|| PID.load(Ordering::Relaxed));
        let mut out = [0u8; 100];
        rng.fill(&mut out).unwrap();
        assert!(rng.buf[100..].iter().any(|&b| b != 0));
        // A "fork", then a request served straight from the DRBG: the
        // buffer is discarded and not refilled.
        PID.store(2, Ordering::Relaxed);
        let mut large = [0u8; SMALL_REQUEST_MAX + 1];
        rng.fill(&mut large).unwrap();
        assert_eq!(rng.reseeds, 1);
        assert_eq!(rng.pos, BUFFER_LEN);
        assert!(rng.buf.iter().all(|&b| b == 0));

        let config = PoolRngConfig {
            prediction_resistance: true,
            ..PoolRngConfig::DEFAULT
        };
        let mut rng = PoolRng::<_, HmacDrbg, 288, 1>::with_drbg(Counter(1), config).unwrap();
        for _ in 0..3 {
            rng.fill(&mut out).unwrap();
            assert_eq!(rng.pos, 288);
            assert!(rng.buf.iter().all(|&b| b == 0));
        }
        assert_eq!(rng.reseeds, 3);
    }
}
