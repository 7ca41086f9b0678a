//! The HTTP API end to end over 127.0.0.1 with a fake pool: both GETs, the
//! add call, and every refusal crediting nothing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use api_common::*;
use entropyd::api::{self, ExternalPoolResponse};
use entropyd::client::{Client, ClientError};
use entropyd::server::{ApiServer, ListenAddr, ServerConfig};

/// Request and head timeouts far longer than any answer should take, so
/// that "answered before the timeout" holds with a wide margin on a loaded
/// machine.
const LONG_TIMEOUT: Duration = Duration::from_secs(30);

/// As `start(pool, true)`, with both timeouts [`LONG_TIMEOUT`].
fn start_with_long_timeouts(pool: Arc<FakePool>) -> (ApiServer, std::net::SocketAddr) {
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.token = Some(token());
    cfg.body_limit = 1024;
    cfg.request_timeout = LONG_TIMEOUT;
    cfg.head_timeout = LONG_TIMEOUT;
    cfg.workers = 2;
    let server = ApiServer::start(cfg, pool).unwrap();
    let addr = match server.local_addr() {
        ListenAddr::Tcp(addr) => *addr,
        other => unreachable!("asked for TCP, got {other}"),
    };
    (server, addr)
}

fn client(addr: std::net::SocketAddr, with_token: bool) -> Client {
    Client::new(
        &ListenAddr::Tcp(addr),
        with_token.then(token),
        Duration::from_secs(10),
    )
    .unwrap()
}

#[test]
fn get_external_pool_reports_the_backend() {
    let pool = FakePool::new(4096, 1000);
    let (_server, addr) = start(pool, true);
    let got = client(addr, false).external_pool().unwrap();
    assert_eq!(
        got,
        ExternalPoolResponse {
            status: "ENABLED".to_owned(),
            capacity: 4096,
            currently_available: 1000,
            low_watermark: 4096 / 5,
            inactive_source_timeout: 60,
        }
    );
    // The wire format has exactly the ESXi field names.
    let (status, body) = raw(
        addr,
        b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "capacity",
            "currently_available",
            "inactive_source_timeout",
            "low_watermark",
            "status"
        ]
    );
}

#[test]
fn get_status_round_trips_the_snapshot() {
    let (_server, addr) = start(FakePool::new(10, 0), false);
    let mut got = client(addr, false).status().unwrap();
    // The server adds its own part: no client call yet, plain TCP.
    let api = got.api.take().expect("the API's status part");
    assert_eq!(api.seconds_since_client_call, None);
    assert!(!api.tls);
    assert_eq!(api.inactive_source_timeout, 60);
    assert_eq!(got, sample_status());
}

#[test]
fn add_accepts_at_most_the_room_left() {
    let pool = FakePool::new(100, 40);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let c = client(addr, true);
    let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    // Room is 100 - 40 = 60: the first 60 bytes are taken.
    assert_eq!(c.add(&data).unwrap(), 60);
    assert_eq!(pool.credited(), data[..60]);
    assert_eq!(c.add(&data).unwrap(), 0);
    assert_eq!(pool.credited().len(), 60);
    assert_eq!(c.external_pool().unwrap().currently_available, 100);
}

#[test]
fn submit_sends_pieces_and_stops_when_full() {
    let pool = FakePool::new(10_000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let c = client(addr, true);
    let data: Vec<u8> = (0..2500u32).map(|i| (i * 7 % 251) as u8).collect();
    // 300-byte pieces fit the server's 1 KiB body limit once encoded.
    let sum = c.submit(&mut data.as_slice(), 300).unwrap();
    assert_eq!((sum.sent, sum.accepted, sum.pool_full), (2500, 2500, false));
    assert_eq!(pool.credited(), data);
    assert_eq!(pool.add_calls(), 2500_u64.div_ceil(300));

    let small = FakePool::new(1000, 0);
    let (_server2, addr2) = start(Arc::clone(&small), true);
    let sum = client(addr2, true)
        .submit(&mut data.as_slice(), 300)
        .unwrap();
    // Pieces of 300: 300, 300, 300, then 100 of the fourth; stop there.
    assert_eq!((sum.sent, sum.accepted, sum.pool_full), (1200, 1000, true));
    assert_eq!(small.credited(), data[..1000]);
}

#[test]
fn missing_or_wrong_token_is_401_and_credits_nothing() {
    let pool = FakePool::new(1000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let body = api::encode_add_body(&[7u8; 32]);
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789abcdef"),
        Some("Bearer test-token-0123456789abcdeF"),
        Some("Basic dGVzdA=="),
        Some("Bearer"),
    ] {
        let (status, body) = raw(addr, &post_add(&body, auth));
        assert_eq!(status, 401, "{auth:?}");
        let e: api::ErrorResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(e.code, 401);
        assert!(e.error.contains("Bearer"), "{}", e.error);
    }
    match client(addr, false).add(&[1u8; 32]) {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(pool.add_calls(), 0);
    assert!(pool.credited().is_empty());
    // The right token works on the same server.
    let (status, body) = raw(
        addr,
        &post_add(&api::encode_add_body(&[7u8; 32]), Some(&bearer())),
    );
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            "{\"accepted\":32,\"capacity\":1000,\"currently_available\":32,\"low_watermark\":200,\"inactive_source_timeout\":60}"
        )
    );
}

