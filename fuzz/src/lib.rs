//! Fuzz target bodies for entropool's parsers, as plain functions so the
//! committed corpus replays on stable (`cargo test --manifest-path
//! fuzz/Cargo.toml`) through exactly the code libFuzzer runs.
//!
//! Each body panics only when an invariant of the parser is broken; any
//! input, valid or not, must otherwise return normally.

use entropool::config::{Param, parse_set_args};
use entropool::kickstart::{KickstartParser, Limits, read_kickstart_with_limits};
use entropool::{Config, Tunables};

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

// ---- HTTP framing: the real server, one request per input ----

/// Largest add body the fuzzed server takes (small, so the 413 path is
/// reachable by small inputs).
pub const HTTP_BODY_LIMIT: usize = 4096;

/// The fuzzed server's pool: records the last add it was given.
struct RecordingBackend {
    last_add: std::sync::Mutex<Option<Vec<u8>>>,
}

impl entropyd::backend::PoolBackend for RecordingBackend {
    fn external_pool(&self) -> entropyd::backend::ExternalPoolInfo {
        entropyd::backend::ExternalPoolInfo {
            enabled: true,
            capacity: 1 << 20,
            currently_available: 0,
            low_watermark: 0,
            inactive_source_timeout: 60,
        }
    }

    fn add_external(&self, data: &[u8]) -> usize {
        let mut last = self
            .last_add
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = Some(data.to_vec());
        data.len()
    }

    fn status(&self) -> entropyd::backend::StatusSnapshot {
        entropyd::backend::StatusSnapshot::default()
    }
}

struct HttpFixture {
    socket: std::path::PathBuf,
    backend: std::sync::Arc<RecordingBackend>,
    _server: entropyd::server::ApiServer,
}

fn http_fixture() -> &'static HttpFixture {
    static FIXTURE: std::sync::OnceLock<HttpFixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("entropool-fuzz-http-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let socket = dir.join("api.sock");
        let _ = std::fs::remove_file(&socket);
        let backend = std::sync::Arc::new(RecordingBackend {
            last_add: std::sync::Mutex::new(None),
        });
        let mut config =
            entropyd::server::ServerConfig::new(entropyd::server::ListenAddr::Unix(socket.clone()));
        // No token on a Unix socket: writes are allowed (its mode decides),
        // so the fuzzer reaches the body framing.
        config.body_limit = HTTP_BODY_LIMIT;
        config.workers = 2;
        config.request_timeout = std::time::Duration::from_secs(5);
        let dyn_backend: std::sync::Arc<dyn entropyd::backend::PoolBackend> = backend.clone();
        let server = entropyd::server::ApiServer::start(config, dyn_backend)
            .expect("the fuzzed API server starts");
        HttpFixture {
            socket,
            backend,
            _server: server,
        }
    })
}

/// What the input says by itself (httparse on the whole input): the head
/// length, whether it is an add, and its Content-Length.
fn expected_add(data: &[u8]) -> Option<(usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(data) else {
        return None;
    };
    let mut len = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok();
        }
    }
    Some((head_len, len?))
}

/// HTTP framing: the input is sent whole as one request over the API's
/// Unix socket (then the write side is closed), and the answer is read to
/// the end. The answer is a well-formed HTTP/1.1 response (status line,
/// a Content-Length equal to the body's length) or nothing (the client
/// "left" before its head was complete); an add that succeeds gave the
/// pool exactly the data the body holds: the `Content-Length` bytes right
/// after the head, decoded, never more and never fewer.
pub fn http_request(data: &[u8]) {
    use std::io::{Read, Write};
    let fx = http_fixture();
    let mut s = std::os::unix::net::UnixStream::connect(&fx.socket).expect("connect");
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    // The server may answer (and close) before reading everything.
    let _ = s.write_all(data);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let added = fx
        .backend
        .last_add
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if answer.is_empty() {
        assert!(added.is_none(), "an add without an answer");
        return;
    }
    let text = String::from_utf8_lossy(&answer);
    // An interim `100 Continue` (asked for with `Expect`) may come first.
    let text = text
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&text);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in the answer: {text:?}"));
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    assert!(
        status == 200 || (400..=599).contains(&status),
        "status {status}"
    );
    let declared: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no Content-Length in the answer: {head:?}"));
    assert_eq!(declared, body.len(), "answer body length");
    if let Some(got) = added {
        assert_eq!(status, 200, "added, yet answered {status}");
        let (head_len, len) = expected_add(data).expect("an add from an incomplete head");
        let body = data
            .get(head_len..head_len + len)
            .expect("an add from a body shorter than its Content-Length");
        let want = entropyd::api::parse_add_body(body, HTTP_BODY_LIMIT)
            .expect("the server accepted a body the parser refuses");
        assert_eq!(
            &got[..],
            &want[..],
            "the pool got other bytes than the body"
        );
    }
}

// ---- the storage loader on random file bytes ----

/// The start key of every fuzzed open.
const STORAGE_KEY: [u8; 32] = [0x5A; 32];

