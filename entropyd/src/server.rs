//! The HTTP/1.1 API server: a small fixed pool of worker threads over a
//! loopback TCP or Unix socket listener.
//!
//! Contract:
//! - Requests are parsed by [`httparse`] (the parser hyper uses); this file
//!   only frames them. One request per connection (`Connection: close`),
//!   bodies only with `Content-Length` (chunked is refused with 411), a
//!   request head of at most [`MAX_HEAD_LEN`] bytes and [`MAX_HEADERS`]
//!   headers (431 otherwise), a body of at most
//!   [`ServerConfig::body_limit`] bytes, refused with 413 *before* any of it
//!   is read.
//! - Bounded resources: exactly [`ServerConfig::workers`] threads, each
//!   blocking in `accept` on a shared listener and serving one connection at
//!   a time; further connections wait in the kernel's backlog. Every
//!   connection has one deadline ([`ServerConfig::request_timeout`]) for the
//!   whole request, enforced on every read, so a slow client holds a worker
//!   for at most that long (408), and never the daemon's main loop.
//! - Authorization: writes (the add call) need `Authorization: Bearer
//!   <token>` when a token is configured (401 otherwise, nothing read or
//!   credited). On TCP without a token, writes are disabled (403). On a
//!   Unix socket without a token, the socket's permissions are the
//!   authorization: it is created with mode 0600 (owner only) or 0660
//!   (owner and group), inside a private directory first and then renamed
//!   into place, so no other user can connect in between.
//! - TCP listens on loopback addresses only: the API has no TLS, so a
//!   bearer token must not cross a network.
//! - Every refusal answers a JSON [`ErrorResponse`](crate::api::ErrorResponse)
//!   and credits nothing; only a fully read, valid, authorized add reaches
//!   [`PoolBackend::add_external`].
//! - [`ApiServer::stop`] (also run on drop) stops accepting and drops
//!   requests still being received (nothing of them is credited; a request
//!   already received is answered), and returns within about 100 ms, never
//!   later than the request timeout plus two seconds.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::api::{self, ApiError, Route};
use crate::auth::ApiToken;
use crate::backend::PoolBackend;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8742";
/// Default number of worker threads.
pub const DEFAULT_WORKERS: usize = 4;
/// Most worker threads a server may have.
pub const MAX_WORKERS: usize = 64;
/// Default deadline for receiving one whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 32;
/// Socket mode for a Unix socket only its owner may use.
pub const SOCKET_MODE_OWNER: u32 = 0o600;
/// Socket mode for a Unix socket its owner and group may use.
pub const SOCKET_MODE_GROUP: u32 = 0o660;

