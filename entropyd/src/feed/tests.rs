//! The feeder's rounds against a counting fake source and fake hosts.
//!
//! The fake source hands out a seeded pseudo-random stream and counts what
//! it gave. Every add any fake host receives (answered, failed before the
//! host took it, or failed in flight after the host took it) is logged in
//! order. The proof that no byte goes to two adds: the logged adds, in
//! order, must match disjoint, increasing stretches of the source's stream
//! (a greedy earliest match; a resent piece would need the same random
//! bytes to appear again later in the stream). The model checks the rest:
//! each pass sends exactly the room the host advertised, in pieces of at
//! most the piece size, and a host that stays up ends its round full.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream the fake source hands out, position by position.
fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A counting fake source: the seeded stream, optionally ending or failing
/// after `limit` bytes.
struct FakeSource {
    data: Vec<u8>,
    pos: usize,
    fail_at_end: bool,
}

impl EntropySource for FakeSource {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let rest = &self.data[self.pos..];
        if rest.len() < buf.len() && self.fail_at_end {
            return Err(SourceError("fake HSM: C_GenerateRandom failed".to_owned()));
        }
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Answered normally.
    Ok,
    /// Fails before the host takes anything (refused connection).
    FailBefore,
    /// The host takes the add, then the answer is lost (in flight).
    FailInFlight,
}

#[derive(Debug, Default)]
struct Log {
    /// Every add's bytes, in order, with the host.
    adds: Vec<(usize, Vec<u8>)>,
}

/// A fake host: a pool that takes bytes 1:1 until full, scripted failures.
struct FakeHost {
    id: usize,
    name: String,
    capacity: u64,
    available: u64,
    enabled: bool,
    /// Gone: every call fails.
    down: bool,
    /// Fates of the next calls (GET and add alike); `Ok` when empty.
    script: Vec<Fate>,
    piece_max: usize,
    /// Room advertised by the last GET, minus the adds since.
    pending: Option<u64>,
    log: Arc<Mutex<Log>>,
    /// Whether the add answers carry the AddResult figures.
    add_result: bool,
    /// The feeder's cap on one pass, for the room check.
    pass_cap: u64,
}

impl FakeHost {
    fn next_fate(&mut self) -> Fate {
        if self.down {
            return Fate::FailBefore;
        }
        if self.script.is_empty() {
            Fate::Ok
        } else {
            self.script.remove(0)
        }
    }

    fn figures(&self) -> PoolFigures {
        PoolFigures {
            enabled: self.enabled,
            capacity: self.capacity,
            currently_available: self.available,
            low_watermark: self.capacity / 5,
            inactive_source_timeout: 60,
        }
    }
}

struct FakeLink(Arc<Mutex<FakeHost>>, String);

impl FakeLink {
    fn new(host: &Arc<Mutex<FakeHost>>) -> Box<FakeLink> {
        let name = host.lock().unwrap().name.clone();
        Box::new(FakeLink(Arc::clone(host), name))
    }
}

impl HostLink for FakeLink {
    fn name(&self) -> &str {
        &self.1
    }

    fn external_pool(&mut self) -> Result<PoolFigures, LinkError> {
        let mut h = self.0.lock().unwrap();
        if let Some(left) = h.pending.take() {
            assert_eq!(
                left, 0,
                "a pass sent less than the advertised room without an error"
            );
        }
        match h.next_fate() {
            Fate::Ok => {
                h.pending = Some(h.figures().room().min(h.pass_cap));
                Ok(h.figures())
            }
            _ => Err(LinkError("fake: GET failed".to_owned())),
        }
    }

