//! `entropyd feed`: the bridge from one entropy source (an HSM through
//! PKCS#11, or a device or file) to one or many hosts' external pools.
//!
//! Contract:
//! - **Each byte read from the source goes into at most one add.** The
//!   only way to read the source is [`SharedSource::take`], which hands out
//!   a [`Piece`]: fresh bytes no other caller ever got, in a buffer that is
//!   not `Clone` and is wiped on drop. A round sends a piece in exactly one
//!   add and then drops it, whatever the add's fate: the bytes of an add
//!   that failed (before, in or after flight) are dropped, never resent, to
//!   that host or any other.
//! - **A round for one host** ([`HostFeeder::round`]) is at most
//!   [`MAX_PASSES`] passes of: GET the external pool; if
//!   `currently_available < capacity`, add exactly
//!   `capacity - currently_available` bytes (at most [`MAX_PASS_BYTES`]),
//!   in pieces of at most [`MAX_PIECE`] (1 MiB). It ends when a GET shows
//!   the host full, when a pass took nothing, or on the first error. A
//!   pool may need more bytes than the room it can show (a 32-byte block
//!   costs 40 credited bytes, and the health tests' start-up window earns
//!   nothing), so one pass may leave it short: the passes bring it to full.
//! - **Timing** is logical: rounds take `now` (time since the feeder
//!   started) and say when the host is due again: after the `--interval`,
//!   by default half the host's `inactive_source_timeout` (so a healthy
//!   feeder never looks inactive); after an error, a capped exponential
//!   backoff ([`BACKOFF_START`] doubling up to [`BACKOFF_CAP`]). The runner
//!   ([`run`]) gives each host its own thread and per-call timeouts live in
//!   the link, so one slow or dead host never stalls the others.
//! - **A source failure stops the feeder**: an HSM error or a source that
//!   has ended is reported with what the source is (module and slot), and
//!   nothing else is ever substituted for it.
//! - Each host has one [`HostStatus`] (`ok`, available, bytes sent, last
//!   add, last error), printed as one line per host.

pub mod hsm;
pub mod http;
pub mod source;

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub use source::{EntropySource, SourceError};

/// Largest piece of entropy sent in one add: 1 MiB.
pub const MAX_PIECE: usize = 1024 * 1024;

/// Most GET-and-add passes in one round for one host.
pub const MAX_PASSES: u32 = 64;

/// The first wait after an error.
pub const BACKOFF_START: Duration = Duration::from_secs(1);

/// The longest wait after errors.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The shortest interval between two rounds of one host.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Most bytes sent to one host in one pass: the largest pool the tunables
/// allow (a 64 MiB memory cache). A host that claims more room gets this
/// much, so a wrong or hostile answer cannot drain the source.
pub const MAX_PASS_BYTES: u64 = 64 * 1024 * 1024;

/// What a host says about its external pool (a GET's answer, or the
/// AddResult fields of an add's answer), all sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFigures {
    /// The external source is in the host's active sources.
    pub enabled: bool,
    /// Bytes the external intake can hold.
    pub capacity: u64,
    /// Bytes it holds now.
    pub currently_available: u64,
    /// Below this the host wants entropy.
    pub low_watermark: u64,
    /// Seconds without a client call before the host reports the feeder
    /// inactive.
    pub inactive_source_timeout: u64,
}

impl PoolFigures {
    /// Room left: `capacity - currently_available`, at least zero.
    #[must_use]
    pub const fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.currently_available)
    }
}

/// A host's answer to an add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddAnswer {
    /// Bytes the host took (the rest of the piece was discarded there).
    pub accepted: u64,
    /// The pool's figures after the add, when the host sends them (ESXi's
    /// AddResult); older hosts answer only `accepted`.
    pub figures: Option<PoolFigures>,
}

/// Why a call to a host failed: one line for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError(pub String);

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkError {}

/// The way to one host's API.
pub trait HostLink: Send {
    /// The host as the user named it (its URL).
    fn name(&self) -> &str;

    /// `GET /entropy/external-pool`.
    ///
    /// # Errors
    /// Why the call failed (unreachable, refused, timed out, bad answer).
    fn external_pool(&mut self) -> Result<PoolFigures, LinkError>;

