//! Never replay, under every crash point and every failed write.
//!
//! A fake medium counts its writes, flushes and resizes. For every `k` a
//! scenario runs until operation `k`, where the process "dies": the medium
//! keeps what was flushed, plus any subset of the writes since the last
//! flush, plus optionally one of the others torn to a prefix (so both
//! "unflushed writes are lost" and "the k-th write is the last to reach
//! the medium, maybe torn" are covered, in any order the writes might have
//! reached it). Each such medium is re-opened ("restart") and the scenario
//! continues to the end, then drains the store. Each pushed block is
//! unique; across every run no block may come out twice, nothing may come
//! out that was not pushed, the store must always open, and a crash may
//! lose at most the blocks in flight (those of the one operation).
//!
//! A second family injects one failed operation (an I/O error, a write
//! torn to a prefix) that the process survives, and checks that nothing
//! stored earlier is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test-sized values (a few hundred bytes) fit every integer type.
#![allow(clippy::cast_possible_truncation)]

use core::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use entropool::storage::{LoadReport, StorageCache, key_block, layout_len};
use entropool::{Block, Error, SourceMask, Storage};

/// The start key of every open here.
const KEY: [u8; 32] = [0x22; 32];

/// Open with every source allowed and [`KEY`].
fn open<S: Storage>(s: S, slots: u64) -> Result<(StorageCache<S>, LoadReport), Error> {
    StorageCache::open(s, slots, SourceMask::new(15).unwrap(), &KEY)
}

/// A write not yet flushed.
#[derive(Clone, Debug)]
struct Pending {
    offset: usize,
    data: Vec<u8>,
}

/// What the medium held when the process died.
#[derive(Clone, Debug)]
struct Crash {
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

/// How the one injected failure behaves.
#[derive(Clone, Copy, Debug)]
enum Fail {
    /// The operation returns an error; a write lands a prefix of this many
    /// bytes first (capped at its length).
    Io(usize),
}

#[derive(Debug, Default)]
struct Medium {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What reads see: `durable` plus the pending writes.
    view: Vec<u8>,
    pending: Vec<Pending>,
    /// A file-like medium that `set_capacity` resizes.
    resizable: bool,
    /// Operations (write, flush, resize) so far.
    ops: usize,
    /// The operation number at which the process dies.
    crash_at: Option<usize>,
    /// The operation number that fails once, and how.
    fail_at: Option<(usize, Fail)>,
    crash: Option<Crash>,
}

impl Medium {
    fn new(bytes: Vec<u8>, resizable: bool) -> Self {
        Medium {
            durable: bytes.clone(),
            view: bytes,
            resizable,
            ..Medium::default()
        }
    }

    /// Count an operation; `Err(true)` when the process dies at it,
    /// `Err(false)` when it is the injected failure.
    fn tick(&mut self) -> Result<(), Option<Fail>> {
        if self.crash.is_some() {
            return Err(None);
        }
        self.ops += 1;
        if self.crash_at == Some(self.ops) {
            return Err(None);
        }
        match self.fail_at {
            Some((k, f)) if k == self.ops => Err(Some(f)),
            _ => Ok(()),
        }
    }

