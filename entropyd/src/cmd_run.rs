//! `run`: the daemon.
//!
//! Contract:
//! - Start: SIGTERM/SIGINT handlers first; then the output (`--kernel`
//!   probes `RNDADDENTROPY` at once, so a missing capability fails here
//!   with exit 1; `--sink` opens or creates the sink), the token, the
//!   state directory (created 0700 when missing, tightened to 0700 with a
//!   log line when looser, then held with an `flock(2)` on its lock file:
//!   one daemon per state directory, since two would share the storage
//!   cache and could hand out one stored block twice; see
//!   [`StateDir::lock`]), the
//!   runtime file ([`crate::runtime`]; a stale one is replaced), the
//!   config store (`--sources` overrides the stored mask), the pool
//!   (memory slots for max(memory-cache-size, [`MEMORY_SLOTS_FLOOR_KIB`])
//!   KiB, so `set` can grow the cache up to that while running; the
//!   storage cache file in the state directory) and the API server. The
//!   bound address is logged as `listening on ADDR`. A TCP address other
//!   than loopback needs `--tls-cert/--tls-key` and a credential
//!   (`--token-file`, `--tls-client-ca`, or both): without them `run`
//!   refuses to start (exit 2). SIGHUP reloads the TLS files; a bad new
//!   pair is logged and the one in use kept.
//! - **A failed start changes nothing.** Until the server listens, nothing
//!   of the state directory is used up: a storage cache file this start
//!   created is removed again, and blocks already loaded from an existing
//!   one are saved back to it. Only then is the staged kickstart seed
//!   taken (first start only): it is conditioned and credited through the
//!   pool's external path whatever the sources mask, fills the memory
//!   cache, then the storage cache; one log line gives the counts.
//! - **Kernel first.** Then the initial seed: `--initial-seed` bytes
//!   (default [`DEFAULT_INITIAL_SEED`]; 0 turns it off) go to the output
//!   before any other forward and outside the rate limit, from the oldest
//!   blocks first: those loaded from the storage cache (erased there before
//!   use), then the kickstart seed's, then fresh ones as the sources make
//!   them. One log line says how many bytes came from where and how long
//!   it took.
//! - **Readiness.** Once listening and the initial seed is out (or after
//!   [`SEED_READY_WAIT`] without it: an external-only pool with nothing
//!   stored waits for its feeder, which needs the API; the log says so and
//!   the rest of the seed follows as blocks come), `run` signals ready:
//!   `READY=1` to `$NOTIFY_SOCKET` (systemd `Type=notify`), the
//!   `--ready-file`, and the runtime file's phase.
//! - **Steady feed.** After the seed, blocks go out at most `--feed-rate`
//!   bytes per second (a token bucket holding at most one second's worth),
//!   in whole 32-byte blocks, at most [`FORWARD_MAX_BLOCKS`] per write,
//!   from the memory cache down to one block below its low watermark
//!   (which starts the refill), whether or not the caches were ever full,
//!   while the refill runs beside it; never from the storage cache, which
//!   is the reserve for the next start. With `--kernel`, while
//!   `/dev/random` polls writable (the kernel's CRNG is not ready; checked
//!   every [`DEMAND_CHECK_EVERY`]) 64 bytes go out at once, outside the
//!   rate limit, from any cache. A block taken for the output is gone:
//!   bytes a FIFO did not take (pipe full, reader gone) or the kernel
//!   refused are wiped, never re-sent. A FIFO with no reader gets nothing
//!   taken for it. What the output accepted is counted (in total, at
//!   start, from storage, when last) and shown by `status`.
//! - Loop until SIGTERM/SIGINT: [`Pool::poll`](entropool::Pool::poll)
//!   (its storage writes deferred: blocks for the storage cache are
//!   written and flushed once per poll outside the pool lock,
//!   [`DaemonBackend::spill`]; sleeping [`IDLE_SLEEP`] when nothing is wanted, [`STARVED_SLEEP`] when
//!   blocks are wanted but no source produced any: never a spin), forward
//!   (above), reload the config store when its file changes (checked every
//!   [`CONFIG_CHECK`]; a config store that cannot be read is logged and
//!   ignored, keeping the running configuration; a memory-cache-size beyond
//!   the slots allocated at start is logged and kept for the next start
//!   while the other changes apply), and, when stderr is a terminal, redraw
//!   a live status line every second.
//! - Stop: the server first (no more adds), the jitter thread, then
//!   [`Pool::flush_to_storage`](entropool::Pool::flush_to_storage)
//!   (the memory cache to the storage cache), a sink `fdatasync`, the
//!   runtime and ready files removed, exit 0. A failed flush is exit 1
//!   (those blocks are wiped, never kept twice).

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::config::Param;
use entropool::store::StateDir;
use entropool::{Config, Error, FileStorage, SourceMask};
use zeroize::Zeroizing;

