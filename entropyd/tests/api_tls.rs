//! The API over TLS (rustls, ring) with a fake pool: token and mutual TLS,
//! authorization of reads off loopback, audit records of refusals, and the
//! certificate reload. Certificates are made at test time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_common;
mod tls_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_common::*;
use entropyd::api::{self, AddResponse};
use entropyd::audit::Audit;
use entropyd::server::{ApiServer, ListenAddr, ServerConfig};
use entropyd::tls::{TlsFiles, TlsState};
use tls_common::*;

const GET_POOL: &[u8] = b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n";

struct Tls {
    server: ApiServer,
    addr: SocketAddr,
    audit: Arc<Audit>,
    state: Arc<TlsState>,
}

fn start_tls(pool: Arc<FakePool>, pki: &Pki, listen: &str, mutual: bool, with_token: bool) -> Tls {
    let (cert, key) = pki.server("server");
    let state = Arc::new(
        TlsState::load(TlsFiles {
            cert,
            key,
            client_ca: mutual.then(|| pki.ca_pem.clone()),
        })
        .unwrap(),
    );
    let audit = Arc::new(Audit::counting_only());
    let mut cfg = ServerConfig::new(listen.parse().unwrap());
    cfg.tls = Some(Arc::clone(&state));
    cfg.token = with_token.then(token);
    cfg.audit = Arc::clone(&audit);
    cfg.request_timeout = Duration::from_secs(5);
    let server = ApiServer::start(cfg, pool).unwrap();
    let ListenAddr::Tcp(mut addr) = *server.local_addr() else {
        panic!("not tcp")
    };
    // 0.0.0.0 listens everywhere; reach it on loopback.
    addr.set_ip("127.0.0.1".parse().unwrap());
    Tls {
        server,
        addr,
        audit,
        state,
    }
}

fn add_response(body: &str) -> AddResponse {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn tls_with_a_token_on_loopback() {
    let pki = Pki::new("a");
    let pool = FakePool::new(1000, 100);
    let t = start_tls(Arc::clone(&pool), &pki, "127.0.0.1:0", false, true);
    let client = client_config(&pki.ca_pem, None);
    // Loopback: reads are open, over TLS too.
    let (status, body) = tls_request(&client, t.addr, GET_POOL).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"currently_available\":100"), "{body}");
    // An authorized add answers ESXi's AddResult plus accepted.
    let add = post_add(&api::encode_add_body(&[3u8; 50]), Some(&bearer()));
    let (status, body) = tls_request(&client, t.addr, &add).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        add_response(&body),
        AddResponse {
            accepted: 50,
            capacity: 1000,
            currently_available: 150,
            low_watermark: 200,
            inactive_source_timeout: 60,
        }
    );
    // A wrong token: 401, nothing credited, one audit record.
    let bad = post_add(
        &api::encode_add_body(&[4u8; 50]),
        Some("Bearer not-the-token-0123456789"),
    );
    let (status, _) = tls_request(&client, t.addr, &bad).unwrap();
    assert_eq!(status, 401);
    assert_eq!(pool.credited(), vec![3u8; 50]);
    assert_eq!(t.audit.counts().write_refused, 1);
    // Plain HTTP to the TLS port gets no HTTP answer, and is recorded.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(t.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(GET_POOL).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plain HTTP answered in clear"
        );
    }
    assert_eq!(t.audit.counts().tls_refused, 1);
    // A client that does not trust the server's CA refuses it.
    let other = Pki::new("other");
    let untrusting = client_config(&other.ca_pem, None);
    assert!(tls_request(&untrusting, t.addr, GET_POOL).is_err());
    drop(t.server);
}

#[test]
fn off_loopback_reads_need_authorization() {
    let pki = Pki::new("b");
    let pool = FakePool::new(1000, 0);
    let t = start_tls(Arc::clone(&pool), &pki, "0.0.0.0:0", false, true);
    let client = client_config(&pki.ca_pem, None);
    for path in ["/entropy/external-pool", "/entropy/status"] {
        let plain = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (status, body) = tls_request(&client, t.addr, plain.as_bytes()).unwrap();
        assert_eq!(status, 401, "{path}: {body}");
        let with = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
            bearer()
        );
        let (status, body) = tls_request(&client, t.addr, with.as_bytes()).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    let c = t.audit.counts();
    assert_eq!((c.read_refused, c.write_refused), (2, 0));
    assert_eq!(t.server.api_status().audit.read_refused, 2);
}

