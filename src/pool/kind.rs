//! What a pool holds for its CPU and its storage, chosen by type: a pool
//! without hardware random-number instructions ([`NoCpu`]) or without a
//! storage cache ([`NoStorage`]) holds none of their state.
//!
//! # Contract
//!
//! - [`PoolCpu`] is implemented by every [`Cpu`] that is [`Clone`] (its
//!   state: the RDRAND and RDSEED drivers, each with its last error, and
//!   the word buffer they fill) and by [`NoCpu`] (its state is zero-sized).
//!   [`PoolStorage`] is implemented by every [`Storage`] (its state: the
//!   storage tier with the overflow toward it) and by
//!   [`NoStorage`] (zero-sized). Both traits are sealed: nothing else
//!   implements them, so the state types stay private.
//! - A pool over [`NoCpu`] behaves as a pool over a CPU without RDRAND and
//!   RDSEED: the default mask resolves to interrupts, a mask naming either
//!   is [`Error::SourceUnavailable`], its status shows no hardware. It
//!   drains the interrupt ring through a buffer on `poll`'s stack
//!   ([`WORD_CHUNK`] words, wiped before `poll` returns) instead of the
//!   word buffer a pool over a [`Cpu`] keeps.
//! - A pool over [`NoStorage`] behaves as a pool over a [`Storage`] given
//!   no medium (`PoolParts::storage: None`), except that a
//!   storage-cache-size other than 0 is [`Error::InvalidValue`] (naming
//!   storage-cache-size, range `0..=0`) at [`Pool::new`] and
//!   [`Pool::set_tunables`] (nothing changed), where a pool without a
//!   medium ignores it. Its status says no storage cache; blocks the
//!   memory cache cannot take are refused (the mixer holds one), and a
//!   shutdown flush wipes and counts what it cannot store, as without a
//!   medium.
//!
//! [`Pool::new`]: super::Pool::new
//! [`Pool::set_tunables`]: super::Pool::set_tunables

use zeroize::Zeroize;

use super::storage::StorageState;
use super::{HardwareStatus, StorageMove, StorageStatus, WORD_CHUNK};
use crate::config::Tunables;
use crate::error::Error;
use crate::hw::{Cpu, NoCpu, Rdrand, Rdseed};
use crate::mixer::Block;
use crate::source::{CpuFeatures, Source, SourceMask};
use crate::storage::{LoadReport, NoStorage, Storage, drop_blocks};

mod sealed {
    /// Seals [`super::PoolCpu`].
    pub trait SealedCpu {}
    /// Seals [`super::PoolStorage`].
    pub trait SealedStorage {}
}

/// The CPU type of a [`Pool`](super::Pool): any [`Cpu`] that is
/// [`Clone`] (the pool keeps RDRAND and RDSEED drivers over it), or
/// [`NoCpu`] (no hardware random-number instructions, no driver state).
/// Sealed.
pub trait PoolCpu: sealed::SealedCpu + Sized {
    /// The state the pool keeps for this CPU (not API).
    #[doc(hidden)]
    type Drivers: Drivers<Cpu = Self>;
}

/// The storage type of a [`Pool`](super::Pool): any [`Storage`] (the
/// pool keeps a storage cache over it when it is given one), or
/// [`NoStorage`] (no storage cache, no storage state). Sealed.
pub trait PoolStorage: sealed::SealedStorage + Sized {
    /// The state the pool keeps for this storage (not API).
    #[doc(hidden)]
    type Tier: Tier<Medium = Self>;
}

impl<C: Cpu + Clone> sealed::SealedCpu for C {}
impl sealed::SealedCpu for NoCpu {}
impl<S: Storage> sealed::SealedStorage for S {}
impl sealed::SealedStorage for NoStorage {}

impl<C: Cpu + Clone> PoolCpu for C {
    type Drivers = HwDrivers<C>;
}
impl PoolCpu for NoCpu {
    type Drivers = NoDrivers;
}
impl<S: Storage> PoolStorage for S {
    type Tier = StorageState<S>;
}
impl PoolStorage for NoStorage {
    type Tier = NoTier;
}

