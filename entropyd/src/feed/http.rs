//! The feeder's link to a host: a small blocking HTTP/1.1 client over TCP,
//! with TLS through rustls (ring provider, TLS 1.3 and 1.2).
//!
//! Contract:
//! - A host is a URL `https://HOST[:PORT][/PREFIX]` or, to loopback only,
//!   `http://...`: [`HostUrl::parse`] refuses plain http to any other
//!   address, and every connection checks again that a plain-http peer
//!   address is loopback. The API paths are appended to the prefix.
//! - TLS verification is always on: the server's certificate must chain to
//!   the `--ca` certificates and name the URL's host; `--client-cert` and
//!   `--client-key` add a client certificate (mutual TLS). There is no
//!   switch to turn verification off. The configuration is the one of
//!   [`crate::tls::client_config`], shared with `status` and `submit`,
//!   which reach a daemon through this link too ([`crate::client`]).
//! - A failed call says which kind it was ([`CallError`]): no connection,
//!   TLS refused (explained: an untrusted server certificate, one for
//!   another name, a server that asks for a client certificate or refuses
//!   ours), another failure, or an error status with the host's message.
//! - One request per connection (`Connection: close`, as the daemon
//!   serves). Each call, connecting included, ends within the link's
//!   timeout, so a slow or dead host costs its own thread that long at
//!   most. Name resolution aside: a host given by name is looked up anew
//!   on each call through the system resolver (`to_socket_addrs`, which
//!   takes no deadline), so the lookup is bounded by the resolver's own
//!   timeout (`timeout`/`attempts` in resolv.conf), not the link's; the
//!   link's timeout starts counting before it, so a slow lookup leaves
//!   less for the rest. A host given as an IP address needs no lookup.
//! - The TLS handshake completes before any entropy is written, so the
//!   entropy only exists in our wiped buffers and, encrypted, in rustls's
//!   record buffers (rustls buffers plaintext only during a handshake). The
//!   request head with the token and the body are wiped after use.
//! - A bearer token (`--token-file`) goes with every call: writes need it,
//!   and a non-loopback daemon needs it for reads too.
//! - The add answer is parsed in both forms: `{"accepted": N}` and ESXi's
//!   AddResult with the pool's figures beside `accepted`.
//!
//! Why not an HTTP crate such as ureq: its buffers would hold plaintext
//! entropy that nobody wipes, and its TLS feature brings its own choices of
//! roots; the hand-written client (`exchange`) is a request writer and an
//! answer reader over a `Conn`: TCP, rustls, or the Unix socket that
//! `status` and `submit` use for a local daemon.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, StreamOwned};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{AddAnswer, HostLink, LinkError, PoolFigures};
use crate::api::{self, ErrorResponse};
use crate::auth::ApiToken;

/// Default timeout of one call, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer body read.
const MAX_ANSWER: usize = 64 * 1024;

/// Room for an answer's status line and headers.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// http or https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: loopback only.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A host's parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUrl {
    /// The URL as given.
    pub text: String,
    /// http or https.
    pub scheme: Scheme,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (default 80 or 443).
    pub port: u16,
    /// The path before the API's paths, without a trailing `/`.
    pub prefix: String,
}

/// A URL or TLS setting the feeder refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

/// Why one call to a host failed. Its text is the feeder's [`LinkError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection: the name does not resolve, nothing accepts the
    /// connection, or plain http would leave loopback.
    Connect(String),
    /// TLS refused the connection, explained (see [`explain_tls`]).
    Tls(String),
    /// Any other failure: I/O, a timeout, an answer not understood.
    Failed(String),
    /// The host answered with an error status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The host's message.
        message: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect(m) | CallError::Tls(m) | CallError::Failed(m) => f.write_str(m),
            CallError::Refused { status, message } => write!(f, "refused ({status}): {message}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<CallError> for LinkError {
    fn from(e: CallError) -> LinkError {
        LinkError(e.to_string())
    }
}

