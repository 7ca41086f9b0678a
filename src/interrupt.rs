//! The interrupt-timing path: timestamps recorded from interrupt context,
//! drained in task context as raw deltas.
//!
//! # Contract
//!
//! - [`InterruptRecorder::record`] runs in interrupt context: O(1),
//!   lock-free, wait-free, no hashing, no allocation, no loop. It pushes the
//!   timestamp into its own SPSC [`Ring`] (one ring per producer, typically
//!   one per CPU); when the ring is full the timestamp is dropped, counted,
//!   and [`Error::InterruptRingFull`] returned.
//! - [`InterruptDrain::drain`] runs in task context: it takes up to
//!   `out.len()` timestamps in one batch and writes their deltas
//!   (`t[i].wrapping_sub(t[i - 1])`, carried across batches) into `out`. The
//!   very first timestamp a drain ever sees only sets the base and yields no
//!   delta. A delta across dropped timestamps spans them (it is still a true
//!   interval between two recorded events). These raw deltas are what the
//!   mixer absorbs and also the export API for outside assessment
//!   (`entropyd samples` prints the low 8 bits of each).
//! - Counters: `recorded` (timestamps accepted) and `dropped` (ring full),
//!   written only by the recorder with `Relaxed` stores (single writer),
//!   readable from either side. They are `usize` atomics (portable to
//!   targets without 64-bit atomics) and wrap on overflow.
//!
//! # Shapes
//!
//! - Firmware: [`InterruptRing::new`] over `&mut [Slot<u64>]` (a `static`
//!   array), then [`InterruptRing::split`]; with `&'static mut` storage and
//!   ring the halves are `'static`.
//! - `std`: [`InterruptRing::new_shared`] allocates once and returns
//!   `'static` halves that move to any thread.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::ring::{Consumer, Producer, Ring, Slot};

/// The two counters of one interrupt ring.
#[derive(Debug, Default)]
pub struct InterruptCounters {
    recorded: AtomicUsize,
    dropped: AtomicUsize,
}

impl InterruptCounters {
    /// Timestamps accepted into the ring (wraps at `usize::MAX`).
    #[must_use]
    pub fn recorded(&self) -> u64 {
        // Relaxed: a statistic; no data is published through it.
        widen(self.recorded.load(Ordering::Relaxed))
    }

    /// Timestamps dropped because the ring was full (wraps at `usize::MAX`).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        // Relaxed: a statistic; no data is published through it.
        widen(self.dropped.load(Ordering::Relaxed))
    }
}

/// `usize` to `u64` (lossless on every supported target; saturates
/// otherwise).
fn widen(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Adds one to a counter that has a single writer (no read-modify-write
/// instruction needed).
#[inline(always)]
fn bump(counter: &AtomicUsize) {
    // Relaxed: only the one recorder writes; readers want a statistic.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Where a half finds its counters: borrowed, or shared with `std`.
enum CountersRef<'a> {
    Borrowed(&'a InterruptCounters),
    #[cfg(feature = "std")]
    Shared(std::sync::Arc<InterruptCounters>),
}

impl CountersRef<'_> {
    #[inline(always)]
    fn get(&self) -> &InterruptCounters {
        match self {
            CountersRef::Borrowed(c) => c,
            #[cfg(feature = "std")]
            CountersRef::Shared(c) => c,
        }
    }
}

/// One interrupt ring (use one per CPU or per producer) with its counters.
pub struct InterruptRing<'s> {
    ring: Ring<'s, u64>,
    counters: InterruptCounters,
}

impl<'s> InterruptRing<'s> {
    /// A ring over `storage`, holding up to `storage.len()` timestamps.
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if `storage` is empty.
    pub fn new(storage: &'s mut [Slot<u64>]) -> Result<Self, Error> {
        Ok(Self {
            ring: Ring::new(storage)?,
            counters: InterruptCounters::default(),
        })
    }

    /// The recorder (for the interrupt handler) and the drain (for the
    /// mixer).
    pub fn split(&mut self) -> (InterruptRecorder<'_>, InterruptDrain<'_>) {
        let (producer, consumer) = self.ring.split();
        (
            InterruptRecorder {
                producer,
                counters: CountersRef::Borrowed(&self.counters),
            },
            InterruptDrain {
                consumer,
                counters: CountersRef::Borrowed(&self.counters),
                previous: None,
            },
        )
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &InterruptCounters {
        &self.counters
    }

    /// Capacity in timestamps.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(feature = "std")]
impl InterruptRing<'static> {
    /// Allocates a ring of `capacity` timestamps and returns `'static`
    /// halves (the allocation is freed when both are dropped).
    ///
    /// # Errors
    ///
    /// [`Error::CapacityTooSmall`] if `capacity` is 0.
    pub fn new_shared(
        capacity: usize,
    ) -> Result<(InterruptRecorder<'static>, InterruptDrain<'static>), Error> {
        let (producer, consumer) = Ring::new_shared(capacity)?;
        let counters = std::sync::Arc::new(InterruptCounters::default());
        Ok((
            InterruptRecorder {
                producer,
                counters: CountersRef::Shared(std::sync::Arc::clone(&counters)),
            },
            InterruptDrain {
                consumer,
                counters: CountersRef::Shared(counters),
                previous: None,
            },
        ))
    }
}

impl fmt::Debug for InterruptRing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptRing")
            .field("ring", &self.ring)
            .field("counters", &self.counters)
            .finish()
    }
}

