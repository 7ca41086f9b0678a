//! The user's configuration: the four esxcli-style tunables ([`Tunables`]),
//! the `set` request that changes them ([`SetRequest`]), their esxcli text
//! form, and the stored configuration ([`Config`] = tunables + sources mask).
//!
//! Contract:
//! - A [`Tunables`] only ever holds values inside the documented ranges
//!   (the `*_MIN` / `*_MAX` constants); every constructor and mutator checks.
//! - A `set` is validated whole before anything changes: [`Tunables::apply`]
//!   either applies the entire [`SetRequest`] or returns an error and leaves
//!   the tunables exactly as they were.
//! - [`Tunables::write_esxcli`] prints the four `Label: value` lines sorted by
//!   label with `\n` line ends, byte for byte as DESIGN.md shows;
//!   [`Tunables::parse_esxcli`] reads exactly that form back.
//! - Everything here is `no_std` and allocation-free.
//!
//! # `set` semantics
//! Arguments are `--NAME=VALUE` (one of the four [`Param`] names, `VALUE` a
//! decimal whole number) and `--reset=all` / `--reset=NAME`. Within one
//! request:
//! - every parameter may be given at most once, and may not be both reset by
//!   name and set ([`Error::DuplicateParameter`]); `--reset` with the same
//!   target twice, or `--reset=all` twice, is also a duplicate (param
//!   `"reset"`);
//! - resets apply first, then values: `--reset=all --memory-cache-size=1024`
//!   means "every default, except memory-cache-size = 1024";
//! - an empty request is valid and changes nothing.

use core::fmt;

use crate::error::Error;
use crate::source::SourceMask;

/// Smallest accepted external-entropy-lost-timeout, in seconds.
pub const EXTERNAL_ENTROPY_LOST_TIMEOUT_MIN: u32 = 1;
/// Largest accepted external-entropy-lost-timeout, in seconds (one day).
pub const EXTERNAL_ENTROPY_LOST_TIMEOUT_MAX: u32 = 86_400;
/// Smallest accepted memory-cache-low-watermark, in percent.
pub const MEMORY_CACHE_LOW_WATERMARK_MIN: u32 = 0;
/// Largest accepted memory-cache-low-watermark, in percent.
pub const MEMORY_CACHE_LOW_WATERMARK_MAX: u32 = 100;
/// Smallest accepted memory-cache-size, in KiB.
pub const MEMORY_CACHE_SIZE_MIN: u32 = 1;
/// Largest accepted memory-cache-size, in KiB (64 MiB).
pub const MEMORY_CACHE_SIZE_MAX: u32 = 65_536;
/// Smallest accepted storage-cache-size, in KiB (`0` = no storage cache).
pub const STORAGE_CACHE_SIZE_MIN: u32 = 0;
/// Largest accepted storage-cache-size, in KiB (1 GiB).
pub const STORAGE_CACHE_SIZE_MAX: u32 = 1_048_576;

/// Bytes in one cache block (a full-entropy block is 256 bits).
pub const BLOCK_BYTES: u32 = 32;

/// One of the four tunables.
///
/// [`Param::ALL`] lists them in the order of their esxcli labels, which is
/// the order of the `get` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Param {
    /// `external-entropy-lost-timeout`, seconds.
    ExternalEntropyLostTimeout,
    /// `memory-cache-low-watermark`, percent of the memory cache.
    MemoryCacheLowWatermark,
    /// `memory-cache-size`, KiB.
    MemoryCacheSize,
    /// `storage-cache-size`, KiB (`0` = no storage cache).
    StorageCacheSize,
}

impl Param {
    /// Every parameter, sorted by esxcli label.
    pub const ALL: [Param; 4] = [
        Param::ExternalEntropyLostTimeout,
        Param::MemoryCacheLowWatermark,
        Param::MemoryCacheSize,
        Param::StorageCacheSize,
    ];