/// What a TLS failure means for the user, with rustls's own words in
/// parentheses: `host` is the name the server's certificate must carry,
/// `client_cert` whether we had a client certificate to offer.
#[must_use]
pub fn explain_tls(e: &rustls::Error, host: &str, client_cert: bool) -> String {
    use rustls::Error as E;
    let why = match e {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not trusted: it does not chain to a certificate of --ca".to_owned()
        }
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "wrong host name: the server's certificate is not issued for {host:?} (call the daemon by a name its certificate carries)"
        ),
        E::InvalidCertificate(_) => "the server's certificate is refused".to_owned(),
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            if client_cert {
                "the server asked for a client certificate and did not take ours".to_owned()
            } else {
                "the server asked for a client certificate (mutual TLS): give --client-cert and --client-key".to_owned()
            }
        }
        E::AlertReceived(AlertDescription::HandshakeFailure) if !client_cert => {
            "the server refused the handshake; if it asks for a client certificate (mutual TLS), give --client-cert and --client-key".to_owned()
        }
        E::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied,
        ) if client_cert => {
            "the server refused our client certificate (--client-cert): it does not trust its issuer, or the certificate is not valid".to_owned()
        }
        _ => return e.to_string(),
    };
    format!("{why} ({e})")
}

impl HostUrl {
    /// Parses `http[s]://HOST[:PORT][/PREFIX]`. Plain http is refused
    /// unless the host is a loopback address or a name that resolves only
    /// to loopback addresses.
    ///
    /// # Errors
    /// [`UrlError`] naming the URL and what is wrong with it.
    pub fn parse(text: &str) -> Result<HostUrl, UrlError> {
        let bad = |why: &str| UrlError(format!("host URL {text:?}: {why}"));
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad("it must start with https:// (or http:// for loopback)"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) || authority.contains('@') {
            return Err(bad("no user, query or fragment is allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("the port must be 1..=65535"))?,
        };
        let url = HostUrl {
            text: text.to_owned(),
            scheme,
            host: host.to_owned(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
        };
        if scheme == Scheme::Http {
            let addrs = url
                .resolve()
                .map_err(|e| bad(&format!("cannot resolve the host: {e}")))?;
            if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
                return Err(bad(
                    "plain http is allowed to loopback only; use https:// with --ca",
                ));
            }
        }
        Ok(url)
    }

    fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The add answer, both forms.
#[derive(Debug, Deserialize)]
struct AddAnswerJson {
    accepted: u64,
    capacity: Option<u64>,
    currently_available: Option<u64>,
    low_watermark: Option<u64>,
    inactive_source_timeout: Option<u64>,
}

/// The GET answer.
#[derive(Debug, Deserialize)]
struct PoolJson {
    status: String,
    capacity: u64,
    currently_available: u64,
    low_watermark: u64,
    inactive_source_timeout: u64,
}

/// A link to one host over HTTP(S).
pub struct HttpLink {
    url: HostUrl,
    tls: Option<Arc<ClientConfig>>,
    token: Option<Arc<ApiToken>>,
    timeout: Duration,
}

impl fmt::Debug for HttpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpLink")
            .field("url", &self.url.text)
            .finish_non_exhaustive()
    }
}

/// An open connection: TCP, plain (loopback) or TLS, or the daemon's Unix
/// socket (`status` and `submit` to a local daemon).
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Conn {
    /// Sets both socket timeouts to what is left before `deadline`; a
    /// `TimedOut` error once it has passed.
    fn arm(&self, deadline: Instant) -> io::Result<()> {
        match self {
            Conn::Plain(s) => arm(s, deadline),
            Conn::Tls(s) => arm(&s.sock, deadline),
            Conn::Unix(s) => {
                let left = time_left(deadline)?;
                s.set_read_timeout(Some(left))?;
                s.set_write_timeout(Some(left))
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

impl HttpLink {
    /// A link to `url`. An https URL needs `tls`; an http one (loopback)
    /// ignores it: the scheme alone decides whether the link speaks TLS.
    ///
    /// # Errors
    /// [`UrlError`] for an https URL without a TLS configuration.
    pub fn new(
        url: HostUrl,
        tls: Option<Arc<ClientConfig>>,
        token: Option<Arc<ApiToken>>,
        timeout: Duration,
    ) -> Result<HttpLink, UrlError> {
        let tls = match (url.scheme, tls) {
            (Scheme::Https, None) => {
                return Err(UrlError(format!(
                    "{} is TLS: give --ca=PEM, the CA certificates its certificate must chain to (certificates are always verified)",
                    url.text
                )));
            }
            (Scheme::Https, tls) => tls,
            (Scheme::Http, _) => None,
        };
        Ok(HttpLink {
            url,
            tls,
            token,
            timeout,
        })
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, CallError> {
        // The lookup of a host name takes no deadline (the resolver's own
        // timeout bounds it): see the module doc.
        let addrs = self
            .url
            .resolve()
            .map_err(|e| CallError::Connect(format!("cannot resolve {}: {e}", self.url.host)))?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            if self.url.scheme == Scheme::Http && !addr.ip().is_loopback() {
                last = Some(format!("{addr} is not loopback: plain http refused"));
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let Some(tcp) = stream else {
            return Err(CallError::Connect(format!(
                "cannot connect: {}",
                last.unwrap_or_else(|| "no address".to_owned())
            )));
        };
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let name = ServerName::try_from(self.url.host.clone()).map_err(|e| {
            CallError::Failed(format!("{:?} is not a TLS server name: {e}", self.url.host))
        })?;
        let conn = ClientConnection::new(Arc::clone(tls), name)
            .map_err(|e| CallError::Failed(format!("TLS setup: {e}")))?;
        let mut tls = StreamOwned::new(conn, tcp);
        // Finish the handshake before anything secret is written.
        while tls.conn.is_handshaking() {
            arm(&tls.sock, deadline).map_err(|e| self.io_error("TLS handshake", &e))?;
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| self.io_error("TLS handshake", &e))?;
        }
        Ok(Conn::Tls(Box::new(tls)))
    }

    /// `GET path` (after the URL's prefix); the answer's body. For tools
    /// and tests (`/entropy/status`).
    ///
    /// # Errors
    /// As [`HostLink::external_pool`].
    pub fn get(&self, path: &str) -> Result<Vec<u8>, LinkError> {
        Ok(self.call("GET", path, None)?)
    }

    /// The URL this link calls.
    #[must_use]
    pub fn url(&self) -> &HostUrl {
        &self.url
    }

    fn io_error(&self, what: &str, e: &io::Error) -> CallError {
        if let Some(tls) = rustls_error(e) {
            let client_cert = self
                .tls
                .as_ref()
                .is_some_and(|c| c.client_auth_cert_resolver.has_certs());
            return CallError::Tls(format!(
                "{what}: {}",
                explain_tls(tls, &self.url.host, client_cert)
            ));
        }
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => CallError::Failed(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            )),
            _ => CallError::Failed(format!("{what}: {e}")),
        }
    }

    /// One request, `method path` (after the URL's prefix) with an
    /// optional JSON `body`; returns the answer's body (a non-200 status
    /// is [`CallError::Refused`] with the host's message). The request
    /// head, which may hold the token, is wiped after sending.
    ///
    /// # Errors
    /// The [`CallError`] saying what failed.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, CallError> {
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .ok_or_else(|| CallError::Failed("timeout too large".to_owned()))?;
        let mut conn = self.connect(deadline)?;
        let target = format!("{}{path}", self.url.prefix);
        let host = self.url.host_header();
        let request = Request {
            method,
            target: &target,
            host: &host,
            body,
            token: self.token.as_deref(),
        };
        let (status, answer) = exchange(&mut conn, &request, deadline).map_err(|e| match e {
            ExchangeError::Send(io) => self.io_error("sending the request", &io),
            // TLS's verdict (an alert) says more than the broken pipe it caused.
            ExchangeError::Read { read, send: _ } if rustls_error(&read).is_some() => {
                self.io_error("reading the answer", &read)
            }
            ExchangeError::Read { read, send } => {
                self.io_error("reading the answer", send.as_ref().unwrap_or(&read))
            }
            ExchangeError::Bad(msg) => {
                CallError::Failed(format!("the answer is not understood: {msg}"))
            }
        })?;
        if let Conn::Tls(s) = &mut conn {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        answer_body(status, answer)
    }
}

/// One request of the API: `method target` with an optional JSON `body`
/// and a bearer `token`.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    /// The `Host` header's value.
    pub(crate) host: &'a str,
    pub(crate) body: Option<&'a [u8]>,
    pub(crate) token: Option<&'a ApiToken>,
}

/// How [`exchange`] failed.
pub(crate) enum ExchangeError {
    /// Sending failed, other than by the peer's early close.
    Send(io::Error),
    /// Reading the answer failed; `send` is the broken pipe or reset of a
    /// send the peer cut short, if there was one.
    Read {
        read: io::Error,
        send: Option<io::Error>,
    },
    /// The answer is not HTTP this client reads.
    Bad(String),
}

/// Writes `request` on `conn` (the head, which may hold the token, wiped
/// after sending) and reads the answer: status and body, up to its
/// `Content-Length` (at most [`MAX_ANSWER`]). The peer may answer before
/// it has read the body (a refused token, a body over its limit) and
/// close: a send that then fails with a broken pipe or a reset stops, and
/// the answer already sent is read and returned. Every step ends by
/// `deadline`.
pub(crate) fn exchange(
    conn: &mut Conn,
    request: &Request<'_>,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), ExchangeError> {
    let head = request_head(
        request.method,
        request.target,
        request.host,
        request.body.map(<[u8]>::len),
        request.token,
    );
    let sent = send_all(conn, &head, deadline)
        .and_then(|()| request.body.map_or(Ok(()), |b| send_all(conn, b, deadline)))
        .and_then(|()| conn.flush());
    drop(head);
    // A peer that answered early (a refusal) and closed: read its answer.
    let send = match sent {
        Ok(()) => None,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Some(e)
        }
        Err(e) => return Err(ExchangeError::Send(e)),
    };
    read_answer(conn, deadline).map_err(|e| match (e, send) {
        (AnswerError::Io(read), send) => ExchangeError::Read { read, send },
        // The peer stopped our send and closed without a whole answer: the
        // send's failure says what happened.
        (AnswerError::Closed(_), Some(send)) => ExchangeError::Send(send),
        (AnswerError::Closed(msg), None) => ExchangeError::Bad(msg.to_owned()),
        (AnswerError::Bad(msg), _) => ExchangeError::Bad(msg),
    })
}

/// The body of an answer with `status`: a 200's, else
/// [`CallError::Refused`] with the host's message (every link's check,
/// TCP's and the Unix socket's).
pub(crate) fn answer_body(status: u16, body: Vec<u8>) -> Result<Vec<u8>, CallError> {
    if status == 200 {
        return Ok(body);
    }
    Err(CallError::Refused {
        status,
        message: refusal_message(&body),
    })
}

/// The message of a refusal: the API's error JSON, else the body as text.
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned())
}

