//! HMAC_DRBG / Hash_DRBG: every limit is an error (not a panic) that leaves
//! the state unchanged, secrets are redacted, and a pinned long-stream digest
//! catches any accidental change of output (derived independently from the
//! `hmac-drbg` crate, which re-implements HMAC_DRBG over `sha2` 0.9).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entropool::drbg::{MAX_INPUT_LEN, MAX_REQUEST_LEN, MAX_RESEED_INTERVAL};
use entropool::{Drbg, Error, HashDrbg, HmacDrbg};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

const E: [u8; 32] = [0x11; 32];
const N: [u8; 16] = [0x22; 16];

fn limits<D: Drbg + core::fmt::Debug>(name: &str) {
    let long = vec![0u8; MAX_INPUT_LEN + 1];
    let max = vec![0u8; MAX_INPUT_LEN];
    // Instantiate.
    assert_eq!(
        D::instantiate(&[0; 31], &N, b"").err(),
        Some(Error::DrbgEntropyTooShort)
    );
    assert_eq!(
        D::instantiate(&[0; 32], &[0; 15], b"").err(),
        Some(Error::DrbgEntropyTooShort)
    );
    assert!(
        D::instantiate(&[0; 48], b"", b"").is_ok(),
        "48 bytes of entropy need no nonce"
    );
    assert_eq!(
        D::instantiate(&long, &N, b"").err(),
        Some(Error::DrbgInputTooLong)
    );
    assert_eq!(
        D::instantiate(&E, &long, b"").err(),
        Some(Error::DrbgInputTooLong)
    );
    assert_eq!(
        D::instantiate(&E, &N, &long).err(),
        Some(Error::DrbgInputTooLong)
    );
    assert!(D::instantiate(&max, &max, &max).is_ok());

    // A failed call changes nothing: compare with an untouched twin.
    let mut a = D::instantiate(&E, &N, b"").unwrap();
    let mut b = D::instantiate(&E, &N, b"").unwrap();
    assert_eq!(a.reseed(&[0; 31], b""), Err(Error::DrbgEntropyTooShort));
    assert_eq!(a.reseed(&long, b""), Err(Error::DrbgInputTooLong));
    assert_eq!(a.reseed(&E, &long), Err(Error::DrbgInputTooLong));
    let mut big = vec![0xaa; MAX_REQUEST_LEN + 1];
    assert_eq!(a.generate(&mut big, b""), Err(Error::DrbgRequestTooLarge));
    assert!(
        big.iter().all(|&x| x == 0xaa),
        "{name}: output untouched on error"
    );
    let mut small = [0u8; 16];
    assert_eq!(a.generate(&mut small, &long), Err(Error::DrbgInputTooLong));
    assert_eq!(small, [0; 16]);
    let (mut x, mut y) = ([0u8; 100], [0u8; 100]);
    a.generate(&mut x, b"ad").unwrap();
    b.generate(&mut y, b"ad").unwrap();
    assert_eq!(x, y, "{name}: failed calls changed the state");
    // The largest request is allowed.
    let mut max_req = vec![0u8; MAX_REQUEST_LEN];
    a.generate(&mut max_req, &max).unwrap();
    assert_eq!(format!("{a:?}"), format!("{name} {{ .. }}"));
}

#[test]
fn hmac_limits() {
    limits::<HmacDrbg>("HmacDrbg");
}

#[test]
fn hash_limits() {
    limits::<HashDrbg>("HashDrbg");
}

macro_rules! interval_test {
    ($name:ident, $ty:ty) => {
        #[test]
        fn $name() {
            let mut d = <$ty>::new(&E, &N, b"").unwrap();
            assert!(matches!(
                d.set_reseed_interval(0),
                Err(Error::InvalidValue { .. })
            ));
            assert!(matches!(
                d.set_reseed_interval(MAX_RESEED_INTERVAL + 1),
                Err(Error::InvalidValue { .. })
            ));
            d.set_reseed_interval(MAX_RESEED_INTERVAL).unwrap();
            d.set_reseed_interval(3).unwrap();
            let mut out = [0u8; 8];
            for _ in 0..3 {
                d.generate(&mut out, b"").unwrap();
            }
            assert_eq!(d.generate(&mut out, b""), Err(Error::DrbgReseedRequired));
            d.reseed(&E, b"").unwrap();
            for _ in 0..3 {
                d.generate(&mut out, b"").unwrap();
            }
            assert_eq!(d.generate(&mut out, b""), Err(Error::DrbgReseedRequired));
            // A wiped generator refuses to generate until reseeded.
            let mut w = <$ty>::new(&E, &N, b"").unwrap();
            w.zeroize();
            assert_eq!(w.generate(&mut out, b""), Err(Error::DrbgReseedRequired));
            w.reseed(&E, b"").unwrap();
            w.generate(&mut out, b"").unwrap();
        }
    };
}
interval_test!(hmac_reseed_interval, HmacDrbg);
interval_test!(hash_reseed_interval, HashDrbg);

