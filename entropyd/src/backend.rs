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

use entropool::{HealthState, Source};
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

/// The JSON form of a source: its stable name ([`Source::name`]).
mod source_name {
    use entropool::Source;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(source.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        let name = String::deserialize(d)?;
        Source::ALL
            .into_iter()
            .find(|source| source.name() == name)
            .ok_or_else(|| {
                D::Error::unknown_variant(&name, &["interrupts", "rdrand", "rdseed", "external"])
            })
    }
}

/// A source's health as status shows it (JSON and the table): `off` when
/// it is not in the active mask (`None`), `ok` while healthy, else the
/// library's name for the state.
#[must_use]
pub const fn health_name(health: Option<HealthState>) -> &'static str {
    match health {
        None => "off",
        Some(HealthState::Healthy) => "ok",
        Some(state) => state.name(),
    }
}

/// The JSON form of a source's health: [`health_name`].
mod health_state_name {
    use entropool::HealthState;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::health_name;

    pub fn serialize<S: Serializer>(health: &Option<HealthState>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(health_name(*health))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HealthState>, D::Error> {
        let name = String::deserialize(d)?;
        [
            None,
            Some(HealthState::Startup),
            Some(HealthState::Healthy),
            Some(HealthState::Quarantined),
            Some(HealthState::Disabled),
        ]
        .into_iter()
        .find(|&health| health_name(health) == name)
        .ok_or_else(|| {
            D::Error::unknown_variant(&name, &["off", "startup", "ok", "quarantined", "disabled"])
        })
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
    /// Which source (in JSON, its name).
    #[serde(with = "source_name")]
    pub source: Source,
    /// Whether it is in the active (resolved) source mask.
    pub enabled: bool,
    /// Raw samples taken in (words for RDRAND/RDSEED, events for
    /// interrupts, bytes for external).
    pub samples: u64,
    /// Entropy credited from it, in bits.
    pub credited_bits: u64,
    /// Its health-test state, `None` when it is not in the active mask (in
    /// JSON, [`health_name`]).
    #[serde(with = "health_state_name")]
    pub health: Option<HealthState>,
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
