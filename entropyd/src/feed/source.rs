//! The feeder's entropy sources.
//!
//! Contract: an [`EntropySource`] fills a buffer from the front with bytes
//! it never gives again, and fills it whole unless it has ended. A source
//! that fails says why, naming itself (the file, or the PKCS#11 module and
//! slot); the feeder then stops: nothing else is ever substituted. The
//! HSM source is in [`super::hsm`]; [`FileSource`] reads a device such as
//! `/dev/hwrng`, or a file, once, front to back.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a source failed, with the source named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// Where the feeder's bytes come from.
pub trait EntropySource: Send {
    /// Fills `buf` from the front with fresh bytes; returns how many
    /// (`buf.len()` unless the source ended).
    ///
    /// # Errors
    /// [`SourceError`] naming the source and what failed.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError>;
}

/// A device or file, read once front to back; its end is the source's end.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    file: File,
}

impl FileSource {
    /// Opens `path` for reading.
    ///
    /// # Errors
    /// [`SourceError`] naming the path when it cannot be opened.
    pub fn open(path: &Path) -> Result<FileSource, SourceError> {
        let file = File::open(path).map_err(|e| {
            SourceError(format!(
                "cannot open the entropy source {}: {e}",
                path.display()
            ))
        })?;
        Ok(FileSource {
            path: path.to_owned(),
            file,
        })
    }
}

impl EntropySource for FileSource {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let mut filled = 0usize;
        while let Some(tail) = buf.get_mut(filled..).filter(|t| !t.is_empty()) {
            match self.file.read(tail) {
                Ok(0) => break,
                Ok(n) => filled = filled.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SourceError(format!(
                        "reading the entropy source {} failed: {e}",
                        self.path.display()
                    )));
                }
            }
        }
        Ok(filled)
    }
}
