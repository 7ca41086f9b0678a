//! The firmware whose size `cargo xtask firmware --size` reports: the
//! smallest complete use of the pool, built three ways at opt-level "s":
//!
//! - no features: (a) a static pool, interrupts (SysTick) + external (a
//!   provisioning seed), no storage, no DRBG: a pool over `NoCpu` and
//!   `NoStorage`, so it holds no RDRAND/RDSEED driver state, no word
//!   buffer, no storage tier and no overflow;
//! - `--features rng`: (b) the same plus PoolRng as a firmware that draws
//!   keys and nonces would configure it: one HMAC_DRBG lane (two lanes add
//!   speed only where SHA instructions interleave them, and cost twice the
//!   pool's entropy per seed) and a 288-byte output buffer (the smallest
//!   multiple of 32 above `SMALL_REQUEST_MAX`; a smaller buffer only means
//!   more DRBG calls per byte);
//! - `--features rng,bulk`: (b) with the configuration measured before
//!   2026-12-04's second round of cuts: two lanes and a 512-byte buffer;
//! - `--features rng,flash`: (c) the same plus a 1 KiB (32-block) storage
//!   cache on NOR flash.
//!
//! Its panic handler is a permanent fault (no output machinery). It runs
//! under QEMU but checks nothing: `src/main.rs` is the checked example.

#![no_std]
#![no_main]

use core::cell::RefCell;
use core::hint::black_box;

use cortex_m_rt::{entry, exception};
use critical_section::Mutex;
use static_cell::{ConstStaticCell, StaticCell};

use entropool::{
    BlockCell, BlockSlot, Config, Error, InterruptRecorder, InterruptRing, MixerConfig, NoCpu,
    Pool, PoolParts, Slot, SourceMask, Tunables,
};
use entropool_cortex_m::systick::{self, TickClock};

#[cfg(feature = "flash")]
use entropool_cortex_m::flash::{FlashStorage, NorFlash, SECTOR_LEN};
#[cfg(feature = "flash")]
type Medium = FlashStorage<'static>;
#[cfg(not(feature = "flash"))]
type Medium = entropool::NoStorage;

/// Caller storage: 64 interrupt timestamps, 32 cache blocks (1 KiB).
static INTERRUPT_SLOTS: ConstStaticCell<[Slot<u64>; 64]> =
    ConstStaticCell::new([const { Slot::new(0) }; 64]);
static MEMORY: ConstStaticCell<[BlockSlot; 32]> =
    ConstStaticCell::new([const { Slot::new(BlockCell::EMPTY) }; 32]);
#[cfg(feature = "flash")]
static STORE_FLASH: ConstStaticCell<[u8; 3 * SECTOR_LEN]> =
    ConstStaticCell::new([0xFF; 3 * SECTOR_LEN]);

static INTERRUPT_RING: StaticCell<InterruptRing<'static>> = StaticCell::new();
static POOL: StaticCell<Pool<'static, NoCpu, TickClock, Medium>> = StaticCell::new();
static RECORDER: Mutex<RefCell<Option<InterruptRecorder<'static>>>> =
    Mutex::new(RefCell::new(None));

#[cfg(feature = "rng")]
type Rng = entropool::PoolRng<
    &'static mut Pool<'static, NoCpu, TickClock, Medium>,
    entropool::HmacDrbg,
    RNG_BUFFER,
    RNG_LANES,
>;
/// PoolRng's output buffer: the smallest multiple of 32 (one HMAC_DRBG
/// output block) above `SMALL_REQUEST_MAX`, or 512 with `bulk`.
#[cfg(all(feature = "rng", not(feature = "bulk")))]
const RNG_BUFFER: usize = 288;
#[cfg(all(feature = "rng", feature = "bulk"))]
const RNG_BUFFER: usize = 512;
/// One lane (the generator then holds one HMAC_DRBG state), or with `bulk`
/// the default two.
#[cfg(all(feature = "rng", not(feature = "bulk")))]
const RNG_LANES: usize = 1;
#[cfg(all(feature = "rng", feature = "bulk"))]
const RNG_LANES: usize = 2;
#[cfg(feature = "rng")]
const RNG_CONFIG: entropool::PoolRngConfig = entropool::PoolRngConfig::DEFAULT;
/// The generator in a static too: its state counts as static RAM.
#[cfg(feature = "rng")]
static RNG: StaticCell<Rng> = StaticCell::new();

/// Where the factory's provisioning seed would be (zeros here; a real
/// image reads its flash partition).
static SEED: [u8; 64] = [0; 64];

#[exception]
fn SysTick() {
    static mut MINE: Option<InterruptRecorder<'static>> = None;
    let timestamp = systick::on_tick();
    if MINE.is_none() {
        *MINE = critical_section::with(|cs| RECORDER.borrow_ref_mut(cs).take());
    }
    if let Some(recorder) = MINE.as_mut() {
        let _ = recorder.record(timestamp);
    }
}

fn start() -> Result<&'static mut Pool<'static, NoCpu, TickClock, Medium>, Error> {
    let slots = INTERRUPT_SLOTS.try_take().ok_or(Error::CapacityTooSmall)?;
    let ring = INTERRUPT_RING
        .try_init(InterruptRing::new(slots)?)
        .ok_or(Error::CapacityTooSmall)?;
    let (recorder, drain) = ring.split();
    critical_section::with(|cs| RECORDER.borrow_ref_mut(cs).replace(recorder));
    #[cfg(feature = "flash")]
    let (storage, storage_kib) = {
        let bytes = STORE_FLASH.try_take().ok_or(Error::CapacityTooSmall)?;
        let flash = NorFlash::new(bytes).ok_or(Error::CapacityTooSmall)?;
        (Some(FlashStorage::new(flash)), 1)
    };
    #[cfg(not(feature = "flash"))]
    let (storage, storage_kib) = (None::<Medium>, 0);
    let (pool, _) = Pool::new(PoolParts {
        config: Config {
            tunables: Tunables::new(60, 20, 1, storage_kib)?,
            sources: SourceMask::new(1 | 8)?,
        },
        cpu: NoCpu,
        clock: TickClock,
        memory: MEMORY.try_take().ok_or(Error::CapacityTooSmall)?,
        storage,
        interrupts: Some(drain),
        mixer: MixerConfig::default(),
        key: black_box([0x5A; 32]),
        // Where the storage cache is used, a value that differs at every
        // start (see src/main.rs's start_key).
        storage_key: black_box([0xA5; 32]),
    })?;
    POOL.try_init(pool).ok_or(Error::CapacityTooSmall)
}

#[entry]
fn main() -> ! {
    let Ok(pool) = start() else {
        cortex_m::asm::udf()
    };
    if let Some(mut core) = cortex_m::Peripherals::take() {
        systick::start(&mut core.SYST);
    }
    let _ = pool.seed_external(black_box(&SEED));
    #[cfg(feature = "rng")]
    let rng = match Rng::with_drbg(pool, RNG_CONFIG)
        .ok()
        .and_then(|rng| RNG.try_init(rng))
    {
        Some(rng) => rng,
        None => cortex_m::asm::udf(),
    };
    loop {
        cortex_m::asm::wfi();
        #[cfg(feature = "rng")]
        {
            let _ = rng.source_mut().poll();
            let mut nonce = [0u8; 12];
            if rng.fill(&mut nonce).is_ok() {
                black_box(&nonce);
            }
        }
        #[cfg(not(feature = "rng"))]
        {
            let _ = pool.poll();
            let mut key = [0u8; 32];
            if pool.fill(&mut key).is_ok() {
                black_box(&key);
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::asm::udf()
}