    /// The name as the CLI spells it (`memory-cache-size`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Param::ExternalEntropyLostTimeout => "external-entropy-lost-timeout",
            Param::MemoryCacheLowWatermark => "memory-cache-low-watermark",
            Param::MemoryCacheSize => "memory-cache-size",
            Param::StorageCacheSize => "storage-cache-size",
        }
    }

    /// The esxcli label (`Memory Cache Size Kibibytes`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Param::ExternalEntropyLostTimeout => "External Entropy Lost Timeout Seconds",
            Param::MemoryCacheLowWatermark => "Memory Cache Low Watermark Percentage",
            Param::MemoryCacheSize => "Memory Cache Size Kibibytes",
            Param::StorageCacheSize => "Storage Cache Size Kibibytes",
        }
    }

    /// The unit, for help texts (`seconds`, `percent`, `KiB`).
    #[must_use]
    pub const fn unit(self) -> &'static str {
        match self {
            Param::ExternalEntropyLostTimeout => "seconds",
            Param::MemoryCacheLowWatermark => "percent",
            Param::MemoryCacheSize | Param::StorageCacheSize => "KiB",
        }
    }

    /// Smallest accepted value.
    #[must_use]
    pub const fn min_value(self) -> u32 {
        match self {
            Param::ExternalEntropyLostTimeout => EXTERNAL_ENTROPY_LOST_TIMEOUT_MIN,
            Param::MemoryCacheLowWatermark => MEMORY_CACHE_LOW_WATERMARK_MIN,
            Param::MemoryCacheSize => MEMORY_CACHE_SIZE_MIN,
            Param::StorageCacheSize => STORAGE_CACHE_SIZE_MIN,
        }
    }

    /// Largest accepted value.
    #[must_use]
    pub const fn max_value(self) -> u32 {
        match self {
            Param::ExternalEntropyLostTimeout => EXTERNAL_ENTROPY_LOST_TIMEOUT_MAX,
            Param::MemoryCacheLowWatermark => MEMORY_CACHE_LOW_WATERMARK_MAX,
            Param::MemoryCacheSize => MEMORY_CACHE_SIZE_MAX,
            Param::StorageCacheSize => STORAGE_CACHE_SIZE_MAX,
        }
    }

    /// The default value (see [`Tunables::DEFAULT`]).
    #[must_use]
    pub const fn default_value(self) -> u32 {
        Tunables::DEFAULT.get(self)
    }

    /// A dense index `0..4`, the position in [`Param::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            Param::ExternalEntropyLostTimeout => 0,
            Param::MemoryCacheLowWatermark => 1,
            Param::MemoryCacheSize => 2,
            Param::StorageCacheSize => 3,
        }
    }

    /// The parameter with this CLI name, if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The parameter with this esxcli label, if any.
    #[must_use]
    pub fn from_label(label: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.label() == label)
    }

    /// Check `value` against this parameter's range.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the parameter, the value and the range.
    pub const fn check(self, value: u64) -> Result<u32, Error> {
        if value < self.min_value() as u64 || value > self.max_value() as u64 {
            return Err(Error::InvalidValue {
                param: self.name(),
                value,
                min: self.min_value() as u64,
                max: self.max_value() as u64,
            });
        }
        // In range, and every max fits in u32.
        #[allow(clippy::cast_possible_truncation)]
        Ok(value as u32)
    }

    /// Parse a decimal value for this parameter and check its range.
    ///
    /// Accepts ASCII digits only (no sign, no spaces, not empty); values too
    /// large for `u64` are reported saturated at `u64::MAX`.
    ///
    /// # Errors
    /// [`Error::MalformedValue`] when `text` is not a decimal whole number;
    /// [`Error::InvalidValue`] when it is out of range.
    pub fn parse_value(self, text: &str) -> Result<u32, Error> {
        let value = parse_decimal(text).ok_or(Error::MalformedValue { param: self.name() })?;
        self.check(value)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse ASCII decimal digits, saturating at `u64::MAX`; `None` when `text`
/// is empty or holds anything but digits.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for b in text.bytes() {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        value = value.saturating_mul(10).saturating_add(u64::from(digit));
    }
    Some(value)
}

/// The entry of a per-parameter table (constant indices: no panic path).
const fn pick<T: Copy>(table: &[T; 4], param: Param) -> &T {
    let [a, b, c, d] = table;
    match param {
        Param::ExternalEntropyLostTimeout => a,
        Param::MemoryCacheLowWatermark => b,
        Param::MemoryCacheSize => c,
        Param::StorageCacheSize => d,
    }
}

