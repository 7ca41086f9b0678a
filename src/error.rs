//! The crate's one error type: small, `Copy`, printable without `std`, with
//! stable numeric codes (`E0101`, ...) that scripts and logs may rely on.
//!
//! Contract: every runtime failure in the crate is one of these variants;
//! codes are never reused or renumbered once released. Payloads are small
//! `Copy` values (numbers, `&'static str` names), never secrets.

use core::fmt;

use crate::source::Source;

/// Why a kickstart file was rejected (see [`Error::Kickstart`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KickstartReason {
    /// An option of the `entropy` command that is not `--sources` or `--data`.
    UnknownOption,
    /// The `entropy` command has no `--data=`.
    MissingData,
    /// An option was given twice on the `entropy` line.
    DuplicateOption,
    /// `--sources=` is not a number in `0..=15`.
    SourcesOutOfRange {
        /// The value given (saturated at `u64::MAX`).
        value: u64,
    },
    /// `--sources=` is not a number at all.
    SourcesNotANumber,
    /// The base64 data is malformed.
    BadBase64 {
        /// Byte offset of the first bad character within the `--data` value.
        offset: u64,
    },
    /// The decoded data is smaller than 512 KiB or larger than 10 MiB.
    SizeOutOfRange {
        /// The decoded size in bytes (or a lower bound, when too large).
        size: u64,
    },
    /// A second `entropy` line.
    SecondEntropyLine,
    /// The file has no `entropy` command.
    NoEntropyLine,
    /// A line is not valid UTF-8 or is malformed (unbalanced quoting).
    MalformedLine,
}

impl fmt::Display for KickstartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KickstartReason::UnknownOption => {
                f.write_str("unknown option to `entropy` (expected --sources=N and --data=BASE64)")
            }
            KickstartReason::MissingData => f.write_str("`entropy` has no --data=BASE64"),
            KickstartReason::DuplicateOption => f.write_str("option given twice"),
            KickstartReason::SourcesOutOfRange { value } => {
                write!(f, "--sources={value} is out of range 0..=15")
            }
            KickstartReason::SourcesNotANumber => {
                f.write_str("--sources is not a number in 0..=15")
            }
            KickstartReason::BadBase64 { offset } => {
                write!(f, "bad base64 in --data at character {offset}")
            }
            KickstartReason::SizeOutOfRange { size } => write!(
                f,
                "decoded data is {size} bytes; it must be 524288 (512 KiB) to 10485760 (10 MiB)"
            ),
            KickstartReason::SecondEntropyLine => f.write_str("a second `entropy` line"),
            KickstartReason::NoEntropyLine => f.write_str("no `entropy` line"),
            KickstartReason::MalformedLine => f.write_str("malformed line"),
        }
    }
}

