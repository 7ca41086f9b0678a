#![allow(unsafe_code)]
//! The x86_64 backend: CPUID detection, RDRAND, RDSEED, RDTSC.
//!
//! Contract: CPUID runs once per process (the answer is cached in one
//! atomic); RDRAND and RDSEED execute only when that answer says the CPU has
//! them, and only in their 64-bit forms; each call makes one attempt.
//! This file holds the only `unsafe` of the hardware module.

// `__cpuid`, `__cpuid_count` and the RDRAND/RDSEED steps became safe to call
// in newer compilers; the crate's MSRV (1.85) still needs the `unsafe`
// blocks, so `unused_unsafe` is allowed where they appear.

use core::arch::x86_64::{__cpuid, __cpuid_count, _rdrand64_step, _rdseed64_step, _rdtsc};
use core::sync::atomic::{AtomicU32, Ordering};

use super::{Cpu, CpuIdentity, Vendor};
use crate::source::CpuFeatures;

/// The real CPU.
///
/// A value exists only through [`RealCpu::new`], which reads the cached
/// CPUID answer; its fields are private, so `rdrand64`/`rdseed64` can trust
/// them before executing the instruction. `cycles` reads `RDTSC` unless a
/// clock was supplied with [`RealCpu::with_timestamp`]. (Under Linux
/// `prctl(PR_SET_TSC, PR_TSC_SIGSEGV)` a process can forbid `RDTSC`;
/// supply a clock in that case.)
#[derive(Clone, Copy, Debug)]
pub struct RealCpu {
    features: CpuFeatures,
    identity: CpuIdentity,
    clock: Option<fn() -> u64>,
}

impl RealCpu {
    /// The real CPU, with features detected by CPUID (once per process).
    #[must_use]
    #[inline]
    pub fn new() -> Self {
        let (features, identity) = unpack(detected());
        RealCpu {
            features,
            identity,
            clock: None,
        }
    }

    /// Use `clock` instead of `RDTSC` for [`Cpu::cycles`]. The same method
    /// exists on every architecture; elsewhere it is the only cycle source.
    #[must_use]
    pub fn with_timestamp(self, clock: fn() -> u64) -> Self {
        RealCpu {
            clock: Some(clock),
            ..self
        }
    }
}

impl Default for RealCpu {
    fn default() -> Self {
        RealCpu::new()
    }
}

impl Cpu for RealCpu {
    #[inline]
    fn features(&self) -> CpuFeatures {
        self.features
    }

    #[inline]
    fn identity(&self) -> CpuIdentity {
        self.identity
    }

    #[inline]
    fn rdrand64(&self) -> Option<u64> {
        if !self.features.rdrand {
            return None;
        }
        // SAFETY: `features.rdrand` comes only from `detect()`, where CPUID
        // leaf 1 ECX bit 30 reported RDRAND (the fields are private and set
        // only in `new`).
        unsafe { rdrand64_step() }
    }

    #[inline]
    fn rdseed64(&self) -> Option<u64> {
        if !self.features.rdseed {
            return None;
        }
        // SAFETY: `features.rdseed` comes only from `detect()`, where CPUID
        // leaf 7 subleaf 0 EBX bit 18 reported RDSEED (checked against the
        // maximum leaf first; fields private, set only in `new`).
        unsafe { rdseed64_step() }
    }

    #[inline]
    fn pause(&self) {
        core::hint::spin_loop();
    }

    #[inline]
    fn cycles(&self) -> u64 {
        match self.clock {
            Some(clock) => clock(),
            // SAFETY: every x86_64 CPU has a time-stamp counter; RDTSC
            // has no memory effects.
            None => unsafe { _rdtsc() },
        }
    }
}

/// One 64-bit RDRAND attempt.
///
/// # Safety
/// The CPU must support RDRAND (CPUID leaf 1 ECX bit 30).
#[target_feature(enable = "rdrand")]
#[allow(unused_unsafe)]
#[inline]
unsafe fn rdrand64_step() -> Option<u64> {
    let mut word = 0u64;
    // SAFETY: the caller guarantees RDRAND exists; `word` is a valid,
    // exclusive `u64` for the intrinsic to write.
    let ok = unsafe { _rdrand64_step(&mut word) };
    if ok == 1 { Some(word) } else { None }
}

/// One 64-bit RDSEED attempt (never the 16/32-bit forms: AMD Zen 5
/// erratum, they can return 0 with CF=1).
///
/// # Safety
/// The CPU must support RDSEED (CPUID leaf 7 EBX bit 18).
#[target_feature(enable = "rdseed")]
#[allow(unused_unsafe)]
#[inline]
unsafe fn rdseed64_step() -> Option<u64> {
    let mut word = 0u64;
    // SAFETY: the caller guarantees RDSEED exists; `word` is a valid,
    // exclusive `u64` for the intrinsic to write.
    let ok = unsafe { _rdseed64_step(&mut word) };
    if ok == 1 { Some(word) } else { None }
}

