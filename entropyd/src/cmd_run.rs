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
//!   [`StateDir::lock`]), the config store (`--sources`
//!   overrides the stored mask), the pool (memory slots for
//!   max(memory-cache-size, [`MEMORY_SLOTS_FLOOR_KIB`]) KiB, so `set` can
//!   grow the cache up to that while running; the storage cache file in the
//!   state directory), the staged kickstart seed (first start only: it is
//!   the first external entropy the pool takes), and the API server. The
//!   bound address is logged as `listening on ADDR`.
//! - Loop until SIGTERM/SIGINT: [`Pool::poll`](entropool::pool::Pool::poll)
//!   (sleeping [`IDLE_SLEEP`] when nothing is wanted, [`STARVED_SLEEP`] when
//!   blocks are wanted but no source produced any: never a spin), forward
//!   surplus entropy (below), reload the config store when its file changes
//!   (checked every [`CONFIG_CHECK`]; a config store that cannot be read
//!   is logged and ignored, keeping the running configuration; a
//!   memory-cache-size beyond the slots allocated at start is logged and
//!   kept for the next start while the other changes apply), and, when
//!   stderr is a terminal, redraw a live status line every second.
//! - **Forward policy.** Only surplus goes out. Blocks are forwarded
//!   while the memory cache is not refilling (it reached full and has not
//!   yet fallen below its low watermark) and the storage cache is full
//!   (or absent, or nothing local can fill it: with external entropy only,
//!   submissions reach the memory cache alone and the storage cache fills
//!   at shutdown), down to one block below the low watermark (which starts
//!   the refill), at most `--feed-rate` bytes per second (a token bucket
//!   holding at most one second's worth), in whole 32-byte blocks, at most
//!   [`FORWARD_MAX_BLOCKS`] blocks per write. So the feed never drains the
//!   storage cache or the reserve below the watermark, the caches are kept
//!   full first, and a sink file grows by at most `--feed-rate` bytes per
//!   second. A block taken for the output is gone: bytes a FIFO did not
//!   take (pipe full, reader gone) or the kernel refused are wiped, never
//!   re-sent. A FIFO with no reader gets nothing taken for it.
//! - Stop: the server first (no more adds), the jitter thread, then
//!   [`Pool::flush_to_storage`](entropool::pool::Pool::flush_to_storage)
//!   (the memory cache to the storage cache), a sink `fdatasync`, exit 0.
//!   A failed flush is exit 1 (those blocks are wiped, never kept twice).

use std::fs;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use entropool::Error;
use entropool::config::{Config, Param};
use entropool::source::{Source, SourceMask};
use entropool::storage::FileStorage;
use entropool::store::StateDir;
use zeroize::Zeroizing;

use crate::auth::{ApiToken, TokenError};
use crate::backend::PoolBackend;
use crate::cli::Context;
use crate::daemon::{self, DaemonBackend, DaemonPool, log, watermark_blocks};
use crate::failure::Failure;
use crate::kernel::KernelFeed;
use crate::server::{self, ApiServer, ListenAddr, ServerConfig};
use crate::signals::Shutdown;
use crate::sink::{PIPE_ATOMIC, Sink, SinkError, SinkKind};
use crate::view;

/// Default `--feed-rate`: 4096 bytes (128 blocks) per second.
pub const DEFAULT_FEED_RATE: u64 = 4096;
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
    /// Where the API listens: a loopback IP:PORT (port 0 picks one) or
    /// unix:/path/to/socket.
    #[arg(long, value_name = "ADDR", default_value = server::DEFAULT_LISTEN)]
    pub listen: String,
    /// Forward surplus entropy to the kernel's pool (RNDADDENTROPY on
    /// /dev/random; needs root or CAP_SYS_ADMIN).
    #[arg(long, conflicts_with = "sink")]
    pub kernel: bool,
    /// Append surplus entropy to this file or FIFO (created 0600).
    #[arg(long, value_name = "PATH")]
    pub sink: Option<PathBuf>,
    /// The API write token (a file of mode 0600 or 0400); without it the
    /// API is read-only on TCP.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Most bytes forwarded to the sink or kernel per second (0 forwards
    /// nothing).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_FEED_RATE)]
    pub feed_rate: u64,
}

/// Where surplus entropy goes.
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

/// The rate-limited forwarder (see the module documentation).
#[derive(Debug)]
struct Forwarder {
    output: Output,
    rate: u64,
    tokens: u64,
    last_refill: Instant,
    last_error_log: Option<Instant>,
    lost_bytes: u64,
}

