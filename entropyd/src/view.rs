//! The one-glance view of a [`StatusSnapshot`] for `entropyd status`, its
//! JSON form, and the one-line form for a terminal's live status line.
//!
//! Contract: pure functions from a snapshot to text; no I/O. The text view
//! leads with what matters (refill wanted, external lost, quarantined
//! sources) in capitals, so a human sees the pool's health at a glance.
//! Percentages are whole numbers rounded down, computed in integers.

use std::fmt::Write as _;

use entropool::{HealthState, Source};

use crate::backend::{StatusSnapshot, health_name};

/// `part * 100 / whole`, rounded down; 0 when `whole` is 0.
#[must_use]
pub fn percent(part: u64, whole: u64) -> u64 {
    let p = u128::from(part)
        .saturating_mul(100)
        .checked_div(u128::from(whole))
        .unwrap_or(0);
    u64::try_from(p).unwrap_or(u64::MAX)
}

/// The mask's sources by name, e.g. `interrupts+rdrand`, or `none`.
#[must_use]
pub fn mask_names(mask: u8) -> String {
    let names: Vec<&str> = Source::ALL
        .iter()
        .filter(|s| mask & s.bit() != 0)
        .map(|s| s.name())
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join("+")
    }
}

/// `1h 02m 03s`, `2m 05s`, `7s`.
#[must_use]
pub fn duration_text(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The `entropyd status` text:
///
/// ```text
/// entropyd 0.1.0: running, up 1h 02m 03s, sources 6 (rdrand+rdseed)
/// memory cache   1234/16384 blocks (7 %) [low watermark 20 %: REFILL WANTED]
/// storage cache  131072/131072 blocks (100 %)
/// output         5000 blocks emitted
/// forwarded      160000 bytes to the kernel or sink (64 at start, 64 from storage), last 1s ago
/// external feed  lost: no, last entropy 3s ago (timeout 1m 00s)
///
/// source      enabled  samples  credited bits  health       failures
/// interrupts  no       0        0              off          0
/// ...
/// ```
#[must_use]
pub fn render_text(s: &StatusSnapshot) -> String {
    let mut out = String::with_capacity(1024);
    let state = if s.running {
        format!("running, up {}", duration_text(s.uptime_seconds))
    } else {
        "not running (read from the state directory)".to_owned()
    };
    let _ = writeln!(
        out,
        "entropyd {}: {state}, sources {} ({})",
        s.version,
        s.sources_mask,
        mask_names(s.sources_mask)
    );
    let m = &s.memory_cache;
    let refill = if m.refill_wanted {
        "REFILL WANTED"
    } else {
        "ok"
    };
    let _ = writeln!(
        out,
        "memory cache   {}/{} blocks ({} %) [low watermark {} %: {refill}]",
        m.len_blocks,
        m.capacity_blocks,
        percent(m.len_blocks, m.capacity_blocks),
        m.low_watermark_percent,
    );
    let st = &s.storage_cache;
    let _ = writeln!(
        out,
        "storage cache  {}/{} blocks ({} %)",
        st.len_blocks,
        st.capacity_blocks,
        percent(st.len_blocks, st.capacity_blocks)
    );
    let o = &s.output;
    let _ = writeln!(out, "output         {} blocks emitted", o.blocks_emitted);
    let last = match o.seconds_since_last_forward {
        Some(secs) => format!("last {} ago", duration_text(secs)),
        None => "none yet".to_owned(),
    };
    let _ = writeln!(
        out,
        "forwarded      {} bytes to the kernel or sink ({} at start, {} from storage), {last}",
        o.bytes_forwarded, o.bytes_forwarded_at_start, o.bytes_forwarded_from_storage
    );
    let _ = writeln!(out, "external feed  {}", external_text(s));
    if let Some(api) = &s.api {
        let _ = writeln!(out, "client calls   {}", client_text(s, api));
        let a = &api.audit;
        let _ = writeln!(
            out,
            "api            {}{} connections open, {} shed; audit: {} writes refused, {} reads refused, {} TLS refused, {} low-watermark, {} feeder-inactive, {} external-lost, {} source-disabled",
            if api.tls { "TLS, " } else { "" },
            api.connections_open,
            api.connections_shed,
            a.write_refused,
            a.read_refused,
            a.tls_refused,
            a.low_watermark_below,
            a.feeder_inactive,
            a.external_lost,
            a.source_disabled
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:<8} {:>14} {:>14}  {:<12} {:>8}",
        "source", "enabled", "samples", "credited bits", "health", "failures"
    );
    for src in &s.sources {
        let health = match src.health {
            Some(HealthState::Quarantined) => "QUARANTINED",
            Some(HealthState::Disabled) => "DISABLED",
            other => health_name(other),
        };
        let _ = writeln!(
            out,
            "{:<11} {:<8} {:>14} {:>14}  {:<12} {:>8}",
            src.source.name(),
            if src.enabled { "yes" } else { "no" },
            src.samples,
            src.credited_bits,
            health,
            src.health_failures
        );
    }
    out
}

/// `lost: NO, last entropy 3s ago (timeout 60s)` and its variants.
fn external_text(s: &StatusSnapshot) -> String {
    let e = &s.external;
    let external_on = s.sources_mask & Source::External.bit() != 0;
    let lost = if e.lost { "YES" } else { "no" };
    let last = match e.seconds_since_last {
        Some(secs) => format!("last entropy {} ago", duration_text(secs)),
        None => "no entropy received yet".to_owned(),
    };
    if external_on {
        format!(
            "lost: {lost}, {last} (timeout {})",
            duration_text(e.lost_timeout_seconds)
        )
    } else {
        format!("not in the sources mask; {last}")
    }
}

/// `last call 3s ago (inactive after 1m 00s)`, and `FEEDER INACTIVE` when
/// it is.
fn client_text(s: &StatusSnapshot, api: &crate::backend::ApiStatus) -> String {
    let last = match api.seconds_since_client_call {
        Some(secs) => format!("last call {} ago", duration_text(secs)),
        None => "no client call yet".to_owned(),
    };
    if s.sources_mask & Source::External.bit() == 0 {
        return last;
    }
    format!(
        "{}{last} (inactive after {})",
        if api.feeder_inactive {
            "FEEDER INACTIVE, "
        } else {
            ""
        },
        duration_text(api.inactive_source_timeout)
    )
}

/// The snapshot as pretty JSON (the same fields as `GET /entropy/status`).
///
/// # Errors
/// The serializer's error (not expected for this plain data).
pub fn render_json(s: &StatusSnapshot) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(s)
}