    fn add(&mut self, data: &[u8]) -> Result<AddAnswer, LinkError> {
        let mut h = self.0.lock().unwrap();
        assert!(!data.is_empty(), "an empty add");
        assert!(data.len() <= h.piece_max, "a piece over the piece size");
        let len = data.len() as u64;
        let pending = h.pending.expect("an add without a GET before it");
        assert!(len <= pending, "an add beyond the advertised room");
        h.pending = Some(pending - len);
        let fate = h.next_fate();
        if fate == Fate::FailBefore {
            // The bytes never reached the host, yet they were read: they
            // count as used (logged) and must never show up again.
            h.log.lock().unwrap().adds.push((h.id, data.to_vec()));
            h.pending = None;
            return Err(LinkError("fake: connection refused".to_owned()));
        }
        h.log.lock().unwrap().adds.push((h.id, data.to_vec()));
        let accepted = len.min(h.capacity - h.available);
        h.available += accepted;
        if fate == Fate::FailInFlight {
            h.pending = None;
            return Err(LinkError("fake: connection reset after sending".to_owned()));
        }
        if accepted < len {
            h.pending = None;
        }
        Ok(AddAnswer {
            accepted,
            figures: h.add_result.then(|| h.figures()),
        })
    }
}

/// The adds, in order, cover disjoint increasing stretches of `source`.
fn assert_no_byte_twice(source: &[u8], adds: &[(usize, Vec<u8>)]) {
    let mut cursor = 0usize;
    for (i, (host, data)) in adds.iter().enumerate() {
        let found = (cursor..=source.len().saturating_sub(data.len()))
            .find(|&k| source[k..k + data.len()] == data[..]);
        let Some(k) = found else {
            panic!(
                "add {i} to host {host} ({} bytes) is not fresh source bytes after position {cursor}",
                data.len()
            );
        };
        cursor = k + data.len();
    }
}

struct Setup {
    hosts: Vec<Arc<Mutex<FakeHost>>>,
    feeders: Vec<HostFeeder>,
    log: Arc<Mutex<Log>>,
    source: SharedSource,
    stream: Vec<u8>,
}

fn setup(pools: &[(u64, u64)], piece_max: usize, source_len: usize, fail_at_end: bool) -> Setup {
    let log = Arc::new(Mutex::new(Log::default()));
    let stream = stream(0x5eed, source_len);
    let source = SharedSource::new(Box::new(FakeSource {
        data: stream.clone(),
        pos: 0,
        fail_at_end,
    }));
    let mut hosts = Vec::new();
    let mut feeders = Vec::new();
    for (id, &(capacity, available)) in pools.iter().enumerate() {
        let host = Arc::new(Mutex::new(FakeHost {
            id,
            name: format!("fake{id}"),
            capacity,
            available: available.min(capacity),
            enabled: true,
            down: false,
            script: Vec::new(),
            piece_max,
            pending: None,
            log: Arc::clone(&log),
            add_result: id % 2 == 0,
            pass_cap: MAX_PASS_BYTES,
        }));
        feeders.push(HostFeeder::new(FakeLink::new(&host), None, piece_max));
        hosts.push(host);
    }
    Setup {
        hosts,
        feeders,
        log,
        source,
        stream,
    }
}

#[test]
fn a_round_fills_each_host_with_exactly_its_room() {
    let mut s = setup(&[(1000, 0), (300, 250), (64, 64)], 128, 1 << 16, false);
    let now = Duration::from_secs(5);
    for f in &mut s.feeders {
        let (end, due) = f.round(&s.source, now);
        assert_eq!(end, RoundEnd::Full, "{}", f.status_line(now));
        // Default interval: half of the 60 s inactive-source timeout.
        assert_eq!(due, now + Duration::from_secs(30));
    }
    let log = s.log.lock().unwrap();
    let per_host: Vec<u64> = (0..3)
        .map(|h| {
            log.adds
                .iter()
                .filter(|a| a.0 == h)
                .map(|a| a.1.len() as u64)
                .sum()
        })
        .collect();
    assert_eq!(per_host, [1000, 50, 0]);
    assert_eq!(s.source.bytes_read(), 1050);
    assert_eq!(s.feeders[0].status().bytes_sent, 1000);
    assert_eq!(s.feeders[2].status().bytes_sent, 0);
    assert!(s.feeders[2].status().full);
    assert_no_byte_twice(&s.stream, &log.adds);
}

