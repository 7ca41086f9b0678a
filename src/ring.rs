//! A lock-free single-producer/single-consumer ring whose capacity is chosen
//! at run time, over storage the caller provides.
//!
//! # Contract
//!
//! - [`Ring::new`] takes `&mut [Slot<T>]` (a `static` array in firmware, a
//!   boxed slice with `std`); the capacity is the slice length. Nothing is
//!   allocated. With `std`, [`Ring::new_shared`] allocates the storage once
//!   and hands out `'static` halves that can move to any thread.
//! - [`Ring::split`] gives one [`Producer`] and one [`Consumer`]; each may
//!   live on its own thread. Every operation is wait-free: O(1) (or O(n) for
//!   a batch of n), no locks, no allocation, never blocks, never spins.
//! - Failures return ownership: [`Producer::push`] gives the value back in
//!   `Err` when the ring is full; [`Consumer::pop`] returns `None` when empty.
//! - A slot is wiped as its value leaves: the value is moved out with
//!   [`core::mem::take`] (or, for [`Consumer::pop_with`] and
//!   [`Consumer::pop_many_with`], the caller sees it in place and the slot
//!   is then overwritten with `T::default()`). The wipe
//!   is written *before* the `Release` store that hands the slot back to the
//!   producer, so it is an observable store the compiler cannot drop. Values
//!   still queued when the ring is dropped or [`Ring::clear`]ed are taken out
//!   and dropped the same way. Hence `T: Default` everywhere.
//! - Code that holds both ends can use the single-owner API on `&mut Ring`
//!   ([`Ring::push`], [`Ring::pop`], [`Ring::len`], [`Ring::clear`], ...).
//!
//! # Why not heapless
//!
//! heapless' `spsc::Queue<T, N>` fixes its capacity at compile time (and
//! holds N - 1 items). The memory cache's size comes from the
//! `memory-cache-size` tunable at run time and may change while running, and
//! the interrupt rings are sized by the firmware integrator per CPU; both sit
//! over caller storage. So this module is our own ring, modelled on rtrb
//! (positions in `0..2 * capacity`, each side caching the other's index,
//! indices on separate cache lines except on bare-metal Arm: see
//! `CachePadded`), proven with loom (`tests/loom_ring.rs`)
//! and miri (this module's tests and `tests/ring_*.rs`). Where a capacity is a
//! compile-time constant and no wipe is needed, heapless is the better tool.
//!
//! # Memory ordering
//!
//! `tail` is written only by the producer, `head` only by the consumer. Each
//! side reads the other's index with `Acquire` and publishes its own with
//! `Release`: the producer's slot write happens-before the consumer reads it,
//! and the consumer's read-and-wipe happens-before the producer reuses the
//! slot.
#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::error::Error;
use sync::{AtomicUsize, Ordering, UnsafeCell};

/// Atomics and cells: loom's under `cfg(loom)`, core's otherwise.
mod sync {
    #[cfg(loom)]
    pub(crate) use loom::cell::UnsafeCell;
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

    #[cfg(not(loom))]
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};

    /// `core::cell::UnsafeCell` with loom's closure-based access API.
    #[cfg(not(loom))]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Keeps a value on its own cache line pair (128 bytes: x86_64's adjacent
