//! `MemoryCache` and `LowWatermark`: capacity from memory-cache-size,
//! zeroizing moves, resizing without silent loss, and the refill state
//! machine against a hand-written model (proptest).

// Test helpers: unwraps and panics are the assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};

use entropool::cache::{LowWatermark, MemoryCache};
use entropool::{Block, BlockSlot, Error, Slot, blocks_for_kib};
use proptest::prelude::*;

fn storage(blocks: usize) -> Vec<BlockSlot> {
    (0..blocks).map(|_| Slot::default()).collect()
}

/// Known blocks (`Block::from_test_bytes`, behind the `testing` feature:
/// outside tests only the mixer and the storage loader make blocks), each
/// naming itself: its id in the first 8 bytes, 0xA5 elsewhere.
struct Maker {
    next: u64,
}

impl Maker {
    fn new() -> Self {
        Maker { next: 0 }
    }

    /// The next block, with the next id.
    fn block(&mut self) -> Block {
        let mut b = [0xA5_u8; 32];
        b[..8].copy_from_slice(&self.next.to_le_bytes());
        self.next += 1;
        Block::from_test_bytes(b)
    }

    fn id_of(&self, b: &[u8; 32]) -> u64 {
        assert_eq!(&b[8..], &[0xA5; 24], "block content corrupted");
        let mut id = [0_u8; 8];
        id.copy_from_slice(&b[..8]);
        let id = u64::from_le_bytes(id);
        assert!(id < self.next, "not a block this maker made");
        id
    }

    /// The bytes of block `id`.
    fn bytes_of(id: u64) -> [u8; 32] {
        let mut b = [0xA5_u8; 32];
        b[..8].copy_from_slice(&id.to_le_bytes());
        b
    }
}

fn pop_id(cache: &mut MemoryCache<'_>, mk: &Maker) -> Option<u64> {
    cache.pop().map(|b| mk.id_of(b.as_bytes()))
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
fn push_and_pop_are_fifo_and_a_refused_block_comes_back() {
    let mut mk = Maker::new();
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 20).unwrap();
    for _ in 0..32 {
        cache.push(mk.block()).unwrap();
    }
    let extra = mk.block();
    let bytes = *extra.as_bytes();
    let back = cache.push(extra).unwrap_err();
    assert_eq!(back.as_bytes(), &bytes, "a refused block comes back whole");
    for id in 0..32 {
        assert_eq!(pop_id(&mut cache, &mk), Some(id));
    }
    assert!(cache.pop().is_none());
}

#[test]
fn write_out_takes_whole_blocks_in_order_and_cuts_the_last() {
    let mut mk = Maker::new();
    let mut s = storage(64);
    let mut cache = MemoryCache::new(&mut s, 2, 0).unwrap();
    let mut want = Vec::new();
    for _ in 0..5 {
        let b = mk.block();
        want.extend_from_slice(b.as_bytes());
        cache.push(b).unwrap();
    }
    // 70 bytes: blocks 0, 1 and the first 6 bytes of 2 (its rest wiped).
    let mut out = [0u8; 70];
    assert_eq!(cache.write_out(&mut out), 70);
    assert_eq!(&out[..], &want[..70]);
    assert_eq!(cache.len(), 2, "three blocks left the cache");
    // More asked than held: the two left, whole.
    let mut out = [0xEE_u8; 100];
    assert_eq!(cache.write_out(&mut out), 64);
    assert_eq!(&out[..64], &want[96..160]);
    assert_eq!(&out[64..], &[0xEE; 36], "nothing beyond what was held");
    assert!(cache.is_empty());
    assert_eq!(cache.write_out(&mut out), 0);
    assert_eq!(cache.write_out(&mut []), 0);
}

#[test]
fn write_out_matches_popping_one_by_one() {
    // Two makers in step: the same blocks for both caches.
    let mut mk = Maker::new();
    let mut mk2 = Maker::new();
    for len in [0_usize, 1, 31, 32, 33, 64, 95, 200] {
        let (mut s1, mut s2) = (storage(32), storage(32));
        let mut batch = MemoryCache::new(&mut s1, 1, 0).unwrap();
        let mut single = MemoryCache::new(&mut s2, 1, 0).unwrap();
        for _ in 0..4 {
            batch.push(mk.block()).unwrap();
            single.push(mk2.block()).unwrap();
        }
        let mut a = vec![0u8; len];
        let got = batch.write_out(&mut a);
        let mut b = vec![0u8; len];
        let mut done = 0;
        for chunk in b.chunks_mut(32) {
            match single.pop() {
                Some(block) => done += block.write_out(chunk),
                None => break,
            }
        }
        assert_eq!((got, &a), (done, &b), "len {len}");
        assert_eq!(batch.len(), single.len(), "len {len}");
    }
}

