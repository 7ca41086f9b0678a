//! The timer-jitter thread (feature `std`): the Linux user-space stand-in
//! for interrupts.
//!
//! Contract: a thread sleeps a fixed interval (a timed park, never a busy
//! spin), reads the cycle counter when it wakes, and hands that timestamp to
//! the caller's sink; the scatter of the wake-up times (timer slack,
//! scheduling, cache and hypervisor effects) is the entropy the interrupt
//! source later assesses from the deltas. [`JitterThread::stop`] (or drop)
//! ends it promptly: it sets a flag, unparks the thread and joins it. The
//! thread calls nothing but the cycle counter and the sink.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::Cpu;
use crate::error::Error;

/// Shortest interval accepted, in microseconds (shorter sleeps approach a
/// spin and measure little but the timer slack).
pub const JITTER_INTERVAL_MIN_US: u64 = 10;
/// Longest interval accepted, in microseconds (1 s).
pub const JITTER_INTERVAL_MAX_US: u64 = 1_000_000;
/// A reasonable default interval: 1 ms.
pub const JITTER_DEFAULT_INTERVAL: Duration = Duration::from_millis(1);

/// What a sampler thread and its owner share: the stop flag, the "wanted"
/// hint (always true for the timer thread) and the sample count.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) wanted: AtomicBool,
    pub(crate) samples: AtomicU64,
}

/// The owner's half of a sampler thread, shared by [`JitterThread`] and
/// the CPU-jitter collector's thread: it counts, reports whether the
/// thread runs, and stops and joins it (on `stop` or drop).
#[derive(Debug)]
pub(crate) struct SamplerThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl SamplerThread {
    /// Starts `body` on a thread named `name`; it returns when it sees
    /// `stop` set.
    pub(crate) fn spawn<F>(name: &str, body: F) -> Result<Self, Error>
    where
        F: FnOnce(&Shared) + Send + 'static,
    {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wanted: AtomicBool::new(true),
            samples: AtomicU64::new(0),
        });
        let theirs = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&theirs))
            .map_err(|_| Error::JitterThreadFailed)?;
        Ok(SamplerThread {
            shared,
            handle: Some(handle),
        })
    }

    pub(crate) fn samples(&self) -> u64 {
        self.shared.samples.load(Ordering::Relaxed)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Sets the "wanted" hint; a thread parked for want of work is woken
    /// when it becomes true.
    pub(crate) fn set_wanted(&self, wanted: bool) {
        // Relaxed: a hint; nothing is published through it.
        self.shared.wanted.store(wanted, Ordering::Relaxed);
        if wanted {
            if let Some(h) = self.handle.as_ref() {
                h.thread().unpark();
            }
        }
    }

    /// Stops the thread and waits for it; returns the number of samples.
    pub(crate) fn stop(mut self) -> Result<u64, Error> {
        self.stop_and_join()?;
        Ok(self.samples())
    }

    fn stop_and_join(&mut self) -> Result<(), Error> {
        // Release: pairs with the thread's Acquire load of `stop`.
        self.shared.stop.store(true, Ordering::Release);
        match self.handle.take() {
            Some(handle) => {
                handle.thread().unpark();
                handle.join().map_err(|_| Error::JitterThreadFailed)
            }
            None => Ok(()),
        }
    }
}

impl Drop for SamplerThread {
    fn drop(&mut self) {
        // A sink panic was already reported on the thread; nothing to add.
        let _ = self.stop_and_join();
    }
}

/// A running timer-jitter thread; stops and joins on [`JitterThread::stop`]
/// or drop.
#[derive(Debug)]
pub struct JitterThread(SamplerThread);

impl JitterThread {
    /// Start sampling: every `interval` the thread wakes, reads
    /// `cpu.cycles()` and calls `sink(timestamp)` (e.g. the interrupt
    /// recorder's `record`).
    ///
    /// # Errors
    /// - [`Error::InvalidValue`] (`jitter-interval-us`) when `interval` is
    ///   outside [`JITTER_INTERVAL_MIN_US`]`..=`[`JITTER_INTERVAL_MAX_US`];
    /// - [`Error::JitterThreadFailed`] when the OS cannot start the thread.
    pub fn spawn<C, S>(cpu: C, interval: Duration, sink: S) -> Result<Self, Error>
    where
        C: Cpu + Send + 'static,
        S: FnMut(u64) + Send + 'static,
    {
        let micros = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        if !(JITTER_INTERVAL_MIN_US..=JITTER_INTERVAL_MAX_US).contains(&micros) {
            return Err(Error::InvalidValue {
                param: "jitter-interval-us",
                value: micros,
                min: JITTER_INTERVAL_MIN_US,
                max: JITTER_INTERVAL_MAX_US,
            });
        }
        SamplerThread::spawn("entropool-jitter", move |shared| {
            run(&cpu, interval, sink, shared);
        })
        .map(JitterThread)
    }

    /// Timestamps handed to the sink so far.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.0.samples()
    }

    /// Whether the thread is still running (false once stopped, or if the
    /// sink panicked).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.0.is_running()
    }

    /// Stop the thread and wait for it; returns the number of samples.
    ///
    /// # Errors
    /// [`Error::JitterThreadFailed`] when the thread died (its sink
    /// panicked).
    pub fn stop(self) -> Result<u64, Error> {
        self.0.stop()
    }
}

fn run<C: Cpu, S: FnMut(u64)>(cpu: &C, interval: Duration, mut sink: S, shared: &Shared) {
    // Acquire: pairs with the Release store in `stop_and_join`.
    while !shared.stop.load(Ordering::Acquire) {
        // A timed park: sleeps like `sleep`, but `stop` can cut it short
        // with `unpark`. A spurious early wake is just another sample.
        thread::park_timeout(interval);
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        sink(cpu.cycles());
        shared.samples.fetch_add(1, Ordering::Relaxed);
    }
}
