//! The getrandom backend under contention and after a panic (issue 15
//! item 6): before, a second caller got `GetrandomBusy` at once (most
//! callers treat any getrandom error as fatal), and a panic inside the
//! generator left the slot busy forever.
#![cfg(all(feature = "getrandom-custom", feature = "std"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::collections::HashSet;
use std::sync::Mutex;

use entropool::Error;
use entropool::getrandom_custom::{self, GlobalRng};
use rand_core::{TryCryptoRng, TryRng};

/// The slot is process-wide: these tests take turns.
static TURN: Mutex<()> = Mutex::new(());

/// A generator that writes a fresh counter value into every output and
/// can be told to panic on one call. Two callers inside it at once would
/// read the same counter (a data race the uniqueness check sees).
struct Counter {
    next: u64,
    panic_at: Option<u64>,
}

impl TryRng for Counter {
    type Error = Error;
    fn try_next_u32(&mut self) -> Result<u32, Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        let n = self.next;
        if self.panic_at == Some(n) {
            panic!("generator panics at call {n}");
        }
        // Non-atomic on purpose: read, work, write.
        let bytes = n.to_le_bytes();
        for (d, b) in dst.iter_mut().zip(bytes.iter().cycle()) {
            *d = *b;
        }
        self.next = n + 1;
        Ok(())
    }
}

impl TryCryptoRng for Counter {}

fn leak(panic_at: Option<u64>) -> &'static mut GlobalRng {
    Box::leak(Box::new(Counter { next: 0, panic_at }))
}

#[test]
fn concurrent_callers_all_succeed_with_distinct_outputs() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = getrandom_custom::unregister();
    assert!(getrandom_custom::register(leak(None)).is_ok());
    let (threads, calls) = if cfg!(miri) { (3, 50) } else { (8, 100_000) };
    let outputs: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut mine = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let mut b = [0u8; 8];
                        getrandom_custom::fill(&mut b).expect("a concurrent caller failed");
                        mine.push(u64::from_le_bytes(b));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: HashSet<u64> = outputs.iter().flatten().copied().collect();
    assert_eq!(
        all.len(),
        threads * calls,
        "two callers got the same output"
    );
    assert_eq!(all.iter().max(), Some(&(threads as u64 * calls as u64 - 1)));
    assert!(getrandom_custom::unregister().is_ok());
}

#[test]
fn a_panic_in_the_generator_does_not_leave_the_slot_busy() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = getrandom_custom::unregister();
    assert!(getrandom_custom::register(leak(Some(3))).is_ok());
    for _ in 0..3 {
        getrandom_custom::fill(&mut [0u8; 8]).unwrap();
    }
    let panicked = std::thread::spawn(|| {
        let mut b = [0u8; 8];
        let _ = getrandom_custom::fill(&mut b);
    })
    .join();
    assert!(panicked.is_err(), "the generator should have panicked");
    // Not busy: the half-updated generator is gone, a clear error at once.
    let mut b = [9u8; 8];
    assert_eq!(
        getrandom_custom::fill(&mut b),
        Err(Error::GetrandomNotRegistered)
    );
    assert!(!getrandom_custom::is_registered());
    // A new generator can be registered and serves again.
    assert!(getrandom_custom::register(leak(None)).is_ok());
    getrandom_custom::fill(&mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), 0);
    assert!(getrandom_custom::unregister().is_ok());
}

/// A generator that calls back into the backend from inside itself.
struct Reentrant;

impl TryRng for Reentrant {
    type Error = Error;
    fn try_next_u32(&mut self) -> Result<u32, Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        let start = std::time::Instant::now();
        let inner = getrandom_custom::fill(dst);
        assert_eq!(inner, Err(Error::GetrandomBusy));
        // A re-entry that waited for the slot would take WAIT_LIMIT (5 s);
        // half of it leaves a loaded machine room and still tells them apart.
        assert!(
            start.elapsed() < getrandom_custom::WAIT_LIMIT / 2,
            "re-entry waited"
        );
        dst.fill(1);
        Ok(())
    }
}

impl TryCryptoRng for Reentrant {}

#[test]
fn a_reentrant_call_is_refused_at_once() {
    let _turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = getrandom_custom::unregister();
    assert!(getrandom_custom::register(Box::leak(Box::new(Reentrant))).is_ok());
    let mut b = [0u8; 4];
    getrandom_custom::fill(&mut b).unwrap();
    assert_eq!(b, [1; 4]);
    assert!(getrandom_custom::unregister().is_ok());
}
