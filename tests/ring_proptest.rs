//! The ring against `VecDeque` (the plain model) for any sequence of
//! push / pop / pop_into / pop_many_with / push_with / len / capacity / clear operations, on
//! the halves and on the single-owner API.

use std::collections::VecDeque;

use entropool::Slot;
use entropool::ring::Ring;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push(u32),
    PushWith(u32),
    Pop,
    PopInto(usize),
    PopManyWith(usize),
    Len,
    Capacity,
    /// Drop the halves and use the single-owner API for the next op.
    OwnerPush(u32),
    OwnerPop,
    OwnerClear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Push),
        1 => any::<u32>().prop_map(Op::PushWith),
        4 => Just(Op::Pop),
        1 => (0_usize..6).prop_map(Op::PopInto),
        2 => (0_usize..8).prop_map(Op::PopManyWith),
        1 => Just(Op::Len),
        1 => Just(Op::Capacity),
        1 => any::<u32>().prop_map(Op::OwnerPush),
        1 => Just(Op::OwnerPop),
        1 => Just(Op::OwnerClear),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ring_matches_vecdeque(capacity in 1_usize..6, ops in prop::collection::vec(op(), 0..if cfg!(miri) { 24 } else { 200 })) {
        let mut storage: Vec<Slot<u32>> = (0..capacity).map(|_| Slot::default()).collect();
        let mut ring = Ring::new(&mut storage).unwrap();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            // Halves for a run of half ops, then owner ops on the ring.
            {
                let (mut p, mut c) = ring.split();
                while let Some(op) = ops.next_if(|o| !matches!(o, Op::OwnerPush(_) | Op::OwnerPop | Op::OwnerClear)) {
                    match op {
                        Op::Push(v) => {
                            let r = p.push(v);
                            if model.len() < capacity {
                                prop_assert_eq!(r, Ok(()));
                                model.push_back(v);
                            } else {
                                prop_assert_eq!(r, Err(v));
                            }
                        }
                        Op::PushWith(v) => {
                            let r = p.push_with(|slot| {
                                assert_eq!(*slot, 0, "free slot not wiped");
                                *slot = v;
                            });
                            prop_assert_eq!(r.is_ok(), model.len() < capacity);
                            if r.is_ok() {
                                model.push_back(v);
                            }
                        }
                        Op::Pop => prop_assert_eq!(c.pop(), model.pop_front()),
                        Op::PopInto(n) => {
                            let mut out = vec![u32::MAX; n];
                            let got = c.pop_into(&mut out);
                            let want: Vec<u32> = (0..n).map_while(|_| model.pop_front()).collect();
                            prop_assert_eq!(&out[..got], &want[..]);
                        }
                        Op::PopManyWith(n) => {
                            let mut seen = Vec::new();
                            let got = c.pop_many_with(n, |v| {
                                seen.push(*v);
                                // Scribble: the ring must wipe it anyway.
                                *v = u32::MAX;
                            });
                            let want: Vec<u32> = (0..n).map_while(|_| model.pop_front()).collect();
                            prop_assert_eq!(got, want.len());
                            prop_assert_eq!(seen, want);
                        }
                        Op::Len => {
                            prop_assert_eq!(p.len(), model.len());
                            prop_assert_eq!(c.len(), model.len());
                            prop_assert_eq!(p.free(), capacity - model.len());
                        }
                        Op::Capacity => {
                            prop_assert_eq!(p.capacity(), capacity);
                            prop_assert_eq!(c.capacity(), capacity);
                        }
                        Op::OwnerPush(_) | Op::OwnerPop | Op::OwnerClear => unreachable!(),
                    }
                }
            }
            match ops.next() {
                Some(Op::OwnerPush(v)) => {
                    let r = ring.push(v);
                    if model.len() < capacity {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(v);
                    } else {
                        prop_assert_eq!(r, Err(v));
                    }
                }
                Some(Op::OwnerPop) => prop_assert_eq!(ring.pop(), model.pop_front()),
                Some(Op::OwnerClear) => {
                    prop_assert_eq!(ring.clear(), model.len());
                    model.clear();
                }
                _ => {}
            }
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(ring.is_empty(), model.is_empty());
            prop_assert_eq!(ring.is_full(), model.len() == capacity);
        }
        let rest: Vec<u32> = core::iter::from_fn(|| ring.pop()).collect();
        prop_assert_eq!(rest, Vec::from(model));
    }
}
