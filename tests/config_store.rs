//! Public-API tests of `entropool::store` (std): the config store's atomic
//! writes and corruption handling, and kickstart staging.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
#![cfg(feature = "std")]

use entropool::config::Param;
use entropool::store::{StateDir, StoreErrorKind};
use entropool::{Config, Error, SourceMask, Tunables};

fn dir() -> (tempfile::TempDir, StateDir) {
    let t = tempfile::tempdir().unwrap();
    let s = StateDir::open(t.path().join("state")).unwrap();
    (t, s)
}

#[test]
fn missing_config_means_defaults_and_nothing_is_created() {
    let (_t, s) = dir();
    assert_eq!(s.load_config().unwrap(), Config::DEFAULT);
    assert!(!s.path().exists());
    assert!(s.is_fresh().unwrap());
}

#[test]
fn save_then_load_round_trips_and_leaves_no_temp_file() {
    let (_t, s) = dir();
    let c = Config {
        tunables: Tunables::new(7, 0, 1, 0).unwrap(),
        sources: SourceMask::new(9).unwrap(),
    };
    s.save_config(&c).unwrap();
    assert_eq!(s.load_config().unwrap(), c);
    let names: Vec<String> = std::fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![StateDir::CONFIG_FILE.to_string()]);
    // A config store alone is no pool state: still fresh for kickstart.
    assert!(s.is_fresh().unwrap());
}

#[test]
fn corrupt_config_is_an_error_naming_the_file_and_is_kept() {
    let (_t, s) = dir();
    s.save_config(&Config::DEFAULT).unwrap();
    let path = s.config_path();
    for bad in [&b"garbage\n"[..], b"", b"\xff\xfe", &[b'x'; 5000][..]] {
        std::fs::write(&path, bad).unwrap();
        let e = s.load_config().unwrap_err();
        assert_eq!(e.error(), Some(Error::ConfigCorrupt));
        assert_eq!(e.path, path);
        assert!(e.to_string().contains(&path.display().to_string()));
        // update_config refuses too and leaves the bytes alone.
        assert!(s.update_config(|_| Ok(())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
}

#[test]
fn update_config_saves_only_on_success() {
    let (_t, s) = dir();
    s.update_config(|c| c.tunables.set(Param::MemoryCacheSize, 64))
        .unwrap();
    let before = std::fs::read(s.config_path()).unwrap();
    let e = s
        .update_config(|c| c.tunables.set(Param::MemoryCacheSize, 0))
        .unwrap_err();
    assert!(matches!(
        e.kind,
        StoreErrorKind::Invalid(Error::InvalidValue { .. })
    ));
    assert_eq!(std::fs::read(s.config_path()).unwrap(), before);
    assert_eq!(
        s.load_config().unwrap().tunables.memory_cache_size_kib(),
        64
    );
}

#[test]
fn kickstart_is_staged_once_into_a_fresh_dir_only() {
    let (_t, s) = dir();
    let seed: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    s.stage_kickstart(&seed, SourceMask::new(8).unwrap())
        .unwrap();
    assert_eq!(s.load_config().unwrap().sources.value(), 8);
    assert_eq!(s.load_config().unwrap().tunables, Tunables::DEFAULT);

    // Not fresh any more: refused, nothing changed.
    let config_before = std::fs::read(s.config_path()).unwrap();
    let e = s
        .stage_kickstart(&[1, 2, 3], SourceMask::new(1).unwrap())
        .unwrap_err();
    assert_eq!(e.error(), Some(Error::NotFreshInstall));
    assert_eq!(std::fs::read(s.config_path()).unwrap(), config_before);

    // Taken exactly once, and the file is gone before the seed is handed out.
    let got = s.take_staged_kickstart().unwrap().unwrap();
    assert_eq!(&got[..], &seed[..]);
    assert!(!s.staged_kickstart_path().exists());
    assert!(s.take_staged_kickstart().unwrap().is_none());
}

#[test]
fn kickstart_after_set_keeps_the_tunables() {
    let (_t, s) = dir();
    s.update_config(|c| c.tunables.set(Param::MemoryCacheSize, 64))
        .unwrap();
    assert!(s.is_fresh().unwrap());
    s.stage_kickstart(&[5; 16], SourceMask::new(8).unwrap())
        .unwrap();
    let c = s.load_config().unwrap();
    assert_eq!(c.sources.value(), 8);
    assert_eq!(c.tunables.memory_cache_size_kib(), 64);
    assert!(!s.is_fresh().unwrap());
}

#[cfg(unix)]
#[test]
fn a_replaced_config_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, s) = dir();
    s.save_config(&Config::DEFAULT).unwrap();
    std::fs::set_permissions(s.config_path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    s.update_config(|c| c.tunables.set(Param::MemoryCacheSize, 64))
        .unwrap();
    let mode = std::fs::metadata(s.config_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
}

#[test]
fn each_kind_of_state_makes_a_dir_not_fresh() {
    for name in [
        StateDir::STAGED_KICKSTART_FILE,
        StateDir::STORAGE_CACHE_FILE,
    ] {
        let (_t, s) = dir();
        std::fs::create_dir_all(s.path()).unwrap();
        std::fs::write(s.path().join(name), b"x").unwrap();
        assert!(!s.is_fresh().unwrap(), "{name}");
        let e = s.stage_kickstart(&[0; 4], SourceMask::DEFAULT).unwrap_err();
        assert_eq!(e.error(), Some(Error::NotFreshInstall));
        assert_eq!(std::fs::read(s.path().join(name)).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 1);
    }
}

#[test]
fn a_file_where_the_dir_should_be_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    std::fs::write(&f, b"").unwrap();
    let e = StateDir::open(&f).unwrap_err();
    assert_eq!(e.path, f);
}
