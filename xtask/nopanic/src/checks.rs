//! One function per entropool module, each driving that module's runtime
//! entry points with opaque inputs. Module owners extend their own function
//! (or add one for a new module and list it in [`ALL`]); keep each call
//! reachable and its result passed through `black_box`.

use core::hint::black_box;

use entropool::cache::MemoryCache;
use entropool::config::parse_set_args;
use entropool::health::HealthTest;
use entropool::hw::{Rdrand, Rdseed};
use entropool::kickstart::{KickstartParser, Limits};
use entropool::mixer::{Block, Mixer};
use entropool::ring::Ring;
use entropool::storage::StorageCache;
use entropool::watch::ExternalLostTimer;
use entropool::{
    BlockCell, BlockSlot, Clock, Config, CpuFeatures, HashDrbg, HealthConfig, HmacDrbg,
    InterruptRing, MemStorage, MinEntropy, MixerConfig, NoCpu, NoStorage, Pool, PoolParts, PoolRng,
    PoolRngConfig, RealCpu, Slot, Source, SourceMask, Tunables,
};

/// An opaque byte string derived from `seed`.
fn bytes<const N: usize>(seed: u64) -> [u8; N] {
    let mut out = [0u8; N];
    let mut x = seed;
    for b in &mut out {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *b = (x >> 56) as u8;
    }
    black_box(out)
}

/// `xs[i]` for an opaque `i`, without a bounds-check panic.
fn at<T: Copy + Default>(xs: &[T], i: usize) -> T {
    xs.get(black_box(i)).copied().unwrap_or_default()
}

/// A prefix of opaque length, without a panic.
fn prefix(xs: &[u8], n: usize) -> &[u8] {
    xs.get(..black_box(n)).unwrap_or(xs)
}

/// A clock that reads an opaque value.
struct OpaqueClock(u64);

impl Clock for OpaqueClock {
    fn now_ms(&self) -> u64 {
        black_box(self.0)
    }
}

/// A sink that counts what a formatter writes.
struct Count(usize);

impl core::fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0 = self.0.wrapping_add(s.len());
        Ok(())
    }
}

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

/// `config`: `set` argument parsing and applying, text form both ways.
#[inline(never)]
fn config(seed: u64) -> u64 {
    let raw = bytes::<48>(seed);
    let text = core::str::from_utf8(&raw).unwrap_or("--memory-cache-size=1024");
    let mut t = Tunables::DEFAULT;
    let mut acc = 0u64;
    if let Ok(req) = parse_set_args(text.split(' ')) {
        acc = u64::from(t.apply(&req).is_ok());
    }
    let mut count = Count(0);
    let _ = t.write_esxcli(&mut count);
    let _ = Config::DEFAULT.write_text(&mut count);
    if let Ok(back) = Tunables::parse_esxcli(text) {
        acc ^= u64::from(back.memory_cache_size_kib());
    }
    if let Ok(c) = Config::parse_text(text) {
        acc ^= u64::from(c.sources.value());
    }
    black_box(acc ^ count.0 as u64)
}

/// `kickstart`: the streaming parser over any bytes, in two pieces.
#[inline(never)]
fn kickstart(seed: u64) -> u64 {
    let input = bytes::<96>(seed);
    let mut parser = KickstartParser::with_limits(Limits {
        min_size: black_box(1),
        max_size: black_box(64),
    });
    let mut got = 0u64;
    let mut sink = |d: &[u8]| got = got.wrapping_add(d.len() as u64);
    let (a, b) = input
        .split_at_checked(black_box(40))
        .unwrap_or((&input[..], &[]));
    let mut acc = 0u64;
    if parser.push(a, &mut sink).is_ok() && parser.push(b, &mut sink).is_ok() {
        if let Ok(summary) = parser.finish(&mut sink) {
            acc = summary.size;
        }
    }
    black_box(acc ^ got)
}

/// `hw`: detection, RDRAND and RDSEED through the drivers, the counter.
#[inline(never)]
fn hw(seed: u64) -> u64 {
    use entropool::Cpu;
    let cpu = RealCpu::new();
    let mut acc = cpu.cycles() ^ seed;
    if let Ok(mut r) = Rdrand::new(cpu) {
        acc ^= r.next_u64().unwrap_or(0);
        let mut words = [0u64; 4];
        let _ = r.fill(&mut words);
        acc ^= at(&words[..], 1);
    }
    if let Ok(mut r) = Rdseed::new(cpu) {
        let mut words = [0u64; 4];
        acc ^= r.fill(&mut words).unwrap_or(0) as u64;
        acc ^= r.next_u64().unwrap_or(0);
    }
    black_box(acc)
}

