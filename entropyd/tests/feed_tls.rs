//! The feeder's TLS client against real rustls servers on 127.0.0.1, with
//! certificates made at test time (rcgen; no key is ever committed).
//!
//! The server end is a small TLS terminator written here (rustls, ring,
//! optional client-certificate verification) in front of a real daemon's
//! plain loopback API: it reads one request over TLS, passes it to the
//! daemon, and passes the answer back, and it can present certificates the
//! daemon would never be started with (from another CA, for another name).
//! It checks the feeder's side of TLS: verification against `--ca` (an
//! untrusted or misnamed server certificate is refused before any entropy
//! is written), mutual TLS with `--client-cert/--client-key`, and that
//! entropy flows to the daemon behind it. `feed_fleet.rs` runs the fleet
//! against the daemon's own TLS listener.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use e2e_common::{Daemon, Env, bin, text};
use entropool::Source;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// A CA and what it issued, as PEM text.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and key (PEM) for `names`, for a server or a client.
    fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS terminator on 127.0.0.1 in front of `backend`. With `client_ca`,
/// every connection needs a client certificate from it. Counts the
/// requests it passed on.
struct Terminator {
    addr: SocketAddr,
    passed: Arc<AtomicU64>,
}

impl Terminator {
    fn start(cert: &str, key: &str, client_ca: Option<&str>, backend: SocketAddr) -> Terminator {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let passed = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&passed);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = Arc::clone(&config);
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let _ = serve(config, tcp, backend, &counter);
                });
            }
        });
        Terminator { addr, passed }
    }
}

/// One connection: handshake, one request to the backend, its answer back.
fn serve(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    backend: SocketAddr,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    // The request: head, then Content-Length bytes of body.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let need = loop {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&raw) {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            break head + len;
        }
    };
    while raw.len() < need {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let mut up = TcpStream::connect(backend)?;
    up.write_all(&raw)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    tls.write_all(&answer)?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Files of one fleet's TLS material in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("entropool test CA"),
        }
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

fn small_daemon(env: &Env) -> Daemon {
    env.set(&["--memory-cache-size=64", "--storage-cache-size=0"]);
    env.start(&[
        "--sources=8",
        &format!("--token-file={}", env.token.display()),
    ])
}

fn external_bytes(d: &Daemon) -> u64 {
    d.status()
        .sources
        .iter()
        .find(|s| s.source == Source::External)
        .unwrap()
        .samples
}

fn is_full(d: &Daemon) -> bool {
    let p = d.client(None).external_pool().unwrap();
    p.currently_available == p.capacity
}

fn feed(args: &[String]) -> Output {
    Command::new(bin())
        .arg("feed")
        .arg("--from-file=/dev/urandom")
        .arg("--once")
        .arg("--timeout=20")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn three_hosts_over_tls_one_with_mtls_reach_full() {
    let pki = Pki::new();
    let ca = pki.write("ca.pem", &pki.ca.pem());
    let (scert, skey) = pki.ca.issue(&["localhost", "127.0.0.1"], false);
    let (ccert, ckey) = pki.ca.issue(&["feeder.example"], true);
    let client_cert = pki.write("client.pem", &ccert);
    let client_key = pki.write("client.key", &ckey);
    let envs = [Env::new(), Env::new(), Env::new()];
    let daemons: Vec<Daemon> = envs.iter().map(small_daemon).collect();
    let ca_pem = pki.ca.pem();
    let terms: Vec<Terminator> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mtls = (i == 2).then_some(ca_pem.as_str());
            Terminator::start(&scert, &skey, mtls, d.addr)
        })
        .collect();
    let mut args = vec![
        format!("--ca={}", ca.display()),
        format!("--client-cert={}", client_cert.display()),
        format!("--client-key={}", client_key.display()),
        format!("--token-file={}", envs[0].token.display()),
        // By address and by name.
        format!("--to=https://127.0.0.1:{}", terms[0].addr.port()),
        format!("--to=https://localhost:{}", terms[1].addr.port()),
    ];
    args.push(format!("--to=https://127.0.0.1:{}", terms[2].addr.port()));
    let out = feed(&args);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    for (d, t) in daemons.iter().zip(&terms) {
        assert!(is_full(d), "{said}");
        assert!(t.passed.load(Ordering::SeqCst) > 2);
    }
    assert_eq!(
        said.lines().filter(|l| l.contains(" ok full ")).count(),
        3,
        "{said}"
    );
}

