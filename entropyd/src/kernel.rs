//! Forwarding entropy to the Linux kernel's pool with the `RNDADDENTROPY`
//! ioctl.
//!
//! Contract: [`KernelFeed::open`] opens the random device (normally
//! `/dev/random`; the path is injectable for tests) for writing and checks
//! that it is a character device. [`KernelFeed::add_full_entropy`] hands
//! the kernel bytes that are full-entropy blocks and credits 8 bits per
//! byte; [`KernelFeed::add`] takes an explicit credit (0 mixes without
//! crediting). The ioctl needs `CAP_SYS_ADMIN` (root, or the capability
//! granted by systemd's `AmbientCapabilities=`); without it the kernel
//! answers `EPERM` and the error says so. Data is passed in pieces of at
//! most [`MAX_IOCTL_BYTES`] bytes; the copy made for the ioctl is wiped.
//!
//! The ioctl's argument is `struct rand_pool_info { int entropy_count;
//! int buf_size; __u32 buf[]; }` (linux/random.h): the credit in bits, the
//! length in bytes, then the bytes.
//!
//! [`KernelFeed::wants_entropy`] asks the kernel whether it is still
//! waiting for entropy: before its CRNG is ready, `/dev/random` polls
//! writable (`POLLOUT`); once it is ready, never (Linux 5.18 and later,
//! `random_poll`). The ioctl and that `poll` are the only `unsafe` blocks
//! in the crate.

#![allow(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The kernel's random device.
pub const DEFAULT_RANDOM_DEVICE: &str = "/dev/random";

/// Most bytes passed in one ioctl.
pub const MAX_IOCTL_BYTES: usize = 4096;

/// Bits credited per byte of a full-entropy block.
pub const FULL_ENTROPY_BITS_PER_BYTE: u32 = 8;

/// `RNDADDENTROPY` = `_IOW('R', 0x03, int[2])`: direction "write" (1 on
/// most architectures, 4 where the ioctl encoding differs), size 8, type
/// 'R' (0x52), number 3.
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const RNDADDENTROPY: u32 = 0x4008_5203;
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
const RNDADDENTROPY: u32 = 0x8008_5203;