/// `interrupt`: `record` and both drains.
#[inline(never)]
fn interrupt(seed: u64) -> u64 {
    let mut slots: [Slot<u64>; 8] = [const { Slot::new(0) }; 8];
    let Ok(mut ring) = InterruptRing::new(&mut slots) else {
        return 0;
    };
    let (mut rec, mut drain) = ring.split();
    for i in 0..black_box(12u64) {
        let _ = rec.record(seed.wrapping_mul(i));
    }
    let mut out = [0u64; 5];
    let a = drain.drain(&mut out);
    let b = drain.drain_timestamps(&mut out);
    black_box((a + b) as u64 ^ at(&out[..], 2) ^ drain.pending() as u64)
}

/// `health`: step and run the RCT/APT.
#[inline(never)]
fn health(seed: u64) -> u64 {
    let Ok(h) = MinEntropy::from_bits(black_box(4)) else {
        return 0;
    };
    let Ok(mut t) = HealthTest::new(HealthConfig::with_default_alpha(h), black_box(8)) else {
        return 0;
    };
    let data = bytes::<200>(seed);
    let _ = t.step(u64::from(at(&data[..], 3)));
    let r = t.run(&data[..], black_box(1000));
    black_box(r.consumed as u64 ^ r.creditable ^ t.failures())
}

/// `mixer`: absorb words and bytes, emit blocks into a sink.
#[inline(never)]
fn mixer(seed: u64) -> u64 {
    let key = bytes::<32>(seed);
    let Ok(mut m) = Mixer::new(&MixerConfig::DEFAULT, &key) else {
        return 0;
    };
    let mut acc = 0u64;
    let mut sink = |b: Block| -> Result<(), Block> {
        acc ^= u64::from(at(b.as_bytes(), 5));
        if acc & 1 == 0 { Ok(()) } else { Err(b) }
    };
    let data = bytes::<300>(seed);
    let words = [seed, !seed, seed.rotate_left(7), 3, 5, 7, 11];
    for s in Source::ALL {
        let _ = m.absorb_words(s, &words, &mut sink);
    }
    let _ = m.absorb_external(&data, &mut sink);
    let _ = m.deliver_held(&mut sink);
    let st = m.stats(Source::External);
    black_box(acc ^ st.samples ^ m.mixer_stats().blocks_emitted)
}

/// `ring`: single-owner and split push/pop.
#[inline(never)]
fn ring(seed: u64) -> u64 {
    let mut slots: [Slot<u64>; 4] = [const { Slot::new(0) }; 4];
    let Ok(mut r) = Ring::new(&mut slots) else {
        return 0;
    };
    let _ = r.push(seed);
    let mut acc = r.pop().unwrap_or(0);
    let (mut p, mut c) = r.split();
    for i in 0..black_box(6u64) {
        let _ = p.push(i);
    }
    let mut out = [0u64; 3];
    acc ^= c.pop_into(&mut out) as u64 ^ c.pop().unwrap_or(0);
    black_box(acc ^ at(&out[..], 1))
}

/// `cache`: the memory cache's push, pop, resize and watermark.
#[inline(never)]
fn cache(seed: u64) -> u64 {
    let mut slots: [BlockSlot; 64] = [const { Slot::new(BlockCell::EMPTY) }; 64];
    let Ok(mut m) = MemoryCache::new(&mut slots, black_box(2), black_box(20)) else {
        return 0;
    };
    let mut b = bytes::<32>(seed);
    let _ = m.push(Block::from_test_bytes(b));
    let _ = m.push(Block::from_test_bytes(bytes::<32>(!seed)));
    let _ = m.set_low_watermark(black_box(30));
    let _ = m.set_size_kib(black_box(1), |blk| b[0] ^= blk.as_bytes()[1]);
    let mut out = [0u8; 40];
    let n = m.write_out(out.get_mut(..black_box(33)).unwrap_or_default());
    if let Some(blk) = m.pop() {
        out[0] ^= blk.as_bytes()[2];
    }
    black_box(
        m.refill_wanted().unwrap_or(0) as u64
            ^ u64::from(at(&out[..], 4))
            ^ n as u64
            ^ u64::from(b[0]),
    )
}