/// How long a refused request's unread body is drained before closing, so
/// the client can read the refusal instead of a connection reset.
const LINGER_TIME: Duration = Duration::from_millis(250);
/// Most bytes drained after a refusal.
const LINGER_BYTES: usize = 64 * 1024;
/// Longest single wait for request bytes: how quickly a worker busy with a
/// slow client notices a shutdown.
const READ_SLICE: Duration = Duration::from_millis(100);
/// How often [`ApiServer::stop`] re-checks its workers.
const STOP_POLL: Duration = Duration::from_millis(10);
/// Every this many polls, stop sends another wake-up connection.
const STOP_REWAKE_POLLS: u32 = 50;

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A loopback TCP address (`127.0.0.1:8742`, `[::1]:8742`; port 0 picks
    /// a free port).
    Tcp(SocketAddr),
    /// A Unix socket path, written `unix:/run/entropyd/api.sock`.
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ServerError::Config(
                    "--listen=unix: needs a socket path, e.g. unix:/run/entropyd/api.sock"
                        .to_owned(),
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| {
            ServerError::Config(format!(
                "bad listen address {s:?}: use IP:PORT (e.g. {DEFAULT_LISTEN}) or unix:/path/to/socket"
            ))
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: ListenAddr,
    /// The write token; `None` disables writes on TCP and leaves them to
    /// the socket's permissions on a Unix socket.
    pub token: Option<ApiToken>,
    /// Worker threads, `1..=MAX_WORKERS`.
    pub workers: usize,
    /// Largest request body in bytes (see [`api::DEFAULT_BODY_LIMIT`]).
    pub body_limit: usize,
    /// Deadline for receiving one whole request.
    pub request_timeout: Duration,
    /// Mode of a Unix socket: [`SOCKET_MODE_OWNER`] or [`SOCKET_MODE_GROUP`].
    pub socket_mode: u32,
}

impl ServerConfig {
    /// A configuration with the defaults: no token, [`DEFAULT_WORKERS`],
    /// [`api::DEFAULT_BODY_LIMIT`], [`DEFAULT_REQUEST_TIMEOUT`], socket mode
    /// 0600.
    #[must_use]
    pub fn new(listen: ListenAddr) -> Self {
        ServerConfig {
            listen,
            token: None,
            workers: DEFAULT_WORKERS,
            body_limit: api::DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            socket_mode: SOCKET_MODE_OWNER,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// A configuration value is not allowed; the message says which.
    Config(String),
    /// Binding the listener failed.
    Bind {
        /// The address.
        addr: ListenAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Another OS operation (socket permissions, worker threads) failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(msg) => f.write_str(msg),
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Config(_) => None,
            ServerError::Bind { source, .. } | ServerError::Io { source, .. } => Some(source),
        }
    }
}

/// A running API server. Stop it with [`ApiServer::stop`] or by dropping it.
#[derive(Debug)]
pub struct ApiServer {
    addr: ListenAddr,
    shutdown: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// The socket file we created, with its device and inode, so stop
    /// removes it only while it is still ours.
    socket_file: Option<(PathBuf, u64, u64)>,
    request_timeout: Duration,
}

impl ApiServer {
    /// Validates `config`, binds the listener and starts the workers.
    ///
    /// # Errors
    /// [`ServerError::Config`] for a non-loopback TCP address, a worker
    /// count outside `1..=MAX_WORKERS`, a zero timeout or body limit, a
    /// socket mode other than 0600/0660, an existing non-socket file at the
    /// socket path, or another process already listening there;
    /// [`ServerError::Bind`] when the address cannot be bound;
    /// [`ServerError::Io`] when the socket's permissions cannot be set or a
    /// worker thread cannot be started.
    pub fn start(
        config: ServerConfig,
        backend: Arc<dyn PoolBackend>,
    ) -> Result<ApiServer, ServerError> {
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(ServerError::Config(format!(
                "workers={} is out of range 1..={MAX_WORKERS}",
                config.workers
            )));
        }
        if config.request_timeout.is_zero() || config.body_limit == 0 {
            return Err(ServerError::Config(
                "request timeout and body limit must be greater than zero".to_owned(),
            ));
        }
        let (listener, addr, socket_file) = match &config.listen {
            ListenAddr::Tcp(sock) => {
                if !sock.ip().is_loopback() {
                    return Err(ServerError::Config(format!(
                        "refusing to listen on {sock}: the API has no TLS, so it listens on loopback only (127.0.0.1, ::1) or on a Unix socket"
                    )));
                }
                let listener = TcpListener::bind(sock).map_err(|source| ServerError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
                let local = listener.local_addr().map_err(|source| ServerError::Io {
                    what: "reading the bound address",
                    source,
                })?;
                (Listener::Tcp(listener), ListenAddr::Tcp(local), None)
            }
            ListenAddr::Unix(path) => {
                if config.socket_mode != SOCKET_MODE_OWNER
                    && config.socket_mode != SOCKET_MODE_GROUP
                {
                    return Err(ServerError::Config(format!(
                        "socket mode {:04o} is not allowed: use 0600 (owner only) or 0660 (owner and group)",
                        config.socket_mode
                    )));
                }
                let (listener, dev, ino) = bind_unix(path, config.socket_mode)?;
                (
                    Listener::Unix(listener),
                    config.listen.clone(),
                    Some((path.clone(), dev, ino)),
                )
            }
        };
        let unix = matches!(listener, Listener::Unix(_));
        let shutdown = Arc::new(AtomicBool::new(false));
        let ctx = Arc::new(Context {
            backend,
            token: config.token,
            unix,
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            shutdown: Arc::clone(&shutdown),
        });
        let mut server = ApiServer {
            addr,
            shutdown,
            workers: Vec::with_capacity(config.workers),
            socket_file,
            request_timeout: config.request_timeout,
        };
        for n in 0..config.workers {
            let spawned = listener.try_clone().and_then(|own| {
                let ctx = Arc::clone(&ctx);
                thread::Builder::new()
                    .name(format!("entropyd-api-{n}"))
                    .spawn(move || worker(&own, &ctx))
            });
            match spawned {
                Ok(handle) => server.workers.push(handle),
                Err(source) => {
                    // Dropping `server` stops the workers already running.
                    return Err(ServerError::Io {
                        what: "starting an API worker thread",
                        source,
                    });
                }
            }
        }
        Ok(server)
    }

    /// The address actually listened on (a TCP port 0 is resolved to the
    /// port the OS picked).
    #[must_use]
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops accepting connections, drops requests still being received
    /// (crediting nothing of them), lets answers being written finish,
    /// removes the socket file it created, and returns: normally within
    /// about 100 ms, never later than the request timeout plus two seconds
    /// (a worker still busy then is left to finish on its own).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        // Release pairs with the Acquire loads in `worker`.
        self.shutdown.store(true, Ordering::Release);
        let give_up = Instant::now()
            .checked_add(self.request_timeout.saturating_add(Duration::from_secs(2)))
            .unwrap_or_else(Instant::now);
        let mut polls: u32 = 0;
        while !self.workers.is_empty() && Instant::now() < give_up {
            if polls % STOP_REWAKE_POLLS == 0 {
                for _ in 0..self.workers.len() {
                    wake(&self.addr);
                }
            }
            thread::sleep(STOP_POLL);
            polls = polls.wrapping_add(1);
            let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.workers)
                .into_iter()
                .partition(JoinHandle::is_finished);
            for handle in done {
                // A worker that panicked has nothing left to clean up.
                let _ = handle.join();
            }
            self.workers = running;
        }
        // Any worker still busy is detached; it exits after its deadline.
        self.workers.clear();
        if let Some((path, dev, ino)) = self.socket_file.take() {
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if meta.dev() == dev && meta.ino() == ino {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Opens one connection to the server so a worker blocked in `accept`
/// wakes up and sees the shutdown flag.
fn wake(addr: &ListenAddr) {
    match addr {
        ListenAddr::Tcp(sock) => {
            let mut target = *sock;
            if target.ip().is_unspecified() {
                target.set_ip(match target.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            let _ = TcpStream::connect_timeout(&target, Duration::from_millis(500));
        }
        ListenAddr::Unix(path) => {
            let _ = UnixStream::connect(path);
        }
    }
}

/// Binds a Unix socket at `path` with `mode`, so that no other user can
/// connect before the mode is set: bind inside a fresh 0700 directory next
/// to `path`, chmod, then rename into place. Returns the listener and the
/// socket file's device and inode.
fn bind_unix(path: &Path, mode: u32) -> Result<(UnixListener, u64, u64), ServerError> {
    let config = |msg: String| ServerError::Config(msg);
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                return Err(config(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(config(format!(
                    "another process is already listening on {}",
                    path.display()
                )));
            }
            // A stale socket from an earlier run: the rename replaces it.
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServerError::Io {
                what: "checking the socket path",
                source,
            });
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let private = parent.join(format!(".entropyd.{}.{nonce:x}", std::process::id()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|source| ServerError::Io {
            what: "creating a private directory next to the socket",
            source,
        })?;
    let temp = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&temp).map_err(|source| ServerError::Bind {
            addr: ListenAddr::Unix(path.to_owned()),
            source,
        })?;
        fs::set_permissions(&temp, fs::Permissions::from_mode(mode)).map_err(|source| {
            ServerError::Io {
                what: "setting the socket's permissions",
                source,
            }
        })?;
        fs::rename(&temp, path).map_err(|source| ServerError::Io {
            what: "moving the socket into place",
            source,
        })?;
        let meta = fs::symlink_metadata(path).map_err(|source| ServerError::Io {
            what: "checking the socket",
            source,
        })?;
        Ok((listener, meta.dev(), meta.ino()))
    })();
    let _ = fs::remove_file(&temp);
    let _ = fs::remove_dir(&private);
    result
}

/// The listening socket.
#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix(l) => Listener::Unix(l.try_clone()?),
        })
    }

    fn accept(&self) -> io::Result<Stream> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Responses are written in one go; no need to wait for more.
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
            Listener::Unix(l) => Stream::Unix(l.accept()?.0),
        })
    }
}

