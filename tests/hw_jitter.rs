//! The timer-jitter thread (feature `std`).
#![cfg(feature = "std")]

use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[path = "support/hw.rs"]
mod hw_support;

use entropool::testing::FakeCpu;
use entropool::{
    Cpu, Error, JITTER_INTERVAL_MAX_US, JITTER_INTERVAL_MIN_US, JitterThread, RealCpu,
};

/// Wait (bounded) until `cond` holds.
fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn interval_out_of_range_is_refused() {
    for (d, micros) in [
        (Duration::ZERO, 0),
        (Duration::from_micros(9), 9),
        (Duration::from_micros(1_000_001), 1_000_001),
        (Duration::from_secs(3600), 3_600_000_000),
    ] {
        let r = JitterThread::spawn(FakeCpu::good(0), d, |_| {});
        assert_eq!(
            r.err(),
            Some(Error::InvalidValue {
                param: "jitter-interval-us",
                value: micros,
                min: JITTER_INTERVAL_MIN_US,
                max: JITTER_INTERVAL_MAX_US,
            })
        );
    }
}

#[test]
fn every_timestamp_reaches_the_sink() {
    let cpu = Arc::new(FakeCpu::good(0));
    cpu.set_cycles(1000);
    cpu.set_cycles_step(7);
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let t = JitterThread::spawn(
        Arc::clone(&cpu),
        Duration::from_micros(JITTER_INTERVAL_MIN_US),
        move |ts| sink.lock().unwrap().push(ts),
    )
    .unwrap();
    assert!(wait_for(|| t.samples() >= 20));
    let n = t.stop().unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len() as u64, n);
    // Only the thread reads the fake counter, which steps by 7 per read:
    // the sink saw 1000, 1007, 1014, ...
    for (i, ts) in got.iter().enumerate() {
        assert_eq!(*ts, 1000 + 7 * i as u64);
    }
}

#[test]
fn stop_cuts_a_long_sleep_short() {
    // Unpark ends the 1 s park (the longest interval allowed) at once; a
    // stop that waited it out takes about 1 s every time. On a loaded
    // machine one quick stop in three tries proves it, where one slow
    // attempt alone could be the scheduler.
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..3 {
        let t = JitterThread::spawn(FakeCpu::good(0), Duration::from_secs(1), |_| {}).unwrap();
        assert!(t.is_running());
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        n = t.stop().unwrap();
        times.push(start.elapsed());
        if times
            .last()
            .is_some_and(|&e| e < Duration::from_millis(500))
        {
            break;
        }
    }
    assert!(
        times.iter().any(|&e| e < Duration::from_millis(500)),
        "{times:?}"
    );
    assert_eq!(n, 0);
}

#[test]
fn drop_stops_and_releases_the_sink() {
    let token = Arc::new(());
    let held = Arc::clone(&token);
    let t = JitterThread::spawn(FakeCpu::good(0), Duration::from_millis(1), move |_| {
        let _ = &held;
    })
    .unwrap();
    assert_eq!(Arc::strong_count(&token), 2);
    drop(t);
    // Drop joined the thread, so its closure (and `held`) is gone.
    assert_eq!(Arc::strong_count(&token), 1);
}

#[test]
fn a_panicking_sink_is_reported() {
    let t = JitterThread::spawn(FakeCpu::good(0), Duration::from_micros(100), |_| {
        panic!("sink failure (expected by this test)")
    })
    .unwrap();
    assert!(wait_for(|| !t.is_running()));
    assert_eq!(t.stop(), Err(Error::JitterThreadFailed));
}

#[test]
fn real_cycle_counter_shows_jitter() {
    let cpu = RealCpu::new();
    if cpu.cycles() == 0 && cpu.cycles() == 0 {
        hw_support::skip("cycles", &"no cycle counter on this architecture");
        return;
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let t = JitterThread::spawn(cpu, Duration::from_micros(100), move |ts| {
        sink.lock().unwrap().push(ts);
    })
    .unwrap();
    assert!(wait_for(|| t.samples() >= 51));
    t.stop().unwrap();
    let got = got.lock().unwrap();
    let deltas: Vec<u64> = got.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    // Each delta is a sleep of >= 100 us measured in cycles: nonzero. And
    // 50 wake-ups landing on exactly the same cycle count apart is not a
    // thing a timer on a GHz counter does (that would be no jitter at all).
    assert!(deltas.iter().all(|&d| d > 0));
    assert!(deltas.iter().any(|&d| d != deltas[0]), "{deltas:?}");
    let min = deltas.iter().min().unwrap();
    let max = deltas.iter().max().unwrap();
    eprintln!(
        "jitter deltas over {} wake-ups: {min}..{max} cycles",
        deltas.len()
    );
}
