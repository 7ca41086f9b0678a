//! The interrupt-timing path: `record` counts and drops when full; `drain`
//! yields wrapping deltas carried across batches.

use entropool::{Error, InterruptRing, Slot};

fn storage(n: usize) -> Vec<Slot<u64>> {
    (0..n).map(|_| Slot::default()).collect()
}

/// Deltas computed independently of the crate: pairwise differences.
fn deltas(ts: &[u64]) -> Vec<u64> {
    ts.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect()
}

#[test]
fn record_counts_and_drops_when_full() {
    let mut s = storage(3);
    let mut ring = InterruptRing::new(&mut s).unwrap();
    assert_eq!(ring.capacity(), 3);
    {
        let (mut rec, drain) = ring.split();
        for t in [10, 20, 30] {
            rec.record(t).unwrap();
        }
        assert_eq!(rec.record(40), Err(Error::InterruptRingFull));
        assert_eq!(rec.record(50), Err(Error::InterruptRingFull));
        assert_eq!(rec.counters().recorded(), 3);
        assert_eq!(rec.counters().dropped(), 2);
        assert_eq!(drain.counters().dropped(), 2);
        assert_eq!(drain.pending(), 3);
    }
    assert_eq!(ring.counters().recorded(), 3);
}

#[test]
fn drain_yields_deltas_across_batches_and_wraps() {
    let ts: Vec<u64> = vec![u64::MAX - 5, u64::MAX - 1, 3, 3, 100, 1_000, 1_001, 999];
    let mut s = storage(4);
    let mut ring = InterruptRing::new(&mut s).unwrap();
    let (mut rec, mut drain) = ring.split();
    let mut got = Vec::new();
    let mut out = [0_u64; 3];
    assert_eq!(drain.drain(&mut out), 0, "nothing pending");
    for chunk in ts.chunks(3) {
        for &t in chunk {
            rec.record(t).unwrap();
        }
        // Drain in batches of at most 2 to cross batch boundaries.
        loop {
            let n = drain.drain(&mut out[..2]);
            got.extend_from_slice(&out[..n]);
            if drain.pending() == 0 {
                break;
            }
        }
    }
    assert_eq!(got, deltas(&ts));
    assert_eq!(got[1], 5, "wrapping across u64::MAX: (MAX - 1) + 5 = 3");
}

#[test]
fn first_timestamp_only_sets_the_base() {
    let mut s = storage(8);
    let mut ring = InterruptRing::new(&mut s).unwrap();
    let (mut rec, mut drain) = ring.split();
    rec.record(7).unwrap();
    let mut out = [0_u64; 4];
    assert_eq!(drain.drain(&mut out), 0);
    rec.record(12).unwrap();
    assert_eq!(drain.drain(&mut out), 1);
    assert_eq!(out[0], 5);
    assert_eq!(drain.drain(&mut []), 0);
}

#[test]
fn delta_spans_dropped_timestamps() {
    let mut s = storage(2);
    let mut ring = InterruptRing::new(&mut s).unwrap();
    let (mut rec, mut drain) = ring.split();
    rec.record(100).unwrap();
    rec.record(110).unwrap();
    assert!(rec.record(120).is_err());
    let mut out = [0_u64; 4];
    assert_eq!(drain.drain(&mut out), 1);
    assert_eq!(out[0], 10);
    rec.record(130).unwrap();
    assert_eq!(drain.drain(&mut out), 1);
    assert_eq!(out[0], 20, "130 - 110: the dropped 120 is spanned");
    assert_eq!(drain.counters().dropped(), 1);
    assert_eq!(drain.counters().recorded(), 3);
}

#[test]
fn empty_storage_is_an_error() {
    let mut s = storage(0);
    assert_eq!(
        InterruptRing::new(&mut s).err(),
        Some(Error::CapacityTooSmall)
    );
}

#[cfg(feature = "std")]
#[test]
fn shared_recorder_runs_on_another_thread() {
    let (mut rec, mut drain) = InterruptRing::new_shared(16).unwrap();
    let n: u64 = if cfg!(miri) { 40 } else { 10_000 };
    let producer = std::thread::spawn(move || {
        let mut t = 1_000_u64;
        for i in 0..n {
            t += i % 7 + 1;
            if rec.record(t).is_err() {
                // Dropped and counted; keep timestamps advancing.
                std::thread::yield_now();
            }
        }
        rec
    });
    let mut out = [0_u64; 8];
    let mut seen = 0_u64;
    let mut sum = 0_u64;
    // One batch: how many deltas it drained, and how many are left.
    let mut take = || {
        let k = drain.drain(&mut out);
        for d in &out[..k] {
            assert!(*d >= 1, "timestamps are increasing");
            sum += d;
        }
        seen += k as u64;
        (k, drain.pending())
    };
    loop {
        let (_, left) = take();
        if left == 0 && producer.is_finished() {
            break;
        }
        std::thread::yield_now();
    }
    let rec = producer.join().unwrap();
    // After the join every timestamp is visible; the loop above may have
    // stopped on a stale `pending() == 0` (miri's weak-memory emulation
    // shows one), leaving more than one batch of `out` behind.
    while take().0 > 0 {}
    let c = rec.counters();
    assert_eq!(c.recorded() + c.dropped(), n);
    assert_eq!(
        seen,
        c.recorded() - 1,
        "one delta per recorded timestamp but the first"
    );
    assert!(sum > 0);
}
