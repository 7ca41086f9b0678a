//! Slow clients stall nobody: connections trickling their request head or
//! stalling in the TLS handshake, from other loopback addresses
//! (127.0.0.2.. are different peers from the legitimate client on
//! 127.0.0.1), while a legitimate client reads and adds. Fewer connections
//! than `cargo xtask bench-api` uses, and generous deadlines: the machine
//! may be loaded. (A server that serves one connection per worker makes
//! every legitimate call here wait out the head deadline of 5 s.)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_common;
mod tls_common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use api_common::*;
use entropyd::api;
use entropyd::audit::Audit;
use entropyd::server::{ApiServer, ListenAddr, ServerConfig};
use entropyd::tls::{TlsFiles, TlsState};
use tls_common::*;

/// The most a legitimate call may take here (the goal, measured by
/// bench-api on an idle machine, is p99 <= 100 ms for a GET).
const GENEROUS: Duration = Duration::from_secs(2);

fn config(tls: Option<Arc<TlsState>>) -> ServerConfig {
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.token = Some(token());
    cfg.tls = tls;
    cfg.head_timeout = Duration::from_secs(5);
    cfg.request_timeout = Duration::from_secs(10);
    cfg.audit = Arc::new(Audit::counting_only());
    cfg
}

fn start_with(cfg: ServerConfig, pool: Arc<FakePool>) -> (ApiServer, SocketAddr) {
    let server = ApiServer::start(cfg, pool).unwrap();
    let ListenAddr::Tcp(addr) = *server.local_addr() else {
        panic!("not tcp")
    };
    (server, addr)
}

/// `per_source` connections from each of 127.0.0.2 .. 127.0.0.(1+sources).
fn open_attackers(addr: SocketAddr, sources: u8, per_source: usize) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for i in 0..sources {
        let ip: IpAddr = format!("127.0.0.{}", 2 + i).parse().unwrap();
        for _ in 0..per_source {
            conns.push(connect_from(ip, addr).unwrap());
        }
    }
    conns
}

/// Sends one byte of a request head on every connection each `every`,
/// until `stop`.
fn trickle(
    mut conns: Vec<TcpStream>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let head = b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let byte = [head.get(i).copied().unwrap_or(b'a')];
            for c in &mut conns {
                let _ = c.write_all(&byte);
            }
            i += 1;
            thread::sleep(every);
        }
    })
}

/// Times `n` legitimate calls; returns the slowest.
fn legitimate_calls(n: usize, mut call: impl FnMut(usize) -> u16) -> Duration {
    let mut worst = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        let status = call(i);
        assert_eq!(status, 200, "call {i}");
        worst = worst.max(t.elapsed());
    }
    worst
}