/// The four tunables, always within their documented ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunables {
    /// Indexed by [`Param::index`].
    values: [u32; 4],
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables::DEFAULT
    }
}

impl Tunables {
    /// The defaults: 60 s, 20 %, 512 KiB, 4096 KiB.
    pub const DEFAULT: Tunables = Tunables {
        values: [60, 20, 512, 4096],
    };

    /// Tunables from the four values, each checked against its range.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for the first value (in [`Param::ALL`] order)
    /// out of range.
    pub const fn new(
        external_entropy_lost_timeout_s: u32,
        memory_cache_low_watermark_percent: u32,
        memory_cache_size_kib: u32,
        storage_cache_size_kib: u32,
    ) -> Result<Tunables, Error> {
        Tunables::from_array([
            external_entropy_lost_timeout_s,
            memory_cache_low_watermark_percent,
            memory_cache_size_kib,
            storage_cache_size_kib,
        ])
    }

    /// Tunables from values indexed by [`Param::index`].
    const fn from_array(values: [u32; 4]) -> Result<Tunables, Error> {
        // Constant indices into a fixed-size array: checked at compile time.
        let [a, b, c, d] = values;
        if let Err(e) = Param::ExternalEntropyLostTimeout.check(a as u64) {
            return Err(e);
        }
        if let Err(e) = Param::MemoryCacheLowWatermark.check(b as u64) {
            return Err(e);
        }
        if let Err(e) = Param::MemoryCacheSize.check(c as u64) {
            return Err(e);
        }
        if let Err(e) = Param::StorageCacheSize.check(d as u64) {
            return Err(e);
        }
        Ok(Tunables { values })
    }

    /// The value of one parameter, in its unit.
    #[must_use]
    pub const fn get(&self, param: Param) -> u32 {
        *pick(&self.values, param)
    }

    /// Set one parameter.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when `value` is out of range; `self` is then
    /// unchanged.
    pub fn set(&mut self, param: Param, value: u32) -> Result<(), Error> {
        let value = param.check(u64::from(value))?;
        if let Some(slot) = self.values.get_mut(param.index()) {
            *slot = value;
        }
        Ok(())
    }

    /// external-entropy-lost-timeout, in seconds.
    #[must_use]
    pub const fn external_entropy_lost_timeout_s(&self) -> u32 {
        self.get(Param::ExternalEntropyLostTimeout)
    }

    /// external-entropy-lost-timeout, in milliseconds (at most 86 400 000).
    #[must_use]
    pub const fn external_lost_timeout_ms(&self) -> u64 {
        self.external_entropy_lost_timeout_s() as u64 * 1000
    }

    /// memory-cache-low-watermark, in percent `0..=100`.
    #[must_use]
    pub const fn low_watermark_percent(&self) -> u8 {
        // The range check bounds this to 0..=100.
        #[allow(clippy::cast_possible_truncation)]
        let p = self.get(Param::MemoryCacheLowWatermark) as u8;
        p
    }

    /// memory-cache-size, in KiB.
    #[must_use]
    pub const fn memory_cache_size_kib(&self) -> u32 {
        self.get(Param::MemoryCacheSize)
    }

    /// storage-cache-size, in KiB (`0` = no storage cache).
    #[must_use]
    pub const fn storage_cache_size_kib(&self) -> u32 {
        self.get(Param::StorageCacheSize)
    }

    /// The memory cache's capacity in 32-byte blocks
    /// (`KiB * 1024 / 32`, so `1..=2_097_152`).
    #[must_use]
    pub const fn memory_cache_blocks(&self) -> u32 {
        // At most 65 536 * 32: no overflow.
        self.memory_cache_size_kib() * (1024 / BLOCK_BYTES)
    }

    /// The storage cache's capacity in 32-byte blocks
    /// (`KiB * 1024 / 32`, so `0..=33_554_432`; `0` = none).
    #[must_use]
    pub const fn storage_cache_blocks(&self) -> u32 {
        // At most 1 048 576 * 32: no overflow.
        self.storage_cache_size_kib() * (1024 / BLOCK_BYTES)
    }