#[test]
fn a_failed_add_is_dropped_not_resent() {
    let mut s = setup(&[(100, 0), (100, 0)], 40, 1 << 16, false);
    s.hosts[0].lock().unwrap().script = vec![Fate::Ok, Fate::FailInFlight];
    let (end, due) = s.feeders[0].round(&s.source, Duration::ZERO);
    assert_eq!(end, RoundEnd::HostFailed);
    assert_eq!(due, BACKOFF_START);
    let st = s.feeders[0].status();
    assert_eq!((st.bytes_sent, st.bytes_dropped), (0, 40));
    assert!(st.last_error.as_deref().unwrap().contains("reset"));
    // The other host gets fresh bytes only.
    assert_eq!(
        s.feeders[1].round(&s.source, Duration::ZERO).0,
        RoundEnd::Full
    );
    // Host 0 comes back: fed again from fresh bytes up to full.
    assert_eq!(
        s.feeders[0].round(&s.source, BACKOFF_START).0,
        RoundEnd::Full
    );
    let log = s.log.lock().unwrap();
    assert_no_byte_twice(&s.stream, &log.adds);
    assert_eq!(s.source.bytes_read(), 40 + 100 + 60);
}

#[test]
fn the_checker_catches_a_resend() {
    // The checker itself: the same bytes twice fail it.
    let data = stream(1, 200);
    let adds = vec![(0, data[0..50].to_vec()), (1, data[0..50].to_vec())];
    let caught = std::panic::catch_unwind(|| assert_no_byte_twice(&data, &adds));
    assert!(caught.is_err());
    let adds = vec![(0, data[0..50].to_vec()), (1, data[60..100].to_vec())];
    assert_no_byte_twice(&data, &adds);
}

#[test]
fn backoff_doubles_to_its_cap() {
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(5), Duration::from_secs(16));
    assert_eq!(backoff(6), BACKOFF_CAP);
    assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    let mut s = setup(&[(100, 0)], 40, 1 << 12, false);
    s.hosts[0].lock().unwrap().down = true;
    let mut now = Duration::ZERO;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let (end, due) = s.feeders[0].round(&s.source, now);
        assert_eq!(end, RoundEnd::HostFailed);
        waits.push((due - now).as_secs());
        now = due;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    // Nothing is read for a host whose GET fails.
    assert_eq!(s.source.bytes_read(), 0);
    s.hosts[0].lock().unwrap().down = false;
    let (end, due) = s.feeders[0].round(&s.source, now);
    assert_eq!(end, RoundEnd::Full);
    assert_eq!(due - now, Duration::from_secs(30));
    assert_eq!(s.feeders[0].status().failures, 0);
}

#[test]
fn an_explicit_interval_wins() {
    let log = Arc::new(Mutex::new(Log::default()));
    let host = Arc::new(Mutex::new(FakeHost {
        id: 0,
        name: "x".to_owned(),
        capacity: 10,
        available: 10,
        enabled: true,
        down: false,
        script: Vec::new(),
        piece_max: 10,
        pending: None,
        log,
        add_result: false,
        pass_cap: MAX_PASS_BYTES,
    }));
    let mut f = HostFeeder::new(FakeLink::new(&host), Some(Duration::from_secs(7)), 10);
    let source = SharedSource::new(Box::new(FakeSource {
        data: Vec::new(),
        pos: 0,
        fail_at_end: false,
    }));
    assert_eq!(
        f.round(&source, Duration::ZERO),
        (RoundEnd::Full, Duration::from_secs(7))
    );
}

