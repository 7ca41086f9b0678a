//! SHA-256 and HMAC-SHA-256: the leaf every other module hashes with.
//!
//! Contract:
//! - [`sha256`] is the portable layer on top of `sha2`'s raw compression
//!   function: the compression, a SHA-256 stream from any midstate, and
//!   keyed HMAC midstates. It runs on every target and under miri.
//! - `sha_ni` is the x86 SHA-extensions backend, used only where CPUID
//!   reports SHA, SSSE3 and SSE4.1 and the target enables SSE2. It computes
//!   bit for bit what the portable layer computes (checked by property tests
//!   and the CAVP vectors). It is the one file of this module allowed
//!   `unsafe` (named in `Cargo.toml`'s lints); each of its unsafe helpers
//!   states its `# Safety` and runs under `#[target_feature]`.
//! - `mixer`, `storage` and `drbg` depend on `crypto`, never the other way.
//!   Its one outside need is the CPUID answer (`hw::has_sha_ni`), which
//!   `hw` detects once for every instruction the crate may use.
//! - All keyed state is secret: zeroized on drop, never `Clone`, redacted in
//!   `Debug`.

pub(crate) mod sha256;

/// HMAC-SHA-256 output loops and the conditioner's multi-lane digests on
/// the SHA extensions. Only where the target
/// itself enables SSE2 (every x86_64 OS target): a bare target such as
/// `x86_64-unknown-none` is built without it because its kernel may not save
/// vector registers, and gets the portable path.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) mod sha_ni;
