//! The SP 800-90B restart test (3.1.4) of `entropool::assess`.
//!
//! The reference matrix (restart `i` is the top 3 bits of splitmix64 seeded
//! with `1000 + i`) is rebuilt by `tests/vectors/assess_reference.py
//! --restart`, whose NIST estimates of its row and column data sets are the
//! `restart-rows` / `restart-cols` lines of `tests/vectors/assess_reference.txt`
//! (PyPI `sp800-90b` 0.1.1, which has no restart test itself: the sanity
//! check's cutoff is the standard's formula, checked here by hand).

#![cfg(feature = "alloc")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entropool::Error;
use entropool::assess::{
    Estimates, RESTART_SAMPLES, RESTARTS, RestartFailure, restart_test, sanity_cutoff,
};

const TOLERANCE: f64 = 1e-6;

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The reference matrix: 3-bit IID-like samples, one stream per restart.
fn iid_matrix() -> Vec<u8> {
    let mut m = Vec::with_capacity(RESTARTS * RESTART_SAMPLES);
    for i in 0..RESTARTS as u64 {
        let mut g = SplitMix64(1000 + i);
        m.extend((0..RESTART_SAMPLES).map(|_| u8::try_from(g.next() >> 61).unwrap()));
    }
    m
}

fn pick(e: &Estimates, name: &str) -> Option<f64> {
    match name {
        "most_common" => e.most_common,
        "collision" => e.collision,
        "markov" => e.markov,
        "compression" => e.compression,
        "t_tuple" => e.t_tuple,
        "lrs" => e.lrs,
        "multi_mcw" => e.multi_mcw,
        "lag" => e.lag,
        "multi_mmc" => e.multi_mmc,
        "lz78y" => e.lz78y,
        other => panic!("unknown estimator {other}"),
    }
}

/// The NIST values for `set` as (estimator, value) pairs.
fn reference(set: &str) -> Vec<(String, Option<f64>)> {
    include_str!("vectors/assess_reference.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 6 && f[0] == set)
        .map(|f| {
            assert_eq!((f[1], f[2], f[3]), ("3", "1000000", "original"));
            (
                f[4].to_owned(),
                (f[5] != "none").then(|| f[5].parse().unwrap()),
            )
        })
        .collect()
}

fn check_against_nist(set: &str, ours: &Estimates) -> Vec<String> {
    let rows = reference(set);
    assert_eq!(rows.len(), 7, "{set}: reference lines missing");
    let mut failures = Vec::new();
    for (name, nist) in rows {
        let mine = pick(ours, &name);
        let ok = match (mine, nist) {
            (Some(x), Some(y)) => (x - y).abs() <= TOLERANCE,
            (None, None) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!("{set} {name}: ours {mine:?}, NIST {nist:?}"));
        }
    }
    // A 3-bit alphabet: the binary-only estimators do not run.
    assert_eq!(
        (ours.collision, ours.markov, ours.compression),
        (None, None, None)
    );
    failures
}

#[test]
fn iid_restarts_pass_agree_with_nist_and_support_h_i() {
    let m = iid_matrix();
    let h_i = 2.5;
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, h_i).unwrap();
    assert!(r.passed(), "{r:?}");
    assert!(f64::from(r.max_count) <= r.cutoff);
    let mut failures = check_against_nist("restart-rows", r.rows.as_ref().unwrap());
    failures.extend(check_against_nist(
        "restart-cols",
        r.columns.as_ref().unwrap(),
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (h_r, h_c) = (r.h_rows.unwrap(), r.h_columns.unwrap());
    assert!(h_r > h_i && h_c > h_i, "H_r {h_r}, H_c {h_c}");
    assert_eq!(r.supported, h_i, "min(H_r, H_c, H_I) is H_I here");

    // With H_I at the symbol width, the row/column estimates (about 2.8)
    // are what the test supports.
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, 3.0).unwrap();
    assert!(r.passed(), "{r:?}");
    assert_eq!(r.supported, h_r.min(h_c));
    assert!(r.supported < 3.0 && r.supported > 2.7, "{}", r.supported);
}

#[test]
fn restarts_that_repeat_one_sequence_fail_the_sanity_check() {
    // Every restart gives the same 1000 samples: each column is constant.
    let row: Vec<u8> = iid_matrix()[..RESTART_SAMPLES].to_vec();
    let m: Vec<u8> = (0..RESTARTS).flat_map(|_| row.iter().copied()).collect();
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, 2.5).unwrap();
    assert!(!r.passed());
    match r.failure {
        Some(RestartFailure::Sanity {
            column,
            index,
            count,
            ..
        }) => {
            assert!(column, "a column fails, not a row");
            assert_eq!((index, count), (0, 1000));
        }
        other => panic!("expected a sanity failure, got {other:?}"),
    }
    assert_eq!(r.supported, 0.0);
    assert!(
        r.rows.is_none() && r.columns.is_none(),
        "no estimate after a failed sanity check"
    );
}

