//! The CPU execution-jitter collector: timing entropy without sleeping, as
//! jitterentropy gathers it, for hosts and boards whose only local source is
//! timing.
//!
//! Contract:
//! - The core, [`CpuJitter`], is `no_std` and allocation-free: it takes a
//!   [`Cpu`] (only its cycle counter is used) and caller scratch memory
//!   (at least [`CPU_JITTER_SCRATCH_MIN`] bytes; [`CPU_JITTER_SCRATCH`] is
//!   a good size, larger than a level-1 data cache). Firmware with a cycle
//!   counter can run it as it is.
//! - One step ([`CpuJitter::timestamp`]) walks the scratch memory
//!   ([`CPU_JITTER_ACCESSES`] read-modify-writes at a stride that crosses
//!   cache lines), runs a short loop whose length and branches depend on
//!   the previous timing, and then reads the cycle counter. The spread of
//!   the time each step takes (cache, TLB, branch prediction, pipeline,
//!   interrupts, the hypervisor) is the noise. No step sleeps, waits or
//!   loops without bound.
//! - Its timestamps feed the interrupt-timing source (mask bit 1): the
//!   mixer forms the deltas between consecutive timestamps and its health
//!   tests see the low byte of each, exactly what the raw-sample export
//!   ([`CpuJitter::fill_samples`]: the low 8 bits of each delta) gives an
//!   SP 800-90B assessment (`crate::assess`, `entropyd assess`).
//! - The collector credits nothing itself: credit and the health-test
//!   cutoffs come from the interrupt source's [`SourceConfig`]
//!   (`crate::mixer::SourceConfig`), which `crate::assess::interrupts_config`
//!   derives from an assessment.
//! - With `std`, [`CpuJitterThread`] runs the core on its own thread in
//!   bursts, hands each timestamp to a sink, parks briefly whenever the sink
//!   refuses one (a full ring) and while nobody wants samples
//!   ([`CpuJitterThread::set_wanted`]), so it never spins without bound.
//!
//! [`SourceConfig`]: crate::mixer::SourceConfig

use core::hint::black_box;

use super::Cpu;
use crate::error::Error;

/// The smallest scratch memory accepted, in bytes.
pub const CPU_JITTER_SCRATCH_MIN: usize = 64;
/// A good scratch size: 64 KiB, beyond a level-1 data cache, so the walk
/// meets cache misses.
pub const CPU_JITTER_SCRATCH: usize = 64 * 1024;
/// Memory read-modify-writes per step.
pub const CPU_JITTER_ACCESSES: usize = 32;
/// The walk's stride in bytes: an odd number above a cache line, so
/// consecutive accesses land on different lines and sets.
const STRIDE: usize = 67 * 7;

/// The execution-jitter collector over caller scratch memory.
#[derive(Debug)]
pub struct CpuJitter<'m, C: Cpu> {
    cpu: C,
    memory: &'m mut [u8],
    index: usize,
    fold: u64,
    last: u64,
}

impl<'m, C: Cpu> CpuJitter<'m, C> {
    /// A collector timing work on `memory` with `cpu`'s cycle counter.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] (`jitter-scratch-bytes`) when `memory` is
    /// shorter than [`CPU_JITTER_SCRATCH_MIN`].
    pub fn new(cpu: C, memory: &'m mut [u8]) -> Result<Self, Error> {
        if memory.len() < CPU_JITTER_SCRATCH_MIN {
            return Err(Error::InvalidValue {
                param: "jitter-scratch-bytes",
                value: memory.len() as u64,
                min: CPU_JITTER_SCRATCH_MIN as u64,
                max: u64::MAX,
            });
        }
        let last = cpu.cycles();
        Ok(CpuJitter {
            cpu,
            memory,
            index: 0,
            fold: last,
            last,
        })
    }

    /// The work whose duration is measured.
    #[inline(never)]
    fn work(&mut self) {
        let len = self.memory.len();
        let mut index = self.index;
        let mut acc = self.fold;
        for _ in 0..CPU_JITTER_ACCESSES {
            if let Some(b) = self.memory.get_mut(index) {
                let v = black_box(*b).wrapping_add(1);
                *b = v;
                acc = acc.rotate_left(5) ^ u64::from(v);
            }
            index += STRIDE;
            if index >= len {
                index -= len;
                index %= len;
            }
        }
        // A loop of 1 to 8 rounds chosen by the last timing, with a branch
        // on the data in each round: the branch predictor cannot learn it.
        let rounds = 1 + (self.fold & 7);
        for _ in 0..rounds {
            acc = if acc & 1 == 0 {
                acc.rotate_right(3) ^ 0x9E37_79B9_7F4A_7C15
            } else {
                acc.wrapping_mul(0xBF58_476D_1CE4_E5B9)
            };
            acc = black_box(acc);
        }
        self.index = index;
        self.fold = acc;
    }

