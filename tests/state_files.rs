//! State files under an attacker with a foothold in the state directory
//! (issue 15 item 3) and two owners (item 4): symbolic links are refused,
//! never followed or formatted; files of another user are refused; the OS
//! reason survives in storage errors; a file system too small for the
//! storage cache is refused before the file grows; the directory lock
//! follows the inode, not the path.
//!
//! Some tests mount a tmpfs (root only). Without the privilege they print
//! a loud SKIPPED line and check what they can without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(all(feature = "std", unix, not(miri)))]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use entropool::storage::{StorageCache, layout_len, slots_for_bytes};
use entropool::store::{StateDir, StoreErrorKind};
use entropool::{Error, FileStorage, SourceMask};

fn euid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap()
}

/// A tmpfs of `size` mounted on a new directory under `base`; unmounted on
/// drop. `None` (after a loud line) when mounting is not allowed here.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(base: &Path, opts: &str) -> Option<Tmpfs> {
        let dir = base.join(format!("tmpfs-{}", opts.replace([',', '='], "-")));
        fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            eprintln!("*** SKIPPED: cannot mount a tmpfs ({opts}) here (needs root) ***");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_symlink_in_place_of_the_storage_cache_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    fs::write(&target, b"not yours").unwrap();
    symlink(&target, dir.path().join(FileStorage::FILE_NAME)).unwrap();
    assert_eq!(
        FileStorage::open_in(dir.path()).err(),
        Some(Error::StateFileUntrusted)
    );
    assert_eq!(fs::read(&target).unwrap(), b"not yours");
    // A dangling link is refused too (and nothing is created through it).
    let dangling = dir.path().join("nothing-here");
    fs::remove_file(dir.path().join(FileStorage::FILE_NAME)).unwrap();
    symlink(&dangling, dir.path().join(FileStorage::FILE_NAME)).unwrap();
    assert_eq!(
        FileStorage::open_in(dir.path()).err(),
        Some(Error::StateFileUntrusted)
    );
    assert!(!dangling.exists());
}

#[test]
fn a_state_file_of_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FileStorage::FILE_NAME);
    fs::write(&path, [0u8; 64]).unwrap();
    let other = if euid() == 0 { 4242 } else { 0 };
    let chowned = std::os::unix::fs::chown(&path, Some(other), None).is_ok();
    if !chowned {
        eprintln!("*** SKIPPED: cannot give a file to another user here (needs root) ***");
        return;
    }
    if other == 0 {
        // Root's files are trusted.
        assert!(FileStorage::open(&path).is_ok());
        return;
    }
    assert_eq!(
        FileStorage::open(&path).err(),
        Some(Error::StateFileUntrusted)
    );
    // The config store and the staged seed likewise.
    let state = StateDir::open(dir.path()).unwrap();
    fs::write(state.config_path(), b"x").unwrap();
    std::os::unix::fs::chown(state.config_path(), Some(other), None).unwrap();
    let e = state.load_config().unwrap_err();
    assert_eq!(e.error(), Some(Error::StateFileUntrusted), "{e}");
    fs::write(state.staged_kickstart_path(), b"seed").unwrap();
    std::os::unix::fs::chown(state.staged_kickstart_path(), Some(other), None).unwrap();
    assert!(state.take_staged_kickstart().is_err());
    assert!(
        state.staged_kickstart_path().exists(),
        "the seed was not consumed"
    );
}

#[test]
fn config_and_seed_links_are_refused_and_temp_links_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let target = dir.path().join("elsewhere");
    fs::write(&target, b"keep").unwrap();
    symlink(&target, state.config_path()).unwrap();
    let e = state.load_config().unwrap_err();
    assert_eq!(e.error(), Some(Error::StateFileUntrusted), "{e}");
    symlink(&target, state.staged_kickstart_path()).unwrap();
    assert!(state.take_staged_kickstart().is_err());
    assert_eq!(fs::read(&target).unwrap(), b"keep");
    // A link planted where the atomic write puts its temp file.
    fs::remove_file(state.config_path()).unwrap();
    symlink(&target, dir.path().join(".config.tmp")).unwrap();
    state.save_config(&entropool::Config::DEFAULT).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"keep");
    assert!(fs::symlink_metadata(state.config_path()).unwrap().is_file());
    assert_eq!(state.load_config().unwrap(), entropool::Config::DEFAULT);
}