#[test]
fn bad_bodies_are_400_and_credit_nothing() {
    let pool = FakePool::new(1000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let cases: [(&[u8], &str); 6] = [
        (b"{not json", "JSON"),
        (b"{\"data\":\"AAAA\",\"more\":1}", "unknown field"),
        (b"{}", "missing field"),
        (b"{\"data\":\"A@AA\"}", "base64"),
        (b"{\"data\":\"AAA\"}", "base64"),
        (b"{\"data\":\"AAAA\"}   trailing", "JSON"),
    ];
    for (body, expect) in cases {
        let (status, answer) = raw(addr, &post_add(body, Some(&bearer())));
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(body));
        let e: api::ErrorResponse = serde_json::from_str(&answer).unwrap();
        assert!(e.error.contains(expect), "{expect:?} not in {:?}", e.error);
    }
    assert_eq!(pool.add_calls(), 0);
}

#[test]
fn oversize_is_413_before_the_body_is_read() {
    let pool = FakePool::new(1 << 20, 0);
    let (_server, addr) = start_with_long_timeouts(Arc::clone(&pool));
    // Announce 1 KiB + 1 but send no body: an answer that comes well
    // before the 30 s request timeout was given without reading it.
    let req = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 1025\r\n\r\n",
        bearer()
    );
    let t = Instant::now();
    let (status, body) = raw(addr, req.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(t.elapsed() < LONG_TIMEOUT / 3, "{:?}", t.elapsed());
    assert!(body.contains("1024"), "{body}");
    // A real oversize body is refused too, and its sender reads the answer.
    let big = api::encode_add_body(&[1u8; 2000]);
    let (status, _) = raw(addr, &post_add(&big, Some(&bearer())));
    assert_eq!(status, 413);
    // The limit itself is fine.
    let mut exact = b"{\"data\":\"".to_vec();
    exact.resize(1024 - 2, b'A');
    exact.extend_from_slice(b"\"}");
    assert_eq!(exact.len(), 1024);
    let (status, _) = raw(addr, &post_add(&exact, Some(&bearer())));
    assert_eq!(
        status, 400,
        "1012 base64 chars is not a whole number of groups"
    );
    assert_eq!(pool.add_calls(), 0);
}

