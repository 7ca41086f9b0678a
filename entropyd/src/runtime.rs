//! Finding a running daemon: the runtime file, the readiness signal, and
//! the wait of the clients for a daemon that is starting.
//!
//! Contract:
//! - `run` writes [`RUNTIME_FILE`] in the state directory as soon as it
//!   holds the directory (phase `starting`), again once its API listens
//!   (`listening`, with the bound address, `https://IP:PORT` for a TLS
//!   listener) and once the initial seed is out (`ready`). The file holds `key=value` lines: `pid`, `listen`,
//!   `started` (RFC 3339 UTC), `started_unix`, `phase` and
//!   `memory_slots_kib` (how far `set --memory-cache-size` can grow the
//!   cache without a restart). Each write replaces the file atomically
//!   (mode 0644 inside the 0700 state directory). [`RuntimeFile`] removes
//!   it when dropped, so at every exit but a crash.
//! - A file whose pid is not a running process (no `/proc/PID`) is stale:
//!   `run` replaces it (and says so), and the clients ignore it.
//! - [`notify_ready`] signals readiness: `READY=1` to `$NOTIFY_SOCKET` (a
//!   path, or `@name` for an abstract socket) when it is set, as systemd's
//!   `Type=notify` expects, and the `--ready-file` (written atomically,
//!   `pid` and `listen` lines) when one is given.
//! - [`Target`] picks the address a client (`status`, `submit`) talks to:
//!   `--listen` when given, else the live runtime file's address, else
//!   [`DEFAULT_LISTEN`](crate::server::DEFAULT_LISTEN). An address from
//!   the runtime file that cannot be called as it is (`https://0.0.0.0:PORT`
//!   of a TLS daemon on every address: no certificate names it) fails at
//!   run time, exit 1, saying it came from the runtime file and what to
//!   pass as `--listen` ([`Target::failure`]), not as invalid input; any
//!   other call that cannot be made to that address names the runtime
//!   file too.
//!   [`with_daemon`] retries a call that found nobody listening, every
//!   [`RETRY_EVERY`], for up to the `--wait` time, but only while a daemon
//!   may be starting: always for `submit` (it needs a daemon), and for
//!   `status` during a first [`STARTING_GRACE`] (a daemon started with `&`
//!   just before has not written its runtime file yet) and then only while
//!   a live runtime file says one is there, so a `status` with no daemon
//!   answers from the state directory within that grace. `status` also
//!   waits (within `--wait`) while the runtime file says the daemon is not
//!   ready yet, so what it shows includes the initial seed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{ClientError, DaemonAddr};
use crate::daemon::{unix_now, utc_text};
use crate::failure::Failure;
use crate::server;

/// The runtime file's name in the state directory.
pub const RUNTIME_FILE: &str = "entropyd.runtime";
/// Default `--wait` of `status` and `submit`, in seconds.
pub const DEFAULT_WAIT_SECONDS: u64 = 5;
/// How often a client retries a daemon that is starting.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long `status` retries with no runtime file in sight.
pub const STARTING_GRACE: Duration = Duration::from_millis(500);

/// Where a daemon is in its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Holding the state directory, not listening yet.
    Starting,
    /// The API listens; the initial seed is not out yet.
    Listening,
    /// Listening, and the initial seed is out (or could not be completed
    /// in time: see `cmd_run`).
    Ready,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Listening => "listening",
            Phase::Ready => "ready",
        }
    }

    fn parse(text: &str) -> Option<Phase> {
        match text {
            "starting" => Some(Phase::Starting),
            "listening" => Some(Phase::Listening),
            "ready" => Some(Phase::Ready),
            _ => None,
        }
    }
}

/// What a runtime file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The daemon's process id.
    pub pid: u32,
    /// The bound API address (`IP:PORT`, `https://IP:PORT` or
    /// `unix:/path`), once listening.
    pub listen: Option<String>,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// The phase.
    pub phase: Phase,
    /// The memory slots allocated at start, in KiB.
    pub memory_slots_kib: u32,
}

impl RuntimeInfo {
    fn to_text(&self) -> String {
        format!(
            "pid={}\nlisten={}\nstarted={}\nstarted_unix={}\nphase={}\nmemory_slots_kib={}\n",
            self.pid,
            self.listen.as_deref().unwrap_or(""),
            utc_text(self.started_unix),
            self.started_unix,
            self.phase.name(),
            self.memory_slots_kib
        )
    }

