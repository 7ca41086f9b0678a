//! The external-lost timer against a plain model: random clock moves
//! (forward, backwards, jumps to and near `u64::MAX`), external
//! submissions, timeout changes, cache fills and drains. The lost state,
//! the times reported and the error from empty caches must be exactly
//! what the model says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test-sized values (a few hundred bytes) fit every integer type.
#![allow(clippy::cast_possible_truncation)]

use entropool::testing::FakeClock;
use entropool::watch::{ExternalLostTimer, output_error};
use entropool::{Clock, Error, Source, SourceMask};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// The clock moves forward (not observed until the next reading).
    Forward(u64),
    /// The clock steps backwards.
    Back(u64),
    /// The clock jumps to a value.
    Jump(u64),
    /// An accepted external submission.
    External,
    /// The timeout changes (seconds).
    Timeout(u64),
    /// Blocks arrive in the caches.
    Fill(u8),
    /// Output asks for this many blocks.
    Drain(u8),
    /// Status is read.
    Query,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..200_000).prop_map(Op::Forward),
        1 => any::<u64>().prop_map(Op::Forward),
        2 => (0u64..200_000).prop_map(Op::Back),
        1 => any::<u64>().prop_map(Op::Back),
        1 => prop_oneof![
            Just(0u64),
            Just(u64::MAX),
            (0u64..100_000).prop_map(|d| u64::MAX - d),
            any::<u64>(),
        ]
        .prop_map(Op::Jump),
        2 => Just(Op::External),
        1 => prop_oneof![
            0u64..300,
            Just(u64::MAX / 1000),
            Just(u64::MAX / 1000 + 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
        .prop_map(Op::Timeout),
        1 => (0u8..4).prop_map(Op::Fill),
        3 => (0u8..4).prop_map(Op::Drain),
        2 => Just(Op::Query),
    ]
}

/// The model: exact arithmetic in u128, then the documented saturation.
#[derive(Debug)]
struct Model {
    watching: bool,
    external_only: bool,
    /// The last clock reading the timer saw.
    seen: u64,
    /// Forward steps summed since the start or the last submission.
    waited: u128,
    timeout: u128,
    received: bool,
    cached: u64,
}