#[test]
fn trickling_heads_delay_no_one() {
    let pool = FakePool::new(1 << 20, 0);
    let (server, addr) = start_with(config(None), Arc::clone(&pool));
    let attackers = open_attackers(addr, 4, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = trickle(attackers, Duration::from_millis(200), Arc::clone(&stop));
    // Every attacker is held open by the server, none served.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.api_status().connections_open < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(server.api_status().connections_open >= 200);

    let worst = legitimate_calls(30, |i| {
        if i % 3 == 0 {
            let body = api::encode_add_body(&[i as u8; 64]);
            raw(addr, &post_add(&body, Some(&bearer()))).0
        } else {
            raw(
                addr,
                b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .0
        }
    });
    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    assert!(worst < GENEROUS, "slowest legitimate call took {worst:?}");
    assert_eq!(pool.credited().len(), 10 * 64);
    assert_eq!(server.api_status().connections_shed, 0);
}

#[test]
fn one_address_is_capped_and_the_rest_served() {
    let pool = FakePool::new(1 << 20, 0);
    let mut cfg = config(None);
    cfg.per_peer_connections = 16;
    let (server, addr) = start_with(cfg, pool);
    // 40 from one address: 16 are held, 24 closed at once.
    let attackers = open_attackers(addr, 1, 40);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.api_status().connections_shed < 24 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let st = server.api_status();
    assert_eq!((st.connections_open, st.connections_shed), (16, 24));
    let worst = legitimate_calls(10, |_| {
        raw(
            addr,
            b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .0
    });
    assert!(worst < GENEROUS, "slowest legitimate call took {worst:?}");
    drop(attackers);
}

#[test]
fn when_full_the_oldest_unfinished_head_makes_room() {
    let pool = FakePool::new(1 << 20, 0);
    let mut cfg = config(None);
    cfg.max_connections = 20;
    let (server, addr) = start_with(cfg, pool);
    let attackers = open_attackers(addr, 4, 10);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.api_status().connections_shed < 20 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.api_status().connections_shed, 20);
    assert_eq!(server.api_status().connections_open, 20);
    // The newcomer pushes out the oldest stalled head and is served.
    let worst = legitimate_calls(10, |_| {
        raw(
            addr,
            b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .0
    });
    assert!(worst < GENEROUS, "slowest legitimate call took {worst:?}");
    drop(attackers);
}

#[test]
fn stalled_tls_handshakes_delay_no_one() {
    let pki = Pki::new("slow");
    let (cert, key) = pki.server("server");
    let tls = Arc::new(
        TlsState::load(TlsFiles {
            cert,
            key,
            client_ca: None,
        })
        .unwrap(),
    );
    let pool = FakePool::new(1 << 20, 0);
    let (server, addr) = start_with(config(Some(tls)), Arc::clone(&pool));
    // Half of them send the start of a ClientHello, then nothing.
    let mut attackers = open_attackers(addr, 4, 50);
    for c in attackers.iter_mut().step_by(2) {
        c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.api_status().connections_open < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(server.api_status().connections_open >= 200);
    let client = client_config(&pki.ca_pem, None);
    let worst = legitimate_calls(20, |i| {
        let req = if i % 2 == 0 {
            post_add(&api::encode_add_body(&[1u8; 32]), Some(&bearer()))
        } else {
            b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()
        };
        tls_request(&client, addr, &req).unwrap().0
    });
    assert!(worst < GENEROUS, "slowest legitimate call took {worst:?}");
    assert_eq!(pool.credited().len(), 10 * 32);
    drop(attackers);
}

/// Sends `bytes` one every 100 ms until the server closes the connection;
/// returns how long that took (at most 15 s).
fn trickle_until_closed(mut s: TcpStream, bytes: &[u8]) -> Duration {
    use std::io::Read;
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut scratch = [0u8; 4096];
    let mut i = 0;
    while t.elapsed() < Duration::from_secs(15) {
        match s.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if s.write_all(&[bytes[i % bytes.len()]]).is_err() {
            break;
        }
        i += 1;
    }
    t.elapsed()
}

#[test]
fn tls_tricklers_are_cut_at_the_head_deadline() {
    let pki = Pki::new("trickle");
    let (cert, key) = pki.server("server");
    let tls = Arc::new(
        TlsState::load(TlsFiles {
            cert,
            key,
            client_ca: None,
        })
        .unwrap(),
    );
    let mut cfg = config(Some(tls));
    cfg.head_timeout = Duration::from_secs(1);
    let (_server, addr) = start_with(cfg, FakePool::new(1000, 0));
    // In the handshake: a ClientHello record that never ends, one byte at
    // a time.
    let s = TcpStream::connect(addr).unwrap();
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let took = trickle_until_closed(s, &hello);
    assert!(
        took < Duration::from_secs(6),
        "handshake trickle held {took:?}"
    );
    // After the handshake: a request head's TLS record, one byte at a time.
    let mut tcp = TcpStream::connect(addr).unwrap();
    let config = client_config(&pki.ca_pem, None);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let t = Instant::now();
    conn.writer()
        .write_all(b"GET /entropy/external-pool HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaa")
        .unwrap();
    let mut record = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut record).unwrap();
    }
    let took = trickle_until_closed(tcp, &record) + t.elapsed();
    assert!(took < Duration::from_secs(6), "head trickle held {took:?}");
}
