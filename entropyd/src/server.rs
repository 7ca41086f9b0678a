//! The HTTP/1.1 API server: one thread per connection under fixed caps,
//! plain or TLS, over a TCP or Unix socket listener.
//!
//! Design, and why: an acceptor thread admits each connection and hands it
//! to a thread of its own (small stack); a monitor thread records audit
//! crossings. A slow client then costs one sleeping thread and two file
//! descriptors, and nobody waits behind it. We chose this bounded design
//! over an event loop (hyper on tokio with tokio-rustls): it keeps the
//! small, tested request framing below (httparse, refusals before the body
//! is read), needs no async runtime, and adds only rustls and socket2 to
//! the build. Its cost is bounded by the caps below instead of by a
//! runtime's scheduler: at the default caps, at most 1024 threads with
//! 512 KiB of (mostly untouched) stack each.
//!
//! Contract:
//! - Requests are parsed by [`httparse`] (the parser hyper uses); this file
//!   only frames them. One request per connection (`Connection: close`),
//!   bodies only with `Content-Length` (chunked is refused with 411), a
//!   request head of at most [`MAX_HEAD_LEN`] bytes and [`MAX_HEADERS`]
//!   headers (431 otherwise), a body of at most the body limit, refused
//!   with 413 *before* any of it is read. The body limit is sized from the
//!   pool: the JSON of a base64 add of max(capacity, [`MIN_ADD_BYTES`])
//!   bytes, never more than [`ServerConfig::body_limit`].
//! - **No slow client stalls anyone.** Caps: at most
//!   [`ServerConfig::max_connections`] connections open, at most
//!   [`ServerConfig::per_peer_connections`] from one IP address (more are
//!   closed at once). When every slot is taken, the oldest connection still
//!   in its TLS handshake or request head is dropped to make room, so
//!   trickling clients cannot lock others out. The TLS handshake and the
//!   request head must arrive within [`ServerConfig::head_timeout`], the
//!   whole request within [`ServerConfig::request_timeout`] (408). Reserved
//!   for authorized writers: [`ServerConfig::workers`] add slots that only
//!   an add which passed authorization may take (the body is read and
//!   absorbed only there; 503 when none frees up in time), and an
//!   authorized request is never dropped to make room.
//! - TLS ([`crate::tls`]): rustls, TLS 1.3 and 1.2, optional mutual TLS. A
//!   TCP address other than loopback needs TLS and a credential (a token,
//!   or a client CA, or both): [`ApiServer::start`] refuses otherwise.
//! - Authorization: writes (the add call) need `Authorization: Bearer
//!   <token>` when a token is configured (401 otherwise, nothing read or
//!   credited); with mutual TLS, the verified client certificate is the
//!   credential, and a token, when also configured, is needed on top. On
//!   loopback TCP without a token, writes are disabled (403). On a Unix
//!   socket without a token, the socket's permissions are the
//!   authorization: it is created with mode 0600 (owner only) or 0660
//!   (owner and group), inside a private directory first and then renamed
//!   into place, so no other user can connect in between. On a non-loopback
//!   listener, reads need the same authorization as writes; on loopback and
//!   Unix sockets they are open.
//! - Every refusal answers a JSON [`ErrorResponse`](crate::api::ErrorResponse)
//!   and credits nothing; only a fully read, valid, authorized add reaches
//!   [`PoolBackend::add_external`]. Every refused add, every read refused
//!   for want of authorization and every TLS handshake rustls refused (an
//!   untrusted client certificate, say) is an audit record with the peer
//!   address and the reason ([`crate::audit`]).
//! - Client activity: an authorized `GET /entropy/external-pool` or add
//!   restarts the inactive-source timer (inactive_source_timeout seconds).
//!   `GET /entropy/status` adds [`ApiStatus`] (last client call, feeder
//!   state, connections, audit counts) to the pool's snapshot. The monitor
//!   thread checks every [`ServerConfig::monitor_interval`] for the
//!   crossings of [`crate::audit::Monitor`] and records them.
//! - [`ApiServer::stop`] (also run on drop) stops accepting, drops requests
//!   still being received (nothing of them is credited; a request already
//!   received is answered), and returns within about 100 ms, never later
//!   than the request timeout plus two seconds.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use zeroize::Zeroizing;

use crate::api::{self, ApiError, Route};
use crate::audit::{Audit, Event, Monitor, Observation};
use crate::auth::ApiToken;
use crate::backend::{ApiStatus, PoolBackend};
use crate::tls::TlsState;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8742";
/// Default number of add slots reserved for authorized writers.
pub const DEFAULT_WORKERS: usize = 4;
/// Most add slots a server may have.
pub const MAX_WORKERS: usize = 64;
/// Default deadline for receiving one whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for the TLS handshake and the request head.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// Default cap on connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on connections open at once from one IP address.
pub const DEFAULT_PER_PEER_CONNECTIONS: usize = 64;
/// Default interval of the monitor's checks.
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_millis(250);
/// The body limit is never sized below an add of this many bytes (the
/// clients' largest piece, [`crate::client::SUBMIT_CHUNK`]), so a full
/// piece is answered with what fits instead of a 413.
pub const MIN_ADD_BYTES: u64 = 1024 * 1024;
/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_LEN: usize = 8 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 32;
/// Socket mode for a Unix socket only its owner may use.
pub const SOCKET_MODE_OWNER: u32 = 0o600;
/// Socket mode for a Unix socket its owner and group may use.
pub const SOCKET_MODE_GROUP: u32 = 0o660;
/// The listen backlog asked for (the kernel caps it at somaxconn).
pub const LISTEN_BACKLOG: i32 = 4096;

