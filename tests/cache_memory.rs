//! `MemoryCache` and `LowWatermark`: capacity from memory-cache-size,
//! zeroizing moves, resizing without silent loss, and the refill state
//! machine against a hand-written model (proptest).

use std::collections::{HashSet, VecDeque};

use entropool::cache::{LowWatermark, MemoryCache};
use entropool::{BlockSlot, Error, Slot, blocks_for_kib};
use proptest::prelude::*;

fn storage(blocks: usize) -> Vec<BlockSlot> {
    (0..blocks).map(|_| Slot::default()).collect()
}

/// A block that names itself: id in the first 8 bytes, 0xA5 elsewhere.
fn block(id: u64) -> [u8; 32] {
    let mut b = [0xA5_u8; 32];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

fn id_of(b: &[u8; 32]) -> u64 {
    assert_eq!(&b[8..], &[0xA5; 24], "block content corrupted");
    let mut id = [0_u8; 8];
    id.copy_from_slice(&b[..8]);
    u64::from_le_bytes(id)
}

#[test]
fn capacity_is_kib_times_32() {
    // 1 KiB = 1024 bytes = 32 blocks of 32 bytes.
    assert_eq!(blocks_for_kib(1), Some(1024 / 32));
    assert_eq!(blocks_for_kib(512), Some(512 * 1024 / 32));
    assert_eq!(blocks_for_kib(u64::MAX), None);
    let mut s = storage(64);
    let cache = MemoryCache::new(&mut s, 2, 20).unwrap();
    assert_eq!(cache.capacity(), 64);
    assert_eq!(cache.storage_capacity(), 64);
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.low_watermark(), 20);
}

#[test]
fn size_beyond_storage_is_rejected() {
    let mut s = storage(63);
    assert_eq!(
        MemoryCache::new(&mut s, 2, 20).err(),
        Some(Error::CapacityTooSmall)
    );
    let mut s = storage(64);
    assert_eq!(
        MemoryCache::new(&mut s, 1, 101).err(),
        Some(Error::InvalidValue {
            param: "memory-cache-low-watermark",
            value: 101,
            min: 0,
            max: 100
        })
    );
    let mut cache = MemoryCache::new(&mut s, 1, 20).unwrap();
    assert_eq!(cache.set_size_kib(3, |_| ()), Err(Error::CapacityTooSmall));
    assert_eq!(cache.capacity(), 32, "a rejected size changes nothing");
    let mut empty = storage(0);
    assert_eq!(
        MemoryCache::new(&mut empty, 0, 20).err(),
        Some(Error::CapacityTooSmall)
    );
}

#[test]
fn push_zeroizes_source_and_pop_is_fifo() {
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 20).unwrap();
    for id in 0..32 {
        let mut b = block(id);
        cache.push(&mut b).unwrap();
        assert_eq!(b, [0; 32], "the caller's copy must be wiped");
    }
    let mut b = block(99);
    assert_eq!(cache.push(&mut b), Err(Error::MemoryCacheFull));
    assert_eq!(b, block(99), "a refused block stays with the caller");
    let mut out = [0_u8; 32];
    for id in 0..32 {
        cache.pop(&mut out).unwrap();
        assert_eq!(id_of(&out), id);
    }
    let mut out = [7_u8; 32];
    assert_eq!(cache.pop(&mut out), Err(Error::Starving));
    assert_eq!(out, [7; 32]);
}

#[test]
fn slots_are_zeroized_when_blocks_leave_or_the_cache_drops() {
    let mut s = storage(64);
    {
        let mut cache = MemoryCache::new(&mut s, 2, 20).unwrap();
        let mut out = [0_u8; 32];
        // 60 in, 20 out: 40 held, 8 beyond 1 KiB (32 blocks).
        for id in 0..60 {
            cache.push(&mut block(id)).unwrap();
            if id % 3 == 0 {
                cache.pop(&mut out).unwrap();
            }
        }
        let mut spilled = Vec::new();
        cache.set_size_kib(1, |b| spilled.push(id_of(b))).unwrap();
        assert_eq!(spilled.len(), 8);
        assert!(!cache.is_empty(), "dropped with blocks queued");
        assert!(
            !format!("{cache:?}").contains("165"),
            "Debug must not print blocks"
        );
    }
    for slot in s {
        assert_eq!(slot.into_inner(), [0; 32]);
    }
}