    /// Apply a whole `set` request: resets first, then values.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when a value of the request is out of range
    /// (only possible for a request not built by this module's checked
    /// functions). On error `self` is unchanged.
    pub fn apply(&mut self, request: &SetRequest) -> Result<(), Error> {
        let mut values = self.values;
        for param in Param::ALL {
            let i = param.index();
            let reset = request.reset_all || request.reset.get(i).copied().unwrap_or(false);
            let new = match request.values.get(i).copied().flatten() {
                Some(v) => Some(v),
                None if reset => Some(param.default_value()),
                None => None,
            };
            if let (Some(v), Some(slot)) = (new, values.get_mut(i)) {
                *slot = v;
            }
        }
        // Validate the whole result before committing any of it.
        *self = Tunables::from_array(values)?;
        Ok(())
    }

    /// Write the esxcli text form: four `Label: value\n` lines sorted by
    /// label.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_esxcli(&self, w: &mut impl fmt::Write) -> fmt::Result {
        for param in Param::ALL {
            writeln!(w, "{}: {}", param.label(), self.get(param))?;
        }
        Ok(())
    }

    /// Parse the esxcli text form written by [`Tunables::write_esxcli`].
    ///
    /// Accepts the four lines in any order, each exactly once, each ending
    /// in `\n`, nothing else.
    ///
    /// # Errors
    /// [`Error::ConfigCorrupt`] for anything else, including a value out of
    /// range.
    pub fn parse_esxcli(text: &str) -> Result<Tunables, Error> {
        let (tunables, _no_sources) = parse_lines(text, false)?;
        Ok(tunables)
    }
}

impl fmt::Display for Tunables {
    /// The esxcli text form (see [`Tunables::write_esxcli`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_esxcli(f)
    }
}

/// The label of the sources line in the stored configuration.
pub const SOURCES_LABEL: &str = "Sources";

/// The stored configuration: the tunables and the sources mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Config {
    /// The four tunables.
    pub tunables: Tunables,
    /// The sources mask as configured (`0` = resolve the default at start).
    pub sources: SourceMask,
}

impl Config {
    /// Defaults and sources `0`: what a missing config store means.
    pub const DEFAULT: Config = Config {
        tunables: Tunables::DEFAULT,
        sources: SourceMask::DEFAULT,
    };

    /// Write the stored form: the esxcli lines, then `Sources: N\n`.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_text(&self, w: &mut impl fmt::Write) -> fmt::Result {
        self.tunables.write_esxcli(w)?;
        writeln!(w, "{SOURCES_LABEL}: {}", self.sources.value())
    }

    /// Parse the stored form written by [`Config::write_text`] (lines in any
    /// order, each exactly once, each ending in `\n`).
    ///
    /// # Errors
    /// [`Error::ConfigCorrupt`] for anything else, including a value out of
    /// range.
    pub fn parse_text(text: &str) -> Result<Config, Error> {
        let (tunables, sources) = parse_lines(text, true)?;
        let sources = sources.ok_or(Error::ConfigCorrupt)?;
        Ok(Config { tunables, sources })
    }
}

/// Parse `Label: value\n` lines: the four tunables and, when `with_sources`,
/// the sources line. Every line exactly once.
/// The index of the first `b` in `bytes`.
fn find_byte(bytes: &[u8], b: u8) -> Option<usize> {
    bytes.iter().position(|&x| x == b)
}

