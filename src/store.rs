//! The daemon's state directory (std only): the config store and the staged
//! kickstart seed.
//!
//! Contract:
//! - The config store is one file, [`StateDir::CONFIG_FILE`], in the text
//!   form of [`Config::write_text`]. It is written atomically: a temporary
//!   file in the same directory is written and fsynced, renamed over the
//!   old file, and the directory is fsynced, so a reader sees the old or the
//!   new file, never a mix.
//! - A missing config file means [`Config::DEFAULT`]; a corrupt one is an
//!   error naming the file ([`StoreError`] with [`Error::ConfigCorrupt`]),
//!   never silently reset.
//! - A kickstart seed is staged ([`StateDir::stage_kickstart`]) only into a
//!   fresh state directory: no pool state yet, that is no staged seed and
//!   no storage cache file (a config store written by `set` is allowed and
//!   keeps its tunables). Otherwise [`Error::NotFreshInstall`] and nothing
//!   changes.
//! - [`StateDir::take_staged_kickstart`] removes the staged file (unlink and
//!   directory fsync) *before* it returns the seed, so the seed is used at
//!   most once, even across a crash; it then overwrites the unlinked file's
//!   blocks with zeros through the still-open handle.
//! - The interrupt credit an assessment recommended is its own record,
//!   [`StateDir::CREDIT_FILE`] ([`AssessedCredit`]'s text form), written the
//!   same atomic way; `set --reset=all` leaves it alone (it is a
//!   measurement of this machine, not a tunable).
//! - Files are created with mode 0600, the directory with 0700 (Unix). A
//!   file replaced by an atomic write keeps its owner and mode, and a new
//!   one gets the directory's owner (so `set` run as root on a daemon's
//!   directory leaves the daemon able to read its config); when that
//!   ownership cannot be given, the write is refused with an error naming
//!   both users and nothing changes.
//! - Every state file is opened with `O_NOFOLLOW` and must be a regular
//!   file owned by this process's effective user or by root: a symbolic
//!   link or a file planted by another user is refused
//!   ([`Error::StateFileUntrusted`]), never followed. Temporary files are
//!   created exclusively (`O_CREAT | O_EXCL`, which never follows a link).
//! - Concurrent writers are not locked against each other: each write is
//!   atomic, and the last one wins.
//! - One daemon per state directory: [`StateDir::lock`] takes an exclusive
//!   `flock(2)` on [`StateDir::LOCK_FILE`] in the directory. The lock
//!   follows the inode, so a bind mount, another mount or network
//!   namespace, or another path to the same directory meets the same lock;
//!   the kernel drops it when the process exits, even on a crash.
//!   [`StateDir::tighten`] makes an existing directory 0700.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::string::String;
use std::vec::Vec;

use zeroize::Zeroizing;

use crate::assess::AssessedCredit;
use crate::config::Config;
use crate::error::Error;
use crate::source::SourceMask;
use crate::storage::file::{Access, OpenError, open_state_file};

/// What went wrong with a file of the state directory.
#[derive(Debug)]
pub enum StoreErrorKind {
    /// The operating system refused (missing permission, disk full, ...).
    Io(io::Error),
    /// The content or the state is not acceptable (e.g.
    /// [`Error::ConfigCorrupt`], [`Error::NotFreshInstall`]).
    Invalid(Error),
}

/// An error of the state directory, naming the file it concerns.
#[derive(Debug)]
pub struct StoreError {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: StoreErrorKind,
}

impl StoreError {
    fn open(path: &Path, e: OpenError) -> Self {
        match e {
            OpenError::Io(e) => StoreError::io(path, e),
            OpenError::Untrusted => StoreError::invalid(path, Error::StateFileUntrusted),
        }
    }

    fn io(path: &Path, e: io::Error) -> Self {
        StoreError {
            path: path.to_path_buf(),
            kind: StoreErrorKind::Io(e),
        }
    }

    fn invalid(path: &Path, e: Error) -> Self {
        StoreError {
            path: path.to_path_buf(),
            kind: StoreErrorKind::Invalid(e),
        }
    }

