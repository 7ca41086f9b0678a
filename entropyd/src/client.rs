//! The client side of the API: `entropyd submit` and the status fetch.
//!
//! Contract: a daemon is reached at a [`DaemonAddr`]: `IP:PORT` in plain
//! HTTP (loopback only), `https://HOST:PORT` over TLS, or `unix:/path`.
//! Over TCP, plain or TLS, the call is made by the feeder's HTTP/1.1 client
//! ([`HttpLink`]: one request per connection, the TLS handshake finished
//! before anything is written, the request head with the token wiped after
//! use), with one overall timeout per call, connecting included (a host
//! name's lookup aside: the resolver's own timeout bounds it, see
//! [`crate::feed::http`]). TLS always
//! verifies the daemon's certificate against the `--ca` certificates and
//! its name ([`crate::tls::client_config`], the one configuration `feed`
//! uses too); a failed handshake says why ([`ClientError::Tls`]).
//! Plain HTTP to an address other than loopback is refused before
//! connecting, and a token is never sent that way ([`ClientError::Setup`]):
//! the daemon serves other addresses only over TLS. The token, when given,
//! goes with every call, on TCP and on the Unix socket alike (a daemon off
//! loopback needs it for reads too).
//! [`Client::submit`] reads its input in pieces of at most
//! [`SUBMIT_CHUNK`] bytes, base64-encodes each into an add call, and stops
//! early when the pool takes less than a whole piece (the
//! pool is full: the rest would be discarded, so it is not read). Entropy
//! read from the input and the encoded bodies are wiped after use. A
//! refusal comes back as [`ClientError::Refused`] with the server's
//! message; a daemon that is not running as [`ClientError::Unreachable`],
//! so `entropyd status` can fall back to the state directory.
//!
//! On a Unix socket the exchange is the same (`feed::http::exchange`, over a
//! `Conn::Unix`): one request per connection, the answer read up to its
//! `Content-Length` (at most 64 KiB of body) with its status line and
//! headers left to [`httparse`], and an answer the server sends before
//! reading the body (a refusal) read and reported even if sending the
//! body then fails. The timeout there bounds the whole call, as on TCP.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use zeroize::Zeroizing;

use crate::api::{self, AddResponse, ExternalPoolResponse};
use crate::auth::ApiToken;
use crate::backend::StatusSnapshot;
use crate::failure::Failure;
use crate::feed::http::{
    CallError, Conn, ExchangeError, HostUrl, HttpLink, Request, answer_body, exchange,
};
use crate::server::ListenAddr;

/// Largest piece of raw entropy sent in one add: 1 MiB (about 1.4 MB of
/// JSON, well under the server's body limit).
pub const SUBMIT_CHUNK: usize = 1024 * 1024;

/// Default overall timeout of one call.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers at the address (connection refused or failed).
    Unreachable {
        /// The address tried.
        addr: String,
        /// What the transport said.
        detail: String,
    },
    /// The daemon answered with an error status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The transport failed after connecting (timeout, reset...).
    Transport(String),
    /// TLS refused the connection: an untrusted or misnamed server
    /// certificate, a server that asks for a client certificate or refuses
    /// ours (the message says which).
    Tls(String),
    /// The call cannot be made as asked (https without `--ca`, plain
    /// HTTP off loopback): nothing was sent.
    Setup(String),
    /// The daemon's answer could not be understood.
    BadAnswer(String),
    /// Reading the input failed.
    Input(io::Error),
}

impl ClientError {
    /// Whether the daemon simply is not running there.
    #[must_use]
    pub const fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// The command's failure: invalid input (exit 2) for a call that
    /// cannot be made as asked, else a runtime failure (exit 1).
    #[must_use]
    pub fn into_failure(self) -> Failure {
        match self {
            ClientError::Setup(_) => Failure::invalid(self.to_string()),
            _ => Failure::runtime(self.to_string()),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { addr, detail } => {
                write!(
                    f,
                    "no entropyd answers at {addr} (is `entropyd run` running?): {detail}"
                )
            }
            ClientError::Refused {
                status: 401,
                message,
            } => write!(
                f,
                "entropyd refused the request (401): {message} (the daemon's token goes in --token-file=PATH)"
            ),
            ClientError::Refused { status, message } => {
                write!(f, "entropyd refused the request ({status}): {message}")
            }
            ClientError::Transport(msg) => write!(f, "talking to entropyd failed: {msg}"),
            ClientError::Tls(msg) => write!(f, "TLS with entropyd failed: {msg}"),
            ClientError::Setup(msg) => f.write_str(msg),
            ClientError::BadAnswer(msg) => write!(f, "entropyd's answer is not understood: {msg}"),
            ClientError::Input(e) => write!(f, "reading the input failed: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Input(e) => Some(e),
            _ => None,
        }
    }
}

/// What [`Client::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitSummary {
    /// Bytes read from the input and sent.
    pub sent: u64,
    /// Bytes the pool accepted.
    pub accepted: u64,
    /// The pool took less than it was sent, so submitting stopped early.
    pub pool_full: bool,
}