#[test]
fn a_host_claiming_endless_room_gets_a_bounded_round() {
    // A host that takes everything yet never fills: each pass is capped,
    // and a round is at most MAX_PASSES passes.
    let s = setup(&[(1 << 40, 0)], 500, 1 << 20, false);
    s.hosts[0].lock().unwrap().pass_cap = 1000;
    let mut f = HostFeeder::new(FakeLink::new(&s.hosts[0]), None, 500).with_pass_max(1000);
    let (end, _) = f.round(&s.source, Duration::ZERO);
    assert_eq!(end, RoundEnd::NotFull);
    assert_eq!(s.source.bytes_read(), 1000 * u64::from(MAX_PASSES));
    assert_no_byte_twice(&s.stream, &s.log.lock().unwrap().adds);
}

#[test]
fn a_host_error_is_one_printable_line() {
    let mut s = setup(&[(100, 0)], 40, 1 << 12, false);
    s.hosts[0].lock().unwrap().enabled = false;
    s.feeders[0].fail(&LinkError("refused (401): evil\n\x1b[2Jline".to_owned()));
    let line = s.feeders[0].status_line(Duration::ZERO);
    assert_eq!(line.lines().count(), 1);
    assert!(!line.contains('\x1b'), "{line:?}");
}

#[test]
fn a_disabled_host_is_an_error_and_gets_nothing() {
    let mut s = setup(&[(100, 0)], 40, 1 << 12, false);
    s.hosts[0].lock().unwrap().enabled = false;
    assert_eq!(
        s.feeders[0].round(&s.source, Duration::ZERO).0,
        RoundEnd::HostFailed
    );
    assert!(
        s.feeders[0]
            .status()
            .last_error
            .as_deref()
            .unwrap()
            .contains("DISABLED")
    );
    assert_eq!(s.source.bytes_read(), 0);
}

#[test]
fn a_failing_source_stops_and_nothing_is_substituted() {
    let mut s = setup(&[(1000, 0)], 100, 250, true);
    let (end, _) = s.feeders[0].round(&s.source, Duration::ZERO);
    assert_eq!(
        end,
        RoundEnd::Source(SourceStop::Failed(
            "fake HSM: C_GenerateRandom failed".to_owned()
        ))
    );
    // Two whole pieces went out; nothing after the failure.
    assert_eq!(s.feeders[0].status().bytes_sent, 200);
    assert_eq!(s.hosts[0].lock().unwrap().available, 200);
    assert!(matches!(s.source.take(1), Err(SourceStop::Failed(_))));
}

#[test]
fn an_ending_file_sends_its_tail_once_and_stops() {
    let mut s = setup(&[(1000, 0)], 100, 250, false);
    let (end, _) = s.feeders[0].round(&s.source, Duration::ZERO);
    assert_eq!(end, RoundEnd::Source(SourceStop::Ended(250)));
    assert_eq!(s.hosts[0].lock().unwrap().available, 250);
    let log = s.log.lock().unwrap();
    assert_no_byte_twice(&s.stream, &log.adds);
}

#[test]
fn the_threaded_runner_once() {
    let s = setup(&[(5000, 0), (3000, 100), (200, 200)], 512, 1 << 16, false);
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let (end, hosts) = run(s.feeders, &s.source, true, &stop, &mut out);
    assert_eq!(end, FeedEnd::AllFull);
    assert_eq!(hosts.len(), 3);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains(" ok full ")), "{text}");
    assert_eq!(s.source.bytes_read(), 5000 + 2900);
    // Concurrent hosts: each add is still fresh, distinct source bytes
    // (checked per host, whose adds are in stream order among themselves,
    // and by total length).
    let log = s.log.lock().unwrap();
    for h in 0..3 {
        let mine: Vec<_> = log.adds.iter().filter(|a| a.0 == h).cloned().collect();
        assert_no_byte_twice(&s.stream, &mine);
    }
    let total: usize = log.adds.iter().map(|a| a.1.len()).sum();
    assert_eq!(total as u64, s.source.bytes_read());

    // A host that is down: the runner says not all full.
    let s = setup(&[(100, 0), (100, 0)], 64, 1 << 12, false);
    s.hosts[1].lock().unwrap().down = true;
    let mut out = Vec::new();
    let (end, _) = run(s.feeders, &s.source, true, &stop, &mut out);
    assert_eq!(end, FeedEnd::NotAllFull);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("fake1 FAILED"), "{text}");
}