    /// One add call with `data`.
    ///
    /// # Errors
    /// As [`HostLink::external_pool`]. The caller drops `data` either way.
    fn add(&mut self, data: &[u8]) -> Result<AddAnswer, LinkError>;
}

/// Fresh bytes from the source, handed out once: not `Clone`, wiped on
/// drop.
pub struct Piece(Zeroizing<Vec<u8>>);

impl Piece {
    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Piece {{ len: {}, .. }}", self.0.len())
    }
}

/// Why the source can give no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceStop {
    /// The source failed (an HSM error, a read error).
    Failed(String),
    /// The source has ended (the end of a file) after this many bytes.
    Ended(u64),
}

impl fmt::Display for SourceStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceStop::Failed(msg) => f.write_str(msg),
            SourceStop::Ended(n) => write!(f, "the source ended after {n} bytes"),
        }
    }
}

struct SourceState {
    source: Box<dyn EntropySource>,
    read: u64,
    stop: Option<SourceStop>,
}

/// The feeder's one source, shared by the host threads. Each
/// [`SharedSource::take`] reads fresh bytes under a lock, so no two pieces
/// ever hold the same source bytes.
pub struct SharedSource {
    state: Mutex<SourceState>,
}

impl fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSource { .. }")
    }
}

impl SharedSource {
    /// Wraps `source`.
    #[must_use]
    pub fn new(source: Box<dyn EntropySource>) -> SharedSource {
        SharedSource {
            state: Mutex::new(SourceState {
                source,
                read: 0,
                stop: None,
            }),
        }
    }

    /// Reads up to `n` fresh bytes. Fewer than `n` only when the source
    /// ends here (the next call then reports [`SourceStop::Ended`]).
    ///
    /// # Errors
    /// [`SourceStop`] once the source has failed or ended; the first
    /// failure is kept and every later call reports it.
    pub fn take(&self, n: usize) -> Result<Piece, SourceStop> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stop) = &state.stop {
            return Err(stop.clone());
        }
        let mut buf = Zeroizing::new(vec![0u8; n]);
        match state.source.read(&mut buf) {
            Ok(got) => {
                let got = got.min(n);
                buf.truncate(got);
                state.read = state.read.saturating_add(u64::try_from(got).unwrap_or(0));
                if got < n {
                    state.stop = Some(SourceStop::Ended(state.read));
                    if got == 0 {
                        return Err(SourceStop::Ended(state.read));
                    }
                }
                Ok(Piece(buf))
            }
            Err(e) => {
                let stop = SourceStop::Failed(e.to_string());
                state.stop = Some(stop.clone());
                Err(stop)
            }
        }
    }

    /// Bytes read from the source so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read
    }

    /// Why the source stopped, if it has.
    #[must_use]
    pub fn stopped(&self) -> Option<SourceStop> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
            .clone()
    }
}

/// One host's status: what its status line shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostStatus {
    /// The last round ended without an error.
    pub ok: bool,
    /// The last GET showed the host full.
    pub full: bool,
    /// The host's figures at its last answer.
    pub figures: Option<PoolFigures>,
    /// Bytes sent in adds that the host answered.
    pub bytes_sent: u64,
    /// Bytes those adds' answers say were accepted.
    pub bytes_accepted: u64,
    /// Bytes of adds that failed: dropped, never resent.
    pub bytes_dropped: u64,
    /// When the last add was answered (feeder time).
    pub last_add: Option<Duration>,
    /// The last error, kept after a later success.
    pub last_error: Option<String>,
    /// Errors in a row (drives the backoff).
    pub failures: u32,
    /// Rounds made.
    pub rounds: u64,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundEnd {
    /// The host is full.
    Full,
    /// No error, but the host is not full yet (passes used up, or it took
    /// nothing).
    NotFull,
    /// A call to the host failed (see the status's `last_error`).
    HostFailed,
    /// The source failed or ended: the feeder stops.
    Source(SourceStop),
}

/// Feeds one host.
pub struct HostFeeder {
    link: Box<dyn HostLink>,
    interval: Option<Duration>,
    piece_max: usize,
    pass_max: u64,
    status: HostStatus,
}

