//! Public-API tests of `entropool::config`: `set`/`reset` sequences against
//! a plain model of the four values, the text form's round trip, and that an
//! invalid request changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use entropool::config::{Param, SetRequest, parse_set_args};
use entropool::{Config, Error, SourceMask, Tunables};
use proptest::prelude::*;

/// The documented ranges and defaults, restated from DESIGN.md and the
/// module doc (not read from the code under test), in label order.
const NAMES: [&str; 4] = [
    "external-entropy-lost-timeout",
    "memory-cache-low-watermark",
    "memory-cache-size",
    "storage-cache-size",
];
const MIN: [u64; 4] = [1, 0, 1, 0];
const MAX: [u64; 4] = [86_400, 100, 65_536, 1_048_576];
const DEFAULTS: [u64; 4] = [60, 20, 512, 4096];
const LABELS: [&str; 4] = [
    "External Entropy Lost Timeout Seconds",
    "Memory Cache Low Watermark Percentage",
    "Memory Cache Size Kibibytes",
    "Storage Cache Size Kibibytes",
];

/// One `set` argument as the model sees it.
#[derive(Clone, Debug)]
enum Op {
    Set(usize, u64),
    ResetAll,
    Reset(usize),
    Garbage(&'static str),
}

impl Op {
    fn arg(&self) -> String {
        match self {
            Op::Set(i, v) => format!("--{}={v}", NAMES[*i]),
            Op::ResetAll => "--reset=all".to_string(),
            Op::Reset(i) => format!("--reset={}", NAMES[*i]),
            Op::Garbage(g) => (*g).to_string(),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize).prop_flat_map(|i| {
            // Mostly in range, sometimes just outside or far outside.
            prop_oneof![
                8 => (MIN[i]..=MAX[i]).boxed(),
                1 => Just(MAX[i] + 1).boxed(),
                1 => (MAX[i]..u64::MAX).boxed(),
            ]
            .prop_map(move |v| Op::Set(i, v))
        }),
        1 => Just(Op::ResetAll),
        2 => (0..4usize).prop_map(Op::Reset),
        1 => prop::sample::select(vec![
            "--memory-cache-size",
            "--memory-cache-size=",
            "--memory-cache-size=-1",
            "--memory-cache-size= 1",
            "--bogus=1",
            "memory-cache-size=1",
            "--reset=everything",
            "--reset",
        ])
        .prop_map(Op::Garbage),
    ]
}

/// The plain model: the new values, or `None` when the request is invalid.
fn model(current: [u64; 4], ops: &[Op]) -> Option<[u64; 4]> {
    let mut set = [None; 4];
    let mut reset = [false; 4];
    let mut reset_all = false;
    for op in ops {
        match *op {
            Op::Set(i, v) => {
                if v < MIN[i] || v > MAX[i] || set[i].is_some() || reset[i] {
                    return None;
                }
                set[i] = Some(v);
            }
            Op::ResetAll => {
                if reset_all {
                    return None;
                }
                reset_all = true;
            }
            Op::Reset(i) => {
                if reset[i] || set[i].is_some() {
                    return None;
                }
                reset[i] = true;
            }
            Op::Garbage(_) => return None,
        }
    }
    let mut next = current;
    for i in 0..4 {
        if reset_all || reset[i] {
            next[i] = DEFAULTS[i];
        }
        if let Some(v) = set[i] {
            next[i] = v;
        }
    }
    Some(next)
}

fn values(t: &Tunables) -> [u64; 4] {
    Param::ALL.map(|p| u64::from(t.get(p)))
}

fn tunables() -> impl Strategy<Value = Tunables> {
    (
        MIN[0]..=MAX[0],
        MIN[1]..=MAX[1],
        MIN[2]..=MAX[2],
        MIN[3]..=MAX[3],
    )
        .prop_map(|(a, b, c, d)| {
            let n = |v: u64| u32::try_from(v).unwrap();
            Tunables::new(n(a), n(b), n(c), n(d)).unwrap()
        })
}

proptest! {
    #[test]
    fn set_sequences_match_the_model(
        requests in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..8)
    ) {
        let mut t = Tunables::DEFAULT;
        let mut m = DEFAULTS;
        for ops in &requests {
            let args: Vec<String> = ops.iter().map(Op::arg).collect();
            let before = t;
            let result = parse_set_args(args.iter().map(String::as_str))
                .and_then(|req| t.apply(&req));
            match model(m, ops) {
                Some(next) => {
                    prop_assert!(result.is_ok(), "{args:?}: {result:?}");
                    m = next;
                }
                None => {
                    prop_assert!(result.is_err(), "{args:?} accepted");
                    prop_assert_eq!(t, before, "a rejected request changed the values");
                }
            }
            prop_assert_eq!(values(&t), m);
        }
    }

    #[test]
    fn out_of_range_values_name_param_value_and_range(i in 0..4usize, v in any::<u64>()) {
        let arg = format!("--{}={v}", NAMES[i]);
        let r = parse_set_args([arg.as_str()]);
        if v < MIN[i] || v > MAX[i] {
            prop_assert_eq!(r, Err(Error::InvalidValue {
                param: NAMES[i], value: v, min: MIN[i], max: MAX[i]
            }));
        } else {
            let req = r.unwrap();
            prop_assert_eq!(req.value(Param::ALL[i]).map(u64::from), Some(v));
        }
    }

