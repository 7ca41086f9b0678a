//! Most integration tests of entropool, linked into one test binary.
//!
//! Each `tests/<name>.rs` stays a self-contained file (its own imports,
//! helpers and inner attributes); this file only includes it as a module, so
//! its tests run as `<name>::<test>` (`cargo test --test integration
//! <name>::` runs one file). One binary instead of one per file: linking
//! dominated the gate's test step (see `Cargo.toml`, `autotests = false`).
//!
//! Adding a test file (the rule; see also `tests/README.md`):
//! - by default, add `#[path = "<name>.rs"] mod <name>;` below, in order;
//! - a test of a module that holds `unsafe` and should run under miri goes
//!   in `tests/unsafe_paths.rs` instead;
//! - a test that needs a process of its own (it forks, installs a global
//!   allocator or a signal handler, registers process-global state such as
//!   getrandom's custom backend) or other compiler flags (`tests/loom_*.rs`,
//!   built with `--cfg loom`) gets its own `[[test]]` entry in `Cargo.toml`.
//!
//! A file that is in none of these places is not compiled at all (Cargo
//! finds test targets only through `[[test]]` entries here).

// Files that share a helper (`#[path = "support/hw.rs"] mod hw;`) each
// declare it, so it is compiled once per such file, as it was when every
// file was its own binary; the files stay unchanged.
#![allow(clippy::duplicate_mod)]

#[path = "assess_reference.rs"]
mod assess_reference;
#[path = "assess_restart.rs"]
mod assess_restart;
#[path = "config_props.rs"]
mod config_props;
#[path = "config_store.rs"]
mod config_store;
#[path = "cpu_jitter.rs"]
mod cpu_jitter;
#[path = "drbg_cavp.rs"]
mod drbg_cavp;
#[path = "drbg_limits.rs"]
mod drbg_limits;
#[path = "health_cutoffs.rs"]
mod health_cutoffs;
#[path = "health_state.rs"]
mod health_state;
#[path = "hw_jitter.rs"]
mod hw_jitter;
#[path = "hw_model.rs"]
mod hw_model;
#[path = "hw_real.rs"]
mod hw_real;
#[path = "kickstart.rs"]
mod kickstart;
#[path = "mixer_block.rs"]
mod mixer_block;
#[path = "mixer_credit.rs"]
mod mixer_credit;
#[path = "mixer_digest.rs"]
mod mixer_digest;
#[path = "mixer_frames.rs"]
mod mixer_frames;
#[path = "mixer_health.rs"]
mod mixer_health;
#[path = "mixer_screen.rs"]
mod mixer_screen;
#[path = "pool_facade.rs"]
mod pool_facade;
#[path = "pool_kinds.rs"]
mod pool_kinds;
#[path = "pool_room.rs"]
mod pool_room;
#[path = "pool_storage.rs"]
mod pool_storage;
#[path = "pool_storage_flush.rs"]
mod pool_storage_flush;
#[path = "rng_pool.rs"]
mod rng_pool;
#[path = "state_files.rs"]
mod state_files;
#[path = "storage_corrupt.rs"]
mod storage_corrupt;
#[path = "storage_crash.rs"]
mod storage_crash;
#[path = "storage_file.rs"]
mod storage_file;
#[path = "storage_keying.rs"]
mod storage_keying;
#[path = "watch_timeout.rs"]
mod watch_timeout;