/// Where a client finds the daemon: `IP:PORT` (plain HTTP, loopback
/// only), `unix:/path`, or `https://HOST:PORT` (TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonAddr {
    /// An address as the daemon's `--listen` takes it, in plain HTTP.
    Plain(ListenAddr),
    /// An `https://HOST[:PORT]` URL.
    Https(HostUrl),
}

impl DaemonAddr {
    /// Whether this is `https://0.0.0.0:PORT` or `https://[::]:PORT`: every
    /// address of the host, which no certificate names, so it cannot be
    /// called over TLS ([`Client::connect`] refuses it).
    #[must_use]
    pub fn names_every_address(&self) -> bool {
        matches!(self, DaemonAddr::Https(url)
            if url.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()))
    }
}

impl FromStr for DaemonAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("https://") {
            let url = HostUrl::parse(s).map_err(|e| e.to_string())?;
            return Ok(DaemonAddr::Https(url));
        }
        if s.starts_with("unix:") {
            return s
                .parse()
                .map(DaemonAddr::Plain)
                .map_err(|e: crate::server::ServerError| e.to_string());
        }
        s.parse().map(DaemonAddr::Plain).map_err(|_| {
            format!(
                "bad daemon address {s:?}: use IP:PORT (plain HTTP, loopback only, e.g. {}), https://HOST:PORT (TLS, with --ca=PEM) or unix:/path/to/socket",
                crate::server::DEFAULT_LISTEN
            )
        })
    }
}

impl fmt::Display for DaemonAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonAddr::Plain(listen) => write!(f, "{listen}"),
            DaemonAddr::Https(url) => f.write_str(&url.text),
        }
    }
}

/// Where the daemon listens, and how to reach it.
#[derive(Debug)]
enum Target {
    /// TCP, plain (loopback) or TLS (the link holds the token).
    Tcp(HttpLink),
    /// A Unix socket, one connection per call.
    Unix {
        path: PathBuf,
        timeout: Duration,
        token: Option<Arc<ApiToken>>,
    },
}

/// A client for one daemon.
#[derive(Debug)]
pub struct Client {
    target: Target,
}

