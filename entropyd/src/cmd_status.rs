//! `status`: the pool's health at a glance.
//!
//! Contract: asks the daemon for `GET /entropy/status`: at `--listen` when
//! given (`IP:PORT`, `https://HOST:PORT` with `--ca`, or `unix:/path`),
//! else at the address the state directory's runtime file names (a daemon
//! on any port is found; `https://` when it serves TLS), else at the
//! default address. Over TLS the daemon's certificate is verified against
//! `--ca`, and `--client-cert/--client-key` answer a daemon that asks for a
//! client certificate; `--token-file` authorizes the read (a daemon off
//! loopback needs it, or a client certificate). A bad address, TLS file
//! or token file is exit 2 before anything is called (one that cannot be
//! read, exit 1); a TLS failure is exit 1 with what failed (untrusted or
//! misnamed certificate, client certificate asked for or refused), never
//! a fall-back to the state directory. Nor is an address from the runtime
//! file that cannot be called as it is (`https://0.0.0.0:PORT`: no
//! certificate names it): exit 1, saying it came from the runtime file and
//! to pass `--listen=https://NAME:PORT` (a running daemon is not shown
//! from the state directory as if stopped). While nothing answers but a live
//! runtime file says a daemon is starting, it retries for up to `--wait`
//! seconds ([`crate::runtime::with_daemon`]).
//! When nothing answers, reads the state directory instead, changing
//! nothing in it: the config store (tunables, sources mask) and the storage
//! cache's fill (the file is read into memory and the valid blocks are
//! counted on that copy, so no block is erased and nothing is written).
//! Text via [`view::render_text`] (led by a `daemon:` line), `--json` via
//! [`view::render_json`] (the same fields as the API; `"running": false`
//! when read from the state directory).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use clap::Args as ClapArgs;
use entropool::storage::{HEADER_LEN, StorageCache, slots_for_bytes};
use entropool::{Config, HealthState, MemStorage, Source};
use zeroize::Zeroizing;

use crate::backend::{
    ExternalStatus, MemoryCacheStatus, OutputStatus, SourceStatus, StatusSnapshot,
    StorageCacheStatus,
};
use crate::cli::{self, Context};
use crate::daemon::{self, watermark_blocks};
use crate::failure::Failure;
use crate::runtime;
use crate::view;

/// How long to wait for a running daemon's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `status`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Print JSON (the fields of `GET /entropy/status`).
    #[arg(long)]
    pub json: bool,
    /// The daemon: --listen, --wait, --token-file and TLS (as `submit`).
    #[command(flatten)]
    pub client: cli::ClientArgs,
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))
}

/// Shows the running daemon's status, or the state directory's.
///
/// # Errors
/// Invalid input for a bad `--listen`, TLS file or token file, or an
/// https address without `--ca`; runtime for `https://0.0.0.0:PORT` from
/// the runtime file (no certificate names it), when a TLS or token file cannot
/// be read, when TLS fails, when the daemon answers with an error or
/// something not understood, or when the state directory or config store
/// cannot be read.
pub fn run(args: &Args, ctx: &Context, out: &mut dyn Write) -> Result<(), Failure> {
    // The flags are checked before any waiting.
    let setup = args.client.load()?;
    let (answer, target) = runtime::with_daemon(
        setup.listen(),
        &ctx.state_dir,
        Duration::from_secs(args.client.wait),
        false,
        true,
        |listen| {
            setup
                .client(listen, STATUS_TIMEOUT)
                .and_then(|c| c.status())
        },
    )
    .map_err(Failure::invalid)?;
    let listen = &target.text;
    let (snapshot, offline) = match answer {
        Ok(s) => (s, None),
        Err(e) if e.is_unreachable() => {
            let (s, config) = from_state_dir(ctx)?;
            (s, Some(config))
        }
        Err(e) => return Err(target.failure(e, &ctx.state_dir)),
    };
    if args.json {
        let mut text = view::render_json(&snapshot)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        text.push('\n');
        return write_out(out, &text);
    }
    let mut text = String::new();
    match &offline {
        None if target.from_runtime_file => text.push_str(&format!(
            "daemon: running, API at {listen} (from the runtime file)\n"
        )),
        None => text.push_str(&format!("daemon: running, API at {listen}\n")),
        Some(_) => {
            text.push_str(&format!(
                "daemon: not running (nothing answers at {listen}); showing the state directory {}\n",
                ctx.state_dir.display()
            ));
            if let Some(stale) =
                runtime::read(&ctx.state_dir).filter(|i| !runtime::pid_alive(i.pid))
            {
                text.push_str(&format!(
                    "(a stale runtime file names pid {}, which is not running: the daemon did not stop cleanly)\n",
                    stale.pid
                ));
            }
        }
    }
    text.push_str(&view::render_text(&snapshot));
    if let Some(config) = offline {
        text.push_str(&format!(
            "\nconfiguration ({}):\n{}Sources: {}\n",
            ctx.state_dir.join("config").display(),
            config.tunables,
            config.sources.value()
        ));
        if snapshot.sources_mask != config.sources.value() {
            text.push_str(&format!(
                "(sources {} resolves to {} on this CPU)\n",
                config.sources.value(),
                snapshot.sources_mask
            ));
        }
    }
    write_out(out, &text)
}