/// One accepted connection.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// What every worker shares.
struct Context {
    backend: Arc<dyn PoolBackend>,
    token: Option<ApiToken>,
    unix: bool,
    body_limit: usize,
    request_timeout: Duration,
    shutdown: Arc<AtomicBool>,
}

/// A worker: accept, serve one connection, repeat until shutdown.
fn worker(listener: &Listener, ctx: &Context) {
    // Acquire pairs with the Release store in `stop_inner`.
    while !ctx.shutdown.load(Ordering::Acquire) {
        match listener.accept() {
            Ok(stream) => {
                if ctx.shutdown.load(Ordering::Acquire) {
                    break;
                }
                // A panic in a backend must not cost the pool a worker.
                let _ = catch_unwind(AssertUnwindSafe(|| serve_connection(stream, ctx)));
            }
            Err(_) => {
                // EMFILE, ECONNABORTED...: do not spin on a persistent error.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A request handler's failure: answer with an error, or just close.
enum Failure {
    /// Answer with this error.
    Api(ApiError),
    /// The client went away or the socket failed: close silently.
    Closed,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// A successful answer: status 200 and a JSON body.
struct Answer {
    body: Vec<u8>,
}

fn serve_connection(mut stream: Stream, ctx: &Context) {
    let deadline = Instant::now()
        .checked_add(ctx.request_timeout)
        .unwrap_or_else(Instant::now);
    let outcome = handle(&mut stream, ctx, deadline);
    // The answer gets its own budget: the client may have used up the
    // request's deadline, and a refusal should still reach it.
    let _ = stream.set_write_timeout(ctx.request_timeout);
    match outcome {
        Ok(answer) => {
            let _ = write_response(&mut stream, 200, &[], &answer.body);
        }
        Err(Failure::Api(err)) => {
            let body = serde_json::to_vec(&err.to_response()).unwrap_or_default();
            let mut extra: Vec<(&str, &str)> = Vec::new();
            if let ApiError::MethodNotAllowed { allow } = &err {
                extra.push(("Allow", allow));
            }
            if matches!(err, ApiError::Unauthorized) {
                extra.push(("WWW-Authenticate", "Bearer"));
            }
            if write_response(&mut stream, err.status(), &extra, &body).is_ok() {
                linger(&mut stream);
            }
        }
        Err(Failure::Closed) => {}
    }
}

/// After a refusal, stop writing and drain a little of what the client is
/// still sending, so it reads the refusal rather than a reset.
fn linger(stream: &mut Stream) {
    stream.shutdown_write();
    let until = Instant::now()
        .checked_add(LINGER_TIME)
        .unwrap_or_else(Instant::now);
    let mut scratch = [0u8; 4096];
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        match read_until(stream, &mut scratch, until, None) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained = drained.saturating_add(n),
        }
    }
}

/// Reads into `buf` with the time left before `deadline`, in slices of at
/// most [`READ_SLICE`] so that a shutdown (`stop` set) ends the wait early.
fn read_until(
    stream: &mut Stream,
    buf: &mut [u8],
    deadline: Instant,
    stop: Option<&AtomicBool>,
) -> Result<usize, Failure> {
    // Bounded: every pass either returns or waits out one slice of a
    // finite deadline; EINTR retries are counted separately.
    let mut interrupts = 0u32;
    loop {
        // Acquire pairs with the Release store in `stop_inner`.
        if stop.is_some_and(|s| s.load(Ordering::Acquire)) {
            return Err(Failure::Closed);
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Failure::Api(ApiError::RequestTimeout))?;
        let slice = if stop.is_some() {
            left.min(READ_SLICE)
        } else {
            left
        };
        stream
            .set_read_timeout(slice)
            .map_err(|_| Failure::Closed)?;
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < 8 => {
                interrupts = interrupts.saturating_add(1);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Err(Failure::Closed),
        }
    }
}

/// The parts of a request head the API uses.
struct Head {
    method: String,
    target: String,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
    authorization: Option<Zeroizing<Vec<u8>>>,
    /// Bytes after the head already read (the body's start).
    head_len: usize,
}

/// Reads and parses the request head into `buf` (which may also receive
/// the start of the body).
fn read_head(
    stream: &mut Stream,
    ctx: &Context,
    buf: &mut Zeroizing<Vec<u8>>,
    deadline: Instant,
) -> Result<Head, Failure> {
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf)? {
                return Ok(head);
            }
        }
        let old = buf.len();
        if old >= MAX_HEAD_LEN {
            return Err(ApiError::HeadersTooLarge.into());
        }
        buf.resize(MAX_HEAD_LEN, 0);
        let got = buf.get_mut(old..).map_or(Ok(0), |tail| {
            read_until(stream, tail, deadline, Some(&ctx.shutdown))
        });
        let n = match got {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(old);
                return Err(e);
            }
        };
        buf.truncate(old.saturating_add(n));
        if n == 0 {
            // The client closed before finishing the head.
            return Err(Failure::Closed);
        }
    }
}