impl Client {
    /// A client for the daemon at `listen` in plain HTTP, authorizing
    /// calls with `token`, each call limited to `timeout` overall.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn new(
        listen: &ListenAddr,
        token: Option<ApiToken>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Client::connect(
            &DaemonAddr::Plain(listen.clone()),
            None,
            token.map(Arc::new),
            timeout,
        )
    }

    /// A client for the daemon at `addr`, with `tls` for an https address,
    /// authorizing calls with `token`, each call limited to `timeout`
    /// overall. Nothing is sent yet.
    ///
    /// # Errors
    /// [`ClientError::Setup`] for an https address without `tls`, or a
    /// TCP address in plain HTTP other than loopback (the message says
    /// why; with a token: that it is not sent in clear).
    pub fn connect(
        addr: &DaemonAddr,
        tls: Option<Arc<ClientConfig>>,
        token: Option<Arc<ApiToken>>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let url = match addr {
            DaemonAddr::Plain(ListenAddr::Unix(path)) => {
                return Ok(Client {
                    target: Target::Unix {
                        path: path.clone(),
                        timeout,
                        token,
                    },
                });
            }
            DaemonAddr::Plain(ListenAddr::Tcp(sock)) if !sock.ip().is_loopback() => {
                let why = if token.is_some() {
                    format!("refusing to send the API token in clear to {sock}")
                } else {
                    format!("refusing plain HTTP to {sock}")
                };
                return Err(ClientError::Setup(format!(
                    "{why}: plain HTTP is for loopback only (the daemon serves other addresses only over TLS); use --listen=https://{sock} with --ca=PEM"
                )));
            }
            DaemonAddr::Plain(ListenAddr::Tcp(sock)) => {
                HostUrl::parse(&format!("http://{sock}"))
                    .map_err(|e| ClientError::Setup(e.to_string()))?
            }
            DaemonAddr::Https(url) if addr.names_every_address() => {
                return Err(ClientError::Setup(format!(
                    "{} is every address of the host, and no certificate names it: pass --listen=https://NAME:{} naming a host the daemon's certificate carries",
                    url.text, url.port
                )));
            }
            DaemonAddr::Https(url) => url.clone(),
        };
        // The link refuses https without `tls` (nothing sent: Setup).
        let link = HttpLink::new(url, tls, token, timeout)
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Client {
            target: Target::Tcp(link),
        })
    }

    /// `GET /entropy/status`.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when no daemon runs there,
    /// [`ClientError::Refused`], [`ClientError::Transport`],
    /// [`ClientError::BadAnswer`].
    pub fn status(&self) -> Result<StatusSnapshot, ClientError> {
        let body = self.call("GET", api::PATH_STATUS, None)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `GET /entropy/external-pool`.
    ///
    /// # Errors
    /// As [`Client::status`].
    pub fn external_pool(&self) -> Result<ExternalPoolResponse, ClientError> {
        let body = self.call("GET", api::PATH_EXTERNAL_POOL, None)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// One add call with `data`; returns how many bytes the pool accepted.
    ///
    /// # Errors
    /// As [`Client::status`]; a refusal (401, 413, ...) is
    /// [`ClientError::Refused`].
    pub fn add(&self, data: &[u8]) -> Result<u64, ClientError> {
        let body = api::encode_add_body(data);
        let target = format!("{}?action=add", api::PATH_EXTERNAL_POOL);
        let answer = self.call("POST", &target, Some(body.as_slice()))?;
        let add: AddResponse =
            serde_json::from_slice(&answer).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(add.accepted)
    }

    /// Reads `input` to its end (or until the pool is full) and adds it in
    /// pieces of at most `chunk` bytes (clamped to `1..=SUBMIT_CHUNK`).
    ///
    /// # Errors
    /// [`ClientError::Input`] when reading fails, or any error of
    /// [`Client::add`]; bytes accepted before the error stay accepted.
    pub fn submit(&self, input: &mut dyn Read, chunk: usize) -> Result<SubmitSummary, ClientError> {
        let chunk = chunk.clamp(1, SUBMIT_CHUNK);
        let mut buf = Zeroizing::new(vec![0u8; chunk]);
        let mut summary = SubmitSummary::default();
        loop {
            let n = fill(input, &mut buf).map_err(ClientError::Input)?;
            let Some(piece) = buf.get(..n).filter(|p| !p.is_empty()) else {
                return Ok(summary);
            };
            let accepted = self.add(piece)?;
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            summary.sent = summary.sent.saturating_add(n64);
            summary.accepted = summary.accepted.saturating_add(accepted.min(n64));
            if accepted < n64 {
                summary.pool_full = true;
                return Ok(summary);
            }
            if n < chunk {
                return Ok(summary);
            }
        }
    }

    /// One call, `method target` with an optional JSON `body` and the
    /// token, over the link or the Unix socket; the answer's body (a
    /// non-200 status is [`ClientError::Refused`]).
    fn call(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, ClientError> {
        match &self.target {
            Target::Tcp(link) => link
                .call(method, target, body)
                .map_err(|e| call_error(&link.url().text, e)),
            Target::Unix {
                path,
                timeout,
                token,
            } => unix_call(
                path,
                *timeout,
                &Request {
                    method,
                    target,
                    host: "localhost",
                    body,
                    token: token.as_deref(),
                },
            ),
        }
    }
}

/// The client's error for a failed call to the daemon at `addr`.
fn call_error(addr: &str, e: CallError) -> ClientError {
    match e {
        CallError::Connect(detail) => ClientError::Unreachable {
            addr: addr.to_owned(),
            detail,
        },
        CallError::Tls(msg) => ClientError::Tls(msg),
        CallError::Failed(msg) => ClientError::Transport(msg),
        CallError::Refused { status, message } => ClientError::Refused { status, message },
    }
}

/// One request on the Unix socket at `socket`, `request`; returns the
/// answer's body (a non-200 status becomes [`ClientError::Refused`]). The
/// exchange is the TCP link's ([`exchange`]: an answer the daemon sends
/// before reading the body is read and reported); the whole call,
/// connecting aside, ends by `timeout`.
fn unix_call(
    socket: &Path,
    timeout: Duration,
    request: &Request<'_>,
) -> Result<Vec<u8>, ClientError> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            ClientError::Transport(format!("no answer within {} ms", timeout.as_millis()))
        }
        _ => ClientError::Transport(e.to_string()),
    };
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or_else(|| ClientError::Transport(format!("timeout {timeout:?} is too large")))?;
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::Unreachable {
            addr: format!("unix:{}", socket.display()),
            detail: e.to_string(),
        },
        _ => ClientError::Transport(format!("cannot connect to {}: {e}", socket.display())),
    })?;
    let (status, body) =
        exchange(&mut Conn::Unix(stream), request, deadline).map_err(|e| match e {
            ExchangeError::Send(e) | ExchangeError::Read { read: e, .. } => io_err(e),
            ExchangeError::Bad(msg) => ClientError::BadAnswer(msg),
        })?;
    answer_body(status, body).map_err(|e| call_error(&format!("unix:{}", socket.display()), e))
}