impl Model {
    fn observe(&mut self, now: u64) {
        if now > self.seen {
            self.waited += u128::from(now - self.seen);
        }
        self.seen = now;
    }
    fn waited(&self) -> u64 {
        u64::try_from(self.waited).unwrap_or(u64::MAX)
    }
    fn lost(&self) -> bool {
        let timeout = u64::try_from(self.timeout).unwrap_or(u64::MAX);
        self.watching && self.waited() > timeout
    }
    /// Output from empty caches.
    fn empty_error(&self) -> Error {
        if self.lost() && self.external_only {
            Error::ExternalLost
        } else {
            Error::Starving
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 2000 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn timer_matches_model(
        mask in 0u64..=15,
        timeout in 0u64..120,
        start in prop_oneof![Just(0u64), any::<u64>(), Just(u64::MAX)],
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let sources = SourceMask::new(mask).unwrap();
        let clock = FakeClock::new(start);
        let mut timer = ExternalLostTimer::new(sources, timeout, clock.now_ms());
        let mut m = Model {
            watching: mask & 8 != 0,
            external_only: mask == 8,
            seen: start,
            waited: 0,
            timeout: u128::from(timeout) * 1000,
            received: false,
            cached: 0,
        };
        prop_assert_eq!(timer.watching(), sources.contains(Source::External));
        prop_assert_eq!(timer.external_only(), m.external_only);
        let mut cached: u64 = 0;
        for op in ops {
            match op {
                Op::Forward(d) => clock.advance(d),
                Op::Back(d) => clock.set(clock.now_ms().saturating_sub(d)),
                Op::Jump(t) => clock.set(t),
                Op::External => {
                    let now = clock.now_ms();
                    timer.on_external(now);
                    m.observe(now);
                    m.waited = 0;
                    m.received = true;
                    prop_assert!(!timer.lost(), "fresh external entropy ends the state");
                }
                Op::Timeout(s) => {
                    timer.set_timeout_secs(s);
                    m.timeout = u128::from(s) * 1000;
                    prop_assert_eq!(timer.lost(), m.lost());
                }
                Op::Fill(n) => {
                    cached += u64::from(n);
                    m.cached += u64::from(n);
                }
                Op::Drain(n) => {
                    for _ in 0..n {
                        let now = clock.now_ms();
                        // The pool's rule: serve while a cache has blocks,
                        // else the timer decides the error.
                        let got: Result<(), Error> = if cached > 0 {
                            cached -= 1;
                            Ok(())
                        } else {
                            Err(timer.empty_caches_error(now))
                        };
                        let want = if m.cached > 0 {
                            m.cached -= 1;
                            Ok(())
                        } else {
                            m.observe(now);
                            Err(m.empty_error())
                        };
                        prop_assert_eq!(got, want);
                    }
                }
                Op::Query => {
                    let now = clock.now_ms();
                    let st = timer.status(now);
                    m.observe(now);
                    prop_assert_eq!(st.lost, m.lost());
                    prop_assert_eq!(st.ms_waiting, m.waited());
                    prop_assert_eq!(st.ms_since_last, m.received.then(|| m.waited()));
                    prop_assert_eq!(st.timeout_ms, u64::try_from(m.timeout).unwrap_or(u64::MAX));
                    // The single-purpose queries agree (no time passes).
                    prop_assert_eq!(timer.is_lost(now), m.lost());
                    prop_assert_eq!(timer.ms_since_last(now), st.ms_since_last);
                    prop_assert_eq!(timer.ms_waiting(now), st.ms_waiting);
                    prop_assert_eq!(
                        output_error(timer.lost(), timer.external_only()),
                        m.empty_error()
                    );
                }
            }
        }
    }
}

#[test]
fn output_error_table() {
    // The whole truth table, written out.
    assert_eq!(output_error(false, false), Error::Starving);
    assert_eq!(output_error(false, true), Error::Starving);
    assert_eq!(output_error(true, false), Error::Starving);
    assert_eq!(output_error(true, true), Error::ExternalLost);
}

#[test]
fn lost_after_the_timeout_and_found_again() {
    let ext = SourceMask::of(&[Source::External]);
    let clock = FakeClock::new(1_000);
    let mut t = ExternalLostTimer::new(ext, 60, clock.now_ms());
    clock.advance(60_000);
    assert!(!t.is_lost(clock.now_ms()), "exactly the timeout: not yet");
    assert_eq!(t.ms_since_last(clock.now_ms()), None, "nothing arrived yet");
    clock.advance(1);
    assert!(t.is_lost(clock.now_ms()), "the feeder never came: lost");
    assert_eq!(t.empty_caches_error(clock.now_ms()), Error::ExternalLost);
    t.on_external(clock.now_ms());
    assert!(!t.lost());
    assert_eq!(t.empty_caches_error(clock.now_ms()), Error::Starving);
    clock.advance(30_000);
    assert_eq!(t.ms_since_last(clock.now_ms()), Some(30_000));
    // A shorter timeout applies to the time already waited.
    t.set_timeout_secs(10);
    assert!(t.is_lost(clock.now_ms()));
    // Without external among the sources there is nothing to lose.
    let mut t = ExternalLostTimer::new(SourceMask::of(&[Source::Rdseed]), 0, 0);
    assert!(!t.is_lost(u64::MAX));
    // External plus another source: lost, but output only starves.
    let both = SourceMask::of(&[Source::Rdrand, Source::External]);
    let mut t = ExternalLostTimer::new(both, 0, 0);
    assert!(t.is_lost(1));
    assert_eq!(t.empty_caches_error(1), Error::Starving);
}