    /// Runs one step and returns the cycle counter read at its end.
    pub fn timestamp(&mut self) -> u64 {
        self.work();
        let t = self.cpu.cycles();
        self.fold ^= t;
        self.last = t;
        t
    }

    /// Fills `out` with consecutive timestamps.
    pub fn fill_timestamps(&mut self, out: &mut [u64]) {
        for t in out {
            *t = self.timestamp();
        }
    }

    /// Runs one step and returns its duration: the delta from the previous
    /// timestamp (from construction for the first).
    pub fn delta(&mut self) -> u64 {
        let before = self.last;
        self.timestamp().wrapping_sub(before)
    }

    /// The raw-sample export: fills `out` with the low 8 bits of
    /// consecutive deltas, what the mixer's health tests see and what an
    /// SP 800-90B assessment reads (8 bits per sample).
    pub fn fill_samples(&mut self, out: &mut [u8]) {
        for s in out {
            *s = self.delta().to_le_bytes()[0];
        }
    }
}

#[cfg(feature = "std")]
#[cfg_attr(not(feature = "testing"), allow(unused_imports))] // the constants: tests only
pub use thread::{CPU_JITTER_BURST, CPU_JITTER_IDLE_PARK, CpuJitterThread};

#[cfg(feature = "std")]
mod thread {
    use core::sync::atomic::Ordering;
    use core::time::Duration;
    use std::thread;
    use std::vec;

    use super::{CPU_JITTER_SCRATCH, CpuJitter};
    use crate::error::Error;
    use crate::hw::Cpu;
    use crate::hw::jitter::{SamplerThread, Shared};

    /// Timestamps per burst between checks of the stop and wanted flags.
    pub const CPU_JITTER_BURST: usize = 1024;
    /// How long the thread parks when its sink is full or nobody wants
    /// samples (a stop or `set_wanted(true)` cuts it short).
    pub const CPU_JITTER_IDLE_PARK: Duration = Duration::from_millis(5);

    /// A running CPU-jitter collector thread; stops and joins on
    /// [`CpuJitterThread::stop`] or drop.
    #[derive(Debug)]
    pub struct CpuJitterThread(SamplerThread);

    impl CpuJitterThread {
        /// Starts collecting: the thread runs [`CpuJitter`] over
        /// [`CPU_JITTER_SCRATCH`] bytes of its own and calls
        /// `sink(timestamp)` for each step. `sink` returns `false` when it
        /// cannot take the timestamp (e.g. a full interrupt ring): the thread
        /// then parks for [`CPU_JITTER_IDLE_PARK`].
        ///
        /// # Errors
        /// [`Error::JitterThreadFailed`] when the OS cannot start the thread.
        pub fn spawn<C, S>(cpu: C, sink: S) -> Result<Self, Error>
        where
            C: Cpu + Send + 'static,
            S: FnMut(u64) -> bool + Send + 'static,
        {
            SamplerThread::spawn("entropool-cpu-jitter", move |shared| run(cpu, sink, shared))
                .map(CpuJitterThread)
        }

        /// Whether samples are wanted: when `false` the thread parks
        /// between checks instead of collecting (it starts wanted).
        pub fn set_wanted(&self, wanted: bool) {
            self.0.set_wanted(wanted);
        }

        /// Timestamps the sink accepted so far.
        #[must_use]
        pub fn samples(&self) -> u64 {
            self.0.samples()
        }

        /// Whether the thread is still running (false once stopped, or if
        /// the sink panicked).
        #[must_use]
        pub fn is_running(&self) -> bool {
            self.0.is_running()
        }

        /// Stops the thread and waits for it; returns the number of
        /// samples.
        ///
        /// # Errors
        /// [`Error::JitterThreadFailed`] when the thread died (its sink
        /// panicked).
        pub fn stop(self) -> Result<u64, Error> {
            self.0.stop()
        }
    }

    fn run<C: Cpu, S: FnMut(u64) -> bool>(cpu: C, mut sink: S, shared: &Shared) {
        let mut scratch = vec![0u8; CPU_JITTER_SCRATCH];
        let Ok(mut collector) = CpuJitter::new(cpu, &mut scratch) else {
            return;
        };
        // Acquire: pairs with the Release store in
        // `SamplerThread::stop_and_join` (hw/jitter.rs).
        while !shared.stop.load(Ordering::Acquire) {
            if !shared.wanted.load(Ordering::Relaxed) {
                thread::park_timeout(CPU_JITTER_IDLE_PARK);
                continue;
            }
            let mut accepted = 0u64;
            let mut full = false;
            for _ in 0..CPU_JITTER_BURST {
                if sink(collector.timestamp()) {
                    accepted += 1;
                } else {
                    full = true;
                    break;
                }
            }
            shared.samples.fetch_add(accepted, Ordering::Relaxed);
            if full {
                thread::park_timeout(CPU_JITTER_IDLE_PARK);
            }
        }
    }
}
