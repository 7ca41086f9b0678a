//! Real forks: the child's `PoolRng` notices, reseeds and gives bytes
//! different from the parent's, though both start from the same state (the
//! same buffered output, the same deterministic source). Every detector;
//! glibc's `_Fork()` and a raw `clone` system call (both skip atfork
//! handlers) against the wipe-on-fork default and the process-id fallback;
//! two generators in one child (the first reseed re-arms the wiped word,
//! the second generator must still see the fork); a grandchild; a reseed
//! in the child before its first request, and a switch of detector in the
//! child. Unix, `std`.

#![cfg(all(unix, feature = "std"))]
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use core::time::Duration;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use entropool::{EntropySource, Error, ForkDetection, PoolRng, PoolRngConfig};

/// Deterministic: after a fork, parent and child hold the same counter.
/// Starves (fails) while `starving` is set.
struct Counter {
    drawn: u64,
    starving: bool,
}

impl EntropySource for Counter {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if self.starving {
            return Err(Error::Starving);
        }
        for b in out {
            *b = self.drawn.to_le_bytes()[0].wrapping_mul(167);
            self.drawn += 1;
        }
        Ok(())
    }
}

/// How the child is made.
#[derive(Clone, Copy)]
enum How {
    /// The C library's `fork()`: runs the atfork handlers.
    Fork,
    /// glibc's `_Fork()`: skips them.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    UnderscoreFork,
    /// A raw `clone(SIGCHLD)` system call, what `fork()` does underneath,
    /// with no C library involved: no atfork handler, no pid cache update.
    #[cfg(target_os = "linux")]
    RawClone,
}

/// Whether the kernel gives this process a `MADV_WIPEONFORK` page. Probed
/// the way src/os.rs gets its page (an anonymous private page, then the
/// advice) but without the crate, so the check of the default below still
/// tests the crate. A kernel before 4.14 refuses the advice (`EINVAL`), and
/// so may a seccomp filter: the tests that need the page then skip, loudly,
/// as src/os.rs's test does when the crate gets no page.
#[cfg(target_os = "linux")]
fn wipe_on_fork_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let len = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let len = usize::try_from(len).unwrap_or(4096);
        // SAFETY: a new anonymous private mapping at an address the kernel
        // chooses (a null hint): it overlaps no memory anything else uses.
        let page = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return false;
        }
        // SAFETY: `page` and `len` are exactly the mapping made above,
        // which nothing refers to.
        let advised = unsafe { libc::madvise(page, len, libc::MADV_WIPEONFORK) } == 0;
        // SAFETY: as above; the mapping is not used after this.
        unsafe { libc::munmap(page, len) };
        advised
    })
}

#[cfg(not(target_os = "linux"))]
fn wipe_on_fork_available() -> bool {
    false
}

/// The detection a new generator gets: the wipe-on-fork word where the
/// kernel gives the page (Linux 4.14 and later), the process id elsewhere.
fn default_detection() -> ForkDetection {
    if wipe_on_fork_available() {
        ForkDetection::WipeOnFork
    } else {
        ForkDetection::ProcessId
    }
}

/// Whether `detection` can be had here; when it cannot (the wipe-on-fork
/// page refused), says so loudly: the caller skips what needs it.
fn offered(detection: ForkDetection) -> bool {
    if detection == ForkDetection::WipeOnFork && !wipe_on_fork_available() {
        eprintln!(
            "SKIPPED: {detection:?}: MADV_WIPEONFORK refused (kernel older than 4.14, or a seccomp filter?)"
        );
        return false;
    }
    true
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn _Fork() -> libc::pid_t;
}

/// What the child did: its 64 bytes, how much entropy it drew, and whether
/// its requests succeeded.
struct Child {
    bytes: [u8; 64],
    drawn: u64,
}

/// Forks with `how`; the child runs `child` on the generator and reports;
/// the parent gets the report. The child only computes and writes to its
/// socket (no allocation, no lock) and leaves with `_exit`.
fn fork_and_run(
    rng: &mut PoolRng<Counter>,
    how: How,
    child: impl FnOnce(&mut PoolRng<Counter>) -> Option<[u8; 64]>,
) -> Child {
    let mut rngs = [rng];
    fork_and_run_all(&mut rngs, how, |[rng]| child(rng))
}

