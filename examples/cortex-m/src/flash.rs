//! NOR flash, emulated in RAM, and entropool's [`Storage`] over it.
//!
//! # Contract
//!
//! - [`NorFlash`] behaves like a NOR flash chip: [`NorFlash::erase_sector`]
//!   sets a whole [`SECTOR_LEN`]-byte sector to `0xFF`, and
//!   [`NorFlash::program`] can only clear bits: a program that would set a
//!   bit is refused ([`FlashError::WouldSetBits`]) and changes nothing. For
//!   the crash checks it can cut the power after a number of erase/program
//!   operations: the operation in progress is torn (only its first half
//!   happens) and every later operation fails until [`NorFlash::power_on`].
//! - [`FlashStorage`] implements [`Storage`] over it, write-through (every
//!   `write` is on the chip when it returns, so `flush` has nothing to do).
//!   A write that only clears bits (entropool's erasing of a taken block
//!   writes zeros) is one program. A write that must set bits (storing a
//!   block into an empty, all-zero slot; a header over an old one) reads
//!   the sector into RAM, merges the new bytes, erases the sector and
//!   programs it again.
//!
//! # Crash window of the erase-and-reprogram path
//!
//! Between the erase and the end of the reprogram the sector holds `0xFF`
//! where data used to be. A power cut there loses data but can never replay
//! a block:
//!
//! - the RAM image is read from the chip when the write starts, after every
//!   earlier write, so a slot whose block was taken (zeroed and flushed
//!   before the block was handed out) is zero in the image too: the
//!   reprogram cannot bring a taken block back;
//! - a slot left half or wholly `0xFF` fails its checksum and is wiped at
//!   the next open (never credited), and a header left so is blank or
//!   corrupt, which wipes the whole store. Either way blocks are lost, the
//!   cost of a crash the storage contract allows; the other blocks of the
//!   sector are lost with them, which a byte-writable medium would not do.
//!
//! Every erase of a sector rewrites it, so each stored block costs one
//! sector erase (entropool's empty slot is zero, not the erased `0xFF`).

use entropool::{Error, Storage};
use zeroize::Zeroize;

/// Bytes in one erase sector (a small NOR sector; SPI NOR parts use 4 KiB).
pub const SECTOR_LEN: usize = 1024;

/// What the emulated chip refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// A program that would turn a 0 bit into 1 (needs an erase first).
    WouldSetBits,
    /// An address outside the chip, or a sector index past its end.
    OutOfRange,
    /// The power was cut (crash simulation): nothing more happens.
    PoweredOff,
}

/// The operation a power cut tore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornOp {
    /// A sector erase (half the sector went to `0xFF`).
    Erase,
    /// A program (half the bytes were programmed).
    Program,
}

/// A NOR flash chip over a RAM region whose length is a multiple of
/// [`SECTOR_LEN`].
pub struct NorFlash<'a> {
    bytes: &'a mut [u8],
    /// Erase/program operations left before the power goes.
    power_left: Option<u32>,
    powered: bool,
    torn: Option<TornOp>,
    erases: u32,
    programs: u32,
}

impl core::fmt::Debug for NorFlash<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The contents are cached entropy: never print them.
        f.debug_struct("NorFlash")
            .field("len", &self.bytes.len())
            .field("erases", &self.erases)
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

