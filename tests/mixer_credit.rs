//! Credit accounting: exact per source, never a block before 320 bits,
//! chunking of large inputs, caps, the sink contract, and proptests against
//! a plain per-sample model.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::health::{HealthTest, Verdict};
use entropool::mixer::{BLOCK_CREDIT, Block, Credit, Mixer, sample_bits};
use entropool::{
    CreditRate, Error, HealthConfig, MinEntropy, MixerConfig, STARTUP_SAMPLES, Source,
    SourceConfig, UNITS_PER_BIT,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

const STARTUP: u64 = STARTUP_SAMPLES as u64;

/// Random samples for `source`: words, increasing timestamps, or bytes.
struct Feed {
    rng: ChaCha20Rng,
    ts: u64,
}

impl Feed {
    fn new(seed: u64) -> Self {
        Feed {
            rng: ChaCha20Rng::seed_from_u64(seed),
            ts: 0,
        }
    }
    fn words(&mut self, source: Source, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| {
                if source == Source::Interrupts {
                    self.ts = self.ts.wrapping_add(1 + (self.rng.next_u64() & 0xfff));
                    self.ts
                } else {
                    self.rng.next_u64()
                }
            })
            .collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.rng.fill_bytes(&mut v);
        v
    }
}

fn accept_all(count: &mut u64) -> impl FnMut(Block) -> Result<(), Block> + '_ {
    move |_b| {
        *count += 1;
        Ok(())
    }
}

/// Absorbs `n` samples of `source` (all of them; the sink takes everything).
fn absorb(m: &mut Mixer, f: &mut Feed, source: Source, n: usize, blocks: &mut u64) {
    let mut sink = accept_all(blocks);
    let a = if source == Source::External {
        m.absorb_external(&f.bytes(n), &mut sink).unwrap()
    } else {
        m.absorb_words(source, &f.words(source, n), &mut sink)
            .unwrap()
    };
    assert_eq!(a.consumed, n);
    assert_eq!(a.failures, 0);
}

#[test]
fn first_block_comes_exactly_when_320_bits_are_credited() {
    // Samples needed after start-up: 320 bits / default rate.
    for (source, per_block) in [
        (Source::Rdseed, 5u64),
        (Source::External, 40),
        (Source::Rdrand, 2560),
        (Source::Interrupts, 20_480),
    ] {
        let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
        let mut f = Feed::new(source.index() as u64);
        let mut blocks = 0;
        let rate = CreditRate::default_for(source).units();
        assert_eq!(rate * per_block, BLOCK_CREDIT.units());
        absorb(&mut m, &mut f, source, STARTUP as usize, &mut blocks);
        assert_eq!(m.stats(source).credited, Credit::ZERO, "{source}: start-up");
        // One sample at a time for the small cases, in batches otherwise,
        // stopping one short of the block.
        let step = if per_block > 100 { 97 } else { 1 };
        let mut fed = 0;
        while fed + step < per_block {
            absorb(&mut m, &mut f, source, step as usize, &mut blocks);
            fed += step;
            assert_eq!(blocks, 0, "{source}: emitted early at {fed}");
            assert_eq!(m.mixer_stats().pending.units(), fed * rate);
        }
        let rest = per_block - 1 - fed;
        absorb(&mut m, &mut f, source, rest as usize, &mut blocks);
        assert_eq!(blocks, 0, "{source}: one sample short");
        assert_eq!(m.mixer_stats().pending.units(), (per_block - 1) * rate);
        absorb(&mut m, &mut f, source, 1, &mut blocks);
        assert_eq!(blocks, 1, "{source}");
        let st = m.stats(source);
        assert_eq!(st.samples, STARTUP + per_block);
        assert_eq!(st.credited, BLOCK_CREDIT);
        assert_eq!(m.mixer_stats().pending, Credit::ZERO);
    }
}

