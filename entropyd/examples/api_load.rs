//! The load side of `cargo xtask bench-api` (xtask itself stays std-only):
//! test certificates, TLS and plain add throughput, TLS handshakes, and
//! the slow-client attack with a legitimate client's latencies. Loopback
//! only; every phase is bounded in count and in time and stops by itself.
//!
//! ```text
//! api_load certs DIR
//! api_load compare PLAIN_ADDR TLS_ADDR CA TOKEN_FILE ADDS
//! api_load handshakes TLS_ADDR CA COUNT
//! api_load slow ADDR CA|- TOKEN_FILE ATTACKERS GETS ADDS MAX_SECONDS
//! ```
//!
//! `slow` opens ATTACKERS connections from 127.0.0.2.. (50 per address,
//! under the server's per-peer cap of 64; 127.0.0.1 is the legitimate
//! client's own address, a different peer) that send one byte a second: of
//! a request head in clear, or of a TLS ClientHello when a CA is given (a
//! handshake that stalls). Connections the server closes are reopened.
//! Meanwhile the legitimate client on 127.0.0.1 sends GETS
//! `GET /entropy/external-pool` and ADDS authorized 64 KiB adds, one every
//! 5 ms or so (a run outlasts the server's 3 s head deadline, so attackers
//! are dropped and come back during it), and the p50/p99/max of each are
//! printed.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const MIB: usize = 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two calls of the legitimate client in `slow`.
const PACE: Duration = Duration::from_millis(5);
/// Attacker connections per source address (the server's cap is 64).
const PER_SOURCE: usize = 50;

type Res<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("certs") => certs(&args[1..]),
        Some("compare") => compare(&args[1..]),
        Some("handshakes") => handshakes(&args[1..]),
        Some("slow") => slow(&args[1..]),
        _ => Err("usage: api_load certs|compare|handshakes|slow ... (see the source)".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("api_load: {e}");
        std::process::exit(1);
    }
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Res<&'a str> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("missing argument {what}"))
}

fn num(args: &[String], i: usize, what: &str) -> Res<usize> {
    let text = arg(args, i, what)?;
    text.parse()
        .ok()
        .filter(|&n| n <= 1_000_000)
        .ok_or_else(|| format!("{what}: not a number 0..=1000000: {text:?}"))
}

fn addr(args: &[String], i: usize, what: &str) -> Res<SocketAddr> {
    let text = arg(args, i, what)?;
    let a: SocketAddr = text.parse().map_err(|e| format!("{what} {text:?}: {e}"))?;
    if !a.ip().is_loopback() {
        return Err(format!("{what} {a}: loopback only"));
    }
    Ok(a)
}

/// `DIR/ca.pem`, `DIR/server.pem`, `DIR/server.key` (0600), made now.
fn certs(args: &[String]) -> Res<()> {
    let dir = Path::new(arg(args, 0, "DIR")?);
    let e = |e: rcgen::Error| e.to_string();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "bench-api test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(e)?).map_err(e)?;
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(e)?;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(e)?;
    let cert = leaf.signed_by(&key, &ca).map_err(e)?;
    let w = |name: &str, text: &str, mode: u32| -> Res<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    w("ca.pem", &ca.pem(), 0o644)?;
    w("server.pem", &cert.pem(), 0o644)?;
    w("server.key", &key.serialize_pem(), 0o600)
}

fn tls_config(ca: &Path, resume: bool) -> Res<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

fn token(path: &str) -> Res<String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| format!("{path}: {e}"))
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> Res<Conn> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(match tls {
            None => Conn::Plain(s),
            Some(config) => {
                let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                let conn =
                    ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
                Conn::Tls(Box::new(StreamOwned::new(conn, s)))
            }
        })
    }

    /// Sends `req`, reads the whole answer; returns (status, body).
    fn call(mut self, req: &[u8]) -> Res<(u16, String)> {
        let mut out = Vec::new();
        let io = match &mut self {
            Conn::Plain(s) => s
                .write_all(req)
                .and_then(|()| s.read_to_end(&mut out).map(|_| ())),
            Conn::Tls(s) => s
                .write_all(req)
                .and_then(|()| s.flush())
                .and_then(|()| s.read_to_end(&mut out).map(|_| ())),
        };
        io.map_err(|e| format!("request: {e}"))?;
        let text = String::from_utf8_lossy(&out);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no HTTP status in {:?}", text.get(..80)))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

fn random(n: usize) -> Res<Vec<u8>> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(v)
}