/// The valid blocks an independent reading of the documented format finds
/// in `medium` for a store opened with `slots` slots under `mask`, or
/// `None` when the header is not a valid version-2 header for the medium.
fn model_blocks(medium: &[u8], slots: u64, mask: u8) -> Option<Vec<[u8; 32]>> {
    use sha2::{Digest, Sha256};
    let hdr = medium.get(..64)?;
    let digest = Sha256::digest(&hdr[..32]);
    let n = u64::from_le_bytes(hdr[16..24].try_into().ok()?);
    let ok = hdr[..8] == *b"ENTPOOLS"
        && hdr[8..12] == 2u32.to_le_bytes()
        && hdr[12..16] == 64u32.to_le_bytes()
        && hdr[24..32].iter().all(|&b| b == 0)
        && digest[..] == hdr[32..64]
        && n.checked_mul(64)
            .and_then(|b| b.checked_add(64))
            .is_some_and(|len| len <= medium.len() as u64);
    if !ok {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..n.min(slots) {
        let at = 64 + 64 * i as usize;
        let slot = &medium[at..at + 64];
        if slot.iter().all(|&b| b == 0) {
            continue;
        }
        let check = Sha256::new()
            .chain_update(b"entropool.slot.2")
            .chain_update(i.to_le_bytes())
            .chain_update(&slot[..40])
            .finalize();
        let p = slot[32];
        if check[..24] == slot[40..]
            && (1..=15).contains(&p)
            && slot[33..40].iter().all(|&b| b == 0)
            && p & !mask == 0
        {
            out.push(slot[..32].try_into().ok()?);
        }
    }
    Some(out)
}

/// The storage loader: the first byte picks the slot count (0..=15), the
/// second the sources mask (1..=15), the rest is the medium. Opening never
/// panics; a medium too small is refused untouched; otherwise the blocks
/// credited are exactly those an independent reading of the format finds
/// (none without a valid header), each is handed out once, keyed, and a
/// re-open finds none of them again.
pub fn storage_load(data: &[u8]) {
    use entropool::MemStorage;
    use entropool::storage::{HeaderState, StorageCache, key_block, layout_len};
    let (Some(&a), Some(&b)) = (data.first(), data.get(1)) else {
        return;
    };
    let slots = u64::from(a % 16);
    let mask_value = b % 15 + 1;
    let mask = entropool::SourceMask::new(u64::from(mask_value)).expect("1..=15");
    let original = data.get(2..).unwrap_or_default();
    let mut medium = original.to_vec();
    let model = model_blocks(original, slots, mask_value);
    let opened = StorageCache::open(MemStorage::new(&mut medium), slots, mask, &STORAGE_KEY);
    let (mut cache, report) = match opened {
        Ok(x) => x,
        Err(e) => {
            assert_eq!(e, entropool::Error::CapacityTooSmall, "{e}");
            assert!(layout_len(slots).is_none_or(|l| l > original.len() as u64));
            assert_eq!(medium, original, "a refused open changed the medium");
            return;
        }
    };
    assert_eq!(report.blocks, cache.len());
    assert!(cache.len() <= slots);
    match &model {
        Some(want) => {
            assert_eq!(report.header, HeaderState::Valid);
            assert_eq!(report.blocks, want.len() as u64, "credited other blocks");
        }
        None => {
            assert_ne!(report.header, HeaderState::Valid);
            assert_eq!(report.blocks, 0, "credited blocks without a valid header");
        }
    }
    let mut taken = std::collections::HashSet::new();
    let mut out = [0u8; 32];
    while cache.take(&mut out).expect("a memory medium does not fail") {
        assert!(taken.insert(out), "a block handed out twice");
    }
    assert_eq!(taken.len() as u64, report.blocks);
    if let Some(want) = model {
        let keyed: std::collections::HashSet<_> =
            want.iter().map(|b| key_block(&STORAGE_KEY, b)).collect();
        assert_eq!(taken, keyed, "handed out other blocks than were stored");
    }
    drop(cache);
    let (again, r2) = StorageCache::open(MemStorage::new(&mut medium), slots, mask, &STORAGE_KEY)
        .expect("a store this code formatted re-opens");
    assert_eq!(
        (r2.header, r2.blocks, again.len()),
        (HeaderState::Valid, 0, 0)
    );
}

/// The TLS files' PEM private-key reader: never panics; a key it takes is
/// never empty, and written back as a well-formed PEM section it reads the
/// same again, and rustls-pki-types' reader (the model) reads that
/// section to the same DER. (Not the fuzzed text itself: on a section left
/// without its END line, the model carries that section's base64 into the
/// next one's key, where ours reads the key section alone.)
pub fn pem_key(data: &[u8]) {
    use base64ct::{Base64, Encoding};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let Ok(ours) = entropyd::tls::pem_private_key(data) else {
        return;
    };
    assert!(!ours.secret_der().is_empty());
    let label = match &*ours {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let b64 = Base64::encode_string(ours.secret_der());
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    let again = entropyd::tls::pem_private_key(pem.as_bytes()).expect("our own PEM");
    let model = PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("a well-formed PEM");
    for other in [&*again, &model] {
        assert_eq!(other.secret_der(), ours.secret_der());
        assert_eq!(
            std::mem::discriminant(other),
            std::mem::discriminant(&*ours)
        );
    }
}