fn parse_lines(text: &str, with_sources: bool) -> Result<(Tunables, Option<SourceMask>), Error> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(Error::ConfigCorrupt);
    }
    let mut values: [Option<u32>; 4] = [None; 4];
    let mut sources: Option<SourceMask> = None;
    let mut rest = text;
    // Each pass takes one line off `rest`: bounded by its length. Byte
    // searches rather than `str` patterns, whose searchers keep a bounds
    // check the optimiser cannot remove (the no-panic gate checks this).
    while !rest.is_empty() {
        let nl = find_byte(rest.as_bytes(), b'\n').ok_or(Error::ConfigCorrupt)?;
        let line = rest.get(..nl).ok_or(Error::ConfigCorrupt)?;
        rest = rest.get(nl.saturating_add(1)..).unwrap_or("");
        let colon = line
            .as_bytes()
            .windows(2)
            .position(|w| w == b": ")
            .ok_or(Error::ConfigCorrupt)?;
        let label = line.get(..colon).ok_or(Error::ConfigCorrupt)?;
        let value = line
            .get(colon.saturating_add(2)..)
            .ok_or(Error::ConfigCorrupt)?;
        let value = parse_decimal(value).ok_or(Error::ConfigCorrupt)?;
        if with_sources && label == SOURCES_LABEL {
            if sources.is_some() {
                return Err(Error::ConfigCorrupt);
            }
            sources = Some(SourceMask::new(value).map_err(|_| Error::ConfigCorrupt)?);
            continue;
        }
        let param = Param::from_label(label).ok_or(Error::ConfigCorrupt)?;
        let slot = values.get_mut(param.index()).ok_or(Error::ConfigCorrupt)?;
        if slot.is_some() {
            return Err(Error::ConfigCorrupt);
        }
        *slot = Some(param.check(value).map_err(|_| Error::ConfigCorrupt)?);
    }
    let [Some(a), Some(b), Some(c), Some(d)] = values else {
        return Err(Error::ConfigCorrupt);
    };
    if with_sources && sources.is_none() {
        return Err(Error::ConfigCorrupt);
    }
    let tunables = Tunables::from_array([a, b, c, d]).map_err(|_| Error::ConfigCorrupt)?;
    Ok((tunables, sources))
}

/// What `--reset=` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    /// `--reset=all`.
    All,
    /// `--reset=NAME`.
    One(Param),
}

impl ResetTarget {
    /// Parse `all` or a parameter name.
    ///
    /// # Errors
    /// [`Error::UnknownParameter`] for anything else.
    pub fn parse(text: &str) -> Result<ResetTarget, Error> {
        if text == "all" {
            Ok(ResetTarget::All)
        } else {
            Param::from_name(text)
                .map(ResetTarget::One)
                .ok_or(Error::UnknownParameter)
        }
    }
}

/// One parsed `set` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetArg {
    /// `--NAME=VALUE`, value already range-checked.
    Value(Param, u32),
    /// `--reset=all|NAME`.
    Reset(ResetTarget),
}

/// Parse one `set` argument: `--NAME=VALUE` or `--reset=all|NAME`.
///
/// # Errors
/// [`Error::UnknownParameter`] for an argument that is not one of these
/// (also `--reset=` with an unknown name); [`Error::MalformedValue`] when a
/// known parameter has no `=` or a value that is not a decimal number;
/// [`Error::InvalidValue`] when the value is out of range.
pub fn parse_set_arg(arg: &str) -> Result<SetArg, Error> {
    let body = arg.strip_prefix("--").ok_or(Error::UnknownParameter)?;
    let (name, value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    };
    if name == "reset" {
        let value = value.ok_or(Error::MalformedValue { param: "reset" })?;
        return ResetTarget::parse(value).map(SetArg::Reset);
    }
    let param = Param::from_name(name).ok_or(Error::UnknownParameter)?;
    let value = value.ok_or(Error::MalformedValue {
        param: param.name(),
    })?;
    Ok(SetArg::Value(param, param.parse_value(value)?))
}

/// Parse a whole `set` argument list (see the module doc for semantics).
///
/// # Errors
/// The first error of [`parse_set_arg`] or [`SetRequest::add`], in argument
/// order.
pub fn parse_set_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<SetRequest, Error> {
    let mut request = SetRequest::new();
    for arg in args {
        request.add(parse_set_arg(arg)?)?;
    }
    Ok(request)
}

/// A validated `set` request: which parameters to reset and which to set.
///
/// Build it with [`parse_set_args`] or [`SetRequest::add`]; apply it with
/// [`Tunables::apply`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    reset_all: bool,
    /// Indexed by [`Param::index`].
    reset: [bool; 4],
    /// Indexed by [`Param::index`]; values are range-checked.
    values: [Option<u32>; 4],
}

impl SetRequest {
    /// An empty request (changes nothing).
    #[must_use]
    pub const fn new() -> SetRequest {
        SetRequest {
            reset_all: false,
            reset: [false; 4],
            values: [None; 4],
        }
    }

