//! The fleet end to end, with the real binaries on 127.0.0.1: daemons
//! serving their API over TLS (`--tls-cert/--tls-key`, one with
//! `--tls-client-ca` for mutual TLS), external-only sources, and one
//! `entropyd feed` from a SoftHSM2 token. Certificates are made at test
//! time (rcgen); the token lives in a temp dir.
//!
//! What the daemons say is read over TLS with the feeder's own client
//! ([`HttpLink`]) and from their audit lines (`entropyd: audit event=...`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod e2e_common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_common::{Env, TOKEN, WAIT, bin, text, wait_until};
use entropyd::auth::ApiToken;
use entropyd::feed::HostLink;
use entropyd::feed::http::{HostUrl, HttpLink};
use entropyd::tls::client_config as tls_config;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

fn write_secret(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The fleet's files: a CA, a server certificate for localhost and
/// 127.0.0.1, a client certificate, a SoftHSM2 token, a token file.
struct Fleet {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_pem: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    hsm_conf: PathBuf,
    module: PathBuf,
    slot: u64,
    pin: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        let module = MODULES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "SoftHSM2 is not installed: run `apt-get install softhsm2` \
                     (`cargo xtask ci` installs it when it runs as root)"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "fleet CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let hsm_conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &hsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &hsm_conf)
            .args(["--init-token", "--free", "--label", "fleet"])
            .args(["--pin", "1234", "--so-pin", "5678"])
            .output()
            .unwrap_or_else(|e| panic!("softhsm2-util cannot run ({e}): apt-get install softhsm2"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        let slot = said
            .split("reassigned to slot ")
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no slot in {said}"));
        let pin = dir.path().join("pin");
        write_secret(&pin, "1234\n");
        let mut fleet = Fleet {
            dir,
            ca,
            ca_pem,
            server: (PathBuf::new(), PathBuf::new()),
            client: (PathBuf::new(), PathBuf::new()),
            hsm_conf,
            module,
            slot,
            pin,
        };
        fleet.server = fleet.leaf(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &fleet.ca,
        );
        fleet.client = fleet.leaf(
            "feeder",
            &["feeder.example"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &fleet.ca,
        );
        fleet
    }

    fn leaf(
        &self,
        name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
        ca: &CertifiedIssuer<'static, KeyPair>,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        write_secret(&key_path, &key.serialize_pem());
        (cert_path, key_path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `feed` arguments: the HSM, the CA, the client identity, the token.
    fn feed_args(&self, token: &Path) -> Vec<String> {
        vec![
            format!("--from-pkcs11={}", self.module.display()),
            format!("--slot={}", self.slot),
            format!("--pin-file={}", self.pin.display()),
            format!("--ca={}", self.ca_pem.display()),
            format!("--client-cert={}", self.client.0.display()),
            format!("--client-key={}", self.client.1.display()),
            format!("--token-file={}", token.display()),
        ]
    }
}

/// A daemon over TLS on a fixed loopback address; killed on drop.
struct TlsDaemon {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl TlsDaemon {
    fn start(fleet: &Fleet, env: &Env, addr: SocketAddr, mtls: bool) -> TlsDaemon {
        let mut cmd = Command::new(bin());
        cmd.env_remove("ENTROPYD_STATE_DIR")
            .arg(format!("--state-dir={}", env.state.display()))
            .arg("run")
            .arg(format!("--listen={addr}"))
            .arg("--sources=8")
            .arg(format!("--token-file={}", env.token.display()))
            .arg(format!("--tls-cert={}", fleet.server.0.display()))
            .arg(format!("--tls-key={}", fleet.server.1.display()))
            // Drain to a sink, so a feeder keeps sending.
            .arg(format!("--sink={}", env.path("sink").display()))
            .arg("--feed-rate=8192");
        if mtls {
            cmd.arg(format!("--tls-client-ca={}", fleet.ca_pem.display()));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let theirs = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = theirs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut d = TlsDaemon { child, addr, log };
        let start = Instant::now();
        loop {
            let bound = d.log().lines().find_map(|l| {
                l.split_once("listening on ")
                    .and_then(|(_, a)| a.trim().parse::<SocketAddr>().ok())
            });
            if let Some(bound) = bound {
                d.addr = bound;
                return d;
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("entropyd run exited ({status}):\n{}", d.log());
            }
            assert!(start.elapsed() < WAIT, "not listening:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The status JSON, over TLS with the fleet's client identity.
    fn status(&self, fleet: &Fleet) -> serde_json::Value {
        let tls = tls_config(&fleet.ca_pem, Some((&fleet.client.0, &fleet.client.1))).unwrap();
        let token = ApiToken::from_bytes(TOKEN.as_bytes()).unwrap();
        let link = HttpLink::new(
            HostUrl::parse(&self.url()).unwrap(),
            Some(tls),
            Some(Arc::new(token)),
            WAIT,
        )
        .unwrap();
        serde_json::from_slice(&link.get("/entropy/status").unwrap()).unwrap()
    }

    fn pool(&self, fleet: &Fleet) -> entropyd::feed::PoolFigures {
        let tls = tls_config(&fleet.ca_pem, Some((&fleet.client.0, &fleet.client.1))).unwrap();
        let token = ApiToken::from_bytes(TOKEN.as_bytes()).unwrap();
        let mut link = HttpLink::new(
            HostUrl::parse(&self.url()).unwrap(),
            Some(tls),
            Some(Arc::new(token)),
            WAIT,
        )
        .unwrap();
        link.external_pool().unwrap()
    }

    fn external_bytes(&self, fleet: &Fleet) -> u64 {
        let st = self.status(fleet);
        st["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == "external")
            .unwrap()["samples"]
            .as_u64()
            .unwrap()
    }

    fn audits(&self, event: &str) -> usize {
        let needle = format!("audit event={event}");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running feeder; killed on drop.
struct Feeder {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Feeder {
    fn start(fleet: &Fleet, args: &[String]) -> Feeder {
        let mut child = Command::new(bin())
            .env("SOFTHSM2_CONF", &fleet.hsm_conf)
            .arg("feed")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let theirs = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = theirs.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        Feeder { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < WAIT, "the feeder did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "the feeder exited {status}");
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn fleet_env() -> Env {
    let env = Env::new();
    env.set(&[
        "--memory-cache-size=64",
        "--storage-cache-size=0",
        "--external-entropy-lost-timeout=5",
    ]);
    env
}

fn is_full(d: &TlsDaemon, fleet: &Fleet) -> bool {
    let p = d.pool(fleet);
    p.currently_available == p.capacity
}

#[test]
fn three_daemons_over_tls_fed_from_softhsm() {
    let fleet = Fleet::new();
    let envs = [fleet_env(), fleet_env(), fleet_env()];
    // Daemon 0 is restarted on its address; the others pick their port.
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = free_addr();
    let mut daemons: Vec<Option<TlsDaemon>> = envs
        .iter()
        .zip([first, any, any])
        .enumerate()
        .map(|(i, (e, a))| Some(TlsDaemon::start(&fleet, e, a, i == 2)))
        .collect();
    let mut args = fleet.feed_args(&envs[0].token);
    let addrs: Vec<SocketAddr> = daemons.iter().flatten().map(|d| d.addr).collect();
    for a in &addrs {
        args.push(format!("--to=https://127.0.0.1:{}", a.port()));
    }
    args.push("--interval=1".to_owned());
    args.push("--timeout=5".to_owned());

    // --once first: every daemon reaches full.
    let mut once = args.clone();
    once.push("--once".to_owned());
    let out = Command::new(bin())
        .env("SOFTHSM2_CONF", &fleet.hsm_conf)
        .arg("feed")
        .args(&once)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert_eq!(
        said.lines().filter(|l| l.contains(" ok full ")).count(),
        3,
        "{said}"
    );

    // Then steadily.
    let feeder = Feeder::start(&fleet, &args);
    for ds in daemons.iter().flatten() {
        let fed = ds.external_bytes(&fleet);
        wait_until("every daemon fed steadily", || {
            ds.external_bytes(&fleet) > fed + 8192
        });
    }

    // Daemon 0 killed: the others stay fed; it comes back on its address
    // and is brought back to full.
    daemons[0] = None;
    wait_until("a failed round for the killed daemon", || {
        feeder
            .output()
            .contains(&format!("https://127.0.0.1:{} FAILED", addrs[0].port()))
    });
    for ds in daemons.iter().flatten() {
        let fed = ds.external_bytes(&fleet);
        wait_until("the others still fed", || {
            ds.external_bytes(&fleet) > fed + 8192
        });
        assert_eq!(ds.status(&fleet)["external"]["lost"], false);
    }
    daemons[0] = Some(TlsDaemon::start(&fleet, &envs[0], addrs[0], false));
    let back = daemons[0].as_ref().unwrap();
    wait_until("the restarted daemon refilled", || {
        back.external_bytes(&fleet) > 65536
    });

    // The feeder stops: each daemon reports the feeder inactive and then
    // external entropy lost after its timeouts ...
    feeder.stop();
    for ds in daemons.iter().flatten() {
        wait_until("feeder inactive", || ds.audits("feeder-inactive") >= 1);
        wait_until("external lost", || ds.audits("external-lost") >= 1);
        assert_eq!(ds.status(&fleet)["external"]["lost"], true);
    }
    // ... and recovers when it comes back.
    let feeder = Feeder::start(&fleet, &args);
    for ds in daemons.iter().flatten() {
        wait_until("feeder active", || ds.audits("feeder-active") >= 1);
        wait_until("external recovered", || {
            ds.audits("external-recovered") >= 1
        });
        wait_until("not lost", || {
            ds.status(&fleet)["external"]["lost"] == false
        });
    }
    feeder.stop();
    for ds in daemons.iter().flatten() {
        assert!(is_full(ds, &fleet) || ds.external_bytes(&fleet) > 65536);
    }
}

#[test]
fn a_wrong_token_or_an_untrusted_client_gets_nothing_and_an_audit_line() {
    let fleet = Fleet::new();
    let env = fleet_env();
    let d = TlsDaemon::start(&fleet, &env, "127.0.0.1:0".parse().unwrap(), true);
    let to = format!("--to={}", d.url());

    // A wrong token: the GET passes (loopback reads are open), the add is
    // refused.
    let bad = fleet.path("bad-token");
    write_secret(&bad, "not-the-right-token-at-all-0000\n");
    let mut args = fleet.feed_args(&bad);
    args.extend([to.clone(), "--once".to_owned()]);
    let out = Command::new(bin())
        .env("SOFTHSM2_CONF", &fleet.hsm_conf)
        .arg("feed")
        .args(&args)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED") && said.contains("401"), "{said}");
    wait_until("a write-refused audit line", || {
        d.audits("write-refused") >= 1
    });
    assert_eq!(d.external_bytes(&fleet), 0);

    // A client certificate from another CA: refused in the handshake.
    let rogue = {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let (cert, key) = fleet.leaf(
        "rogue",
        &["rogue.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &rogue,
    );
    let mut args = fleet.feed_args(&env.token);
    for a in &mut args {
        if a.starts_with("--client-cert=") {
            *a = format!("--client-cert={}", cert.display());
        } else if a.starts_with("--client-key=") {
            *a = format!("--client-key={}", key.display());
        }
    }
    args.extend([to, "--once".to_owned()]);
    let out = Command::new(bin())
        .env("SOFTHSM2_CONF", &fleet.hsm_conf)
        .arg("feed")
        .args(&args)
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED"), "{said}");
    wait_until("a tls-refused audit line", || d.audits("tls-refused") >= 1);
    assert_eq!(d.external_bytes(&fleet), 0);
}

#[test]
fn plain_http_off_loopback_is_refused_by_both_sides() {
    // The daemon: a non-loopback listener without TLS does not start.
    let env = Env::new();
    let out = Command::new(bin())
        .env_remove("ENTROPYD_STATE_DIR")
        .arg(format!("--state-dir={}", env.state.display()))
        .args(["run", "--listen=0.0.0.0:0", "--sources=8"])
        .arg(format!("--token-file={}", env.token.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // The feeder: plain http to anything but loopback is refused.
    let out = Command::new(bin())
        .args(["feed", "--from-file=/dev/urandom", "--once"])
        .arg("--to=http://192.0.2.7:8742")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("loopback only"));
}

#[test]
fn off_loopback_the_feeder_authorizes_its_reads_too() {
    let fleet = Fleet::new();
    let env = fleet_env();
    // Listening on every address: reads need authorization there.
    let d = TlsDaemon::start(&fleet, &env, "0.0.0.0:0".parse().unwrap(), false);
    let to = format!("--to={}", d.url());
    let once = |args: Vec<String>| {
        Command::new(bin())
            .env("SOFTHSM2_CONF", &fleet.hsm_conf)
            .arg("feed")
            .args(args)
            .args([to.as_str(), "--once"])
            .output()
            .unwrap()
    };
    // Without the token even the GET is refused: nothing is read or sent.
    let no_token: Vec<String> = fleet
        .feed_args(&env.token)
        .into_iter()
        .filter(|a| !a.starts_with("--token-file="))
        .collect();
    let out = once(no_token);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED") && said.contains("sent=0"), "{said}");
    wait_until("a read-refused audit line", || {
        d.audits("read-refused") >= 1
    });
    assert_eq!(d.external_bytes(&fleet), 0);
    // With it, the host is filled.
    let out = once(fleet.feed_args(&env.token));
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains(" ok full "), "{said}");
    // The daemon drains toward its sink from the moment it is full, so
    // "full" may already be past: what it took is the proof.
    assert!(is_full(&d, &fleet) || d.external_bytes(&fleet) > 65536);
}