/// line prefetcher pulls lines in pairs), so the producer's and the
/// consumer's indices never share a line. 32-bit Arm with an operating
/// system (Linux on Cortex-A: 32- or 64-byte lines) pads to 32 bytes, as
/// crossbeam's `CachePadded` does there.
///
/// Bare-metal 32-bit Arm (`target_os = "none"`: the Cortex-M firmware this
/// crate is linked into) does not pad at all. False sharing needs two cores
/// whose coherent data caches fight over one line; a Cortex-M part has one
/// core, M0 to M4 have no data cache, and an M7's cache serves that one
/// core (the dual-core parts, an RP2040's two M0+ or an M7 beside an M4,
/// have no data cache or no coherent one, so a line is never bounced
/// between caches). There the padding would only be RAM: a ring is 16
/// bytes instead of 96 (the interrupt ring's control block and the memory
/// cache's ring), and whatever holds a ring is no longer 32-byte aligned.
/// (A bare-metal Cortex-A or -R system running both ends on two coherent
/// cores would lose only speed to false sharing, never correctness.)
///
/// A ring's two ends must share one coherent view of memory, on every
/// target: never share a ring between cores whose caches are not coherent
/// (an M7 with its data cache on beside an M4), even with cache lines
/// cleaned and invalidated by hand. Unpadded, both indices sit in one
/// line, and one core's write-back of its stale copy would undo the
/// other's update: a slot could then be read twice.
#[cfg_attr(not(target_arch = "arm"), repr(align(128)))]
#[cfg_attr(all(target_arch = "arm", not(target_os = "none")), repr(align(32)))]
struct CachePadded<T>(T);

// Bare-metal Arm: a ring is its two indices, the storage pointer and the
// capacity, with no padding (checked wherever the firmware builds).
#[cfg(all(target_arch = "arm", target_os = "none", not(loom)))]
const _: () = assert!(core::mem::size_of::<Ring<'static, u64>>() == 4 * core::mem::size_of::<usize>());

/// One storage cell of a ring (the memory cache, the interrupt ring). Always holds a valid `T` (`T::default()`
/// when empty), so no slot is ever uninitialised.
pub struct Slot<T>(UnsafeCell<T>);

impl<T> Slot<T> {
    /// A slot holding `value` (the value is treated as empty by a new ring
    /// and overwritten by the first push into this slot).
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// A slot holding `value` (loom build: not `const`).
    #[cfg(loom)]
    #[must_use]
    pub fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }
}

impl<T> Slot<T> {
    /// The value the slot holds (a wiped `T::default()` once its value was
    /// popped). Lets a caller inspect or reuse storage after the ring is
    /// gone.
    #[must_use]
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: Default> Default for Slot<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot { .. }")
    }
}

/// A single-producer/single-consumer ring over caller-provided storage.
///
/// Positions run over `0..2 * capacity` so that a full ring (distance
/// `capacity`) and an empty one (distance 0) differ without a spare slot.
pub struct Ring<'s, T: Default> {
    /// Consumer position (next slot to pop). Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Producer position (next slot to fill). Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// First slot of the caller's storage; `capacity` slots follow.
    slots: NonNull<Slot<T>>,
    /// Number of slots; at least 1, and `2 * capacity` fits in `usize`.
    capacity: usize,
    _storage: PhantomData<&'s mut [Slot<T>]>,
}

// SAFETY: the ring owns exclusive access to its storage (taken as `&mut`);
// moving it to another thread moves that access, which is sound when `T` is.
unsafe impl<T: Default + Send> Send for Ring<'_, T> {}
// SAFETY: through `&Ring` only the atomic indices are read (`len`,
// `capacity`); slots are touched only by the one `Producer` and the one
// `Consumer`, which `split(&mut self)` makes unique and which synchronise
// through the Acquire/Release indices.
unsafe impl<T: Default + Send> Sync for Ring<'_, T> {}

impl<'s, T: Default> Ring<'s, T> {
    /// A ring over `storage`; its capacity is `storage.len()`. The values
    /// already in `storage` are treated as empty slots.
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if `storage` is empty, or (zero-sized `T`
    /// only) longer than `usize::MAX / 2`.
    pub fn new(storage: &'s mut [Slot<T>]) -> Result<Self, Error> {
        let capacity = storage.len();
        if capacity == 0 || capacity.checked_mul(2).is_none() {
            return Err(Error::CapacityTooSmall);
        }
        Ok(Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            slots: NonNull::from(storage).cast::<Slot<T>>(),
            capacity,
            _storage: PhantomData,
        })
    }