/// Every way an entropool operation can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ---- configuration and input (E01xx) ----
    /// A sources mask above 15.
    SourceMaskOutOfRange {
        /// The value given.
        value: u64,
    },
    /// The mask names a hardware source the CPU lacks.
    SourceUnavailable {
        /// The missing source.
        source: Source,
    },
    /// A tunable outside its documented range.
    InvalidValue {
        /// The parameter's name as the CLI spells it.
        param: &'static str,
        /// The value given (saturated at `u64::MAX`).
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A tunable value that is not a decimal number.
    MalformedValue {
        /// The parameter's name as the CLI spells it.
        param: &'static str,
    },
    /// An argument or parameter name that is not known.
    UnknownParameter,
    /// The same parameter given twice in one request.
    DuplicateParameter {
        /// The parameter's name as the CLI spells it.
        param: &'static str,
    },
    /// The stored configuration is corrupt (it is never silently reset).
    ConfigCorrupt,
    /// A kickstart file was rejected.
    Kickstart {
        /// 1-based line number.
        line: u32,
        /// What is wrong.
        reason: KickstartReason,
    },
    /// Install-time entropy can be staged only into an empty state.
    NotFreshInstall,
    // ---- add new configuration/input variants above this line ----

    // ---- hardware (E02xx) ----
    /// The CPU lacks the instruction for this source.
    HardwareUnsupported {
        /// The source.
        source: Source,
    },
    /// RDRAND failed (CF=0) on every try of its retry limit.
    RdrandFailed,
    /// RDSEED has no seed now (retry limit reached); try again later.
    RdseedNotNow,
    /// A start-up self-test of a hardware source failed; it is refused.
    SelfTestFailed {
        /// The source.
        source: Source,
    },
    /// The CPU is known to have a broken implementation (e.g. AMD before
    /// family 0x17 RDRAND after suspend); it is refused.
    KnownBadCpu {
        /// The source.
        source: Source,
    },
    /// The interrupt ring was full: the timestamp was dropped and counted.
    InterruptRingFull,
    /// The timer-jitter thread (std) could not be started, or it died.
    JitterThreadFailed,
    // ---- add new hardware variants above this line ----

    // ---- health and mixing (E03xx) ----
    /// A health test failed; the source is quarantined.
    HealthTestFailed {
        /// The source.
        source: Source,
    },
    /// Repeated health failures disabled the source.
    SourceDisabled {
        /// The source.
        source: Source,
    },
    /// Samples of this source are not of the kind passed (external
    /// entropy is bytes; the other sources are 64-bit words).
    WrongSampleKind {
        /// The source.
        source: Source,
    },
    // ---- add new health/mixer variants above this line ----

    // ---- pool, caches, storage (E04xx) ----
    /// No full-entropy block is available now; poll the pool and retry.
    Starving,
    /// External entropy is lost, external is the only source, and the
    /// caches are empty.
    ExternalLost,
    /// The external feed has no room; nothing was taken.
    NoRoom,
    /// The persistent store could not be read or written.
    StorageIo {
        /// The OS error number (`errno`: 28 = ENOSPC, 13 = EACCES, 21 =
        /// EISDIR, ...), or 0 when the medium has none to give.
        errno: i32,
    },
    /// The persistent store is torn or corrupted; it was discarded and
    /// credits nothing.
    StorageCorrupt,
    /// A size does not fit the storage or cache it is meant for.
    CapacityTooSmall,
    /// The memory cache is full; the block was not taken (it stays with the
    /// caller, e.g. for the storage cache).
    MemoryCacheFull,
    /// A state file is a symbolic link, not a regular file, or owned by a
    /// user other than this process's or root: refused untouched.
    StateFileUntrusted,
    // ---- add new pool/cache variants above this line ----

    // ---- DRBG and output (E05xx) ----
    /// Entropy input shorter than the security strength (256 bits).
    DrbgEntropyTooShort,
    /// A request over 2^19 bits (64 KiB).
    DrbgRequestTooLarge,
    /// An input (entropy, nonce, personalization, additional) over its
    /// maximum length.
    DrbgInputTooLong,
    /// The reseed interval is exhausted: reseed before generating again.
    DrbgReseedRequired,
    /// A reseed was due and the pool could not supply it.
    DrbgReseedUnavailable,
    /// getrandom's custom backend was called before a generator was
    /// registered.
    GetrandomNotRegistered,
    /// The registered generator is in use by another caller (no spinning).
    GetrandomBusy,
    // ---- add new DRBG variants above this line ----
}