/// [`fork_and_run`] over several generators; the report's `drawn` is the
/// first one's.
fn fork_and_run_all<const N: usize>(
    rngs: &mut [&mut PoolRng<Counter>; N],
    how: How,
    child: impl FnOnce(&mut [&mut PoolRng<Counter>; N]) -> Option<[u8; 64]>,
) -> Child {
    let (mut from_child, mut to_parent) = UnixStream::pair().unwrap();
    from_child
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pid = match how {
        // SAFETY: see above; the child never returns into the test harness.
        How::Fork => unsafe { libc::fork() },
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: as for `fork`.
        How::UnderscoreFork => unsafe { _Fork() },
        #[cfg(target_os = "linux")]
        // SAFETY: clone with only the exit signal set and a null stack is
        // fork(2): the child runs on a copy of this stack. It calls no C
        // library function that depends on state the raw call leaves stale
        // (cached thread ids, locks): only getpid, write and _exit.
        How::RawClone => unsafe {
            let no: libc::c_long = 0;
            libc::syscall(
                libc::SYS_clone,
                libc::c_long::from(libc::SIGCHLD),
                no,
                no,
                no,
                no,
            )
            .try_into()
            .unwrap_or(-1)
        },
    };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut msg = [0u8; 72];
        // A failed assertion in the child (as a parent of a grandchild) is
        // a failed child, never a second test harness.
        let outcome = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| child(rngs)));
        let ok = match outcome.ok().flatten() {
            Some(b) => {
                msg[..64].copy_from_slice(&b);
                true
            }
            None => false,
        };
        msg[64..].copy_from_slice(&rngs[0].source_mut().drawn.to_le_bytes());
        let sent = to_parent.write_all(&msg).is_ok();
        // SAFETY: ends the child without running the parent's destructors
        // or the test harness.
        unsafe { libc::_exit(if ok && sent { 0 } else { 1 }) };
    }
    // A child that dies before writing closes its end: EOF, not a hang.
    drop(to_parent);
    let mut msg = [0u8; 72];
    from_child.read_exact(&mut msg).unwrap();
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid int.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's requests failed"
    );
    Child {
        bytes: msg[..64].try_into().unwrap(),
        drawn: u64::from_le_bytes(msg[64..].try_into().unwrap()),
    }
}

/// Source bytes at instantiation and per reseed: 48 and 32 per lane.
const SEED: u64 = PoolRng::<Counter>::SEED_LEN as u64;
const RESEED: u64 = PoolRng::<Counter>::RESEED_LEN as u64;

/// A generator whose buffer holds output both processes would serve alike.
fn warmed(detection: ForkDetection) -> PoolRng<Counter> {
    let source = Counter {
        drawn: 0,
        starving: false,
    };
    let mut rng = PoolRng::new(source, PoolRngConfig::DEFAULT).unwrap();
    assert_eq!(
        rng.fork_detection(),
        default_detection(),
        "the default detection"
    );
    assert_eq!(rng.set_fork_detection(detection), detection);
    let mut warm = [0u8; 32];
    rng.fill(&mut warm).unwrap();
    assert_eq!(rng.source_mut().drawn, SEED, "seed and nonce only");
    rng
}

fn draw64(rng: &mut PoolRng<Counter>) -> Option<[u8; 64]> {
    let mut b = [0u8; 64];
    rng.fill(&mut b).ok().map(|()| b)
}

fn check_diverged(rng: &mut PoolRng<Counter>, child: &Child, reseeds_in_child: u64) {
    let parent = draw64(rng).unwrap();
    assert_eq!(
        child.drawn,
        SEED + RESEED * reseeds_in_child,
        "the child reseeded exactly {reseeds_in_child} time(s)"
    );
    assert_eq!(rng.source_mut().drawn, SEED, "the parent did not reseed");
    assert_ne!(child.bytes, parent, "parent and child streams differ");
}

/// Every detector this platform offers.
const ALL: &[ForkDetection] = &[
    #[cfg(target_os = "linux")]
    ForkDetection::WipeOnFork,
    ForkDetection::ProcessId,
    ForkDetection::AtforkCounter,
];

#[test]
fn every_detector_sees_a_c_library_fork() {
    for &detection in ALL {
        if !offered(detection) {
            continue;
        }
        let mut rng = warmed(detection);
        let child = fork_and_run(&mut rng, How::Fork, draw64);
        check_diverged(&mut rng, &child, 1);
    }
}

/// The wipe-on-fork default and the process-id fallback see forks that
/// skip the C library's atfork handlers.
#[cfg(target_os = "linux")]
#[test]
fn the_default_and_the_fallback_see_forks_that_skip_atfork_handlers() {
    let hows = [
        #[cfg(target_env = "gnu")]
        How::UnderscoreFork,
        How::RawClone,
    ];
    for how in hows {
        for detection in [ForkDetection::WipeOnFork, ForkDetection::ProcessId] {
            if !offered(detection) {
                continue;
            }
            let mut rng = warmed(detection);
            let child = fork_and_run(&mut rng, how, draw64);
            check_diverged(&mut rng, &child, 1);
        }
    }
}