    /// How many values the ring holds when full.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of values queued now.
    #[must_use]
    pub fn len(&self) -> usize {
        // Acquire on both: pairs with the Release stores of either side.
        // Through `&self` no half exists (`split` takes `&mut self`), so the
        // two loads see a settled state.
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        self.distance(head, tail)
    }

    /// `true` when nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` when a push would fail.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    /// Splits into the producer and the consumer half. They borrow the ring;
    /// after both are dropped the ring can be used (or split) again.
    pub fn split(&mut self) -> (Producer<'_, T>, Consumer<'_, T>) {
        // Relaxed: `&mut self` proves no half is alive, and whatever handed
        // us `&mut self` already synchronised with earlier users.
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        let ring = NonNull::from(&*self);
        (
            Producer {
                ring,
                cached_head: head,
                tail,
                #[cfg(feature = "std")]
                _keep: None,
                _ring: PhantomData,
            },
            Consumer {
                ring,
                head,
                cached_tail: tail,
                #[cfg(feature = "std")]
                _keep: None,
                _ring: PhantomData,
            },
        )
    }

    /// Single-owner push.
    ///
    /// # Errors
    ///
    /// Gives `value` back when the ring is full.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn push(&mut self, value: T) -> Result<(), T> {
        self.split().0.push(value)
    }

    /// Single-owner in-place push (see [`Producer::push_with`]).
    ///
    /// # Errors
    ///
    /// Gives `f` back (not called) when the ring is full.
    pub fn push_with<F: FnOnce(&mut T)>(&mut self, f: F) -> Result<(), F> {
        self.split().0.push_with(f)
    }

    /// Single-owner pop: the oldest value, its slot wiped; `None` when empty.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn pop(&mut self) -> Option<T> {
        self.split().1.pop()
    }

    /// Single-owner in-place pop (see [`Consumer::pop_with`]).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.split().1.pop_with(f)
    }

    /// Single-owner in-place batch pop (see [`Consumer::pop_many_with`]).
    pub fn pop_many_with(&mut self, max: usize, f: impl FnMut(&mut T)) -> usize {
        self.split().1.pop_many_with(max, f)
    }

    /// Removes and drops every queued value, wiping each slot. Returns how
    /// many were removed.
    pub fn clear(&mut self) -> usize {
        let (_, mut consumer) = self.split();
        let mut removed = 0_usize;
        // Bounded: at most `capacity` values are queued and nobody pushes.
        while consumer.pop().is_some() {
            removed = removed.wrapping_add(1);
        }
        removed
    }

    /// Maps a position in `0..2 * capacity` to a slot index in
    /// `0..capacity`.
    #[inline(always)]
    fn collapse(&self, pos: usize) -> usize {
        if pos < self.capacity {
            pos
        } else {
            pos.wrapping_sub(self.capacity)
        }
    }

    /// The position after `pos`.
    #[inline(always)]
    fn increment1(&self, pos: usize) -> usize {
        // `2 * capacity` cannot overflow (checked in `new`).
        if pos.wrapping_add(1) < self.capacity.wrapping_mul(2) {
            pos.wrapping_add(1)
        } else {
            0
        }
    }

    /// Number of values between positions `head` and `tail`.
    #[inline(always)]
    fn distance(&self, head: usize, tail: usize) -> usize {
        if head <= tail {
            tail.wrapping_sub(head)
        } else {
            self.capacity
                .wrapping_mul(2)
                .wrapping_sub(head)
                .wrapping_add(tail)
        }
    }

    /// The slot at position `pos` (any position in `0..2 * capacity`).
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = self.collapse(pos);
        debug_assert!(index < self.capacity);
        // SAFETY: positions stay in `0..2 * capacity` (`increment1` wraps at
        // `2 * capacity`), so `collapse` yields `index < capacity`, and
        // `slots` points at `capacity` initialised slots borrowed for `'s`.
        unsafe { &*self.slots.as_ptr().add(index) }
    }
}

