//! Public-API tests of `entropool::kickstart`: generated valid files are
//! accepted whatever their chunking, each kind of error is reported on the
//! right line, and the exact size bounds hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use entropool::kickstart::{KickstartParser, KickstartSummary, Limits};
use entropool::{Error, KickstartReason};
use proptest::prelude::*;

/// A plain base64 encoder (RFC 4648, standard alphabet, padded), written
/// here so the tests do not trust the decoder's library for the encoding.
fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn the_test_encoder_matches_rfc4648_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64(i.as_bytes()), o);
    }
}

const SMALL: Limits = Limits {
    min_size: 1,
    max_size: 4096,
};

/// Parse `text` fed in pieces of `piece` bytes.
fn parse_in(
    text: &[u8],
    limits: Limits,
    piece: usize,
) -> Result<(KickstartSummary, Vec<u8>), Error> {
    let mut p = KickstartParser::with_limits(limits);
    let mut got = Vec::new();
    for c in text.chunks(piece.max(1)) {
        p.push(c, &mut |d: &[u8]| got.extend_from_slice(d))?;
    }
    let s = p.finish(&mut |d: &[u8]| got.extend_from_slice(d))?;
    Ok((s, got))
}

fn err(line: u32, reason: KickstartReason) -> Error {
    Error::Kickstart { line, reason }
}

fn other_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "vmaccepteula",
        "install --firstdisk --overwritevmfs",
        "network --bootproto=dhcp --device=vmnic0",
        "rootpw --iscrypted $6$x",
        "# entropy --data=!!!",
        "   # indented comment",
        "",
        "   ",
        "reboot",
        "entropyd --sources=99",
        "%post --interpreter=busybox\nentropy --bogus\n%end",
    ])
    .prop_map(String::from)
}

proptest! {
    #[test]
    fn generated_valid_files_are_accepted(
        data in prop::collection::vec(any::<u8>(), 1..600),
        sources in prop::option::of(0..=15u8),
        sources_first in any::<bool>(),
        before in prop::collection::vec(other_line(), 0..4),
        after in prop::collection::vec(other_line(), 0..4),
        crlf in any::<bool>(),
        trailing_newline in any::<bool>(),
        comment in any::<bool>(),
        piece in 1..64usize,
    ) {
        let data_opt = format!("--data={}", b64(&data));
        let mut opts = vec![data_opt];
        if let Some(s) = sources {
            let o = format!("--sources={s}");
            if sources_first { opts.insert(0, o) } else { opts.push(o) }
        }
        let mut entropy = format!("entropy  \t{}", opts.join(" "));
        if comment {
            entropy.push_str(" # seeded from the HSM");
        }
        let mut lines: Vec<String> = before.clone();
        lines.push(entropy);
        lines.extend(after);
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = lines.join(eol);
        if trailing_newline {
            text.push_str(eol);
        }
        // The entropy line's number: lines before it, counting the
        // embedded newlines of multi-line entries.
        let expected_line = 1 + before.iter().map(|l| l.matches('\n').count() + 1).sum::<usize>();
        let (summary, got) = parse_in(text.as_bytes(), SMALL, piece).unwrap();
        prop_assert_eq!(got, data.clone());
        prop_assert_eq!(summary.size, data.len() as u64);
        prop_assert_eq!(u64::from(summary.sources.value()), u64::from(sources.unwrap_or(0)));
        prop_assert_eq!(summary.line as usize, expected_line);
    }

    #[test]
    fn chunking_never_changes_the_verdict(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "entropy", " ", "\t", "--data=", "--sources=", "AAAA", "AQ==", "A", "\n",
            "\r\n", "#", "%post", "%end", "=", "1", "99", "!", "install",
        ]), 0..40),
        piece in 1..16usize,
    ) {
        let text = tokens.concat();
        let whole = parse_in(text.as_bytes(), SMALL, usize::MAX);
        let pieces = parse_in(text.as_bytes(), SMALL, piece);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn bad_base64_is_found_at_its_offset(
        data in prop::collection::vec(any::<u8>(), 3..3000),
        pos_seed in any::<usize>(),
        bad in prop::sample::select(vec![b'!', b'-', b'_', b'.', b'=', 0xC3]),
        piece in 1..2000usize,
    ) {
        let mut enc = b64(&data).into_bytes();
        // Replace a character that is not part of the final padding.
        let unpadded = enc.iter().position(|&c| c == b'=').unwrap_or(enc.len());
        let pos = pos_seed % (unpadded - 1);
        enc[pos] = bad;
        let mut text = b"vmaccepteula\nentropy --sources=8 --data=".to_vec();
        text.extend_from_slice(&enc);
        text.push(b'\n');
        let r = parse_in(&text, Limits { min_size: 1, max_size: 1 << 20 }, piece);
        prop_assert_eq!(r, Err(err(2, KickstartReason::BadBase64 { offset: pos as u64 })));
    }
}

