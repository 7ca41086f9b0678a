//! The multi-lane backend against the portable one, and both against the
//! plain model (the incremental path: one frame, then `finish`, per
//! block), on random keys, frame sizes, frame counts (whole groups of
//! lanes and partial ones), trailing partial frames, and a sink that
//! refuses a block at a random point.

use proptest::prelude::*;
use std::vec::Vec;

use super::{Conditioner, FrameData, ONE_SHOT_MAX};
use crate::crypto::sha256::{PORTABLE_ONLY, lanes_available};
use crate::mixer::Block;

/// Blocks out of `one_shot_blocks` (the sink refuses the `refuse`-th, as
/// the pool does: it keeps that one) and the blocks of the next
/// `more` frames through the incremental path (where it carries on).
fn run<T: FrameData>(
    portable: bool,
    key: &[u8; 32],
    xs: &[T],
    per: usize,
    refuse: usize,
    more: usize,
    frame: impl Fn(&mut Conditioner, &[T]),
) -> (usize, Vec<Block>) {
    let mut c = Conditioner::new(key);
    let mut out = Vec::new();
    // The one-shot path asks at each call which backend may run.
    PORTABLE_ONLY.with(|p| p.set(portable));
    let done = c.one_shot_blocks(3, xs, per, |b| {
        out.push(b);
        out.len() != refuse
    });
    PORTABLE_ONLY.with(|p| p.set(false));
    assert!(c.pipe_is_clear(), "the pipeline is wiped after each call");
    assert_eq!(c.counter(), u64::try_from(done).unwrap());
    let rest = xs.get(done * per..).unwrap_or(&[]);
    for f in rest.chunks_exact(per).take(more) {
        frame(&mut c, f);
        out.push(c.finish());
    }
    (done, out)
}

/// The model: every block through `frame` and `finish`.
fn model<T: FrameData>(
    key: &[u8; 32],
    xs: &[T],
    per: usize,
    frames: usize,
    frame: impl Fn(&mut Conditioner, &[T]),
) -> Vec<Block> {
    let mut c = Conditioner::new(key);
    xs.chunks_exact(per)
        .take(frames)
        .map(|f| {
            frame(&mut c, f);
            c.finish()
        })
        .collect()
}

/// Checks both backends against the model on one input.
fn check<T: FrameData>(
    key: &[u8; 32],
    xs: &[T],
    per: usize,
    refuse: usize,
    frame: impl Fn(&mut Conditioner, &[T]) + Copy,
) -> Result<(), TestCaseError> {
    let whole = xs.len() / per;
    let want_done = if refuse == 0 {
        whole
    } else {
        whole.min(refuse)
    };
    let more = whole - want_done;
    let want = model(key, xs, per, whole, frame);
    let portable = run(true, key, xs, per, refuse, more, frame);
    prop_assert_eq!(portable.0, want_done);
    prop_assert_eq!(&portable.1, &want);
    if lanes_available() {
        let lanes = run(false, key, xs, per, refuse, more, frame);
        prop_assert_eq!(lanes.0, want_done);
        prop_assert_eq!(&lanes.1, &want);
    } else {
        crate::hw_support::skip(
            "sha",
            &"CPUID reports no SHA extensions (the Lanes backend is the portable one here)",
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    /// Byte frames of 1..=42 bytes (40, the wide path's, half the time); up
    /// to 19 frames plus a partial one.
    #[test]
    fn byte_frames_equal_on_both_backends(key in any::<[u8; 32]>(),
                                          per in prop_oneof![Just(40usize), 1usize..=ONE_SHOT_MAX],
                                          frames in 0usize..20,
                                          partial in 0usize..42,
                                          refuse in 0usize..22,
                                          seed in any::<u64>()) {
        let len = per * frames + partial % per;
        let mut s = seed;
        let xs: Vec<u8> = (0..len).map(|_| crate::hw::fake::splitmix64(&mut s).to_le_bytes()[0]).collect();
        check(&key, &xs, per, refuse, |c, f| c.frame_bytes(3, f))?;
    }

    /// Word frames of 1..=5 words (5, the wide path's, half the time).
    #[test]
    fn word_frames_equal_on_both_backends(key in any::<[u8; 32]>(),
                                          per in prop_oneof![Just(5usize), 1usize..=ONE_SHOT_MAX / 8],
                                          frames in 0usize..20,
                                          partial in 0usize..5,
                                          refuse in 0usize..22,
                                          seed in any::<u64>()) {
        let len = per * frames + partial % per;
        let mut s = seed;
        let xs: Vec<u64> = (0..len).map(|_| crate::hw::fake::splitmix64(&mut s)).collect();
        check(&key, &xs, per, refuse, |c, f| c.frame_words(3, f))?;
    }
}

/// Every run boundary of the wide path, exhaustively: 0 to 40 fully
/// credited frames (two and a half runs of `RUN`), with or without a
/// partial frame after them, refused at every block (or never), as bytes
/// and as words. The random cases above reach a refusal right at a run's
/// end only now and then.
#[test]
#[cfg_attr(miri, ignore = "thousands of cases; the property tests cover miri")]
fn wide_runs_refused_anywhere_equal_the_model() {
    let key = [0x5Au8; 32];
    let mut s = 7u64;
    let bytes: Vec<u8> = (0..40 * 40 + 39)
        .map(|_| crate::hw::fake::splitmix64(&mut s).to_le_bytes()[0])
        .collect();
    let words: Vec<u64> = (0..5 * 40 + 4)
        .map(|_| crate::hw::fake::splitmix64(&mut s))
        .collect();
    for frames in 0..=40usize {
        for partial in [0usize, 1] {
            for refuse in 0..=42usize {
                let b = bytes.get(..frames * 40 + partial * 39).unwrap_or_default();
                let w = words.get(..frames * 5 + partial * 4).unwrap_or_default();
                let r = check(&key, b, 40, refuse, |c, f| c.frame_bytes(3, f))
                    .and_then(|()| check(&key, w, 5, refuse, |c, f| c.frame_words(3, f)));
                assert!(r.is_ok(), "{frames} frames, partial {partial}, refuse {refuse}: {r:?}");
            }
        }
    }
}

/// The lanes really run here (a CPU with the SHA extensions picks them),
/// unless a test asked for the portable path.
#[test]
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn the_lanes_run_with_the_sha_extensions() {
    let want = crate::hw::has_sha_ni();
    if !want {
        crate::hw_support::skip("sha", &"CPUID reports no SHA extensions");
    }
    assert_eq!(lanes_available(), want);
    PORTABLE_ONLY.with(|p| p.set(true));
    assert!(!lanes_available(), "a test can pin the portable path");
    PORTABLE_ONLY.with(|p| p.set(false));
}