/// How long a refused request's unread body is drained before closing, so
/// the client can read the refusal instead of a connection reset.
const LINGER_TIME: Duration = Duration::from_millis(250);
/// Most bytes drained after a refusal.
const LINGER_BYTES: usize = 64 * 1024;
/// How often [`ApiServer::stop`] re-checks its threads.
const STOP_POLL: Duration = Duration::from_millis(10);
/// Stack of a connection thread.
const CONNECTION_STACK: usize = 512 * 1024;
/// File descriptors kept free for everything but connections when the
/// connection cap is fitted to the process's limit.
const FD_RESERVE: usize = 128;
/// Bytes of JSON around the base64 text an add body may have beyond
/// `{"data":"..."}` (whitespace, say).
const BODY_SLACK: u64 = 1024;

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (`127.0.0.1:8742`, `0.0.0.0:8743`, `[::]:8743`; port
    /// 0 picks a free port). Other than loopback, it needs TLS.
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
                "bad listen address {s:?}: use IP:PORT (e.g. {DEFAULT_LISTEN}, 0.0.0.0:8743, [::]:8743) or unix:/path/to/socket"
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

impl ListenAddr {
    /// Whether this is a TCP address other than loopback (it then needs
    /// TLS, and reads need authorization).
    #[must_use]
    pub fn is_remote(&self) -> bool {
        matches!(self, ListenAddr::Tcp(a) if !a.ip().is_loopback())
    }
}

/// Everything the server needs to start.
#[derive(Debug)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: ListenAddr,
    /// The bearer token; `None` disables writes on loopback TCP, leaves
    /// them to the socket's permissions on a Unix socket, and to the client
    /// certificate with mutual TLS.
    pub token: Option<ApiToken>,
    /// TLS; needed for any TCP address other than loopback.
    pub tls: Option<Arc<TlsState>>,
    /// Add slots reserved for authorized writers, `1..=MAX_WORKERS`.
    pub workers: usize,
    /// Largest request body in bytes; the limit used is sized from the
    /// pool's capacity and never larger than this.
    pub body_limit: usize,
    /// Deadline for receiving one whole request.
    pub request_timeout: Duration,
    /// Deadline for the TLS handshake and the request head (at most the
    /// request timeout).
    pub head_timeout: Duration,
    /// Most connections open at once (lowered to fit the process's file
    /// descriptor limit).
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub per_peer_connections: usize,
    /// How often the monitor checks for audit crossings.
    pub monitor_interval: Duration,
    /// Mode of a Unix socket: [`SOCKET_MODE_OWNER`] or [`SOCKET_MODE_GROUP`].
    pub socket_mode: u32,
    /// Where audit records go and are counted.
    pub audit: Arc<Audit>,
}

