//! The drivers' retry rules against a plain model: a scripted backend
//! replays arbitrary CF/word sequences (including stuck values) and the
//! driver's outputs and consumption must match a hand-written model.

use core::cell::RefCell;
use std::collections::VecDeque;

use entropool::hw::{RDRAND_RETRY_LIMIT, RDSEED_RETRY_LIMIT, Rdrand, Rdseed};
use entropool::{Cpu, CpuFeatures, CpuIdentity, Error, Vendor};
use proptest::prelude::*;

/// Replays a script; `None` entries are CF=0; an empty script is CF=0.
#[derive(Debug)]
struct Script {
    words: RefCell<VecDeque<Option<u64>>>,
    pauses: RefCell<u64>,
}

impl Script {
    /// Eight distinct good words first, for the self-test.
    fn new(script: &[Option<u64>]) -> Self {
        let mut words: VecDeque<Option<u64>> = (1..=8).map(Some).collect();
        words.extend(script.iter().copied());
        Script {
            words: RefCell::new(words),
            pauses: RefCell::new(0),
        }
    }
    fn next(&self) -> Option<u64> {
        self.words.borrow_mut().pop_front().flatten()
    }
}

impl Cpu for Script {
    fn features(&self) -> CpuFeatures {
        CpuFeatures {
            rdrand: true,
            rdseed: true,
        }
    }
    fn identity(&self) -> CpuIdentity {
        CpuIdentity {
            vendor: Vendor::Amd,
            family: 0x1A,
        }
    }
    fn rdrand64(&self) -> Option<u64> {
        self.next()
    }
    fn rdseed64(&self) -> Option<u64> {
        self.next()
    }
    fn pause(&self) {
        *self.pauses.borrow_mut() += 1;
    }
    fn cycles(&self) -> u64 {
        0
    }
}

/// The model of one driver call: consume up to `limit` entries, return the
/// first CF=1 word that is neither all zeros nor all ones.
fn model_word(script: &mut VecDeque<Option<u64>>, limit: u32) -> Option<u64> {
    for _ in 0..limit {
        match script.pop_front().flatten() {
            Some(w) if w != 0 && w != u64::MAX => return Some(w),
            _ => {}
        }
    }
    None
}

fn entry() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(0)),
        1 => Just(Some(u64::MAX)),
        4 => any::<u64>().prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn rdrand_matches_the_model(script in proptest::collection::vec(entry(), 0..200)) {
        let cpu = Script::new(&script);
        let mut d = Rdrand::new(&cpu).unwrap();
        let mut model: VecDeque<Option<u64>> = script.iter().copied().collect();
        for _ in 0..30 {
            let want = model_word(&mut model, RDRAND_RETRY_LIMIT).ok_or(Error::RdrandFailed);
            prop_assert_eq!(d.next_u64(), want);
            prop_assert_eq!(cpu.words.borrow().len(), model.len());
        }
        prop_assert_eq!(*cpu.pauses.borrow(), 0);
    }

    #[test]
    fn rdseed_fill_matches_the_model(
        script in proptest::collection::vec(entry(), 0..600),
        lens in proptest::collection::vec(0usize..6, 1..8),
    ) {
        let cpu = Script::new(&script);
        let mut d = Rdseed::new(&cpu).unwrap();
        let mut model: VecDeque<Option<u64>> = script.iter().copied().collect();
        for len in lens {
            let mut want = Vec::new();
            while want.len() < len {
                match model_word(&mut model, RDSEED_RETRY_LIMIT) {
                    Some(w) => want.push(w),
                    None => break,
                }
            }
            let mut buf = vec![0x5555u64; len];
            let got = d.fill(&mut buf);
            if len > 0 && want.is_empty() {
                prop_assert_eq!(got, Err(Error::RdseedNotNow));
            } else {
                prop_assert_eq!(got, Ok(want.len()));
            }
            prop_assert_eq!(&buf[..want.len()], &want[..]);
            prop_assert!(buf[want.len()..].iter().all(|&w| w == 0x5555));
            prop_assert_eq!(cpu.words.borrow().len(), model.len());
        }
    }
}