impl Error {
    /// The stable numeric code (printed as `E%04u`).
    #[must_use]
    pub const fn code(&self) -> u16 {
        match self {
            Error::SourceMaskOutOfRange { .. } => 101,
            Error::SourceUnavailable { .. } => 102,
            Error::InvalidValue { .. } => 103,
            Error::MalformedValue { .. } => 104,
            Error::UnknownParameter => 105,
            Error::DuplicateParameter { .. } => 106,
            Error::ConfigCorrupt => 107,
            Error::Kickstart { .. } => 108,
            Error::NotFreshInstall => 109,
            Error::HardwareUnsupported { .. } => 201,
            Error::RdrandFailed => 202,
            Error::RdseedNotNow => 203,
            Error::SelfTestFailed { .. } => 204,
            Error::KnownBadCpu { .. } => 205,
            Error::InterruptRingFull => 206,
            Error::JitterThreadFailed => 207,
            Error::HealthTestFailed { .. } => 301,
            Error::SourceDisabled { .. } => 302,
            Error::WrongSampleKind { .. } => 303,
            Error::Starving => 401,
            Error::ExternalLost => 402,
            Error::NoRoom => 403,
            Error::StorageIo { .. } => 404,
            Error::StorageCorrupt => 405,
            Error::CapacityTooSmall => 406,
            Error::MemoryCacheFull => 407,
            Error::StateFileUntrusted => 408,
            Error::DrbgEntropyTooShort => 501,
            Error::DrbgRequestTooLarge => 502,
            Error::DrbgInputTooLong => 503,
            Error::DrbgReseedRequired => 504,
            Error::DrbgReseedUnavailable => 505,
            Error::GetrandomNotRegistered => 506,
            Error::GetrandomBusy => 507,
        }
    }
}