/// Parses a complete head, or returns `None` when more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ApiError::HeadersTooLarge.into()),
        Err(e) => {
            return Err(ApiError::BadRequest(format!("malformed HTTP request: {e}")).into());
        }
    };
    let mut head = Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        content_length: None,
        chunked: false,
        expect_continue: false,
        authorization: None,
        head_len,
    };
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            let n = (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| ApiError::BadRequest("bad Content-Length header".to_owned()))?;
            if head.content_length.is_some_and(|m| m != n) {
                return Err(
                    ApiError::BadRequest("conflicting Content-Length headers".to_owned()).into(),
                );
            }
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("authorization") {
            if head.authorization.is_some() {
                return Err(
                    ApiError::BadRequest("more than one Authorization header".to_owned()).into(),
                );
            }
            head.authorization = Some(Zeroizing::new(h.value.to_vec()));
        }
    }
    Ok(Some(head))
}

/// Serves one request: parse, route, authorize, read the body, answer.
fn handle(stream: &mut Stream, ctx: &Context, deadline: Instant) -> Result<Answer, Failure> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_HEAD_LEN));
    let head = read_head(stream, ctx, &mut buf, deadline)?;
    let route = api::route(&head.method, &head.target)?;
    let json = |value: Result<Vec<u8>, serde_json::Error>| {
        value
            .map(|body| Answer { body })
            .map_err(|e| Failure::Api(ApiError::Internal(format!("cannot encode the answer: {e}"))))
    };
    match route {
        Route::GetExternalPool => json(serde_json::to_vec(&api::ExternalPoolResponse::from(
            ctx.backend.external_pool(),
        ))),
        Route::GetStatus => json(serde_json::to_vec(&ctx.backend.status())),
        Route::AddExternal => {
            authorize(ctx, head.authorization.as_ref().map(|v| v.as_slice()))?;
            if head.chunked {
                return Err(ApiError::LengthRequired.into());
            }
            let len = head.content_length.ok_or(ApiError::LengthRequired)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= ctx.body_limit)
                .ok_or(ApiError::PayloadTooLarge {
                    limit: ctx.body_limit,
                })?;
            if !ctx.backend.external_pool().enabled {
                return Err(ApiError::ExternalDisabled.into());
            }
            if head.expect_continue {
                stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .map_err(|_| Failure::Closed)?;
            }
            let body = read_body(stream, ctx, &buf, head.head_len, len, deadline)?;
            let data = api::parse_add_body(&body, ctx.body_limit)?;
            let took = ctx.backend.add_external(&data).min(data.len());
            json(serde_json::to_vec(&api::AddResponse {
                accepted: u64::try_from(took).unwrap_or(u64::MAX),
            }))
        }
    }
}