    fn die(&mut self) {
        if self.crash.is_none() {
            self.crash = Some(Crash {
                durable: self.durable.clone(),
                pending: self.pending.clone(),
            });
        }
    }
}

/// A shared handle, so the test keeps the medium when `open` fails.
#[derive(Clone, Debug)]
struct Handle(Rc<RefCell<Medium>>);

impl Storage for Handle {
    fn capacity(&self) -> u64 {
        self.0.borrow().view.len() as u64
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let m = self.0.borrow();
        if m.crash.is_some() {
            return Err(Error::StorageIo { errno: 5 });
        }
        let start = offset as usize;
        let src = m
            .view
            .get(start..start + buf.len())
            .ok_or(Error::CapacityTooSmall)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut m = self.0.borrow_mut();
        let start = offset as usize;
        if start + data.len() > m.view.len() {
            return Err(Error::CapacityTooSmall);
        }
        let (landed, fail) = match m.tick() {
            Ok(()) => (data.len(), false),
            Err(None) => {
                // Dies during this write: it is pending, and the crash
                // variants decide how much of it reached the medium.
                m.pending.push(Pending {
                    offset: start,
                    data: data.to_vec(),
                });
                m.die();
                return Err(Error::StorageIo { errno: 5 });
            }
            Err(Some(Fail::Io(prefix))) => (prefix.min(data.len()), true),
        };
        m.view[start..start + landed].copy_from_slice(&data[..landed]);
        m.pending.push(Pending {
            offset: start,
            data: data[..landed].to_vec(),
        });
        if fail {
            Err(Error::StorageIo { errno: 5 })
        } else {
            Ok(())
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        let mut m = self.0.borrow_mut();
        match m.tick() {
            Ok(()) => {
                m.durable = m.view.clone();
                m.pending.clear();
                Ok(())
            }
            Err(None) => {
                m.die();
                Err(Error::StorageIo { errno: 5 })
            }
            // A failed flush: nothing more is known to be durable.
            Err(Some(_)) => Err(Error::StorageIo { errno: 5 }),
        }
    }

    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        let mut m = self.0.borrow_mut();
        if !m.resizable {
            return if bytes <= m.view.len() as u64 {
                Ok(())
            } else {
                Err(Error::CapacityTooSmall)
            };
        }
        if m.view.len() as u64 == bytes {
            return Ok(());
        }
        match m.tick() {
            Ok(()) => {
                // Like `set_len` + `fsync`: durable, with pending writes
                // inside the kept range still pending.
                let n = bytes as usize;
                m.view.resize(n, 0);
                m.durable.resize(n, 0);
                m.pending.retain(|p| p.offset + p.data.len() <= n);
                Ok(())
            }
            Err(None) => {
                m.die();
                Err(Error::StorageIo { errno: 5 })
            }
            Err(Some(_)) => Err(Error::StorageIo { errno: 5 }),
        }
    }
}

/// Block `n`: its number, then a fixed pattern that garbage would break.
fn block(n: u64) -> [u8; 32] {
    let mut b = [0x5Au8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

/// The number of a taken block (keyed with [`KEY`]), if it is one of
/// ours.
fn number(b: &[u8; 32]) -> Option<u64> {
    static KEYED: std::sync::OnceLock<std::collections::HashMap<[u8; 32], u64>> =
        std::sync::OnceLock::new();
    KEYED
        .get_or_init(|| (0..4096).map(|n| (key_block(&KEY, &block(n)), n)).collect())
        .get(b)
        .copied()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// (Re)open with this many slots.
    Open(u64),
    Push,
    Take,
    /// `push_many` of this many blocks (one flush).
    PushMany(usize),
    /// `take_many` of up to this many blocks (one flush).
    TakeMany(usize),
}

/// What one chain of runs saw.
#[derive(Clone, Debug, Default)]
struct Tracker {
    next: u64,
    /// Blocks whose push returned `Ok(true)`.
    stored: HashSet<u64>,
    handed_out: HashSet<u64>,
}

impl Tracker {
    fn hand_out(&mut self, b: &[u8; 32], ctx: &str) {
        let n = number(b).unwrap_or_else(|| panic!("{ctx}: garbage handed out: {b:?}"));
        assert!(n < self.next, "{ctx}: block {n} was never pushed");
        assert!(self.handed_out.insert(n), "{ctx}: block {n} REPLAYED");
    }
}

enum End {
    Done,
    /// The process died at this op.
    Died(usize),
}

/// Run `ops[from..]` on `h`; the cache is (re)opened by `Open` ops, and
/// `Open` errors are retried once (the injected failure happens once).
fn run(h: &Handle, ops: &[Op], from: usize, t: &mut Tracker, ctx: &str) -> End {
    let mut cache: Option<StorageCache<Handle>> = None;
    for (i, op) in ops.iter().enumerate().skip(from) {
        let dead = || h.0.borrow().crash.is_some();
        match *op {
            Op::Open(n) => {
                drop(cache.take());
                let mut r = open(h.clone(), n);
                if r.is_err() && !dead() {
                    r = open(h.clone(), n);
                }
                match r {
                    Ok((c, _)) => cache = Some(c),
                    Err(e) => {
                        assert!(dead(), "{ctx}: open failed without a crash: {e}");
                        return End::Died(i);
                    }
                }
            }
            Op::Push => {
                let Some(c) = cache.as_mut() else { continue };
                let n = t.next;
                t.next += 1;
                match c.push(Block::from_test_bytes(block(n))) {
                    Ok(None) => {
                        t.stored.insert(n);
                    }
                    Ok(Some(b)) => {
                        assert_eq!(b.as_bytes(), &block(n), "{ctx}: full store took the block");
                    }
                    Err(_) => {}
                }
            }
            Op::PushMany(k) => {
                let Some(c) = cache.as_mut() else { continue };
                let first = t.next;
                t.next += k as u64;
                let mut bs: Vec<Option<Block>> = (first..first + k as u64)
                    .map(|n| Some(Block::from_test_bytes(block(n))))
                    .collect();
                match c.push_many(&mut bs) {
                    Ok(n) => {
                        for (i, b) in bs.iter().enumerate() {
                            if i < n {
                                assert!(b.is_none(), "{ctx}: pushed block not taken");
                                t.stored.insert(first + i as u64);
                            } else {
                                assert_eq!(
                                    b.as_ref().map(Block::as_bytes),
                                    Some(&block(first + i as u64)),
                                    "{ctx}: unstored touched"
                                );
                            }
                        }
                    }
                    Err(_) => assert!(bs.iter().all(Option::is_none), "{ctx}: not wiped"),
                }
            }
            Op::TakeMany(k) => {
                let Some(c) = cache.as_mut() else { continue };
                let mut outs = vec![[0xEEu8; 32]; k];
                match c.take_many(&mut outs) {
                    Ok(n) => {
                        for (i, b) in outs.iter().enumerate() {
                            if i < n {
                                t.hand_out(b, ctx);
                            } else {
                                assert_eq!(*b, [0xEE; 32], "{ctx}: beyond n touched");
                            }
                        }
                    }
                    Err(_) => assert!(outs.iter().all(|b| *b == [0; 32]), "{ctx}: not wiped"),
                }
            }
            Op::Take => {
                let Some(c) = cache.as_mut() else { continue };
                let mut out = [0xEEu8; 32];
                match c.take(&mut out) {
                    Ok(true) => t.hand_out(&out, ctx),
                    Ok(false) => assert_eq!(out, [0xEE; 32], "{ctx}: empty take wrote out"),
                    Err(_) => assert!(
                        out == [0xEE; 32] || out == [0; 32],
                        "{ctx}: failed take left a block in out"
                    ),
                }
            }
        }
        if dead() {
            return End::Died(i);
        }
    }
    // Drain what is left.
    if let Some(c) = cache.as_mut() {
        let mut out = [0u8; 32];
        // One more round than slots: an injected failure costs one.
        for _ in 0..c.capacity_blocks() + 2 {
            match c.take(&mut out) {
                Ok(true) => t.hand_out(&out, ctx),
                Ok(false) => break,
                Err(_) if h.0.borrow().crash.is_some() => return End::Died(ops.len()),
                Err(_) => {}
            }
        }
    }
    End::Done
}

/// The slot count in effect after `ops[..=i]`.
fn cap_at(ops: &[Op], i: usize) -> u64 {
    ops[..=i]
        .iter()
        .rev()
        .find_map(|op| match op {
            Op::Open(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// Every medium a crash can leave: the durable bytes plus any subset of the
/// pending writes (in order), plus optionally one other pending write torn.
fn crash_images(c: &Crash) -> Vec<Vec<u8>> {
    let p = c.pending.len();
    assert!(p <= 8, "too many pending writes to enumerate: {p}");
    let mut out = Vec::new();
    for mask in 0u32..(1 << p) {
        let mut tears: Vec<Option<(usize, usize)>> = vec![None];
        for (w, pw) in c.pending.iter().enumerate() {
            if mask & (1 << w) == 0 {
                let len = pw.data.len();
                for t in [1, len / 2, len.saturating_sub(1)] {
                    if t > 0 && t < len {
                        tears.push(Some((w, t)));
                    }
                }
            }
        }
        tears.dedup();
        for tear in tears {
            let mut img = c.durable.clone();
            for (w, pw) in c.pending.iter().enumerate() {
                let n = if mask & (1 << w) != 0 {
                    pw.data.len()
                } else if let Some((tw, t)) = tear.filter(|&(tw, _)| tw == w) {
                    debug_assert_eq!(tw, w);
                    t
                } else {
                    0
                };
                let end = (pw.offset + n).min(img.len());
                if pw.offset < end {
                    img[pw.offset..end].copy_from_slice(&pw.data[..end - pw.offset]);
                }
            }
            out.push(img);
        }
    }
    out
}

fn medium_bytes(ops: &[Op], resizable: bool) -> Vec<u8> {
    if resizable {
        Vec::new()
    } else {
        let max = ops
            .iter()
            .filter_map(|op| match op {
                Op::Open(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        vec![0; layout_len(max).unwrap() as usize]
    }
}

/// Run every crash point of `ops`; returns how many chains ran.
fn every_crash(ops: &[Op], resizable: bool, max_lost: Option<usize>) -> usize {
    // Count the operations of a crash-free run.
    let h = Handle(Rc::new(RefCell::new(Medium::new(
        medium_bytes(ops, resizable),
        resizable,
    ))));
    let mut t = Tracker::default();
    assert!(matches!(run(&h, ops, 0, &mut t, "clean"), End::Done));
    let total = h.0.borrow().ops;
    assert!(total > 10, "scenario too small: {total}");
    if let Some(max) = max_lost {
        assert_eq!(t.stored.len(), t.handed_out.len(), "clean run lost blocks");
        assert!(max <= in_flight(ops));
    }

    let mut chains = 0;
    // Under miri, every 7th crash point (SHA-256 is slow there).
    for k in (1..=total).step_by(if cfg!(miri) { 7 } else { 1 }) {
        let h = Handle(Rc::new(RefCell::new(Medium::new(
            medium_bytes(ops, resizable),
            resizable,
        ))));
        h.0.borrow_mut().crash_at = Some(k);
        let mut before = Tracker::default();
        let End::Died(at) = run(&h, ops, 0, &mut before, &format!("k={k}")) else {
            panic!("k={k}: no crash happened");
        };
        let crash = h.0.borrow().crash.clone().unwrap();
        for (v, img) in crash_images(&crash).into_iter().enumerate() {
            // `at == ops.len()`: died in the final drain.
            let last = at.min(ops.len() - 1);
            let ctx = format!("k={k} variant={v} op={at} {:?}", ops.get(at));
            let mut t = before.clone();
            let h2 = Handle(Rc::new(RefCell::new(Medium::new(img, resizable))));
            // Restart: open with the size in effect, then carry on.
            let mut resumed = vec![Op::Open(cap_at(ops, last))];
            resumed.extend_from_slice(ops.get(at + 1..).unwrap_or(&[]));
            assert!(
                matches!(run(&h2, &resumed, 0, &mut t, &ctx), End::Done),
                "{ctx}: restart did not finish"
            );
            if max_lost.is_some() {
                // Only the blocks of the operation that died may be lost
                // (one, when it died in the final drain).
                let max = ops.get(at).map_or(1, |op| in_flight(&[*op]));
                let lost = t.stored.difference(&t.handed_out).count();
                assert!(lost <= max, "{ctx}: {lost} stored blocks lost");
            }
            chains += 1;
        }
    }
    chains
}

/// The most blocks one operation handles: what one crash may lose.
fn in_flight(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match *op {
            Op::PushMany(k) | Op::TakeMany(k) => k,
            Op::Push | Op::Take => 1,
            Op::Open(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

fn steady() -> Vec<Op> {
    use Op::*;
    vec![
        Open(4),
        Push,
        Push,
        Push,
        Take,
        Push,
        Push,
        Push, // full: refused
        Take,
        Take,
        Push,
        Open(4), // a clean restart
        Take,
        Push,
        Take,
        Take,
        Take,
        Take, // empty
        Push,
        Push,
        TakeMany(3), // two there
        PushMany(3),
        PushMany(3), // one fits
        TakeMany(2),
        Open(4),
        TakeMany(5),
    ]
}

fn resizing() -> Vec<Op> {
    use Op::*;
    vec![
        Open(3),
        Push,
        Push,
        Push,
        Open(5), // grow
        Push,
        Push,
        Take,
        Open(2), // shrink: the blocks in slots 2.. are wiped
        Take,
        Push,
        Push,
        Open(4),
        Take,
        Push,
        Take,
    ]
}

#[test]
fn no_replay_at_any_crash_point_fixed_medium() {
    let chains = every_crash(&steady(), false, Some(in_flight(&steady())));
    assert!(chains > if cfg!(miri) { 5 } else { 50 }, "{chains}");
}

#[test]
fn no_replay_at_any_crash_point_file_like_medium() {
    let chains = every_crash(&steady(), true, Some(in_flight(&steady())));
    assert!(chains > if cfg!(miri) { 5 } else { 50 }, "{chains}");
}

#[test]
fn no_replay_at_any_crash_point_while_resizing() {
    every_crash(&resizing(), false, None);
    every_crash(&resizing(), true, None);
}

/// A medium that makes every write durable at once but never persists a
/// flush-less erase would be fooled by a cache that forgot to flush; this
/// checks the ordering directly: when `take` hands a block out, the erase
/// of its slot is already durable.
#[test]
fn erase_is_durable_before_handout() {
    let h = Handle(Rc::new(RefCell::new(Medium::new(
        vec![0; layout_len(4).unwrap() as usize],
        false,
    ))));
    let (mut c, _) = open(h.clone(), 4).unwrap();
    for n in 0..4 {
        assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
    }
    let mut out = [0u8; 32];
    while c.take(&mut out).unwrap() {
        let m = h.0.borrow();
        assert!(m.pending.is_empty(), "handed out with unflushed writes");
        let n = number(&out).unwrap();
        // The block's bytes appear nowhere in the durable medium.
        assert!(
            !m.durable.windows(32).any(|w| w == block(n)),
            "block {n} still durable after handout"
        );
    }
}

/// One failed operation (I/O error, or a write torn to a prefix) that the
/// process survives, at every operation of the scenario: nothing stored
/// before it is lost (at most the one block in flight), nothing comes out
/// twice, and a restart afterwards finds the rest.
#[test]
fn a_failed_operation_loses_no_stored_block() {
    for resizable in [false, true] {
        let ops = steady();
        let h = Handle(Rc::new(RefCell::new(Medium::new(
            medium_bytes(&ops, resizable),
            resizable,
        ))));
        let mut t = Tracker::default();
        assert!(matches!(run(&h, &ops, 0, &mut t, "clean"), End::Done));
        let total = h.0.borrow().ops;
        for k in (1..=total).step_by(if cfg!(miri) { 7 } else { 1 }) {
            for prefix in [0usize, 1, 32, 63, 1000] {
                let ctx = format!("resizable={resizable} k={k} prefix={prefix}");
                let h = Handle(Rc::new(RefCell::new(Medium::new(
                    medium_bytes(&ops, resizable),
                    resizable,
                ))));
                h.0.borrow_mut().fail_at = Some((k, Fail::Io(prefix)));
                let mut t = Tracker::default();
                assert!(matches!(run(&h, &ops, 0, &mut t, &ctx), End::Done), "{ctx}");
                // Restart on what is durable (and then on what reads saw:
                // both must be safe) and drain again.
                for img in [h.0.borrow().durable.clone(), h.0.borrow().view.clone()] {
                    let mut t2 = t.clone();
                    let h2 = Handle(Rc::new(RefCell::new(Medium::new(img, resizable))));
                    assert!(matches!(
                        run(&h2, &[Op::Open(4)], 0, &mut t2, &ctx),
                        End::Done
                    ));
                    let lost = t2.stored.difference(&t2.handed_out).count();
                    assert!(lost <= in_flight(&ops), "{ctx}: {lost} stored blocks lost");
                }
            }
        }
    }
}

/// A failed push (the medium refuses the write) leaves every earlier block
/// intact and readable, in this session and after a restart.
#[test]
fn failed_push_keeps_earlier_blocks() {
    let h = Handle(Rc::new(RefCell::new(Medium::new(
        vec![0; layout_len(8).unwrap() as usize],
        false,
    ))));
    let (mut c, _) = open(h.clone(), 8).unwrap();
    for n in 0..5 {
        assert!(c.push(Block::from_test_bytes(block(n))).unwrap().is_none());
    }
    // (which operation of the push fails, how much of the write lands):
    // the write fails with nothing landed, torn, or whole; the flush fails.
    for (nth, prefix) in [(1, 0), (1, 40), (1, 64), (2, 0)] {
        let k = h.0.borrow().ops;
        h.0.borrow_mut().fail_at = Some((k + nth, Fail::Io(prefix)));
        assert_eq!(
            c.push(Block::from_test_bytes(block(100))),
            Err(Error::StorageIo { errno: 5 })
        );
        // A failed write stores nothing; after a failed flush the block is
        // in the medium's view but maybe not durable.
        let want = if nth == 2 { 6 } else { 5 };
        assert_eq!(c.len(), want);
        h.0.borrow_mut().fail_at = None;
        // Re-open from the durable bytes: the five are all there.
        let img = h.0.borrow().durable.clone();
        let h2 = Handle(Rc::new(RefCell::new(Medium::new(img, false))));
        let (mut c2, r) = open(h2, 8).unwrap();
        assert!(r.blocks >= 5, "{r:?}");
        let mut got = HashSet::new();
        let mut out = [0u8; 32];
        while c2.take(&mut out).unwrap() {
            got.insert(number(&out).unwrap());
        }
        for n in 0..5 {
            assert!(got.contains(&n), "block {n} lost after a failed push");
        }
    }
    let mut out = [0u8; 32];
    let mut got = HashSet::new();
    while c.take(&mut out).unwrap() {
        assert!(got.insert(number(&out).unwrap()));
    }
    assert!((0..5).all(|n| got.contains(&n)));
}
