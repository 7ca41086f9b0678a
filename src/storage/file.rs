//! The daemon's [`Storage`]: one file in the state directory, and the
//! checks every state file gets.
//!
//! Contract:
//! - The file is opened with `O_NOFOLLOW` (a symbolic link in its place is
//!   refused, never followed and never formatted) and must then be a
//!   regular file owned by this process's effective user, by root, or by
//!   the owner of its directory; anything else is [`Error::StateFileUntrusted`], with nothing read or
//!   written. It is created with mode `0600` (and tightened to `0600` if
//!   it was looser).
//! - It never grows by a write, only by [`Storage::set_capacity`], which
//!   first checks that the file system has the room (`fstatvfs`) and then
//!   allocates the blocks (`fallocate` where the file system has it): a
//!   file system too small gets [`Error::StorageIo`] with `ENOSPC` and the
//!   file keeps its size, so no sparse file is left behind.
//! - `flush` is `fsync` (`sync_data`). Every I/O failure is
//!   [`Error::StorageIo`] carrying the OS error number.

use core::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::Storage;
use crate::error::Error;

/// `ENOSPC`: no space left on device.
const ENOSPC: i32 = 28;

/// The OS error of `e` as a storage error.
pub(crate) fn io_error(e: &io::Error) -> Error {
    Error::StorageIo {
        errno: e.raw_os_error().unwrap_or(0),
    }
}

/// How a state file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created (mode 0600) when missing.
    Create,
}

/// Why a state file was refused.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The OS refused (missing file, permission, ...).
    Io(io::Error),
    /// A symlink, not a regular file, or another owner.
    Untrusted,
}

impl OpenError {
    /// As the crate error ([`Error::StorageIo`] or
    /// [`Error::StateFileUntrusted`]).
    pub(crate) fn to_error(&self) -> Error {
        match self {
            OpenError::Io(e) => io_error(e),
            OpenError::Untrusted => Error::StateFileUntrusted,
        }
    }

    /// As an I/O error (an untrusted file is `PermissionDenied` with the
    /// reason in the message).
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            OpenError::Io(e) => e,
            OpenError::Untrusted => io::Error::new(
                io::ErrorKind::PermissionDenied,
                "refused: a symbolic link, not a regular file, or owned by another user than this one or root",
            ),
        }
    }
}

/// Opens a state file without following a symbolic link in its place and
/// checks that it is a regular file owned by this process's effective user
/// or by root (checked on the open descriptor: no race with a rename).
pub(crate) fn open_state_file(path: &Path, access: Access) -> Result<File, OpenError> {
    let flags = OFlags::NOFOLLOW
        | OFlags::CLOEXEC
        | match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
            Access::Create => OFlags::RDWR | OFlags::CREATE,
        };
    let fd = rustix::fs::open(path, flags, Mode::RUSR | Mode::WUSR).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            // O_NOFOLLOW on a symbolic link.
            OpenError::Untrusted
        } else {
            OpenError::Io(e.into())
        }
    })?;
    let file = File::from(fd);
    check_trusted(&file, path)?;
    Ok(file)
}

/// A regular file owned by the effective user, by root, or by the owner
/// of the directory it is in (root runs `entropyd set` on the directory of
/// a daemon that runs as its own user: the files are that daemon's). A
/// file planted by a third user is refused.
pub(crate) fn check_trusted(file: &File, path: &Path) -> Result<(), OpenError> {
    let st = rustix::fs::fstat(file.as_fd()).map_err(|e| OpenError::Io(e.into()))?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    let me = rustix::process::geteuid().as_raw();
    let dir_owner = || {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        rustix::fs::stat(dir).ok().map(|d| d.st_uid)
    };
    if regular && (st.st_uid == me || st.st_uid == 0 || dir_owner() == Some(st.st_uid)) {
        Ok(())
    } else {
        Err(OpenError::Untrusted)
    }
}