/// The snapshot a stopped daemon's state directory gives, and its config.
fn from_state_dir(ctx: &Context) -> Result<(StatusSnapshot, Config), Failure> {
    let state = ctx.open_state()?;
    let config = state.load_config()?;
    let tunables = config.tunables;
    // The mask as the daemon would resolve it; unresolved when it cannot.
    let sources = daemon::resolve_sources(config.sources).unwrap_or(config.sources);
    // storage-cache-size counts entropy bytes: one slot per 32 bytes.
    let slots = u64::from(tunables.storage_cache_blocks());
    let stored = count_stored_blocks(&state.storage_cache_path(), slots)
        .map_err(|e| Failure::runtime(format!("cannot read the storage cache: {e}")))?;
    let memory_capacity = entropool::blocks_for_kib(u64::from(tunables.memory_cache_size_kib()))
        .map_or(u64::MAX, |b| u64::try_from(b).unwrap_or(u64::MAX));
    let percent = tunables.low_watermark_percent();
    let snapshot = StatusSnapshot {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: 0,
        running: false,
        sources_mask: sources.value(),
        memory_cache: MemoryCacheStatus {
            // The memory cache lives in the daemon's RAM: empty when stopped.
            len_blocks: 0,
            capacity_blocks: memory_capacity,
            low_watermark_percent: percent,
            low_watermark_blocks: watermark_blocks(
                usize::try_from(memory_capacity).unwrap_or(usize::MAX),
                percent,
            ),
            refill_wanted: false,
        },
        storage_cache: StorageCacheStatus {
            len_blocks: stored,
            capacity_blocks: slots,
        },
        // Not running: no source has been tested; enabled ones await their
        // start-up tests.
        sources: Source::ALL
            .iter()
            .map(|&source| {
                let enabled = sources.value() & source.bit() != 0;
                SourceStatus {
                    source,
                    enabled,
                    samples: 0,
                    credited_bits: 0,
                    health: enabled.then_some(HealthState::Startup),
                    health_failures: 0,
                }
            })
            .collect(),
        external: ExternalStatus {
            lost: false,
            seconds_since_last: None,
            lost_timeout_seconds: u64::from(tunables.external_entropy_lost_timeout_s()),
        },
        output: OutputStatus::default(),
        api: None,
    };
    Ok((snapshot, config))
}

/// Valid blocks a daemon configured for `slots` slots would find in the
/// storage cache file at `path`, counted on an in-memory copy (the file is
/// not changed). A missing or header-less file holds none.
///
/// # Errors
/// The I/O error reading the file.
pub fn count_stored_blocks(path: &Path, slots: u64) -> io::Result<u64> {
    let mut bytes = Zeroizing::new(Vec::new());
    match File::open(path) {
        Ok(f) => {
            f.take(
                entropool::storage::layout_len(
                    u64::from(entropool::config::STORAGE_CACHE_SIZE_MAX).saturating_mul(32),
                )
                .unwrap_or(u64::MAX),
            )
            .read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    }
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len < HEADER_LEN || slots == 0 {
        return Ok(0);
    }
    // The copy cannot grow: ask for no more slots than it holds. A store
    // written with more slots keeps exactly the blocks below `slots` (what
    // the daemon keeps); one written with fewer keeps all of its own.
    let fitting = slots.min(slots_for_bytes(len));
    // Counted under every source (a daemon on a narrower mask wipes the
    // foreign ones at start); the key only matters for blocks taken.
    let every =
        entropool::SourceMask::new(u64::from(entropool::SourceMask::MAX)).unwrap_or_default();
    match StorageCache::open(
        MemStorage::new(bytes.as_mut_slice()),
        fitting,
        every,
        &[0; 32],
    ) {
        Ok((cache, _report)) => Ok(cache.len()),
        Err(_) => Ok(0),
    }
}
