//! entropool on a Cortex-M4F: the pieces the firmware binaries share (the
//! NOR flash storage driver and SysTick as timestamp source and clock).
//! `src/main.rs` is the example and the on-target checks;
//! `src/bin/footprint_*.rs` are the builds whose size `cargo xtask firmware
//! --size` reports.

#![no_std]

pub mod flash;
pub mod systick;