/// A [`Storage`] backed by a file, normally `<state dir>/storage.cache`.
pub struct FileStorage {
    file: File,
    len: u64,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FileStorage {
    /// The file's name inside the state directory.
    pub const FILE_NAME: &'static str = "storage.cache";

    /// Open (or create) [`FILE_NAME`](Self::FILE_NAME) in `state_dir`.
    ///
    /// # Errors
    /// As [`FileStorage::open`].
    pub fn open_in(state_dir: &Path) -> Result<Self, Error> {
        Self::open(&state_dir.join(Self::FILE_NAME))
    }

    /// Open (or create, mode `0600`) the file at `path`. Its current length
    /// is the capacity; [`StorageCache::open`](super::StorageCache::open)
    /// sizes it.
    ///
    /// # Errors
    /// [`Error::StateFileUntrusted`] when `path` is a symbolic link, not a
    /// regular file, or owned by another user than this one or root
    /// (nothing read or written); [`Error::StorageIo`] with the OS error
    /// when it cannot be opened or created.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = open_state_file(path, Access::Create).map_err(|e| e.to_error())?;
        let meta = file.metadata().map_err(|e| io_error(&e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io_error(&e))?;
            }
        }
        // Make the directory entry durable too (a new file).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(&e))?;
        }
        Ok(FileStorage {
            file,
            len: meta.len(),
        })
    }

    /// A fresh start key for [`StorageCache::open`](super::StorageCache::open):
    /// `HMAC-SHA-256(32 bytes of /dev/urandom, "entropool/storage/v2/start"
    /// || boot id || pid || wall-clock nanoseconds)`. The OS RNG makes it
    /// unpredictable; the boot id (`/proc/sys/kernel/random/boot_id`, fresh
    /// at every boot; empty where it does not exist) makes two boots differ
    /// even if the RNG were to repeat after a restore.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when `/dev/urandom` cannot be read.
    pub fn start_key() -> Result<zeroize::Zeroizing<[u8; 32]>, Error> {
        let mut random = zeroize::Zeroizing::new([0u8; 32]);
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(random.as_mut()))
            .map_err(|e| io_error(&e))?;
        let boot_id = std::fs::read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        crate::crypto::sha256::HmacKey::new(&random).mac(
            &[
                b"entropool/storage/v2/start",
                &boot_id,
                &std::process::id().to_le_bytes(),
                &nanos.to_le_bytes(),
            ],
            &mut out,
        );
        Ok(out)
    }

    /// Check that `offset..offset + len` lies inside the file.
    fn check(&self, offset: u64, len: usize) -> Result<(), Error> {
        let len = u64::try_from(len).map_err(|_| Error::CapacityTooSmall)?;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::CapacityTooSmall),
        }
    }

    /// Grow from `self.len` to `bytes`: room first, then the blocks.
    fn grow(&mut self, bytes: u64) -> Result<(), Error> {
        let more = bytes.saturating_sub(self.len);
        let vfs = rustix::fs::fstatvfs(self.file.as_fd()).map_err(|e| io_error(&e.into()))?;
        if !room_for(vfs.f_bavail, vfs.f_frsize, more) {
            return Err(Error::StorageIo { errno: ENOSPC });
        }
        let old = self.len;
        // Whatever happens next, the length is no longer known for sure:
        // refuse access beyond the old length until it succeeds.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let allocated = rustix::fs::fallocate(
            self.file.as_fd(),
            rustix::fs::FallocateFlags::empty(),
            old,
            more,
        );
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let allocated = Err(rustix::io::Errno::OPNOTSUPP);
        let result = match allocated {
            Ok(()) => self.file.sync_all().map_err(|e| io_error(&e)),
            // A file system without fallocate: a plain resize (the cache
            // writes the new bytes at once, after the room check above).
            Err(rustix::io::Errno::OPNOTSUPP) => self
                .file
                .set_len(bytes)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io_error(&e)),
            Err(e) => Err(io_error(&e.into())),
        };
        if let Err(e) = result {
            // Leave no partly allocated tail behind.
            let _ = self.file.set_len(old).and_then(|()| self.file.sync_all());
            return Err(e);
        }
        self.len = bytes;
        Ok(())
    }
}

/// Whether `blocks` free blocks of `block_size` bytes hold `bytes`.
fn room_for(blocks: u64, block_size: u64, bytes: u64) -> bool {
    u128::from(blocks).saturating_mul(u128::from(block_size)) >= u128::from(bytes)
}

impl Storage for FileStorage {
    fn capacity(&self) -> u64 {
        self.len
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(buf))
            .map_err(|e| io_error(&e))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(data))
            .map_err(|e| io_error(&e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(|e| io_error(&e))
    }

    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes == self.len {
            return Ok(());
        }
        if bytes > self.len {
            return self.grow(bytes);
        }
        // Shrink. Whatever happens next, the length is no longer known for
        // sure: refuse access beyond the new length until it succeeds.
        self.len = bytes;
        self.file
            .set_len(bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::room_for;

    #[test]
    fn room_counts_whole_blocks() {
        assert!(room_for(256, 4096, 1 << 20));
        assert!(!room_for(255, 4096, 1 << 20));
        assert!(room_for(u64::MAX, u64::MAX, u64::MAX));
        assert!(room_for(0, 4096, 0));
    }
}