#[test]
fn bulk_external_is_chunked_into_every_block_it_earns() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut f = Feed::new(9);
    let mut blocks = 0;
    absorb(
        &mut m,
        &mut f,
        Source::External,
        STARTUP as usize,
        &mut blocks,
    );
    absorb(&mut m, &mut f, Source::External, 65_536, &mut blocks);
    assert_eq!(blocks, 65_536 * 8 / 320);
    assert_eq!(blocks, 1638);
    assert_eq!(
        m.mixer_stats().pending,
        Credit::from_bits(65_536 * 8 - 1638 * 320)
    );
    assert_eq!(
        m.stats(Source::External).credited,
        Credit::from_bits(65_536 * 8)
    );
}

#[test]
fn lower_configured_credit_is_exact() {
    let mut cfg = MixerConfig::DEFAULT;
    let h = |bits| HealthConfig::new(MinEntropy::from_bits(bits).unwrap(), 30).unwrap();
    cfg.set(
        Source::External,
        SourceConfig {
            credit: CreditRate::ratio(3, 1), // 3 bits per byte
            health: h(4),
        },
    )
    .unwrap();
    cfg.set(
        Source::Interrupts,
        SourceConfig {
            credit: CreditRate::ratio(1, 1000), // floor(65536 / 1000) units
            health: h(1),
        },
    )
    .unwrap();
    let mut m = Mixer::new(&cfg, &[0; 32]).unwrap();
    let mut f = Feed::new(10);
    let mut blocks = 0;
    absorb(
        &mut m,
        &mut f,
        Source::External,
        STARTUP as usize + 1000,
        &mut blocks,
    );
    // ceil(320 / 3) = 107 bytes per block (321 bits: 1 wasted), 1000 bytes:
    // 9 blocks (963 bytes), 37 bytes pending.
    assert_eq!(blocks, 9);
    assert_eq!(m.mixer_stats().pending, Credit::from_bits(37 * 3));
    assert_eq!(m.stats(Source::External).credited, Credit::from_bits(3000));
    absorb(
        &mut m,
        &mut f,
        Source::Interrupts,
        STARTUP as usize + 777,
        &mut blocks,
    );
    assert_eq!(m.stats(Source::Interrupts).credited.units(), 777 * 65);
}

#[test]
fn caps_are_enforced_for_every_source() {
    let h64 = HealthConfig::new(MinEntropy::from_bits(64).unwrap(), 30).unwrap();
    let h8 = HealthConfig::new(MinEntropy::from_bits(8).unwrap(), 30).unwrap();
    let cases = [
        (Source::Rdseed, 64 * UNITS_PER_BIT, h64),
        (Source::Rdrand, 128 * UNITS_PER_BIT / 1024, h64),
        (Source::Interrupts, UNITS_PER_BIT, h8),
        (Source::External, 8 * UNITS_PER_BIT, h8),
    ];
    for (s, cap, health) in cases {
        assert_eq!(CreditRate::max_for(s).units(), cap);
        let mut cfg = MixerConfig::DEFAULT;
        let ok = SourceConfig {
            credit: CreditRate::from_units(cap),
            health,
        };
        assert_eq!(cfg.set(s, ok), Ok(()));
        let over = SourceConfig {
            credit: CreditRate::from_units(cap + 1),
            health,
        };
        let before = cfg;
        match cfg.set(s, over) {
            Err(Error::InvalidValue { value, max, .. }) => {
                assert_eq!((value, max), (cap + 1, cap));
            }
            other => panic!("{s}: {other:?}"),
        }
        assert_eq!(cfg, before, "nothing changes on error");
    }
    // Credit above the assessed min-entropy is refused too.
    let mut cfg = MixerConfig::DEFAULT;
    let low_h = HealthConfig::new(MinEntropy::from_bits(2).unwrap(), 30).unwrap();
    assert!(
        cfg.set(
            Source::External,
            SourceConfig {
                credit: CreditRate::from_bits(3),
                health: low_h
            }
        )
        .is_err()
    );
    // Defaults: RDRAND 128 bits per 1024 words, interrupts 1 bit per 64.
    assert_eq!(
        CreditRate::default_for(Source::Rdrand).units() * 1024,
        128 << 16
    );
    assert_eq!(
        CreditRate::default_for(Source::Interrupts).units() * 64,
        1 << 16
    );
}

