//! Fork detection for [`PoolRng`](super::PoolRng) (feature `std`).
//!
//! Contract: [`ForkGuard::changed`] reports `true` on the first request after
//! a fork of the process, in the child, so a forked child never continues
//! its parent's stream; it keeps reporting `true` until [`ForkGuard::record`]
//! (the reseed that follows) succeeds. The mark that `record` stores is
//! taken ([`ForkGuard::mark`]) before the reseed, so a fork between the two
//! is still seen. Switching the detector never loses a fork that happened
//! before the switch.
//!
//! How a fork is seen ([`ForkDetection`]):
//! - [`ForkDetection::WipeOnFork`], the default on Linux: a process-wide
//!   generation word on a page the kernel wipes in every child
//!   (`MADV_WIPEONFORK`, Linux 4.14+, mapped by `crate::os`). A request
//!   costs one relaxed load and a compare. It sees every kind of fork: the
//!   C library's `fork()`, glibc's `_Fork()`, raw `fork`/`clone` system
//!   calls. Where the page cannot be had (an older kernel, another OS,
//!   miri), the default is [`ForkDetection::ProcessId`].
//! - [`ForkDetection::ProcessId`]: the process id is compared on every
//!   request (`std::process::id()`: a system call on Linux, about 230 ns on
//!   the bench machine). It also sees every kind of fork.
//! - [`ForkDetection::AtforkCounter`] (Unix), opt-in: a `pthread_atfork`
//!   child handler ([`forkguard`]'s `atfork` flavour) bumps a process-wide
//!   counter, and a request costs one relaxed atomic load. It sees `fork()`
//!   from the C library (what `std`, `libc::fork` and `nix` call) but NOT
//!   `_Fork()` or a raw `fork`/`clone`/`clone3` system call: a child made
//!   that way would continue the parent's stream. Choose it only for a
//!   process that forks through the C library's `fork()` or not at all.
//!
//! The generation word: zero means "wiped" (a fresh page, or a child's copy
//! of it). A generator records the nonzero value it saw at its last
//! (re)seed and reports a fork when the word differs. The first reseed
//! that finds the word zero stores a new value taken from a process-wide
//! counter in ordinary (copied) memory: the counter has passed every value
//! the parent ever stored, so the child's new value differs from every
//! value a generator in the child recorded before the fork.
//!
//! The process id also goes into every seed's personalization and every
//! reseed's additional input, so parent and child streams differ even when
//! both reseed from copies of the same pool.

use core::sync::atomic::{AtomicU64, Ordering};

/// How [`PoolRng`](super::PoolRng) notices that the process forked.
///
/// Non-exhaustive: a later release may add a way (another kernel's
/// wipe-on-fork, say), so a `match` on the detection in force needs a
/// wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForkDetection {
    /// A generation word on a page the kernel wipes in a forked child
    /// (`MADV_WIPEONFORK`; one load per request; sees every kind of fork).
    /// Linux 4.14 and later; the default where available.
    WipeOnFork,
    /// Compare the process id on every request (sees every kind of fork;
    /// one `getpid` system call per request). The default where the
    /// wipe-on-fork page is not available.
    ProcessId,
    /// A `pthread_atfork` counter (one atomic load per request; sees only
    /// forks made by the C library's `fork()`). Unix only.
    AtforkCounter,
}

/// The next generation value to store in a wiped word; never 0. Ordinary
/// memory: a child inherits it, already past every value its parent used.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The process's wipe-on-fork word, where the kernel provides one.
fn wipe_on_fork_word() -> Option<&'static AtomicU64> {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        crate::os::wipe_on_fork_word()
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        None
    }
}

/// The word's current generation, storing a fresh one first if the word
/// is wiped (zero). Never returns 0.
fn arm(word: &AtomicU64) -> u64 {
    // Relaxed throughout: the word is the only location involved, and a
    // fork is not a concurrent access (the child has only this thread).
    let seen = word.load(Ordering::Relaxed);
    if seen != 0 {
        return seen;
    }
    let fresh = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed).max(1);
    match word.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => fresh,
        // Another thread armed it first: adopt its value.
        Err(theirs) => theirs,
    }
}

/// How forks are detected now.
#[derive(Debug)]
enum Detector {
    /// The wipe-on-fork generation word.
    Wipe(&'static AtomicU64),
    /// The atfork counter.
    #[cfg(unix)]
    Atfork(forkguard::atfork::Guard),
    /// Process ids from this source.
    Pid(fn() -> u32),
}

/// What a reseed covers: the process id and the generation it saw, taken
/// before the reseed.
#[derive(Clone, Copy, Debug)]
pub(super) struct ForkMark {
    /// The process id (goes into the reseed's additional input).
    pub(super) pid: u32,
    /// The wipe-on-fork generation (0 with other detectors).
    generation: u64,
}

/// The fork state of one generator.
#[derive(Debug)]
pub(super) struct ForkGuard {
    /// The process id recorded at the last (re)seed.
    pid: u32,
    /// The generation recorded at the last (re)seed (wipe-on-fork only).
    generation: u64,
    detector: Detector,
    /// A fork was seen and no reseed has recorded the new process yet.
    forked: bool,
}

impl ForkGuard {
    /// The default detection: the wipe-on-fork word where the kernel
    /// provides it, otherwise process ids.
    pub(super) fn new() -> Self {
        Self::with_word(wipe_on_fork_word())
    }

