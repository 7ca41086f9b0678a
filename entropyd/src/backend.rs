//! The seam between the daemon's network/OS half and the entropy pool.
//!
//! Contract: [`PoolBackend`] is everything the HTTP API and the status view
//! need from the pool, and nothing more. The API never touches pool
//! internals; the daemon implements this trait on the real pool facade, and
//! tests implement it on a fake. Implementations must be cheap to call from
//! several worker threads at once (`Send + Sync`), must never block for long
//! (no waiting for entropy), and must never panic.
//!
//! [`StatusSnapshot`] is a plain data struct (serde `Serialize` and
//! `Deserialize`): `GET /entropy/status` returns it as JSON and
//! `entropyd status` reads it back from a running daemon, or builds it from
//! the state directory when no daemon runs.

use serde::{Deserialize, Serialize};

/// What the pool tells the API about its external-entropy intake.
///
/// Shaped like ESXi's external pool: all sizes in bytes of external entropy
/// the pool can still take in, all times in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExternalPoolInfo {
    /// Whether the external source is in the active source mask. When it is
    /// not, the API refuses adds (409) and credits nothing.
    pub enabled: bool,
    /// How many bytes of external entropy the pool can hold in total.
    pub capacity: u64,
    /// How many of those bytes are currently held (already received and not
    /// yet consumed). `capacity - currently_available` is the room left.
    pub currently_available: u64,
    /// Below this many available bytes the pool wants the feeder to send.
    pub low_watermark: u64,
    /// The external-entropy-lost timeout, in seconds.
    pub inactive_source_timeout: u64,
}

impl ExternalPoolInfo {
    /// Bytes the pool can still accept: `capacity - currently_available`,
    /// saturating at zero.
    #[must_use]
    pub const fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.currently_available)
    }
}

/// The pool as the daemon's API sees it.
///
/// The lead implements this on the real pool facade; see the tests for a
/// fake. All methods take `&self`: implementations use interior mutability
/// (a `Mutex` around the pool, or the pool's own lock-free structures).
pub trait PoolBackend: Send + Sync {
    /// The current state of the external intake (cheap; called for every
    /// `GET /entropy/external-pool` and before every add).
    fn external_pool(&self) -> ExternalPoolInfo;

    /// Offers `data` (decoded external entropy) to the pool.
    ///
    /// Takes at most `capacity - currently_available` bytes from the front
    /// of `data`, credits them as external entropy, restarts the
    /// external-lost timer when it took anything, and returns how many bytes
    /// it took (`0..=data.len()`). The rest is discarded by the caller. The
    /// check for room and the taking must be one atomic step, so that
    /// concurrent adds can never exceed the capacity together.
    fn add_external(&self, data: &[u8]) -> usize;

    /// A consistent snapshot of everything `entropyd status` shows.
    fn status(&self) -> StatusSnapshot;
}

/// One of the four entropy sources, as named in status output and JSON
/// (`"interrupts"`, `"rdrand"`, `"rdseed"`, `"external"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceId {
    /// Interrupt (timer wake-up) timing.
    Interrupts,
    /// x86_64 RDRAND.
    Rdrand,
    /// x86_64 RDSEED.
    Rdseed,
    /// Entropy pushed in through the API.
    External,
}

impl SourceId {
    /// All four, in mask-bit order.
    pub const ALL: [SourceId; 4] = [
        SourceId::Interrupts,
        SourceId::Rdrand,
        SourceId::Rdseed,
        SourceId::External,
    ];

    /// The lowercase name used in JSON and in the status table.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            SourceId::Interrupts => "interrupts",
            SourceId::Rdrand => "rdrand",
            SourceId::Rdseed => "rdseed",
            SourceId::External => "external",
        }
    }

    /// The source's bit in the sources mask (1, 2, 4, 8).
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            SourceId::Interrupts => 1,
            SourceId::Rdrand => 2,
            SourceId::Rdseed => 4,
            SourceId::External => 8,
        }
    }
}

impl From<entropool::Source> for SourceId {
    fn from(source: entropool::Source) -> Self {
        use entropool::Source;
        match source {
            Source::Interrupts => SourceId::Interrupts,
            Source::Rdrand => SourceId::Rdrand,
            Source::Rdseed => SourceId::Rdseed,
            Source::External => SourceId::External,
        }
    }
}

/// A source's health-test state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Passing its health tests; credited.
    Ok,
    /// Failed a health test; counted and reported, not credited until it
    /// passes again.
    Quarantined,
    /// Disabled after repeated health-test failures: refused until reset.
    Disabled,
    /// Not in the active source mask.
    Off,
    /// Enabled, still in its start-up tests; not credited yet.
    Startup,
}

