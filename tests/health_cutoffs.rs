//! SP 800-90B cutoffs: the standard's table, and an independent
//! floating-point computation of CRITBINOM (test-only; the library uses no
//! floating point).

// Test code: unwraps and panics are the assertions; casts are on small
// known-range values.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_lossless
)]

use entropool::MinEntropy;
use entropool::health::{APT_WINDOW, APT_WINDOW_BINARY, apt_cutoff, rct_cutoff};

fn h(eighths: u32) -> MinEntropy {
    MinEntropy::from_eighths(eighths).unwrap()
}

#[test]
fn apt_matches_the_standards_table() {
    // SP 800-90B section 4.4.2, Table 2 (alpha = 2^-20, W = 512).
    for (eighths, want) in [(4, 410), (8, 311), (16, 177), (32, 62), (64, 13)] {
        assert_eq!(
            apt_cutoff(h(eighths), APT_WINDOW, 20),
            want,
            "H = {eighths}/8"
        );
    }
}

#[test]
fn rct_is_one_plus_ceil_alpha_over_h() {
    for alpha in [20u32, 30, 40, 64] {
        for eighths in 1..=512u32 {
            let hb = f64::from(eighths) / 8.0;
            let want = 1.0 + (f64::from(alpha) / hb).ceil();
            assert_eq!(
                f64::from(rct_cutoff(h(eighths), alpha)),
                want,
                "alpha 2^-{alpha}, H {hb}"
            );
        }
    }
    // SP 800-90B 4.4.1 example: H = 2 (alpha 2^-20) gives C = 11.
    assert_eq!(rct_cutoff(h(16), 20), 11);
}

/// Smallest k with P(X > k) <= alpha for X ~ Bin(w, p), in f64 log space;
/// also returns the tail at k and at k - 1 to detect near-ties.
fn critbinom_f64(w: u32, p: f64, alpha: f64) -> (u32, f64, f64) {
    let lp = p.ln();
    let lq = (-p).ln_1p();
    let mut ln_pmf = Vec::with_capacity(w as usize + 1);
    let mut cur = f64::from(w) * lq;
    ln_pmf.push(cur);
    for k in 0..w {
        cur += (f64::from(w - k) / f64::from(k + 1)).ln() + lp - lq;
        ln_pmf.push(cur);
    }
    // tail[k] = P(X > k)
    let mut tail = vec![0.0f64; w as usize + 1];
    let mut acc = 0.0;
    for k in (0..w as usize).rev() {
        acc += ln_pmf[k + 1].exp();
        tail[k] = acc;
    }
    let k = (0..=w as usize).find(|&k| tail[k] <= alpha).unwrap();
    let prev = if k == 0 { 1.0 } else { tail[k - 1] };
    (u32::try_from(k).unwrap(), tail[k], prev)
}

#[test]
fn apt_matches_an_independent_float_computation() {
    let mut eighths: Vec<u32> = (1..=64).collect();
    eighths.extend([72, 80, 96, 128, 160, 200, 256, 384, 512]);
    let mut checked = 0;
    for &e in &eighths {
        let p = 2f64.powf(-f64::from(e) / 8.0);
        for alpha_exp in [20i32, 30, 40] {
            let alpha = 2f64.powi(-alpha_exp);
            for w in [APT_WINDOW, APT_WINDOW_BINARY] {
                if w == APT_WINDOW_BINARY && e > 8 {
                    continue; // binary samples carry at most 1 bit
                }
                let (k, at, before) = critbinom_f64(w, p, alpha);
                let want = (1 + k).max(2);
                let got = apt_cutoff(h(e), w, alpha_exp.unsigned_abs());
                let near_tie =
                    (at / alpha - 1.0).abs() < 1e-9 || (before / alpha - 1.0).abs() < 1e-9;
                if near_tie {
                    assert!(got.abs_diff(want) <= 1, "H {e}/8 a {alpha_exp} W {w}");
                } else {
                    assert_eq!(got, want, "H {e}/8, alpha 2^-{alpha_exp}, W {w}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn apt_cutoff_is_monotone_in_h_and_alpha() {
    for alpha in [30u32, 40] {
        let mut last = u32::MAX;
        for e in 1..=512 {
            let c = apt_cutoff(h(e), APT_WINDOW, alpha);
            assert!(c <= last && c >= 2);
            last = c;
        }
    }
    for e in [4u32, 8, 64] {
        assert!(apt_cutoff(h(e), APT_WINDOW, 40) >= apt_cutoff(h(e), APT_WINDOW, 30));
    }
}

/// The cutoffs a configuration computes once (at compile time for a
/// constant one) are the formula's, for every `H`, several alphas and each
/// sample width the tester accepts.
#[test]
fn testers_use_the_cutoffs_their_configuration_computed() {
    use entropool::health::{HealthConfig, HealthTest};
    let mut checked = 0;
    for alpha in [30u32, 31, 40, 64] {
        for e in 1..=512u32 {
            let cfg = HealthConfig::new(h(e), alpha).unwrap();
            for bits in [1u32, 8, 64] {
                let window = if bits == 1 {
                    APT_WINDOW_BINARY
                } else {
                    APT_WINDOW
                };
                match HealthTest::new(cfg, bits) {
                    Ok(t) => {
                        assert_eq!(t.rct_cutoff(), rct_cutoff(h(e), alpha), "H {e}/8");
                        assert_eq!(t.window(), window);
                        assert_eq!(
                            t.apt_cutoff(),
                            apt_cutoff(h(e), window, alpha),
                            "H {e}/8, alpha 2^-{alpha}, {bits}-bit samples"
                        );
                        checked += 1;
                    }
                    // Only an `H` above the sample width is refused.
                    Err(_) => assert!(e > bits * 8, "H {e}/8, {bits} bits"),
                }
            }
        }
    }
    assert_eq!(checked, 4 * (8 + 64 + 512));
    // The default alpha, and the constant default configuration.
    let d = HealthConfig::with_default_alpha(h(8));
    assert_eq!(d, HealthConfig::new(h(8), 30).unwrap());
    for s in entropool::Source::ALL {
        let cfg = entropool::mixer::MixerConfig::DEFAULT.source(s).health;
        let t = HealthTest::new(cfg, entropool::mixer::sample_bits(s)).unwrap();
        let want = apt_cutoff(cfg.min_entropy(), APT_WINDOW, cfg.alpha_exp());
        assert_eq!(
            (t.rct_cutoff(), t.apt_cutoff()),
            (rct_cutoff(cfg.min_entropy(), cfg.alpha_exp()), want),
            "{s:?}"
        );
    }
}
