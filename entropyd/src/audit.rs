//! Audit records: one greppable line per security-relevant event, and a
//! count of each for `status`.
//!
//! Contract:
//! - A record is one line on stderr (journald takes it from there), after
//!   the daemon's usual timestamp prefix, in a stable form:
//!   `entropyd: audit event=NAME key=value key=value ...`. Keys are fixed
//!   ASCII words; a value with a space, `"`, `=` or a control character is
//!   written in double quotes with `"` and `\` escaped and control
//!   characters dropped, so one record is always one line and
//!   `grep 'audit event=write-refused'` finds exactly those records.
//! - Every record is counted ([`Audit::counts`], shown by `status`), even
//!   when writing the line fails. Counting and writing never panic and
//!   never block on anything but stderr.
//! - [`Event`] names the events; their names are part of the interface and
//!   do not change: the low watermark crossed down and back up, the feeder
//!   inactive and active again, the external source lost and recovered,
//!   every refused write (401, 403, 413, 400...) and refused read, a TLS
//!   handshake refused (e.g. an untrusted client certificate), and a source
//!   disabled by its health tests (`source-disabled`, emitted by the pool
//!   side through [`global`]).
//! - [`Monitor`] turns periodic observations of the pool and the API into
//!   crossing events. It is pure (time is passed in), so its state table is
//!   tested against a plain model.

use std::fmt::{self, Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

/// The audited events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `low-watermark-below`: the memory cache's currently_available fell
    /// below its low watermark.
    LowWatermarkBelow,
    /// `low-watermark-recovered`: it is at or above the low watermark
    /// again.
    LowWatermarkRecovered,
    /// `feeder-inactive`: no authorized client call for
    /// inactive_source_timeout seconds while external is a source.
    FeederInactive,
    /// `feeder-active`: an authorized client call after `feeder-inactive`.
    FeederActive,
    /// `external-lost`: the pool entered *external lost*.
    ExternalLost,
    /// `external-recovered`: external entropy arrived again.
    ExternalRecovered,
    /// `write-refused`: an add was refused (401, 403, 413, 400, ...).
    WriteRefused,
    /// `read-refused`: a read was refused for want of authorization.
    ReadRefused,
    /// `tls-refused`: a TLS handshake failed (e.g. an untrusted client
    /// certificate, or no certificate where mutual TLS is required).
    TlsRefused,
    /// `source-disabled`: a source was disabled by its health tests.
    SourceDisabled,
}

impl Event {
    /// Every event, in the order of [`AuditCounts`]' fields.
    pub const ALL: [Event; 10] = [
        Event::LowWatermarkBelow,
        Event::LowWatermarkRecovered,
        Event::FeederInactive,
        Event::FeederActive,
        Event::ExternalLost,
        Event::ExternalRecovered,
        Event::WriteRefused,
        Event::ReadRefused,
        Event::TlsRefused,
        Event::SourceDisabled,
    ];

    /// The event's stable name, as written after `event=`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Event::LowWatermarkBelow => "low-watermark-below",
            Event::LowWatermarkRecovered => "low-watermark-recovered",
            Event::FeederInactive => "feeder-inactive",
            Event::FeederActive => "feeder-active",
            Event::ExternalLost => "external-lost",
            Event::ExternalRecovered => "external-recovered",
            Event::WriteRefused => "write-refused",
            Event::ReadRefused => "read-refused",
            Event::TlsRefused => "tls-refused",
            Event::SourceDisabled => "source-disabled",
        }
    }

    const fn index(self) -> usize {
        match self {
            Event::LowWatermarkBelow => 0,
            Event::LowWatermarkRecovered => 1,
            Event::FeederInactive => 2,
            Event::FeederActive => 3,
            Event::ExternalLost => 4,
            Event::ExternalRecovered => 5,
            Event::WriteRefused => 6,
            Event::ReadRefused => 7,
            Event::TlsRefused => 8,
            Event::SourceDisabled => 9,
        }
    }
}