/// The pool's hardware side: the drivers, their word buffer, and what
/// `poll` and `status` ask of them.
pub trait Drivers: Sized {
    /// The CPU the drivers run on.
    type Cpu;
    /// A buffer for the interrupt drain on `poll`'s stack when the drivers
    /// keep no word buffer (empty when they do).
    type Scratch: AsRef<[u64]> + AsMut<[u64]> + Zeroize;

    /// Resolves `mask` against the CPU's features and starts the drivers
    /// the resolved mask names (their self-tests run).
    ///
    /// # Errors
    /// [`Error::SourceUnavailable`] for a hardware source the CPU lacks;
    /// the drivers' start errors.
    fn start(cpu: Self::Cpu, mask: SourceMask) -> Result<(Self, SourceMask), Error>;

    /// A fresh (zeroed) scratch buffer.
    fn scratch() -> Self::Scratch;

    /// The word buffer, `WORD_CHUNK` words, if the drivers keep one.
    fn words_mut(&mut self) -> Option<&mut [u64]>;

    /// The words to absorb: the drivers' buffer, or `scratch` when they
    /// keep none.
    fn words_or<'a>(&'a self, scratch: &'a [u64]) -> &'a [u64];

    /// Fills the first `n` words of the buffer from RDSEED: `None` without
    /// an RDSEED driver, else the words obtained (0 on a failure, which is
    /// recorded as the driver's last error).
    fn fill_rdseed(&mut self, n: usize) -> Option<usize>;

    /// Whether an RDRAND driver runs.
    fn has_rdrand(&self) -> bool;

    /// Fills the first `n` words of the buffer from RDRAND; `false` without
    /// a driver or on a failure (recorded as the driver's last error).
    fn fill_rdrand(&mut self, n: usize) -> bool;

    /// RDRAND's status, when it runs.
    fn rdrand_status(&self) -> Option<HardwareStatus>;

    /// RDSEED's status, when it runs.
    fn rdseed_status(&self) -> Option<HardwareStatus>;

    /// Wipes the word buffer.
    fn wipe_words(&mut self);
}

/// The RDRAND and RDSEED drivers of a pool over a [`Cpu`] (each when the
/// resolved mask names it, with the last error it gave during a poll) and
/// the buffer of [`WORD_CHUNK`] words they fill (the interrupt drain uses
/// it too). The words are wiped after each poll and on drop.
pub struct HwDrivers<C> {
    rdrand: Option<(Rdrand<C>, Option<Error>)>,
    rdseed: Option<(Rdseed<C>, Option<Error>)>,
    words: [u64; WORD_CHUNK],
}

impl<C> core::fmt::Debug for HwDrivers<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HwDrivers { .. }")
    }
}

impl<C> Drop for HwDrivers<C> {
    fn drop(&mut self) {
        self.words.zeroize();
    }
}

impl<C: Cpu + Clone> Drivers for HwDrivers<C> {
    type Cpu = C;
    type Scratch = [u64; 0];

    fn start(cpu: C, mask: SourceMask) -> Result<(Self, SourceMask), Error> {
        let sources = mask.resolve(cpu.features())?;
        let rdrand = if sources.contains(Source::Rdrand) {
            Some((Rdrand::new(cpu.clone())?, None))
        } else {
            None
        };
        let rdseed = if sources.contains(Source::Rdseed) {
            Some((Rdseed::new(cpu)?, None))
        } else {
            None
        };
        let drivers = HwDrivers {
            rdrand,
            rdseed,
            words: [0; WORD_CHUNK],
        };
        Ok((drivers, sources))
    }

    fn scratch() -> [u64; 0] {
        []
    }

    fn words_mut(&mut self) -> Option<&mut [u64]> {
        Some(&mut self.words)
    }

    fn words_or<'a>(&'a self, _scratch: &'a [u64]) -> &'a [u64] {
        &self.words
    }

    fn fill_rdseed(&mut self, n: usize) -> Option<usize> {
        let (drv, last) = self.rdseed.as_mut()?;
        let buf = self.words.get_mut(..n)?;
        match drv.fill(buf) {
            Ok(got) => {
                *last = None;
                Some(got)
            }
            Err(e) => {
                *last = Some(e);
                Some(0)
            }
        }
    }

    fn has_rdrand(&self) -> bool {
        self.rdrand.is_some()
    }

