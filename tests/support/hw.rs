//! Hardware and system components that some tests need, present or not.
//!
//! Contract: a test that cannot run here (no RDSEED, no SHA extensions, no
//! writable `/dev/random`, ...) calls [`skip`] and returns. `skip` writes
//! one line, `skipped [KEY]: WHY (test NAME)`, straight to the process's
//! stderr, so it shows in a plain `cargo test` run, not only with
//! `--nocapture`. When the environment variable [`REQUIRE_ENV`] names the
//! key (a comma-separated list of `rdrand`, `rdseed`, `sha`, `cycles`,
//! `cpuinfo`, `devrandom`, `setpriv`, `root`, or `all`), `skip` fails the test
//! instead: a runner that has the hardware sets it, so a test that would
//! pass by skipping cannot.
//!
//! Shared by `#[path]` between the library's unit tests (std only through
//! `extern crate std`), its integration tests and entropyd's tests.
#![allow(dead_code, clippy::panic, clippy::std_instead_of_core)]

/// The environment variable listing what must not be skipped.
pub const REQUIRE_ENV: &str = "ENTROPOOL_REQUIRE_HW";

/// Whether [`REQUIRE_ENV`] names `key` (or `all`).
#[must_use]
pub fn required(key: &str) -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|list| names(&list, key))
}

/// Whether the comma-separated `list` names `key` (or `all`).
#[must_use]
pub fn names(list: &str, key: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|k| k.eq_ignore_ascii_case(key) || k.eq_ignore_ascii_case("all"))
}

/// Reports that the calling test cannot run here for lack of `key`
/// (`why` says what is missing), visibly; fails the test instead when
/// [`REQUIRE_ENV`] requires `key`.
///
/// # Panics
/// When [`REQUIRE_ENV`] names `key` or `all`.
#[track_caller]
pub fn skip(key: &str, why: &dyn core::fmt::Display) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed>");
    if required(key) {
        panic!("{REQUIRE_ENV} requires `{key}`, but {why} (test {test})");
    }
    // Straight to fd 2: the test harness captures `eprintln!`, not this.
    let _ = writeln!(
        std::io::stderr(),
        "skipped [{key}]: {why} (test {test}; {REQUIRE_ENV}={key} makes this a failure)"
    );
}