use crate::backend::PoolBackend;
use crate::cli::{self, Context};
use crate::daemon::{self, DaemonBackend, DaemonPool, ForwardCounters, log, watermark_blocks};
use crate::failure::Failure;
use crate::kernel::KernelFeed;
use crate::runtime::{self, ReadyFile, RuntimeFile};
use crate::server::{self, ApiServer, ListenAddr, ServerConfig};
use crate::signals::{Reload, Shutdown};
use crate::sink::{PIPE_ATOMIC, Sink, SinkError, SinkKind};
use crate::tls::{TlsError, TlsFiles, TlsState};
use crate::view;

/// Default `--feed-rate`: 4096 bytes (128 blocks) per second.
pub const DEFAULT_FEED_RATE: u64 = 4096;
/// Default `--initial-seed`: 64 bytes (512 bits).
pub const DEFAULT_INITIAL_SEED: u64 = 64;
/// Largest `--initial-seed`: 1 MiB.
pub const INITIAL_SEED_MAX: u64 = 1024 * 1024;
/// Readiness is signalled at the latest this long after listening, even
/// when the initial seed is not out yet.
pub const SEED_READY_WAIT: Duration = Duration::from_secs(10);
/// How often `--kernel` asks whether the kernel waits for entropy.
pub const DEMAND_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Bytes sent at once while the kernel waits for entropy.
pub const DEMAND_BYTES: usize = 64;
/// The memory slots allocated at start cover at least this many KiB, so
/// `set --memory-cache-size` can grow the cache that far without a restart.
pub const MEMORY_SLOTS_FLOOR_KIB: u32 = 8192;
/// Most blocks forwarded in one write: one atomic FIFO write.
pub const FORWARD_MAX_BLOCKS: usize = PIPE_ATOMIC / 32;
/// How often the config store's file is checked for changes.
pub const CONFIG_CHECK: Duration = Duration::from_secs(1);
/// Sleep when no blocks are wanted.
pub const IDLE_SLEEP: Duration = Duration::from_millis(50);
/// Sleep when blocks are wanted but no source produced any.
pub const STARVED_SLEEP: Duration = Duration::from_millis(10);
/// How often the live status line is redrawn.
const STATUS_LINE_EVERY: Duration = Duration::from_secs(1);
/// Least time between two log lines about failing output writes.
const OUTPUT_ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// Arguments of `run`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Sources mask 0..=15 (1 interrupts, 2 RDRAND, 4 RDSEED, 8 external;
    /// 0 the default), overriding the stored one for this run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=15))]
    pub sources: Option<u8>,
    /// Where the API listens: IP:PORT (port 0 picks one; other than
    /// loopback it needs --tls-cert/--tls-key and --token-file or
    /// --tls-client-ca) or unix:/path/to/socket.
    #[arg(long, value_name = "ADDR", default_value = server::DEFAULT_LISTEN)]
    pub listen: String,
    /// The API's TLS certificate chain (PEM, leaf first); reloaded on SIGHUP.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The API's TLS private key (PEM, mode 0600 or 0400); reloaded on SIGHUP.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: every client needs a certificate from this CA (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Forward entropy to the kernel's pool (RNDADDENTROPY on
    /// /dev/random; needs root or CAP_SYS_ADMIN).
    #[arg(long, conflicts_with = "sink")]
    pub kernel: bool,
    /// Append entropy to this file or FIFO (created 0600), as the kernel
    /// would get it.
    #[arg(long, value_name = "PATH")]
    pub sink: Option<PathBuf>,
    /// The API write token (a file of mode 0600 or 0400); without it the
    /// API is read-only on TCP.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Steady feed: most bytes forwarded to the sink or kernel per second
    /// after the initial seed (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_FEED_RATE)]
    pub feed_rate: u64,
    /// Bytes forwarded to the sink or kernel at start, before anything
    /// else: from the storage cache first, then fresh blocks (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_INITIAL_SEED,
          value_parser = clap::value_parser!(u64).range(0..=INITIAL_SEED_MAX))]
    pub initial_seed: u64,
    /// Write this file (pid, listen address) once ready: listening and the
    /// initial seed out. Removed at exit. (With $NOTIFY_SOCKET set,
    /// READY=1 is sent there too.)
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

/// Where forwarded entropy goes.
#[derive(Debug)]
enum Output {
    None,
    Sink(Sink),
    Kernel(KernelFeed),
}

impl Output {
    fn describe(&self, args: &Args) -> String {
        match (self, &args.sink) {
            (Output::Kernel(_), _) => "the kernel (RNDADDENTROPY)".to_owned(),
            (Output::Sink(s), Some(p)) => format!("sink {} ({:?})", p.display(), s.kind()),
            _ => "none (no --kernel or --sink)".to_owned(),
        }
    }
}

/// Why blocks were taken for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The initial seed.
    Seed,
    /// The kernel asked (its CRNG is not ready).
    Demand,
    /// The rate-limited steady feed.
    Steady,
}

/// Blocks taken for the output, to send after unlocking the pool.
#[derive(Debug, Clone, Copy)]
struct Taken {
    len: usize,
    from_storage: usize,
    purpose: Purpose,
}