/// `storage`: open, push, take over a memory medium.
#[inline(never)]
fn storage(seed: u64) -> u64 {
    let mut medium = [0u8; 64 + 64 * 8];
    if let Some(m) = medium.get_mut(black_box(70)) {
        *m = seed as u8;
    }
    let sources = SourceMask::new(black_box((seed | 8) & 15)).unwrap_or(SourceMask::DEFAULT);
    let key = bytes::<32>(seed);
    let Ok((mut s, report)) =
        StorageCache::open(MemStorage::new(&mut medium), black_box(8), sources, &key)
    else {
        return 0;
    };
    let mut blocks = [
        Some(Block::from_test_bytes(bytes::<32>(seed))),
        Some(Block::from_test_bytes(bytes::<32>(!seed))),
    ];
    let _ = s.push_many(&mut blocks);
    let _ = s.push(Block::from_test_bytes(bytes::<32>(seed ^ 1)));
    let mut b = bytes::<32>(seed ^ 2);
    let mut out = [[0u8; 32]; 2];
    let _ = s.take_many(&mut out);
    let _ = s.take(&mut b);
    black_box(s.len() ^ report.blocks ^ u64::from(at(&out[1], 3)))
}

/// `watch`: the external-lost timer.
#[inline(never)]
fn watch(seed: u64) -> u64 {
    let mask = SourceMask::new(black_box(8)).unwrap_or(SourceMask::DEFAULT);
    let mut t = ExternalLostTimer::new(mask, black_box(60), seed);
    t.observe(seed.wrapping_add(black_box(61_000)));
    let lost = t.is_lost(black_box(u64::MAX));
    t.on_external(black_box(5));
    t.set_timeout_secs(black_box(u64::MAX));
    let st = t.status(black_box(0));
    black_box(
        u64::from(lost) ^ st.ms_waiting ^ st.timeout_ms ^ t.empty_caches_error(seed).code() as u64,
    )
}

/// `pool`: the facade on the real CPU, memory storage, an opaque clock.
#[inline(never)]
fn pool(seed: u64) -> u64 {
    let mut slots: [BlockSlot; 64] = [const { Slot::new(BlockCell::EMPTY) }; 64];
    // storage-cache-size=1 KiB: 32 slots of 64 bytes after a 64-byte header.
    let mut medium = [0u8; 64 + 64 * 32];
    let mut isr: [Slot<u64>; 16] = [const { Slot::new(0) }; 16];
    let Ok(mut ring) = InterruptRing::new(&mut isr) else {
        return 0;
    };
    let (mut rec, drain) = ring.split();
    let Ok(tunables) = Tunables::new(black_box(60), black_box(20), black_box(2), black_box(1))
    else {
        return 0;
    };
    let sources = SourceMask::new(black_box(seed & 15)).unwrap_or(SourceMask::DEFAULT);
    let Ok((mut p, _)) = Pool::new(PoolParts {
        config: Config { tunables, sources },
        cpu: RealCpu::new(),
        clock: OpaqueClock(seed),
        memory: &mut slots,
        storage: Some(MemStorage::new(&mut medium)),
        interrupts: Some(drain),
        mixer: MixerConfig::DEFAULT,
        key: bytes::<32>(seed),
        storage_key: bytes::<32>(seed ^ 1),
    }) else {
        return 0;
    };
    let _ = rec.record(seed);
    let data = bytes::<100>(seed);
    let mut acc = p.submit(&data).unwrap_or(0) as u64;
    acc ^= p.seed_external(&data).unwrap_or(0) as u64;
    let _ = p.poll();
    let mut out = [0u8; 40];
    let _ = p.fill(&mut out);
    let _ = p.set_tunables(&tunables);
    // Storage writes deferred to a spill job (the daemon's path).
    p.defer_storage_writes(black_box(seed & 1 == 1));
    let _ = p.poll();
    if let Some(mut job) = p.take_spill() {
        job.write();
        let _ = p.finish_spill(job);
    }
    let _ = p.flush_to_storage();
    let st = p.status();
    acc ^= st.bytes_served ^ st.memory_len_blocks as u64;
    let mut rng = match PoolRng::new(&mut p, PoolRngConfig::DEFAULT) {
        Ok(r) => r,
        Err(e) => return black_box(acc ^ u64::from(e.code())),
    };
    let _ = rng.fill(&mut out);
    let _ = rng.reseed_now();
    // One lane and a firmware-sized buffer (another monomorphization).
    let mut one =
        match PoolRng::<_, HmacDrbg, 288, 1>::with_drbg(rng.source_mut(), PoolRngConfig::DEFAULT) {
            Ok(r) => r,
            Err(e) => return black_box(acc ^ u64::from(e.code())),
        };
    let mut big = [0u8; 300];
    let _ = one.fill(&mut out);
    let _ = one.fill(&mut big);
    let _ = one.reseed_now();
    acc ^= u64::from(at(&big[..], 5));
    black_box(acc ^ u64::from(at(&out[..], 7)) ^ pool_bare(seed))
}

