#![allow(unsafe_code)] // mmap and madvise: the one small OS module (Cargo.toml's lints name it).
//! Memory the kernel wipes in a forked child (Linux, feature `std`).
//!
//! Contract: [`wipe_on_fork_word`] returns a process-wide 64-bit word on an
//! anonymous private page advised `MADV_WIPEONFORK` (Linux 4.14+). The
//! kernel gives a child made by any kind of fork (the C library's `fork()`,
//! glibc's `_Fork()`, a raw `fork`, or `clone`/`clone3` without
//! `CLONE_VM`) a zero-filled page at the same address, so a nonzero value
//! written before the fork reads as zero in the child, with no system call
//! and no handler. The page is mapped once per process, on first use, and
//! never unmapped: the reference is `'static`, and valid in every child.
//! The word starts at zero; what it holds is the caller's business
//! (`rng::fork` keeps a generation number in it).
//!
//! `None` when the mapping or the advice fails: the caller falls back to
//! another detector. A refused advice (a kernel older than 4.14 answers
//! `EINVAL`; a seccomp filter may answer otherwise) is for good: `None`
//! from then on for the life of the process, with no further system call.
//! A failed mapping, or advice refused for want of memory (`ENOMEM`,
//! `EAGAIN`), is for now: the next call tries again, so a moment of memory
//! pressure does not leave every later generator comparing process ids.
//! The module is built only on Linux and not under miri (which cannot map
//! memory); elsewhere the caller takes the fallback at compile time.
//!
//! Never blocks: threads that race to the first call may each map a page;
//! one publishes its page and the others unmap theirs. (A lock would be
//! worse than waste here: a child forked while another thread held it
//! would wait on it forever.)

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap_anonymous, munmap};

/// The published word: null until a page is mapped and advised.
static WORD: AtomicPtr<AtomicU64> = AtomicPtr::new(null_mut());
/// The kernel refused the advice for good: never try again.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// The process's fork-wiped word, or `None` where the kernel cannot provide
/// one (see the module doc).
#[inline]
pub(crate) fn wipe_on_fork_word() -> Option<&'static AtomicU64> {
    // Acquire pairs with the Release of the publishing compare-exchange in
    // `map_word`: the page is mapped and advised before anyone uses it.
    let word = WORD.load(Ordering::Acquire);
    if !word.is_null() {
        // SAFETY: a non-null `WORD` is the start of a page that `map_word`
        // mapped read-write, advised, and never unmaps: page-aligned (so
        // aligned for `AtomicU64`), valid for the life of the process, and
        // only ever accessed atomically.
        return Some(unsafe { &*word });
    }
    // Relaxed: a stale `false` only costs one more (failing) attempt.
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    map_word()
}

/// Maps and advises a page and publishes it (or adopts the page another
/// thread published first).
#[cold]
fn map_word() -> Option<&'static AtomicU64> {
    let len = rustix::param::page_size();
    // SAFETY: a new anonymous private mapping at an address the kernel
    // chooses (a null hint): it overlaps no memory anything else uses.
    let mapped = unsafe {
        mmap_anonymous(
            null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    };
    let page = match mapped {
        Ok(page) => page,
        Err(_) => {
            give_up(Failure::Map);
            return None;
        }
    };
    // SAFETY: `page` and `len` are exactly the mapping made above, which
    // nothing else refers to yet; the advice changes only what a child
    // sees there.
    if let Err(e) = unsafe { madvise(page, len, Advice::LinuxWipeOnFork) } {
        unmap(page, len);
        give_up(Failure::Advise(e));
        return None;
    }
    let word = page.cast::<AtomicU64>();
    // AcqRel: Release publishes the advised page (pairs with the Acquire
    // load in `wipe_on_fork_word`); Acquire on failure sees the winner's.
    match WORD.compare_exchange(null_mut(), word, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: the page just published: mapped read-write, page-aligned,
        // never unmapped from now on, accessed only atomically.
        Ok(_) => Some(unsafe { &*word }),
        Err(winner) => {
            unmap(page, len);
            // SAFETY: the page another thread published, under the same
            // guarantees.
            Some(unsafe { &*winner })
        }
    }
}

/// Why no page could be had.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// The mapping failed (for whatever reason).
    Map,
    /// The advice was refused.
    Advise(Errno),
}

impl Failure {
    /// Whether trying again is pointless: the kernel refused the advice
    /// itself (an old kernel, a filter), not for want of memory. A failed
    /// mapping is always worth another try.
    fn is_permanent(self) -> bool {
        match self {
            Failure::Map => false,
            Failure::Advise(e) => e != Errno::NOMEM && e != Errno::AGAIN,
        }
    }
}

/// Records `failure`: a permanent one stops every later attempt.
fn give_up(failure: Failure) {
    if failure.is_permanent() {
        UNAVAILABLE.store(true, Ordering::Relaxed);
    }
}

/// Unmaps a page this module mapped and never published.
fn unmap(page: *mut c_void, len: usize) {
    // SAFETY: `page` and `len` are a mapping made by `map_word` that was
    // never published, so no reference into it exists. Failure leaks one
    // page, nothing worse.
    let _ = unsafe { munmap(page, len) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this kernel (4.14 or later) the word exists and is one word for
    /// the whole process. (It is not written here: PoolRng tests running
    /// beside this one read it. That a fork clears it is tested with real
    /// forks in tests/rng_fork.rs.)
    #[test]
    fn one_word_per_process() {
        let Some(a) = wipe_on_fork_word() else {
            std::eprintln!("SKIPPED: MADV_WIPEONFORK refused (kernel older than 4.14?)");
            return;
        };
        let b = wipe_on_fork_word().map(core::ptr::from_ref);
        assert_eq!(Some(core::ptr::from_ref(a)), b);
        assert_eq!(
            core::ptr::from_ref(a).align_offset(rustix::param::page_size()),
            0
        );
    }

    /// Only a refused advice disables the page for the process; a failed
    /// mapping (or advice refused for want of memory) leaves the next
    /// generator free to try again.
    #[test]
    fn only_a_refused_advice_is_permanent() {
        assert!(Failure::Advise(Errno::INVAL).is_permanent());
        assert!(Failure::Advise(Errno::PERM).is_permanent());
        assert!(Failure::Advise(Errno::NOSYS).is_permanent());
        for transient in [Errno::NOMEM, Errno::AGAIN] {
            assert!(!Failure::Advise(transient).is_permanent());
        }
        assert!(!Failure::Map.is_permanent());
    }
}
