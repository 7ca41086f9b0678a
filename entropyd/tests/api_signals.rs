//! SIGTERM sets the shutdown flag instead of killing the process.
//! (Its own test binary: it sends signals to its own process.)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use entropyd::signals::Shutdown;

#[test]
fn sigterm_sets_the_flag_and_wakes_the_sleeper() {
    let shutdown = Shutdown::install().unwrap();
    assert!(!shutdown.requested());
    // Nothing requested: a short sleep runs its full length.
    let t = Instant::now();
    assert!(!shutdown.sleep(Duration::from_millis(120)));
    assert!(t.elapsed() >= Duration::from_millis(120));

    let flag = shutdown.flag();
    let sender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    });
    let t = Instant::now();
    // The process survives the signal and the sleep ends early.
    assert!(shutdown.sleep(Duration::from_secs(20)));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(shutdown.requested());
    assert!(flag.load(std::sync::atomic::Ordering::SeqCst));
    sender.join().unwrap();
}

#[test]
fn manual_flag_works_without_signals() {
    let s = Shutdown::manual();
    assert!(!s.requested());
    s.request();
    assert!(s.requested());
    assert!(s.sleep(Duration::from_secs(10)));
}