    fn fill_rdrand(&mut self, n: usize) -> bool {
        let Some((drv, last)) = self.rdrand.as_mut() else {
            return false;
        };
        let Some(buf) = self.words.get_mut(..n) else {
            return false;
        };
        match drv.fill(buf) {
            Ok(()) => {
                *last = None;
                true
            }
            Err(e) => {
                *last = Some(e);
                false
            }
        }
    }

    fn rdrand_status(&self) -> Option<HardwareStatus> {
        self.rdrand.as_ref().map(|(d, e)| HardwareStatus {
            stats: d.stats(),
            last_error: *e,
        })
    }

    fn rdseed_status(&self) -> Option<HardwareStatus> {
        self.rdseed.as_ref().map(|(d, e)| HardwareStatus {
            stats: d.stats(),
            last_error: *e,
        })
    }

    fn wipe_words(&mut self) {
        self.words.zeroize();
    }
}

/// The hardware state of a pool over [`NoCpu`]: nothing.
#[derive(Debug)]
pub struct NoDrivers;

impl Drivers for NoDrivers {
    type Cpu = NoCpu;
    type Scratch = [u64; WORD_CHUNK];

    fn start(_cpu: NoCpu, mask: SourceMask) -> Result<(Self, SourceMask), Error> {
        let sources = mask.resolve(CpuFeatures::default())?;
        Ok((NoDrivers, sources))
    }

    fn scratch() -> [u64; WORD_CHUNK] {
        [0; WORD_CHUNK]
    }

    fn words_mut(&mut self) -> Option<&mut [u64]> {
        None
    }

    fn words_or<'a>(&'a self, scratch: &'a [u64]) -> &'a [u64] {
        scratch
    }

    fn fill_rdseed(&mut self, _n: usize) -> Option<usize> {
        None
    }

    fn has_rdrand(&self) -> bool {
        false
    }

    fn fill_rdrand(&mut self, _n: usize) -> bool {
        false
    }

    fn rdrand_status(&self) -> Option<HardwareStatus> {
        None
    }

    fn rdseed_status(&self) -> Option<HardwareStatus> {
        None
    }

    fn wipe_words(&mut self) {}
}

/// The pool's storage side: the storage cache, the overflow toward it,
/// and what the pool asks of them (see `src/pool/storage.rs` for the
/// rules each call keeps).
pub trait Tier: Sized {
    /// The medium.
    type Medium;

    /// Opens `medium` for `tunables`' storage-cache-size (kept idle when
    /// that is 0). `key` is borrowed: a tier that keeps the key keeps its
    /// own copy in `Zeroizing`, so no unwiped copy is left behind.
    ///
    /// # Errors
    /// The storage cache's open errors; for a tier that cannot hold a
    /// storage cache, [`Error::InvalidValue`] when storage-cache-size is
    /// not 0.
    fn open(
        medium: Option<Self::Medium>,
        tunables: &Tunables,
        sources: SourceMask,
        key: &[u8; 32],
    ) -> Result<(Self, Option<LoadReport>), Error>;

    /// A store is open (possibly lent to a job).
    fn present(&self) -> bool;

    /// Blocks the store can take beyond those stored and on their way.
    fn room(&self) -> usize;

    /// Blocks that can be taken now.
    fn available(&self) -> usize;

    /// Whether the store is lent to a spill job.
    fn is_lent(&self) -> bool;

    /// Writes `blocks` to the store, not flushed; wipes every one.
    fn store(&mut self, blocks: &mut [Option<Block>]) -> (StorageMove, Result<(), Error>);

    /// Flushes what [`store`](Self::store) wrote.
    ///
    /// # Errors
    /// The medium's flush error.
    fn commit(&mut self) -> Result<(), Error>;

    /// Re-opens the store for `tunables`' storage-cache-size, all or
    /// nothing.
    ///
    /// # Errors
    /// The re-open's errors; [`Error::InvalidValue`] as for
    /// [`open`](Self::open).
    fn resize(&mut self, tunables: &Tunables, sources: SourceMask) -> Result<(), Error>;

    /// Takes up to `out.len()` stored blocks.
    ///
    /// # Errors
    /// The store's take errors.
    fn take_blocks(&mut self, out: &mut [Option<Block>]) -> Result<usize, Error>;

    /// Takes one stored block.
    ///
    /// # Errors
    /// As [`take_blocks`](Self::take_blocks).
    fn take_block(&mut self) -> Result<Option<Block>, Error> {
        let mut out = None;
        self.take_blocks(core::slice::from_mut(&mut out))?;
        Ok(out)
    }