/// The rustls error an I/O error of a TLS stream carries, if any.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Time left before `deadline`; a `TimedOut` error once it has passed.
fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the call ran out of time",
        ));
    }
    Ok(left)
}

/// Sets both timeouts of `sock` to what is left before `deadline`; a
/// `TimedOut` error once it has passed.
fn arm(sock: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = time_left(deadline)?;
    sock.set_read_timeout(Some(left))?;
    sock.set_write_timeout(Some(left))
}

impl HostLink for HttpLink {
    fn name(&self) -> &str {
        &self.url.text
    }

    fn external_pool(&mut self) -> Result<PoolFigures, LinkError> {
        let body = self.call("GET", api::PATH_EXTERNAL_POOL, None)?;
        let pool: PoolJson = serde_json::from_slice(&body)
            .map_err(|e| LinkError(format!("the external-pool answer is not understood: {e}")))?;
        Ok(PoolFigures {
            enabled: pool.status == api::STATUS_ENABLED,
            capacity: pool.capacity,
            currently_available: pool.currently_available,
            low_watermark: pool.low_watermark,
            inactive_source_timeout: pool.inactive_source_timeout,
        })
    }

    fn add(&mut self, data: &[u8]) -> Result<AddAnswer, LinkError> {
        let body = api::encode_add_body(data);
        let path = format!("{}?action=add", api::PATH_EXTERNAL_POOL);
        let answer = self.call("POST", &path, Some(&body))?;
        drop(body);
        let add: AddAnswerJson = serde_json::from_slice(&answer)
            .map_err(|e| LinkError(format!("the add answer is not understood: {e}")))?;
        let figures = match (add.capacity, add.currently_available) {
            (Some(capacity), Some(currently_available)) => Some(PoolFigures {
                enabled: true,
                capacity,
                currently_available,
                low_watermark: add.low_watermark.unwrap_or(0),
                inactive_source_timeout: add.inactive_source_timeout.unwrap_or(0),
            }),
            _ => None,
        };
        Ok(AddAnswer {
            accepted: add.accepted,
            figures,
        })
    }
}

