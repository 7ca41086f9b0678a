//! entropool on a Cortex-M4F: the pieces the firmware binaries share (the
//! NOR flash storage driver and SysTick as timestamp source and clock).
//! `src/main.rs` is the example and the on-target checks;
//! `src/bin/footprint_*.rs` are the builds whose size `cargo xtask firmware
//! --size` reports.

#![no_std]

pub mod flash;
pub mod systick;

/// The device interrupt vectors, after the core exceptions in the vector
/// table (cortex-m-rt's `device` feature: the image provides them, as a
/// device crate would). No device interrupt is enabled here (SysTick is a
/// core exception), so the table holds a single entry, the fewest
/// cortex-m-rt's linker script accepts, routed to `DefaultHandler`: 4 bytes
/// instead of the 240 entries (960 bytes) cortex-m-rt reserves without a
/// device crate. A firmware that enables device interrupts lists them here
/// (or links its device crate instead).
// SAFETY: the only `__INTERRUPTS` in the image (cortex-m-rt defines none
// with `device`); the linker script places its section right after the
// exceptions.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

unsafe extern "C" {
    /// cortex-m-rt's handler for unexpected interrupts (overridable with
    /// `#[exception] fn DefaultHandler`).
    fn DefaultHandler();
}
