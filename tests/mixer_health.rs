//! Health tests seen through the mixer: exact trip points, forfeiting
//! credit, quarantine and disabling, and no false alarms on good sources.

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::mixer::{Block, Credit, Mixer};
use entropool::{Error, HealthState, HealthTestKind, MixerConfig, STARTUP_SAMPLES, Source};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

fn sink(n: &mut u64) -> impl FnMut(Block) -> Result<(), Block> + '_ {
    move |_b| {
        *n += 1;
        Ok(())
    }
}

fn words(rng: &mut ChaCha20Rng, n: usize) -> Vec<u64> {
    (0..n).map(|_| rng.next_u64()).collect()
}

#[test]
fn stuck_rdseed_trips_the_rct_at_exactly_the_cutoff_and_forfeits_pending_credit() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let (rct, apt) = m.cutoffs(Source::Rdseed);
    // H = 64 bits per word, alpha = 2^-30: C = 1 + ceil(30 / 64) = 2; the
    // APT formula gives 1, which is raised to 2 (see `health`).
    assert_eq!((rct, apt), (2, 2));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut n = 0;
    m.absorb_words(
        Source::Rdseed,
        &words(&mut rng, 1024 + 3),
        &mut sink(&mut n),
    )
    .unwrap();
    assert_eq!(m.mixer_stats().pending, Credit::from_bits(192));
    let stuck = 0x0123_4567_89ab_cdef;
    let a = m
        .absorb_words(Source::Rdseed, &[stuck], &mut sink(&mut n))
        .unwrap();
    assert_eq!((a.failures, a.state), (0, HealthState::Healthy));
    assert_eq!(m.mixer_stats().pending, Credit::from_bits(256));
    let a = m
        .absorb_words(Source::Rdseed, &[stuck], &mut sink(&mut n))
        .unwrap();
    assert_eq!((a.failures, a.state), (1, HealthState::Quarantined));
    let st = m.stats(Source::Rdseed);
    assert_eq!(st.health_failures, 1);
    assert_eq!(st.last_failure, Some(HealthTestKind::RepetitionCount));
    assert_eq!(
        st.credited,
        Credit::from_bits(256),
        "the failing word earned nothing"
    );
    let ms = m.mixer_stats();
    assert_eq!(
        (ms.pending, ms.forfeited),
        (Credit::ZERO, Credit::from_bits(256))
    );
    assert_eq!(n, 0);
}

#[test]
fn external_rct_cutoff_is_exact() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let (rct, _) = m.cutoffs(Source::External);
    assert_eq!(rct, 1 + 30_u32.div_ceil(8));
    let mut n = 0;
    let good: Vec<u8> = (0..2000u32).map(|i| (i * 37 + 1) as u8).collect();
    m.absorb_external(&good, &mut sink(&mut n)).unwrap();
    let last = good[1999];
    let v = last.wrapping_add(1);
    for _ in 1..rct {
        let a = m.absorb_external(&[v], &mut sink(&mut n)).unwrap();
        assert_eq!(a.failures, 0);
    }
    let a = m.absorb_external(&[v], &mut sink(&mut n)).unwrap();
    assert_eq!(a.failures, 1);
}

#[test]
fn biased_external_source_trips_the_apt_until_disabled() {
    // 0x00 with probability 1/2, never two in a row (so the RCT cannot see
    // it): every APT window that starts on a 0 fails, and three strikes
    // disable the source.
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut prev = 1u8;
    let biased: Vec<u8> = (0..1 << 16)
        .map(|_| {
            let r = rng.next_u32();
            prev = if prev != 0 && r & 1 == 0 {
                0
            } else {
                ((r >> 8) % 255 + 1) as u8
            };
            prev
        })
        .collect();
    let mut n = 0;
    let a = m.absorb_external(&biased, &mut sink(&mut n)).unwrap();
    assert_eq!((a.failures, a.state), (3, HealthState::Disabled));
    assert!(a.consumed < biased.len());
    let st = m.stats(Source::External);
    assert_eq!(st.last_failure, Some(HealthTestKind::AdaptiveProportion));
    assert_eq!(st.health_failures, 3);
    assert_eq!(
        m.absorb_external(&biased, &mut sink(&mut n)),
        Err(Error::SourceDisabled {
            source: Source::External
        })
    );
}

