//! Entropy sources and the user's choice of them: [`Source`], [`SourceMask`]
//! and the CPU features that resolve the default mask.
//!
//! Contract: a [`SourceMask`] only ever holds a value in `0..=15`; a resolved
//! mask (see [`SourceMask::resolve`]) is never `0` and never names a hardware
//! source the CPU lacks.

use core::fmt;

use crate::error::Error;

/// One entropy source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Timing of interrupts (bit value 1).
    Interrupts,
    /// x86_64 `RDRAND`, a DRBG output (bit value 2).
    Rdrand,
    /// x86_64 `RDSEED`, the conditioned noise source (bit value 4).
    Rdseed,
    /// Entropy pushed in from outside, e.g. an HSM (bit value 8).
    External,
}

impl Source {
    /// Every source, in bit order.
    pub const ALL: [Source; 4] = [
        Source::Interrupts,
        Source::Rdrand,
        Source::Rdseed,
        Source::External,
    ];

    /// The source's bit in a [`SourceMask`].
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Source::Interrupts => 1,
            Source::Rdrand => 2,
            Source::Rdseed => 4,
            Source::External => 8,
        }
    }

    /// A dense index `0..4`, for per-source tables (the order of
    /// [`Source::ALL`]).
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Source::Interrupts => 0,
            Source::Rdrand => 1,
            Source::Rdseed => 2,
            Source::External => 3,
        }
    }

    /// This source's entry of a per-source table (in [`index`](Self::index)
    /// order), with no bounds check that could fail.
    #[must_use]
    pub(crate) const fn of<T>(self, table: &[T; 4]) -> &T {
        let [interrupts, rdrand, rdseed, external] = table;
        match self {
            Source::Interrupts => interrupts,
            Source::Rdrand => rdrand,
            Source::Rdseed => rdseed,
            Source::External => external,
        }
    }

    /// As [`of`](Self::of), mutably.
    #[must_use]
    pub(crate) const fn of_mut<T>(self, table: &mut [T; 4]) -> &mut T {
        let [interrupts, rdrand, rdseed, external] = table;
        match self {
            Source::Interrupts => interrupts,
            Source::Rdrand => rdrand,
            Source::Rdseed => rdseed,
            Source::External => external,
        }
    }

    /// The stable lower-case name used in status output and the CLI.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Source::Interrupts => "interrupts",
            Source::Rdrand => "rdrand",
            Source::Rdseed => "rdseed",
            Source::External => "external",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hardware random-number features of the CPU, as CPUID reports them
/// (or as a test backend pretends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// CPUID leaf 1 ECX bit 30.
    pub rdrand: bool,
    /// CPUID leaf 7 EBX bit 18.
    pub rdseed: bool,
}

/// A choice of sources: a bitmask `0..=15` (1 interrupts, 2 RDRAND,
/// 4 RDSEED, 8 external; `0` = the default, see [`SourceMask::resolve`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SourceMask(u8);

impl SourceMask {
    /// The largest valid mask value.
    pub const MAX: u8 = 15;
    /// `0`: resolve to the default at start.
    pub const DEFAULT: SourceMask = SourceMask(0);

    /// A mask from its numeric value.
    ///
    /// # Errors
    /// [`Error::SourceMaskOutOfRange`] when `value > 15`.
    pub const fn new(value: u64) -> Result<Self, Error> {
        if value > Self::MAX as u64 {
            Err(Error::SourceMaskOutOfRange { value })
        } else {
            // The check above bounds `value` to 0..=15.
            #[allow(clippy::cast_possible_truncation)]
            Ok(SourceMask(value as u8))
        }
    }

    /// A mask holding exactly the given sources.
    #[must_use]
    pub const fn of(sources: &[Source]) -> Self {
        let mut bits = 0u8;
        let mut i = 0;
        while i < sources.len() {
            bits |= sources[i].bit();
            i += 1;
        }
        SourceMask(bits)
    }

    /// The numeric value `0..=15`.
    #[must_use]
    pub const fn value(self) -> u8 {
        self.0
    }

    /// Whether the mask names `source`.
    #[must_use]
    pub const fn contains(self, source: Source) -> bool {
        self.0 & source.bit() != 0
    }

    /// Whether this is `0`, the unresolved default.
    #[must_use]
    pub const fn is_default(self) -> bool {
        self.0 == 0
    }