#[test]
fn framing_errors_method_and_path() {
    let pool = FakePool::new(1000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let b = bearer();
    let cases: Vec<(String, u16)> = vec![
        ("DELETE /entropy/status HTTP/1.1\r\n\r\n".into(), 405),
        ("PUT /entropy/external-pool HTTP/1.1\r\n\r\n".into(), 405),
        ("GET /entropy/nothing HTTP/1.1\r\n\r\n".into(), 404),
        ("GET / HTTP/1.1\r\n\r\n".into(), 404),
        (
            "POST /entropy/external-pool HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".into(),
            400,
        ),
        (
            format!(
                "POST /entropy/external-pool?action=add HTTP/1.1\r\nAuthorization: {b}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            411,
        ),
        (
            format!(
                "POST /entropy/external-pool?action=add HTTP/1.1\r\nAuthorization: {b}\r\n\r\n"
            ),
            411,
        ),
        (
            format!(
                "POST /entropy/external-pool?action=add HTTP/1.1\r\nAuthorization: {b}\r\nContent-Length: 1x\r\n\r\n"
            ),
            400,
        ),
        ("GARBAGE\r\n\r\n".into(), 400),
    ];
    for (req, want) in cases {
        let (status, body) = raw(addr, req.as_bytes());
        assert_eq!(status, want, "{req:?} -> {body}");
        let e: api::ErrorResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(e.code, want);
    }
    // 405 names the allowed methods.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"DELETE /entropy/status HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut s, &mut all).unwrap();
    assert!(all.contains("\r\nAllow: GET\r\n"), "{all}");
    // Too many headers.
    let mut req = "GET /entropy/status HTTP/1.1\r\n".to_owned();
    for i in 0..40 {
        req.push_str(&format!("X-{i}: y\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(raw(addr, req.as_bytes()).0, 431);
    assert_eq!(pool.add_calls(), 0);
}

#[test]
fn expect_continue_gets_an_interim_answer() {
    let pool = FakePool::new(1000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let body = api::encode_add_body(&[9u8; 10]);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nAuthorization: {}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        bearer(),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    std::io::Read::read_exact(&mut s, &mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&body).unwrap();
    let (status, answer) = read_answer(&mut s);
    assert_eq!(status, 200, "{answer}");
    let add: api::AddResponse = serde_json::from_str(&answer).unwrap();
    assert_eq!((add.accepted, add.currently_available), (10, 10));
}

#[test]
fn tcp_without_token_refuses_writes_but_serves_reads() {
    let pool = FakePool::new(1000, 0);
    let (_server, addr) = start(Arc::clone(&pool), false);
    let (status, _) = raw(
        addr,
        &post_add(&api::encode_add_body(&[1u8; 8]), Some(&bearer())),
    );
    assert_eq!(status, 403);
    assert_eq!(pool.add_calls(), 0);
    assert_eq!(client(addr, false).external_pool().unwrap().capacity, 1000);
}

#[test]
fn disabled_external_source_is_409() {
    let pool = Arc::new(FakePool {
        enabled: false,
        ..Arc::try_unwrap(FakePool::new(1000, 0)).unwrap()
    });
    let (_server, addr) = start(Arc::clone(&pool), true);
    let (status, _) = raw(
        addr,
        &post_add(&api::encode_add_body(&[1u8; 8]), Some(&bearer())),
    );
    assert_eq!(status, 409);
    assert_eq!(pool.add_calls(), 0);
    assert_eq!(
        client(addr, false).external_pool().unwrap().status,
        "DISABLED"
    );
}

#[test]
fn concurrent_adds_never_exceed_capacity() {
    let pool = FakePool::new(3000, 0);
    let (_server, addr) = start(Arc::clone(&pool), true);
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            thread::spawn(move || {
                let c = client(addr, true);
                (0..10).map(|_| c.add(&[t; 100]).unwrap()).sum::<u64>()
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    // 8000 bytes offered, 3000 of room: exactly 3000 taken and reported.
    assert_eq!(total, 3000);
    assert_eq!(pool.credited().len(), 3000);
    assert_eq!(pool.external_pool_available(), 3000);
}

trait Avail {
    fn external_pool_available(&self) -> u64;
}
impl Avail for FakePool {
    fn external_pool_available(&self) -> u64 {
        use entropyd::backend::PoolBackend;
        self.external_pool().currently_available
    }
}

#[test]
fn a_slow_client_is_cut_off_and_does_not_block_others() {
    let pool = FakePool::new(1000, 0);
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.workers = 1;
    cfg.request_timeout = Duration::from_millis(500);
    let server = ApiServer::start(cfg, pool).unwrap();
    let ListenAddr::Tcp(addr) = *server.local_addr() else {
        panic!()
    };
    // Half a request head, then silence.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /entropy/status HTTP/1.1\r\nHo")
        .unwrap();
    let t = Instant::now();
    // The only worker is busy with it; this one waits in the backlog until
    // the slow one's deadline, then is served.
    let (status, _) = raw(addr, b"GET /entropy/external-pool HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(read_answer(&mut slow).0, 408);
}

#[test]
fn stop_is_prompt_and_closes_the_port() {
    let (server, addr) = start_with_long_timeouts(FakePool::new(10, 0));
    // An idle connection that never sends must not hold up stop until its
    // 30 s head timeout runs out.
    let _idle = TcpStream::connect(addr).unwrap();
    // Let a worker accept it and start waiting for its request.
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    server.stop();
    assert!(t.elapsed() < LONG_TIMEOUT / 3, "{:?}", t.elapsed());
    thread::sleep(Duration::from_millis(50));
    let err = client(addr, false).status().unwrap_err();
    assert!(err.is_unreachable(), "{err}");
}

#[test]
fn non_loopback_and_bad_configs_are_refused() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let cfg = ServerConfig::new(listen.parse().unwrap());
        let err = ApiServer::start(cfg, FakePool::new(1, 0)).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.workers = 0;
    assert!(ApiServer::start(cfg, FakePool::new(1, 0)).is_err());
    assert!("nonsense".parse::<ListenAddr>().is_err());
    assert!("unix:".parse::<ListenAddr>().is_err());
    assert_eq!(
        "unix:/run/x.sock".parse::<ListenAddr>().unwrap(),
        ListenAddr::Unix("/run/x.sock".into())
    );
}
