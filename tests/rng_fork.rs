//! Real forks: the child's `PoolRng` notices, reseeds and gives bytes
//! different from the parent's, though both start from the same state (the
//! same buffered output, the same deterministic source). Both detectors,
//! glibc's `_Fork()` (which skips atfork handlers) against the default
//! detector, a reseed in the child before its first request, and a switch
//! of detector in the child. Unix, `std`.

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
    child: fn(&mut PoolRng<Counter>) -> Option<[u8; 64]>,
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
    };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut msg = [0u8; 72];
        let ok = match child(rng) {
            Some(b) => {
                msg[..64].copy_from_slice(&b);
                true
            }
            None => false,
        };
        msg[64..].copy_from_slice(&rng.source_mut().drawn.to_le_bytes());
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
const SEED: u64 = 48 * PoolRngConfig::DEFAULT.lanes as u64;
const RESEED: u64 = 32 * PoolRngConfig::DEFAULT.lanes as u64;

/// A generator whose buffer holds output both processes would serve alike.
fn warmed(detection: ForkDetection) -> PoolRng<Counter> {
    let source = Counter {
        drawn: 0,
        starving: false,
    };
    let mut rng = PoolRng::new(source, PoolRngConfig::DEFAULT).unwrap();
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

#[test]
fn both_detectors_see_a_c_library_fork() {
    for detection in [ForkDetection::ProcessId, ForkDetection::AtforkCounter] {
        let mut rng = warmed(detection);
        let child = fork_and_run(&mut rng, How::Fork, draw64);
        check_diverged(&mut rng, &child, 1);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_default_detector_sees_a_fork_that_skips_atfork_handlers() {
    let mut rng = warmed(ForkDetection::ProcessId);
    let child = fork_and_run(&mut rng, How::UnderscoreFork, draw64);
    check_diverged(&mut rng, &child, 1);
}

#[test]
fn a_reseed_in_the_child_covers_the_fork_it_followed() {
    // The child reseeds on demand first, then its pool starves: its next
    // request needs no second reseed and succeeds.
    for detection in [ForkDetection::ProcessId, ForkDetection::AtforkCounter] {
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
    let mut rng = warmed(ForkDetection::ProcessId);
    let child = fork_and_run(&mut rng, How::Fork, |rng| {
        rng.set_fork_detection(ForkDetection::AtforkCounter);
        draw64(rng)
    });
    check_diverged(&mut rng, &child, 1);
}

#[test]
fn a_child_whose_reseed_fails_refuses_until_it_succeeds() {
    let mut rng = warmed(ForkDetection::ProcessId);
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
