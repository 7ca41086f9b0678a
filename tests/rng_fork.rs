//! A real `fork()`: the child's `PoolRng` notices, reseeds and gives bytes
//! different from the parent's, though both start from the same state
//! (the same buffered output, the same deterministic source). Unix, `std`.

#![cfg(all(unix, feature = "std"))]
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use entropool::Error;
use entropool::rng::{EntropySource, PoolRng, PoolRngConfig};

/// Deterministic: after a fork, parent and child hold the same counter.
struct Counter(u64);

impl EntropySource for Counter {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        for b in out {
            *b = self.0.to_le_bytes()[0].wrapping_mul(167);
            self.0 += 1;
        }
        Ok(())
    }
}

#[test]
fn parent_and_child_of_a_real_fork_get_different_bytes() {
    let mut rng = PoolRng::new(Counter(0), PoolRngConfig::DEFAULT).unwrap();
    let mut warm = [0u8; 32];
    // Fills the buffer: both processes would serve its next bytes alike.
    rng.fill(&mut warm).unwrap();
    let seeded = rng.source_mut().0;
    assert_eq!(seeded, 48, "seed and nonce only");
    let (mut from_child, mut to_parent) = UnixStream::pair().unwrap();
    // SAFETY: the child only computes, writes to its socket (no allocation,
    // no lock another thread could hold) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut msg = [0u8; 72];
        let ok = rng.fill(&mut msg[..64]).is_ok();
        msg[64..].copy_from_slice(&rng.source_mut().0.to_le_bytes());
        let sent = to_parent.write_all(&msg).is_ok();
        // SAFETY: ends the child without running the parent's destructors
        // or the test harness.
        unsafe { libc::_exit(if ok && sent { 0 } else { 1 }) };
    }
    let mut parent = [0u8; 64];
    rng.fill(&mut parent).unwrap();
    let mut msg = [0u8; 72];
    from_child.read_exact(&mut msg).unwrap();
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid int.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let child_drawn = u64::from_le_bytes(msg[64..].try_into().unwrap());
    assert_eq!(child_drawn, seeded + 32, "the child reseeded (32 bytes)");
    assert_eq!(rng.source_mut().0, seeded, "the parent did not reseed");
    assert_ne!(&msg[..64], &parent[..], "parent and child streams differ");
}