/// One line for a terminal's live status line, e.g.
/// `mem 1234/16384 (7 %) REFILL | storage 100 % | ext lost | fwd 160000 B`.
#[must_use]
pub fn render_line(s: &StatusSnapshot) -> String {
    let m = &s.memory_cache;
    let mut line = format!(
        "mem {}/{} ({} %){} | storage {} %",
        m.len_blocks,
        m.capacity_blocks,
        percent(m.len_blocks, m.capacity_blocks),
        if m.refill_wanted { " REFILL" } else { "" },
        percent(s.storage_cache.len_blocks, s.storage_cache.capacity_blocks)
    );
    if s.sources_mask & Source::External.bit() != 0 {
        line.push_str(if s.external.lost {
            " | ext LOST"
        } else {
            " | ext ok"
        });
    }
    let quarantined: Vec<&str> = s
        .sources
        .iter()
        .filter(|x| {
            matches!(
                x.health,
                Some(HealthState::Quarantined | HealthState::Disabled)
            )
        })
        .map(|x| x.source.name())
        .collect();
    if !quarantined.is_empty() {
        let _ = write!(line, " | QUARANTINED {}", quarantined.join(","));
    }
    let _ = write!(line, " | fwd {} B", s.output.bytes_forwarded);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_floor_and_safe() {
        assert_eq!(percent(1234, 16384), 1234 * 100 / 16384);
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
        assert_eq!(percent(16384, 16384), 100);
    }

    #[test]
    fn names_and_durations() {
        assert_eq!(mask_names(0), "none");
        assert_eq!(mask_names(6), "rdrand+rdseed");
        assert_eq!(mask_names(15), "interrupts+rdrand+rdseed+external");
        assert_eq!(duration_text(3723), "1h 02m 03s");
        assert_eq!(duration_text(125), "2m 05s");
        assert_eq!(duration_text(7), "7s");
    }
}