/// The request head, allocated once at its final size (it may hold the
/// token) and wiped on drop.
fn request_head(
    method: &str,
    target: &str,
    host: &str,
    body_len: Option<usize>,
    token: Option<&ApiToken>,
) -> Zeroizing<Vec<u8>> {
    const AUTH: &[u8] = b"Authorization: Bearer ";
    let mut fixed = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(len) = body_len {
        fixed.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {len}\r\n"
        ));
    }
    let token_len = token.map_or(0, |t| AUTH.len() + t.as_bytes().len() + 2);
    let mut head = Zeroizing::new(Vec::with_capacity(fixed.len() + token_len + 2));
    head.extend_from_slice(fixed.as_bytes());
    if let Some(token) = token {
        head.extend_from_slice(AUTH);
        head.extend_from_slice(token.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn send_all(conn: &mut Conn, data: &[u8], deadline: Instant) -> io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        conn.arm(deadline)?;
        match conn.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

enum AnswerError {
    Io(io::Error),
    /// The peer closed before a whole answer (the message says where).
    Closed(&'static str),
    Bad(String),
}

/// Reads one answer: status and body (up to its `Content-Length`).
fn read_answer(conn: &mut Conn, deadline: Instant) -> Result<(u16, Vec<u8>), AnswerError> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut head: Option<(u16, usize, usize)> = None;
    loop {
        if head.is_none() {
            head = answer_head(&raw).map_err(|e| match (&*conn, raw.as_slice()) {
                // A TLS record (alert or handshake, version 3.x): a TLS
                // listener answering plain HTTP.
                (Conn::Plain(_), [0x15 | 0x16, 0x03, ..]) => AnswerError::Bad(
                    "it is TLS, not plain HTTP: the daemon listens on TLS; call it https://HOST:PORT with --ca=PEM".to_owned(),
                ),
                _ => AnswerError::Bad(e),
            })?;
        }
        match head {
            Some((_, head_len, length)) if raw.len() >= head_len.saturating_add(length) => break,
            None if raw.len() > MAX_ANSWER_HEAD => {
                return Err(AnswerError::Bad("the answer's head is too long".to_owned()));
            }
            _ => {}
        }
        conn.arm(deadline).map_err(AnswerError::Io)?;
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(AnswerError::Io(e)),
        }
    }
    let Some((status, head_len, length)) = head else {
        return Err(AnswerError::Closed(
            "the connection closed before an answer",
        ));
    };
    let body = raw
        .get(head_len..head_len.saturating_add(length))
        .ok_or(AnswerError::Closed("the answer's body was cut short"))?;
    Ok((status, body.to_vec()))
}

/// Status, head length and body length of a complete answer head in `raw`.
fn answer_head(raw: &[u8]) -> Result<Option<(u16, usize, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let status = response.code.ok_or("no status code")?;
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("no usable Content-Length")?;
    if length > MAX_ANSWER {
        return Err(format!(
            "an answer of {length} bytes is over the {MAX_ANSWER}-byte limit"
        ));
    }
    Ok(Some((status, head_len, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HostUrl::parse("https://host.example:8743/base/").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.prefix.as_str()),
            (Scheme::Https, "host.example", 8743, "/base")
        );
        let u = HostUrl::parse("https://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 443));
        assert_eq!(u.host_header(), "[::1]:443");
        let u = HostUrl::parse("http://127.0.0.1:8742").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.prefix.as_str()),
            (Scheme::Http, 8742, "")
        );
        assert!(HostUrl::parse("http://[::1]:8742").is_ok());
        for bad in [
            "ftp://x",
            "127.0.0.1:8742",
            "https://",
            "https://h:0",
            "https://h:99999",
            "https://h:x",
            "https://u@h",
            "https://h/p?q",
            "https://[::1",
            "https://[zz]:1",
        ] {
            assert!(HostUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for bad in [
            "http://10.0.0.1:8742",
            "http://192.0.2.7",
            "http://[2001:db8::1]:80",
        ] {
            let e = HostUrl::parse(bad).unwrap_err();
            assert!(e.0.contains("loopback only"), "{e}");
        }
        // https to anything is fine (verification decides).
        assert!(HostUrl::parse("https://10.0.0.1:8743").is_ok());
    }

    #[test]
    fn https_needs_a_ca_and_http_never_speaks_tls() {
        let url = HostUrl::parse("https://10.0.0.1:8743").unwrap();
        let e = HttpLink::new(url, None, None, DEFAULT_TIMEOUT).unwrap_err();
        assert!(e.0.contains("--ca"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&ca, made.cert.pem()).unwrap();
        let tls = crate::tls::client_config(&ca, None).unwrap();
        let url = HostUrl::parse("http://127.0.0.1:8742").unwrap();
        let link = HttpLink::new(url, Some(tls), None, DEFAULT_TIMEOUT).unwrap();
        assert!(link.tls.is_none());
    }

    #[test]
    fn answer_heads() {
        assert_eq!(answer_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            answer_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
            Ok(Some((200, 38, 2)))
        );
        assert!(answer_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(answer_head(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n").is_err());
    }
}