#[test]
fn quarantine_then_recovery_then_disable_through_the_mixer() {
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut n = 0;
    m.absorb_words(Source::Rdseed, &words(&mut rng, 1024), &mut sink(&mut n))
        .unwrap();
    assert_eq!(m.stats(Source::Rdseed).state, HealthState::Healthy);
    // Failure 1.
    let a = m
        .absorb_words(Source::Rdseed, &[5, 5], &mut sink(&mut n))
        .unwrap();
    assert_eq!(a.state, HealthState::Quarantined);
    let credited = m.stats(Source::Rdseed).credited;
    // A full clean window (512 words) earns nothing...
    let a = m
        .absorb_words(Source::Rdseed, &words(&mut rng, 512), &mut sink(&mut n))
        .unwrap();
    assert_eq!(a.state, HealthState::Healthy);
    assert_eq!(m.stats(Source::Rdseed).credited, credited);
    // ... and the next word earns 64 bits.
    m.absorb_words(Source::Rdseed, &words(&mut rng, 1), &mut sink(&mut n))
        .unwrap();
    assert_eq!(
        m.stats(Source::Rdseed).credited.units(),
        credited.units() + (64 << 16)
    );
    // Failures 2 and 3 (the third inside the quarantine): disabled, and
    // the rest of that batch is not consumed.
    m.absorb_words(Source::Rdseed, &[6, 6], &mut sink(&mut n))
        .unwrap();
    let a = m
        .absorb_words(Source::Rdseed, &[1, 2, 7, 7, 8, 9], &mut sink(&mut n))
        .unwrap();
    assert_eq!((a.consumed, a.state), (4, HealthState::Disabled));
    let st = m.stats(Source::Rdseed);
    assert_eq!((st.health_failures, st.state), (3, HealthState::Disabled));
    assert_eq!(
        m.absorb_words(Source::Rdseed, &[1, 2], &mut sink(&mut n)),
        Err(Error::SourceDisabled {
            source: Source::Rdseed
        })
    );
    // Other sources are unaffected.
    assert!(m.absorb_external(&[1, 2, 3], &mut sink(&mut n)).is_ok());
    // An operator reset restarts the start-up test.
    m.reset_source(Source::Rdseed);
    let a = m
        .absorb_words(Source::Rdseed, &words(&mut rng, 1024), &mut sink(&mut n))
        .unwrap();
    assert_eq!(a.state, HealthState::Healthy);
    assert_eq!(
        m.stats(Source::Rdseed).samples,
        1024 + 2 + 512 + 1 + 2 + 4 + 1024
    );
}

/// 10^7 good samples raise no alarm. False-alarm probability, with the
/// default alpha = 2^-30: external bytes (H = 8, RCT C = 5): each position
/// starts a run of 5 with probability 2^-32, so about 10^7 * 2^-32 = 2.3e-3
/// over the stream, plus 19531 APT windows at <= 2^-30 each (1.8e-5);
/// RDSEED words (H = 64, C = 2): 10^7 * 2^-64 = 5e-13. The streams are
/// seeded, so the outcome is reproducible.
#[test]
fn good_sources_raise_no_alarm_over_ten_million_samples() {
    let n: usize = if cfg!(miri) { 10_000 } else { 10_000_000 };
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let mut blocks = 0;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len());
        rng.fill_bytes(&mut buf[..k]);
        let a = m
            .absorb_external(&buf[..k], &mut sink(&mut blocks))
            .unwrap();
        assert_eq!(a.consumed, k);
        left -= k;
    }
    let st = m.stats(Source::External);
    assert_eq!((st.health_failures, st.state), (0, HealthState::Healthy));
    let startup = u64::from(STARTUP_SAMPLES);
    assert_eq!(blocks, (n as u64 - startup) * 8 / 320);

    let mut left = n;
    while left > 0 {
        let k = left.min(8192);
        let w = words(&mut rng, k);
        m.absorb_words(Source::Rdseed, &w, &mut sink(&mut blocks))
            .unwrap();
        left -= k;
    }
    let st = m.stats(Source::Rdseed);
    assert_eq!((st.health_failures, st.samples), (0, n as u64));
}

/// Interrupt timestamps with jittery deltas: no alarm over 10^6 events
/// (H = 1 bit per delta byte: C_rct = 31, far above what uniform low bytes
/// ever repeat; false-alarm probability < 10^6 * 2^-240).
#[test]
fn jittery_interrupts_raise_no_alarm_and_stuck_ones_do() {
    let n: usize = if cfg!(miri) { 5_000 } else { 1_000_000 };
    let mut m = Mixer::new(&MixerConfig::DEFAULT, &[0; 32]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut t = 0u64;
    let ts: Vec<u64> = (0..n)
        .map(|_| {
            t += 10_000 + (rng.next_u64() & 0xffff);
            t
        })
        .collect();
    let mut blocks = 0;
    m.absorb_words(Source::Interrupts, &ts, &mut sink(&mut blocks))
        .unwrap();
    let st = m.stats(Source::Interrupts);
    assert_eq!(st.health_failures, 0);
    assert_eq!(
        st.credited.units(),
        (n as u64 - u64::from(STARTUP_SAMPLES)) * 1024
    );
    // A perfectly periodic timer: constant deltas trip the RCT after C.
    let (rct, _) = m.cutoffs(Source::Interrupts);
    assert_eq!(rct, 31);
    let periodic: Vec<u64> = (1..=u64::from(rct)).map(|i| t + 1000 * i).collect();
    let a = m
        .absorb_words(
            Source::Interrupts,
            &periodic[..rct as usize - 1],
            &mut sink(&mut blocks),
        )
        .unwrap();
    assert_eq!(a.failures, 0);
    let a = m
        .absorb_words(
            Source::Interrupts,
            &periodic[rct as usize - 1..],
            &mut sink(&mut blocks),
        )
        .unwrap();
    assert_eq!(a.failures, 1);
}