/// The cached detection: `0` = not yet detected, otherwise a packed answer
/// with [`DETECTED`] set (a tri-state plus payload in one word, so one
/// atomic load answers everything).
static CACHE: AtomicU32 = AtomicU32::new(0);

const DETECTED: u32 = 1 << 31;
/// SHA, SSSE3 and SSE4.1 together: what the SHA-NI kernel needs.
const SHA_NI: u32 = 1 << 30;
const RDRAND: u32 = 1 << 0;
const RDSEED: u32 = 1 << 1;
const VENDOR_SHIFT: u32 = 2;
const VENDOR_MASK: u32 = 0b11;
const FAMILY_SHIFT: u32 = 8;
const FAMILY_MASK: u32 = 0xFFF;

/// CPUID leaf 1 ECX bit 30.
const LEAF1_ECX_RDRAND: u32 = 1 << 30;
/// CPUID leaf 7 subleaf 0 EBX bit 18.
const LEAF7_EBX_RDSEED: u32 = 1 << 18;
/// CPUID leaf 1 ECX bit 9 (SSSE3) and bit 19 (SSE4.1).
const LEAF1_ECX_SSSE3_SSE41: u32 = (1 << 9) | (1 << 19);
/// CPUID leaf 7 subleaf 0 EBX bit 29 (SHA extensions).
const LEAF7_EBX_SHA: u32 = 1 << 29;

/// Whether the CPU has the SHA extensions and the SSSE3/SSE4.1 shuffles the
/// SHA-NI kernel uses (CPUID, cached with the rest). Never under miri,
/// which cannot run CPUID: the portable path runs there.
#[cfg(target_feature = "sse2")]
#[inline]
pub(crate) fn has_sha_ni() -> bool {
    if cfg!(miri) {
        return false;
    }
    detected() & SHA_NI != 0
}

#[inline]
fn detected() -> u32 {
    // Relaxed: the cached word is self-contained (no other memory is
    // published with it) and every thread computes the same value.
    let word = CACHE.load(Ordering::Relaxed);
    if word & DETECTED != 0 { word } else { detect() }
}

/// Run CPUID and cache the answer. Races are harmless: every thread
/// computes and stores the same word.
#[cold]
#[allow(unused_unsafe)]
fn detect() -> u32 {
    // SAFETY: every x86_64 CPU has CPUID, and leaf 0 always exists.
    let leaf0 = unsafe { __cpuid(0) };
    let max_leaf = leaf0.eax;
    let vendor = vendor_from_regs(leaf0.ebx, leaf0.edx, leaf0.ecx);
    let (family, rdrand, shuffles) = if max_leaf >= 1 {
        // SAFETY: CPUID exists and leaf 1 is at most the maximum leaf.
        let leaf1 = unsafe { __cpuid(1) };
        (
            family_from_eax(leaf1.eax),
            leaf1.ecx & LEAF1_ECX_RDRAND != 0,
            leaf1.ecx & LEAF1_ECX_SSSE3_SSE41 == LEAF1_ECX_SSSE3_SSE41,
        )
    } else {
        (0, false, false)
    };
    let (rdseed, sha) = if max_leaf >= 7 {
        // SAFETY: CPUID exists and leaf 7 is at most the maximum leaf.
        let leaf7 = unsafe { __cpuid_count(7, 0) };
        (
            leaf7.ebx & LEAF7_EBX_RDSEED != 0,
            leaf7.ebx & LEAF7_EBX_SHA != 0,
        )
    } else {
        (false, false)
    };
    let word = pack(
        CpuFeatures { rdrand, rdseed },
        CpuIdentity { vendor, family },
    ) | if sha && shuffles { SHA_NI } else { 0 };
    CACHE.store(word, Ordering::Relaxed);
    word
}