impl Forwarder {
    fn new(output: Output, rate: u64) -> Self {
        Forwarder {
            output,
            rate,
            tokens: 0,
            last_refill: Instant::now(),
            last_error_log: None,
            lost_bytes: 0,
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

    /// Takes the blocks to forward now from `pool` into `buf`; returns the
    /// bytes taken. Call with the pool locked; write them with
    /// [`Forwarder::send`] after unlocking.
    fn take(&mut self, pool: &mut DaemonPool, buf: &mut [u8; PIPE_ATOMIC]) -> usize {
        if self.rate == 0 {
            return 0;
        }
        match &mut self.output {
            Output::None => return 0,
            Output::Sink(sink) => {
                if sink.kind() == SinkKind::Fifo && !sink.ready() {
                    return 0;
                }
            }
            Output::Kernel(_) => {}
        }
        self.refill();
        let st = pool.status();
        if st.refill_wanted.is_some() {
            return 0;
        }
        // The storage cache fills from blocks made while the memory cache
        // is full: wait for it when a local source can fill it. (External
        // submissions only ever reach the memory cache.)
        let local = [Source::Interrupts, Source::Rdrand, Source::Rdseed]
            .into_iter()
            .any(|s| st.sources.contains(s));
        if local && st.storage.present && st.storage.len_blocks < st.storage.capacity_blocks {
            return 0;
        }
        let floor =
            watermark_blocks(st.memory_capacity_blocks, st.low_watermark_percent).saturating_sub(1);
        let floor = usize::try_from(floor).unwrap_or(usize::MAX);
        let surplus = st.memory_len_blocks.saturating_sub(floor);
        let by_rate = usize::try_from(self.tokens / 32).unwrap_or(usize::MAX);
        let blocks = surplus.min(by_rate).min(FORWARD_MAX_BLOCKS);
        let len = blocks.saturating_mul(32);
        let Some(out) = buf.get_mut(..len).filter(|o| !o.is_empty()) else {
            return 0;
        };
        if pool.fill(out).is_err() {
            return 0;
        }
        self.tokens = self
            .tokens
            .saturating_sub(u64::try_from(len).unwrap_or(u64::MAX));
        len
    }

    /// Writes the first `len` bytes of `buf` to the output and wipes `buf`.
    /// Whatever the output did not take is gone.
    fn send(&mut self, buf: &mut [u8; PIPE_ATOMIC], len: usize) {
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
        self.lost_bytes = self
            .lost_bytes
            .saturating_add(u64::try_from(len.saturating_sub(sent)).unwrap_or(u64::MAX));
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

fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::Io { .. } => Failure::runtime(e.to_string()),
        _ => Failure::invalid(e.to_string()),
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

/// Uses the staged kickstart seed, if any, as the first external entropy.
fn use_staged_seed(state: &StateDir, pool: &mut DaemonPool) {
    match state.take_staged_kickstart() {
        Ok(None) => {}
        Ok(Some(seed)) => match pool.seed_external(&seed) {
            Ok(n) => log(format_args!(
                "used {n} of {} bytes of staged install-time entropy (the rest did not fit the caches and was discarded)",
                seed.len()
            )),
            Err(e) => log(format_args!(
                "staged install-time entropy ({} bytes) discarded: {e}",
                seed.len()
            )),
        },
        Err(e) => log(format_args!(
            "cannot use the staged install-time entropy: {e}"
        )),
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
pub fn run(args: &Args, ctx: &Context, _out: &mut dyn Write) -> Result<(), Failure> {
    let shutdown = Shutdown::install()
        .map_err(|e| Failure::runtime(format!("cannot install signal handlers: {e}")))?;
    let listen: ListenAddr = args
        .listen
        .parse()
        .map_err(|e: server::ServerError| Failure::invalid(e.to_string()))?;
    let token = args
        .token_file
        .as_deref()
        .map(ApiToken::from_file)
        .transpose()
        .map_err(token_failure)?;
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
    let memory = daemon::leak_slots(slots_kib)?;
    let storage = FileStorage::open_in(state.path()).map_err(|e| {
        Failure::runtime(format!(
            "cannot open the storage cache {}: {e}",
            state.storage_cache_path().display()
        ))
    })?;
    let built = daemon::build_pool(config, memory, Some(storage))?;
    let mut pool = built.pool;
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
    }
    let mut disabled = crate::cmd_reset_source::DisabledWatch::start(state.path(), &mut pool);
    use_staged_seed(&state, &mut pool);
    let st = pool.status();
    log(format_args!(
        "started: sources {} ({}), {}, {} blocks in memory, {} in storage; output: {output_text}, at most {} bytes/s",
        st.sources.value(),
        view::mask_names(st.sources.value()),
        tunables_line(&config),
        st.memory_len_blocks,
        st.storage.len_blocks,
        args.feed_rate
    ));

    let backend = Arc::new(DaemonBackend::new(pool));
    if token.is_none() && matches!(listen, ListenAddr::Tcp(_)) {
        log("no --token-file: the API is read-only (adds are refused with 403)");
    }
    let server_config = ServerConfig {
        token,
        ..ServerConfig::new(listen)
    };
    let dyn_backend: Arc<dyn PoolBackend> = backend.clone();
    let server = ApiServer::start(server_config, dyn_backend).map_err(|e| match e {
        server::ServerError::Config(_) => Failure::invalid(e.to_string()),
        _ => Failure::runtime(e.to_string()),
    })?;
    log(format_args!("listening on {}", server.local_addr()));

    let mut watch = ConfigWatch {
        stamp: config_stamp(&state.config_path()),
        state,
        last_check: Instant::now(),
        sources: args.sources.is_none().then_some(stored.sources),
        slots_kib,
    };
    let mut forwarder = Forwarder::new(output, args.feed_rate);
    let live = std::io::stderr().is_terminal();
    let mut last_line: Option<Instant> = None;
    let mut buf = Zeroizing::new([0u8; PIPE_ATOMIC]);

    while !shutdown.requested() {
        let (report, taken) = {
            let mut pool = backend.lock();
            let report = pool.poll();
            let taken = forwarder.take(&mut pool, &mut buf);
            (report, taken)
        };
        if taken > 0 {
            forwarder.send(&mut buf, taken);
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
        let harvested = report.blocks > 0 || report.rdseed_words > 0 || report.rdrand_words > 0;
        if taken > 0 || (report.still_wanted && harvested) {
            // Work was done and more is wanted: let the API threads in.
            std::thread::yield_now();
        } else if report.still_wanted {
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