#[test]
fn shrink_hands_back_the_oldest_excess_blocks() {
    let mut s = storage(64);
    let mut cache = MemoryCache::new(&mut s, 2, 0).unwrap();
    for id in 0..50 {
        cache.push(&mut block(id)).unwrap();
    }
    let mut spilled = Vec::new();
    assert_eq!(cache.set_size_kib(1, |b| spilled.push(id_of(b))), Ok(18));
    assert_eq!(spilled, (0..18).collect::<Vec<_>>());
    assert_eq!(cache.len(), 32);
    assert!(cache.is_full());
    // Growing takes effect at once.
    assert_eq!(cache.set_size_kib(2, |_| panic!("nothing to spill")), Ok(0));
    cache.push(&mut block(50)).unwrap();
    assert_eq!(cache.len(), 33);
    let mut out = [0; 32];
    cache.pop(&mut out).unwrap();
    assert_eq!(id_of(&out), 18);
    assert_eq!(cache.clear(), 32);
    assert!(cache.is_empty());
}

#[test]
fn refill_wanted_from_below_watermark_until_full() {
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 25).unwrap();
    // Empty at start: 0 < 25 % of 32 = 8.
    assert_eq!(cache.refill_wanted(), Some(32));
    for id in 0..31 {
        cache.push(&mut block(id)).unwrap();
    }
    assert_eq!(cache.refill_wanted(), Some(1));
    cache.push(&mut block(31)).unwrap();
    assert_eq!(cache.refill_wanted(), None);
    let mut out = [0; 32];
    // Down to 8 blocks: not below 8 yet.
    for _ in 0..24 {
        cache.pop(&mut out).unwrap();
    }
    assert_eq!(cache.refill_wanted(), None);
    cache.pop(&mut out).unwrap();
    assert_eq!(cache.refill_wanted(), Some(25));
    cache.push(&mut block(1)).unwrap();
    cache.push(&mut block(2)).unwrap();
    assert_eq!(
        cache.refill_wanted(),
        Some(23),
        "still refilling: hysteresis"
    );
}

#[test]
fn watermark_change_applies_at_once() {
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 0).unwrap();
    assert_eq!(cache.refill_wanted(), None, "0 % never wants a refill");
    for id in 0..16 {
        cache.push(&mut block(id)).unwrap();
    }
    cache.set_low_watermark(60).unwrap();
    assert_eq!(cache.refill_wanted(), Some(16));
    cache.set_low_watermark(10).unwrap();
    assert_eq!(
        cache.refill_wanted(),
        Some(16),
        "lowering does not end a refill"
    );
    assert!(cache.set_low_watermark(101).is_err());
    assert_eq!(cache.low_watermark(), 10);
}

// ---- the state machine against a hand-written model ----

#[derive(Clone, Debug)]
enum Op {
    Push,
    Pop,
    SetPercent(u8),
    SetSizeKib(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Push),
        5 => Just(Op::Pop),
        1 => (0_u8..=100).prop_map(Op::SetPercent),
        1 => (0_u64..=3).prop_map(Op::SetSizeKib),
    ]
}

/// The model: the refill flag as a state table. "Below" is written as
/// `len < ceil(percent * capacity / 100)` (a different formulation from the
/// crate's `len * 100 < percent * capacity`; equal for whole `len`).
struct Model {
    blocks: VecDeque<u64>,
    capacity: usize,
    percent: u8,
    refilling: bool,
}

impl Model {
    fn threshold(&self) -> usize {
        (usize::from(self.percent) * self.capacity).div_ceil(100)
    }

