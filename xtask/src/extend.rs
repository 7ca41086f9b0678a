//! The lists the gate reads that other engineers extend as their work lands.
//! Add one line per entry; keep each entry on its own line so merges are
//! trivial. Anything named here that does not exist yet is skipped with a
//! note, so an entry may be added before (or after) the code it names.
//!
//! Conventions found by file name, with no list to edit:
//! - loom models: every `tests/loom_*.rs` (or `tests/loom_*/main.rs`) runs
//!   with `RUSTFLAGS="--cfg loom"`; start such a file with `#![cfg(loom)]` so
//!   the ordinary test run compiles it to nothing, and give it a `[[test]]`
//!   entry in `Cargo.toml` (`autotests = false`; see `tests/README.md`).
//! - fuzz replay: `fuzz/Cargo.toml` (its own workspace) gets
//!   `cargo test --manifest-path fuzz/Cargo.toml`; its tests replay every
//!   committed corpus on stable.
//! - no-panic calls: one function per module in `xtask/nopanic/src/checks.rs`.

/// One `cargo +nightly miri test` run over the entropool package.
#[derive(Clone, Copy, Debug)]
pub struct MiriRun {
    /// The test target: `None` for the library's unit tests (`--lib`),
    /// `Some("ring_ops")` for `tests/ring_ops.rs` (`--test ring_ops`).
    pub test: Option<&'static str>,
    /// Test-name filters passed after `--` (a test runs when its path
    /// contains any of them); empty runs every test of the target.
    pub filters: &'static [&'static str],
}

impl MiriRun {
    /// The library's unit tests whose path contains one of `filters`.
    pub const fn lib(filters: &'static [&'static str]) -> MiriRun {
        MiriRun {
            test: None,
            filters,
        }
    }

    /// Every test of `tests/<name>.rs`.
    pub const fn test(name: &'static str) -> MiriRun {
        MiriRun {
            test: Some(name),
            filters: &[],
        }
    }

    /// The tests of `tests/<name>.rs` whose path contains one of `filters`.
    #[allow(dead_code)]
    pub const fn test_filtered(name: &'static str, filters: &'static [&'static str]) -> MiriRun {
        MiriRun {
            test: Some(name),
            filters,
        }
    }
}

/// Miri runs (test targets with the same filters share one cargo
/// invocation): the tests of the modules that hold `unsafe` (and what they
/// lean on). Tests here must shrink their loops under `cfg(miri)` and skip
/// real hardware (`#[cfg_attr(miri, ignore)]` on tests that execute CPUID,
/// RDRAND, RDSEED or RDTSC, or touch files: miri runs with isolation on).
pub const MIRI_RUNS: &[MiriRun] = &[
    MiriRun::lib(&[
        "ring::",
        "interrupt::",
        "cache::",
        "hw::",
        // crypto: only the SHA-NI backend holds unsafe (its tests need CPUID,
        // so miri ignores them); the portable sha256 tests (100 s under miri,
        // no unsafe) run in the test step.
        "crypto::sha_ni::",
        "getrandom_custom::",
    ]),
    // The integration tests of the ring, the interrupt ring, the memory
    // cache and the hardware drivers on fake CPUs: one binary, whose
    // modules are listed in tests/unsafe_paths.rs (add a file there).
    MiriRun::test("unsafe_paths"),
];

/// Flags for miri unless `MIRIFLAGS` is already set in the environment.
pub const MIRIFLAGS: &str = "-Zmiri-strict-provenance";

/// A separate crate (its own `[workspace]`) whose tests the gate runs with
/// `cargo test --manifest-path <manifest>` and the given environment.
#[derive(Clone, Copy, Debug)]
pub struct ExtraCrate {
    /// Path of its Cargo.toml, relative to the repo root.
    pub manifest: &'static str,
    /// Environment for the run. A crate that sets `RUSTFLAGS` gets a
    /// target directory of its own, so the main build is not invalidated.
    pub env: &'static [(&'static str, &'static str)],
}

/// Extra crates, tested in the `extra` step.
pub const EXTRA_CRATES: &[ExtraCrate] = &[
    // The firmware getrandom route (issue 6): getrandom 0.3's custom backend.
    ExtraCrate {
        manifest: "tests/getrandom-custom-check/Cargo.toml",
        env: &[("RUSTFLAGS", "--cfg getrandom_backend=\"custom\"")],
    },
];
