//! The CPU execution-jitter collector (`hw::cpu_jitter`) and the credit an
//! assessment turns into (`assess::recommended_credit`,
//! `assess::interrupts_config`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entropool::assess::{interrupts_config, recommended_credit};
use entropool::mixer::{Block, Credit, Mixer};
use entropool::testing::{FakeCpu, FakeOutput};
use entropool::{
    CPU_JITTER_SCRATCH_MIN, Cpu, CpuJitter, CreditRate, HealthState, MixerConfig, Source,
    UNITS_PER_BIT,
};

fn fake_with_step(step: u64) -> FakeCpu {
    let cpu = FakeCpu::new(FakeOutput::Fail, FakeOutput::Fail);
    cpu.set_cycles(1_000);
    cpu.set_cycles_step(step);
    cpu
}

/// A mixer whose interrupt source is credited `credit` per sample, with the
/// health cutoffs that credit implies.
fn mixer(credit: CreditRate) -> Mixer {
    let mut cfg = MixerConfig::DEFAULT;
    cfg.set(Source::Interrupts, interrupts_config(credit).unwrap())
        .unwrap();
    Mixer::new(&cfg, &[7; 32]).unwrap()
}

#[test]
fn a_constant_step_counter_trips_the_health_tests_and_credits_nothing() {
    let cpu = fake_with_step(40);
    let mut scratch = [0u8; 4096];
    let mut collector = CpuJitter::new(&cpu, &mut scratch).unwrap();
    // The most a source may earn: 1 bit per sample.
    let mut m = mixer(CreditRate::from_bits(1));
    let mut blocks = 0u32;
    let mut sink = |_b: Block| -> Result<(), Block> {
        blocks += 1;
        Ok(())
    };
    let mut ts = [0u64; 256];
    for _ in 0..64 {
        collector.fill_timestamps(&mut ts);
        match m.absorb_words(Source::Interrupts, &ts, &mut sink) {
            Ok(_) | Err(entropool::Error::SourceDisabled { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let st = m.stats(Source::Interrupts);
    assert!(st.health_failures >= 1, "no health failure: {st:?}");
    assert_ne!(st.state, HealthState::Healthy);
    assert_eq!(st.credited, Credit::ZERO);
    assert_eq!(m.mixer_stats().pending, Credit::ZERO);
    assert_eq!(blocks, 0);
}

#[test]
fn a_jittery_counter_passes_and_earns_blocks() {
    // The same run with a counter whose steps vary (a SplitMix64 stream
    // standing in for jitter) earns blocks: the constant-step failure
    // above is the counter's, not the collector's.
    let cpu = FakeCpu::new(FakeOutput::Fail, FakeOutput::Fail);
    let mut scratch = [0u8; 4096];
    let mut m = mixer(CreditRate::from_bits(1));
    let mut blocks = 0u32;
    let mut sink = |_b: Block| -> Result<(), Block> {
        blocks += 1;
        Ok(())
    };
    let mut state = 3u64;
    let mut ts = [0u64; 256];
    let mut collector = CpuJitter::new(&cpu, &mut scratch).unwrap();
    for _ in 0..64 {
        for t in &mut ts {
            cpu.advance_cycles(entropool::testing::splitmix64(&mut state) & 0xFFFF);
            *t = collector.timestamp();
        }
        m.absorb_words(Source::Interrupts, &ts, &mut sink).unwrap();
    }
    let st = m.stats(Source::Interrupts);
    assert_eq!(st.health_failures, 0);
    assert!(blocks >= 40, "{blocks} blocks");
}

#[test]
fn the_raw_sample_export_is_the_low_byte_of_each_delta() {
    let cpu = fake_with_step(0x1_2345);
    let mut scratch = [0u8; CPU_JITTER_SCRATCH_MIN];
    let mut collector = CpuJitter::new(&cpu, &mut scratch).unwrap();
    let mut samples = [0u8; 100];
    collector.fill_samples(&mut samples);
    assert!(samples.iter().all(|&s| s == 0x45), "{samples:?}");
    cpu.set_cycles_step(3);
    collector.fill_samples(&mut samples);
    // The first delta spans the last read at the old step.
    assert!(samples[1..].iter().all(|&s| s == 3), "{samples:?}");
}

#[test]
fn too_little_scratch_is_refused() {
    let cpu = fake_with_step(1);
    let mut scratch = [0u8; CPU_JITTER_SCRATCH_MIN - 1];
    assert!(CpuJitter::new(&cpu, &mut scratch).is_err());
}

#[test]
fn the_real_counter_gives_varied_deltas() {
    let cpu = entropool::RealCpu::new();
    if cpu.cycles() == 0 {
        eprintln!("SKIPPED: this target has no cycle counter");
        return;
    }
    let mut scratch = vec![0u8; 64 * 1024];
    let mut collector = CpuJitter::new(cpu, &mut scratch).unwrap();
    // 200 000 samples: with 20 000 a family 0x19 Zen 4 guest showed only
    // 7 distinct low bytes in one run of five (its deltas vary rarely but
    // widely); with 200 000, 40 to 56, loaded or not.
    let mut samples = vec![0u8; 200_000];
    collector.fill_samples(&mut samples);
    let mut seen = [false; 256];
    samples.iter().for_each(|&s| seen[usize::from(s)] = true);
    // Jitter spreads the low byte; a stuck or coarse counter would not.
    let distinct = seen.iter().filter(|&&x| x).count();
    assert!(distinct >= 8, "{distinct} distinct low bytes");
}

#[test]
fn the_recommended_credit_is_half_the_assessment_capped() {
    let cap = CreditRate::from_bits(1);
    assert_eq!(recommended_credit(0.0, cap), CreditRate::ZERO);
    assert_eq!(recommended_credit(-1.0, cap), CreditRate::ZERO);
    assert_eq!(recommended_credit(f64::NAN, cap), CreditRate::ZERO);
    assert_eq!(
        recommended_credit(1.0, cap),
        CreditRate::from_units(UNITS_PER_BIT / 2)
    );
    // 0.3 bits: half is 0.15 bits = 9830.4 units, rounded down.
    assert_eq!(recommended_credit(0.3, cap), CreditRate::from_units(9830));
    assert_eq!(recommended_credit(5.0, cap), cap);
    assert_eq!(
        recommended_credit(8.0, CreditRate::from_bits(8)),
        CreditRate::from_bits(4)
    );
}

#[test]
fn the_health_cutoffs_follow_the_credit() {
    let one = interrupts_config(CreditRate::from_bits(1)).unwrap();
    assert_eq!(one.health.min_entropy().eighths(), 8);
    let low = interrupts_config(CreditRate::from_units(9830)).unwrap();
    assert_eq!(low.health.min_entropy().eighths(), 2);
    assert!(interrupts_config(CreditRate::from_bits(2)).is_err());
    let zero = interrupts_config(CreditRate::ZERO).unwrap();
    assert_eq!(zero.credit, CreditRate::ZERO);
    // Lower credit, looser cutoffs: the RCT allows more repeats.
    let m_one = mixer(CreditRate::from_bits(1));
    let m_low = mixer(CreditRate::from_units(9830));
    assert!(m_low.cutoffs(Source::Interrupts).0 > m_one.cutoffs(Source::Interrupts).0);
}

/// Every assessment's record passes its own check: the credit was once
/// computed from the exact min-entropy and the check from the recorded,
/// rounded-down one, so one `entropyd assess` in about thirty wrote a
/// record that the next start refused as corrupt.
#[test]
fn every_assessment_record_parses_back() {
    use entropool::assess::AssessedCredit;
    // Just above a whole unit: the rounded-down micro-bits fall below it.
    // Half of it is 8090.01 units; the record keeps 246887 micro-bits,
    // half of which is 8089.9 units.
    let h = (8090.0 + 0.01) / 32768.0;
    let r = AssessedCredit::from_assessment(h, 20_000);
    assert_eq!(r.min_entropy_micro_bits, 246_887);
    assert_eq!(r.credit, CreditRate::from_units(8089));
    let mut seed = 1u64;
    for _ in 0..100_000 {
        let x = u32::try_from(entropool::testing::splitmix64(&mut seed) >> 32).unwrap();
        let h = f64::from(x) / f64::from(u32::MAX) * 3.0;
        let r = AssessedCredit::from_assessment(h, 20_000);
        let mut text = String::new();
        r.write_text(&mut text).unwrap();
        assert_eq!(AssessedCredit::parse_text(&text), Ok(r), "h = {h}");
        // Never more than half the exact assessment either.
        assert!(f64::from(u32::try_from(r.credit.units()).unwrap()) <= h / 2.0 * 65536.0);
    }
}

#[test]
fn the_credit_record_round_trips_and_refuses_bad_text() {
    use entropool::assess::AssessedCredit;
    let r = AssessedCredit::from_assessment(1.571_521, 1_000_000);
    assert_eq!(r.credit, CreditRate::from_units(51_495));
    assert_eq!(r.min_entropy_micro_bits, 1_571_521);
    let mut text = String::new();
    r.write_text(&mut text).unwrap();
    assert_eq!(AssessedCredit::parse_text(&text).unwrap(), r);
    let good = "Credit Units Per Sample: 100\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7\n";
    assert!(AssessedCredit::parse_text(good).is_ok());
    for bad in [
        "",
        "Credit Units Per Sample: 100\nAssessed Samples: 7\n",
        "Credit Units Per Sample: 100\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7",
        "Credit Units Per Sample: 100\nCredit Units Per Sample: 100\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7\n",
        "Credit Units Per Sample: -1\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7\n",
        // 200 units is more than half of 0.005 bit (163.84 units).
        "Credit Units Per Sample: 200\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7\n",
        // Above the interrupt source's cap of 1 bit.
        "Credit Units Per Sample: 65537\nAssessed Min-Entropy Micro-Bits Per Sample: 8000000\nAssessed Samples: 7\n",
        "Other: 1\nCredit Units Per Sample: 100\nAssessed Min-Entropy Micro-Bits Per Sample: 5000\nAssessed Samples: 7\n",
    ] {
        assert!(AssessedCredit::parse_text(bad).is_err(), "{bad:?}");
    }
}