#[test]
fn remote_listeners_need_tls_and_a_credential() {
    let pool = FakePool::new(1000, 0);
    let cfg = ServerConfig::new("0.0.0.0:0".parse().unwrap());
    let err = ApiServer::start(cfg, Arc::clone(&pool) as _).unwrap_err();
    assert!(err.to_string().contains("without TLS"), "{err}");
    let pki = Pki::new("c");
    let (cert, key) = pki.server("server");
    let mut cfg = ServerConfig::new("[::]:0".parse().unwrap());
    cfg.tls = Some(Arc::new(
        TlsState::load(TlsFiles {
            cert,
            key,
            client_ca: None,
        })
        .unwrap(),
    ));
    let err = ApiServer::start(cfg, pool as _).unwrap_err();
    assert!(err.to_string().contains("without a credential"), "{err}");
}

#[test]
fn mutual_tls_takes_only_certificates_from_the_ca() {
    let pki = Pki::new("d");
    let pool = FakePool::new(1000, 0);
    let t = start_tls(Arc::clone(&pool), &pki, "0.0.0.0:0", true, false);
    let good = client_config(&pki.ca_pem, Some(&pki.client("feeder")));
    // The certificate is the credential: reads and writes work.
    let (status, body) = tls_request(&good, t.addr, GET_POOL).unwrap();
    assert_eq!(status, 200, "{body}");
    let add = post_add(&api::encode_add_body(&[6u8; 40]), None);
    let (status, body) = tls_request(&good, t.addr, &add).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(add_response(&body).accepted, 40);
    // No certificate, or one from another CA: the handshake fails, nothing
    // is read or credited, and each is an audit record.
    let none = client_config(&pki.ca_pem, None);
    let other = Pki::new("rogue");
    let rogue = client_config(&pki.ca_pem, Some(&other.client("rogue")));
    for client in [&none, &rogue] {
        let add = post_add(&api::encode_add_body(&[9u8; 40]), None);
        let got = tls_request(client, t.addr, &add);
        assert!(got.is_err(), "{got:?}");
    }
    assert_eq!(pool.credited(), vec![6u8; 40]);
    // The server records the refusal when it reads the client's flight;
    // give its thread a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.audit.counts().tls_refused < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.audit.counts().tls_refused, 2);
    drop(t);

    // A token on top of mutual TLS: a good certificate alone is not enough.
    let t = start_tls(Arc::clone(&pool), &pki, "0.0.0.0:0", true, true);
    let good = client_config(&pki.ca_pem, Some(&pki.client("feeder2")));
    let (status, _) = tls_request(&good, t.addr, &add).unwrap();
    assert_eq!(status, 401);
    let with = post_add(&api::encode_add_body(&[8u8; 10]), Some(&bearer()));
    let (status, _) = tls_request(&good, t.addr, &with).unwrap();
    assert_eq!(status, 200);
    assert_eq!(pool.credited().len(), 50);
}

#[test]
fn reload_swaps_the_pair_and_keeps_the_old_one_when_the_new_is_bad() {
    let pki = Pki::new("e");
    let pool = FakePool::new(1000, 0);
    let t = start_tls(Arc::clone(&pool), &pki, "127.0.0.1:0", false, true);
    let client = client_config(&pki.ca_pem, None);
    let first = server_cert(&client, t.addr);
    // A new pair written over the same files: reloaded for new connections.
    let (cert, key) = pki.server("server");
    assert!(t.server.reload_tls().unwrap());
    let second = server_cert(&client, t.addr);
    assert_ne!(first, second);
    // A certificate whose key is not the one in the key file: refused, the
    // pair in use kept.
    let (other_cert, _) = pki.server("unrelated");
    std::fs::copy(&other_cert, &cert).unwrap();
    let err = t.state.reload().unwrap_err();
    assert!(err.to_string().contains(&*key.to_string_lossy()), "{err}");
    assert_eq!(server_cert(&client, t.addr), second);
    // A key readable by others: refused too.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = t.server.reload_tls().unwrap_err();
    assert!(err.to_string().contains("mode 0644"), "{err}");
    let (status, _) = tls_request(&client, t.addr, GET_POOL).unwrap();
    assert_eq!(status, 200);
}