/// The initial seed's progress.
#[derive(Debug)]
struct SeedProgress {
    target: u64,
    left: u64,
    started: Instant,
    from_storage: u64,
    from_kickstart: u64,
    fresh: u64,
    refused: u64,
    /// Kickstart bytes still at the front of the memory cache (behind the
    /// blocks loaded from storage).
    kickstart_front: u64,
    done_logged: bool,
}

impl SeedProgress {
    fn done(&self) -> bool {
        self.left == 0
    }
}

/// The forwarder: the initial seed, the kernel's demand and the
/// rate-limited steady feed (see the module documentation).
#[derive(Debug)]
struct Forwarder {
    output: Output,
    rate: u64,
    tokens: u64,
    last_refill: Instant,
    last_error_log: Option<Instant>,
    last_demand_check: Option<Instant>,
    lost_bytes: u64,
    seed: SeedProgress,
}

impl Forwarder {
    fn new(output: Output, rate: u64, seed_bytes: u64, kickstart_front: u64) -> Self {
        let seed = if matches!(output, Output::None) {
            0
        } else {
            seed_bytes
        };
        Forwarder {
            output,
            rate,
            tokens: 0,
            last_refill: Instant::now(),
            last_error_log: None,
            last_demand_check: None,
            lost_bytes: 0,
            seed: SeedProgress {
                target: seed,
                left: seed,
                started: Instant::now(),
                from_storage: 0,
                from_kickstart: 0,
                fresh: 0,
                refused: 0,
                kickstart_front,
                done_logged: false,
            },
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let micros = now.saturating_duration_since(self.last_refill).as_micros();
        let add = micros.saturating_mul(u128::from(self.rate)) / 1_000_000;
        if add > 0 {
            let cap = self.rate.max(32);
            let add = u64::try_from(add).unwrap_or(u64::MAX);
            self.tokens = self.tokens.saturating_add(add).min(cap);
            self.last_refill = now;
        }
    }

    /// Whether the kernel waits for entropy now (checked at most every
    /// [`DEMAND_CHECK_EVERY`]).
    fn kernel_demand(&mut self) -> bool {
        let Output::Kernel(feed) = &self.output else {
            return false;
        };
        let now = Instant::now();
        if self
            .last_demand_check
            .is_some_and(|t| now.saturating_duration_since(t) < DEMAND_CHECK_EVERY)
        {
            return false;
        }
        self.last_demand_check = Some(now);
        feed.wants_entropy().unwrap_or(false)
    }

    /// Takes the blocks to forward now from `pool` into `buf`. Call with
    /// the pool locked; write them with [`Forwarder::send`] after
    /// unlocking.
    fn take(&mut self, pool: &mut DaemonPool, buf: &mut [u8; PIPE_ATOMIC]) -> Option<Taken> {
        match &mut self.output {
            Output::None => return None,
            Output::Sink(sink) => {
                if sink.kind() == SinkKind::Fifo && !sink.ready() {
                    return None;
                }
            }
            Output::Kernel(_) => {}
        }
        let st = pool.status();
        let stored = usize::try_from(st.storage.len_blocks).unwrap_or(usize::MAX);
        let any = st.memory_len_blocks.saturating_add(stored);
        let (len, purpose) = if self.seed.left > 0 {
            // The seed: from whatever is there, oldest (stored) first.
            let want = usize::try_from(self.seed.left).unwrap_or(usize::MAX);
            let blocks = want.div_ceil(32).min(any).min(FORWARD_MAX_BLOCKS);
            (want.min(blocks.saturating_mul(32)), Purpose::Seed)
        } else if any.saturating_mul(32) >= DEMAND_BYTES && self.kernel_demand() {
            (DEMAND_BYTES, Purpose::Demand)
        } else {
            if self.rate == 0 {
                return None;
            }
            self.refill();
            // The memory cache down to one block below the low watermark
            // (the refill then runs beside the feed); never the storage
            // cache.
            let floor = watermark_blocks(st.memory_capacity_blocks, st.low_watermark_percent)
                .saturating_sub(1);
            let floor = usize::try_from(floor).unwrap_or(usize::MAX);
            let surplus = st.memory_len_blocks.saturating_sub(floor);
            let by_rate = usize::try_from(self.tokens / 32).unwrap_or(usize::MAX);
            let blocks = surplus.min(by_rate).min(FORWARD_MAX_BLOCKS);
            (blocks.saturating_mul(32), Purpose::Steady)
        };
        let out = buf.get_mut(..len).filter(|o| !o.is_empty())?;
        let before = st.bytes_served_from_storage;
        if pool.fill(out).is_err() {
            return None;
        }
        let from_storage = pool
            .status()
            .bytes_served_from_storage
            .saturating_sub(before);
        if purpose == Purpose::Steady {
            self.tokens = self
                .tokens
                .saturating_sub(u64::try_from(len).unwrap_or(u64::MAX));
        }
        Some(Taken {
            len,
            from_storage: usize::try_from(from_storage).unwrap_or(usize::MAX),
            purpose,
        })
    }

    /// Writes the taken bytes of `buf` to the output, wipes `buf`, and
    /// counts what the output accepted. Whatever it did not take is gone.
    fn send(&mut self, buf: &mut [u8; PIPE_ATOMIC], taken: Taken, counters: &ForwardCounters) {
        let len = taken.len;
        let data = buf.get(..len).unwrap_or(&[]);
        let result: Result<usize, String> = match &mut self.output {
            Output::None => Ok(0),
            Output::Sink(sink) => sink.write(data).map_err(|e| e.to_string()),
            Output::Kernel(feed) => feed
                .add_full_entropy(data)
                .map(|()| len)
                .map_err(|e| e.to_string()),
        };
        zeroize::Zeroize::zeroize(&mut buf[..]);
        let sent = match result {
            Ok(n) => n,
            Err(e) => {
                let now = Instant::now();
                let due = self
                    .last_error_log
                    .is_none_or(|t| now.saturating_duration_since(t) >= OUTPUT_ERROR_LOG_EVERY);
                if due {
                    log(format_args!(
                        "forwarding failed (the blocks are discarded, never re-sent): {e}"
                    ));
                    self.last_error_log = Some(now);
                }
                0
            }
        };
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let sent64 = u64::try_from(sent).unwrap_or(u64::MAX);
        let stored64 = u64::try_from(taken.from_storage).unwrap_or(u64::MAX);
        self.lost_bytes = self.lost_bytes.saturating_add(len64.saturating_sub(sent64));
        let at_start = if taken.purpose == Purpose::Seed {
            sent64
        } else {
            0
        };
        counters.record(sent64, at_start, stored64);
        // The oldest blocks leave first: stored ones, then the kickstart's.
        let kick = len64
            .saturating_sub(stored64)
            .min(self.seed.kickstart_front);
        self.seed.kickstart_front = self.seed.kickstart_front.saturating_sub(kick);
        if taken.purpose == Purpose::Seed {
            let s = &mut self.seed;
            s.left = s.left.saturating_sub(len64);
            s.from_storage = s.from_storage.saturating_add(stored64);
            s.from_kickstart = s.from_kickstart.saturating_add(kick);
            s.fresh = s
                .fresh
                .saturating_add(len64.saturating_sub(stored64).saturating_sub(kick));
            s.refused = s.refused.saturating_add(len64.saturating_sub(sent64));
        }
    }

    /// Logs the initial seed once it is out.
    fn log_seed(&mut self, output: &str, sources: &str) {
        let s = &mut self.seed;
        if s.done_logged || !s.done() || s.target == 0 {
            return;
        }
        s.done_logged = true;
        let refused = if s.refused > 0 {
            format!(
                " ({} of them refused by the output and discarded)",
                s.refused
            )
        } else {
            String::new()
        };
        log(format_args!(
            "initial seed: {} bytes to {output} in {} ms: {} from the storage cache, {} from the install-time seed, {} fresh from sources {sources}{refused}",
            s.target,
            s.started.elapsed().as_millis(),
            s.from_storage,
            s.from_kickstart,
            s.fresh
        ));
    }

    fn finish(&mut self) {
        let synced = match &mut self.output {
            Output::Sink(sink) => sink.sync(),
            _ => Ok(()),
        };
        if let Err(e) = synced {
            log(format_args!("sink sync failed: {e}"));
        }
        if self.lost_bytes > 0 {
            log(format_args!(
                "{} bytes taken for the output were not accepted by it and were discarded",
                self.lost_bytes
            ));
        }
    }
}

/// The identity of the config file's current version (inode, size,
/// modification time): a `set` renames a new file into place.
fn config_stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    fs::metadata(path)
        .ok()
        .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Applies config store changes to the running pool.
#[derive(Debug)]
struct ConfigWatch {
    state: StateDir,
    stamp: Option<(u64, u64, i64, i64)>,
    last_check: Instant,
    /// The stored sources mask the pool started with (`None` when
    /// `--sources` overrides it).
    sources: Option<SourceMask>,
    slots_kib: u32,
}

impl ConfigWatch {
    fn check(&mut self, backend: &DaemonBackend) {
        if self.last_check.elapsed() < CONFIG_CHECK {
            return;
        }
        self.last_check = Instant::now();
        let stamp = config_stamp(&self.state.config_path());
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        let config = match self.state.load_config() {
            Ok(c) => c,
            Err(e) => {
                log(format_args!(
                    "the config store changed but cannot be used ({e}); keeping the running configuration"
                ));
                return;
            }
        };
        if let Some(started) = self.sources {
            if config.sources != started {
                log(format_args!(
                    "the stored sources mask is now {}; it takes effect at the next start (running with {})",
                    config.sources.value(),
                    started.value()
                ));
                self.sources = Some(config.sources);
            }
        }
        let mut pool = backend.lock();
        if *pool.tunables() == config.tunables {
            return;
        }
        match pool.set_tunables(&config.tunables) {
            Ok(()) => {
                drop(pool);
                log(format_args!(
                    "configuration reloaded: {}",
                    tunables_line(&config)
                ));
            }
            Err(Error::CapacityTooSmall) => {
                // The memory slots cannot hold the new size: apply every
                // other change with the running size.
                let mut rest = config;
                let running = pool.tunables().memory_cache_size_kib();
                let applied = rest
                    .tunables
                    .set(Param::MemoryCacheSize, running)
                    .and_then(|()| pool.set_tunables(&rest.tunables));
                drop(pool);
                log(format_args!(
                    "memory-cache-size={} KiB is more than the {} KiB allocated at start: restart entropyd to apply it; keeping {running} KiB",
                    config.tunables.memory_cache_size_kib(),
                    self.slots_kib
                ));
                match applied {
                    Ok(()) => log(format_args!(
                        "configuration reloaded: {}",
                        tunables_line(&rest)
                    )),
                    Err(e) => log(format_args!(
                        "the other changes could not be applied either ({e}); the pool keeps running"
                    )),
                }
            }
            Err(e) => {
                drop(pool);
                log(format_args!(
                    "the new configuration could not be applied ({e}); the pool keeps running"
                ));
            }
        }
    }
}

/// `name=value` for each tunable.
fn tunables_line(config: &Config) -> String {
    Param::ALL
        .iter()
        .map(|&p| format!("{}={}", p.name(), config.tunables.get(p)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the state directory (0700) when missing.
fn create_state_dir(path: &Path) -> Result<(), Failure> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", path.display())))
}

/// The TLS configuration of `--tls-cert/--tls-key/--tls-client-ca`.
fn load_tls(args: &Args) -> Result<Option<Arc<TlsState>>, Failure> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: args.tls_client_ca.clone(),
    };
    TlsState::load(files)
        .map(Arc::new)
        .map(Some)
        .map_err(TlsError::into_failure)
}

/// SIGHUP: the new certificate and key, or the old ones kept.
fn reload_tls(server: &ApiServer) {
    match server.reload_tls() {
        Ok(true) => log("SIGHUP: TLS certificate and key reloaded for new connections"),
        Ok(false) => log("SIGHUP: no TLS configured, nothing to reload"),
        Err(e) => log(format_args!(
            "SIGHUP: TLS reload failed, keeping the certificate and key in use: {e}"
        )),
    }
}

fn open_output(args: &Args) -> Result<Output, Failure> {
    if args.kernel {
        let mut feed = KernelFeed::open().map_err(|e| Failure::runtime(e.to_string()))?;
        feed.probe().map_err(|e| Failure::runtime(e.to_string()))?;
        return Ok(Output::Kernel(feed));
    }
    match &args.sink {
        Some(path) => Sink::open(path).map(Output::Sink).map_err(|e| match e {
            SinkError::InsecureMode { .. } | SinkError::Unsupported { .. } => {
                Failure::invalid(e.to_string())
            }
            SinkError::Io { .. } => Failure::runtime(e.to_string()),
        }),
        None => Ok(Output::None),
    }
}

/// Uses the staged kickstart seed, if any: conditioned and credited as
/// external entropy whatever the sources mask, into the memory cache, then
/// the storage cache. Returns the bytes of blocks it put in the memory
/// cache (they leave it first, after the stored ones).
fn use_staged_seed(state: &StateDir, backend: &DaemonBackend) -> u64 {
    let seed = match state.take_staged_kickstart() {
        Ok(None) => return 0,
        Ok(Some(seed)) => seed,
        Err(e) => {
            log(format_args!(
                "cannot use the staged install-time entropy: {e}"
            ));
            return 0;
        }
    };
    let mut pool = backend.lock();
    let before = pool.status();
    let result = pool.seed_external(&seed);
    let after = pool.status();
    drop(pool);
    let memory = after
        .memory_len_blocks
        .saturating_sub(before.memory_len_blocks);
    let stored = after
        .storage
        .len_blocks
        .saturating_sub(before.storage.len_blocks);
    match result {
        Ok(used) => {
            log(format_args!(
                "install-time seed: {} bytes staged, {used} used (conditioned, credited as external entropy): {memory} blocks to the memory cache, {stored} to the storage cache; {} bytes did not fit and were discarded",
                seed.len(),
                seed.len().saturating_sub(used)
            ));
            u64::try_from(memory).unwrap_or(u64::MAX).saturating_mul(32)
        }
        Err(e) => {
            log(format_args!(
                "staged install-time entropy ({} bytes) discarded: {e}",
                seed.len()
            ));
            0
        }
    }
}

/// Undoes what a failed start did to the state directory: blocks loaded
/// from an existing storage cache go back to it; a storage cache file this
/// start created is removed.
fn undo_start(backend: Option<&DaemonBackend>, storage_path: &Path, storage_existed: bool) {
    if storage_existed {
        if let Some(b) = backend {
            if let Err(e) = b.lock().flush_to_storage() {
                log(format_args!(
                    "saving the loaded blocks back to the storage cache failed: {e} (they were wiped)"
                ));
            }
        }
    } else {
        let _ = fs::remove_file(storage_path);
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// Invalid input (exit 2): a bad listen address, token or sink file mode,
/// a mask naming a missing instruction. Runtime (exit 1): the kernel feed
/// without the capability, an unreadable state directory or config store,
/// a second daemon on the same state directory, a pool or server that
/// cannot start, a failed final flush.
#[allow(clippy::too_many_lines)]
pub fn run(args: &Args, ctx: &Context, _out: &mut dyn Write) -> Result<(), Failure> {
    let shutdown = Shutdown::install()
        .map_err(|e| Failure::runtime(format!("cannot install signal handlers: {e}")))?;
    let mut ready_file = args.ready_file.clone().map(ReadyFile::new);
    let listen = cli::listen_arg(&args.listen)?;
    let token = args.token_file.as_deref().map(cli::token_arg).transpose()?;
    let tls = load_tls(args)?;
    server::check_listen(&listen, tls.as_ref().map(|t| t.mutual()), token.is_some())
        .map_err(|e| Failure::invalid(e.to_string()))?;
    let reload = Reload::install()
        .map_err(|e| Failure::runtime(format!("cannot install the SIGHUP handler: {e}")))?;
    let output = open_output(args)?;
    let output_text = output.describe(args);

    create_state_dir(&ctx.state_dir)?;
    let state = ctx.open_state()?;
    let _lock = state.lock().map_err(Failure::from)?;
    if let Some(old) = state.tighten().map_err(Failure::from)? {
        log(format_args!(
            "the state directory {} was mode {old:04o}; tightened to 0700",
            state.path().display()
        ));
    }
    let stored = state.load_config()?;
    let mut config = stored;
    if let Some(s) = args.sources {
        config.sources =
            SourceMask::new(u64::from(s)).map_err(|e| Failure::invalid(e.to_string()))?;
    }
    let slots_kib = config
        .tunables
        .memory_cache_size_kib()
        .max(MEMORY_SLOTS_FLOOR_KIB);
    let (mut runtime, stale) = RuntimeFile::create(state.path(), slots_kib).map_err(|e| {
        Failure::runtime(format!(
            "cannot write the runtime file {}: {e}",
            runtime::runtime_path(state.path()).display()
        ))
    })?;
    if let Some(old) = stale {
        log(format_args!(
            "replaced a stale runtime file (pid {} is {})",
            old.pid,
            if runtime::pid_alive(old.pid) {
                "not the daemon of this state directory"
            } else {
                "not running"
            }
        ));
    }
    let memory = daemon::leak_slots(slots_kib)?;
    let storage_path = state.storage_cache_path();
    let storage_existed = fs::symlink_metadata(&storage_path).is_ok();
    let storage = FileStorage::open_in(state.path()).map_err(|e| {
        undo_start(None, &storage_path, storage_existed);
        Failure::runtime(format!(
            "cannot open the storage cache {}: {e}",
            storage_path.display()
        ))
    })?;
    let mixer = daemon::mixer_config(&state).map(|(mixer, _credit)| mixer);
    let mut built = mixer
        .and_then(|mixer| daemon::build_pool_with(config, memory, Some(storage), mixer))
        .inspect_err(|_| {
            undo_start(None, &storage_path, storage_existed);
        })?;
    if let Some(report) = built.load {
        if report.found_corruption() {
            log(format_args!(
                "the storage cache held corrupt data ({} bad slots{}); it was discarded, nothing of it credited",
                report.corrupt_slots,
                if report.header == entropool::storage::HeaderState::Corrupt {
                    ", bad header: whole store"
                } else {
                    ""
                }
            ));
        }
        if report.foreign_wiped > 0 {
            let sources = built.pool.status().sources.value();
            log(format_args!(
                "the storage cache held {} blocks from sources outside {} ({}); they were wiped, never served as its entropy",
                report.foreign_wiped,
                sources,
                view::mask_names(sources)
            ));
        }
    }
    let mut disabled = crate::cmd_reset_source::DisabledWatch::start(state.path(), &mut built.pool);
    let backend = Arc::new(DaemonBackend::new(built.pool));
    if token.is_none() && matches!(listen, ListenAddr::Tcp(_)) {
        log("no --token-file: the API is read-only (adds are refused with 403)");
    }
    // The runtime file names a TLS listener as https://, so the clients
    // that find it there speak TLS to it. On 0.0.0.0 or [::] no certificate
    // names that address: the clients then ask for --listen=https://NAME:PORT
    // (runtime::Target::failure).
    let scheme = if tls.is_some() { "https://" } else { "" };
    let server_config = ServerConfig {
        token,
        tls,
        ..ServerConfig::new(listen)
    };
    let dyn_backend: Arc<dyn PoolBackend> = backend.clone();
    let server = match ApiServer::start(server_config, dyn_backend) {
        Ok(server) => server,
        Err(e) => {
            if let Some(jitter) = built.jitter {
                let _ = jitter.stop();
            }
            undo_start(Some(&backend), &storage_path, storage_existed);
            return Err(match e {
                server::ServerError::Config(_) => Failure::invalid(e.to_string()),
                _ => Failure::runtime(e.to_string()),
            });
        }
    };
    let bound = server.local_addr().to_string();
    log(format_args!("listening on {bound}"));
    if let Err(e) = runtime.set_listening(&format!("{scheme}{bound}")) {
        log(format_args!("cannot update the runtime file: {e}"));
    }

    // The start succeeded: only now is the staged seed used up.
    let kickstart_front = use_staged_seed(&state, &backend);
    let (st, memory_blocks) = {
        let mut pool = backend.lock();
        let st = pool.status();
        (st, st.memory_len_blocks)
    };
    let sources_text = format!(
        "{} ({})",
        st.sources.value(),
        view::mask_names(st.sources.value())
    );
    log(format_args!(
        "started: sources {sources_text}, {}, {memory_blocks} blocks in memory, {} in storage; output: {output_text}; initial seed {} bytes, then at most {} bytes/s",
        tunables_line(&config),
        st.storage.len_blocks,
        if matches!(output, Output::None) {
            0
        } else {
            args.initial_seed
        },
        args.feed_rate
    ));

    let mut watch = ConfigWatch {
        stamp: config_stamp(&state.config_path()),
        state,
        last_check: Instant::now(),
        sources: args.sources.is_none().then_some(stored.sources),
        slots_kib,
    };
    let mut forwarder = Forwarder::new(output, args.feed_rate, args.initial_seed, kickstart_front);
    let live = std::io::stderr().is_terminal();
    let mut last_line: Option<Instant> = None;
    let mut buf = Zeroizing::new([0u8; PIPE_ATOMIC]);
    let mut ready = false;

    while !shutdown.requested() {
        if reload.take() {
            reload_tls(&server);
        }
        let (report, taken) = {
            let mut pool = backend.lock();
            let report = pool.poll();
            let taken = forwarder.take(&mut pool, &mut buf);
            (report, taken)
        };
        // The blocks set aside for the storage cache, written and flushed
        // once without the lock (API readers and adds go on meanwhile). A
        // failure is in the status (storage last_error).
        let _ = backend.spill();
        if let Some(taken) = taken {
            forwarder.send(&mut buf, taken, backend.forwarded());
            forwarder.log_seed(&output_text, &sources_text);
        }
        if !ready && (forwarder.seed.done() || forwarder.seed.started.elapsed() >= SEED_READY_WAIT)
        {
            ready = true;
            if !forwarder.seed.done() {
                log(format_args!(
                    "initial seed: only {} of {} bytes out after {} s: waiting for entropy (sources {sources_text}); signalling ready, the rest follows as blocks come",
                    forwarder.seed.target.saturating_sub(forwarder.seed.left),
                    forwarder.seed.target,
                    SEED_READY_WAIT.as_secs()
                ));
            }
            if let Err(e) = runtime.set_ready() {
                log(format_args!("cannot update the runtime file: {e}"));
            }
            match runtime::notify_ready(ready_file.as_mut(), &bound) {
                Ok(done) if done.is_empty() => log("ready"),
                Ok(done) => log(format_args!("ready: {done}")),
                Err(e) => log(format_args!("ready, but signalling it failed: {e}")),
            }
        }
        watch.check(&backend);
        disabled.check(&backend);
        if live && last_line.is_none_or(|t| t.elapsed() >= STATUS_LINE_EVERY) {
            let line = view::render_line(&backend.status());
            eprint!("\r{line}\x1b[K");
            daemon::set_live_line(true);
            last_line = Some(Instant::now());
        }
        let report = report.unwrap_or_default();
        let harvested = report.blocks > 0
            || report.loaded > 0
            || report.rdseed_words > 0
            || report.rdrand_words > 0;
        if taken.is_some() || (report.still_wanted && harvested) {
            // Work was done and more is wanted: let the API threads in.
            std::thread::yield_now();
        } else if report.still_wanted || !forwarder.seed.done() {
            shutdown.sleep(STARVED_SLEEP);
        } else {
            shutdown.sleep(IDLE_SLEEP);
        }
    }

    if live {
        eprintln!();
        daemon::set_live_line(false);
    }
    log("stopping: closing the API");
    server.stop();
    if let Some(jitter) = built.jitter {
        let _ = jitter.stop();
    }
    forwarder.finish();
    let (result, wiped) = {
        let mut pool = backend.lock();
        let before = pool.status().blocks_discarded;
        let result = pool.flush_to_storage();
        let wiped = pool.status().blocks_discarded.saturating_sub(before);
        (result, wiped)
    };
    drop(runtime);
    drop(ready_file);
    match result {
        Ok(saved) => {
            log(format_args!(
                "saved {saved} blocks to the storage cache ({wiped} did not fit and were wiped); stopped"
            ));
            Ok(())
        }
        Err(e) => Err(Failure::runtime(format!(
            "flushing the memory cache to the storage cache failed: {e} (the blocks concerned were wiped)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use entropool::Tunables;

    /// An external-only pool (no hardware, no storage) of `kib` KiB
    /// holding `blocks` blocks of a stand-in seed.
    fn pool_with(kib: u32, blocks: usize) -> DaemonPool {
        let config = Config {
            tunables: Tunables::new(60, 20, kib, 0).unwrap(),
            sources: SourceMask::new(8).unwrap(),
        };
        let memory = daemon::leak_slots(kib).unwrap();
        let mut pool = daemon::build_pool(config, memory, None).unwrap().pool;
        let mut state = 1u64;
        let data: Vec<u8> = (0..(1024 + 40 * blocks) / 8 + 1)
            .flat_map(|_| entropool::testing::splitmix64(&mut state).to_le_bytes())
            .take(1024 + 40 * blocks)
            .collect();
        pool.seed_external(&data).unwrap();
        assert_eq!(pool.status().memory_len_blocks, blocks);
        pool
    }

    fn sink_output(dir: &Path) -> (Output, PathBuf) {
        let path = dir.join("sink");
        (Output::Sink(Sink::open(&path).unwrap()), path)
    }

    #[test]
    fn the_seed_goes_first_whole_and_outside_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let (output, path) = sink_output(dir.path());
        let mut pool = pool_with(1, 10);
        // Rate 0: no steady feed at all, but the seed still goes.
        let mut fwd = Forwarder::new(output, 0, 100, 0);
        let counters = ForwardCounters::default();
        let mut buf = [0u8; PIPE_ATOMIC];
        let taken = fwd.take(&mut pool, &mut buf).unwrap();
        assert_eq!((taken.len, taken.purpose), (100, Purpose::Seed));
        fwd.send(&mut buf, taken, &counters);
        assert!(fwd.seed.done());
        assert_eq!(fwd.seed.fresh, 100);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100);
        // Four blocks were used up (the tail of the fourth wiped).
        assert_eq!(pool.status().memory_len_blocks, 6);
        let t = counters.totals();
        assert_eq!((t.total, t.at_start, t.from_storage), (100, 100, 0));
        assert!(t.last_unix.is_some());
        assert!(
            fwd.take(&mut pool, &mut buf).is_none(),
            "rate 0 after the seed"
        );
    }

    #[test]
    fn the_steady_feed_stops_one_block_below_the_watermark_and_keeps_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let (output, _path) = sink_output(dir.path());
        // 1 KiB: 32 blocks; 20 % makes 7 the first level not below.
        let mut pool = pool_with(1, 30);
        let mut fwd = Forwarder::new(output, 32 * 1000, 0, 0);
        let counters = ForwardCounters::default();
        let mut buf = [0u8; PIPE_ATOMIC];
        fwd.tokens = 32 * 1000;
        let taken = fwd.take(&mut pool, &mut buf).unwrap();
        assert_eq!((taken.len, taken.purpose), (24 * 32, Purpose::Steady));
        fwd.send(&mut buf, taken, &counters);
        assert_eq!(pool.status().memory_len_blocks, 6);
        assert!(
            fwd.take(&mut pool, &mut buf).is_none(),
            "never below the floor"
        );
        assert_eq!(counters.totals().at_start, 0);

        // Rate-limited: the bucket holds one second's worth (3 blocks at
        // 96 B/s); an empty one (just refilled) sends nothing.
        let (output, _path) = sink_output(dir.path());
        let mut pool = pool_with(1, 30);
        let mut fwd = Forwarder::new(output, 96, 0, 0);
        fwd.tokens = 0;
        fwd.last_refill = Instant::now();
        assert!(fwd.take(&mut pool, &mut buf).is_none());
        fwd.tokens = 0;
        fwd.last_refill = Instant::now().checked_sub(Duration::from_secs(60)).unwrap();
        let taken = fwd.take(&mut pool, &mut buf).unwrap();
        assert_eq!(taken.len, 3 * 32, "a long pause refills one second's worth");
    }

    #[test]
    fn kernel_demand_sends_64_bytes_outside_the_rate_at_most_every_check() {
        // /dev/null is a character device that always polls writable: a
        // kernel whose CRNG is not ready. (The ioctl then fails: counted as
        // refused, not forwarded.)
        let feed = KernelFeed::open_path(Path::new("/dev/null")).unwrap();
        assert!(feed.wants_entropy().unwrap());
        let mut pool = pool_with(1, 10);
        let mut fwd = Forwarder::new(Output::Kernel(feed), 0, 0, 0);
        let counters = ForwardCounters::default();
        let mut buf = [0u8; PIPE_ATOMIC];
        let taken = fwd.take(&mut pool, &mut buf).unwrap();
        assert_eq!((taken.len, taken.purpose), (DEMAND_BYTES, Purpose::Demand));
        fwd.send(&mut buf, taken, &counters);
        assert_eq!(pool.status().memory_len_blocks, 8);
        assert_eq!(counters.totals().total, 0, "the ioctl on /dev/null failed");
        assert_eq!(fwd.lost_bytes, 64);
        assert!(
            fwd.take(&mut pool, &mut buf).is_none(),
            "asked again only after DEMAND_CHECK_EVERY"
        );
        fwd.last_demand_check = Instant::now().checked_sub(DEMAND_CHECK_EVERY);
        assert!(fwd.take(&mut pool, &mut buf).is_some());
    }
}