/// Events between rounds, chosen by proptest.
#[derive(Debug, Clone)]
enum Event {
    /// The host's pool hands out this many bytes.
    Consume(usize, u64),
    /// The host disappears / comes back.
    Down(usize, bool),
    /// The next calls to the host have these fates.
    Script(usize, Vec<Fate>),
    /// One round for this host.
    Round(usize),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Ok),
        1 => Just(Fate::FailBefore),
        1 => Just(Fate::FailInFlight),
    ]
}

fn event(hosts: usize) -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => (0..hosts, 0u64..3000).prop_map(|(h, n)| Event::Consume(h, n)),
        1 => (0..hosts, any::<bool>()).prop_map(|(h, d)| Event::Down(h, d)),
        1 => (0..hosts, prop::collection::vec(fate(), 1..5)).prop_map(|(h, f)| Event::Script(h, f)),
        4 => (0..hosts).prop_map(Event::Round),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 200 }))]

    /// Against the model: no byte in two adds (failures in flight and
    /// hosts that disappear included), every add fresh source bytes,
    /// what was read = what was sent + what was dropped, and a host that
    /// answers every call ends its round full.
    #[test]
    fn no_byte_ever_goes_to_two_adds(
        pools in prop::collection::vec((1u64..4000, 0u64..4000), 1..4),
        piece_max in 8usize..600,
        events in prop::collection::vec(event(3), 1..40),
    ) {
        let hosts = pools.len();
        let mut s = setup(&pools, piece_max, 1 << 20, false);
        let mut now = Duration::ZERO;
        for ev in events {
            match ev {
                Event::Consume(h, n) => {
                    let mut host = s.hosts[h % hosts].lock().unwrap();
                    host.available = host.available.saturating_sub(n);
                }
                Event::Down(h, d) => s.hosts[h % hosts].lock().unwrap().down = d,
                Event::Script(h, f) => s.hosts[h % hosts].lock().unwrap().script = f,
                Event::Round(h) => {
                    let h = h % hosts;
                    let clean = {
                        let host = s.hosts[h].lock().unwrap();
                        !host.down && host.script.iter().all(|f| *f == Fate::Ok)
                    };
                    now += Duration::from_secs(1);
                    let (end, due) = s.feeders[h].round(&s.source, now);
                    prop_assert!(due > now);
                    if clean {
                        // The model: a host that answers everything is full.
                        prop_assert_eq!(&end, &RoundEnd::Full);
                        let host = s.hosts[h].lock().unwrap();
                        prop_assert_eq!(host.available, host.capacity);
                    }
                    if end == RoundEnd::HostFailed {
                        prop_assert!(s.feeders[h].status().last_error.is_some());
                    }
                }
            }
        }
        let log = s.log.lock().unwrap();
        assert_no_byte_twice(&s.stream, &log.adds);
        let logged: u64 = log.adds.iter().map(|a| a.1.len() as u64).sum();
        let sent: u64 = s.feeders.iter().map(|f| f.status().bytes_sent + f.status().bytes_dropped).sum();
        prop_assert_eq!(logged, sent);
        prop_assert_eq!(logged, s.source.bytes_read());
        // Per host: the pool took at most what it was sent.
        for (h, f) in s.feeders.iter().enumerate() {
            let to_host: u64 = log.adds.iter().filter(|a| a.0 == h).map(|a| a.1.len() as u64).sum();
            prop_assert_eq!(to_host, f.status().bytes_sent + f.status().bytes_dropped);
            prop_assert!(f.status().bytes_accepted <= f.status().bytes_sent);
        }
    }
}
