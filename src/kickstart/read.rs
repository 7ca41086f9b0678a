//! Reading a kickstart file under `std`: drives [`KickstartParser`] from a
//! reader in pieces (never a whole line at once) and collects the decoded
//! seed in a [`Zeroizing`] buffer that never leaves an unwiped copy behind
//! when it grows.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::vec::Vec;

use zeroize::Zeroizing;

use super::{KickstartParser, KickstartSummary, Limits};
use crate::error::Error;
use crate::source::SourceMask;

/// A validated kickstart seed.
pub struct Kickstart {
    /// The 1-based line of the `entropy` command.
    pub line: u32,
    /// The `--sources` value (`0` when absent).
    pub sources: SourceMask,
    /// The decoded seed, wiped on drop.
    pub data: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for Kickstart {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kickstart")
            .field("line", &self.line)
            .field("sources", &self.sources)
            .field("size", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Why a kickstart file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(io::Error),
    /// The file is invalid ([`Error::Kickstart`]).
    Invalid(Error),
    /// The input is longer than any valid file for the limits can be
    /// (guards against endless inputs such as `/dev/zero`).
    TooLarge {
        /// The number of bytes read before giving up.
        limit: u64,
    },
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read the kickstart file: {e}"),
            ReadError::Invalid(e) => write!(f, "{e}"),
            ReadError::TooLarge { limit } => {
                write!(f, "the kickstart file is longer than {limit} bytes")
            }
        }
    }
}

impl core::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::Invalid(e) => Some(e),
            ReadError::TooLarge { .. } => None,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Invalid(e)
    }
}

/// The longest input accepted for `limits`: the base64 of the largest seed,
/// with room for everything else a kickstart file holds (1 MiB + 1/4).
fn input_limit(limits: Limits) -> u64 {
    let b64 = limits.max_size.div_ceil(3).saturating_mul(4);
    b64.saturating_add(b64 / 4).saturating_add(1 << 20)
}

/// Collects decoded bytes; growing copies into a fresh buffer and wipes the
/// old one (a plain `Vec` would leave the old copy in freed memory).
struct SeedBuf {
    data: Zeroizing<Vec<u8>>,
    cap_hint: usize,
}

impl SeedBuf {
    fn push(&mut self, bytes: &[u8]) {
        let need = self.data.len().saturating_add(bytes.len());
        if need > self.data.capacity() {
            let cap = self
                .data
                .capacity()
                .saturating_mul(2)
                .max(64 * 1024)
                .min(self.cap_hint)
                .max(need);
            let mut grown = Zeroizing::new(Vec::with_capacity(cap));
            grown.extend_from_slice(&self.data);
            // The old buffer is wiped as it is dropped here.
            self.data = grown;
        }
        self.data.extend_from_slice(bytes);
    }
}

/// Parse a kickstart file from `reader` with the product's limits.
///
/// # Errors
/// [`ReadError::Invalid`] holding [`Error::Kickstart`] for an invalid file,
/// [`ReadError::Io`] when reading fails, [`ReadError::TooLarge`] for an
/// input far larger than any valid file.
pub fn read_kickstart(reader: impl BufRead) -> Result<Kickstart, ReadError> {
    read_kickstart_with_limits(reader, Limits::INSTALL)
}

/// [`read_kickstart`] with other size bounds (tests, fuzzing).
///
/// # Errors
/// As [`read_kickstart`].
pub fn read_kickstart_with_limits(
    mut reader: impl BufRead,
    limits: Limits,
) -> Result<Kickstart, ReadError> {
    let mut parser = KickstartParser::with_limits(limits);
    let mut seed = new_seed(limits);
    let mut sink = |d: &[u8]| seed.push(d);
    let limit = input_limit(limits);
    let mut total: u64 = 0;
    loop {
        let piece = match reader.fill_buf() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if piece.is_empty() {
            break;
        }
        let n = piece.len();
        total = total.saturating_add(n as u64);
        if total > limit {
            return Err(ReadError::TooLarge { limit });
        }
        parser.push(piece, &mut sink)?;
        reader.consume(n);
    }
    let summary = parser.finish(&mut sink)?;
    Ok(done(summary, seed))
}

/// Parse the kickstart file at `path` with the product's limits, reading it
/// through a buffer that is wiped afterwards.
///
/// # Errors
/// As [`read_kickstart`]; [`ReadError::Io`] also when the file cannot be
/// opened.
pub fn read_file(path: &Path) -> Result<Kickstart, ReadError> {
    let mut file = File::open(path)?;
    let limits = Limits::INSTALL;
    let mut parser = KickstartParser::with_limits(limits);
    let mut seed = new_seed(limits);
    let mut sink = |d: &[u8]| seed.push(d);
    let limit = input_limit(limits);
    let mut buf = Zeroizing::new([0u8; 64 * 1024]);
    let mut total: u64 = 0;
    loop {
        let n = match file.read(&mut buf[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        total = total.saturating_add(n as u64);
        if total > limit {
            return Err(ReadError::TooLarge { limit });
        }
        parser.push(buf.get(..n).unwrap_or(&[]), &mut sink)?;
    }
    let summary = parser.finish(&mut sink)?;
    Ok(done(summary, seed))
}

fn new_seed(limits: Limits) -> SeedBuf {
    SeedBuf {
        data: Zeroizing::new(Vec::new()),
        cap_hint: usize::try_from(limits.max_size).unwrap_or(usize::MAX),
    }
}

fn done(summary: KickstartSummary, seed: SeedBuf) -> Kickstart {
    Kickstart {
        line: summary.line,
        sources: summary.sources,
        data: seed.data,
    }
}
