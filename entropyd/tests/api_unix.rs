//! The API on a Unix socket: permissions as authorization, socket mode,
//! stale and foreign files at the socket path.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use api_common::*;
use entropyd::api;
use entropyd::server::{ApiServer, ListenAddr, SOCKET_MODE_GROUP, ServerConfig};

fn request(path: &std::path::Path, req: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    read_answer(&mut s)
}

#[test]
fn unix_socket_without_token_takes_writes_and_has_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let pool = FakePool::new(100, 0);
    let server = ApiServer::start(
        ServerConfig::new(ListenAddr::Unix(path.clone())),
        Arc::clone(&pool) as _,
    )
    .unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // No leftovers of the private bind directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let (status, body) = request(&path, &post_add(&api::encode_add_body(&[5u8; 20]), None));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("{\"accepted\":20,"), "{body}");
    assert_eq!(pool.credited(), vec![5u8; 20]);
    let (status, body) = request(&path, b"GET /entropy/external-pool HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("\"currently_available\":20"), "{body}");

    server.stop();
    assert!(!path.exists(), "stop removes the socket it created");
}

#[test]
fn unix_socket_with_token_requires_it_and_group_mode_is_0660() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let pool = FakePool::new(100, 0);
    let mut cfg = ServerConfig::new(ListenAddr::Unix(path.clone()));
    cfg.token = Some(token());
    cfg.socket_mode = SOCKET_MODE_GROUP;
    let _server = ApiServer::start(cfg, Arc::clone(&pool) as _).unwrap();
    let mode = std::fs::symlink_metadata(&path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let body = api::encode_add_body(&[5u8; 20]);
    assert_eq!(request(&path, &post_add(&body, None)).0, 401);
    assert_eq!(pool.add_calls(), 0);
    assert_eq!(request(&path, &post_add(&body, Some(&bearer()))).0, 200);
}

#[test]
fn socket_path_conflicts_are_refused_or_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file is never replaced.
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = ApiServer::start(
        ServerConfig::new(ListenAddr::Unix(file.clone())),
        FakePool::new(1, 0),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    // A live listener is not stolen.
    let live = dir.path().join("live.sock");
    let _other = UnixListener::bind(&live).unwrap();
    let err = ApiServer::start(
        ServerConfig::new(ListenAddr::Unix(live)),
        FakePool::new(1, 0),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already listening"), "{err}");
    // A stale socket (nobody listening) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let server = ApiServer::start(
        ServerConfig::new(ListenAddr::Unix(stale.clone())),
        FakePool::new(1, 0),
    )
    .unwrap();
    assert_eq!(
        request(&stale, b"GET /entropy/status HTTP/1.1\r\n\r\n").0,
        200
    );
    // Bad socket modes are refused.
    let mut cfg = ServerConfig::new(ListenAddr::Unix(dir.path().join("m.sock")));
    cfg.socket_mode = 0o666;
    assert!(ApiServer::start(cfg, FakePool::new(1, 0)).is_err());
    drop(server);
}

#[test]
fn the_client_speaks_to_a_unix_socket_daemon() {
    use entropyd::client::{Client, ClientError};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let unix = ListenAddr::Unix(path.clone());
    let timeout = Duration::from_secs(10);
    // Nothing listens yet: unreachable, so `status` falls back to the
    // state directory.
    let err = Client::new(&unix, None, timeout)
        .unwrap()
        .status()
        .unwrap_err();
    assert!(err.is_unreachable(), "{err}");

    let pool = FakePool::new(100, 0);
    let mut cfg = ServerConfig::new(unix.clone());
    cfg.token = Some(token());
    let server = ApiServer::start(cfg, Arc::clone(&pool) as _).unwrap();
    let with = Client::new(&unix, Some(token()), timeout).unwrap();
    let without = Client::new(&unix, None, timeout).unwrap();

    let mut got = with.status().unwrap();
    assert!(got.api.take().is_some());
    assert_eq!(got, sample_status());
    assert_eq!(with.add(&[7u8; 20]).unwrap(), 20);
    assert_eq!(pool.credited(), vec![7u8; 20]);
    assert_eq!(without.external_pool().unwrap().currently_available, 20);
    match without.add(&[1u8; 4]) {
        Err(ClientError::Refused { status: 401, .. }) => {}
        other => panic!("a write without the token must be refused: {other:?}"),
    }
    assert_eq!(
        pool.credited(),
        vec![7u8; 20],
        "the refused add changed nothing"
    );
    // submit reads its input in pieces and stops at its end.
    let summary = with.submit(&mut &[9u8; 50][..], 16).unwrap();
    assert_eq!((summary.sent, summary.accepted), (50, 50));
    assert_eq!(pool.credited().len(), 70);
    server.stop();
}

#[test]
fn unix_client_reports_early_refusals_of_large_bodies() {
    use entropyd::client::{Client, ClientError};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let unix = ListenAddr::Unix(path.clone());
    let pool = FakePool::new(1 << 30, 0);
    let mut cfg = ServerConfig::new(unix.clone());
    cfg.token = Some(token());
    cfg.body_limit = 300_000;
    let _server = ApiServer::start(cfg, Arc::clone(&pool) as _).unwrap();
    let timeout = Duration::from_secs(10);
    let without = Client::new(&unix, None, timeout).unwrap();
    let with = Client::new(&unix, Some(token()), timeout).unwrap();
    // The server refuses from the headers and closes before reading the
    // body: the client must still report the refusal, whatever the size.
    for size in [50_000, 100_000, 200_000, 1 << 20] {
        match without.add(&vec![3u8; size]) {
            Err(ClientError::Refused { status: 401, .. }) => {}
            other => panic!("{size} bytes without the token: {other:?}"),
        }
    }
    match with.add(&vec![3u8; 250_000]) {
        Err(ClientError::Refused { status: 413, .. }) => {}
        other => panic!("a body over the limit: {other:?}"),
    }
    assert!(pool.credited().is_empty(), "nothing refused was credited");
    assert_eq!(with.add(&[4u8; 1000]).unwrap(), 1000);
}

#[test]
fn unix_client_timeout_bounds_the_whole_call() {
    use entropyd::client::{Client, ClientError};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // A peer that trickles a valid answer, one byte every 100 ms.
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        for b in answer {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let client = Client::new(&ListenAddr::Unix(path), None, Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let got = client.external_pool();
    let took = started.elapsed();
    assert!(
        matches!(got, Err(ClientError::Transport(_))),
        "a trickling peer times out: {got:?}"
    );
    assert!(took < Duration::from_secs(2), "the call took {took:?}");
    peer.join().unwrap();
}