/// The raw clone really skips the atfork handlers: the atfork counter
/// misses it and the child repeats the parent's bytes (what the default
/// detector exists to prevent; this shows the test above can fail).
#[cfg(target_os = "linux")]
#[test]
fn the_atfork_counter_misses_a_raw_clone() {
    let mut rng = warmed(ForkDetection::AtforkCounter);
    let child = fork_and_run(&mut rng, How::RawClone, draw64);
    assert_eq!(child.drawn, SEED, "the child did not reseed");
    assert_eq!(
        child.bytes,
        draw64(&mut rng).unwrap(),
        "and repeated the parent"
    );
}

/// Two generators in one child: the first one's reseed stores a new
/// generation in the wiped word, and the second, which recorded the
/// parent's generation, still sees the fork. Then a grandchild, forked
/// after the child re-armed the word, sees its own fork.
#[cfg(target_os = "linux")]
#[test]
fn every_generator_in_a_child_and_a_grandchild_see_their_fork() {
    if !offered(ForkDetection::WipeOnFork) {
        return;
    }
    let mut first = warmed(ForkDetection::WipeOnFork);
    let mut second = warmed(ForkDetection::WipeOnFork);
    let child = fork_and_run_all(
        &mut [&mut first, &mut second],
        How::RawClone,
        |[first, second]| {
            let a = draw64(first)?;
            let b = draw64(second)?;
            // Each reseeded once (48 + 32 bytes per lane from each copy of the
            // deterministic source).
            if second.source_mut().drawn != SEED + RESEED {
                return None;
            }
            // A grandchild of this child: its generator sees the new fork.
            let grandchild = fork_and_run(first, How::RawClone, draw64);
            let mine = draw64(first)?;
            if grandchild.drawn != SEED + 2 * RESEED || grandchild.bytes == mine {
                return None;
            }
            let mut out = [0u8; 64];
            for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b.iter())) {
                *o = x ^ y;
            }
            Some(out)
        },
    );
    assert_eq!(
        child.drawn,
        SEED + RESEED,
        "one reseed after the fork, none after the grandchild's"
    );
    assert_eq!(first.source_mut().drawn, SEED, "the parent did not reseed");
    assert_eq!(second.source_mut().drawn, SEED);
}

#[test]
fn a_reseed_in_the_child_covers_the_fork_it_followed() {
    // The child reseeds on demand first, then its pool starves: its next
    // request needs no second reseed and succeeds.
    for &detection in ALL {
        if !offered(detection) {
            continue;
        }
        let mut rng = warmed(detection);
        let child = fork_and_run(&mut rng, How::Fork, |rng| {
            rng.reseed_now().ok()?;
            rng.source_mut().starving = true;
            let out = draw64(rng);
            rng.source_mut().starving = false;
            out
        });
        check_diverged(&mut rng, &child, 1);
    }
}

#[test]
fn switching_detectors_in_the_child_keeps_the_fork() {
    let mut rng = warmed(ForkDetection::AtforkCounter);
    let child = fork_and_run(&mut rng, How::Fork, |rng| {
        rng.set_pid_source(std::process::id);
        draw64(rng)
    });
    check_diverged(&mut rng, &child, 1);
    for (from, to) in [
        (ForkDetection::ProcessId, ForkDetection::AtforkCounter),
        (ForkDetection::ProcessId, ForkDetection::WipeOnFork),
        (ForkDetection::WipeOnFork, ForkDetection::ProcessId),
        (ForkDetection::WipeOnFork, ForkDetection::AtforkCounter),
    ] {
        // Switching to a detector that cannot be had falls back and still
        // keeps the fork: only starting from one needs it.
        if !offered(from) {
            continue;
        }
        let mut rng = warmed(from);
        let child = fork_and_run(&mut rng, How::Fork, move |rng| {
            rng.set_fork_detection(to);
            draw64(rng)
        });
        check_diverged(&mut rng, &child, 1);
    }
}

#[test]
fn a_child_whose_reseed_fails_refuses_until_it_succeeds() {
    let mut rng = warmed(default_detection());
    let child = fork_and_run(&mut rng, How::Fork, |rng| {
        rng.source_mut().starving = true;
        let mut b = [0u8; 64];
        if rng.fill(&mut b) != Err(Error::DrbgReseedUnavailable) || b != [0u8; 64] {
            return None;
        }
        rng.source_mut().starving = false;
        draw64(rng)
    });
    check_diverged(&mut rng, &child, 1);
}