impl fmt::Debug for HostFeeder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostFeeder")
            .field("host", &self.link.name())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl HostFeeder {
    /// A feeder for the host behind `link`: rounds every `interval` (by
    /// default half the host's inactive-source timeout), pieces of at
    /// most `piece_max` bytes (clamped to `1..=MAX_PIECE`).
    #[must_use]
    pub fn new(link: Box<dyn HostLink>, interval: Option<Duration>, piece_max: usize) -> Self {
        HostFeeder {
            link,
            interval,
            piece_max: piece_max.clamp(1, MAX_PIECE),
            pass_max: MAX_PASS_BYTES,
            status: HostStatus::default(),
        }
    }

    /// The same feeder with another cap on the bytes of one pass (tests).
    #[cfg(test)]
    fn with_pass_max(mut self, pass_max: u64) -> Self {
        self.pass_max = pass_max;
        self
    }

    /// The host's name (URL).
    #[must_use]
    pub fn name(&self) -> &str {
        self.link.name()
    }

    /// The host's status.
    #[must_use]
    pub fn status(&self) -> &HostStatus {
        &self.status
    }

    /// One round (see the module doc) at feeder time `now`; returns how it
    /// ended and when the host is due again.
    pub fn round(&mut self, source: &SharedSource, now: Duration) -> (RoundEnd, Duration) {
        self.status.rounds = self.status.rounds.saturating_add(1);
        let end = self.passes(source, now);
        let wait = match &end {
            RoundEnd::HostFailed => {
                self.status.ok = false;
                self.status.failures = self.status.failures.saturating_add(1);
                backoff(self.status.failures)
            }
            _ => {
                self.status.ok = matches!(end, RoundEnd::Full | RoundEnd::NotFull);
                self.status.failures = 0;
                self.interval_for()
            }
        };
        (end, now.saturating_add(wait))
    }

    /// The wait after a good round.
    fn interval_for(&self) -> Duration {
        self.interval
            .unwrap_or_else(|| {
                let timeout = self.status.figures.map_or(0, |f| f.inactive_source_timeout);
                Duration::from_millis(timeout.saturating_mul(500))
            })
            .max(MIN_INTERVAL)
    }

    fn fail(&mut self, e: &LinkError) -> RoundEnd {
        // One printable line, whatever the host sent.
        let line: String =
            e.0.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(300)
                .collect();
        self.status.last_error = Some(line);
        RoundEnd::HostFailed
    }

    fn passes(&mut self, source: &SharedSource, now: Duration) -> RoundEnd {
        for _ in 0..MAX_PASSES {
            let figures = match self.link.external_pool() {
                Ok(f) => f,
                Err(e) => return self.fail(&e),
            };
            self.status.figures = Some(figures);
            self.status.full = figures.room() == 0;
            if !figures.enabled {
                return self.fail(&LinkError(
                    "the external source is not in the host's sources (status DISABLED)".to_owned(),
                ));
            }
            if self.status.full {
                return RoundEnd::Full;
            }
            match self.send(source, figures.room().min(self.pass_max), now) {
                Ok(0) => return RoundEnd::NotFull,
                Ok(_) => {}
                Err(end) => return end,
            }
        }
        RoundEnd::NotFull
    }

    /// Sends `room` bytes in pieces; returns the bytes accepted.
    fn send(&mut self, source: &SharedSource, room: u64, now: Duration) -> Result<u64, RoundEnd> {
        let mut left = room;
        let mut accepted_total = 0u64;
        while left > 0 {
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(self.piece_max);
            let piece = source.take(n).map_err(RoundEnd::Source)?;
            let len = u64::try_from(piece.len()).unwrap_or(u64::MAX);
            let answer = self.link.add(piece.bytes());
            // The piece goes to this one add, answered or not.
            drop(piece);
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    self.status.bytes_dropped = self.status.bytes_dropped.saturating_add(len);
                    return Err(self.fail(&e));
                }
            };
            let accepted = answer.accepted.min(len);
            self.status.bytes_sent = self.status.bytes_sent.saturating_add(len);
            self.status.bytes_accepted = self.status.bytes_accepted.saturating_add(accepted);
            self.status.last_add = Some(now);
            if let Some(f) = answer.figures {
                self.status.figures = Some(f);
            }
            accepted_total = accepted_total.saturating_add(accepted);
            left = left.saturating_sub(len);
            if len < u64::try_from(n).unwrap_or(u64::MAX) {
                // The source ended inside this piece.
                return Err(RoundEnd::Source(
                    source.stopped().unwrap_or(SourceStop::Ended(0)),
                ));
            }
            if accepted < len {
                // The host is full (or its pool shrank): stop this pass.
                break;
            }
        }
        Ok(accepted_total)
    }

    /// The status line: `HOST ok|FAILED available=A/C sent=N last_add=... last_error=...`.
    #[must_use]
    pub fn status_line(&self, now: Duration) -> String {
        let s = &self.status;
        let state = if s.ok {
            if s.full { "ok full" } else { "ok" }
        } else if s.rounds == 0 {
            "waiting"
        } else {
            "FAILED"
        };
        let available = s.figures.map_or_else(
            || "?".to_owned(),
            |f| format!("{}/{}", f.currently_available, f.capacity),
        );
        let last_add = s.last_add.map_or_else(
            || "never".to_owned(),
            |t| format!("{}s ago", now.saturating_sub(t).as_secs()),
        );
        let last_error = s.last_error.as_deref().unwrap_or("-");
        format!(
            "{} {state} available={available} sent={} accepted={} dropped={} last_add={last_add} last_error={last_error}",
            self.link.name(),
            s.bytes_sent,
            s.bytes_accepted,
            s.bytes_dropped,
        )
    }
}

