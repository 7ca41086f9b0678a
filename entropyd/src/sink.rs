//! Appending full-entropy blocks to a sink: a regular file, a FIFO, or a
//! character device.
//!
//! Contract:
//! - A file that does not exist is created with mode 0600. An existing file
//!   or FIFO that others (not owner, not group) may access is refused: the
//!   entropy written there is secret. Directories, sockets and block devices
//!   are refused. Character devices (e.g. `/dev/null`) are written as files.
//! - Files are opened for append: earlier content is never overwritten, and
//!   each [`Sink::write`] appends all of its bytes or fails.
//! - A FIFO never hangs the daemon. It is opened write-only and
//!   non-blocking: with no reader the open fails with `ENXIO` and the sink
//!   waits (retrying the open on each write, writing nothing); when the pipe
//!   is full, the write stops. Bytes are written in pieces of at most
//!   [`PIPE_ATOMIC`] bytes (POSIX `PIPE_BUF`, whole blocks), each written
//!   entirely or not at all, so a reader never sees a torn block.
//!   [`Sink::write`] returns how many bytes went out; the caller must treat
//!   the rest as gone (never re-send them elsewhere later, never re-read
//!   them), since handing out entropy twice is worse than losing it. When
//!   the reader goes away (`EPIPE`), the sink closes its end and waits for a
//!   new reader. (Rust ignores `SIGPIPE` in binaries, so `EPIPE` is an
//!   error, not a signal.)

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest write to a FIFO: 4096 bytes (POSIX `PIPE_BUF` on Linux), which
/// is 128 blocks of 32 bytes. Writes this small are atomic on a pipe.
pub const PIPE_ATOMIC: usize = 4096;

/// What kind of sink a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// A regular file (appended to).
    File,
    /// A named pipe (written non-blocking).
    Fifo,
    /// A character device such as `/dev/null`.
    CharDevice,
}

