//! Fuzz target bodies for entropool's parsers, as plain functions so the
//! committed corpus replays on stable (`cargo test --manifest-path
//! fuzz/Cargo.toml`) through exactly the code libFuzzer runs.
//!
//! Each body panics only when an invariant of the parser is broken; any
//! input, valid or not, must otherwise return normally.

use entropool::config::{Config, Param, Tunables, parse_set_args};
use entropool::kickstart::{KickstartParser, Limits, read_kickstart_with_limits};

/// Small bounds so small inputs reach the accepting paths.
pub const FUZZ_LIMITS: Limits = Limits {
    min_size: 1,
    max_size: 4096,
};

fn parse_chunked(
    data: &[u8],
    limits: Limits,
    piece: usize,
) -> Result<(entropool::kickstart::KickstartSummary, Vec<u8>), entropool::Error> {
    let mut parser = KickstartParser::with_limits(limits);
    let mut out = Vec::new();
    for c in data.chunks(piece.max(1)) {
        parser.push(c, &mut |d: &[u8]| out.extend_from_slice(d))?;
    }
    let summary = parser.finish(&mut |d: &[u8]| out.extend_from_slice(d))?;
    Ok((summary, out))
}

/// Kickstart parser: the verdict does not depend on how the input is
/// chunked, the std reader agrees, and an accepted file's data has the
/// reported size within the bounds.
pub fn kickstart(data: &[u8]) {
    // The first byte picks a chunk size for the second run.
    let piece = usize::from(data.first().copied().unwrap_or(1) % 17) + 1;
    let whole = parse_chunked(data, FUZZ_LIMITS, usize::MAX);
    let chunked = parse_chunked(data, FUZZ_LIMITS, piece);
    assert_eq!(whole, chunked, "chunking changed the verdict");
    let read = read_kickstart_with_limits(data, FUZZ_LIMITS);
    match (&whole, read) {
        (Ok((summary, bytes)), Ok(k)) => {
            assert_eq!(bytes.len() as u64, summary.size);
            assert!(FUZZ_LIMITS.accepts(summary.size));
            assert_eq!(&k.data[..], &bytes[..]);
            assert_eq!((k.line, k.sources), (summary.line, summary.sources));
            assert!(summary.sources.value() <= 15);
        }
        (Err(e), Err(entropool::kickstart::ReadError::Invalid(r))) => assert_eq!(*e, r),
        (w, r) => panic!("parser and reader disagree: {w:?} vs {r:?}"),
    }
    // With the product's bounds, small inputs can only fail on size, never
    // be accepted.
    if data.len() < 512 * 1024 {
        assert!(parse_chunked(data, Limits::INSTALL, usize::MAX).is_err());
    }
}

/// `set` arguments: split the input into arguments at `\n` (non-UTF-8 is
/// dropped); a rejected request leaves the tunables unchanged, an accepted
/// one yields valid tunables whose text form round-trips.
pub fn set_args(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let args: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    let start = Tunables::new(300, 50, 1024, 0).unwrap_or_default();
    let mut t = start;
    match parse_set_args(args.iter().copied()) {
        Ok(request) => {
            t.apply(&request).expect("a parsed request always applies");
            for p in Param::ALL {
                let v = t.get(p);
                assert!(p.min_value() <= v && v <= p.max_value());
                match request.value(p) {
                    Some(set) => assert_eq!(v, set),
                    None if request.resets(p) => assert_eq!(v, p.default_value()),
                    None => assert_eq!(v, start.get(p)),
                }
            }
        }
        Err(_) => assert_eq!(t, start),
    }
    let mut s = String::new();
    let config = Config {
        tunables: t,
        ..Config::DEFAULT
    };
    config.write_text(&mut s).expect("writing to a String");
    assert_eq!(Config::parse_text(&s), Ok(config));
    // The text parsers never panic on the input itself either.
    let _ = Tunables::parse_esxcli(text);
    let _ = Config::parse_text(text);
}

/// The API's add body (`{"data": "<base64>"}`, JSON then constant-time
/// base64): any input either fails with a client error or decodes to data
/// that re-encodes to a body parsing back to the same data; the size limit
/// is enforced before anything is parsed.
pub fn api_add(data: &[u8]) {
    use entropyd::api::{encode_add_body, parse_add_body};
    // A small limit too, so the limit path is reached by small inputs.
    let limit = usize::from(data.first().copied().unwrap_or(0)) * 4;
    match parse_add_body(data, limit) {
        Ok(decoded) => {
            assert!(data.len() <= limit);
            let again = parse_add_body(&encode_add_body(&decoded), usize::MAX)
                .expect("an encoded body parses");
            assert_eq!(&again[..], &decoded[..]);
        }
        Err(e) => {
            let status = e.status();
            assert!((400..500).contains(&status), "{status} for a client's body");
            if data.len() > limit {
                assert_eq!(status, 413, "over the limit is 413 before parsing");
            }
        }
    }
    match parse_add_body(data, entropyd::api::DEFAULT_BODY_LIMIT) {
        Ok(decoded) => assert!(decoded.len() <= data.len()),
        Err(e) => assert!((400..500).contains(&e.status())),
    }
}