impl HealthState {
    /// The lowercase name used in JSON and in the status table.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Quarantined => "quarantined",
            HealthState::Disabled => "disabled",
            HealthState::Off => "off",
            HealthState::Startup => "startup",
        }
    }
}

/// Fill level of the memory cache (the ring of conditioned blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryCacheStatus {
    /// Blocks held now.
    pub len_blocks: u64,
    /// Blocks it can hold (memory-cache-size / 32 bytes).
    pub capacity_blocks: u64,
    /// The low watermark as configured, in percent of the capacity.
    pub low_watermark_percent: u8,
    /// The low watermark in blocks.
    pub low_watermark_blocks: u64,
    /// True while the pool wants refilling (entered below the low
    /// watermark, left only above it again).
    pub refill_wanted: bool,
}

/// Fill level of the persistent storage cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageCacheStatus {
    /// Blocks held now.
    pub len_blocks: u64,
    /// Blocks it can hold (storage-cache-size / 32 bytes).
    pub capacity_blocks: u64,
}

/// Counters and health of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Which source.
    pub source: SourceId,
    /// Whether it is in the active (resolved) source mask.
    pub enabled: bool,
    /// Raw samples taken in (words for RDRAND/RDSEED, events for
    /// interrupts, bytes for external).
    pub samples: u64,
    /// Entropy credited from it, in bits.
    pub credited_bits: u64,
    /// Its health-test state.
    pub health: HealthState,
    /// How many health-test failures it has had since start.
    pub health_failures: u64,
}

/// The external feeder's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExternalStatus {
    /// True while the pool is in the external-lost state.
    pub lost: bool,
    /// Seconds since external entropy was last accepted; `None` when none
    /// has been accepted since start.
    pub seconds_since_last: Option<u64>,
    /// The external-entropy-lost timeout in force, in seconds.
    pub lost_timeout_seconds: u64,
}

/// Output counters: what the mixer made and what reached the kernel or
/// the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputStatus {
    /// Full-entropy blocks the mixer has emitted since start.
    pub blocks_emitted: u64,
    /// Bytes forwarded to the kernel or the sink since start (what the
    /// output accepted), the initial seed included.
    #[serde(default)]
    pub bytes_forwarded: u64,
    /// Of those, the initial seed forwarded at start.
    #[serde(default)]
    pub bytes_forwarded_at_start: u64,
    /// Of those, bytes of blocks that came from the storage cache.
    #[serde(default)]
    pub bytes_forwarded_from_storage: u64,
    /// When the last forward happened (seconds since the Unix epoch);
    /// `None` before the first.
    #[serde(default)]
    pub last_forward_unix_seconds: Option<u64>,
    /// Seconds since the last forward when the snapshot was taken.
    #[serde(default)]
    pub seconds_since_last_forward: Option<u64>,
}

/// Everything `entropyd status` shows, as one plain serializable value.
///
/// Field names are the JSON keys of `GET /entropy/status` and of
/// `entropyd status --json`; keep them stable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The entropyd version that produced this snapshot.
    pub version: String,
    /// Seconds since the daemon started (0 when read from the state
    /// directory with no daemon running).
    pub uptime_seconds: u64,
    /// True when this came from a running daemon, false when it was built
    /// from the state directory.
    pub running: bool,
    /// The resolved sources mask in force (1..=15).
    pub sources_mask: u8,
    /// The memory cache.
    pub memory_cache: MemoryCacheStatus,
    /// The storage cache.
    pub storage_cache: StorageCacheStatus,
    /// One entry per source, in mask-bit order (interrupts, rdrand, rdseed,
    /// external).
    pub sources: Vec<SourceStatus>,
    /// The external feeder.
    pub external: ExternalStatus,
    /// Output counters.
    pub output: OutputStatus,
    /// What the API server adds: client activity and audit counts (absent
    /// when read from the state directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiStatus>,
}

/// The API server's part of the status (see [`crate::server`] and
/// [`crate::audit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiStatus {
    /// Seconds since the last authorized client call (a GET of the external
    /// pool or an add that passed authorization); `None` when none came yet.
    /// The last *entropy* received is [`ExternalStatus::seconds_since_last`].
    pub seconds_since_client_call: Option<u64>,
    /// inactive_source_timeout in seconds: no client call for that long
    /// makes the feeder inactive.
    pub inactive_source_timeout: u64,
    /// The feeder is inactive now (external is a source and no client call
    /// came for inactive_source_timeout seconds).
    pub feeder_inactive: bool,
    /// The listener speaks TLS.
    pub tls: bool,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections closed unserved since start: over the per-peer cap, or
    /// the oldest unfinished head dropped to make room.
    pub connections_shed: u64,
    /// Audit records made since start, per event.
    pub audit: crate::audit::AuditCounts,
}