impl<'a> NorFlash<'a> {
    /// A chip over `bytes` as they are (what was on it before a reset).
    /// `None` unless the length is a whole number of sectors.
    #[must_use]
    pub fn new(bytes: &'a mut [u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() % SECTOR_LEN != 0 {
            return None;
        }
        Some(NorFlash {
            bytes,
            power_left: None,
            powered: true,
            torn: None,
            erases: 0,
            programs: 0,
        })
    }

    /// Capacity in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the chip has no bytes (never: [`NorFlash::new`] refuses).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Sector erases so far.
    #[must_use]
    pub fn erases(&self) -> u32 {
        self.erases
    }

    /// Programs so far.
    #[must_use]
    pub fn programs(&self) -> u32 {
        self.programs
    }

    /// Cut the power once `ops` more erase/program operations have started:
    /// that last one is torn.
    pub fn cut_power_after(&mut self, ops: u32) {
        self.power_left = Some(ops);
    }

    /// Power back on (after a simulated crash): no cut pending.
    pub fn power_on(&mut self) {
        self.power_left = None;
        self.powered = true;
        self.torn = None;
    }

    /// The operation the last power cut tore (until [`NorFlash::power_on`]).
    #[must_use]
    pub fn torn(&self) -> Option<TornOp> {
        self.torn
    }

    /// Whether the chip has power.
    #[must_use]
    pub fn powered(&self) -> bool {
        self.powered
    }

    /// The bytes at `offset..offset + len` (NOR flash is memory-mapped).
    ///
    /// # Errors
    /// [`FlashError::OutOfRange`], [`FlashError::PoweredOff`].
    pub fn view(&self, offset: usize, len: usize) -> Result<&[u8], FlashError> {
        if !self.powered {
            return Err(FlashError::PoweredOff);
        }
        let end = offset.checked_add(len).ok_or(FlashError::OutOfRange)?;
        self.bytes.get(offset..end).ok_or(FlashError::OutOfRange)
    }

    /// Starts one erase/program operation: `Ok(false)` to do it whole,
    /// `Ok(true)` to tear it (the power goes during it).
    fn start_op(&mut self, op: TornOp) -> Result<bool, FlashError> {
        if !self.powered {
            return Err(FlashError::PoweredOff);
        }
        match self.power_left {
            Some(0) => {
                self.powered = false;
                self.torn = Some(op);
                Ok(true)
            }
            Some(n) => {
                self.power_left = Some(n.saturating_sub(1));
                Ok(false)
            }
            None => Ok(false),
        }
    }

    /// Erase sector `index` to `0xFF`.
    ///
    /// # Errors
    /// [`FlashError::OutOfRange`]; [`FlashError::PoweredOff`] (a torn erase
    /// sets only the first half of the sector).
    pub fn erase_sector(&mut self, index: usize) -> Result<(), FlashError> {
        let start = index
            .checked_mul(SECTOR_LEN)
            .ok_or(FlashError::OutOfRange)?;
        let end = start
            .checked_add(SECTOR_LEN)
            .ok_or(FlashError::OutOfRange)?;
        if end > self.bytes.len() {
            return Err(FlashError::OutOfRange);
        }
        let torn = self.start_op(TornOp::Erase)?;
        let done = if torn { SECTOR_LEN / 2 } else { SECTOR_LEN };
        if let Some(sector) = self.bytes.get_mut(start..start.saturating_add(done)) {
            sector.fill(0xFF);
        }
        self.erases = self.erases.saturating_add(1);
        if torn {
            Err(FlashError::PoweredOff)
        } else {
            Ok(())
        }
    }

    /// Program `data` at `offset`: each byte becomes `old & new`, and a
    /// program that would set any bit is refused before anything changes.
    ///
    /// # Errors
    /// [`FlashError::WouldSetBits`], [`FlashError::OutOfRange`] (nothing
    /// changed); [`FlashError::PoweredOff`] (a torn program writes only
    /// the first half of `data`).
    pub fn program(&mut self, offset: usize, data: &[u8]) -> Result<(), FlashError> {
        let end = offset
            .checked_add(data.len())
            .ok_or(FlashError::OutOfRange)?;
        let old = self.view(offset, data.len())?;
        if old.iter().zip(data).any(|(o, n)| n & !o != 0) {
            return Err(FlashError::WouldSetBits);
        }
        let torn = self.start_op(TornOp::Program)?;
        let done = if torn { data.len() / 2 } else { data.len() };
        if let Some(dst) = self.bytes.get_mut(offset..end) {
            for (d, n) in dst.iter_mut().zip(data).take(done) {
                *d &= *n;
            }
        }
        self.programs = self.programs.saturating_add(1);
        if torn {
            Err(FlashError::PoweredOff)
        } else {
            Ok(())
        }
    }
}

/// entropool's [`Storage`] over a [`NorFlash`] (see the module doc).
pub struct FlashStorage<'a> {
    flash: NorFlash<'a>,
    /// One sector's image for the erase-and-reprogram path; zeroized after
    /// each use (it holds stored blocks).
    image: [u8; SECTOR_LEN],
}

impl core::fmt::Debug for FlashStorage<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlashStorage")
            .field("flash", &self.flash)
            .finish_non_exhaustive()
    }
}

/// The library's error for a chip error: a range error is the caller's,
/// everything else is the medium failing.
fn io(e: FlashError) -> Error {
    match e {
        FlashError::OutOfRange => Error::CapacityTooSmall,
        FlashError::WouldSetBits | FlashError::PoweredOff => Error::StorageIo { errno: 0 },
    }
}

