//! Fork detection for [`PoolRng`](super::PoolRng) (feature `std`).
//!
//! Contract: [`ForkGuard::changed`] reports `true` on the first request after
//! a fork of the process, in the child, so a forked child never continues
//! its parent's stream; it keeps reporting `true` until [`ForkGuard::record`]
//! (the reseed that follows) succeeds. Switching the detector never loses a
//! fork that happened before the switch.
//!
//! How a fork is seen ([`ForkDetection`]):
//! - [`ForkDetection::ProcessId`], the default: the process id is compared
//!   on every request (`std::process::id()`: a system call on Linux, about
//!   230 ns on the bench machine). It sees every kind of fork, including
//!   glibc's `_Fork()` and raw `fork`/`clone` system calls.
//! - [`ForkDetection::AtforkCounter`] (Unix), opt-in: a `pthread_atfork`
//!   child handler ([`forkguard`]'s `atfork` flavour) bumps a process-wide
//!   counter, and a request costs one relaxed atomic load. It sees `fork()`
//!   from the C library (what `std`, `libc::fork` and `nix` call) but NOT
//!   `_Fork()` or a raw `fork`/`clone`/`clone3` system call: a child made
//!   that way would continue the parent's stream. Choose it only for a
//!   process that forks through the C library's `fork()` or not at all.
//!
//! The process id also goes into every seed's personalization and every
//! reseed's additional input, so parent and child streams differ even when
//! both reseed from copies of the same pool.

/// How [`PoolRng`](super::PoolRng) notices that the process forked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkDetection {
    /// Compare the process id on every request (sees every kind of fork;
    /// one `getpid` system call per request).
    ProcessId,
    /// A `pthread_atfork` counter (one atomic load per request; sees only
    /// forks made by the C library's `fork()`). Unix only.
    AtforkCounter,
}

/// How forks are detected now.
#[derive(Debug)]
enum Detector {
    /// The atfork counter.
    #[cfg(unix)]
    Atfork(forkguard::atfork::Guard),
    /// Process ids from this source.
    Pid(fn() -> u32),
}

/// The fork state of one generator.
#[derive(Debug)]
pub(super) struct ForkGuard {
    /// The process id recorded at the last (re)seed.
    pid: u32,
    detector: Detector,
    /// A fork was seen and no reseed has recorded the new process yet.
    forked: bool,
}

impl ForkGuard {
    /// Records the current process id and compares process ids from now on.
    pub(super) fn new() -> Self {
        Self {
            pid: std::process::id(),
            detector: Detector::Pid(std::process::id),
            forked: false,
        }
    }

    /// The current process id (a system call unless a source is injected).
    pub(super) fn current(&self) -> u32 {
        match self.detector {
            #[cfg(unix)]
            Detector::Atfork(_) => std::process::id(),
            Detector::Pid(source) => source(),
        }
    }

    /// Whether the process forked since the last [`Self::record`].
    #[inline]
    pub(super) fn changed(&mut self) -> bool {
        let seen = match &mut self.detector {
            #[cfg(unix)]
            Detector::Atfork(g) => g.detected_fork(),
            Detector::Pid(source) => source() != self.pid,
        };
        self.forked |= seen;
        self.forked
    }

    /// Records `pid` as the process the current seed belongs to: every fork
    /// up to now is covered by that seed.
    pub(super) fn record(&mut self, pid: u32) {
        #[cfg(unix)]
        if let Detector::Atfork(g) = &mut self.detector {
            // Consume the event: the reseed just made already covers it.
            let _ = g.detected_fork();
        }
        self.pid = pid;
        self.forked = false;
    }

    /// Switches to `how`; returns the detection in force afterwards (the
    /// process-id comparison when the atfork handler cannot be registered
    /// or the platform has none).
    pub(super) fn set_detection(&mut self, how: ForkDetection) -> ForkDetection {
        let pending = self.changed();
        match how {
            ForkDetection::ProcessId => {
                self.detector = Detector::Pid(std::process::id);
                // A fork before the switch is carried in `pending`.
                self.pid = std::process::id();
            }
            ForkDetection::AtforkCounter =>
            {
                #[cfg(unix)]
                if let Ok(g) = forkguard::atfork::Guard::try_new() {
                    self.detector = Detector::Atfork(g);
                }
            }
        }
        self.forked = pending;
        self.detection()
    }

    /// The detection in force.
    pub(super) fn detection(&self) -> ForkDetection {
        match self.detector {
            #[cfg(unix)]
            Detector::Atfork(_) => ForkDetection::AtforkCounter,
            Detector::Pid(_) => ForkDetection::ProcessId,
        }
    }

    /// Compares process ids from `pid_source` from now on (and records its
    /// current id); a fork the old detector can still see stays pending.
    pub(super) fn set_source(&mut self, pid_source: fn() -> u32) {
        let pending = self.changed();
        self.detector = Detector::Pid(pid_source);
        self.pid = pid_source();
        self.forked = pending;
    }
}
