//! SysTick as the interrupt source and the pool's clock.
//!
//! QEMU's Cortex-M models have no DWT cycle counter (`CYCCNT` reads 0), so
//! the interrupt timestamp is built from SysTick itself: the tick count
//! times the period, plus how far the down-counter has run in the current
//! period (`RELOAD - CVR`). On QEMU the counter follows host time, so the
//! handler's entry latency shows up in the low bits: that jitter is the
//! timing the interrupts source credits (1/64 bit per event by default).
//! On hardware with a DWT, read `CYCCNT` instead.

use core::cell::Cell;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use critical_section::Mutex;
use entropool::Clock;

/// The core clock of QEMU's mps2-an386 board.
pub const CORE_HZ: u32 = 25_000_000;
/// SysTick interrupts per second.
pub const TICK_HZ: u32 = 10_000;
/// SysTick's reload value: one period is `RELOAD + 1` core cycles.
pub const RELOAD: u32 = CORE_HZ / TICK_HZ - 1;

/// Ticks since [`start`]; written only by [`on_tick`].
static TICKS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// Starts SysTick on the core clock, one interrupt every `RELOAD + 1`
/// cycles.
pub fn start(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_counter();
    syst.enable_interrupt();
}

/// Counts one tick and returns the timestamp in core cycles since
/// [`start`]: call it first thing in the SysTick handler.
#[inline]
pub fn on_tick() -> u64 {
    let ran = RELOAD.saturating_sub(SYST::get_current());
    let ticks = critical_section::with(|cs| {
        let t = TICKS.borrow(cs);
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    ticks
        .wrapping_mul(u64::from(RELOAD) + 1)
        .wrapping_add(u64::from(ran))
}

/// Ticks so far.
#[must_use]
pub fn ticks() -> u64 {
    critical_section::with(|cs| TICKS.borrow(cs).get())
}

/// The pool's monotonic clock: milliseconds from the tick count.
#[derive(Clone, Copy, Debug, Default)]
pub struct TickClock;

impl Clock for TickClock {
    fn now_ms(&self) -> u64 {
        div_small(ticks(), TICK_HZ / 1000)
    }
}

/// `n / d` for `0 < d <= 0xFFFF`, long division in 16-bit digits so every
/// step is a 32-bit division: a 64-bit division would link compiler-builtins'
/// 864-byte `u64_div_rem` into the image for this alone. `d == 0` gives 0.
#[must_use]
pub fn div_small(n: u64, d: u32) -> u64 {
    if d == 0 || d > 0xFFFF {
        return 0;
    }
    let (mut q, mut r) = (0u64, 0u32);
    for shift in [48u32, 32, 16, 0] {
        // r < d <= 0xFFFF, so the partial dividend fits 32 bits.
        let part = (r << 16) | u32::from((n >> shift) as u16);
        q = (q << 16) | u64::from(part / d);
        r = part % d;
    }
    q
}
