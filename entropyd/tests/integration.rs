//! The integration tests of entropyd (API, CLI, end-to-end, feeder),
//! linked into one test binary.
//!
//! Each `tests/<name>.rs` stays a self-contained file (its own imports,
//! `mod api_common;` / `mod e2e_common;` / `mod tls_common;` and inner
//! attributes); this file only includes it as a module, so its tests run as
//! `<name>::<test>` (`cargo test -p entropyd --test integration feed_tls::`
//! runs one file). One binary instead of one per file: each links rustls,
//! ring and clap, and linking dominated the gate's test step (see
//! `entropyd/Cargo.toml`, `autotests = false`).
//!
//! Adding a test file (the rule; see also `tests/README.md` at the root):
//! - by default, add `#[path = "<name>.rs"] mod <name>;` below, in order;
//! - a test that needs a process of its own (it raises or handles signals
//!   in-process, forks, changes process-global state) gets its own
//!   `[[test]]` entry in `entropyd/Cargo.toml`, as `api_signals` has.
//!
//! A file that is in neither place is not compiled at all (Cargo finds test
//! targets only through `[[test]]` entries).

// Each file declares the shared helper modules it uses (`mod api_common;`),
// so a helper is compiled once per file that uses it, as it was when every
// file was its own binary; the files stay unchanged.
#![allow(clippy::duplicate_mod)]

#[path = "api_audit.rs"]
mod api_audit;
#[path = "api_auth.rs"]
mod api_auth;
#[path = "api_outputs.rs"]
mod api_outputs;
#[path = "api_server.rs"]
mod api_server;
#[path = "api_slow.rs"]
mod api_slow;
#[path = "api_tls.rs"]
mod api_tls;
#[path = "api_unix.rs"]
mod api_unix;
#[path = "api_view.rs"]
mod api_view;
#[path = "cli.rs"]
mod cli;
#[path = "client_tls.rs"]
mod client_tls;
#[path = "e2e_assess.rs"]
mod e2e_assess;
#[path = "e2e_daemon.rs"]
mod e2e_daemon;
#[path = "e2e_hardening.rs"]
mod e2e_hardening;
#[path = "e2e_lifecycle.rs"]
mod e2e_lifecycle;
#[path = "e2e_remote.rs"]
mod e2e_remote;
#[path = "e2e_tools.rs"]
mod e2e_tools;
#[path = "feed_e2e.rs"]
mod feed_e2e;
#[path = "feed_fleet.rs"]
mod feed_fleet;
#[path = "feed_tls.rs"]
mod feed_tls;