impl<T: Default> Drop for Ring<'_, T> {
    fn drop(&mut self) {
        // Values still queued leave now: taken out (slot wiped) and dropped.
        self.clear();
    }
}

impl<T: Default> fmt::Debug for Ring<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Keeps a [`Ring::new_shared`] allocation alive (type-erased so the halves
/// need no `T: 'static` bound).
#[cfg(feature = "std")]
type Keep = std::sync::Arc<dyn Send + Sync>;

/// Storage and ring in one heap allocation, for [`Ring::new_shared`].
#[cfg(feature = "std")]
struct Shared<T: Default + 'static> {
    /// The ring over `storage`. Dropped (wiping its slots) before `storage`
    /// is freed.
    ring: core::mem::ManuallyDrop<Ring<'static, T>>,
    /// The boxed storage, as the raw pointer `Box::into_raw` gave.
    storage: NonNull<[Slot<T>]>,
}

// SAFETY: `Shared` is the ring plus its storage allocation; it is `Send` and
// `Sync` for the same reasons as `Ring` (see there).
#[cfg(feature = "std")]
unsafe impl<T: Default + Send + 'static> Send for Shared<T> {}
// SAFETY: as above.
#[cfg(feature = "std")]
unsafe impl<T: Default + Send + 'static> Sync for Shared<T> {}

#[cfg(feature = "std")]
impl<T: Default + 'static> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: `ring` is dropped exactly once, here, and never used again.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.ring) };
        // SAFETY: `storage` came from `Box::into_raw` in `new_shared` and is
        // freed exactly once, here, after the ring that used it is gone.
        drop(unsafe { std::boxed::Box::from_raw(self.storage.as_ptr()) });
    }
}

#[cfg(feature = "std")]
impl<T: Default + Send + 'static> Ring<'static, T> {
    /// Allocates storage for `capacity` values and returns the two halves;
    /// each keeps the shared allocation alive, so they are `'static` and can
    /// move to any thread. The storage is freed (after queued values are
    /// wiped and dropped) when both halves are gone.
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if `capacity` is 0 (or too large, see
    /// [`Ring::new`]).
    pub fn new_shared(
        capacity: usize,
    ) -> Result<(Producer<'static, T>, Consumer<'static, T>), Error> {
        use std::boxed::Box;
        use std::sync::Arc;

        let storage: Box<[Slot<T>]> = (0..capacity).map(|_| Slot::default()).collect();
        let storage = NonNull::from(Box::leak(storage));
        // SAFETY: `storage` is a fresh, uniquely owned allocation that stays
        // alive until `Shared::drop`, which first drops the ring; so the
        // `'static` borrow never outlives it.
        let ring = Ring::new(unsafe { &mut *storage.as_ptr() });
        let ring = match ring {
            Ok(ring) => ring,
            Err(e) => {
                // SAFETY: the ring was not made; the allocation is still ours.
                drop(unsafe { Box::from_raw(storage.as_ptr()) });
                return Err(e);
            }
        };
        let shared = Arc::new(Shared {
            ring: core::mem::ManuallyDrop::new(ring),
            storage,
        });
        let ring_ptr = NonNull::from(&*shared.ring);
        Ok((
            Producer {
                ring: ring_ptr,
                cached_head: 0,
                tail: 0,
                _keep: Some(Arc::clone(&shared) as Keep),
                _ring: PhantomData,
            },
            Consumer {
                ring: ring_ptr,
                head: 0,
                cached_tail: 0,
                _keep: Some(shared as Keep),
                _ring: PhantomData,
            },
        ))
    }
}

/// The producer half of a [`Ring`]: the only writer of `tail`.
pub struct Producer<'a, T: Default> {
    /// The ring: borrowed for `'a`, or kept alive by `_keep`.
    ring: NonNull<Ring<'a, T>>,
    /// Last `head` seen; may be stale (behind), which only under-reports
    /// free room.
    cached_head: usize,
    /// Our own position, always equal to `ring.tail`.
    tail: usize,
    #[cfg(feature = "std")]
    _keep: Option<Keep>,
    _ring: PhantomData<&'a Ring<'a, T>>,
}