/// Why the kernel feed failed.
#[derive(Debug)]
pub enum KernelError {
    /// The device could not be opened.
    Open {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path is not a character device.
    NotADevice {
        /// The path.
        path: PathBuf,
    },
    /// The kernel refused: the process lacks `CAP_SYS_ADMIN`.
    PermissionDenied {
        /// The device path.
        path: PathBuf,
    },
    /// The device does not support `RNDADDENTROPY` (not the random device).
    NotRandomDevice {
        /// The device path.
        path: PathBuf,
    },
    /// Another ioctl failure.
    Ioctl {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Open { path, source } => {
                write!(f, "cannot open {} for writing: {source}", path.display())
            }
            KernelError::NotADevice { path } => {
                write!(
                    f,
                    "{} is not a character device (expected /dev/random)",
                    path.display()
                )
            }
            KernelError::PermissionDenied { path } => write!(
                f,
                "the kernel refused RNDADDENTROPY on {}: --kernel needs root or CAP_SYS_ADMIN (run as root, or with AmbientCapabilities=CAP_SYS_ADMIN under systemd); without it use --sink=PATH",
                path.display()
            ),
            KernelError::NotRandomDevice { path } => write!(
                f,
                "{} does not accept RNDADDENTROPY: it is not the kernel random device",
                path.display()
            ),
            KernelError::Ioctl { path, source } => {
                write!(f, "RNDADDENTROPY on {} failed: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KernelError::Open { source, .. } | KernelError::Ioctl { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Maps an ioctl errno to the error the user sees.
fn ioctl_error(path: &Path, err: io::Error) -> KernelError {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => KernelError::PermissionDenied {
            path: path.to_owned(),
        },
        Some(libc::ENOTTY | libc::EINVAL) => KernelError::NotRandomDevice {
            path: path.to_owned(),
        },
        _ => KernelError::Ioctl {
            path: path.to_owned(),
            source: err,
        },
    }
}

/// An open handle on the kernel's random device.
#[derive(Debug)]
pub struct KernelFeed {
    path: PathBuf,
    device: File,
    credited_bits: u64,
}

impl KernelFeed {
    /// Opens [`DEFAULT_RANDOM_DEVICE`].
    ///
    /// # Errors
    /// As [`KernelFeed::open_path`].
    pub fn open() -> Result<KernelFeed, KernelError> {
        KernelFeed::open_path(Path::new(DEFAULT_RANDOM_DEVICE))
    }

    /// Opens `path` for writing and checks it is a character device. This
    /// does not check the capability; the first add does.
    ///
    /// # Errors
    /// [`KernelError::Open`] when it cannot be opened,
    /// [`KernelError::NotADevice`] when it is not a character device.
    pub fn open_path(path: &Path) -> Result<KernelFeed, KernelError> {
        let device = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| KernelError::Open {
                path: path.to_owned(),
                source,
            })?;
        let meta = device.metadata().map_err(|source| KernelError::Open {
            path: path.to_owned(),
            source,
        })?;
        if !meta.file_type().is_char_device() {
            return Err(KernelError::NotADevice {
                path: path.to_owned(),
            });
        }
        Ok(KernelFeed {
            path: path.to_owned(),
            device,
            credited_bits: 0,
        })
    }

    /// Checks that the kernel accepts our ioctl (the capability is there)
    /// by adding nothing: a zero-length, zero-credit `RNDADDENTROPY`. Call
    /// it at start so `--kernel` without the capability fails at once.
    ///
    /// # Errors
    /// As [`KernelFeed::add`].
    pub fn probe(&mut self) -> Result<(), KernelError> {
        self.ioctl_piece(&[], 0)
    }

    /// Hands full-entropy bytes to the kernel, crediting 8 bits per byte.
    ///
    /// # Errors
    /// As [`KernelFeed::add`].
    pub fn add_full_entropy(&mut self, data: &[u8]) -> Result<(), KernelError> {
        self.add(data, FULL_ENTROPY_BITS_PER_BYTE)
    }

    /// Hands `data` to the kernel, crediting `bits_per_byte` (0..=8, higher
    /// values are clamped to 8) bits of entropy per byte. On an error part
    /// of `data` (whole pieces) may already have been added.
    ///
    /// # Errors
    /// [`KernelError::PermissionDenied`] without `CAP_SYS_ADMIN`,
    /// [`KernelError::NotRandomDevice`] when the device does not know the
    /// ioctl, [`KernelError::Ioctl`] otherwise.
    pub fn add(&mut self, data: &[u8], bits_per_byte: u32) -> Result<(), KernelError> {
        let bits_per_byte = bits_per_byte.min(FULL_ENTROPY_BITS_PER_BYTE);
        for piece in data.chunks(MAX_IOCTL_BYTES) {
            // A piece is at most 4096 bytes: 4096 * 8 fits an i32.
            let bits = u32::try_from(piece.len())
                .unwrap_or(u32::MAX)
                .saturating_mul(bits_per_byte);
            self.ioctl_piece(piece, bits)?;
            self.credited_bits = self.credited_bits.saturating_add(u64::from(bits));
        }
        Ok(())
    }

    /// Whether the kernel is waiting for entropy now: the device polls
    /// writable (`POLLOUT`, before the kernel's CRNG is ready). Never
    /// waits.
    ///
    /// # Errors
    /// The `poll` error.
    pub fn wants_entropy(&self) -> io::Result<bool> {
        polls_writable(&self.device)
    }

    /// Bits credited to the kernel since open.
    #[must_use]
    pub const fn credited_bits(&self) -> u64 {
        self.credited_bits
    }

    /// One `RNDADDENTROPY` call for at most [`MAX_IOCTL_BYTES`] bytes.
    fn ioctl_piece(&mut self, piece: &[u8], bits: u32) -> Result<(), KernelError> {
        let too_big = || KernelError::Ioctl {
            path: self.path.clone(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        };
        if piece.len() > MAX_IOCTL_BYTES {
            return Err(too_big());
        }
        let count = libc::c_int::try_from(bits).map_err(|_| too_big())?;
        let size = libc::c_int::try_from(piece.len()).map_err(|_| too_big())?;
        // struct rand_pool_info as c_ints: [entropy_count, buf_size, buf...],
        // buf rounded up to whole 32-bit words; 4-byte aligned by its type.
        let words = piece.len().div_ceil(4);
        let mut info: Zeroizing<Vec<libc::c_int>> =
            Zeroizing::new(vec![0; words.saturating_add(2)]);
        if let Some(header) = info.get_mut(..2) {
            header.copy_from_slice(&[count, size]);
        }
        if let Some(buf) = info.get_mut(2..) {
            for (word, bytes) in buf.iter_mut().zip(piece.chunks(4)) {
                let mut w = [0u8; 4];
                if let Some(dst) = w.get_mut(..bytes.len()) {
                    dst.copy_from_slice(bytes);
                }
                *word = libc::c_int::from_ne_bytes(w);
            }
        }
        // The ioctl request type is c_ulong on glibc and c_int on musl; the
        // cast keeps the bit pattern, which is what the kernel compares.
        #[allow(
            clippy::useless_conversion,
            clippy::cast_possible_wrap,
            clippy::cast_lossless
        )]
        let request = RNDADDENTROPY as _;
        // SAFETY: the fd is open (owned by `self.device`). RNDADDENTROPY
        // reads `struct rand_pool_info` from the pointer: two c_ints, then
        // `buf_size` bytes; `info` holds 2 + ceil(buf_size / 4) c_ints, all
        // initialised, so the kernel reads only within the allocation, and
        // it does not keep the pointer after the call.
        let rc = unsafe { libc::ioctl(self.device.as_raw_fd(), request, info.as_ptr()) };
        if rc < 0 {
            return Err(ioctl_error(&self.path, io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// Whether `fd` polls writable now (a `poll` with a zero timeout).
fn polls_writable(fd: &impl AsRawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one initialised `pollfd` that lives across the
    // call, and nfds is 1, so the kernel reads and writes only it; the
    // zero timeout makes the call return at once.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc > 0 && pfd.revents & libc::POLLOUT != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_polls_writable_until_it_is_full() {
        let (reader, mut writer) = io::pipe().unwrap();
        assert!(polls_writable(&writer).unwrap());
        // POLLOUT on a pipe means a free page slot: a 4096-byte write then
        // never blocks. Write until it no longer polls writable.
        let chunk = [0u8; 4096];
        let mut full = false;
        for _ in 0..1024 {
            if !polls_writable(&writer).unwrap() {
                full = true;
                break;
            }
            io::Write::write_all(&mut writer, &chunk).unwrap();
        }
        assert!(full, "a pipe's buffer is finite");
        drop(reader);
    }

    #[test]
    fn errno_mapping_names_the_capability() {
        let p = Path::new("/dev/random");
        let e = ioctl_error(p, io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, KernelError::PermissionDenied { .. }));
        assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
        let e = ioctl_error(p, io::Error::from_raw_os_error(libc::ENOTTY));
        assert!(matches!(e, KernelError::NotRandomDevice { .. }));
        let e = ioctl_error(p, io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, KernelError::Ioctl { .. }));
    }

    #[test]
    fn request_number_matches_the_ioc_encoding() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr
        // on the generic encoding (x86, arm, riscv): _IOC_WRITE = 1.
        #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
        assert_eq!(
            RNDADDENTROPY,
            (1u32 << 30) | (8u32 << 16) | (u32::from(b'R') << 8) | 3
        );
    }
}
