//! SIGTERM and SIGINT: a flag the run loop polls; SIGHUP: another one, for
//! reloading TLS ([`Reload`]).
//!
//! Contract: [`Shutdown::install`] registers handlers (through
//! `signal-hook`, so this file has no `unsafe`) that only set an atomic flag;
//! the run loop checks [`Shutdown::requested`] or sleeps with
//! [`Shutdown::sleep`], which returns early when the flag is set, so it can
//! stop serving, flush the memory cache to the storage cache and exit 0. A
//! second SIGTERM or SIGINT while the flag is already set exits at once
//! with status 130 (for a stuck shutdown; nothing is flushed then, which is
//! safe: flushing never hands out entropy, it only saves it). Dropping the
//! [`Shutdown`] unregisters the handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use signal_hook::SigId;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};

/// Exit status of a forced (second-signal) exit: 128 + SIGINT.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// Longest single sleep in [`Shutdown::sleep`]: how quickly a signal is
/// noticed.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The shutdown flag and the handlers that set it.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

impl Shutdown {
    /// Installs the SIGTERM and SIGINT handlers.
    ///
    /// # Errors
    /// The OS error when a handler cannot be installed.
    pub fn install() -> std::io::Result<Shutdown> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut shutdown = Shutdown {
            flag: Arc::clone(&flag),
            ids: Vec::with_capacity(4),
        };
        for signal in [SIGTERM, SIGINT] {
            // The forced exit goes first: on the first signal the flag is
            // still false, so it does nothing and the flag is then set.
            shutdown
                .ids
                .push(signal_hook::flag::register_conditional_shutdown(
                    signal,
                    FORCED_EXIT_STATUS,
                    Arc::clone(&flag),
                )?);
            shutdown
                .ids
                .push(signal_hook::flag::register(signal, Arc::clone(&flag))?);
        }
        Ok(shutdown)
    }

    /// A flag not tied to signals (for tests and for stopping the run loop
    /// from another thread with [`Shutdown::request`]).
    #[must_use]
    pub fn manual() -> Shutdown {
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            ids: Vec::new(),
        }
    }

    /// Whether a shutdown was requested.
    #[must_use]
    pub fn requested(&self) -> bool {
        // SeqCst matches signal-hook's store in the handler.
        self.flag.load(Ordering::SeqCst)
    }

    /// Requests a shutdown, as a signal would.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// The shared flag itself (e.g. for [`crate::server`]-independent
    /// worker threads).
    #[must_use]
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    /// Sleeps for `duration`, in steps of at most [`POLL_INTERVAL`],
    /// returning early (with `true`) as soon as a shutdown is requested.
    /// Returns `false` when the whole duration passed.
    pub fn sleep(&self, duration: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.requested() {
                return true;
            }
            let elapsed = start.elapsed();
            let Some(left) = duration.checked_sub(elapsed).filter(|d| !d.is_zero()) else {
                return false;
            };
            std::thread::sleep(left.min(POLL_INTERVAL));
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// SIGHUP: a flag the run loop takes to reload the TLS certificate and key.
/// Installing it also keeps SIGHUP from terminating the daemon.
#[derive(Debug)]
pub struct Reload {
    flag: Arc<AtomicBool>,
    id: Option<SigId>,
}

impl Reload {
    /// Installs the SIGHUP handler.
    ///
    /// # Errors
    /// The OS error when the handler cannot be installed.
    pub fn install() -> std::io::Result<Reload> {
        let flag = Arc::new(AtomicBool::new(false));
        let id = signal_hook::flag::register(SIGHUP, Arc::clone(&flag))?;
        Ok(Reload { flag, id: Some(id) })
    }

    /// Whether a SIGHUP came since the last call (and clears it).
    #[must_use]
    pub fn take(&self) -> bool {
        // SeqCst matches signal-hook's store in the handler.
        self.flag.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Reload {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}