#[test]
fn untrusted_or_misnamed_servers_get_nothing() {
    let pki = Pki::new();
    let ca = pki.write("ca.pem", &pki.ca.pem());
    let env = Env::new();
    let d = small_daemon(&env);
    let token = format!("--token-file={}", env.token.display());

    // A server certificate from another CA.
    let rogue = Ca::new("rogue CA");
    let (cert, key) = rogue.issue(&["localhost", "127.0.0.1"], false);
    let t = Terminator::start(&cert, &key, None, d.addr);
    let out = feed(&[
        format!("--ca={}", ca.display()),
        token.clone(),
        format!("--to=https://127.0.0.1:{}", t.addr.port()),
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAILED") && said.contains("TLS handshake"),
        "{said}"
    );
    assert!(said.contains("UnknownIssuer"), "{said}");

    // A certificate from our CA for another name.
    let (cert, key) = pki.ca.issue(&["other.example"], false);
    let t2 = Terminator::start(&cert, &key, None, d.addr);
    let out = feed(&[
        format!("--ca={}", ca.display()),
        token.clone(),
        format!("--to=https://127.0.0.1:{}", t2.addr.port()),
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not valid for name"), "{said}");

    // Nothing was passed on, nothing credited.
    assert_eq!(t.passed.load(Ordering::SeqCst), 0);
    assert_eq!(t2.passed.load(Ordering::SeqCst), 0);
    assert_eq!(external_bytes(&d), 0);
}

#[test]
fn mtls_without_a_trusted_client_certificate_gets_nothing() {
    let pki = Pki::new();
    let ca = pki.write("ca.pem", &pki.ca.pem());
    let env = Env::new();
    let d = small_daemon(&env);
    let (scert, skey) = pki.ca.issue(&["127.0.0.1"], false);
    let t = Terminator::start(&scert, &skey, Some(&pki.ca.pem()), d.addr);
    let to = format!("--to=https://127.0.0.1:{}", t.addr.port());
    let token = format!("--token-file={}", env.token.display());

    // No client certificate at all.
    let out = feed(&[format!("--ca={}", ca.display()), token.clone(), to.clone()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    // A client certificate from another CA.
    let rogue = Ca::new("rogue CA");
    let (ccert, ckey) = rogue.issue(&["feeder.example"], true);
    let out = feed(&[
        format!("--ca={}", ca.display()),
        format!("--client-cert={}", pki.write("c.pem", &ccert).display()),
        format!("--client-key={}", pki.write("c.key", &ckey).display()),
        token,
        to,
    ]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED"), "{said}");
    assert_eq!(t.passed.load(Ordering::SeqCst), 0);
    assert_eq!(external_bytes(&d), 0);
}

#[test]
fn tls_files_are_checked_before_anything_is_read() {
    let pki = Pki::new();
    let empty = pki.write("empty.pem", "");
    let out = feed(&[
        format!("--ca={}", empty.display()),
        "--to=https://127.0.0.1:1".to_owned(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no PEM CA certificate"),
        "{}",
        text(&out.stderr)
    );
    let ca = pki.write("ca.pem", &pki.ca.pem());
    let out = feed(&[
        format!("--ca={}", ca.display()),
        format!("--client-cert={}", ca.display()),
        format!("--client-key={}", empty.display()),
        "--to=https://127.0.0.1:1".to_owned(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("client key"),
        "{}",
        text(&out.stderr)
    );
    // Given, the files are checked even when no host is https.
    let out = feed(&[
        format!("--ca={}", empty.display()),
        "--to=http://127.0.0.1:1".to_owned(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no PEM CA certificate"),
        "{}",
        text(&out.stderr)
    );
    let out = feed(&[
        format!("--client-cert={}", ca.display()),
        format!("--client-key={}", empty.display()),
        "--to=http://127.0.0.1:1".to_owned(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("go with --ca"),
        "{}",
        text(&out.stderr)
    );
}