impl ServerConfig {
    /// A configuration with the defaults: no token, no TLS,
    /// [`DEFAULT_WORKERS`], [`api::DEFAULT_BODY_LIMIT`],
    /// [`DEFAULT_REQUEST_TIMEOUT`], [`DEFAULT_HEAD_TIMEOUT`],
    /// [`DEFAULT_MAX_CONNECTIONS`], [`DEFAULT_PER_PEER_CONNECTIONS`],
    /// socket mode 0600, the process's audit log.
    #[must_use]
    pub fn new(listen: ListenAddr) -> Self {
        ServerConfig {
            listen,
            token: None,
            tls: None,
            workers: DEFAULT_WORKERS,
            body_limit: api::DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            per_peer_connections: DEFAULT_PER_PEER_CONNECTIONS,
            monitor_interval: DEFAULT_MONITOR_INTERVAL,
            socket_mode: SOCKET_MODE_OWNER,
            audit: Arc::clone(crate::audit::global()),
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
    /// Another OS operation (socket permissions, threads) failed.
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
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The socket file we created, with its device and inode, so stop
    /// removes it only while it is still ours.
    socket_file: Option<(PathBuf, u64, u64)>,
    request_timeout: Duration,
}

/// Checks a configuration before anything is bound.
fn validate(config: &ServerConfig) -> Result<(), ServerError> {
    if config.workers == 0 || config.workers > MAX_WORKERS {
        return Err(ServerError::Config(format!(
            "workers={} is out of range 1..={MAX_WORKERS}",
            config.workers
        )));
    }
    if config.request_timeout.is_zero()
        || config.head_timeout.is_zero()
        || config.body_limit == 0
        || config.max_connections == 0
        || config.per_peer_connections == 0
        || config.monitor_interval.is_zero()
    {
        return Err(ServerError::Config(
            "timeouts, the body limit, the connection caps and the monitor interval must be greater than zero".to_owned(),
        ));
    }
    check_listen(
        &config.listen,
        config.tls.as_ref().map(|t| t.mutual()),
        config.token.is_some(),
    )?;
    match &config.listen {
        ListenAddr::Tcp(_) => {}
        ListenAddr::Unix(_) => {
            if config.socket_mode != SOCKET_MODE_OWNER && config.socket_mode != SOCKET_MODE_GROUP {
                return Err(ServerError::Config(format!(
                    "socket mode {:04o} is not allowed: use 0600 (owner only) or 0660 (owner and group)",
                    config.socket_mode
                )));
            }
            if config.tls.is_some() {
                return Err(ServerError::Config(
                    "TLS is for TCP listeners; a Unix socket is local and uses its permissions"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a TCP address other than loopback has TLS (`tls` is
/// `Some(mutual)`) and a credential (a token or mutual TLS).
///
/// # Errors
/// [`ServerError::Config`] saying what is missing.
pub fn check_listen(
    listen: &ListenAddr,
    tls: Option<bool>,
    token: bool,
) -> Result<(), ServerError> {
    let ListenAddr::Tcp(sock) = listen else {
        return Ok(());
    };
    if sock.ip().is_loopback() {
        return Ok(());
    }
    match tls {
        None => Err(ServerError::Config(format!(
            "refusing to listen on {sock} without TLS: a token or entropy must not cross a network in clear; give --tls-cert and --tls-key, or listen on loopback (127.0.0.1, ::1) or a Unix socket"
        ))),
        Some(false) if !token => Err(ServerError::Config(format!(
            "refusing to listen on {sock} without a credential: off loopback every request needs authorization; give --token-file, --tls-client-ca, or both"
        ))),
        Some(_) => Ok(()),
    }
}

/// Binds a TCP listener with [`LISTEN_BACKLOG`].
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As std's TcpListener::bind does: a restart may rebind at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// The soft limit on open files, read from `/proc/self/limits` (no
/// system call wrapper needed); `None` when unknown or unlimited.
fn open_files_limit() -> Option<usize> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.get("Max open files".len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl ApiServer {
    /// Validates `config`, binds the listener and starts the acceptor and
    /// monitor threads.
    ///
    /// # Errors
    /// [`ServerError::Config`] for a TCP address other than loopback without
    /// TLS or without a credential, an add-slot count outside
    /// `1..=MAX_WORKERS`, a zero timeout, cap, interval or body limit, a
    /// socket mode other than 0600/0660, TLS on a Unix socket, an existing
    /// non-socket file at the socket path, or another process already
    /// listening there; [`ServerError::Bind`] when the address cannot be
    /// bound; [`ServerError::Io`] when the socket's permissions cannot be
    /// set or a thread cannot be started.
    pub fn start(
        config: ServerConfig,
        backend: Arc<dyn PoolBackend>,
    ) -> Result<ApiServer, ServerError> {
        validate(&config)?;
        let (listener, addr, socket_file) = match &config.listen {
            ListenAddr::Tcp(sock) => {
                let listener = bind_tcp(*sock).map_err(|source| ServerError::Bind {
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
                let (listener, dev, ino) = bind_unix(path, config.socket_mode)?;
                (
                    Listener::Unix(listener),
                    config.listen.clone(),
                    Some((path.clone(), dev, ino)),
                )
            }
        };
        // Each connection holds two descriptors (its socket and the clone
        // kept to drop it): stay inside the process's limit.
        let fitted = open_files_limit()
            .map(|n| n.saturating_sub(FD_RESERVE) / 2)
            .filter(|&n| n > 0)
            .map_or(config.max_connections, |n| n.min(config.max_connections));
        if fitted < config.max_connections {
            crate::daemon::log(format_args!(
                "the open-files limit allows {fitted} API connections, not {} (raise it, e.g. LimitNOFILE= in systemd)",
                config.max_connections
            ));
        }
        let remote = config.listen.is_remote();
        let shared = Arc::new(Shared {
            backend,
            mutual_tls: config.tls.as_ref().is_some_and(|t| t.mutual()),
            tls: config.tls,
            token: config.token,
            unix: matches!(listener, Listener::Unix(_)),
            remote,
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            head_timeout: config.head_timeout.min(config.request_timeout),
            shutdown: AtomicBool::new(false),
            registry: Registry::new(fitted, config.per_peer_connections),
            add_slots: Slots::new(config.workers),
            started: Instant::now(),
            last_call_ms: AtomicU64::new(0),
            audit: config.audit,
            monitor: Mutex::new(Monitor::new()),
        });
        let mut server = ApiServer {
            addr,
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(2),
            socket_file,
            request_timeout: config.request_timeout,
        };
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("entropyd-api-accept".to_owned())
                .spawn(move || accept_loop(&listener, &shared))
        };
        let monitor = {
            let shared = Arc::clone(&shared);
            let every = config.monitor_interval;
            thread::Builder::new()
                .name("entropyd-api-monitor".to_owned())
                .spawn(move || monitor_loop(&shared, every))
        };
        for spawned in [acceptor, monitor] {
            match spawned {
                Ok(handle) => server.threads.push(handle),
                // Dropping `server` stops what already runs.
                Err(source) => {
                    return Err(ServerError::Io {
                        what: "starting an API thread",
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

    /// Reloads the TLS certificate, key and client CA from their files for
    /// new connections (SIGHUP). Without TLS it does nothing.
    ///
    /// # Errors
    /// The [`crate::tls::TlsError`] of the reload; the configuration in use
    /// is kept then.
    pub fn reload_tls(&self) -> Result<bool, crate::tls::TlsError> {
        match &self.shared.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// The API's part of the status now.
    #[must_use]
    pub fn api_status(&self) -> ApiStatus {
        self.shared.api_status(None)
    }

    /// Stops accepting connections, drops requests still being received
    /// (crediting nothing of them), lets answers being written finish,
    /// removes the socket file it created, and returns: normally within
    /// about 100 ms, never later than the request timeout plus two seconds
    /// (a connection still busy then is left to finish on its own).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        // Release pairs with the Acquire loads in the threads.
        self.shared.shutdown.store(true, Ordering::Release);
        wake(&self.addr);
        // Requests still being received end at once; answers being
        // written are not affected (only the read side is shut).
        self.shared.registry.shut_all_reads();
        let give_up = Instant::now()
            .checked_add(self.request_timeout.saturating_add(Duration::from_secs(2)))
            .unwrap_or_else(Instant::now);
        let mut polls: u32 = 0;
        loop {
            let threads_done = self.threads.iter().all(JoinHandle::is_finished);
            let connections = self.shared.registry.live();
            if (threads_done && connections == 0) || Instant::now() >= give_up {
                break;
            }
            if polls % 50 == 49 {
                wake(&self.addr);
                self.shared.registry.shut_all_reads();
            }
            thread::sleep(STOP_POLL);
            polls = polls.wrapping_add(1);
        }
        for handle in self.threads.drain(..) {
            if handle.is_finished() {
                // A thread that panicked has nothing left to clean up.
                let _ = handle.join();
            }
        }
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

/// Opens one connection to the server so the acceptor blocked in `accept`
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

/// A second handle on a connection's socket, kept by the registry to drop
/// the connection (evict it, or end its read at stop).
#[derive(Debug)]
enum Handle {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Handle {
    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Handle::Tcp(s) => s.shutdown(how),
            Handle::Unix(s) => s.shutdown(how),
        };
    }
}

/// One accepted connection, before TLS.
#[derive(Debug)]
enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    fn accept(&self) -> io::Result<Accepted> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                // Responses are written in one go; no need to wait for more.
                let _ = s.set_nodelay(true);
                Accepted::Tcp(s, peer)
            }
            Listener::Unix(l) => Accepted::Unix(l.accept()?.0),
        })
    }
}

/// One connection being served.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsConn>),
}

/// A TLS connection past its handshake. Unlike rustls' `StreamOwned`, a
/// read makes at most one read from the socket before it returns (with
/// `WouldBlock` when no plaintext came), so [`read_until`] checks the
/// deadline between socket reads and a client trickling a record one byte
/// at a time is still cut off at the deadline.
#[derive(Debug)]
struct TlsConn {
    conn: ServerConnection,
    sock: BufSocket,
}

impl TlsConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        let got = self.conn.read_tls(&mut self.sock)?;
        if let Err(e) = self.conn.process_new_packets() {
            // Send rustls' alert, then report the failure.
            let _ = self.conn.write_tls(&mut self.sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        match self.conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got == 0 => {
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            other => other,
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(data)?;
        self.flush()?;
        Ok(n)
    }

    /// Writes out every TLS record rustls holds (each socket write bounded
    /// by the write timeout; stops when one makes no progress).
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        self.sock.flush()
    }
}

/// A TCP socket read through a 64 KiB buffer: rustls asks for 4 KiB at a
/// time, so a 1 MiB add would otherwise cost hundreds of `read` calls.
/// Writes go straight through.
#[derive(Debug)]
struct BufSocket {
    sock: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl BufSocket {
    fn new(sock: TcpStream) -> BufSocket {
        BufSocket {
            sock,
            buf: vec![0u8; 64 * 1024],
            start: 0,
            end: 0,
        }
    }
}

impl Read for BufSocket {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start >= self.end {
            let n = self.sock.read(&mut self.buf)?;
            self.start = 0;
            self.end = n.min(self.buf.len());
        }
        let have = self.buf.get(self.start..self.end).unwrap_or_default();
        let n = have.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), have.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.start = self.start.saturating_add(n);
        Ok(n)
    }
}

impl Write for BufSocket {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sock.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
            Stream::Tls(s) => s.sock.sock.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tls(s) => s.sock.sock.set_write_timeout(Some(t)),
        }
    }

    /// Ends a TLS session cleanly (close_notify) after a whole answer;
    /// nothing to do in plain text, where closing the socket says it.
    fn finish(&mut self) {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }

    fn shutdown_write(&mut self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                s.sock.sock.shutdown(Shutdown::Write)
            }
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One open connection as the registry sees it.
#[derive(Debug)]
struct Entry {
    peer: Option<IpAddr>,
    /// Still in its TLS handshake or request head: may be dropped to make
    /// room.
    pending: bool,
    handle: Handle,
}

#[derive(Debug, Default)]
struct RegistryInner {
    next_id: u64,
    /// By id, so oldest first.
    conns: BTreeMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

impl RegistryInner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(ip) = entry.peer {
            if let Some(n) = self.per_peer.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_peer.remove(&ip);
                }
            }
        }
        Some(entry)
    }
}

/// The open connections, under the caps (see the module documentation).
#[derive(Debug)]
struct Registry {
    inner: Mutex<RegistryInner>,
    max: usize,
    per_peer: usize,
    /// Connection threads still running (evicted ones included).
    live: AtomicUsize,
    /// Connections closed unserved.
    shed: AtomicU64,
}

impl Registry {
    fn new(max: usize, per_peer: usize) -> Registry {
        Registry {
            inner: Mutex::new(RegistryInner::default()),
            max,
            per_peer,
            live: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RegistryInner> {
        // The registry's maps stay consistent between statements.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection, or returns `None` when its peer is at its cap
    /// or every slot is held by a request past its head. When full, the
    /// oldest pending connection is dropped to make room.
    fn admit(&self, peer: Option<IpAddr>, handle: Handle) -> Option<u64> {
        let mut inner = self.lock();
        if let Some(ip) = peer {
            if inner.per_peer.get(&ip).copied().unwrap_or(0) >= self.per_peer {
                drop(inner);
                self.shed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        if inner.conns.len() >= self.max {
            let oldest = inner
                .conns
                .iter()
                .find(|(_, e)| e.pending)
                .map(|(&id, _)| id);
            let Some(evicted) = oldest.and_then(|id| inner.remove(id)) else {
                drop(inner);
                self.shed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            // Its thread sees the connection closed and ends.
            evicted.handle.shutdown(Shutdown::Both);
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        let id = inner.next_id;
        inner.next_id = id.wrapping_add(1);
        inner.conns.insert(
            id,
            Entry {
                peer,
                pending: true,
                handle,
            },
        );
        if let Some(ip) = peer {
            *inner.per_peer.entry(ip).or_insert(0) += 1;
        }
        // Relaxed: `stop` polls it; the thread's end is what it waits for.
        self.live.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Marks a connection past its head (it is not dropped to make room).
    fn mark_active(&self, id: u64) {
        if let Some(e) = self.lock().conns.get_mut(&id) {
            e.pending = false;
        }
    }

    /// Forgets a connection whose thread ends (or never started).
    fn release(&self, id: u64) {
        drop(self.lock().remove(id));
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    fn shut_all_reads(&self) {
        for entry in self.lock().conns.values() {
            entry.handle.shutdown(Shutdown::Read);
        }
    }

    fn open(&self) -> usize {
        self.lock().conns.len()
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Releases a connection's registry entry when its thread ends.
struct ConnGuard<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.registry.release(self.id);
    }
}

/// The add slots reserved for authorized writers: a counting semaphore.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting until `deadline` at most.
    fn acquire(&self, deadline: Instant, stop: &AtomicBool) -> Option<SlotGuard<'_>> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *free > 0 {
                *free -= 1;
                return Some(SlotGuard { slots: self });
            }
            // Acquire pairs with the Release store in `stop_inner`.
            if stop.load(Ordering::Acquire) {
                return None;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())?;
            // Short waits: a stop is noticed without a notification.
            free = self
                .freed
                .wait_timeout(free, left.min(Duration::from_millis(100)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self
            .slots
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *free = free.saturating_add(1);
        self.slots.freed.notify_one();
    }
}

/// What every thread shares.
struct Shared {
    backend: Arc<dyn PoolBackend>,
    tls: Option<Arc<TlsState>>,
    mutual_tls: bool,
    token: Option<ApiToken>,
    unix: bool,
    /// Listening on TCP other than loopback: reads need authorization.
    remote: bool,
    body_limit: usize,
    request_timeout: Duration,
    head_timeout: Duration,
    shutdown: AtomicBool,
    registry: Registry,
    add_slots: Slots,
    started: Instant,
    /// Milliseconds after `started` of the last authorized client call,
    /// plus one; 0 when none came yet.
    last_call_ms: AtomicU64,
    audit: Arc<Audit>,
    monitor: Mutex<Monitor>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("tls", &self.tls.is_some())
            .field("mutual_tls", &self.mutual_tls)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// An authorized client call: restarts the inactive-source timer.
    fn touch(&self) {
        // Relaxed: a timestamp read by the monitor, ordered with nothing.
        self.last_call_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last client call, or since start when none
    /// came yet.
    fn ms_since_call(&self) -> u64 {
        let last = self.last_call_ms.load(Ordering::Relaxed);
        self.now_ms().saturating_sub(last.max(1))
    }

    fn api_status(&self, timeout: Option<u64>) -> ApiStatus {
        let last = self.last_call_ms.load(Ordering::Relaxed);
        let inactive_source_timeout =
            timeout.unwrap_or_else(|| self.backend.external_pool().inactive_source_timeout);
        ApiStatus {
            seconds_since_client_call: (last > 0).then(|| self.ms_since_call() / 1000),
            inactive_source_timeout,
            feeder_inactive: self
                .monitor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .feeder_inactive(),
            tls: self.tls.is_some(),
            connections_open: u64::try_from(self.registry.open()).unwrap_or(u64::MAX),
            connections_shed: self.registry.shed.load(Ordering::Relaxed),
            audit: self.audit.counts(),
        }
    }

    fn stopping(&self) -> bool {
        // Acquire pairs with the Release store in `stop_inner`.
        self.shutdown.load(Ordering::Acquire)
    }
}

/// The acceptor: admit each connection and start its thread, until stop.
fn accept_loop(listener: &Listener, shared: &Arc<Shared>) {
    while !shared.stopping() {
        let accepted = match listener.accept() {
            Ok(a) => a,
            Err(_) => {
                // EMFILE, ECONNABORTED...: do not spin on a persistent error.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.stopping() {
            break;
        }
        let (peer, handle) = match &accepted {
            Accepted::Tcp(s, peer) => (Some(peer.ip()), s.try_clone().map(Handle::Tcp)),
            Accepted::Unix(s) => (None, s.try_clone().map(Handle::Unix)),
        };
        // No second handle (out of descriptors): the connection is dropped.
        let Ok(handle) = handle else {
            shared.registry.shed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(id) = shared.registry.admit(peer, handle) else {
            continue;
        };
        let mine = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("entropyd-api-conn".to_owned())
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                let guard = ConnGuard {
                    registry: &mine.registry,
                    id,
                };
                // A panic in a backend must not take the server down.
                let _ = catch_unwind(AssertUnwindSafe(|| serve_connection(accepted, &mine, id)));
                drop(guard);
            });
        if spawned.is_err() {
            // Its closure (and the connection) was dropped unrun.
            shared.registry.release(id);
            shared.registry.shed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The monitor: every `every`, look for audit crossings, until stop.
fn monitor_loop(shared: &Shared, every: Duration) {
    loop {
        let until = Instant::now()
            .checked_add(every)
            .unwrap_or_else(Instant::now);
        while Instant::now() < until {
            if shared.stopping() {
                return;
            }
            thread::sleep(STOP_POLL.max(Duration::from_millis(20)).min(every));
        }
        let _ = catch_unwind(AssertUnwindSafe(|| observe(shared)));
    }
}

/// One monitor check: records every crossing since the last one.
fn observe(shared: &Shared) {
    let info = shared.backend.external_pool();
    let status = shared.backend.status();
    // The memory cache's own fill and watermark (the level the pool
    // refills at), in bytes: the external-pool figures count the external
    // bytes still wanted, which cost more than a byte each.
    let m = &status.memory_cache;
    let seen = Observation {
        external_enabled: info.enabled,
        available: m.len_blocks.saturating_mul(32),
        low_watermark: m.low_watermark_blocks.saturating_mul(32),
        external_lost: status.external.lost,
        ms_since_client_call: shared.ms_since_call(),
        inactive_timeout_s: info.inactive_source_timeout,
    };
    let crossings = shared
        .monitor
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .observe(seen);
    for c in crossings.iter() {
        let s = &c.seen;
        let since = s.ms_since_client_call / 1000;
        match c.event {
            Event::LowWatermarkBelow | Event::LowWatermarkRecovered => shared.audit.record(
                c.event,
                &[
                    ("available", &s.available),
                    ("low_watermark", &s.low_watermark),
                    ("capacity", &m.capacity_blocks.saturating_mul(32)),
                ],
            ),
            Event::FeederInactive | Event::FeederActive => shared.audit.record(
                c.event,
                &[
                    ("last_call_s", &since),
                    ("inactive_source_timeout", &s.inactive_timeout_s),
                ],
            ),
            _ => shared.audit.record(
                c.event,
                &[("available", &s.available), ("last_call_s", &since)],
            ),
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

/// What [`handle`] learned about the request, for the audit record.
#[derive(Default)]
struct Seen {
    route: Option<Route>,
    had_authorization: bool,
}

/// The peer as written in audit records.
fn peer_text(accepted: &Accepted) -> String {
    match accepted {
        Accepted::Tcp(_, peer) => peer.to_string(),
        Accepted::Unix(_) => "unix".to_owned(),
    }
}

fn serve_connection(accepted: Accepted, shared: &Shared, id: u64) {
    let start = Instant::now();
    let deadline = start.checked_add(shared.request_timeout).unwrap_or(start);
    let head_deadline = start.checked_add(shared.head_timeout).unwrap_or(start);
    let peer = peer_text(&accepted);
    let stream = match (accepted, &shared.tls) {
        (Accepted::Tcp(s, _), Some(tls)) => handshake(s, tls, head_deadline, shared, &peer),
        (Accepted::Tcp(s, _), None) => Some(Stream::Tcp(s)),
        (Accepted::Unix(s), _) => Some(Stream::Unix(s)),
    };
    let Some(mut stream) = stream else {
        return;
    };
    let mut seen = Seen::default();
    let outcome = handle(&mut stream, shared, id, head_deadline, deadline, &mut seen);
    // The answer gets its own budget: the client may have used up the
    // request's deadline, and a refusal should still reach it.
    let _ = stream.set_write_timeout(shared.request_timeout);
    match outcome {
        Ok(answer) => {
            if write_response(&mut stream, 200, &[], &answer.body).is_ok() {
                stream.finish();
            }
        }
        Err(Failure::Api(err)) => {
            audit_refusal(shared, &seen, &err, &peer);
            let body = serde_json::to_vec(&err.to_response()).unwrap_or_default();
            let mut extra: Vec<(&str, &str)> = Vec::new();
            if let ApiError::MethodNotAllowed { allow } = &err {
                extra.push(("Allow", allow));
            }
            if matches!(err, ApiError::Unauthorized) {
                extra.push(("WWW-Authenticate", "Bearer"));
            }
            if matches!(err, ApiError::Busy) {
                extra.push(("Retry-After", "1"));
            }
            if write_response(&mut stream, err.status(), &extra, &body).is_ok() {
                linger(&mut stream);
            }
        }
        Err(Failure::Closed) => {}
    }
}

/// Records a refused add (any refusal) or a read refused for want of
/// authorization.
fn audit_refusal(shared: &Shared, seen: &Seen, err: &ApiError, peer: &str) {
    let event = match seen.route {
        Some(Route::AddExternal) => Event::WriteRefused,
        Some(_) if matches!(err, ApiError::Unauthorized | ApiError::WritesDisabled) => {
            Event::ReadRefused
        }
        _ => return,
    };
    let reason = match err {
        ApiError::Unauthorized if !seen.had_authorization => "no-token",
        ApiError::Unauthorized => "wrong-token",
        other => other.reason(),
    };
    let status = err.status();
    let path = match seen.route {
        Some(Route::AddExternal) => "add",
        Some(Route::GetExternalPool) => "external-pool",
        _ => "status",
    };
    match err {
        ApiError::BadRequest(detail) => {
            let detail: String = detail.chars().take(200).collect();
            shared.audit.record(
                event,
                &[
                    ("status", &status),
                    ("peer", &peer),
                    ("call", &path),
                    ("reason", &reason),
                    ("detail", &detail),
                ],
            );
        }
        _ => shared.audit.record(
            event,
            &[
                ("status", &status),
                ("peer", &peer),
                ("call", &path),
                ("reason", &reason),
            ],
        ),
    }
}

/// The TLS handshake, within `deadline`: one socket read or write at a
/// time, the deadline checked before each (a client trickling its
/// ClientHello is cut off at the deadline). `None` when it failed
/// (recorded when rustls refused the peer) or the client went away.
fn handshake(
    mut sock: TcpStream,
    tls: &TlsState,
    deadline: Instant,
    shared: &Shared,
    peer: &str,
) -> Option<Stream> {
    let mut conn = ServerConnection::new(tls.current()).ok()?;
    let refused = |e: &rustls::Error| {
        let reason = e.to_string();
        shared
            .audit
            .record(Event::TlsRefused, &[("peer", &peer), ("reason", &reason)]);
    };
    // Bounded: each pass makes one socket call that waits at most until
    // the deadline, and the deadline is checked before each.
    while conn.is_handshaking() || conn.wants_write() {
        if shared.stopping() {
            return None;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())?;
        if conn.wants_write() {
            sock.set_write_timeout(Some(left)).ok()?;
            match conn.write_tls(&mut sock) {
                Ok(0) => return None,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
        sock.set_read_timeout(Some(left)).ok()?;
        match conn.read_tls(&mut sock) {
            // The client went away.
            Ok(0) => return None,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return None,
        }
        if let Err(e) = conn.process_new_packets() {
            // rustls refused the peer (an untrusted certificate, plain
            // HTTP, a protocol error): send its alert, record it.
            let _ = sock.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = conn.write_tls(&mut sock);
            refused(&e);
            return None;
        }
    }
    if shared.mutual_tls && conn.peer_certificates().is_none_or(<[_]>::is_empty) {
        // The verifier requires one; never serve without it.
        shared.audit.record(
            Event::TlsRefused,
            &[("peer", &peer), ("reason", &"no client certificate")],
        );
        return None;
    }
    Some(Stream::Tls(Box::new(TlsConn {
        conn,
        sock: BufSocket::new(sock),
    })))
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
        match read_until(stream, &mut scratch, until) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained = drained.saturating_add(n),
        }
    }
}

/// Reads into `buf` with the time left before `deadline`. (A stop shuts the
/// socket's read side, which ends the wait at once.)
fn read_until(stream: &mut Stream, buf: &mut [u8], deadline: Instant) -> Result<usize, Failure> {
    // Bounded: every pass either returns or waits out a finite deadline;
    // EINTR retries are counted.
    let mut interrupts = 0u32;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Failure::Api(ApiError::RequestTimeout))?;
        stream.set_read_timeout(left).map_err(|_| Failure::Closed)?;
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
    shared: &Shared,
    buf: &mut Zeroizing<Vec<u8>>,
    deadline: Instant,
) -> Result<Head, Failure> {
    loop {
        if shared.stopping() {
            return Err(Failure::Closed);
        }
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
        let got = buf
            .get_mut(old..)
            .map_or(Ok(0), |tail| read_until(stream, tail, deadline));
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

/// The body limit for a pool of `capacity` bytes: the JSON of a base64 add
/// of max(capacity, [`MIN_ADD_BYTES`]) bytes, at most `cap`.
#[must_use]
pub fn body_limit_for(capacity: u64, cap: usize) -> usize {
    let raw = capacity.max(MIN_ADD_BYTES);
    let json = raw.div_ceil(3).saturating_mul(4).saturating_add(BODY_SLACK);
    usize::try_from(json).unwrap_or(usize::MAX).min(cap)
}

/// Serves one request: parse, route, authorize, read the body, answer.
fn handle(
    stream: &mut Stream,
    shared: &Shared,
    id: u64,
    head_deadline: Instant,
    deadline: Instant,
    seen: &mut Seen,
) -> Result<Answer, Failure> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_HEAD_LEN));
    let head = read_head(stream, shared, &mut buf, head_deadline)?;
    // A whole head arrived: this request is not dropped to make room.
    shared.registry.mark_active(id);
    let route = api::route(&head.method, &head.target)?;
    seen.route = Some(route);
    seen.had_authorization = head.authorization.is_some();
    authorize(
        shared,
        route,
        head.authorization.as_ref().map(|v| v.as_slice()),
    )?;
    let json = |value: Result<Vec<u8>, serde_json::Error>| {
        value
            .map(|body| Answer { body })
            .map_err(|e| Failure::Api(ApiError::Internal(format!("cannot encode the answer: {e}"))))
    };
    match route {
        Route::GetExternalPool => {
            shared.touch();
            json(serde_json::to_vec(&api::ExternalPoolResponse::from(
                shared.backend.external_pool(),
            )))
        }
        Route::GetStatus => {
            let mut snapshot = shared.backend.status();
            snapshot.api = Some(shared.api_status(Some(snapshot.external.lost_timeout_seconds)));
            json(serde_json::to_vec(&snapshot))
        }
        Route::AddExternal => {
            shared.touch();
            if head.chunked {
                return Err(ApiError::LengthRequired.into());
            }
            let len = head.content_length.ok_or(ApiError::LengthRequired)?;
            let info = shared.backend.external_pool();
            let limit = body_limit_for(info.capacity, shared.body_limit);
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= limit)
                .ok_or(ApiError::PayloadTooLarge { limit })?;
            if !info.enabled {
                return Err(ApiError::ExternalDisabled.into());
            }
            let _slot = shared
                .add_slots
                .acquire(deadline, &shared.shutdown)
                .ok_or(ApiError::Busy)?;
            if head.expect_continue {
                stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .and_then(|()| stream.flush())
                    .map_err(|_| Failure::Closed)?;
            }
            let body = read_body(stream, &buf, head.head_len, len, deadline)?;
            let data = api::parse_add_body(&body, limit)?;
            drop(body);
            let took = shared.backend.add_external(&data).min(data.len());
            let after = shared.backend.external_pool();
            json(serde_json::to_vec(&api::AddResponse {
                accepted: u64::try_from(took).unwrap_or(u64::MAX),
                capacity: after.capacity,
                currently_available: after.currently_available,
                low_watermark: after.low_watermark,
                inactive_source_timeout: after.inactive_source_timeout,
            }))
        }
    }
}

/// Checks a request's authorization: writes always, reads only on a
/// non-loopback listener. With mutual TLS the handshake already verified
/// the client's certificate.
fn authorize(shared: &Shared, route: Route, authorization: Option<&[u8]>) -> Result<(), ApiError> {
    if !route.is_write() && !shared.remote {
        return Ok(());
    }
    match &shared.token {
        Some(token) if token.verify_header(authorization) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized),
        // The client certificate, verified in the handshake, is the
        // credential.
        None if shared.mutual_tls => Ok(()),
        // A Unix socket without a token: its permissions already decided.
        None if shared.unix => Ok(()),
        None => Err(ApiError::WritesDisabled),
    }
}

/// Reads exactly `len` body bytes: those already in `head_buf` after the
/// head, then the rest from the stream, all before `deadline`.
fn read_body(
    stream: &mut Stream,
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
            Some(tail) => read_until(stream, tail, deadline)?,
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
    // One write for head and body: one TLS record set, one segment.
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    stream.write_all(&all)?;
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
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_limit_follows_capacity() {
        // 1 MiB floor: 4 * ceil(1048576 / 3) + 1024.
        assert_eq!(body_limit_for(0, usize::MAX), 1_398_104 + 1024);
        assert_eq!(body_limit_for(512 * 1024, usize::MAX), 1_398_104 + 1024);
        // 3 MiB: exactly 4 MiB of base64.
        assert_eq!(body_limit_for(3 << 20, usize::MAX), (4 << 20) + 1024);
        assert_eq!(body_limit_for(3 << 20, 1000), 1000);
        assert_eq!(body_limit_for(u64::MAX, usize::MAX), usize::MAX);
    }

    fn handle() -> Handle {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Handle::Tcp(TcpStream::connect(l.local_addr().unwrap()).unwrap())
    }

    #[test]
    fn registry_caps_peers_and_drops_the_oldest_pending() {
        let r = Registry::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = r.admit(Some(a), handle()).unwrap();
        let a2 = r.admit(Some(a), handle()).unwrap();
        assert!(r.admit(Some(a), handle()).is_none(), "per-peer cap");
        assert_eq!(r.shed.load(Ordering::Relaxed), 1);
        r.mark_active(a1);
        let b1 = r.admit(Some(b), handle()).unwrap();
        assert_eq!(r.open(), 3);
        // Full: the oldest *pending* one (a2, not the active a1) goes.
        let b2 = r.admit(Some(b), handle()).unwrap();
        let ids: Vec<u64> = r.lock().conns.keys().copied().collect();
        assert_eq!(ids, vec![a1, b1, b2]);
        assert_eq!(r.lock().per_peer.get(&a), Some(&1));
        // a's slot freed by the eviction is usable again.
        r.mark_active(b1);
        r.mark_active(b2);
        // Full of active requests: a newcomer is refused.
        assert!(r.admit(Some(a), handle()).is_none());
        // Threads end: the evicted one and the others.
        for id in [a2, a1, b1, b2] {
            r.release(id);
        }
        assert_eq!(r.open(), 0);
        assert_eq!(r.live(), 0);
        assert!(r.lock().per_peer.is_empty());
    }
}