    /// | refilling | below | full | next |
    /// | no        | no    | -    | no   |
    /// | no        | yes   | -    | yes  |
    /// | yes       | -     | no   | yes  |
    /// | yes       | -     | yes  | no   |
    fn step(&mut self) {
        let below = self.blocks.len() < self.threshold();
        let full = self.blocks.len() >= self.capacity;
        self.refilling = match (self.refilling, below, full) {
            (false, false, _) => false,
            (false, true, _) => true,
            (true, _, false) => true,
            (true, _, true) => false,
        };
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn watermark_matches_model(
        size_kib in 0_u64..=3,
        percent in 0_u8..=100,
        ops in prop::collection::vec(op(), 0..if cfg!(miri) { 30 } else { 400 }),
    ) {
        let mut s = storage(96);
        let mut cache = MemoryCache::new(&mut s, size_kib, percent).unwrap();
        let mut model = Model {
            blocks: VecDeque::new(),
            capacity: usize::try_from(size_kib * 32).unwrap(),
            percent,
            refilling: false,
        };
        model.step();
        let mut next_id = 0_u64;
        let mut out_ids: Vec<u64> = Vec::new();
        let mut spilled_ids: Vec<u64> = Vec::new();
        for op in ops {
            let was = cache.refill_wanted().is_some();
            match op {
                Op::Push => {
                    let r = cache.push(&mut block(next_id));
                    if model.blocks.len() < model.capacity {
                        prop_assert_eq!(r, Ok(()));
                        model.blocks.push_back(next_id);
                    } else {
                        prop_assert_eq!(r, Err(Error::MemoryCacheFull));
                    }
                    next_id += 1;
                }
                Op::Pop => {
                    let mut out = [0; 32];
                    match model.blocks.pop_front() {
                        Some(id) => {
                            prop_assert_eq!(cache.pop(&mut out), Ok(()));
                            prop_assert_eq!(id_of(&out), id);
                            out_ids.push(id);
                        }
                        None => prop_assert_eq!(cache.pop(&mut out), Err(Error::Starving)),
                    }
                }
                Op::SetPercent(p) => {
                    prop_assert_eq!(cache.set_low_watermark(p), Ok(()));
                    model.percent = p;
                }
                Op::SetSizeKib(k) => {
                    let mut spilled = Vec::new();
                    let n = cache.set_size_kib(k, |b| spilled.push(id_of(b))).unwrap();
                    model.capacity = usize::try_from(k * 32).unwrap();
                    let mut want = Vec::new();
                    while model.blocks.len() > model.capacity {
                        want.push(model.blocks.pop_front().unwrap());
                    }
                    prop_assert_eq!(n, want.len());
                    prop_assert_eq!(&spilled, &want);
                    spilled_ids.extend(spilled);
                }
            }
            model.step();
            let now = cache.refill_wanted();
            prop_assert_eq!(now.is_some(), model.refilling, "refill flag differs from the model");
            if let Some(need) = now {
                prop_assert_eq!(need, model.capacity - model.blocks.len());
            }
            // No flapping: the flag turns off only when full, and turns on
            // only when below the watermark.
            let len = cache.len();
            if was && now.is_none() {
                prop_assert!(len >= cache.capacity(), "left refill before full");
            }
            if !was && now.is_some() {
                prop_assert!(len < model.threshold(), "entered refill while not below");
            }
            prop_assert_eq!(len, model.blocks.len());
            prop_assert_eq!(cache.capacity(), model.capacity);
        }
        // Conservation: every pushed block is out, spilled or still held,
        // exactly once.
        let mut rest = Vec::new();
        let mut out = [0; 32];
        while cache.pop(&mut out).is_ok() {
            rest.push(id_of(&out));
        }
        prop_assert_eq!(&rest, &Vec::from(model.blocks.clone()));
        let all: Vec<u64> = out_ids.iter().chain(&spilled_ids).chain(&rest).copied().collect();
        let unique: HashSet<u64> = all.iter().copied().collect();
        prop_assert_eq!(unique.len(), all.len(), "a block came out twice");
        prop_assert!(all.iter().all(|id| *id < next_id));
    }

    #[test]
    fn low_watermark_alone_matches_model(
        percent in 0_u8..=100,
        steps in prop::collection::vec((0_usize..=40, 0_usize..=40, prop::option::of(0_u8..=100)), 0..if cfg!(miri) { 20 } else { 200 }),
    ) {
        let mut w = LowWatermark::new(percent).unwrap();
        let mut model = Model { blocks: VecDeque::new(), capacity: 0, percent, refilling: false };
        for (len, capacity, new_percent) in steps {
            let len = len.min(capacity);
            model.blocks = (0..len as u64).collect();
            model.capacity = capacity;
            let got = match new_percent {
                Some(p) => {
                    model.percent = p;
                    w.set_percent(p, len, capacity).unwrap()
                }
                None => w.update(len, capacity),
            };
            model.step();
            prop_assert_eq!(got, model.refilling);
            prop_assert_eq!(w.refill_wanted(), model.refilling);
            prop_assert_eq!(w.blocks_wanted(len, capacity), if model.refilling { capacity - len } else { 0 });
        }
    }
}