// SAFETY: a producer is the unique writer of its ring's tail; moving it to
// another thread keeps it unique. Values of `T` cross threads, hence `Send`.
unsafe impl<T: Default + Send> Send for Producer<'_, T> {}

impl<'a, T: Default> Producer<'a, T> {
    #[inline(always)]
    fn ring(&self) -> &'a Ring<'a, T> {
        // SAFETY: the ring is borrowed for `'a` (from `split`) or kept alive
        // by `_keep` (from `new_shared`) at least as long as `self`; the
        // reference is used only inside `self`'s methods.
        unsafe { self.ring.as_ref() }
    }

    /// Moves `value` into the ring.
    ///
    /// # Errors
    ///
    /// Gives `value` back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let ring = self.ring();
        if ring.distance(self.cached_head, self.tail) == ring.capacity {
            // Acquire: pairs with the consumer's Release store of `head`, so
            // its read-and-wipe of the slot we reuse happens-before our write.
            self.cached_head = ring.head.0.load(Ordering::Acquire);
            if ring.distance(self.cached_head, self.tail) == ring.capacity {
                return Err(value);
            }
        }
        ring.slot(self.tail).0.with_mut(|p| {
            // SAFETY: the slot at `tail` is outside `head..tail`, so the
            // consumer does not touch it until we publish `tail` below; it
            // holds a valid `T` (a wiped default), dropped here.
            unsafe { *p = value };
        });
        self.tail = ring.increment1(self.tail);
        // Release: publishes the slot write above; pairs with the consumer's
        // Acquire load of `tail`.
        ring.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Fills the next free slot in place: `f` gets the slot (holding
    /// `T::default()`) and writes the value into it, so the value never
    /// travels by move. Use it for secrets that must leave no copy behind.
    ///
    /// # Errors
    ///
    /// Gives `f` back (not called) when the ring is full.
    #[inline]
    pub fn push_with<F: FnOnce(&mut T)>(&mut self, f: F) -> Result<(), F> {
        let ring = self.ring();
        if ring.distance(self.cached_head, self.tail) == ring.capacity {
            // Acquire: as in `push`.
            self.cached_head = ring.head.0.load(Ordering::Acquire);
            if ring.distance(self.cached_head, self.tail) == ring.capacity {
                return Err(f);
            }
        }
        ring.slot(self.tail).0.with_mut(|p| {
            // SAFETY: as in `push`: the slot at `tail` is ours until we
            // publish `tail` below.
            f(unsafe { &mut *p });
        });
        self.tail = ring.increment1(self.tail);
        // Release: publishes the slot write above (as in `push`).
        ring.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Number of values queued now (may grow smaller at once as the consumer
    /// pops).
    #[must_use]
    pub fn len(&self) -> usize {
        let ring = self.ring();
        // Acquire: pairs with the consumer's Release store of `head`.
        let head = ring.head.0.load(Ordering::Acquire);
        ring.distance(head, self.tail)
    }

    /// `true` when nothing is queued now.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots now (may grow at once as the consumer pops).
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn free(&self) -> usize {
        self.capacity().wrapping_sub(self.len())
    }

    /// The ring's capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring().capacity
    }
}

impl<T: Default> fmt::Debug for Producer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The consumer half of a [`Ring`]: the only writer of `head`.
pub struct Consumer<'a, T: Default> {
    /// The ring: borrowed for `'a`, or kept alive by `_keep`.
    ring: NonNull<Ring<'a, T>>,
    /// Our own position, always equal to `ring.head`.
    head: usize,
    /// Last `tail` seen; may be stale (behind), which only under-reports
    /// queued values.
    cached_tail: usize,
    #[cfg(feature = "std")]
    _keep: Option<Keep>,
    _ring: PhantomData<&'a Ring<'a, T>>,
}

// SAFETY: a consumer is the unique writer of its ring's head; moving it to
// another thread keeps it unique. Values of `T` cross threads, hence `Send`.
unsafe impl<T: Default + Send> Send for Consumer<'_, T> {}

impl<'a, T: Default> Consumer<'a, T> {
    #[inline(always)]
    fn ring(&self) -> &'a Ring<'a, T> {
        // SAFETY: as in `Producer::ring`.
        unsafe { self.ring.as_ref() }
    }