impl Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many records of each event were made since start (the `audit`
/// object of `GET /entropy/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(missing_docs)] // One counter per `Event`, named after it.
pub struct AuditCounts {
    pub low_watermark_below: u64,
    pub low_watermark_recovered: u64,
    pub feeder_inactive: u64,
    pub feeder_active: u64,
    pub external_lost: u64,
    pub external_recovered: u64,
    pub write_refused: u64,
    pub read_refused: u64,
    pub tls_refused: u64,
    pub source_disabled: u64,
}

impl AuditCounts {
    /// The count of `event`.
    #[must_use]
    pub const fn get(&self, event: Event) -> u64 {
        match event {
            Event::LowWatermarkBelow => self.low_watermark_below,
            Event::LowWatermarkRecovered => self.low_watermark_recovered,
            Event::FeederInactive => self.feeder_inactive,
            Event::FeederActive => self.feeder_active,
            Event::ExternalLost => self.external_lost,
            Event::ExternalRecovered => self.external_recovered,
            Event::WriteRefused => self.write_refused,
            Event::ReadRefused => self.read_refused,
            Event::TlsRefused => self.tls_refused,
            Event::SourceDisabled => self.source_disabled,
        }
    }
}

/// The audit log: counters, and the lines written to stderr.
#[derive(Debug, Default)]
pub struct Audit {
    counts: [AtomicU64; Event::ALL.len()],
    quiet: bool,
}

impl Audit {
    /// An audit log that writes its lines to stderr.
    #[must_use]
    pub fn new() -> Audit {
        Audit::default()
    }

    /// An audit log that only counts (for tests that start many servers).
    #[must_use]
    pub fn counting_only() -> Audit {
        Audit {
            quiet: true,
            ..Audit::default()
        }
    }

    /// Counts `event` and writes its line (see [`line()`]).
    pub fn record(&self, event: Event, fields: &[(&str, &dyn Display)]) {
        if let Some(c) = self.counts.get(event.index()) {
            // Relaxed: a statistic, ordered with nothing else.
            c.fetch_add(1, Ordering::Relaxed);
        }
        if !self.quiet {
            crate::daemon::log(line(event, fields));
        }
    }

    /// The count of `event` so far.
    #[must_use]
    pub fn count(&self, event: Event) -> u64 {
        self.counts
            .get(event.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every count.
    #[must_use]
    pub fn counts(&self) -> AuditCounts {
        let c = |e| self.count(e);
        AuditCounts {
            low_watermark_below: c(Event::LowWatermarkBelow),
            low_watermark_recovered: c(Event::LowWatermarkRecovered),
            feeder_inactive: c(Event::FeederInactive),
            feeder_active: c(Event::FeederActive),
            external_lost: c(Event::ExternalLost),
            external_recovered: c(Event::ExternalRecovered),
            write_refused: c(Event::WriteRefused),
            read_refused: c(Event::ReadRefused),
            tls_refused: c(Event::TlsRefused),
            source_disabled: c(Event::SourceDisabled),
        }
    }
}

/// The process's audit log, the one `entropyd run` shows in `status`.
/// Code outside the API server (e.g. the pool's health reporting) records
/// through it: `audit::global().record(Event::SourceDisabled, &[("source",
/// &"external"), ("reason", &why)])`.
#[must_use]
pub fn global() -> &'static Arc<Audit> {
    static GLOBAL: OnceLock<Arc<Audit>> = OnceLock::new();
    GLOBAL.get_or_init(|| Arc::new(Audit::new()))
}

/// The record's text after the log prefix:
/// `audit event=NAME key=value ...` (values quoted when needed).
#[must_use]
pub fn line(event: Event, fields: &[(&str, &dyn Display)]) -> String {
    let mut out = format!("audit event={}", event.name());
    for (key, value) in fields {
        out.push(' ');
        out.extend(
            key.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_'),
        );
        out.push('=');
        let text = value.to_string();
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
        if plain {
            out.push_str(&text);
        } else {
            out.push('"');
            for c in text.chars().filter(|c| !c.is_control()) {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                let _ = out.write_char(c);
            }
            out.push('"');
        }
    }
    out
}

/// What [`Monitor::observe`] looks at, once per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// External is in the sources mask (the feeder and external-lost
    /// records apply only then).
    pub external_enabled: bool,
    /// The memory cache's bytes now (its blocks times 32).
    pub available: u64,
    /// Its low watermark in bytes (the level it refills at).
    pub low_watermark: u64,
    /// The pool reports *external lost*.
    pub external_lost: bool,
    /// Milliseconds since the last authorized client call (or since the
    /// server started, when none came yet).
    pub ms_since_client_call: u64,
    /// inactive_source_timeout in seconds (0: never inactive).
    pub inactive_timeout_s: u64,
}

/// A crossing found by [`Monitor::observe`], with the figures for its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// The event.
    pub event: Event,
    /// The observation that showed it.
    pub seen: Observation,
}

/// Finds state crossings between observations (see the module doc).
///
/// Starts from the healthy state (at or above the watermark, feeder
/// active, external not lost), so a daemon that starts empty records
/// `low-watermark-below` at its first observation.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    below: bool,
    inactive: bool,
    lost: bool,
}