/// `pool` over `NoCpu` and `NoStorage` (the firmware pool): no drivers,
/// the interrupt drain through `poll`'s stack buffer, no storage tier.
#[inline(never)]
fn pool_bare(seed: u64) -> u64 {
    let mut slots: [BlockSlot; 32] = [const { Slot::new(BlockCell::EMPTY) }; 32];
    let mut isr: [Slot<u64>; 16] = [const { Slot::new(0) }; 16];
    let Ok(mut ring) = InterruptRing::new(&mut isr) else {
        return 0;
    };
    let (mut rec, drain) = ring.split();
    let Ok(tunables) = Tunables::new(black_box(60), black_box(20), black_box(1), black_box(0))
    else {
        return 0;
    };
    let sources = SourceMask::new(black_box(seed & 15)).unwrap_or(SourceMask::DEFAULT);
    let Ok((mut p, _)) = Pool::new(PoolParts {
        config: Config { tunables, sources },
        cpu: NoCpu,
        clock: OpaqueClock(seed),
        memory: &mut slots,
        storage: None::<NoStorage>,
        interrupts: Some(drain),
        mixer: MixerConfig::DEFAULT,
        key: bytes::<32>(seed),
        storage_key: bytes::<32>(seed ^ 1),
    }) else {
        return 0;
    };
    let _ = rec.record(seed);
    let data = bytes::<100>(seed);
    let mut acc = p.submit(&data).unwrap_or(0) as u64;
    let _ = p.poll();
    let mut out = [0u8; 40];
    let _ = p.fill(&mut out);
    let _ = p.set_tunables(&tunables);
    let _ = p.flush_to_storage();
    let st = p.status();
    acc ^= st.bytes_served ^ st.memory_len_blocks as u64;
    black_box(acc ^ u64::from(at(&out[..], 3)))
}

/// `drbg`: HMAC_DRBG and Hash_DRBG instantiate, generate, reseed; two
/// HMAC_DRBG instances generating in lockstep.
#[inline(never)]
fn drbg(seed: u64) -> u64 {
    let e = bytes::<48>(seed);
    let mut out = [0u8; 100];
    let mut acc = 0u64;
    if let Ok(mut d) = HmacDrbg::new(prefix(&e, 32), e.get(32..).unwrap_or(&[]), prefix(&e, 3)) {
        let _ = d.generate(&mut out, prefix(&e, 5));
        let _ = d.reseed(&e, &[]);
        acc ^= u64::from(at(&out[..], 9));
        if let Ok(mut other) = HmacDrbg::new(&e, &[], &[]) {
            let mut more = [0u8; 77];
            let _ = d.generate_pair(&mut other, &mut out, &mut more, prefix(&e, 2));
            acc ^= u64::from(at(&more[..], 13));
        }
    }
    if let Ok(mut d) = HashDrbg::new(prefix(&e, 32), e.get(32..).unwrap_or(&[]), &[]) {
        let _ = d.generate(&mut out, &[]);
        let _ = d.reseed(&e, prefix(&e, 7));
        acc ^= u64::from(at(&out[..], 11));
    }
    black_box(acc)
}

/// `rng`: covered by `pool` (PoolRng over the pool).
#[inline(never)]
fn rng(seed: u64) -> u64 {
    black_box(seed)
}
