//! The daemon's [`Storage`]: one file in the state directory.
//!
//! Contract: the file is created with mode `0600` (and tightened to `0600`
//! if it was looser), is a regular file, never grows by a write (only by
//! [`Storage::set_capacity`]), and `flush` is `fsync` (`sync_data`). Every
//! I/O failure is [`Error::StorageIo`].

use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::Storage;
use crate::error::Error;

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
    /// [`Error::StorageIo`] when the file cannot be opened or created, or
    /// is not a regular file.
    pub fn open_in(state_dir: &Path) -> Result<Self, Error> {
        Self::open(&state_dir.join(Self::FILE_NAME))
    }

    /// Open (or create, mode `0600`) the file at `path`. Its current length
    /// is the capacity; [`StorageCache::open`](super::StorageCache::open)
    /// sizes it.
    ///
    /// # Errors
    /// [`Error::StorageIo`] when the file cannot be opened or created, or
    /// is not a regular file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path).map_err(|_| Error::StorageIo)?;
        let meta = file.metadata().map_err(|_| Error::StorageIo)?;
        if !meta.is_file() {
            return Err(Error::StorageIo);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|_| Error::StorageIo)?;
            }
            // Make the directory entry durable too (a new file).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|_| Error::StorageIo)?;
            }
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
            .map_err(|_| Error::StorageIo)?;
        let boot_id = std::fs::read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        crate::drbg::sha256::HmacKey::new(&random).mac(
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
            .map_err(|_| Error::StorageIo)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(data))
            .map_err(|_| Error::StorageIo)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(|_| Error::StorageIo)
    }

    fn set_capacity(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes == self.len {
            return Ok(());
        }
        // Whatever happens next, the length is no longer known for sure:
        // refuse access beyond the smaller of the two until it succeeds.
        let old = self.len;
        self.len = old.min(bytes);
        self.file
            .set_len(bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|_| Error::StorageIo)?;
        self.len = bytes;
        Ok(())
    }
}