    /// Add one argument.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a value out of range;
    /// [`Error::DuplicateParameter`] when the parameter is already set or
    /// reset by name in this request (param `"reset"` for a repeated
    /// `--reset=all` or a repeated reset target). On error the request is
    /// unchanged.
    pub fn add(&mut self, arg: SetArg) -> Result<(), Error> {
        match arg {
            SetArg::Value(param, value) => {
                let value = param.check(u64::from(value))?;
                let i = param.index();
                let taken = self.values.get(i).copied().flatten().is_some()
                    || self.reset.get(i).copied().unwrap_or(false);
                if taken {
                    return Err(Error::DuplicateParameter {
                        param: param.name(),
                    });
                }
                if let Some(slot) = self.values.get_mut(i) {
                    *slot = Some(value);
                }
            }
            SetArg::Reset(ResetTarget::All) => {
                if self.reset_all {
                    return Err(Error::DuplicateParameter { param: "reset" });
                }
                self.reset_all = true;
            }
            SetArg::Reset(ResetTarget::One(param)) => {
                let i = param.index();
                if self.reset.get(i).copied().unwrap_or(false) {
                    return Err(Error::DuplicateParameter { param: "reset" });
                }
                if self.values.get(i).copied().flatten().is_some() {
                    return Err(Error::DuplicateParameter {
                        param: param.name(),
                    });
                }
                if let Some(slot) = self.reset.get_mut(i) {
                    *slot = true;
                }
            }
        }
        Ok(())
    }

    /// Set `param` from its decimal text (the CLI's `--NAME=VALUE`).
    ///
    /// # Errors
    /// As [`Param::parse_value`] and [`SetRequest::add`].
    pub fn set_text(&mut self, param: Param, text: &str) -> Result<(), Error> {
        self.add(SetArg::Value(param, param.parse_value(text)?))
    }

    /// Whether the request changes nothing at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.reset_all && self.reset.iter().all(|r| !r) && self.values.iter().all(Option::is_none)
    }

    /// Whether the request has `--reset=all`.
    #[must_use]
    pub const fn resets_all(&self) -> bool {
        self.reset_all
    }

    /// Whether the request resets `param` (by name or through `all`).
    #[must_use]
    pub const fn resets(&self, param: Param) -> bool {
        self.reset_all || *pick(&self.reset, param)
    }

    /// The value the request sets for `param`, if any.
    #[must_use]
    pub const fn value(&self, param: Param) -> Option<u32> {
        *pick(&self.values, param)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn default_text_is_byte_exact() {
        let mut s = String::new();
        Tunables::DEFAULT.write_esxcli(&mut s).unwrap();
        assert_eq!(
            s,
            "External Entropy Lost Timeout Seconds: 60\n\
             Memory Cache Low Watermark Percentage: 20\n\
             Memory Cache Size Kibibytes: 512\n\
             Storage Cache Size Kibibytes: 4096\n"
        );
    }

    #[test]
    fn all_is_sorted_by_label_and_indexed() {
        for (i, p) in Param::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(Param::from_name(p.name()), Some(*p));
            assert_eq!(Param::from_label(p.label()), Some(*p));
            assert!(p.min_value() <= p.default_value() && p.default_value() <= p.max_value());
        }
        assert!(Param::ALL.windows(2).all(|w| w[0].label() < w[1].label()));
    }

    #[test]
    fn decimal_parsing_saturates_and_rejects_non_digits() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("007"), Some(7));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal("99999999999999999999999"), Some(u64::MAX));
        for bad in ["", "+1", "-1", " 1", "1 ", "1.0", "0x10", "١"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn block_helpers_follow_the_kib() {
        let t = Tunables::new(1, 0, 65_536, 1_048_576).unwrap();
        assert_eq!(t.memory_cache_blocks(), 65_536 * 32);
        assert_eq!(t.storage_cache_blocks(), 1_048_576 * 32);
        assert_eq!(t.external_lost_timeout_ms(), 1000);
        assert_eq!(Tunables::DEFAULT.memory_cache_blocks(), 512 * 1024 / 32);
    }
}
