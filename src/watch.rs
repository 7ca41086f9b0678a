//! Time, and the *external entropy lost* timer.
//!
//! # Contract
//!
//! - Time comes from a [`Clock`] the caller gives: monotonic milliseconds
//!   from any origin. Nothing here reads a clock by itself, blocks, sleeps
//!   or spins; every function is O(1).
//! - **Counting time.** The timer keeps the last clock reading it saw. A
//!   reading at or after it adds the difference to the time waited; a
//!   reading before it (a clock that stepped backwards, or a wrapped
//!   counter) adds nothing and becomes the new reference, so counting
//!   resumes from there. Time waited only grows (saturating at
//!   `u64::MAX`), and only an external submission resets it. No
//!   arithmetic anywhere can overflow.
//! - **The timer** starts when the pool starts ([`ExternalLostTimer::new`])
//!   and restarts at every accepted external submission
//!   ([`ExternalLostTimer::on_external`]). Before the first submission the
//!   time waited counts from the start: a feeder that never shows up is
//!   lost too, once the timeout has passed.
//! - **External lost** holds exactly when the sources include external and
//!   the time waited is *greater than* the timeout
//!   (external-entropy-lost-timeout, changeable at run time; a change
//!   applies to the time already waited). A timeout of `u64::MAX` ms never
//!   expires; a timeout of 0 means lost after any time at all without
//!   entropy. Fresh external entropy ends the state at once.
//! - **Output.** When both caches are empty, output fails with
//!   [`Error::ExternalLost`] if external is lost and the only source, and
//!   with [`Error::Starving`] otherwise ([`output_error`]). While blocks
//!   remain in either cache they are served as usual.

use crate::error::Error;
use crate::source::{Source, SourceMask};

/// A monotonic clock in milliseconds.
///
/// Readings should never decrease; if they do, the timer counts the step
/// as no time passing.
pub trait Clock {
    /// Milliseconds since an origin of the clock's choosing.
    fn now_ms(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The system's monotonic clock (`std::time::Instant`), counting from when
/// it was made.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: std::time::Instant,
}

#[cfg(feature = "std")]
impl SystemClock {
    /// A clock reading 0 now.
    #[must_use]
    pub fn new() -> Self {
        SystemClock {
            origin: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "std")]
impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // Saturates after 584 million years.
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to: for deterministic tests of this
/// and other modules. Shareable between threads (`&FakeClock` is a
/// [`Clock`]). Built on targets with 64-bit atomics (every host target).
#[cfg(all(any(test, feature = "testing"), target_has_atomic = "64"))]
#[derive(Debug, Default)]
pub struct FakeClock {
    now: core::sync::atomic::AtomicU64,
}

#[cfg(all(any(test, feature = "testing"), target_has_atomic = "64"))]
impl FakeClock {
    /// A clock reading `start_ms`.
    #[must_use]
    pub const fn new(start_ms: u64) -> Self {
        FakeClock {
            now: core::sync::atomic::AtomicU64::new(start_ms),
        }
    }

    /// Set the reading (it may go backwards, to test that case).
    pub fn set(&self, ms: u64) {
        // SeqCst: a test clock; order with everything, speed is irrelevant.
        self.now.store(ms, core::sync::atomic::Ordering::SeqCst);
    }

    /// Move the reading forward by `ms`, saturating at `u64::MAX`.
    pub fn advance(&self, ms: u64) {
        use core::sync::atomic::Ordering::SeqCst;
        // `fetch_update` retries only if another thread moved the clock in
        // between; the closure always returns `Some`, so it cannot fail.
        let _ = self
            .now
            .fetch_update(SeqCst, SeqCst, |t| Some(t.saturating_add(ms)));
    }
}

#[cfg(all(any(test, feature = "testing"), target_has_atomic = "64"))]
impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now.load(core::sync::atomic::Ordering::SeqCst)
    }
}

/// The error for output when both caches are empty: [`Error::ExternalLost`]
/// when external entropy is lost and external is the only source,
/// [`Error::Starving`] otherwise.
#[must_use]
pub const fn output_error(lost: bool, external_only: bool) -> Error {
    if lost && external_only {
        Error::ExternalLost
    } else {
        Error::Starving
    }
}

/// A snapshot of the timer for status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalStatus {
    /// The sources include external, so the timer matters.
    pub watching: bool,
    /// External is the only source.
    pub external_only: bool,
    /// In the *external lost* state.
    pub lost: bool,
    /// Milliseconds since the last accepted external submission; `None`
    /// before the first one.
    pub ms_since_last: Option<u64>,
    /// Milliseconds the timer has run: since the last submission, or since
    /// the start when none has arrived.
    pub ms_waiting: u64,
    /// The timeout in milliseconds.
    pub timeout_ms: u64,
}