impl Monitor {
    /// A monitor in the healthy state.
    #[must_use]
    pub fn new() -> Monitor {
        Monitor::default()
    }

    /// Whether the feeder is inactive now (as of the last observation).
    #[must_use]
    pub const fn feeder_inactive(&self) -> bool {
        self.inactive
    }

    /// Compares `seen` with the state so far; returns the crossings (at
    /// most three) and moves to the new state.
    pub fn observe(&mut self, seen: Observation) -> Crossings {
        let mut out = Crossings::default();
        let below = seen.available < seen.low_watermark;
        if below != self.below {
            self.below = below;
            out.push(Crossing {
                event: if below {
                    Event::LowWatermarkBelow
                } else {
                    Event::LowWatermarkRecovered
                },
                seen,
            });
        }
        let inactive = seen.external_enabled
            && seen.inactive_timeout_s > 0
            && seen.ms_since_client_call >= seen.inactive_timeout_s.saturating_mul(1000);
        if inactive != self.inactive {
            self.inactive = inactive;
            out.push(Crossing {
                event: if inactive {
                    Event::FeederInactive
                } else {
                    Event::FeederActive
                },
                seen,
            });
        }
        let lost = seen.external_enabled && seen.external_lost;
        if lost != self.lost {
            self.lost = lost;
            out.push(Crossing {
                event: if lost {
                    Event::ExternalLost
                } else {
                    Event::ExternalRecovered
                },
                seen,
            });
        }
        out
    }
}

/// Up to three crossings from one observation, one per watched state (no
/// allocation per observation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossings {
    items: [Option<Crossing>; 3],
}

impl Crossings {
    fn push(&mut self, c: Crossing) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some(c);
        }
    }

    /// The crossings, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Crossing> {
        self.items.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_greppable_line() {
        let l = line(
            Event::WriteRefused,
            &[
                ("status", &401),
                ("peer", &"127.0.0.1:5000"),
                ("reason", &"wrong \"token\"\nnext"),
            ],
        );
        assert_eq!(
            l,
            r#"audit event=write-refused status=401 peer=127.0.0.1:5000 reason="wrong \"token\"next""#
        );
        assert!(!l.contains('\n'));
        assert_eq!(
            line(Event::ExternalLost, &[("x", &"")]),
            "audit event=external-lost x=\"\""
        );
    }

    #[test]
    fn counts_follow_records() {
        let a = Audit::counting_only();
        a.record(Event::SourceDisabled, &[("source", &"external")]);
        a.record(Event::SourceDisabled, &[]);
        a.record(Event::TlsRefused, &[]);
        let c = a.counts();
        assert_eq!(c.source_disabled, 2);
        assert_eq!(c.tls_refused, 1);
        for e in Event::ALL {
            assert_eq!(c.get(e), a.count(e), "{e}");
        }
        assert_eq!(c.write_refused, 0);
    }

    fn obs(available: u64, lost: bool, ms: u64, ext: bool) -> Observation {
        Observation {
            external_enabled: ext,
            available,
            low_watermark: 100,
            external_lost: lost,
            ms_since_client_call: ms,
            inactive_timeout_s: 2,
        }
    }

    /// The plain model: each watched condition's crossing is recorded once
    /// per change, starting from the healthy state.
    #[test]
    fn monitor_matches_a_state_table() {
        let mut m = Monitor::new();
        let seq: [(Observation, &[Event]); 9] = [
            (obs(0, false, 0, true), &[Event::LowWatermarkBelow]),
            (obs(50, false, 1000, true), &[]),
            (obs(100, false, 1999, true), &[Event::LowWatermarkRecovered]),
            (obs(100, false, 2000, true), &[Event::FeederInactive]),
            (obs(100, true, 5000, true), &[Event::ExternalLost]),
            (
                obs(99, false, 0, true),
                &[
                    Event::LowWatermarkBelow,
                    Event::FeederActive,
                    Event::ExternalRecovered,
                ],
            ),
            (obs(99, false, 0, true), &[]),
            // External leaves the mask: no feeder or lost state applies.
            (obs(99, true, 9000, false), &[]),
            (obs(99, false, 9000, true), &[Event::FeederInactive]),
        ];
        for (i, (o, want)) in seq.iter().enumerate() {
            let got: Vec<Event> = m.observe(*o).iter().map(|c| c.event).collect();
            assert_eq!(got.as_slice(), *want, "step {i}");
        }
        assert!(m.feeder_inactive());
    }
}