#[test]
fn external_words_are_refused() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut n = 0;
    assert_eq!(
        m.absorb_words(Source::External, &[1, 2], &mut accept_all(&mut n)),
        Err(Error::WrongSampleKind {
            source: Source::External
        })
    );
}

#[test]
fn a_full_sink_stops_absorbing_and_nothing_is_lost_or_repeated() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut f = Feed::new(11);
    let mut n = 0;
    absorb(&mut m, &mut f, Source::External, STARTUP as usize, &mut n);
    let data = f.bytes(200);
    let mut got: Vec<[u8; 32]> = Vec::new();
    let mut room = 2;
    let mut sink = |b: Block| -> Result<(), Block> {
        if room == 0 {
            return Err(b);
        }
        room -= 1;
        got.push(*b.as_bytes());
        Ok(())
    };
    let a = m.absorb_external(&data, &mut sink).unwrap();
    // Two blocks taken, the third (bytes 80..120) refused and held.
    assert_eq!((a.consumed, a.blocks, a.sink_full), (120, 2, true));
    assert!(m.mixer_stats().held);
    assert_eq!(m.mixer_stats().pending, Credit::ZERO);
    // Still full: nothing consumed.
    let a = m.absorb_external(&data[120..], &mut sink).unwrap();
    assert_eq!((a.consumed, a.blocks, a.sink_full), (0, 0, true));
    // Room again: the held block first, then the rest.
    let mut sink2 = |b: Block| -> Result<(), Block> {
        got.push(*b.as_bytes());
        Ok(())
    };
    let a = m.absorb_external(&data[120..], &mut sink2).unwrap();
    assert_eq!((a.consumed, a.blocks, a.sink_full), (80, 3, false));
    assert_eq!(got.len(), 5);
    let st = m.mixer_stats();
    assert_eq!(
        (st.blocks_emitted, st.blocks_delivered, st.held),
        (5, 5, false)
    );
    // Same bytes in one go with an unlimited sink give the same blocks.
    let mut m2 = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut f2 = Feed::new(11);
    absorb(&mut m2, &mut f2, Source::External, STARTUP as usize, &mut n);
    let mut again = Vec::new();
    m2.absorb_external(&data, &mut |b: Block| -> Result<(), Block> {
        again.push(*b.as_bytes());
        Ok(())
    })
    .unwrap();
    assert_eq!(got, again);
}

/// The plain model: per sample, the source's health tests (the library's
/// `HealthTest`, stepped one sample at a time: tested on its own against a
/// hand-written state table in `tests/health_state.rs`) decide whether it
/// earns `rate`; a block when pending reaches 320 bits, then pending
/// restarts at zero. A failure forfeits all credit pending for the current
/// block, from every source.
///
/// The mixer tests a frame at a time and credits nothing of the frame a
/// failure ends, so credit earned in that frame before the failure is
/// neither credited nor forfeited there, while the model credits it and
/// then forfeits it: per source the mixer's credit is at most the model's,
/// and credited minus forfeited is the same in both.
#[derive(Debug)]
struct Model {
    health: [HealthTest; 4],
    rate: [u64; 4],
    /// The interrupt source's last timestamp (its samples are the low byte
    /// of each delta, as the mixer computes them).
    prev_ts: u64,
    pending: u64,
    seen: [u64; 4],
    credited: [u64; 4],
    forfeited: u64,
    failures: u64,
    blocks: u64,
}

impl Model {
    fn new(cfg: &MixerConfig) -> Self {
        let test = |s: Source| HealthTest::new(cfg.source(s).health, sample_bits(s)).unwrap();
        Model {
            health: Source::ALL.map(test),
            rate: Source::ALL.map(|s| cfg.source(s).credit.units()),
            prev_ts: 0,
            pending: 0,
            seen: [0; 4],
            credited: [0; 4],
            forfeited: 0,
            failures: 0,
            blocks: 0,
        }
    }

