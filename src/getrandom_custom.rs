//! getrandom 0.3's custom backend routed to a global pool-backed generator
//! (feature `getrandom-custom`), for firmware images.
//!
//! Contract: with this feature the crate defines the symbol
//! `__getrandom_v03_custom` that getrandom 0.3 calls when built with
//! `--cfg getrandom_backend="custom"`. Every `getrandom::fill` (and
//! everything built on it: `rand`, hash-map seeds, key generation) is then
//! served by the generator registered with [`register`], normally a
//! [`PoolRng`](crate::rng::PoolRng) over the pool.
//! - Before registration, or if the generator fails (e.g.
//!   [`Error::DrbgReseedUnavailable`]), getrandom returns
//!   `getrandom::Error::new_custom(code)`, `code` being the [`Error::code`]
//!   (`506` = not registered); nothing is ever returned unfilled as success.
//! - The generator sits behind one atomic state (no OS lock). A second
//!   caller while it is in use waits its turn: with `std`, a short spin and
//!   then `yield_now` between tries, for up to [`WAIT_LIMIT`] (concurrent
//!   threads all succeed); without `std`, a short bounded spin only
//!   ([`NO_STD_SPINS`]), since on one core a busy slot is a re-entrant
//!   call (an interrupt handler) that cannot be freed while it spins. Only
//!   past that bound does it get [`Error::GetrandomBusy`] (code `507`). A
//!   call from inside the generator itself (re-entry) gets it at once.
//! - A panic inside the generator (with unwinding) never leaves the slot
//!   busy: a guard unregisters the generator as the panic passes (its state
//!   may be half-updated, so it is never used again) and getrandom fails
//!   with code `506` until a generator is registered again.
//! - Registration happens once; [`unregister`] gives the generator back.
//! - The symbol is defined only with this feature; the firmware must not
//!   define its own `__getrandom_v03_custom` as well (a duplicate-symbol
//!   link error), and must build with `--cfg getrandom_backend="custom"`
//!   (otherwise getrandom uses its OS backend and ignores this one).
//!
//! This is the only place besides the hardware and ring modules with
//! `unsafe`: the exported symbol (raw pointer from getrandom) and the
//! global slot (an `UnsafeCell` guarded by the atomic state).
//!
//! # Example: a firmware image
//!
//! `Cargo.toml`: `entropool = { version = "0.1", features = ["getrandom-custom"] }`
//! and `getrandom = "0.3"`; `.cargo/config.toml`:
//! `[build] rustflags = ['--cfg', 'getrandom_backend="custom"']`.
//!
//! ```no_run
//! use entropool::Error;
//! use entropool::rng::{EntropySource, PoolRng, PoolRngConfig};
//!
//! /// The firmware's full-entropy source (in practice: the pool).
//! struct Pool;
//! impl EntropySource for Pool {
//!     fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
//!         # out.fill(7); Ok(())
//!         // e.g. pool.fill(out)
//!     }
//! }
//!
//! fn init_random() -> Result<(), Error> {
//!     let rng = PoolRng::new(Pool, PoolRngConfig::DEFAULT)?;
//!     // Any way to get a `&'static mut` works: `Box::leak` with an
//!     // allocator, `static_cell::StaticCell`, `cortex_m::singleton!`.
//!     let rng: &'static mut PoolRng<Pool> = Box::leak(Box::new(rng));
//!     entropool::getrandom_custom::register(rng).map_err(|_| Error::GetrandomBusy)?;
//!     Ok(())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     init_random()?;
//!     let mut key = [0u8; 32];
//!     // Served by the PoolRng registered above.
//!     getrandom::fill(&mut key)?;
//!     Ok(())
//! }
//! ```
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};
#[cfg(feature = "std")]
use core::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

use rand_core::TryCryptoRng;

use crate::error::Error;

/// What can be registered: any cryptographic generator with our error type
/// that may move between threads, e.g. `PoolRng<S>` with `S: Send`.
pub type GlobalRng = dyn TryCryptoRng<Error = Error> + Send;

/// No generator registered.
const EMPTY: u8 = 0;
/// One caller holds the slot exclusively.
const BUSY: u8 = 1;
/// A generator is registered and free.
const READY: u8 = 2;

/// Spins between tries before a `yield_now` (std).
#[cfg(feature = "std")]
const SPINS_PER_ROUND: u32 = 64;
/// Longest wait for a busy slot (std).
#[cfg(feature = "std")]
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);
/// Tries of a busy slot without std before [`Error::GetrandomBusy`].
pub const NO_STD_SPINS: u32 = 256;