#[test]
fn shrink_hands_back_the_oldest_excess_blocks() {
    let mut mk = Maker::new();
    let mut s = storage(64);
    let mut cache = MemoryCache::new(&mut s, 2, 0).unwrap();
    for _ in 0..50 {
        cache.push(mk.block()).unwrap();
    }
    let mut spilled = Vec::new();
    assert_eq!(
        cache.set_size_kib(1, |b| spilled.push(mk.id_of(b.as_bytes()))),
        Ok(18)
    );
    assert_eq!(spilled, (0..18).collect::<Vec<_>>());
    assert_eq!(cache.len(), 32);
    assert!(cache.is_full());
    // Growing takes effect at once.
    assert_eq!(cache.set_size_kib(2, |_| panic!("nothing to spill")), Ok(0));
    cache.push(mk.block()).unwrap();
    assert_eq!(cache.len(), 33);
    assert_eq!(pop_id(&mut cache, &mk), Some(18));
    assert_eq!(cache.clear(), 32);
    assert!(cache.is_empty());
}

#[test]
fn refill_wanted_from_below_watermark_until_full() {
    let mut mk = Maker::new();
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 25).unwrap();
    // Empty at start: 0 < 25 % of 32 = 8.
    assert_eq!(cache.refill_wanted(), Some(32));
    for _ in 0..31 {
        cache.push(mk.block()).unwrap();
    }
    assert_eq!(cache.refill_wanted(), Some(1));
    cache.push(mk.block()).unwrap();
    assert_eq!(cache.refill_wanted(), None);
    // Down to 8 blocks (in one batch): not below 8 yet.
    assert_eq!(cache.write_out(&mut [0; 24 * 32]), 24 * 32);
    assert_eq!(cache.refill_wanted(), None);
    assert!(cache.pop().is_some());
    assert_eq!(cache.refill_wanted(), Some(25));
    cache.push(mk.block()).unwrap();
    cache.push(mk.block()).unwrap();
    assert_eq!(
        cache.refill_wanted(),
        Some(23),
        "still refilling: hysteresis"
    );
}

#[test]
fn watermark_change_applies_at_once() {
    let mut mk = Maker::new();
    let mut s = storage(32);
    let mut cache = MemoryCache::new(&mut s, 1, 0).unwrap();
    assert_eq!(cache.refill_wanted(), None, "0 % never wants a refill");
    for _ in 0..16 {
        cache.push(mk.block()).unwrap();
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
    WriteOut(usize),
    SetPercent(u8),
    SetSizeKib(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Push),
        4 => Just(Op::Pop),
        2 => (0_usize..150).prop_map(Op::WriteOut),
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
        let mut mk = Maker::new();
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
                    let r = cache.push(mk.block());
                    if model.blocks.len() < model.capacity {
                        prop_assert!(r.is_ok());
                        model.blocks.push_back(next_id);
                    } else {
                        prop_assert_eq!(r.map_err(|b| mk.id_of(b.as_bytes())), Err(next_id));
                    }
                    next_id += 1;
                }
                Op::Pop => {
                    let got = pop_id(&mut cache, &mk);
                    prop_assert_eq!(got, model.blocks.pop_front());
                    out_ids.extend(got);
                }
                Op::WriteOut(len) => {
                    let mut out = vec![0u8; len];
                    let n = cache.write_out(&mut out);
                    let mut want = Vec::new();
                    for _ in 0..len.div_ceil(32) {
                        want.extend(model.blocks.pop_front());
                    }
                    prop_assert_eq!(n, (want.len() * 32).min(len));
                    for (chunk, id) in out.chunks(32).zip(&want) {
                        prop_assert_eq!(chunk, &Maker::bytes_of(*id)[..chunk.len()]);
                    }
                    out_ids.extend(want);
                }
                Op::SetPercent(p) => {
                    prop_assert_eq!(cache.set_low_watermark(p), Ok(()));
                    model.percent = p;
                }
                Op::SetSizeKib(k) => {
                    let mut spilled = Vec::new();
                    let n = cache.set_size_kib(k, |b| spilled.push(mk.id_of(b.as_bytes()))).unwrap();
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
        while let Some(id) = pop_id(&mut cache, &mk) {
            rest.push(id);
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
