//! The status view: text a human reads at a glance, JSON a script reads.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use api_common::sample_status;
use entropool::HealthState;
use entropyd::backend::StatusSnapshot;
use entropyd::view::{render_json, render_line, render_text};

#[test]
fn text_view_shows_fill_levels_watermark_sources_and_external() {
    let s = sample_status();
    let text = render_text(&s);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("running, up 1h 02m 03s"), "{text}");
    assert!(lines[0].contains("sources 12 (rdseed+external)"), "{text}");
    // 1234 * 100 / 16384 = 7.5.. -> 7
    assert_eq!(
        lines[1],
        "memory cache   1234/16384 blocks (7 %) [low watermark 20 %: REFILL WANTED]"
    );
    // 131000 * 100 / 131072 = 99.94.. -> 99
    assert_eq!(lines[2], "storage cache  131000/131072 blocks (99 %)");
    assert!(
        text.contains("5000 blocks emitted\nforwarded      160000 bytes to the kernel or sink (0 at start, 0 from storage), none yet"),
        "{text}"
    );
    assert!(
        text.contains("lost: YES, last entropy 1m 15s ago (timeout 1m 00s)"),
        "{text}"
    );
    // One table row per source, with its numbers and health.
    let row = |name: &str| {
        lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.len() == 6 && w[0] == name)
            .unwrap()
    };
    assert_eq!(
        row("rdseed"),
        ["rdseed", "yes", "1002", "2002", "QUARANTINED", "2"]
    );
    assert_eq!(
        row("external"),
        ["external", "yes", "1003", "2003", "ok", "3"]
    );
    assert_eq!(
        row("interrupts"),
        ["interrupts", "no", "1000", "2000", "off", "0"]
    );
}

#[test]
fn text_view_of_a_healthy_stopped_pool() {
    let mut s = sample_status();
    s.running = false;
    s.memory_cache.refill_wanted = false;
    s.external.lost = false;
    s.external.seconds_since_last = None;
    s.sources_mask = 6;
    let text = render_text(&s);
    assert!(
        text.contains("not running (read from the state directory)"),
        "{text}"
    );
    assert!(text.contains("[low watermark 20 %: ok]"), "{text}");
    assert!(
        text.contains("external feed  not in the sources mask; no entropy received yet"),
        "{text}"
    );
    // An empty snapshot renders without dividing by zero.
    let empty = render_text(&StatusSnapshot::default());
    assert!(empty.contains("memory cache   0/0 blocks (0 %)"), "{empty}");
}

#[test]
fn json_round_trips_and_uses_lowercase_names() {
    let s = sample_status();
    let json = render_json(&s).unwrap();
    assert_eq!(serde_json::from_str::<StatusSnapshot>(&json).unwrap(), s);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sources"][2]["source"], "rdseed");
    assert_eq!(v["sources"][2]["health"], "quarantined");
    // The wire names stay what they were before the library's types served
    // here: "off" outside the mask, "ok" (not "healthy") while healthy.
    assert_eq!(v["sources"][0]["health"], "off");
    assert_eq!(v["sources"][3]["health"], "ok");
    assert_eq!(v["sources"][3]["source"], "external");
    let bad = json.replacen("\"rdseed\"", "\"rdseeds\"", 1);
    assert!(serde_json::from_str::<StatusSnapshot>(&bad).is_err());
    let bad = json.replacen("\"quarantined\"", "\"healthy\"", 1);
    assert!(serde_json::from_str::<StatusSnapshot>(&bad).is_err());
    assert_eq!(v["memory_cache"]["refill_wanted"], true);
    assert_eq!(v["external"]["seconds_since_last"], 75);
}

#[test]
fn status_line_flags_problems() {
    let mut s = sample_status();
    let line = render_line(&s);
    assert_eq!(
        line,
        "mem 1234/16384 (7 %) REFILL | storage 99 % | ext LOST | QUARANTINED rdseed | fwd 160000 B"
    );
    s.memory_cache.refill_wanted = false;
    s.external.lost = false;
    for src in &mut s.sources {
        src.health = Some(HealthState::Healthy);
    }
    assert_eq!(
        render_line(&s),
        "mem 1234/16384 (7 %) | storage 99 % | ext ok | fwd 160000 B"
    );
}

#[test]
fn text_view_shows_client_calls_apart_from_entropy_and_audit_counts() {
    let mut s = sample_status();
    assert!(!render_text(&s).contains("client calls"));
    s.api = Some(entropyd::backend::ApiStatus {
        seconds_since_client_call: Some(125),
        inactive_source_timeout: 60,
        feeder_inactive: true,
        tls: true,
        connections_open: 3,
        connections_shed: 9,
        audit: entropyd::audit::AuditCounts {
            write_refused: 4,
            tls_refused: 2,
            external_lost: 1,
            ..Default::default()
        },
    });
    let text = render_text(&s);
    // The last call and the last entropy are separate lines.
    assert!(
        text.contains(
            "client calls   FEEDER INACTIVE, last call 2m 05s ago (inactive after 1m 00s)"
        ),
        "{text}"
    );
    assert!(text.contains("last entropy 1m 15s ago"), "{text}");
    assert!(
        text.contains("api            TLS, 3 connections open, 9 shed; audit: 4 writes refused, 0 reads refused, 2 TLS refused, 0 low-watermark, 0 feeder-inactive, 1 external-lost, 0 source-disabled"),
        "{text}"
    );
    // JSON carries it under "api" and reads back.
    let back: StatusSnapshot = serde_json::from_str(&render_json(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}