    /// `true` if a value is queued, refreshing the cached `tail` if needed.
    #[inline(always)]
    fn ready(&mut self, ring: &Ring<'a, T>) -> bool {
        if self.head == self.cached_tail {
            // Acquire: pairs with the producer's Release store of `tail`, so
            // its slot writes are visible before we read the slots.
            self.cached_tail = ring.tail.0.load(Ordering::Acquire);
        }
        self.head != self.cached_tail
    }

    /// Hands the slot at `head` back to the producer.
    #[inline(always)]
    fn release(&mut self, ring: &Ring<'a, T>, head: usize) {
        self.head = head;
        // Release: our reads and wipes of the slots happen-before the
        // producer reuses them; pairs with its Acquire load of `head`.
        ring.head.0.store(head, Ordering::Release);
    }

    /// Removes the oldest value; its slot is left holding `T::default()`.
    /// `None` when empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let ring = self.ring();
        if !self.ready(ring) {
            return None;
        }
        let value = ring.slot(self.head).0.with_mut(|p| {
            // SAFETY: `head != tail` (checked in `ready`, with Acquire), so
            // the slot holds a value the producer published and will not
            // touch until we release it below.
            core::mem::take(unsafe { &mut *p })
        });
        self.release(ring, ring.increment1(self.head));
        Some(value)
    }

    /// Removes the oldest value in place: `f` sees it in its slot (to copy it
    /// out without a move), then the slot is overwritten with
    /// `T::default()`. `None` (and `f` not called) when empty. If `f`
    /// panics, the value stays queued.
    #[inline]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let ring = self.ring();
        if !self.ready(ring) {
            return None;
        }
        let result = ring.slot(self.head).0.with_mut(|p| {
            // SAFETY: as in `pop`: the slot is published and ours until the
            // release below.
            let value = unsafe { &mut *p };
            let result = f(value);
            *value = T::default();
            result
        });
        self.release(ring, ring.increment1(self.head));
        Some(result)
    }

    /// Moves up to `out.len()` of the oldest values into `out` (slots wiped)
    /// and returns how many; one index load and one publication per batch.
    pub fn pop_into(&mut self, out: &mut [T]) -> usize {
        let max = out.len();
        let mut dst = out.iter_mut();
        self.pop_many_with(max, |value| {
            if let Some(d) = dst.next() {
                *d = core::mem::take(value);
            }
        })
    }

    /// Removes up to `max` of the oldest values in place, in order: `f`
    /// sees each in its slot (to copy it out without a move), then the slot
    /// is overwritten with `T::default()`. Returns how many were removed.
    /// One `Acquire` load of `tail` (only when the cached one is short) and
    /// one `Release` store of `head` for the whole batch. If `f` panics, the
    /// values before it are removed and the one it panicked on stays
    /// queued.
    #[inline]
    pub fn pop_many_with(&mut self, max: usize, mut f: impl FnMut(&mut T)) -> usize {
        let ring = self.ring();
        let mut available = ring.distance(self.head, self.cached_tail);
        if available < max {
            // Acquire: pairs with the producer's Release store of `tail`.
            self.cached_tail = ring.tail.0.load(Ordering::Acquire);
            available = ring.distance(self.head, self.cached_tail);
        }
        let count = available.min(max);
        // Publishes the slots done so far, on return or on a panic in `f`.
        let head = self.head;
        let mut batch = Batch {
            consumer: self,
            ring,
            head,
        };
        for _ in 0..count {
            ring.slot(batch.head).0.with_mut(|p| {
                // SAFETY: `batch.head` is within the published range
                // `self.head..cached_tail` (at most `count <= available`
                // steps), ours until the release in `Batch::drop`.
                let value = unsafe { &mut *p };
                f(value);
                *value = T::default();
            });
            batch.head = ring.increment1(batch.head);
        }
        count
    }

    /// Number of values queued now (may grow at once as the producer
    /// pushes).
    #[must_use]
    pub fn len(&self) -> usize {
        let ring = self.ring();
        // Acquire: pairs with the producer's Release store of `tail`.
        let tail = ring.tail.0.load(Ordering::Acquire);
        ring.distance(self.head, tail)
    }

    /// `true` when nothing is queued now.
    #[must_use]
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // tests only
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring().capacity
    }
}

