//! The no-panic link check: see `Cargo.toml` and `cargo xtask help`.
//!
//! `main` feeds opaque inputs (via [`black_box`]) to one function per
//! entropool module, each of which drives that module's runtime entry
//! points, and keeps their results alive with [`black_box`]. The panic
//! handler calls [`a_panic_is_reachable_in_entropool`], which no object
//! defines: if the optimiser cannot prove every panic unreachable, the link
//! fails with "undefined reference to `a_panic_is_reachable_in_entropool`".
//!
//! Module owners: add your module's runtime calls to its function in
//! `checks` (one function per module, called from `main`). Call what
//! firmware calls at run time (not constructors of test fakes), with inputs
//! from `black_box` so nothing is constant-folded away.

#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

mod checks;

#[cfg(not(feature = "locate"))]
unsafe extern "C" {
    /// Defined nowhere, on purpose: a reachable panic fails the link.
    fn a_panic_is_reachable_in_entropool() -> !;
}

#[cfg(not(feature = "locate"))]
#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    // SAFETY: never executed: the binary only links when this handler is
    // unreachable, and it is never run in any case.
    unsafe { a_panic_is_reachable_in_entropool() }
}

/// With feature `locate` (used by `cargo xtask nopanic` after a failed
/// link) the handler is defined, so the binary links and xtask can read its
/// call graph to name the functions that reach it.
#[cfg(feature = "locate")]
#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// `-nodefaultlibs` is passed for this target; the C library provides the
// start files' `__libc_start_main` and `memcpy` and friends.
#[link(name = "c")]
unsafe extern "C" {}

/// The C entry point (no Rust runtime). Never run by the gate; it only has
/// to link.
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    let seed = black_box(u64::from(argc.unsigned_abs()));
    let mut acc = 0u64;
    for check in checks::ALL {
        acc ^= check(black_box(seed));
    }
    i32::from(black_box(acc) == 0)
}