/// Why the sink could not be opened or written.
#[derive(Debug)]
pub enum SinkError {
    /// The path is a directory, socket or block device.
    Unsupported {
        /// The sink path.
        path: PathBuf,
    },
    /// Others may access the file or FIFO.
    InsecureMode {
        /// The sink path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An OS error opening or writing.
    Io {
        /// The sink path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Unsupported { path } => write!(
                f,
                "sink {} is not a regular file, FIFO or character device",
                path.display()
            ),
            SinkError::InsecureMode { path, mode } => write!(
                f,
                "sink {} has mode {mode:04o}: others could read the entropy; remove their access (chmod o-rwx)",
                path.display()
            ),
            SinkError::Io { path, source } => write!(f, "sink {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An open sink.
#[derive(Debug)]
pub struct Sink {
    path: PathBuf,
    kind: SinkKind,
    /// `None` for a FIFO with no reader.
    file: Option<File>,
    written: u64,
}

impl Sink {
    /// Opens (or, for a missing path, creates) the sink at `path`.
    ///
    /// # Errors
    /// [`SinkError::Unsupported`] for a directory, socket or block device;
    /// [`SinkError::InsecureMode`] for a file or FIFO that others may
    /// access; [`SinkError::Io`] when it cannot be created or opened. A FIFO
    /// with no reader is not an error.
    pub fn open(path: &Path) -> Result<Sink, SinkError> {
        let io_err = |source| SinkError::Io {
            path: path.to_owned(),
            source,
        };
        let kind = match std::fs::metadata(path) {
            Ok(meta) => {
                let ft = meta.file_type();
                let kind = if ft.is_file() {
                    SinkKind::File
                } else if ft.is_fifo() {
                    SinkKind::Fifo
                } else if ft.is_char_device() {
                    SinkKind::CharDevice
                } else {
                    return Err(SinkError::Unsupported {
                        path: path.to_owned(),
                    });
                };
                let mode = meta.permissions().mode() & 0o7777;
                if kind != SinkKind::CharDevice && mode & 0o007 != 0 {
                    return Err(SinkError::InsecureMode {
                        path: path.to_owned(),
                        mode,
                    });
                }
                kind
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => SinkKind::File,
            Err(e) => return Err(io_err(e)),
        };
        let mut sink = Sink {
            path: path.to_owned(),
            kind,
            file: None,
            written: 0,
        };
        match kind {
            SinkKind::File | SinkKind::CharDevice => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(kind == SinkKind::File)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path)
                    .map_err(io_err)?;
                // Re-check on the opened file (the path may have changed).
                let meta = file.metadata().map_err(io_err)?;
                let ok = match kind {
                    SinkKind::File => meta.is_file(),
                    _ => meta.file_type().is_char_device(),
                };
                if !ok {
                    return Err(SinkError::Unsupported {
                        path: path.to_owned(),
                    });
                }
                sink.file = Some(file);
            }
            SinkKind::Fifo => {
                sink.try_open_fifo().map_err(io_err)?;
            }
        }
        Ok(sink)
    }

    /// Opens the FIFO for writing if a reader is there; with no reader,
    /// leaves it closed.
    fn try_open_fifo(&mut self) -> io::Result<()> {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.path)
        {
            Ok(file) => {
                if !file.metadata()?.file_type().is_fifo() {
                    return Err(io::Error::other("the path is no longer a FIFO"));
                }
                self.file = Some(file);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                self.file = None;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The kind of sink.
    #[must_use]
    pub const fn kind(&self) -> SinkKind {
        self.kind
    }

    /// Total bytes written since open.
    #[must_use]
    pub const fn written(&self) -> u64 {
        self.written
    }

    /// Whether a write now could put anything out (always true for files;
    /// for a FIFO, whether a reader is connected, trying to open it first).
    pub fn ready(&mut self) -> bool {
        if self.kind == SinkKind::Fifo && self.file.is_none() {
            let _ = self.try_open_fifo();
        }
        self.file.is_some()
    }

    /// Appends `data` (whole 32-byte blocks) and returns how many bytes
    /// went out: all of them for a file or device; for a FIFO, a multiple
    /// of the [`PIPE_ATOMIC`] pieces (so whole blocks when `data` is whole
    /// blocks), possibly 0 when no reader is connected or the pipe is full.
    ///
    /// # Errors
    /// [`SinkError::Io`] when writing a file or device fails, or a FIFO
    /// fails with anything but "full" or "reader gone".
    pub fn write(&mut self, data: &[u8]) -> Result<usize, SinkError> {
        let io_err = |path: &Path, source| SinkError::Io {
            path: path.to_owned(),
            source,
        };
        if self.kind != SinkKind::Fifo {
            let Some(file) = self.file.as_mut() else {
                return Ok(0);
            };
            file.write_all(data).map_err(|e| io_err(&self.path, e))?;
            self.count(data.len());
            return Ok(data.len());
        }
        if !self.ready() {
            return Ok(0);
        }
        let mut sent = 0usize;
        for piece in data.chunks(PIPE_ATOMIC) {
            let Some(file) = self.file.as_mut() else {
                break;
            };
            match file.write(piece) {
                // Atomic: a piece of at most PIPE_BUF bytes goes out whole.
                Ok(n) if n == piece.len() => sent = sent.saturating_add(n),
                Ok(_) => {
                    return Err(io_err(
                        &self.path,
                        io::Error::other("short write to a FIFO (not atomic)"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    // The reader left: close and wait for the next one.
                    self.file = None;
                    break;
                }
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        self.count(sent);
        Ok(sent)
    }

    fn count(&mut self, n: usize) {
        self.written = self
            .written
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Flushes a file sink to stable storage (`fdatasync`); a no-op for
    /// FIFOs and devices.
    ///
    /// # Errors
    /// [`SinkError::Io`] when the sync fails.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        match (&self.file, self.kind) {
            (Some(file), SinkKind::File) => file.sync_data().map_err(|source| SinkError::Io {
                path: self.path.clone(),
                source,
            }),
            _ => Ok(()),
        }
    }
}