    /// The crate error, when this is not an I/O failure.
    #[must_use]
    pub fn error(&self) -> Option<Error> {
        match self.kind {
            StoreErrorKind::Invalid(e) => Some(e),
            StoreErrorKind::Io(_) => None,
        }
    }
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let path = self.path.display();
        match &self.kind {
            StoreErrorKind::Io(e) => write!(f, "{path}: {e}"),
            StoreErrorKind::Invalid(Error::ConfigCorrupt) => write!(
                f,
                "{path}: {} (fix or remove the file; it is never reset silently)",
                Error::ConfigCorrupt
            ),
            StoreErrorKind::Invalid(e) => write!(f, "{path}: {e}"),
        }
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match &self.kind {
            StoreErrorKind::Io(e) => Some(e),
            StoreErrorKind::Invalid(e) => Some(e),
        }
    }
}

/// The daemon's state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The config store's file name.
    pub const CONFIG_FILE: &'static str = "config";
    /// The staged kickstart seed's file name.
    pub const STAGED_KICKSTART_FILE: &'static str = "kickstart.staged";
    /// The interrupt-source credit `entropyd assess` recommended
    /// ([`AssessedCredit`]); absent: the conservative default credit.
    pub const CREDIT_FILE: &'static str = "interrupts.credit";
    /// The storage cache's file name (owned by the storage cache backend).
    pub const STORAGE_CACHE_FILE: &'static str = "storage.cache";
    /// The default state directory of `entropyd`.
    pub const DEFAULT_PATH: &'static str = "/var/lib/entropyd";

    /// A state directory at `path`. Nothing is created until something is
    /// written.
    ///
    /// # Errors
    /// A [`StoreError`] when `path` exists and is not a directory, or cannot
    /// be inspected.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, StoreError> {
        let path = path.into();
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::io(
                    &path,
                    io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        Ok(StateDir { path })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config store's path.
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.path.join(Self::CONFIG_FILE)
    }

    /// The staged kickstart seed's path.
    #[must_use]
    pub fn staged_kickstart_path(&self) -> PathBuf {
        self.path.join(Self::STAGED_KICKSTART_FILE)
    }

    /// The storage cache's path.
    #[must_use]
    pub fn storage_cache_path(&self) -> PathBuf {
        self.path.join(Self::STORAGE_CACHE_FILE)
    }

    /// Read the config store; a missing file means [`Config::DEFAULT`].
    ///
    /// # Errors
    /// A [`StoreError`] naming the file: [`Error::ConfigCorrupt`] when it is
    /// not a valid config (never silently reset), or the I/O error.
    pub fn load_config(&self) -> Result<Config, StoreError> {
        let path = self.config_path();
        let mut text = Vec::new();
        match open_state_file(&path, Access::Read) {
            Ok(mut f) => {
                // A valid config is ~200 bytes; read a little more to see
                // whether it is longer than any valid one.
                let mut limited = (&mut f).take(4096);
                limited
                    .read_to_end(&mut text)
                    .map_err(|e| StoreError::io(&path, e))?;
                if text.len() >= 4096 {
                    return Err(StoreError::invalid(&path, Error::ConfigCorrupt));
                }
            }
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Config::DEFAULT);
            }
            Err(e) => return Err(StoreError::open(&path, e)),
        }
        let text = core::str::from_utf8(&text)
            .map_err(|_| StoreError::invalid(&path, Error::ConfigCorrupt))?;
        Config::parse_text(text).map_err(|e| StoreError::invalid(&path, e))
    }

    /// Write the config store atomically.
    ///
    /// # Errors
    /// A [`StoreError`] naming the file or directory that failed.
    pub fn save_config(&self, config: &Config) -> Result<(), StoreError> {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = config.write_text(&mut text);
        self.write_atomic(Self::CONFIG_FILE, text.as_bytes())
    }

    /// Read the assessed interrupt credit; `None` when no assessment was
    /// recorded.
    ///
    /// # Errors
    /// A [`StoreError`] naming the file: [`Error::ConfigCorrupt`] when it is
    /// not a valid record (never silently dropped), or the I/O error.
    pub fn load_credit(&self) -> Result<Option<AssessedCredit>, StoreError> {
        let path = self.path.join(Self::CREDIT_FILE);
        let mut text = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                f.take(4096)
                    .read_to_end(&mut text)
                    .map_err(|e| StoreError::io(&path, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        let parsed = core::str::from_utf8(&text)
            .map_err(|_| Error::ConfigCorrupt)
            .and_then(AssessedCredit::parse_text);
        parsed.map(Some).map_err(|e| StoreError::invalid(&path, e))
    }

    /// Record an assessed interrupt credit atomically (replacing any
    /// earlier one).
    ///
    /// # Errors
    /// A [`StoreError`] naming the file or directory that failed.
    pub fn save_credit(&self, credit: &AssessedCredit) -> Result<(), StoreError> {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = credit.write_text(&mut text);
        self.write_atomic(Self::CREDIT_FILE, text.as_bytes())
    }

    /// Load the config, change it with `change`, and save it only when
    /// `change` succeeds and changed something (so a `set` to the values
    /// already in force writes nothing).
    ///
    /// # Errors
    /// As [`StateDir::load_config`] and [`StateDir::save_config`];
    /// `change`'s error (naming the config file) leaves the store unchanged.
    pub fn update_config(
        &self,
        change: impl FnOnce(&mut Config) -> Result<(), Error>,
    ) -> Result<Config, StoreError> {
        let old = self.load_config()?;
        let mut new = old;
        change(&mut new).map_err(|e| StoreError::invalid(&self.config_path(), e))?;
        if new != old {
            self.save_config(&new)?;
        }
        Ok(new)
    }

    /// Whether the state directory is fresh: no pool state yet, that is
    /// no staged kickstart seed and no storage cache file (a config file
    /// may exist).
    ///
    /// # Errors
    /// A [`StoreError`] when a file's existence cannot be determined.
    pub fn is_fresh(&self) -> Result<bool, StoreError> {
        for name in [Self::STAGED_KICKSTART_FILE, Self::STORAGE_CACHE_FILE] {
            let path = self.path.join(name);
            match fs::symlink_metadata(&path) {
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        Ok(true)
    }

    /// Stage a kickstart seed and record `sources` in the config store
    /// (keeping the tunables a `set` stored). Only into a fresh state
    /// directory.
    ///
    /// The seed is written first, then the config; a crash between the two
    /// leaves the seed staged with the config as it was, which `get` shows
    /// and `kickstart` then refuses to overwrite.
    ///
    /// # Errors
    /// [`Error::NotFreshInstall`] (naming the directory) when it is not
    /// fresh, with nothing changed; a corrupt config store; otherwise an
    /// I/O [`StoreError`].
    pub fn stage_kickstart(&self, data: &[u8], sources: SourceMask) -> Result<(), StoreError> {
        if !self.is_fresh()? {
            return Err(StoreError::invalid(&self.path, Error::NotFreshInstall));
        }
        let config = self.load_config()?;
        self.write_atomic(Self::STAGED_KICKSTART_FILE, data)?;
        self.save_config(&Config { sources, ..config })
    }

    /// Take the staged kickstart seed, if any: the file is unlinked and the
    /// directory fsynced before the seed is returned, so it is never handed
    /// out twice; then the unlinked file is overwritten with zeros.
    ///
    /// # Errors
    /// The I/O error; the seed is then not returned (and, if the unlink
    /// already happened, lost rather than reused).
    pub fn take_staged_kickstart(&self) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
        let path = self.staged_kickstart_path();
        let mut file = match open_state_file(&path, Access::ReadWrite) {
            Ok(f) => f,
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into_io()),
        };
        let len = file.metadata()?.len();
        if len > crate::kickstart::Limits::INSTALL.max_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "staged kickstart seed larger than 10 MiB",
            ));
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        // Exact capacity: `read_to_end` then never reallocates (which would
        // leave an unwiped copy).
        let mut data = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
        file.read_to_end(&mut data)?;
        fs::remove_file(&path)?;
        sync_dir(&self.path)?;
        // Best effort: the seed is already ours; scrub the unlinked blocks.
        let _ = scrub(&mut file, data.len());
        Ok(Some(data))
    }

    /// Create the directory (0700 on Unix) when missing.
    fn ensure_dir(&self) -> Result<(), StoreError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(&self.path)
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Write `name` atomically: temp file, write, fsync, rename, fsync dir.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.ensure_dir()?;
        let path = self.path.join(name);
        let tmp = self.path.join(std::format!(".{name}.tmp"));
        let result = (|| {
            // A stale temp file from a crash (or anything planted there):
            // unlinking removes a link itself, never its target.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut options = OpenOptions::new();
            // O_CREAT | O_EXCL: never follows a link, never reuses a file.
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp)?;
            #[cfg(unix)]
            keep_owner(&f, &path, &self.path)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(&path, e));
        }
        sync_dir(&self.path).map_err(|e| StoreError::io(&self.path, e))
    }
}