    /// One raw sample: a word, a timestamp or a byte.
    fn sample(&mut self, s: Source, raw: u64) -> Result<(), TestCaseError> {
        let i = s.index();
        self.seen[i] += 1;
        let x = if s == Source::Interrupts {
            let delta = raw.wrapping_sub(self.prev_ts) & 0xff;
            self.prev_ts = raw;
            delta
        } else {
            raw
        };
        match self.health[i].step(x) {
            Verdict::Creditable => {
                self.credited[i] += self.rate[i];
                self.pending += self.rate[i];
                if self.pending >= BLOCK_CREDIT.units() {
                    self.blocks += 1;
                    self.pending = 0;
                }
            }
            Verdict::NotCreditable => {}
            Verdict::Failed(_) => {
                self.failures += 1;
                self.forfeited += self.pending;
                self.pending = 0;
            }
            Verdict::Disabled => {
                prop_assert!(
                    false,
                    "{s} disabled: the generator must not inject that much"
                );
            }
        }
        Ok(())
    }

    /// The length of a run of one repeated sample that trips `s`'s
    /// Repetition Count Test once.
    fn rct_run(&self, s: Source) -> usize {
        self.health[s.index()].rct_cutoff() as usize
    }
}

fn source_of(i: u8) -> Source {
    Source::ALL[usize::from(i % 4)]
}

/// One batch: a source, a sample count, and where in it a run of one
/// repeated sample starts (long enough to trip the source's RCT once), if
/// anywhere.
type Op = (u8, usize, Option<usize>);