/// The wait after `failures` errors in a row: [`BACKOFF_START`] doubled
/// per further failure, at most [`BACKOFF_CAP`].
#[must_use]
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_START
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP)
}

/// How [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEnd {
    /// `--once`: every host was full at the end of its round.
    AllFull,
    /// `--once`: at least one host was not full or failed.
    NotAllFull,
    /// The stop flag was set (SIGTERM, SIGINT).
    Stopped,
    /// The source failed or ended.
    Source(SourceStop),
}

/// Feeds every host, each in its own thread, until `stop` is set (or,
/// with `once`, for one round each). After each round the host's status
/// line goes to `out` (write errors are ignored: the feeding matters
/// more). Returns how it ended and the hosts with their final status.
pub fn run(
    hosts: Vec<HostFeeder>,
    source: &SharedSource,
    once: bool,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> (FeedEnd, Vec<HostFeeder>) {
    let start = Instant::now();
    let count = hosts.len();
    let (lines, received) = mpsc::channel::<String>();
    let ends: Vec<(RoundEnd, HostFeeder)> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .into_iter()
            .map(|host| {
                let lines = lines.clone();
                scope.spawn(move || feed_host(host, source, once, stop, start, &lines))
            })
            .collect();
        drop(lines);
        // The status lines, in the order the rounds end, until every host
        // thread is done.
        for line in received {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut end = if !once {
        FeedEnd::Stopped
    } else if ends.len() == count && ends.iter().all(|(e, _)| *e == RoundEnd::Full) {
        FeedEnd::AllFull
    } else {
        FeedEnd::NotAllFull
    };
    if let Some(stop) = source.stopped() {
        end = FeedEnd::Source(stop);
    }
    (end, ends.into_iter().map(|(_, h)| h).collect())
}

/// One host's thread: rounds until stopped (or one with `once`).
fn feed_host(
    mut host: HostFeeder,
    source: &SharedSource,
    once: bool,
    stop: &AtomicBool,
    start: Instant,
    lines: &mpsc::Sender<String>,
) -> (RoundEnd, HostFeeder) {
    let mut last = RoundEnd::NotFull;
    // The stop flag only says "stop"; it publishes no data: Relaxed.
    while !stop.load(Ordering::Relaxed) {
        let (end, due) = host.round(source, start.elapsed());
        let _ = lines.send(host.status_line(start.elapsed()));
        let source_stopped = matches!(end, RoundEnd::Source(_));
        last = end;
        if source_stopped {
            // No host can be fed any more.
            stop.store(true, Ordering::Relaxed);
        }
        if once || source_stopped {
            break;
        }
        // Sleep until due, in short steps so a stop is seen soon.
        while !stop.load(Ordering::Relaxed) {
            let left = due.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
    (last, host)
}

#[cfg(test)]
mod tests;