/// Checks a write's authorization.
fn authorize(ctx: &Context, authorization: Option<&[u8]>) -> Result<(), ApiError> {
    match &ctx.token {
        Some(token) if token.verify_header(authorization) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized),
        // A Unix socket without a token: its permissions already decided.
        None if ctx.unix => Ok(()),
        None => Err(ApiError::WritesDisabled),
    }
}

/// Reads exactly `len` body bytes: those already in `head_buf` after the
/// head, then the rest from the stream, all before `deadline`.
fn read_body(
    stream: &mut Stream,
    ctx: &Context,
    head_buf: &[u8],
    head_len: usize,
    len: usize,
    deadline: Instant,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut body = Zeroizing::new(vec![0u8; len]);
    let early = head_buf.get(head_len..).unwrap_or_default();
    let mut filled = early.len().min(len);
    if let (Some(dst), Some(src)) = (body.get_mut(..filled), early.get(..filled)) {
        dst.copy_from_slice(src);
    }
    while filled < len {
        let n = match body.get_mut(filled..) {
            Some(tail) => read_until(stream, tail, deadline, Some(&ctx.shutdown))?,
            None => 0,
        };
        if n == 0 {
            return Err(ApiError::BadRequest(
                "the body is shorter than its Content-Length".to_owned(),
            )
            .into());
        }
        filled = filled.saturating_add(n);
    }
    Ok(body)
}

/// Writes a whole response with `Connection: close`.
fn write_response(
    stream: &mut Stream,
    status: u16,
    extra: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// The reason phrase for the statuses this server sends.
const fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}