    /// Stamps `sources` on every block stored from now on.
    fn set_provenance(&mut self, sources: SourceMask);

    /// The store as status shows it, blocks waiting in the overflow
    /// included.
    fn status(&self) -> StorageStatus;

    /// Starts an absorb step: the overflow may take as many blocks as the
    /// store has room for.
    fn begin_step(&mut self);

    /// Offers a block the memory cache refused to the overflow.
    ///
    /// # Errors
    /// The block back when the overflow has no room for it.
    fn offer_overflow(&mut self, block: Block) -> Result<(), Block>;

    /// Whether the pool should make blocks for the store (once the memory
    /// cache is full).
    fn wants_blocks(&self) -> bool;

    /// Writes the overflow to the store, not flushed (they wait while it
    /// is lent).
    fn spill_overflow(&mut self) -> StorageMove;

    /// Writes the overflow to the store whatever else happens (the
    /// shutdown save).
    fn store_overflow(&mut self) -> (StorageMove, Result<(), Error>);
}

/// The storage state of a pool over [`NoStorage`]: nothing.
#[derive(Debug)]
pub struct NoTier;

/// The error for a storage-cache-size other than 0 without a storage type.
fn no_storage_cache(tunables: &Tunables) -> Result<(), Error> {
    match tunables.storage_cache_size_kib() {
        0 => Ok(()),
        kib => Err(Error::InvalidValue {
            param: "storage-cache-size",
            value: u64::from(kib),
            min: 0,
            max: 0,
        }),
    }
}

impl Tier for NoTier {
    type Medium = NoStorage;

    fn open(
        medium: Option<NoStorage>,
        tunables: &Tunables,
        _sources: SourceMask,
        _key: &[u8; 32],
    ) -> Result<(Self, Option<LoadReport>), Error> {
        if let Some(never) = medium {
            match never {}
        }
        no_storage_cache(tunables)?;
        Ok((NoTier, None))
    }

    fn present(&self) -> bool {
        false
    }

    fn room(&self) -> usize {
        0
    }

    fn available(&self) -> usize {
        0
    }

    fn is_lent(&self) -> bool {
        false
    }

    fn store(&mut self, blocks: &mut [Option<Block>]) -> (StorageMove, Result<(), Error>) {
        let discarded = blocks.len();
        drop_blocks(blocks);
        let moved = StorageMove {
            stored: 0,
            discarded,
        };
        (moved, Ok(()))
    }

    fn commit(&mut self) -> Result<(), Error> {
        Ok(())
    }

    fn resize(&mut self, tunables: &Tunables, _sources: SourceMask) -> Result<(), Error> {
        no_storage_cache(tunables)
    }

    fn take_blocks(&mut self, _out: &mut [Option<Block>]) -> Result<usize, Error> {
        Ok(0)
    }

    fn set_provenance(&mut self, _sources: SourceMask) {}

    fn status(&self) -> StorageStatus {
        StorageStatus::default()
    }

    fn begin_step(&mut self) {}

    fn offer_overflow(&mut self, block: Block) -> Result<(), Block> {
        Err(block)
    }

    fn wants_blocks(&self) -> bool {
        false
    }

    fn spill_overflow(&mut self) -> StorageMove {
        StorageMove::default()
    }