#[test]
fn one_stuck_column_fails_the_sanity_check() {
    let mut m = iid_matrix();
    // Sample 417 of every restart is always 5 (say, a counter's stuck bit).
    m.iter_mut()
        .skip(417)
        .step_by(RESTART_SAMPLES)
        .for_each(|s| *s = 5);
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, 2.5).unwrap();
    assert_eq!(
        r.failure,
        Some(RestartFailure::Sanity {
            column: true,
            index: 417,
            count: 1000,
            cutoff: r.cutoff,
        })
    );
    assert_eq!(r.supported, 0.0);
}

#[test]
fn one_biased_restart_fails_on_its_row() {
    let mut m = iid_matrix();
    // Restart 9 gives 5 in 400 of its 1000 samples: a row count of about 450
    // against a cutoff near 235 for H_I = 2.5.
    for (j, s) in m[9 * RESTART_SAMPLES..10 * RESTART_SAMPLES]
        .iter_mut()
        .enumerate()
    {
        if j % 5 < 2 {
            *s = 5;
        }
    }
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, 2.5).unwrap();
    match r.failure {
        Some(RestartFailure::Sanity {
            column,
            index,
            count,
            ..
        }) => {
            assert!(!column);
            assert_eq!(index, 9);
            assert!(count >= 400, "{count}");
        }
        other => panic!("expected a row sanity failure, got {other:?}"),
    }
}

#[test]
fn predictable_restarts_pass_the_sanity_check_but_fail_validation() {
    // Row i is (i + j) mod 8: every value occurs 125 times in each row and
    // column, so the counts are fine, but each sequence is predictable.
    let m: Vec<u8> = (0..RESTARTS)
        .flat_map(|i| (0..RESTART_SAMPLES).map(move |j| u8::try_from((i + j) % 8).unwrap()))
        .collect();
    let r = restart_test(&m, RESTARTS, RESTART_SAMPLES, 3, 3.0).unwrap();
    assert_eq!(r.max_count, 125);
    assert_eq!(r.failure, Some(RestartFailure::Validation), "{r:?}");
    assert!(r.h_rows.unwrap().min(r.h_columns.unwrap()) < 1.5);
    assert_eq!(r.supported, 0.0);
}

#[test]
fn the_cutoff_is_the_standards_formula() {
    // k = 8, alpha = 0.01 / 16000 = 6.25e-7, Z_(1-alpha) = 4.8475...,
    // p = 2^-2.5: U = 1000 p + Z sqrt(1000 p (1 - p)).
    let p = 2f64.powf(-2.5);
    let z = 4.847_542_911_544_655; // Python: -NormalDist().inv_cdf(6.25e-7)
    let want = 1000.0 * p + z * (1000.0 * p * (1.0 - p)).sqrt();
    let got = sanity_cutoff(2.5, 8);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // k = 2, H_I = 1: alpha = 2.5e-6, Z = -NormalDist().inv_cdf(2.5e-6).
    let want = 500.0 + 4.564_787_730_280_884 * (250.0f64).sqrt();
    assert!((sanity_cutoff(1.0, 2) - want).abs() < 1e-6);
}

#[test]
fn bad_shapes_and_values_are_refused() {
    let m = vec![0u8; RESTARTS * RESTART_SAMPLES];
    let param = |e: Error| match e {
        Error::InvalidValue { param, .. } => param,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        param(restart_test(&m, 999, 1000, 3, 1.0).unwrap_err()),
        "restarts"
    );
    assert_eq!(
        param(restart_test(&m, 1000, 1001, 3, 1.0).unwrap_err()),
        "restart-samples"
    );
    assert_eq!(
        param(restart_test(&m[1..], 1000, 1000, 3, 1.0).unwrap_err()),
        "samples"
    );
    assert_eq!(
        param(restart_test(&m, 1000, 1000, 0, 1.0).unwrap_err()),
        "bits-per-symbol"
    );
    assert_eq!(
        param(restart_test(&m, 1000, 1000, 9, 1.0).unwrap_err()),
        "bits-per-symbol"
    );
    for h in [-0.1, 3.5, f64::NAN, f64::INFINITY] {
        assert_eq!(
            param(restart_test(&m, 1000, 1000, 3, h).unwrap_err()),
            "initial-entropy",
            "H_I {h}"
        );
    }
    let mut wide = m.clone();
    wide[123_456] = 8;
    assert_eq!(
        param(restart_test(&wide, 1000, 1000, 3, 1.0).unwrap_err()),
        "symbol"
    );
    // A constant matrix is valid input: it fails the sanity check.
    let r = restart_test(&m, 1000, 1000, 3, 1.0).unwrap();
    assert!(matches!(r.failure, Some(RestartFailure::Sanity { .. })));
}