/// Fills `buf` from `input` as far as it goes; returns the bytes read
/// (fewer than `buf.len()` only at the end of the input).
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0usize;
    while let Some(tail) = buf.get_mut(filled..).filter(|t| !t.is_empty()) {
        match input.read(tail) {
            Ok(0) => break,
            Ok(n) => filled = filled.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::EXIT_INVALID;

    /// The setup error of a call to `addr` (with a token when `token`),
    /// which must be invalid input.
    fn setup_error(addr: &str, token: bool) -> String {
        let addr: DaemonAddr = addr.parse().unwrap();
        let token = token.then(|| Arc::new(ApiToken::from_bytes(b"0123456789abcdef0123").unwrap()));
        match Client::connect(&addr, None, token, DEFAULT_CLIENT_TIMEOUT) {
            Err(e @ ClientError::Setup(_)) => {
                let text = e.to_string();
                assert_eq!(e.into_failure().status, EXIT_INVALID);
                text
            }
            other => panic!("{addr}: {other:?}"),
        }
    }

    /// The request head a Unix-socket peer gets for a read, answered 500.
    fn unix_read_head(token: Option<Arc<ApiToken>>) -> String {
        use std::io::Write;
        use std::os::unix::net::UnixListener;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            let body = b"no";
            let answer = format!("HTTP/1.1 500 No\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(answer.as_bytes()).unwrap();
            s.write_all(body).unwrap();
            String::from_utf8(head).unwrap()
        });
        let addr = DaemonAddr::Plain(ListenAddr::Unix(path));
        let client = Client::connect(&addr, None, token, DEFAULT_CLIENT_TIMEOUT).unwrap();
        match client.status() {
            Err(ClientError::Refused { status: 500, .. }) => {}
            other => panic!("{other:?}"),
        }
        peer.join().unwrap()
    }

    #[test]
    fn reads_over_the_unix_socket_carry_the_token_too() {
        let token = Arc::new(ApiToken::from_bytes(b"0123456789abcdef0123").unwrap());
        let head = unix_read_head(Some(token));
        assert!(
            head.starts_with("GET /entropy/status ")
                && head.contains("Authorization: Bearer 0123456789abcdef0123\r\n"),
            "{head}"
        );
        let head = unix_read_head(None);
        assert!(!head.contains("Authorization"), "{head}");
    }

    #[test]
    fn daemon_addresses_parse_in_their_three_forms() {
        assert!(matches!(
            "127.0.0.1:8742".parse(),
            Ok(DaemonAddr::Plain(ListenAddr::Tcp(_)))
        ));
        assert!(matches!(
            "unix:/run/x.sock".parse(),
            Ok(DaemonAddr::Plain(ListenAddr::Unix(_)))
        ));
        let Ok(DaemonAddr::Https(url)) = "https://host.example:8743".parse() else {
            panic!("https")
        };
        assert_eq!((url.host.as_str(), url.port), ("host.example", 8743));
        assert_eq!(
            DaemonAddr::Https(url).to_string(),
            "https://host.example:8743"
        );
        let e = "unix:".parse::<DaemonAddr>().unwrap_err();
        assert!(e.contains("socket path"), "{e}");
        for bad in ["somewhere", "http://127.0.0.1:8742", "ftp://x:1"] {
            let e = bad.parse::<DaemonAddr>().unwrap_err();
            assert!(e.contains("https://HOST:PORT"), "{bad}: {e}");
        }
        assert!("https://h:0".parse::<DaemonAddr>().is_err());
    }

    #[test]
    fn calls_that_cannot_be_made_safely_are_refused_before_connecting() {
        // Plain HTTP off loopback: never with the token, and not without.
        let e = setup_error("10.0.0.1:8742", true);
        assert!(
            e.contains("refusing to send the API token in clear to 10.0.0.1:8742")
                && e.contains("--listen=https://10.0.0.1:8742"),
            "{e}"
        );
        let e = setup_error("10.0.0.1:8742", false);
        assert!(e.contains("refusing plain HTTP"), "{e}");
        // https needs --ca; an unspecified address names no certificate.
        let e = setup_error("https://127.0.0.1:8743", true);
        assert!(e.contains("give --ca=PEM"), "{e}");
        let e = setup_error("https://0.0.0.0:8743", false);
        assert!(e.contains("every address"), "{e}");
        // Loopback in plain HTTP and a Unix socket are fine, token or not.
        let token = Arc::new(ApiToken::from_bytes(b"0123456789abcdef0123").unwrap());
        for ok in ["127.0.0.1:8742", "[::1]:8742", "unix:/run/x.sock"] {
            let addr: DaemonAddr = ok.parse().unwrap();
            for token in [None, Some(Arc::clone(&token))] {
                assert!(Client::connect(&addr, None, token, DEFAULT_CLIENT_TIMEOUT).is_ok());
            }
        }
    }
}