    #[test]
    fn any_invalid_value_leaves_the_config_unchanged(
        start in tunables(),
        valid in prop::collection::vec((0..4usize, any::<u32>()), 0..4),
        bad_index in 0..4usize,
        bad_excess in 1..1_000_000u64,
    ) {
        // Valid values for distinct parameters other than the bad one.
        let mut seen = [false; 4];
        seen[bad_index] = true;
        let mut args = Vec::new();
        for (i, raw) in valid {
            if !seen[i] {
                seen[i] = true;
                let v = MIN[i] + u64::from(raw) % (MAX[i] - MIN[i] + 1);
                args.push(format!("--{}={v}", NAMES[i]));
            }
        }
        let bad = MAX[bad_index] + bad_excess;
        let pos = args.len() / 2;
        args.insert(pos, format!("--{}={bad}", NAMES[bad_index]));
        let mut t = start;
        let r = parse_set_args(args.iter().map(String::as_str)).and_then(|q| t.apply(&q));
        prop_assert!(r.is_err());
        prop_assert_eq!(t, start);
        // The per-value setter also refuses without change.
        let mut t2 = start;
        prop_assert!(t2.set(Param::ALL[bad_index], u32::try_from(bad).unwrap_or(u32::MAX)).is_err());
        prop_assert_eq!(t2, start);
    }

    #[test]
    fn text_form_round_trips(t in tunables(), sources in 0..=15u64) {
        let mut text = String::new();
        t.write_esxcli(&mut text).unwrap();
        // Independent rendering of the expected text.
        let expected: String = LABELS
            .iter()
            .zip(values(&t))
            .map(|(l, v)| format!("{l}: {v}\n"))
            .collect();
        prop_assert_eq!(&text, &expected);
        prop_assert_eq!(Tunables::parse_esxcli(&text), Ok(t));

        let config = Config { tunables: t, sources: SourceMask::new(sources).unwrap() };
        let mut stored = String::new();
        config.write_text(&mut stored).unwrap();
        prop_assert_eq!(&stored, &format!("{expected}Sources: {sources}\n"));
        prop_assert_eq!(Config::parse_text(&stored), Ok(config));
    }

    #[test]
    fn text_parser_never_accepts_garbage_silently(text in "[ -~\n]{0,200}") {
        // Whatever it is given, the parser either rejects it or returns
        // tunables whose own text form parses back to the same value.
        if let Ok(t) = Tunables::parse_esxcli(&text) {
            let mut again = String::new();
            t.write_esxcli(&mut again).unwrap();
            prop_assert_eq!(Tunables::parse_esxcli(&again), Ok(t));
        }
    }

    #[test]
    fn reordered_lines_parse_but_damaged_ones_do_not(
        t in tunables(),
        order in Just([0usize, 1, 2, 3]).prop_shuffle(),
        damage in 0..6usize,
    ) {
        let lines: Vec<String> = order
            .iter()
            .map(|&i| format!("{}: {}\n", LABELS[i], values(&t)[i]))
            .collect();
        let text: String = lines.concat();
        prop_assert_eq!(Tunables::parse_esxcli(&text), Ok(t));
        let damaged = match damage {
            0 => text.trim_end_matches('\n').to_string(),   // no final newline
            1 => lines[1..].concat(),                        // a line missing
            2 => format!("{text}{}", lines[0]),              // a line twice
            3 => text.replacen(": ", ":", 1),                // bad separator
            4 => format!("{text}Unknown Label: 1\n"),        // unknown label
            // memory-cache-size out of range (65536 is its maximum).
            _ => text.replace(
                &format!("{}: {}\n", LABELS[2], values(&t)[2]),
                &format!("{}: 65537\n", LABELS[2]),
            ),
        };
        prop_assert_eq!(Tunables::parse_esxcli(&damaged), Err(Error::ConfigCorrupt), "{:?}", damaged);
    }
}

#[test]
fn reset_then_value_means_defaults_except_that_value() {
    let mut t = Tunables::new(100, 50, 2048, 0).unwrap();
    let req = parse_set_args(["--memory-cache-size=1024", "--reset=all"]).unwrap();
    t.apply(&req).unwrap();
    assert_eq!(values(&t), [60, 20, 1024, 4096]);
    assert!(req.resets_all() && req.resets(Param::StorageCacheSize));
}

#[test]
fn empty_request_changes_nothing() {
    let req = parse_set_args([]).unwrap();
    assert!(req.is_empty());
    assert_eq!(req, SetRequest::new());
    let mut t = Tunables::new(5, 6, 7, 8).unwrap();
    t.apply(&req).unwrap();
    assert_eq!(values(&t), [5, 6, 7, 8]);
}

#[test]
fn malformed_values_and_names() {
    assert_eq!(
        parse_set_args(["--memory-cache-size=12a"]),
        Err(Error::MalformedValue {
            param: "memory-cache-size"
        })
    );
    assert_eq!(
        parse_set_args(["--storage-cache-size"]),
        Err(Error::MalformedValue {
            param: "storage-cache-size"
        })
    );
    assert_eq!(parse_set_args(["--nope=1"]), Err(Error::UnknownParameter));
    assert_eq!(
        parse_set_args(["--reset=memory-cache-size", "--reset=memory-cache-size"]),
        Err(Error::DuplicateParameter { param: "reset" })
    );
    assert_eq!(
        parse_set_args(["--memory-cache-size=5", "--reset=memory-cache-size"]),
        Err(Error::DuplicateParameter {
            param: "memory-cache-size"
        })
    );
}

#[test]
fn helpers_for_the_pool() {
    let t = Tunables::new(90, 25, 64, 128).unwrap();
    assert_eq!(t.external_lost_timeout_ms(), 90 * 1000);
    assert_eq!(t.low_watermark_percent(), 25);
    assert_eq!(t.memory_cache_blocks(), 64 * 1024 / 32);
    assert_eq!(t.storage_cache_blocks(), 128 * 1024 / 32);
    assert_eq!(
        Tunables::new(60, 20, 512, 0)
            .unwrap()
            .storage_cache_blocks(),
        0
    );
}
