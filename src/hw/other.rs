//! The backend for architectures other than x86_64.
//!
//! Contract: compiles everywhere, reports neither RDRAND nor RDSEED (so the
//! drivers refuse with `HardwareUnsupported` and the default source mask
//! resolves to interrupts), executes no instruction, and takes its cycle
//! counter from a caller-provided timestamp function ([`RealCpu::
//! with_timestamp`]); without one, `cycles` returns `0`, which gives the
//! interrupt source no timing to work with.

use super::{Cpu, CpuIdentity, Vendor};
use crate::source::CpuFeatures;

/// The real CPU on an architecture without supported hardware sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealCpu {
    clock: Option<fn() -> u64>,
}

impl RealCpu {
    /// The real CPU: no hardware random-number features.
    #[must_use]
    #[inline]
    pub fn new() -> Self {
        RealCpu { clock: None }
    }

    /// Use `clock` for [`Cpu::cycles`] (e.g. a platform cycle or
    /// monotonic counter); without it `cycles` returns `0`.
    #[must_use]
    pub fn with_timestamp(self, clock: fn() -> u64) -> Self {
        RealCpu { clock: Some(clock) }
    }
}

impl Cpu for RealCpu {
    #[inline]
    fn features(&self) -> CpuFeatures {
        CpuFeatures::default()
    }

    #[inline]
    fn identity(&self) -> CpuIdentity {
        CpuIdentity {
            vendor: Vendor::Other,
            family: 0,
        }
    }

    #[inline]
    fn rdrand64(&self) -> Option<u64> {
        None
    }

    #[inline]
    fn rdseed64(&self) -> Option<u64> {
        None
    }

    #[inline]
    fn pause(&self) {
        core::hint::spin_loop();
    }

    #[inline]
    fn cycles(&self) -> u64 {
        self.clock.map_or(0, |clock| clock())
    }
}