    fn store_overflow(&mut self) -> (StorageMove, Result<(), Error>) {
        (StorageMove::default(), Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, size_of};

    use super::*;
    use crate::hw::RealCpu;
    use crate::pool::storage::{Overflow, StorageTier};
    use crate::storage::MemStorage;
    use crate::watch::Clock;

    /// A clock for the type only.
    struct Still;
    impl Clock for Still {
        fn now_ms(&self) -> u64 {
            0
        }
    }

    type Pool<'s, C, S> = super::super::Pool<'s, C, Still, S>;
    type Cpu = RealCpu;
    type Medium = MemStorage<'static>;

    /// The sizes of the fields a pool over a CPU keeps for it: the RDRAND
    /// and RDSEED drivers with their last errors, and the word buffer.
    fn cpu_fields() -> [usize; 3] {
        [
            size_of::<Option<(Rdrand<Cpu>, Option<Error>)>>(),
            size_of::<Option<(Rdseed<Cpu>, Option<Error>)>>(),
            size_of::<[u64; WORD_CHUNK]>(),
        ]
    }

    /// The sizes of the fields a pool over a medium keeps for it: the
    /// storage tier and the overflow toward it.
    fn storage_fields() -> [usize; 2] {
        [size_of::<StorageTier<Medium>>(), size_of::<Overflow>()]
    }

    #[test]
    fn the_none_types_and_their_state_are_zero_sized() {
        assert_eq!(size_of::<NoCpu>(), 0);
        assert_eq!(size_of::<NoStorage>(), 0);
        assert_eq!(size_of::<<NoCpu as PoolCpu>::Drivers>(), 0);
        assert_eq!(size_of::<<NoStorage as PoolStorage>::Tier>(), 0);
    }

    /// The state a CPU or a medium costs lives in the kinds' state types
    /// (so a pool without them holds none of it): each is at least as
    /// large as the fields it must hold. A field moved back into the pool
    /// itself fails this.
    #[test]
    fn the_state_types_hold_every_field() {
        let cpu: usize = cpu_fields().iter().sum();
        let storage: usize = storage_fields().iter().sum();
        assert!(size_of::<<Cpu as PoolCpu>::Drivers>() >= cpu);
        assert!(size_of::<<Medium as PoolStorage>::Tier>() >= storage);
    }

    /// A pool over `NoCpu` and `NoStorage` holds its own fields and
    /// nothing else: its size is theirs rounded up to its alignment. A
    /// field added to every pool (a word buffer for the interrupt drain,
    /// say) fails this; one added on purpose is added here too.
    #[test]
    fn the_bare_pool_holds_only_its_own_fields() {
        use crate::cache::MemoryCache;
        use crate::interrupt::InterruptDrain;
        use crate::mixer::Mixer;
        use crate::watch::ExternalLostTimer;
        let own = [
            size_of::<Tunables>(),
            // sources, provenance
            2 * size_of::<SourceMask>(),
            size_of::<Still>(),
            size_of::<Option<InterruptDrain<'static>>>(),
            size_of::<Mixer>(),
            size_of::<MemoryCache<'static>>(),
            size_of::<ExternalLostTimer>(),
            // defer_spill, loading
            2 * size_of::<bool>(),
            // external accepted and discarded, blocks and bytes served,
            // bytes from storage, the external rate, blocks discarded
            7 * size_of::<u64>(),
            // memory_from_storage
            size_of::<usize>(),
        ];
        let own: usize = own.iter().sum();
        let bare = size_of::<Pool<'static, NoCpu, NoStorage>>();
        let align = align_of::<Pool<'static, NoCpu, NoStorage>>();
        assert!(
            bare >= own && bare - own < align,
            "bare pool {bare} bytes, its own fields {own} (alignment {align})"
        );
    }

    /// A pool over `NoCpu` and `NoStorage` is smaller than the same pool
    /// over a real CPU and a real medium by the sum of those fields' sizes,
    /// up to the pool's alignment padding (128 bytes on x86_64: the memory
    /// cache's padded indices). Every field but the two driver slots is
    /// larger than that, so a copy of one in the bare pool fails this.
    #[test]
    fn a_pool_without_cpu_or_storage_is_smaller_by_their_state() {
        let full = size_of::<Pool<'static, Cpu, Medium>>();
        let bare = size_of::<Pool<'static, NoCpu, NoStorage>>();
        let fields: usize = cpu_fields()
            .iter()
            .chain(storage_fields().iter())
            .sum();
        let align = align_of::<Pool<'static, Cpu, Medium>>();
        let saved = full.saturating_sub(bare);
        assert!(
            saved.abs_diff(fields) < align,
            "full {full} - bare {bare} = {saved}, expected the fields' {fields} within {align}"
        );
        // Each kind alone saves its own part.
        let no_cpu = size_of::<Pool<'static, NoCpu, Medium>>();
        let no_storage = size_of::<Pool<'static, Cpu, NoStorage>>();
        let cpu: usize = cpu_fields().iter().sum();
        let storage: usize = storage_fields().iter().sum();
        assert!(full.saturating_sub(no_cpu).abs_diff(cpu) < align);
        assert!(full.saturating_sub(no_storage).abs_diff(storage) < align);
    }
}
