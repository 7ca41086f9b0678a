//! One function per entropool module, each driving that module's runtime
//! entry points with opaque inputs. Module owners extend their own function
//! (or add one for a new module and list it in [`ALL`]); keep each call
//! reachable and its result passed through `black_box`.

use core::hint::black_box;

use entropool::{CpuFeatures, SourceMask};

/// Every check, in module order. `main` calls each with an opaque seed.
#[rustfmt::skip]
pub const ALL: &[fn(u64) -> u64] = &[
    source,
    config,
    kickstart,
    hw,
    interrupt,
    health,
    mixer,
    ring,
    cache,
    storage,
    watch,
    pool,
    drbg,
    rng,
];

/// `source`: `SourceMask::new` on any value, `resolve` on any CPU.
#[inline(never)]
fn source(seed: u64) -> u64 {
    let cpu = CpuFeatures {
        rdrand: seed & 1 != 0,
        rdseed: seed & 2 != 0,
    };
    let mut acc = 0u64;
    if let Ok(mask) = SourceMask::new(black_box(seed >> 2)) {
        if let Ok(resolved) = mask.resolve(black_box(cpu)) {
            acc = u64::from(resolved.value());
            for s in resolved.iter() {
                acc = acc.wrapping_add(black_box(s.index()) as u64);
            }
        }
    }
    black_box(acc)
}

/// `config`: owner adds the tunables' `set`/`reset`/text parsing here.
#[inline(never)]
fn config(seed: u64) -> u64 {
    black_box(seed)
}

/// `kickstart`: owner adds the kickstart parser here.
#[inline(never)]
fn kickstart(seed: u64) -> u64 {
    black_box(seed)
}

/// `hw`: owner adds detection, RDRAND/RDSEED draws, the cycle counter here.
#[inline(never)]
fn hw(seed: u64) -> u64 {
    black_box(seed)
}

/// `interrupt`: owner adds `record` and the drain here.
#[inline(never)]
fn interrupt(seed: u64) -> u64 {
    black_box(seed)
}

/// `health`: owner adds the RCT/APT feeding here.
#[inline(never)]
fn health(seed: u64) -> u64 {
    black_box(seed)
}

/// `mixer`: owner adds absorb/credit/emit here.
#[inline(never)]
fn mixer(seed: u64) -> u64 {
    black_box(seed)
}

/// `ring`: owner adds push/pop/len here.
#[inline(never)]
fn ring(seed: u64) -> u64 {
    black_box(seed)
}

/// `cache`: owner adds the memory cache, watermark, storage cache here.
#[inline(never)]
fn cache(seed: u64) -> u64 {
    black_box(seed)
}

/// `storage`: owner adds the `Storage` protocol (read, take, write) here.
#[inline(never)]
fn storage(seed: u64) -> u64 {
    black_box(seed)
}

/// `watch`: owner adds the external-lost timer here.
#[inline(never)]
fn watch(seed: u64) -> u64 {
    black_box(seed)
}

/// `pool`: owner adds `poll`, `record`, `submit`, `fill`, `status` here.
#[inline(never)]
fn pool(seed: u64) -> u64 {
    black_box(seed)
}

/// `drbg`: owner adds `HmacDrbg::new`/`reseed`/`generate` here.
#[inline(never)]
fn drbg(seed: u64) -> u64 {
    black_box(seed)
}

/// `rng`: owner adds `PoolRng` requests here.
#[inline(never)]
fn rng(seed: u64) -> u64 {
    black_box(seed)
}