impl<'a> FlashStorage<'a> {
    /// The driver over `flash`.
    #[must_use]
    pub fn new(flash: NorFlash<'a>) -> Self {
        FlashStorage {
            flash,
            image: [0; SECTOR_LEN],
        }
    }

    /// The chip (for counters and the crash simulation).
    pub fn flash_mut(&mut self) -> &mut NorFlash<'a> {
        &mut self.flash
    }

    /// The chip, read-only.
    #[must_use]
    pub fn flash(&self) -> &NorFlash<'a> {
        &self.flash
    }

    // ANCHOR: flash-write
    /// Writes `data` into sector `sector` at `at` within it.
    fn write_in_sector(&mut self, sector: usize, at: usize, data: &[u8]) -> Result<(), Error> {
        let base = sector
            .checked_mul(SECTOR_LEN)
            .ok_or(Error::CapacityTooSmall)?;
        let offset = base.checked_add(at).ok_or(Error::CapacityTooSmall)?;
        let old = self.flash.view(offset, data.len()).map_err(io)?;
        if old == data {
            return Ok(());
        }
        if old.iter().zip(data).all(|(o, n)| n & !o == 0) {
            // Only bits to clear: program in place.
            return self.flash.program(offset, data).map_err(io);
        }
        // Bits to set: read the sector, merge, erase, program it again.
        let result = self.rewrite(sector, base, at, data);
        self.image.zeroize();
        result
    }

    fn rewrite(&mut self, sector: usize, base: usize, at: usize, data: &[u8]) -> Result<(), Error> {
        let current = self.flash.view(base, SECTOR_LEN).map_err(io)?;
        self.image.copy_from_slice(current);
        let end = at.checked_add(data.len()).ok_or(Error::CapacityTooSmall)?;
        self.image
            .get_mut(at..end)
            .ok_or(Error::CapacityTooSmall)?
            .copy_from_slice(data);
        self.flash.erase_sector(sector).map_err(io)?;
        self.flash.program(base, &self.image).map_err(io)
    }
    // ANCHOR_END: flash-write
}

impl Storage for FlashStorage<'_> {
    fn capacity(&self) -> u64 {
        u64::try_from(self.flash.len()).unwrap_or(u64::MAX)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let offset = usize::try_from(offset).map_err(|_| Error::CapacityTooSmall)?;
        buf.copy_from_slice(self.flash.view(offset, buf.len()).map_err(io)?);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let mut offset = usize::try_from(offset).map_err(|_| Error::CapacityTooSmall)?;
        let end = offset
            .checked_add(data.len())
            .ok_or(Error::CapacityTooSmall)?;
        if end > self.flash.len() {
            return Err(Error::CapacityTooSmall);
        }
        let mut rest = data;
        // One round per sector the write touches.
        while !rest.is_empty() {
            let sector = offset / SECTOR_LEN;
            let at = offset % SECTOR_LEN;
            let n = rest.len().min(SECTOR_LEN.saturating_sub(at));
            let (piece, tail) = rest.split_at(n);
            self.write_in_sector(sector, at, piece)?;
            rest = tail;
            offset = offset.saturating_add(n);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        // Write-through: every write is on the chip already, unless the
        // power went (then nothing after the cut is).
        if self.flash.powered() {
            Ok(())
        } else {
            Err(Error::StorageIo { errno: 0 })
        }
    }
}

/// A boot counter on NOR flash: every start clears one more bit of the
/// region (from bit 0 of byte 0 up), so the count only grows and needs no
/// erase for `8 * len` starts. [`next_boot`] makes the new count durable
/// before it returns it.
///
/// # Errors
/// [`FlashError::OutOfRange`] when every bit is used (erase the region,
/// after moving the count elsewhere); the chip's errors.
pub fn next_boot(flash: &mut NorFlash<'_>) -> Result<u32, FlashError> {
    let bytes = flash.view(0, flash.len())?;
    let used: u32 = bytes.iter().map(|b| b.count_zeros()).sum();
    let at = usize::try_from(used / 8).map_err(|_| FlashError::OutOfRange)?;
    let old = *bytes.get(at).ok_or(FlashError::OutOfRange)?;
    flash.program(at, &[old & !(1u8 << (used % 8))])?;
    Ok(used.saturating_add(1))
}