/// Gives the new file `f` the owner and mode of the file `path` it will
/// replace, or the owner of the directory `dir` when there is none yet.
///
/// # Errors
/// `PermissionDenied` naming both users when the owner cannot be given.
#[cfg(unix)]
fn keep_owner(f: &File, path: &Path, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (owner, mode) = match fs::metadata(path) {
        Ok(m) => {
            let mode = m.mode() & 0o7777;
            (m, Some(mode))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (fs::metadata(dir)?, None),
        Err(e) => return Err(e),
    };
    let me = f.metadata()?;
    if (me.uid(), me.gid()) != (owner.uid(), owner.gid()) {
        std::os::unix::fs::fchown(f, Some(owner.uid()), Some(owner.gid())).map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                std::format!(
                    "it belongs to {} but this process runs as {} and cannot give it that owner ({e}); run the command as {} or root",
                    user_text(owner.uid()),
                    user_text(me.uid()),
                    user_text(owner.uid())
                ),
            )
        })?;
    }
    if let Some(mode) = mode {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// `uid N (name)`, the name from `/etc/passwd` when it is there.
#[cfg(unix)]
fn user_text(uid: u32) -> String {
    let name = fs::read_to_string("/etc/passwd").ok().and_then(|text| {
        text.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| String::from(name))
        })
    });
    match name {
        Some(n) => std::format!("uid {uid} ({n})"),
        None => std::format!("uid {uid}"),
    }
}