fn add_request(data: &[u8], token: &str) -> Vec<u8> {
    let body = entropyd::api::encode_add_body(data);
    let mut req = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

const GET: &[u8] =
    b"GET /entropy/external-pool HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn accepted(body: &str) -> u64 {
    serde_json::from_str::<entropyd::api::AddResponse>(body).map_or(0, |a| a.accepted)
}

/// Plain and TLS adds of 1 MiB, alternating, one connection each.
fn compare(args: &[String]) -> Res<()> {
    let plain = addr(args, 0, "PLAIN_ADDR")?;
    let tls_addr = addr(args, 1, "TLS_ADDR")?;
    let config = tls_config(Path::new(arg(args, 2, "CA")?), true)?;
    let token = token(arg(args, 3, "TOKEN_FILE")?)?;
    let adds = num(args, 4, "ADDS")?.max(1);
    let mut requests = Vec::with_capacity(adds);
    for _ in 0..adds {
        requests.push(add_request(&random(MIB)?, &token));
    }
    let (mut t_plain, mut t_tls) = (Vec::with_capacity(adds), Vec::with_capacity(adds));
    let (mut b_plain, mut b_tls) = (0u64, 0u64);
    for req in &requests {
        let t = Instant::now();
        let (status, body) = Conn::open(plain, None)?.call(req)?;
        t_plain.push(t.elapsed());
        if status != 200 {
            return Err(format!("plain add answered {status}: {body}"));
        }
        b_plain += accepted(&body);
        let t = Instant::now();
        let (status, body) = Conn::open(tls_addr, Some(&config))?.call(req)?;
        t_tls.push(t.elapsed());
        if status != 200 {
            return Err(format!("TLS add answered {status}: {body}"));
        }
        b_tls += accepted(&body);
    }
    // Medians: the machine may be shared, and a burst of someone else's
    // work should not decide the ratio.
    t_plain.sort_unstable();
    t_tls.sort_unstable();
    let (m_plain, m_tls) = (percentile(&t_plain, 50), percentile(&t_tls, 50));
    let per_s = |d: Duration| 1.0 / d.as_secs_f64();
    println!(
        "adds of 1 MiB, {adds} each, alternating, one connection per add (TLS with a resumed handshake): median plain {:.1} ms ({:.1} adds/s, {b_plain} bytes accepted), TLS {:.1} ms ({:.1} adds/s, {b_tls} bytes accepted): TLS at {:.0} % of plain",
        m_plain.as_secs_f64() * 1000.0,
        per_s(m_plain),
        m_tls.as_secs_f64() * 1000.0,
        per_s(m_tls),
        per_s(m_tls) / per_s(m_plain) * 100.0
    );
    Ok(())
}

/// Full and resumed TLS handshakes per second.
fn handshakes(args: &[String]) -> Res<()> {
    let a = addr(args, 0, "TLS_ADDR")?;
    let ca = Path::new(arg(args, 1, "CA")?);
    let count = num(args, 2, "COUNT")?.max(1);
    for (label, resume) in [("full", false), ("resumed", true)] {
        let config = tls_config(ca, resume)?;
        // One handshake first so a resumed run has a ticket.
        Conn::open(a, Some(&config))?.call(GET)?;
        let t = Instant::now();
        for _ in 0..count {
            let (status, body) = Conn::open(a, Some(&config))?.call(GET)?;
            if status != 200 {
                return Err(format!("GET answered {status}: {body}"));
            }
        }
        let e = t.elapsed();
        println!(
            "TLS handshakes, {label}: {count} connections with one GET each in {:.2} s: {:.0} per second ({:.2} ms each)",
            e.as_secs_f64(),
            count as f64 / e.as_secs_f64(),
            e.as_secs_f64() * 1000.0 / count as f64
        );
    }
    Ok(())
}

fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The attackers' first bytes: a request head, or a TLS ClientHello.
fn attack_bytes(tls: bool) -> &'static [u8] {
    if tls {
        // A record header and the start of a ClientHello: never finished.
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ]
    } else {
        b"GET /entropy/external-pool HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa"
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted
        .get(rank.min(sorted.len()).saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

fn slow(args: &[String]) -> Res<()> {
    let a = addr(args, 0, "ADDR")?;
    let ca = arg(args, 1, "CA")?;
    let config = if ca == "-" {
        None
    } else {
        Some(tls_config(Path::new(ca), false)?)
    };
    let token = token(arg(args, 2, "TOKEN_FILE")?)?;
    let attackers = num(args, 3, "ATTACKERS")?;
    let gets = num(args, 4, "GETS")?;
    let adds = num(args, 5, "ADDS")?;
    let max = Duration::from_secs(u64::try_from(num(args, 6, "MAX_SECONDS")?.max(1)).unwrap_or(1));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicUsize::new(0));
    let reopened = Arc::new(AtomicUsize::new(0));
    let tls = config.is_some();
    let attacker = {
        let (stop, alive, reopened) =
            (Arc::clone(&stop), Arc::clone(&alive), Arc::clone(&reopened));
        thread::spawn(move || attack(a, attackers, tls, &stop, &alive, &reopened, started, max))
    };
    // Wait (bounded) until the attack is in place.
    while alive.load(Ordering::Relaxed) < attackers && started.elapsed() < max / 2 {
        thread::sleep(Duration::from_millis(50));
    }
    let held = alive.load(Ordering::Relaxed);
    let req_add = add_request(&random(64 * 1024)?, &token);
    let (mut t_get, mut t_add) = (Vec::with_capacity(gets), Vec::with_capacity(adds));
    let mut failure = None;
    let total = gets + adds;
    for i in 0..total {
        if started.elapsed() > max {
            failure = Some("the time bound ran out".to_owned());
            break;
        }
        // A steady pace, so the run outlasts the server's head deadline
        // and the attackers' reconnections are part of it.
        if i > 0 {
            thread::sleep(PACE);
        }
        // Spread the adds among the GETs.
        let is_add = adds > 0 && (i * adds) / total != ((i + 1) * adds) / total;
        let t = Instant::now();
        let got = Conn::open(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()),
            config.as_ref(),
        )
        .and_then(|c| c.call(if is_add { &req_add } else { GET }));
        match got {
            Ok((200, _)) => {
                if is_add {
                    t_add.push(t.elapsed());
                } else {
                    t_get.push(t.elapsed());
                }
            }
            Ok((status, body)) => {
                failure = Some(format!("answered {status}: {body}"));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = attacker.join();
    t_get.sort_unstable();
    t_add.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let kind = if tls {
        "stalled TLS handshakes"
    } else {
        "trickling request heads"
    };
    println!(
        "{held} {kind} from 127.0.0.2.. ({} reopened after the server dropped them), client on 127.0.0.1{}:",
        reopened.load(Ordering::Relaxed),
        if tls {
            " over TLS (handshake included)"
        } else {
            ""
        }
    );
    for (label, t, goal) in [
        ("GET external-pool", &t_get, 100.0),
        ("add 64 KiB", &t_add, 200.0),
    ] {
        let p99 = ms(percentile(t, 99));
        println!(
            "  {label}: {} calls, p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (goal p99 <= {goal} ms: {})",
            t.len(),
            ms(percentile(t, 50)),
            ms(t.last().copied().unwrap_or_default()),
            if p99 <= goal { "met" } else { "NOT MET" }
        );
    }
    match failure {
        Some(e) => Err(format!("legitimate client: {e}")),
        None => Ok(()),
    }
}

/// Keeps `n` slow connections open, one byte a second each, until `stop`
/// or `max` after `started`.
#[allow(clippy::too_many_arguments)]
fn attack(
    to: SocketAddr,
    n: usize,
    tls: bool,
    stop: &AtomicBool,
    alive: &AtomicUsize,
    reopened: &AtomicUsize,
    started: Instant,
    max: Duration,
) {
    let bytes = attack_bytes(tls);
    let source = |i: usize| {
        let k = u8::try_from(2 + i / PER_SOURCE).unwrap_or(255);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, k))
    };
    // (socket, bytes sent so far)
    let mut conns: Vec<Option<(TcpStream, usize)>> = (0..n).map(|_| None).collect();
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < max {
        let tick = Instant::now();
        let mut open = 0;
        for (i, slot) in conns.iter_mut().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if slot.is_none() {
                if let Ok(s) = connect_from(source(i), to) {
                    if round > 0 {
                        reopened.fetch_add(1, Ordering::Relaxed);
                    }
                    *slot = Some((s, 0));
                }
            }
            let keep = match slot {
                Some((s, sent)) => {
                    let b = bytes.get(*sent % bytes.len()).copied().unwrap_or(b'a');
                    // A closed connection shows as a failed write or a
                    // readable end of stream.
                    let mut probe = [0u8; 64];
                    let closed = matches!(s.read(&mut probe), Ok(0));
                    let wrote = s.write(&[b]).is_ok();
                    *sent += 1;
                    wrote && !closed
                }
                None => false,
            };
            if keep {
                open += 1;
            } else {
                *slot = None;
            }
        }
        alive.store(open, Ordering::Relaxed);
        round += 1;
        // One byte a second per connection (bounded wait, stop checked).
        while tick.elapsed() < Duration::from_secs(1) && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}
