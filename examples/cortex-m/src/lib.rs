//! entropool on a Cortex-M4F: the pieces the firmware binaries share (the
//! NOR flash storage driver and SysTick as timestamp source and clock).
//! `src/main.rs` is the example and the on-target checks;
//! `src/bin/footprint_*.rs` are the builds whose size `cargo xtask firmware
//! --size` reports.

#![no_std]

pub mod flash;
pub mod systick;

use entropool::{Error, Storage};

/// A storage medium that cannot exist: the type for a pool without a
/// storage cache (`None::<NoStorage>`). The compiler then knows no storage
/// code can run and leaves it out of the image.
#[derive(Debug)]
pub enum NoStorage {}

impl Storage for NoStorage {
    fn capacity(&self) -> u64 {
        match *self {}
    }
    fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), Error> {
        match *self {}
    }
    fn write(&mut self, _: u64, _: &[u8]) -> Result<(), Error> {
        match *self {}
    }
    fn flush(&mut self) -> Result<(), Error> {
        match *self {}
    }
}