#[cfg(feature = "std")]
std::thread_local! {
    /// This thread holds the slot: a call from inside the generator
    /// (re-entry) is refused at once instead of waiting for itself.
    static HOLDING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Marks whether this thread holds the slot (std only).
fn set_holding(_held: bool) {
    #[cfg(feature = "std")]
    HOLDING.with(|h| h.set(_held));
}

/// Whether this thread holds the slot already (always `false` without
/// std, where the bounded spin ends a re-entrant call).
fn holding() -> bool {
    #[cfg(feature = "std")]
    {
        HOLDING.with(core::cell::Cell::get)
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

/// The global generator and the state that guards it.
struct RngCell {
    state: AtomicU8,
    rng: UnsafeCell<Option<&'static mut GlobalRng>>,
}

// SAFETY: `rng` is accessed only by the caller that moved `state` to BUSY
// with a successful compare_exchange (in `register`, `unregister` and
// `with_rng`), so accesses never overlap; the value is `Send`, so handing it
// from one thread to another through the slot is sound.
unsafe impl Sync for RngCell {}

static SLOT: RngCell = RngCell {
    state: AtomicU8::new(EMPTY),
    rng: UnsafeCell::new(None),
};

/// Registers the generator that serves getrandom from now on.
///
/// # Errors
/// Gives `rng` back when a generator is already registered (or the slot is
/// busy).
pub fn register(rng: &'static mut GlobalRng) -> Result<(), &'static mut GlobalRng> {
    // Acquire pairs with the Release store of `unregister`.
    if SLOT
        .state
        .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err(rng);
    }
    // SAFETY: the compare_exchange above moved EMPTY to BUSY, so this caller
    // has exclusive access to `rng` until it stores READY.
    unsafe {
        *SLOT.rng.get() = Some(rng);
    }
    // Release publishes the write above to the next Acquire of READY.
    SLOT.state.store(READY, Ordering::Release);
    Ok(())
}

/// Takes the registered generator back; getrandom fails with code 506 after.
///
/// # Errors
/// [`Error::GetrandomNotRegistered`] when none is registered,
/// [`Error::GetrandomBusy`] when it is in use now.
pub fn unregister() -> Result<&'static mut GlobalRng, Error> {
    acquire()?;
    // SAFETY: `acquire` moved READY to BUSY: exclusive access until the store.
    let taken = unsafe { (*SLOT.rng.get()).take() };
    // Release pairs with the Acquire in `register`.
    SLOT.state.store(EMPTY, Ordering::Release);
    taken.ok_or(Error::GetrandomNotRegistered)
}

/// Whether a generator is registered (it may be busy).
#[must_use]
pub fn is_registered() -> bool {
    SLOT.state.load(Ordering::Acquire) != EMPTY
}

/// Fills `dest` from the registered generator: what getrandom calls.
///
/// # Errors
/// [`Error::GetrandomNotRegistered`], [`Error::GetrandomBusy`], or the
/// generator's error (then `dest` is zeroed).
pub fn fill(dest: &mut [u8]) -> Result<(), Error> {
    acquire_waiting()?;
    set_holding(true);
    let guard = Held;
    // SAFETY: `acquire_waiting` moved READY to BUSY: exclusive access until
    // `guard` releases the slot.
    let slot = unsafe { &mut *SLOT.rng.get() };
    let result = match slot {
        Some(rng) => rng.try_fill_bytes(dest),
        None => Err(Error::GetrandomNotRegistered),
    };
    // Release publishes the generator's new state to the next caller.
    guard.release();
    if result.is_err() {
        dest.fill(0);
    }
    result
}

/// The slot held by this caller. Released with [`Held::release`]; dropped
/// without it (a panic unwinding through the generator) it unregisters the
/// generator instead, so the slot is never left busy and a half-updated
/// generator is never used again.
struct Held;

impl Held {
    fn release(self) {
        core::mem::forget(self);
        set_holding(false);
        SLOT.state.store(READY, Ordering::Release);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: this guard exists only while this caller holds the slot
        // (state BUSY), so the access is exclusive.
        unsafe {
            *SLOT.rng.get() = None;
        }
        set_holding(false);
        // Release pairs with the Acquire in `register`.
        SLOT.state.store(EMPTY, Ordering::Release);
    }
}

/// As [`acquire`], waiting for a busy slot (see the module documentation).
fn acquire_waiting() -> Result<(), Error> {
    if holding() {
        return Err(Error::GetrandomBusy);
    }
    #[cfg(feature = "std")]
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match acquire() {
            Err(Error::GetrandomBusy) => {}
            other => return other,
        }
        spins = spins.saturating_add(1);
        core::hint::spin_loop();
        #[cfg(feature = "std")]
        if spins % SPINS_PER_ROUND == 0 {
            if start.elapsed() >= WAIT_LIMIT {
                return Err(Error::GetrandomBusy);
            }
            std::thread::yield_now();
        }
        #[cfg(not(feature = "std"))]
        if spins >= NO_STD_SPINS {
            return Err(Error::GetrandomBusy);
        }
    }
}

/// Moves the slot from READY to BUSY, or says why it cannot.
fn acquire() -> Result<(), Error> {
    // Acquire pairs with the Release stores of `register` and `fill`.
    match SLOT
        .state
        .compare_exchange(READY, BUSY, Ordering::Acquire, Ordering::Relaxed)
    {
        Ok(_) => Ok(()),
        Err(EMPTY) => Err(Error::GetrandomNotRegistered),
        Err(_) => Err(Error::GetrandomBusy),
    }
}

/// getrandom 0.3's custom backend entry point.
///
/// # Safety
/// getrandom guarantees that `dest` is valid for writes of `len` bytes
/// (possibly uninitialized) and not aliased during the call.
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), getrandom::Error> {
    if len == 0 {
        return Ok(());
    }
    if dest.is_null() {
        return Err(getrandom::Error::UNEXPECTED);
    }
    // SAFETY: getrandom's contract: `dest` is non-null (checked above) and
    // valid for writes of `len` bytes with no other reference to them;
    // `write_bytes` initializes all `len` bytes, so the `&mut [u8]` made
    // after it covers initialized memory that nothing else aliases.
    let buf = unsafe {
        core::ptr::write_bytes(dest, 0, len);
        core::slice::from_raw_parts_mut(dest, len)
    };
    fill(buf).map_err(|e| getrandom::Error::new_custom(e.code()))
}