/// The held lock on a state directory ([`StateDir::lock`]); released when
/// dropped (or when the process exits).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    /// The lock file's name.
    pub const LOCK_FILE: &'static str = "lock";

    /// Takes the state directory for this process: an exclusive,
    /// non-blocking `flock(2)` on [`StateDir::LOCK_FILE`] (created 0600;
    /// `O_NOFOLLOW` and the owner check apply). The directory must exist
    /// and be owned by this process's effective user or by root.
    ///
    /// # Errors
    /// A [`StoreError`] naming the lock file: `WouldBlock` when another
    /// process holds it (another daemon on this directory, through any
    /// path or namespace), [`Error::StateFileUntrusted`] for a directory
    /// or lock file owned by another user (or a link), or the I/O error.
    pub fn lock(&self) -> Result<StateLock, StoreError> {
        self.check_dir_owner()?;
        let path = self.path.join(Self::LOCK_FILE);
        let file =
            open_state_file(&path, Access::Create).map_err(|e| StoreError::open(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StoreError::io(
                &path,
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "another entropyd is running on this state directory (it holds the flock on its lock file); stop it first",
                ),
            )),
            Err(e) => Err(StoreError::io(&path, e.into())),
        }
    }

    /// Makes the directory mode 0700 when it is looser; returns the old
    /// permission bits when it changed them (for a log line).
    ///
    /// # Errors
    /// A [`StoreError`] naming the directory when it cannot be inspected
    /// or changed.
    pub fn tighten(&self) -> Result<Option<u32>, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(&self.path).map_err(|e| StoreError::io(&self.path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode & 0o7700))
            .map_err(|e| StoreError::io(&self.path, e))?;
        Ok(Some(mode))
    }

    /// The directory (a link to it is followed: an admin's choice) is
    /// owned by the effective user or root.
    fn check_dir_owner(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(&self.path).map_err(|e| StoreError::io(&self.path, e))?;
        let me = rustix::process::geteuid().as_raw();
        if meta.is_dir() && (meta.uid() == me || meta.uid() == 0) {
            Ok(())
        } else {
            Err(StoreError::invalid(&self.path, Error::StateFileUntrusted))
        }
    }
}

/// fsync a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Overwrite the first `len` bytes of `file` with zeros and sync.
fn scrub(file: &mut File, len: usize) -> io::Result<()> {
    file.rewind()?;
    let zeros = [0u8; 8192];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        file.write_all(zeros.get(..n).unwrap_or(&[]))?;
        left = left.saturating_sub(n);
    }
    file.sync_all()
}