#[test]
fn each_error_kind_names_its_line() {
    let ok = b64(&[7u8; 48]);
    let cases: Vec<(String, Error)> = vec![
        (
            format!("vmaccepteula\nentropy --data={ok} --force\n"),
            err(2, KickstartReason::UnknownOption),
        ),
        (
            format!("entropy --sources 8 --data={ok}\n"),
            err(1, KickstartReason::UnknownOption),
        ),
        (
            "install\n\n# c\nentropy --sources=8\n".to_string(),
            err(4, KickstartReason::MissingData),
        ),
        ("entropy".to_string(), err(1, KickstartReason::MissingData)),
        (
            format!("entropy --data={ok} --data={ok}\n"),
            err(1, KickstartReason::DuplicateOption),
        ),
        (
            format!("entropy --sources=1 --sources=2 --data={ok}\n"),
            err(1, KickstartReason::DuplicateOption),
        ),
        (
            format!("a\nb\nentropy --sources=16 --data={ok}\n"),
            err(3, KickstartReason::SourcesOutOfRange { value: 16 }),
        ),
        (
            format!("entropy --sources=99999999999999999999999 --data={ok}\n"),
            err(1, KickstartReason::SourcesOutOfRange { value: u64::MAX }),
        ),
        (
            format!("entropy --sources=-1 --data={ok}\n"),
            err(1, KickstartReason::SourcesNotANumber),
        ),
        (
            format!("entropy --sources= --data={ok}\n"),
            err(1, KickstartReason::SourcesNotANumber),
        ),
        (
            "x\nentropy --data=AAAA*AAA\n".to_string(),
            err(2, KickstartReason::BadBase64 { offset: 4 }),
        ),
        (
            "entropy --data=AAAAA\n".to_string(),
            err(1, KickstartReason::BadBase64 { offset: 4 }),
        ),
        (
            // Non-canonical final group: `B` leaves non-zero spare bits.
            "entropy --data=AAAAAB==\n".to_string(),
            err(1, KickstartReason::BadBase64 { offset: 4 }),
        ),
        (
            "entropy --data=\n".to_string(),
            err(1, KickstartReason::SizeOutOfRange { size: 0 }),
        ),
        (
            format!("entropy --data={}\n", b64(&[0u8; 4097])),
            err(1, KickstartReason::SizeOutOfRange { size: 4097 }),
        ),
        (
            format!("entropy --data={ok}\ninstall\nentropy --data={ok}\n"),
            err(3, KickstartReason::SecondEntropyLine),
        ),
        (
            "vmaccepteula\ninstall\n".to_string(),
            err(2, KickstartReason::NoEntropyLine),
        ),
        (
            "vmaccepteula\ninstall".to_string(),
            err(2, KickstartReason::NoEntropyLine),
        ),
        (String::new(), err(1, KickstartReason::NoEntropyLine)),
    ];
    for (text, expected) in cases {
        for piece in [1, 3, 7, usize::MAX] {
            assert_eq!(
                parse_in(text.as_bytes(), SMALL, piece).map(|(s, _)| s),
                Err(expected),
                "{text:?} in pieces of {piece}"
            );
        }
    }
}

#[test]
fn a_poisoned_parser_keeps_its_error() {
    let mut p = KickstartParser::with_limits(SMALL);
    let mut sink = |_: &[u8]| {};
    let e = p.push(b"entropy --what=1\n", &mut sink).unwrap_err();
    assert_eq!(p.push(b"entropy --data=AAAA\n", &mut sink), Err(e));
    assert_eq!(p.finish(&mut sink), Err(e));
}

/// The product's exact bounds: 512 KiB and 10 MiB accepted, one byte less
/// or more rejected with the size.
#[test]
fn exact_install_size_bounds() {
    const KIB: usize = 1024;
    for (size, ok) in [
        (512 * KIB - 1, false),
        (512 * KIB, true),
        (10 * KIB * KIB, true),
        (10 * KIB * KIB + 1, false),
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let text = format!("vmaccepteula\nentropy --sources=8 --data={}\n", b64(&data));
        let r = parse_in(text.as_bytes(), Limits::INSTALL, 64 * KIB);
        if ok {
            let (s, got) = r.unwrap();
            assert_eq!(s.size, size as u64);
            assert!(got == data, "decoded data differs at size {size}");
        } else {
            assert_eq!(
                r.map(|(s, _)| s),
                Err(err(
                    2,
                    KickstartReason::SizeOutOfRange { size: size as u64 }
                ))
            );
        }
    }
    assert_eq!(Limits::INSTALL.min_size, 524_288);
    assert_eq!(Limits::INSTALL.max_size, 10_485_760);
}

#[cfg(feature = "std")]
mod reader {
    use super::*;
    use entropool::kickstart::{ReadError, read_kickstart_with_limits};
    use std::io::BufReader;

    #[test]
    fn reads_through_a_small_bufreader() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let text = format!("install\nentropy --data={} --sources=9\n", b64(&data));
        let r = BufReader::with_capacity(13, text.as_bytes());
        let k = read_kickstart_with_limits(r, SMALL).unwrap();
        assert_eq!(&k.data[..], &data[..]);
        assert_eq!((k.line, k.sources.value()), (2, 9));
        assert!(!format!("{k:?}").contains("data: ["));
    }

    #[test]
    fn invalid_files_and_endless_input_are_errors() {
        let r = read_kickstart_with_limits(&b"entropy --x=1\n"[..], SMALL);
        assert!(matches!(
            r,
            Err(ReadError::Invalid(Error::Kickstart { line: 1, .. }))
        ));
        let endless = std::io::repeat(b'A');
        let r = read_kickstart_with_limits(
            BufReader::new(endless),
            Limits {
                min_size: 1,
                max_size: 10,
            },
        );
        assert!(matches!(r, Err(ReadError::TooLarge { .. })), "{r:?}");
    }
}