/// The vendor from CPUID leaf 0 (the string is EBX, EDX, ECX).
fn vendor_from_regs(ebx: u32, edx: u32, ecx: u32) -> Vendor {
    let mut s = [0u8; 12];
    for (chunk, reg) in s.chunks_exact_mut(4).zip([ebx, edx, ecx]) {
        chunk.copy_from_slice(&reg.to_le_bytes());
    }
    match &s {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// The display family from CPUID leaf 1 EAX: base family (bits 8..12),
/// plus extended family (bits 20..28) when the base is `0xF`.
fn family_from_eax(eax: u32) -> u32 {
    let base = (eax >> 8) & 0xF;
    if base == 0xF {
        base + ((eax >> 20) & 0xFF)
    } else {
        base
    }
}

fn pack(features: CpuFeatures, identity: CpuIdentity) -> u32 {
    let vendor = match identity.vendor {
        Vendor::Other => 0,
        Vendor::Intel => 1,
        Vendor::Amd => 2,
    };
    DETECTED
        | if features.rdrand { RDRAND } else { 0 }
        | if features.rdseed { RDSEED } else { 0 }
        | (vendor << VENDOR_SHIFT)
        | ((identity.family & FAMILY_MASK) << FAMILY_SHIFT)
}

fn unpack(word: u32) -> (CpuFeatures, CpuIdentity) {
    let vendor = match (word >> VENDOR_SHIFT) & VENDOR_MASK {
        1 => Vendor::Intel,
        2 => Vendor::Amd,
        _ => Vendor::Other,
    };
    (
        CpuFeatures {
            rdrand: word & RDRAND != 0,
            rdseed: word & RDSEED != 0,
        },
        CpuIdentity {
            vendor,
            family: (word >> FAMILY_SHIFT) & FAMILY_MASK,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(s: &[u8; 12]) -> (u32, u32, u32) {
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        (w(0), w(4), w(8))
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn vendor_strings() {
        let (b, d, c) = regs(b"GenuineIntel");
        assert_eq!(vendor_from_regs(b, d, c), Vendor::Intel);
        let (b, d, c) = regs(b"AuthenticAMD");
        assert_eq!(vendor_from_regs(b, d, c), Vendor::Amd);
        let (b, d, c) = regs(b"HygonGenuine");
        assert_eq!(vendor_from_regs(b, d, c), Vendor::Other);
        // Registers in the wrong order are not the vendor.
        let (b, d, c) = regs(b"GenuineIntel");
        assert_eq!(vendor_from_regs(b, c, d), Vendor::Other);
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn family_from_published_signatures() {
        // Signatures from vendor documentation / CPUID dumps:
        // Intel Skylake 0x000506E3 = family 6; Pentium 4 0x00000F29 = 0xF;
        // AMD Zen 2 0x00830F10 = 0xF + 0x8 = 0x17; Zen 5 0x00B00F21 =
        // 0xF + 0xB = 0x1A; AMD Jaguar 0x00700F01 = 0xF + 0x7 = 0x16.
        assert_eq!(family_from_eax(0x0005_06E3), 6);
        assert_eq!(family_from_eax(0x0000_0F29), 0xF);
        assert_eq!(family_from_eax(0x0083_0F10), 0x17);
        assert_eq!(family_from_eax(0x00B0_0F21), 0x1A);
        assert_eq!(family_from_eax(0x0070_0F01), 0x16);
        // The extended family counts only when the base is 0xF.
        assert_eq!(family_from_eax(0x0FF0_0600), 6);
        assert_eq!(family_from_eax(0x0FF0_0F00), 0xF + 0xFF);
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn pack_round_trips() {
        for vendor in [Vendor::Intel, Vendor::Amd, Vendor::Other] {
            for family in [0, 6, 0xF, 0x17, 0x1A, 0xF + 0xFF] {
                for (rdrand, rdseed) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let f = CpuFeatures { rdrand, rdseed };
                    let id = CpuIdentity { vendor, family };
                    let w = pack(f, id);
                    assert_ne!(w & DETECTED, 0);
                    assert_eq!(unpack(w), (f, id));
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn detection_is_cached_and_stable() {
        let a = detected();
        assert_ne!(a & DETECTED, 0);
        assert_eq!(CACHE.load(Ordering::Relaxed), a);
        assert_eq!(detect(), a);
        assert_eq!(RealCpu::new().features(), unpack(a).0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn missing_features_never_execute() {
        let cpu = RealCpu {
            features: CpuFeatures::default(),
            identity: CpuIdentity {
                vendor: Vendor::Other,
                family: 0,
            },
            clock: None,
        };
        assert_eq!(cpu.rdrand64(), None);
        assert_eq!(cpu.rdseed64(), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "executes CPUID, RDRAND, RDSEED or RDTSC")]
    fn caller_clock_replaces_rdtsc() {
        let cpu = RealCpu::new().with_timestamp(|| 42);
        assert_eq!(cpu.cycles(), 42);
        // RDTSC ticks: 1000 reads are not all the same value.
        let real = RealCpu::new();
        let first = real.cycles();
        assert!((0..1000).any(|_| real.cycles() != first));
    }
}