/// Runs `ops` through a mixer whose sink refuses after `room` blocks each
/// time (then the caller drains it and resubmits the unconsumed rest) and
/// through the model; compares everything. At most one repeated run is
/// injected per source (so no source reaches the strikes that disable it).
fn check_against_model(
    cfg: &MixerConfig,
    ops: &[Op],
    seed: u64,
    room: u32,
) -> Result<(u64, Model, Credit), TestCaseError> {
    let mut m = Mixer::new(cfg, &[3; 32]).unwrap();
    let mut model = Model::new(cfg);
    let mut f = Feed::new(seed);
    let mut delivered = 0u64;
    let mut failures = 0u64;
    let mut injected = [false; 4];
    for &(src, n, inject) in ops {
        let s = source_of(src);
        let ts0 = f.ts;
        let (mut words, mut bytes) = if s == Source::External {
            (Vec::new(), f.bytes(n))
        } else {
            (f.words(s, n), Vec::new())
        };
        if let Some(at) = inject.filter(|&at| at < n && !injected[s.index()]) {
            injected[s.index()] = true;
            let end = (at + model.rct_run(s)).min(n);
            match s {
                Source::External => bytes[at..end].fill(0x5a),
                // Equal steps: every delta's low byte is the same.
                Source::Interrupts => {
                    for k in at..n {
                        let step = if k < end {
                            1000
                        } else {
                            1 + (words[k] & 0xfff)
                        };
                        let before = if k == 0 { ts0 } else { words[k - 1] };
                        words[k] = before.wrapping_add(step);
                    }
                    f.ts = words[n - 1];
                }
                _ => words[at..end].fill(0x0123_4567_89ab_cdef),
            }
        }
        if s == Source::External {
            for &b in &bytes {
                model.sample(s, u64::from(b))?;
            }
        } else {
            for &w in &words {
                model.sample(s, w)?;
            }
        }
        let mut pos = 0;
        let mut rounds = 0;
        while pos < n || rounds == 0 {
            rounds += 1;
            prop_assert!(rounds < 100_000);
            // Every other retry the caller has drained its cache.
            let mut left = if rounds % 2 == 1 { room } else { room.max(1) };
            let mut sink = |b: Block| -> Result<(), Block> {
                if left == 0 {
                    return Err(b);
                }
                left -= 1;
                delivered += 1;
                Ok(())
            };
            let a = if s == Source::External {
                m.absorb_external(&bytes[pos..], &mut sink).unwrap()
            } else {
                m.absorb_words(s, &words[pos..], &mut sink).unwrap()
            };
            failures += u64::from(a.failures);
            pos += a.consumed;
            prop_assert!(a.sink_full || pos == n);
        }
    }
    // Deliver a block still held.
    m.deliver_held(&mut |_b: Block| -> Result<(), Block> {
        delivered += 1;
        Ok(())
    });
    prop_assert_eq!(failures, model.failures);
    let ms = m.mixer_stats();
    let mut mixer_credit = 0;
    for s in Source::ALL {
        let st = m.stats(s);
        prop_assert_eq!(st.samples, model.seen[s.index()]);
        if model.failures == 0 {
            prop_assert_eq!(st.credited.units(), model.credited[s.index()], "{}", s);
        } else {
            prop_assert!(st.credited.units() <= model.credited[s.index()], "{}", s);
        }
        mixer_credit += st.credited.units();
    }
    let model_credit: u64 = model.credited.iter().sum();
    prop_assert!(ms.forfeited.units() <= model.forfeited);
    prop_assert_eq!(
        mixer_credit - ms.forfeited.units(),
        model_credit - model.forfeited,
        "credited minus forfeited"
    );
    if model.failures == 0 {
        prop_assert_eq!(ms.forfeited, Credit::ZERO);
    }
    prop_assert_eq!(ms.pending.units(), model.pending);
    prop_assert_eq!(ms.blocks_emitted, model.blocks);
    prop_assert_eq!(delivered, model.blocks);
    Ok((delivered, model, ms.forfeited))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 48 }))]

    /// Any interleaving of all four sources, any batch sizes, any sink
    /// capacity, runs of a repeated sample that trip the health tests: the
    /// same credit, forfeits, blocks and pending credit as the per-sample
    /// model.
    #[test]
    fn interleavings_match_the_plain_model(
        ops in proptest::collection::vec(
            (0u8..4, 0usize..2500, proptest::option::weighted(0.3, 0usize..2500)),
            1..14,
        ),
        seed: u64,
        room in 0u32..4,
    ) {
        check_against_model(&MixerConfig::DEFAULT, &ops, seed, room)?;
    }

    /// Under full credit (no credit wasted: every rate divides 320 bits and
    /// each other) blocks = floor(total credit / 320) and the rest pends.
    #[test]
    fn blocks_are_floor_of_credit_over_320(
        ops in proptest::collection::vec((prop_oneof![Just(2u8), Just(3)], 0usize..3000), 1..10),
        seed: u64,
        rdseed_bits in prop_oneof![Just(8u64), Just(16), Just(32), Just(64)],
        single in any::<bool>(),
    ) {
        let mut cfg = MixerConfig::DEFAULT;
        let h = HealthConfig::new(MinEntropy::from_bits(64).unwrap(), 30).unwrap();
        cfg.set(Source::Rdseed, SourceConfig { credit: CreditRate::from_bits(rdseed_bits), health: h }).unwrap();
        // Mixed sources only when every rate is a multiple of the smallest
        // and divides 320 (8 bits/byte with 8-bit words); otherwise RDSEED
        // alone at its full rate.
        let ops: Vec<Op> = if single || rdseed_bits != 8 {
            ops.into_iter().map(|(_, n)| (2, n, None)).collect()
        } else {
            ops.into_iter().map(|(s, n)| (s, n, None)).collect()
        };
        let (_, model, _) = check_against_model(&cfg, &ops, seed, 1000)?;
        let total: u64 = model.credited.iter().sum();
        prop_assert_eq!(model.blocks, total / BLOCK_CREDIT.units());
        prop_assert_eq!(model.pending, total % BLOCK_CREDIT.units());
    }
}

/// A repeated run after credit has built up forfeits it: the model check
/// above with a case that certainly forfeits, for every source.
#[test]
fn a_failure_forfeits_the_pending_credit_as_the_model_does() {
    for (i, s) in Source::ALL.into_iter().enumerate() {
        // Past start-up with credit pending (3001 samples leave a partial
        // block for every default rate; the batch's end ends a frame), then
        // a batch that opens with the run, then more.
        let ops = [
            (i as u8, 3001, None),
            (i as u8, 1000, Some(0)),
            (i as u8, 2000, None),
        ];
        let (_, model, forfeited) =
            check_against_model(&MixerConfig::DEFAULT, &ops, 7 + i as u64, 3).unwrap();
        assert!(model.failures >= 1, "{s}: no failure from the repeated run");
        assert!(model.forfeited > 0, "{s}: nothing pending to forfeit");
        assert!(forfeited.units() > 0, "{s}: the mixer forfeited nothing");
    }
}