/// `generate_pair` equals two `generate` calls (any lengths, with and
/// without additional input), and a request either instance must refuse
/// changes neither instance nor either output.
fn pair_equals_two_calls<D: Drbg>() {
    let twins = |tag: &[u8]| {
        (
            D::instantiate(&E, &N, tag).unwrap(),
            D::instantiate(&E, &N, tag).unwrap(),
        )
    };
    let (mut a, mut a_model) = twins(b"a");
    let (mut b, mut b_model) = twins(b"b");
    for (la, lb, add) in [
        (1024usize, 1024usize, &b""[..]),
        (0, 64, b"x"),
        (77, 0, b""),
        (33, 100, b"additional input"),
        (MAX_REQUEST_LEN, 31, b""),
    ] {
        let (mut oa, mut ob) = (vec![0u8; la], vec![0u8; lb]);
        a.generate_pair(&mut b, &mut oa, &mut ob, add).unwrap();
        let (mut ma, mut mb) = (vec![0u8; la], vec![0u8; lb]);
        a_model.generate(&mut ma, add).unwrap();
        b_model.generate(&mut mb, add).unwrap();
        assert_eq!((oa, ob), (ma, mb), "lengths {la}, {lb}");
    }
    // Refused for either instance: nothing changes.
    let mut huge = vec![0x77u8; MAX_REQUEST_LEN + 1];
    let mut small = [0x77u8; 40];
    assert_eq!(
        a.generate_pair(&mut b, &mut small, &mut huge, b""),
        Err(Error::DrbgRequestTooLarge)
    );
    assert_eq!(
        a.generate_pair(&mut b, &mut huge, &mut small, b""),
        Err(Error::DrbgRequestTooLarge)
    );
    assert!(small.iter().all(|&x| x == 0x77) && huge.iter().all(|&x| x == 0x77));
    let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
    a.generate(&mut x, b"").unwrap();
    a_model.generate(&mut y, b"").unwrap();
    assert_eq!(x, y, "a refused pair left the first instance unchanged");
    b.generate(&mut x, b"").unwrap();
    b_model.generate(&mut y, b"").unwrap();
    assert_eq!(x, y, "and the second");
}

#[test]
fn hmac_pair_equals_two_calls() {
    pair_equals_two_calls::<HmacDrbg>();
}

#[test]
fn hash_pair_equals_two_calls() {
    pair_equals_two_calls::<HashDrbg>();
}

type PeerDrbg = hmac_drbg::HmacDRBG<sha2_09::Sha256>;

/// 1 MiB from a fixed seed, in requests of varied sizes with and without
/// additional input and a reseed half way.
fn long_stream_digest(
    mut generate: impl FnMut(&mut [u8], &[u8]),
    mut reseed: impl FnMut(),
) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4096];
    let mut total = 0usize;
    let mut i = 0usize;
    while total < (1 << 20) {
        let len = [4096, 1, 33, 1000, 64][i % 5];
        let ad: &[u8] = if i % 3 == 0 { b"" } else { b"additional" };
        generate(&mut buf[..len], ad);
        h.update(&buf[..len]);
        total += len;
        i += 1;
        if i == 200 {
            reseed();
        }
    }
    h.finalize().into()
}

#[test]
fn pinned_long_stream_digest() {
    use core::cell::RefCell;
    let ours = RefCell::new(HmacDrbg::new(&E, &N, b"pinned").unwrap());
    let d1 = long_stream_digest(
        |out, ad| ours.borrow_mut().generate(out, ad).unwrap(),
        || ours.borrow_mut().reseed(&[0x33; 32], b"r").unwrap(),
    );
    let peer = RefCell::new(PeerDrbg::new(&E, &N, b"pinned"));
    let d2 = long_stream_digest(
        // hmac-drbg writes whole 32-byte blocks: generate into a rounded-up
        // buffer and keep the prefix (the standard's leftmost bits).
        |out, ad| {
            let mut tmp = vec![0u8; out.len().div_ceil(32) * 32];
            let ad = if ad.is_empty() { None } else { Some(ad) };
            peer.borrow_mut().generate_to_slice(&mut tmp, ad);
            out.copy_from_slice(&tmp[..out.len()]);
        },
        || peer.borrow_mut().reseed(&[0x33; 32], Some(b"r")),
    );
    assert_eq!(d1, d2, "ours and the hmac-drbg crate disagree");
    let hex: String = d1.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, PINNED, "HmacDrbg output changed");
}

/// SHA-256 of the stream above; equal to the `hmac-drbg` crate's stream.
const PINNED: &str = "05f524c2a2346bbb686f4965fc2aafd940c38fea2e9995aaa8e4d9606e66dc17";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary call sequences agree with the `hmac-drbg` crate (model).
    #[test]
    fn hmac_matches_peer_crate(
        seed in any::<[u8; 32]>(),
        calls in proptest::collection::vec((0usize..300, proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()), 1..12),
    ) {
        let mut ours = HmacDrbg::new(&seed, &N, b"p").unwrap();
        let mut peer = PeerDrbg::new(&seed, &N, b"p");
        for (len, ad, reseed) in calls {
            if reseed {
                ours.reseed(&seed, &ad).unwrap();
                peer.reseed(&seed, Some(&ad));
            }
            let mut a = vec![0u8; len];
            ours.generate(&mut a, &ad).unwrap();
            let mut b = vec![0u8; len.div_ceil(32) * 32];
            peer.generate_to_slice(&mut b, if ad.is_empty() { None } else { Some(&ad) });
            prop_assert_eq!(&a[..], &b[..len]);
        }
    }
}