#[test]
fn a_file_system_too_small_is_refused_before_the_file_grows() {
    let base = tempfile::tempdir().unwrap();
    let Some(fs1) = Tmpfs::mount(base.path(), "size=1m") else {
        return;
    };
    let path = fs1.0.join(FileStorage::FILE_NAME);
    let medium = FileStorage::open(&path).unwrap();
    // The default storage-cache-size: 4 MiB on a 1 MiB file system.
    let slots = slots_for_bytes(4096 * 1024);
    let every = SourceMask::new(15).unwrap();
    let e = StorageCache::open(medium, slots, every, &[0; 32]).unwrap_err();
    assert_eq!(e, Error::StorageIo { errno: 28 });
    assert!(e.to_string().contains("ENOSPC"), "{e}");
    // No sparse 4 MiB file left behind: still empty.
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    // What fits is fine, and really allocated.
    let medium = FileStorage::open(&path).unwrap();
    let slots = slots_for_bytes(256 * 1024);
    let (c, _) = StorageCache::open(medium, slots, every, &[0; 32]).unwrap();
    drop(c);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), layout_len(slots).unwrap());
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "sparse: {} blocks",
        meta.blocks()
    );
}

#[test]
fn a_read_only_file_system_keeps_its_errno() {
    let base = tempfile::tempdir().unwrap();
    let Some(ro) = Tmpfs::mount(base.path(), "ro,size=64k") else {
        return;
    };
    let e = FileStorage::open_in(&ro.0).unwrap_err();
    assert_eq!(e, Error::StorageIo { errno: 30 });
    assert!(e.to_string().contains("EROFS"), "{e}");
}

#[test]
fn the_lock_is_exclusive_through_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("state");
    fs::create_dir(&real).unwrap();
    let held = StateDir::open(&real).unwrap().lock().unwrap();
    // The same path, and another path to the same directory.
    let link = dir.path().join("also-state");
    symlink(&real, &link).unwrap();
    for path in [&real, &link] {
        let e = StateDir::open(path).unwrap().lock().unwrap_err();
        match &e.kind {
            StoreErrorKind::Io(io) => {
                assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            }
            StoreErrorKind::Invalid(_) => panic!("{e}"),
        }
        assert!(e.to_string().contains("another entropyd is running"), "{e}");
    }
    // A bind mount (another mount of the same inode), where allowed.
    let bind = dir.path().join("bind");
    fs::create_dir(&bind).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind"])
        .arg(&real)
        .arg(&bind)
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let r = StateDir::open(&bind).unwrap().lock();
        let _ = Command::new("umount").arg(&bind).status();
        assert!(r.is_err(), "a bind mount got a second lock");
    } else {
        eprintln!("*** SKIPPED (bind-mount part): cannot bind-mount here (needs root) ***");
    }
    drop(held);
    assert!(
        StateDir::open(&link).unwrap().lock().is_ok(),
        "released on drop"
    );
}

#[test]
fn a_lock_file_link_or_foreign_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, b"").unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    symlink(&target, state.join(StateDir::LOCK_FILE)).unwrap();
    let e = StateDir::open(&state).unwrap().lock().unwrap_err();
    assert_eq!(e.error(), Some(Error::StateFileUntrusted), "{e}");
    if euid() == 0 {
        let foreign = dir.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(4242), None).unwrap();
        let e = StateDir::open(&foreign).unwrap().lock().unwrap_err();
        assert_eq!(e.error(), Some(Error::StateFileUntrusted), "{e}");
    }
}

#[test]
fn tighten_makes_the_directory_0700_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    let s = StateDir::open(&state).unwrap();
    assert_eq!(s.tighten().unwrap(), Some(0o755));
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(s.tighten().unwrap(), None);
}