    /// Parses the text of a runtime file; `None` when it is not one.
    #[must_use]
    pub fn parse(text: &str) -> Option<RuntimeInfo> {
        let mut pid = None;
        let mut listen = None;
        let mut started_unix = 0;
        let mut phase = None;
        let mut memory_slots_kib = 0;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "pid" => pid = value.parse().ok(),
                "listen" if !value.is_empty() => listen = Some(value.to_owned()),
                "started_unix" => started_unix = value.parse().unwrap_or(0),
                "phase" => phase = Phase::parse(value),
                "memory_slots_kib" => memory_slots_kib = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        Some(RuntimeInfo {
            pid: pid?,
            listen,
            started_unix,
            phase: phase?,
            memory_slots_kib,
        })
    }
}

/// The runtime file's path in `state_dir`.
#[must_use]
pub fn runtime_path(state_dir: &Path) -> PathBuf {
    state_dir.join(RUNTIME_FILE)
}

/// Whether a process `pid` runs (Linux: `/proc/PID` exists).
#[must_use]
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// The runtime file of `state_dir`, when there is one that parses
/// (stale or not: check [`pid_alive`]).
#[must_use]
pub fn read(state_dir: &Path) -> Option<RuntimeInfo> {
    let text = fs::read_to_string(runtime_path(state_dir)).ok()?;
    RuntimeInfo::parse(&text)
}