    /// The sources named, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Source> {
        Source::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Resolve against the CPU's features, once at start.
    ///
    /// `0` becomes RDSEED alone when the CPU has RDSEED (the FIPS
    /// configuration), otherwise every source except external (interrupts,
    /// plus RDRAND where the CPU has it). Any other mask is kept as it is,
    /// after checking that the CPU has every hardware source it names.
    ///
    /// # Errors
    /// [`Error::SourceUnavailable`] naming the first hardware source the mask
    /// names that the CPU lacks.
    pub const fn resolve(self, cpu: CpuFeatures) -> Result<SourceMask, Error> {
        if self.0 == 0 {
            return Ok(if cpu.rdseed {
                SourceMask(Source::Rdseed.bit())
            } else if cpu.rdrand {
                SourceMask(Source::Interrupts.bit() | Source::Rdrand.bit())
            } else {
                SourceMask(Source::Interrupts.bit())
            });
        }
        if self.contains(Source::Rdrand) && !cpu.rdrand {
            return Err(Error::SourceUnavailable {
                source: Source::Rdrand,
            });
        }
        if self.contains(Source::Rdseed) && !cpu.rdseed {
            return Err(Error::SourceUnavailable {
                source: Source::Rdseed,
            });
        }
        Ok(self)
    }
}

impl fmt::Debug for SourceMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceMask({self})")
    }
}

impl fmt::Display for SourceMask {
    /// `7 (interrupts+rdrand+rdseed)`, or `0 (default)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (", self.0)?;
        if self.0 == 0 {
            f.write_str("default")?;
        }
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str("+")?;
            }
            first = false;
            f.write_str(s.name())?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_entry_is_the_one_at_the_index() {
        let mut table = [10, 11, 12, 13];
        for (i, source) in Source::ALL.into_iter().enumerate() {
            assert_eq!(source.index(), i, "{source:?}");
            assert_eq!(*source.of(&table), 10 + i, "{source:?}");
            *source.of_mut(&mut table) += 100;
            assert_eq!(table[i], 110 + i, "{source:?}");
        }
    }

    const NONE: CpuFeatures = CpuFeatures {
        rdrand: false,
        rdseed: false,
    };
    const RDRAND_ONLY: CpuFeatures = CpuFeatures {
        rdrand: true,
        rdseed: false,
    };
    const BOTH: CpuFeatures = CpuFeatures {
        rdrand: true,
        rdseed: true,
    };

    #[test]
    fn values_above_15_are_rejected_with_the_value() {
        for v in 0..=15u64 {
            assert_eq!(
                SourceMask::new(v).map(SourceMask::value),
                Ok(u8::try_from(v).unwrap())
            );
        }
        for v in [16u64, 17, 255, 256, u64::MAX] {
            assert_eq!(
                SourceMask::new(v),
                Err(Error::SourceMaskOutOfRange { value: v })
            );
        }
    }

    #[test]
    fn default_resolves_to_rdseed_alone_when_present() {
        let m = SourceMask::DEFAULT.resolve(BOTH).unwrap();
        assert_eq!(m.value(), 4);
        let m = SourceMask::DEFAULT
            .resolve(CpuFeatures {
                rdrand: false,
                rdseed: true,
            })
            .unwrap();
        assert_eq!(m.value(), 4);
    }

    #[test]
    fn default_without_rdseed_is_all_but_external() {
        assert_eq!(SourceMask::DEFAULT.resolve(RDRAND_ONLY).unwrap().value(), 3);
        assert_eq!(SourceMask::DEFAULT.resolve(NONE).unwrap().value(), 1);
    }

    #[test]
    fn missing_hardware_is_named() {
        let m = SourceMask::new(6).unwrap();
        assert_eq!(
            m.resolve(RDRAND_ONLY),
            Err(Error::SourceUnavailable {
                source: Source::Rdseed
            })
        );
        assert_eq!(
            m.resolve(NONE),
            Err(Error::SourceUnavailable {
                source: Source::Rdrand
            })
        );
        assert_eq!(
            SourceMask::new(9).unwrap().resolve(NONE).unwrap().value(),
            9
        );
        assert_eq!(m.resolve(BOTH).unwrap().value(), 6);
    }

    #[test]
    fn every_nonzero_mask_resolves_to_itself_or_names_a_missing_source() {
        for v in 1..=15u64 {
            let m = SourceMask::new(v).unwrap();
            for cpu in [NONE, RDRAND_ONLY, BOTH] {
                match m.resolve(cpu) {
                    Ok(r) => assert_eq!(r, m),
                    Err(Error::SourceUnavailable { source }) => {
                        assert!(m.contains(source));
                        assert!(matches!(source, Source::Rdrand | Source::Rdseed));
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }
    }

    #[test]
    fn display_names_the_sources() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(SourceMask::new(0).unwrap().to_string(), "0 (default)");
        assert_eq!(
            SourceMask::new(15).unwrap().to_string(),
            "15 (interrupts+rdrand+rdseed+external)"
        );
        assert_eq!(SourceMask::of(&[Source::External]).value(), 8);
    }
}