    /// Wipe-on-fork detection on `word`, or process ids without one (the
    /// fallback, forced by passing `None`).
    fn with_word(word: Option<&'static AtomicU64>) -> Self {
        let (detector, generation) = match word {
            Some(w) => (Detector::Wipe(w), arm(w)),
            None => (Detector::Pid(std::process::id), 0),
        };
        Self {
            pid: std::process::id(),
            generation,
            detector,
            forked: false,
        }
    }

    /// What a reseed made now covers: the generation (armed if wiped),
    /// then the current process id (a system call unless a source is
    /// injected). Take it before the reseed: a fork after this point is
    /// then still seen.
    pub(super) fn mark(&self) -> ForkMark {
        let generation = match self.detector {
            Detector::Wipe(w) => arm(w),
            _ => 0,
        };
        let pid = match self.detector {
            Detector::Pid(source) => source(),
            _ => std::process::id(),
        };
        ForkMark { pid, generation }
    }

    /// Whether the process forked since the last [`Self::record`].
    #[inline]
    pub(super) fn changed(&mut self) -> bool {
        let seen = match &mut self.detector {
            Detector::Wipe(w) => w.load(Ordering::Relaxed) != self.generation,
            #[cfg(unix)]
            Detector::Atfork(g) => g.detected_fork(),
            Detector::Pid(source) => source() != self.pid,
        };
        self.forked |= seen;
        self.forked
    }

    /// Records `mark` (taken before the reseed that just succeeded): every
    /// fork up to the mark is covered by that reseed.
    pub(super) fn record(&mut self, mark: ForkMark) {
        #[cfg(unix)]
        if let Detector::Atfork(g) = &mut self.detector {
            // Consume the event: the reseed just made already covers it.
            let _ = g.detected_fork();
        }
        self.pid = mark.pid;
        self.generation = mark.generation;
        self.forked = false;
    }

    /// Switches to `how`; returns the detection in force afterwards (the
    /// process-id comparison when the wipe-on-fork page or the atfork
    /// handler cannot be had, or the platform has neither).
    pub(super) fn set_detection(&mut self, how: ForkDetection) -> ForkDetection {
        let pending = self.changed();
        match how {
            ForkDetection::WipeOnFork => {
                *self = Self::new();
            }
            ForkDetection::ProcessId => {
                *self = Self::with_word(None);
            }
            ForkDetection::AtforkCounter =>
            {
                #[cfg(unix)]
                if let Ok(g) = forkguard::atfork::Guard::try_new() {
                    self.detector = Detector::Atfork(g);
                }
            }
        }
        // A fork before the switch is carried in `pending`.
        self.forked = pending;
        self.detection()
    }

    /// The detection in force.
    pub(super) fn detection(&self) -> ForkDetection {
        match self.detector {
            Detector::Wipe(_) => ForkDetection::WipeOnFork,
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
        self.generation = 0;
        self.forked = pending;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback: without a wipe-on-fork word the guard compares
    /// process ids (a fake source stands in for a fork).
    #[test]
    fn without_the_page_the_process_id_is_compared() {
        let mut guard = ForkGuard::with_word(None);
        assert_eq!(guard.detection(), ForkDetection::ProcessId);
        assert!(!guard.changed());
        guard.set_source(|| 7);
        assert!(!guard.changed());
        guard.set_source(|| 8);
        assert!(!guard.changed(), "a new source records its own id");
        static PID: AtomicU64 = AtomicU64::new(100);
        guard.set_source(|| u32::try_from(PID.load(Ordering::Relaxed)).unwrap_or(0));
        PID.store(101, Ordering::Relaxed);
        assert!(guard.changed());
        let mark = guard.mark();
        assert_eq!(mark.pid, 101);
        guard.record(mark);
        assert!(!guard.changed());
    }

    /// A wiped word (what a child sees) is a fork for every guard that
    /// recorded the old value, including after one of them re-armed it.
    #[test]
    fn a_wiped_word_is_a_fork_for_every_guard() {
        // A word of this test's own, in ordinary memory: zeroing it by hand
        // is what the kernel does to the real one in a child.
        static WORD: AtomicU64 = AtomicU64::new(0);
        let mut a = ForkGuard::with_word(Some(&WORD));
        let mut b = ForkGuard::with_word(Some(&WORD));
        assert_eq!(a.detection(), ForkDetection::WipeOnFork);
        let first = WORD.load(Ordering::Relaxed);
        assert_ne!(first, 0, "the first guard armed the word");
        assert!(!a.changed() && !b.changed());

        WORD.store(0, Ordering::Relaxed);
        assert!(a.changed());
        // `a` reseeds: the mark re-arms the word with a new generation.
        let mark = a.mark();
        a.record(mark);
        assert!(!a.changed());
        let second = WORD.load(Ordering::Relaxed);
        assert_ne!(second, 0);
        assert_ne!(second, first, "a re-armed word never repeats a value");
        assert!(b.changed(), "b recorded the old generation");
        assert!(b.changed(), "and keeps reporting until it reseeds");
        let mark = b.mark();
        b.record(mark);
        assert!(!b.changed());
    }

    /// A fork between the mark and the record (the reseed in between ran
    /// in the parent) is still seen in the child.
    #[test]
    fn a_fork_after_the_mark_is_not_covered() {
        static WORD: AtomicU64 = AtomicU64::new(0);
        let mut guard = ForkGuard::with_word(Some(&WORD));
        let mark = guard.mark();
        WORD.store(0, Ordering::Relaxed);
        guard.record(mark);
        assert!(guard.changed());
    }
}