/// The interrupt-context half: records timestamps.
pub struct InterruptRecorder<'a> {
    producer: Producer<'a, u64>,
    counters: CountersRef<'a>,
}

impl InterruptRecorder<'_> {
    /// Records one timestamp (a cycle-counter reading taken by the caller).
    /// O(1), lock-free, no allocation.
    ///
    /// # Errors
    ///
    /// [`Error::InterruptRingFull`] when the ring is full: the timestamp is
    /// dropped and counted in `dropped`.
    #[inline]
    pub fn record(&mut self, timestamp: u64) -> Result<(), Error> {
        match self.producer.push(timestamp) {
            Ok(()) => {
                bump(&self.counters.get().recorded);
                Ok(())
            }
            Err(_) => {
                bump(&self.counters.get().dropped);
                Err(Error::InterruptRingFull)
            }
        }
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &InterruptCounters {
        self.counters.get()
    }
}

impl fmt::Debug for InterruptRecorder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptRecorder")
            .field("producer", &self.producer)
            .field("counters", self.counters.get())
            .finish()
    }
}

/// The task-context half: drains timestamps as deltas.
pub struct InterruptDrain<'a> {
    consumer: Consumer<'a, u64>,
    counters: CountersRef<'a>,
    /// The last timestamp drained; `None` before the first.
    previous: Option<u64>,
}

impl InterruptDrain<'_> {
    /// Takes up to `out.len()` timestamps and writes their deltas into the
    /// front of `out`; returns how many deltas were written (0 when nothing
    /// is pending). The first timestamp ever drained only sets the base.
    pub fn drain(&mut self, out: &mut [u64]) -> usize {
        let taken = self.consumer.pop_into(out);
        let mut previous = self.previous;
        let mut written = 0_usize;
        // In place: the write cursor never passes the read cursor, so no
        // unread timestamp is overwritten.
        for read in 0..taken {
            let Some(&timestamp) = out.get(read) else {
                break;
            };
            if let Some(before) = previous {
                if let Some(delta) = out.get_mut(written) {
                    *delta = timestamp.wrapping_sub(before);
                    written = written.wrapping_add(1);
                }
            }
            previous = Some(timestamp);
        }
        self.previous = previous;
        written
    }

    /// Takes up to `out.len()` raw timestamps into the front of `out` and
    /// returns how many: what the mixer absorbs (it forms the deltas
    /// itself). Use either this or [`drain`](Self::drain) on one ring: the
    /// delta base of `drain` moves to the last timestamp taken here.
    pub fn drain_timestamps(&mut self, out: &mut [u64]) -> usize {
        let taken = self.consumer.pop_into(out);
        if let Some(last) = taken.checked_sub(1).and_then(|i| out.get(i)) {
            self.previous = Some(*last);
        }
        taken
    }

    /// Timestamps waiting to be drained.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.consumer.len()
    }

    /// The counters.
    #[must_use]
    pub fn counters(&self) -> &InterruptCounters {
        self.counters.get()
    }
}

impl fmt::Debug for InterruptDrain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptDrain")
            .field("consumer", &self.consumer)
            .field("counters", self.counters.get())
            .finish_non_exhaustive()
    }
}