/// A batch pop in progress: hands the slots it has wiped back to the
/// producer when dropped (one `Release` store), even if the caller's closure
/// panicked part-way.
struct Batch<'c, 'a, T: Default> {
    consumer: &'c mut Consumer<'a, T>,
    ring: &'a Ring<'a, T>,
    /// The position after the last slot wiped.
    head: usize,
}

impl<T: Default> Drop for Batch<'_, '_, T> {
    fn drop(&mut self) {
        if self.head != self.consumer.head {
            self.consumer.release(self.ring, self.head);
        }
    }
}

impl<T: Default> fmt::Debug for Consumer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn storage<T: Default>(n: usize) -> Vec<Slot<T>> {
        (0..n).map(|_| Slot::default()).collect()
    }

    fn peek<T: Default + Clone>(ring: &Ring<'_, T>, pos: usize) -> T {
        ring.slot(pos).0.with_mut(|p| {
            // SAFETY: test only; no half is alive.
            unsafe { (*p).clone() }
        })
    }

    /// Off bare metal the two indices stay a cache line pair apart (128
    /// bytes; 32 on 32-bit Arm with an OS): the padding is dropped only on
    /// `target_os = "none"` Arm, never on the host.
    #[test]
    fn indices_are_padded_apart_where_cores_share_caches() {
        let mut s = storage::<u64>(4);
        let ring = Ring::new(&mut s).unwrap();
        let head = core::ptr::from_ref(&ring.head.0).addr();
        let tail = core::ptr::from_ref(&ring.tail.0).addr();
        let line = if cfg!(target_arch = "arm") { 32 } else { 128 };
        assert!(head.abs_diff(tail) >= line, "indices {} bytes apart", head.abs_diff(tail));
        assert_eq!(core::mem::align_of::<Ring<'_, u64>>(), line);
    }

    #[test]
    fn positions_wrap_at_twice_capacity() {
        let mut s = storage::<u8>(3);
        let ring = Ring::new(&mut s).unwrap();
        assert_eq!(ring.increment1(5), 0);
        assert_eq!(ring.increment1(2), 3);
        assert_eq!(ring.collapse(3), 0);
        assert_eq!(ring.collapse(5), 2);
        assert_eq!(ring.distance(5, 2), 3);
        assert_eq!(ring.distance(4, 4), 0);
        assert_eq!(ring.distance(1, 4), 3);
    }

    #[test]
    fn popped_slot_is_wiped() {
        let mut s = storage::<[u8; 32]>(2);
        let mut ring = Ring::new(&mut s).unwrap();
        for round in 0..5_u8 {
            ring.push([round.wrapping_add(1); 32]).unwrap();
            let before = ring.head.0.load(Ordering::Relaxed);
            assert_eq!(peek(&ring, before), [round.wrapping_add(1); 32]);
            assert_eq!(ring.pop(), Some([round.wrapping_add(1); 32]));
            assert_eq!(peek(&ring, before), [0; 32], "slot not wiped");
        }
        ring.push([7; 32]).unwrap();
        let before = ring.head.0.load(Ordering::Relaxed);
        assert_eq!(ring.pop_with(|b| b[0]), Some(7));
        assert_eq!(peek(&ring, before), [0; 32]);
    }

    #[test]
    fn cached_indices_stay_in_sync() {
        let mut s = storage::<u32>(2);
        let mut ring = Ring::new(&mut s).unwrap();
        let (mut p, mut c) = ring.split();
        for i in 0..9_u32 {
            p.push(i).unwrap();
            assert_eq!(p.tail, p.ring().tail.0.load(Ordering::Relaxed));
            assert_eq!(c.pop(), Some(i));
            assert_eq!(c.head, c.ring().head.0.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn batch_pop_wipes_in_place_and_publishes_once() {
        let mut s = storage::<[u8; 32]>(4);
        let mut ring = Ring::new(&mut s).unwrap();
        // Wrap the positions first: head and tail at 3.
        for v in 1..=3_u8 {
            ring.push([v; 32]).unwrap();
            ring.pop().unwrap();
        }
        for v in 4..=7_u8 {
            ring.push([v; 32]).unwrap();
        }
        let start = ring.head.0.load(Ordering::Relaxed);
        let mut seen = Vec::new();
        assert_eq!(ring.pop_many_with(3, |b| seen.push(b[0])), 3);
        assert_eq!(seen, [4, 5, 6]);
        assert_eq!(ring.head.0.load(Ordering::Relaxed), (start + 3) % 8);
        for pos in start..start + 3 {
            assert_eq!(peek(&ring, pos % 8), [0; 32], "slot not wiped");
        }
        assert_eq!(peek(&ring, (start + 3) % 8), [7; 32], "still queued");
        // More asked than queued: what is there.
        assert_eq!(ring.pop_many_with(9, |b| seen.push(b[0])), 1);
        assert_eq!(ring.pop_many_with(9, |_| unreachable!()), 0);
        assert_eq!(seen, [4, 5, 6, 7]);
    }

    #[test]
    fn batch_pop_that_panics_keeps_the_rest_queued() {
        let mut s = storage::<u32>(4);
        let mut ring = Ring::new(&mut s).unwrap();
        for v in 1..=4 {
            ring.push(v).unwrap();
        }
        let caught = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            ring.pop_many_with(4, |v| assert_ne!(*v, 3, "boom"));
        }));
        assert!(caught.is_err());
        // 1 and 2 are gone (wiped), 3 (the panic) and 4 stay.
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.pop(), Some(3));
        assert_eq!(ring.pop(), Some(4));
    }

    #[test]
    fn drop_wipes_queued_values() {
        let mut s = storage::<u64>(4);
        {
            let mut ring = Ring::new(&mut s).unwrap();
            ring.push(11).unwrap();
            ring.push(12).unwrap();
        }
        for slot in &s {
            slot.0.with_mut(|p| {
                // SAFETY: test only; the ring is gone.
                assert_eq!(unsafe { *p }, 0);
            });
        }
    }

    #[test]
    fn empty_storage_is_rejected() {
        let mut s = storage::<u64>(0);
        assert_eq!(Ring::new(&mut s).err(), Some(Error::CapacityTooSmall));
        // SAFETY: `Slot<()>` is zero-sized, so a dangling, aligned pointer
        // is a valid slice of any length.
        let zst = unsafe {
            core::slice::from_raw_parts_mut(
                NonNull::<Slot<()>>::dangling().as_ptr(),
                usize::MAX / 2 + 1,
            )
        };
        assert_eq!(Ring::new(zst).err(), Some(Error::CapacityTooSmall));
    }
}