/// The live daemon's runtime file of `state_dir`, if a daemon runs.
#[must_use]
pub fn live(state_dir: &Path) -> Option<RuntimeInfo> {
    read(state_dir).filter(|i| pid_alive(i.pid))
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, then
/// a rename), with `mode`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The daemon's runtime file: written on [`RuntimeFile::create`], updated
/// per phase, removed on drop.
#[derive(Debug)]
pub struct RuntimeFile {
    path: PathBuf,
    info: RuntimeInfo,
}

impl RuntimeFile {
    /// Writes the runtime file of `state_dir` (phase `starting`). Returns
    /// it and the stale file it replaced, if any. Call it only while
    /// holding the state directory (one daemon per directory): any file
    /// there then is stale.
    ///
    /// # Errors
    /// The I/O error writing it.
    pub fn create(
        state_dir: &Path,
        memory_slots_kib: u32,
    ) -> io::Result<(RuntimeFile, Option<RuntimeInfo>)> {
        let path = runtime_path(state_dir);
        let stale = read(state_dir);
        let file = RuntimeFile {
            path,
            info: RuntimeInfo {
                pid: std::process::id(),
                listen: None,
                started_unix: unix_now(),
                phase: Phase::Starting,
                memory_slots_kib,
            },
        };
        file.write()?;
        Ok((file, stale))
    }

    fn write(&self) -> io::Result<()> {
        write_atomic(&self.path, self.info.to_text().as_bytes(), 0o644)
    }

    /// Records the bound API address (phase `listening`).
    ///
    /// # Errors
    /// The I/O error writing the file.
    pub fn set_listening(&mut self, listen: &str) -> io::Result<()> {
        self.info.listen = Some(listen.to_owned());
        self.info.phase = Phase::Listening;
        self.write()
    }

    /// Records readiness (phase `ready`).
    ///
    /// # Errors
    /// The I/O error writing the file.
    pub fn set_ready(&mut self) -> io::Result<()> {
        self.info.phase = Phase::Ready;
        self.write()
    }

    /// What the file says.
    #[must_use]
    pub fn info(&self) -> &RuntimeInfo {
        &self.info
    }
}

impl Drop for RuntimeFile {
    fn drop(&mut self) {
        // Only our own file (a later daemon may have replaced it).
        if read_path(&self.path).is_some_and(|i| i.pid == self.info.pid) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn read_path(path: &Path) -> Option<RuntimeInfo> {
    RuntimeInfo::parse(&fs::read_to_string(path).ok()?)
}

/// The `--ready-file`, removed on drop.
#[derive(Debug)]
pub struct ReadyFile {
    path: PathBuf,
    written: bool,
}

impl ReadyFile {
    /// A ready file at `path` (nothing written yet; an old one is removed
    /// so nobody mistakes it for this start's).
    #[must_use]
    pub fn new(path: PathBuf) -> ReadyFile {
        let _ = fs::remove_file(&path);
        ReadyFile {
            path,
            written: false,
        }
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if self.written {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Signals readiness: `READY=1` to `$NOTIFY_SOCKET` when set, and the
/// ready file when given. Returns what was done, for the log.
///
/// # Errors
/// A message naming what failed (the other signal is still sent).
pub fn notify_ready(ready_file: Option<&mut ReadyFile>, listen: &str) -> Result<String, String> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) {
        let message = format!(
            "READY=1\nMAINPID={}\nSTATUS=listening on {listen}\n",
            std::process::id()
        );
        match sd_notify(&socket, message.as_bytes()) {
            Ok(()) => done.push("READY=1 sent to $NOTIFY_SOCKET".to_owned()),
            Err(e) => failed.push(format!("sd_notify to {}: {e}", socket.to_string_lossy())),
        }
    }
    if let Some(file) = ready_file {
        let text = format!("pid={}\nlisten={listen}\n", std::process::id());
        match write_atomic(&file.path, text.as_bytes(), 0o644) {
            Ok(()) => {
                file.written = true;
                done.push(format!("ready file {} written", file.path.display()));
            }
            Err(e) => failed.push(format!("ready file {}: {e}", file.path.display())),
        }
    }
    if failed.is_empty() {
        Ok(done.join("; "))
    } else {
        Err(failed.join("; "))
    }
}

/// Sends one datagram to the systemd notification socket `socket` (a
/// path, or `@name` for an abstract socket).
fn sd_notify(socket: &std::ffi::OsStr, message: &[u8]) -> io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        #[cfg(not(target_os = "linux"))]
        Some(_) => return Err(io::Error::from(io::ErrorKind::Unsupported)),
        None => SocketAddr::from_pathname(socket)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(message, &addr)?;
    Ok(())
}

/// The address a client talks to, and where it came from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address.
    pub listen: DaemonAddr,
    /// Its text.
    pub text: String,
    /// Whether it came from the runtime file.
    pub from_runtime_file: bool,
}

impl Target {
    /// The address given with `--listen`, parsed (its text kept as typed).
    ///
    /// # Errors
    /// The parse error of a bad address.
    pub fn given(text: &str) -> Result<Target, String> {
        Ok(Target {
            listen: text.parse()?,
            text: text.to_owned(),
            from_runtime_file: false,
        })
    }

    /// The failure of a call to this target: as
    /// [`ClientError::into_failure`], except for a call that cannot be made
    /// to the runtime file's address ([`ClientError::Setup`]): the message
    /// then says the address came from the runtime file, and when the
    /// address itself is the trouble (`https://0.0.0.0:PORT` of a TLS
    /// daemon on every address) it is a runtime failure (exit 1), not
    /// invalid input: the user did not type it. (A missing flag, such as
    /// `--ca` for an https address, stays invalid input.)
    #[must_use]
    pub fn failure(&self, e: ClientError, state_dir: &Path) -> Failure {
        match e {
            ClientError::Setup(msg) if self.from_runtime_file => {
                let message = format!(
                    "{msg} (that address came from the daemon's runtime file {}, not from --listen)",
                    runtime_path(state_dir).display()
                );
                if self.listen.names_every_address() {
                    Failure::runtime(message)
                } else {
                    Failure::invalid(message)
                }
            }
            e => e.into_failure(),
        }
    }
}

/// `--listen` when `given` ([`Target::given`], parsed once), else the live
/// runtime file's address, else the default.
///
/// # Errors
/// The parse error of a bad address in the runtime file.
pub fn target(given: Option<&Target>, state_dir: &Path) -> Result<Target, String> {
    if let Some(given) = given {
        return Ok(given.clone());
    }
    let (text, from_runtime_file) = match live(state_dir).and_then(|i| i.listen) {
        Some(l) => (l, true),
        None => (server::DEFAULT_LISTEN.to_owned(), false),
    };
    Ok(Target {
        listen: text.parse()?,
        text,
        from_runtime_file,
    })
}

/// Runs `call` against the daemon at the [`target`]; while nobody answers
/// and a daemon may be starting (`always_wait`, the first
/// [`STARTING_GRACE`], or a live runtime file in `state_dir`), resolves the
/// target again and retries every [`RETRY_EVERY`] until `wait` has passed.
/// With `until_ready`, it first waits (within `wait`) while a live runtime
/// file says the daemon is not ready yet. Returns the last answer and the
/// target it came from.
///
/// # Errors
/// The parse error of a bad address in the runtime file (as a message).
pub fn with_daemon<T>(
    given: Option<&Target>,
    state_dir: &Path,
    wait: Duration,
    always_wait: bool,
    until_ready: bool,
    mut call: impl FnMut(&DaemonAddr) -> Result<T, ClientError>,
) -> Result<(Result<T, ClientError>, Target), String> {
    let started = Instant::now();
    let deadline = started.checked_add(wait);
    loop {
        let time_left = deadline.is_some_and(|d| Instant::now() < d);
        if until_ready && time_left && live(state_dir).is_some_and(|i| i.phase != Phase::Ready) {
            std::thread::sleep(RETRY_EVERY);
            continue;
        }
        let target = target(given, state_dir)?;
        let answer = call(&target.listen);
        let unreachable = matches!(&answer, Err(e) if e.is_unreachable());
        let may_start =
            always_wait || started.elapsed() < STARTING_GRACE || live(state_dir).is_some();
        let time_left = deadline.is_some_and(|d| Instant::now() < d);
        if !unreachable || !may_start || !time_left {
            return Ok((answer, target));
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_text_round_trips_and_rejects_garbage() {
        let info = RuntimeInfo {
            pid: 42,
            listen: Some("127.0.0.1:9".to_owned()),
            started_unix: 86_400,
            phase: Phase::Listening,
            memory_slots_kib: 8192,
        };
        let text = info.to_text();
        assert!(text.contains("started=1970-01-02T00:00:00Z\n"), "{text}");
        assert_eq!(RuntimeInfo::parse(&text), Some(info));
        assert_eq!(RuntimeInfo::parse("pid=x\nphase=ready\n"), None);
        assert_eq!(RuntimeInfo::parse("pid=1\nphase=later\n"), None);
        let starting = RuntimeInfo::parse("pid=7\nlisten=\nphase=starting\n").unwrap();
        assert_eq!(starting.listen, None);
    }

    #[test]
    fn own_pid_is_alive_and_a_stale_file_is_ignored() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        let dir = tempfile::tempdir().unwrap();
        // Pids above the kernel's pid_max (at most 2^22) never run.
        fs::write(
            runtime_path(dir.path()),
            "pid=4194305\nlisten=127.0.0.1:9\nphase=ready\n",
        )
        .unwrap();
        assert!(read(dir.path()).is_some());
        assert!(live(dir.path()).is_none());
        let t = target(None, dir.path()).unwrap();
        assert_eq!(t.text, server::DEFAULT_LISTEN);
        // Our own file: found, then removed on drop.
        let (mut file, stale) = RuntimeFile::create(dir.path(), 8192).unwrap();
        assert_eq!(stale.map(|s| s.pid), Some(4_194_305));
        file.set_listening("127.0.0.1:7").unwrap();
        let t = target(None, dir.path()).unwrap();
        assert_eq!(
            (t.text.as_str(), t.from_runtime_file),
            ("127.0.0.1:7", true)
        );
        let given = Target::given("127.0.0.1:8").unwrap();
        let t = target(Some(&given), dir.path()).unwrap();
        assert_eq!(t.text, "127.0.0.1:8");
        drop(file);
        assert!(!runtime_path(dir.path()).exists());
    }

    #[test]
    fn notify_reaches_a_datagram_socket_and_the_ready_file() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sd_notify(sock_path.as_os_str(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        let ready = dir.path().join("ready");
        let mut file = ReadyFile::new(ready.clone());
        // NOTIFY_SOCKET is not set for the test process.
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            let done = notify_ready(Some(&mut file), "127.0.0.1:5").unwrap();
            assert!(done.contains("ready file"), "{done}");
            let text = fs::read_to_string(&ready).unwrap();
            assert!(text.contains("listen=127.0.0.1:5\n"), "{text}");
            drop(file);
            assert!(!ready.exists());
        }
    }
}
