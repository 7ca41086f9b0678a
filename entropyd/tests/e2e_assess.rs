//! End-to-end tests of `assess` and of the credit it records: `get` shows
//! it, `generate` uses it, a stuck source gets none, bad input changes
//! nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

mod e2e_common;

use e2e_common::{Env, text};
use entropool::store::StateDir;
use entropool::{CreditRate, Source, UNITS_PER_BIT};
use entropyd::cmd_assess;
use entropyd::daemon;

fn credit_line(get: &str) -> &str {
    get.lines()
        .find(|l| l.starts_with("Interrupts Credit Bits Per Sample: "))
        .unwrap_or_else(|| panic!("no credit line in {get:?}"))
}

#[test]
fn a_stuck_source_is_recommended_zero_credit() {
    let env = Env::new();
    std::fs::create_dir_all(&env.state).unwrap();
    let state = StateDir::open(&env.state).unwrap();
    let mut out = Vec::new();
    let record = cmd_assess::assess_and_record(&[0x5a; 20_000], &state, &mut out).unwrap();
    assert_eq!(record.credit, CreditRate::ZERO);
    assert_eq!(record.min_entropy_micro_bits, 0);
    let report = text(&out);
    assert!(
        report.contains("Min-entropy: 0.000000 bits per sample"),
        "{report}"
    );
    assert!(
        report.contains("Recommended credit: 0.000000 bits"),
        "{report}"
    );
    // Recorded: run and generate now credit the interrupt source nothing.
    assert_eq!(state.load_credit().unwrap(), Some(record));
    let (mixer, _) = daemon::mixer_config(&state).unwrap();
    assert_eq!(mixer.source(Source::Interrupts).credit, CreditRate::ZERO);
    let get = text(&env.cmd(&["get"]).stdout);
    assert!(
        credit_line(&get).starts_with("Interrupts Credit Bits Per Sample: 0.000000 (entropyd assess: min-entropy 0.000000 bits per sample over 20000 samples)"),
        "{get}"
    );
}

#[test]
fn a_weak_source_gets_half_its_min_entropy() {
    // Two equally likely values, independent: 1 bit per sample at most;
    // the estimators' bounds (the compression estimate's most of all) put
    // it below.
    let env = Env::new();
    std::fs::create_dir_all(&env.state).unwrap();
    let state = StateDir::open(&env.state).unwrap();
    let mut x = 1u64;
    let samples: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x >> 63 == 0 { 0x10 } else { 0x11 }
        })
        .collect();
    let mut out = Vec::new();
    let r = cmd_assess::assess_and_record(&samples, &state, &mut out).unwrap();
    let h = r.min_entropy_micro_bits as f64 / 1e6;
    assert!((0.5..=1.0).contains(&h), "{h}");
    let credit = r.credit.units() as f64 / UNITS_PER_BIT as f64;
    assert!(
        credit <= h / 2.0 && credit > h / 2.0 - 1e-4,
        "{credit} vs {h}"
    );
    let (mixer, _) = daemon::mixer_config(&state).unwrap();
    let cfg = mixer.source(Source::Interrupts);
    assert_eq!(cfg.credit, r.credit);
    // Health cutoffs from the credited min-entropy (rounded up to 1/8 bit).
    let eighths = r.credit.units().div_ceil(UNITS_PER_BIT / 8);
    assert!((2..=4).contains(&eighths));
    assert_eq!(u64::from(cfg.health.min_entropy().eighths()), eighths);
}

#[test]
fn assess_collects_and_records_a_credit_within_the_cap() {
    let env = Env::new();
    let out = env.cmd(&["assess", "--source=interrupts", "--count=20000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Not a terminal: no progress line.
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for name in [
        "most common value",
        "t-tuple",
        "LRS",
        "multi-MCW",
        "lag",
        "multi-MMC",
        "LZ78Y",
        "H_original",
        "Min-entropy",
        "Recommended credit",
    ] {
        assert!(report.contains(name), "{name} missing: {report}");
    }
    let state = StateDir::open(&env.state).unwrap();
    let r = state.load_credit().unwrap().unwrap();
    assert!(r.credit.units() <= UNITS_PER_BIT);
    assert!(
        u128::from(r.credit.units()) * 2_000_000
            <= u128::from(r.min_entropy_micro_bits) * u128::from(UNITS_PER_BIT)
    );
    assert_eq!(r.samples, 20_000);
    // generate runs on the recorded credit.
    let g = env.cmd(&["generate", "--sources=1", "--full-entropy", "--bytes=64"]);
    if r.credit.units() > 0 {
        assert!(g.status.success(), "{}", text(&g.stderr));
        assert_eq!(g.stdout.len(), 64);
    }
}

#[test]
fn bad_assess_input_is_refused_and_records_nothing() {
    let env = Env::new();
    for args in [
        &["assess", "--source=rdseed"][..],
        &["assess", "--source=bogus"],
        &["assess", "--source=interrupts", "--count=100"],
        &["assess", "--source=interrupts", "--count=10000001"],
    ] {
        let out = env.cmd(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert!(!env.state.join(StateDir::CREDIT_FILE).exists());
    }
    let out = env.cmd(&["assess", "--source=interrupts", "--count=100"]);
    assert!(
        text(&out.stderr).contains("4096..=10000000"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_corrupt_credit_record_is_an_error_naming_it() {
    let env = Env::new();
    std::fs::create_dir_all(&env.state).unwrap();
    // A credit above half the recorded min-entropy is not accepted.
    std::fs::write(
        env.state.join(StateDir::CREDIT_FILE),
        "Credit Units Per Sample: 65536\nAssessed Min-Entropy Micro-Bits Per Sample: 1000000\nAssessed Samples: 5000\n",
    )
    .unwrap();
    let out = env.cmd(&["get"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(StateDir::CREDIT_FILE),
        "{}",
        text(&out.stderr)
    );
    let g = env.cmd(&["generate", "--bytes=32"]);
    assert_eq!(g.status.code(), Some(1));
    assert!(g.stdout.is_empty());
}

#[test]
fn samples_are_fast_and_exact() {
    let env = Env::new();
    let out = env.cmd(&["samples", "--source=interrupts", "--count=300000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 300_000);
    assert!(out.stderr.is_empty());
    let mut seen = [false; 256];
    out.stdout.iter().for_each(|&b| seen[usize::from(b)] = true);
    assert!(seen.iter().filter(|&&s| s).count() >= 8);
}