/// The *external entropy lost* timer (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalLostTimer {
    watching: bool,
    external_only: bool,
    timeout_ms: u64,
    /// The last clock reading seen.
    reference_ms: u64,
    /// Time counted since the start or the last submission.
    waited_ms: u64,
    /// Whether any external entropy has arrived since the start.
    received: bool,
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))] // some methods serve tests only
impl ExternalLostTimer {
    /// A timer started at `now_ms` for the (resolved) `sources`, with a
    /// timeout of `timeout_secs` seconds (saturating to milliseconds).
    #[must_use]
    pub const fn new(sources: SourceMask, timeout_secs: u64, now_ms: u64) -> Self {
        ExternalLostTimer {
            watching: sources.contains(Source::External),
            external_only: sources.value() == Source::External.bit(),
            timeout_ms: timeout_secs.saturating_mul(1000),
            reference_ms: now_ms,
            waited_ms: 0,
            received: false,
        }
    }

    /// Fold the clock reading `now_ms` in (see the module documentation for
    /// how a backwards step counts).
    pub const fn observe(&mut self, now_ms: u64) {
        let step = now_ms.saturating_sub(self.reference_ms);
        self.waited_ms = self.waited_ms.saturating_add(step);
        self.reference_ms = now_ms;
    }

    /// An external submission was accepted at `now_ms`: restart the timer,
    /// ending the lost state.
    pub const fn on_external(&mut self, now_ms: u64) {
        self.observe(now_ms);
        self.waited_ms = 0;
        self.received = true;
    }

    /// Change the timeout to `secs` seconds (saturating); it applies to the
    /// time already waited.
    pub const fn set_timeout_secs(&mut self, secs: u64) {
        self.timeout_ms = secs.saturating_mul(1000);
    }

    /// Change the timeout to `ms` milliseconds.
    pub const fn set_timeout_ms(&mut self, ms: u64) {
        self.timeout_ms = ms;
    }

    /// The timeout in milliseconds.
    #[must_use]
    pub const fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Whether the sources include external.
    #[must_use]
    pub const fn watching(&self) -> bool {
        self.watching
    }

    /// Whether external is the only source.
    #[must_use]
    pub const fn external_only(&self) -> bool {
        self.external_only
    }

    /// Whether the timer is in *external lost* as of the last reading
    /// observed.
    #[must_use]
    pub const fn lost(&self) -> bool {
        self.watching && self.waited_ms > self.timeout_ms
    }

    /// Observe `now_ms`, then say whether external entropy is lost.
    pub const fn is_lost(&mut self, now_ms: u64) -> bool {
        self.observe(now_ms);
        self.lost()
    }

    /// Observe `now_ms`, then give the milliseconds since the last accepted
    /// external submission (`None` before the first).
    pub const fn ms_since_last(&mut self, now_ms: u64) -> Option<u64> {
        self.observe(now_ms);
        if self.received {
            Some(self.waited_ms)
        } else {
            None
        }
    }

    /// Observe `now_ms`, then give the milliseconds the timer has run
    /// (since the last submission, or since the start).
    pub const fn ms_waiting(&mut self, now_ms: u64) -> u64 {
        self.observe(now_ms);
        self.waited_ms
    }

    /// Observe `now_ms`, then give the error for output from empty caches
    /// ([`output_error`]).
    pub const fn empty_caches_error(&mut self, now_ms: u64) -> Error {
        output_error(self.is_lost(now_ms), self.external_only)
    }

    /// Observe `now_ms`, then give a snapshot for status output.
    pub const fn status(&mut self, now_ms: u64) -> ExternalStatus {
        self.observe(now_ms);
        ExternalStatus {
            watching: self.watching,
            external_only: self.external_only,
            lost: self.lost(),
            ms_since_last: if self.received {
                Some(self.waited_ms)
            } else {
                None
            },
            ms_waiting: self.waited_ms,
            timeout_ms: self.timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backwards_step_rebases() {
        let mut t = ExternalLostTimer::new(SourceMask::of(&[Source::External]), 1, 100);
        assert_eq!(t.ms_waiting(600), 500);
        assert_eq!(t.ms_waiting(50), 500, "a backwards step adds nothing");
        assert_eq!(t.ms_waiting(60), 510, "and counting resumes from it");
        assert!(!t.is_lost(50 + 500));
        assert!(t.is_lost(50 + 501));
        assert_eq!(t.ms_since_last(551), None);
        t.on_external(552);
        assert!(!t.lost());
        assert_eq!(t.ms_since_last(552), Some(0));
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let mut t = ExternalLostTimer::new(SourceMask::of(&[Source::External]), u64::MAX, 0);
        assert_eq!(t.timeout_ms(), u64::MAX);
        assert_eq!(t.ms_waiting(u64::MAX), u64::MAX);
        t.observe(0);
        assert_eq!(t.ms_waiting(u64::MAX), u64::MAX);
        assert!(!t.lost(), "a timeout of u64::MAX ms never expires");
        t.set_timeout_ms(u64::MAX - 1);
        assert!(t.lost());
    }

    #[cfg(feature = "std")]
    #[test]
    fn system_clock_does_not_go_backwards() {
        let c = SystemClock::new();
        let mut last = c.now_ms();
        for _ in 0..1000 {
            let now = c.now_ms();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn fake_clock_moves_when_told() {
        let c = FakeClock::new(5);
        c.advance(10);
        assert_eq!(Clock::now_ms(&&c), 15);
        c.advance(u64::MAX);
        assert_eq!(c.now_ms(), u64::MAX);
        c.set(3);
        assert_eq!(c.now_ms(), 3);
    }
}