/// The name and meaning of the Linux `errno` values a storage medium
/// commonly gives (printable without std).
const fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM, operation not permitted",
        2 => "ENOENT, no such file or directory",
        5 => "EIO, input/output error",
        13 => "EACCES, permission denied",
        20 => "ENOTDIR, not a directory",
        21 => "EISDIR, is a directory",
        27 => "EFBIG, file too large",
        28 => "ENOSPC, no space left on device",
        30 => "EROFS, read-only file system",
        40 => "ELOOP, too many levels of symbolic links",
        122 => "EDQUOT, disk quota exceeded",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{:04}: ", self.code())?;
        match *self {
            Error::SourceMaskOutOfRange { value } => {
                write!(f, "sources mask {value} is out of range 0..=15")
            }
            Error::SourceUnavailable { source } => {
                write!(
                    f,
                    "sources mask names {source}, which this CPU does not have"
                )
            }
            Error::InvalidValue {
                param,
                value,
                min,
                max,
            } => write!(f, "{param}={value} is out of range {min}..={max}"),
            Error::MalformedValue { param } => {
                write!(f, "{param} needs a decimal whole number")
            }
            Error::UnknownParameter => f.write_str("unknown parameter"),
            Error::DuplicateParameter { param } => write!(f, "{param} given twice"),
            Error::ConfigCorrupt => f.write_str("the stored configuration is corrupt"),
            Error::Kickstart { line, reason } => write!(f, "kickstart line {line}: {reason}"),
            Error::NotFreshInstall => {
                f.write_str("not a fresh install: the state directory already holds state")
            }
            Error::HardwareUnsupported { source } => {
                write!(f, "this CPU does not support {source}")
            }
            Error::RdrandFailed => f.write_str("RDRAND failed on every retry"),
            Error::RdseedNotNow => f.write_str("RDSEED has no seed now; try again later"),
            Error::SelfTestFailed { source } => {
                write!(f, "{source} failed its start-up self-test and is refused")
            }
            Error::KnownBadCpu { source } => {
                write!(
                    f,
                    "{source} is known to be broken on this CPU and is refused"
                )
            }
            Error::InterruptRingFull => {
                f.write_str("interrupt ring full: timestamp dropped and counted")
            }
            Error::JitterThreadFailed => {
                f.write_str("the timer-jitter thread could not be started or died")
            }
            Error::HealthTestFailed { source } => {
                write!(f, "{source} failed a health test and is quarantined")
            }
            Error::SourceDisabled { source } => {
                write!(
                    f,
                    "{source} is disabled after repeated health-test failures"
                )
            }
            Error::WrongSampleKind { source } => {
                write!(
                    f,
                    "wrong sample kind for {source}: external entropy is bytes, the other sources 64-bit words"
                )
            }
            Error::Starving => f.write_str("no full-entropy block available now (pool starving)"),
            Error::ExternalLost => f.write_str(
                "external entropy lost: external is the only source and the caches are empty",
            ),
            Error::NoRoom => f.write_str("no room: the external pool is full"),
            Error::StorageIo { errno } => {
                f.write_str("the storage cache could not be read or written")?;
                match errno_name(errno) {
                    _ if errno == 0 => Ok(()),
                    Some(name) => write!(f, " (os error {errno}: {name})"),
                    None => write!(f, " (os error {errno})"),
                }
            }
            Error::StateFileUntrusted => f.write_str(
                "a state file is a symbolic link, not a regular file, or owned by another user than this one or root; refused untouched",
            ),
            Error::StorageCorrupt => {
                f.write_str("the storage cache is torn or corrupted; discarded, nothing credited")
            }
            Error::CapacityTooSmall => f.write_str("capacity too small for the request"),
            Error::MemoryCacheFull => f.write_str("the memory cache is full; block not taken"),
            Error::DrbgEntropyTooShort => f.write_str("DRBG entropy input shorter than 256 bits"),
            Error::DrbgRequestTooLarge => f.write_str("DRBG request over 2^19 bits"),
            Error::DrbgInputTooLong => f.write_str("DRBG input over its maximum length"),
            Error::DrbgReseedRequired => f.write_str("DRBG reseed interval exhausted"),
            Error::DrbgReseedUnavailable => {
                f.write_str("DRBG reseed due and the pool cannot supply it")
            }
            Error::GetrandomNotRegistered => {
                f.write_str("no generator registered for getrandom's custom backend")
            }
            Error::GetrandomBusy => {
                f.write_str("the generator registered for getrandom is busy; try again")
            }
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn codes_are_unique_and_printed() {
        let all = [
            Error::SourceMaskOutOfRange { value: 16 },
            Error::SourceUnavailable {
                source: Source::Rdseed,
            },
            Error::InvalidValue {
                param: "memory-cache-size",
                value: 1,
                min: 2,
                max: 3,
            },
            Error::MalformedValue { param: "x" },
            Error::UnknownParameter,
            Error::DuplicateParameter { param: "x" },
            Error::ConfigCorrupt,
            Error::Kickstart {
                line: 3,
                reason: KickstartReason::MissingData,
            },
            Error::NotFreshInstall,
            Error::HardwareUnsupported {
                source: Source::Rdrand,
            },
            Error::RdrandFailed,
            Error::RdseedNotNow,
            Error::SelfTestFailed {
                source: Source::Rdrand,
            },
            Error::KnownBadCpu {
                source: Source::Rdrand,
            },
            Error::InterruptRingFull,
            Error::JitterThreadFailed,
            Error::HealthTestFailed {
                source: Source::Rdrand,
            },
            Error::SourceDisabled {
                source: Source::Rdrand,
            },
            Error::WrongSampleKind {
                source: Source::External,
            },
            Error::Starving,
            Error::ExternalLost,
            Error::NoRoom,
            Error::StorageIo { errno: 28 },
            Error::StateFileUntrusted,
            Error::StorageCorrupt,
            Error::CapacityTooSmall,
            Error::MemoryCacheFull,
            Error::DrbgEntropyTooShort,
            Error::DrbgRequestTooLarge,
            Error::DrbgInputTooLong,
            Error::DrbgReseedRequired,
            Error::DrbgReseedUnavailable,
            Error::GetrandomNotRegistered,
            Error::GetrandomBusy,
        ];
        let mut codes: Vec<u16> = all.iter().map(Error::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for e in all {
            let s = e.to_string();
            assert!(s.starts_with(&std::format!("E{:04}: ", e.code())), "{s}");
        }
        assert_eq!(
            Error::InvalidValue {
                param: "memory-cache-low-watermark",
                value: 101,
                min: 0,
                max: 100
            }
            .to_string(),
            "E0103: memory-cache-low-watermark=101 is out of range 0..=100"
        );
    }
}
