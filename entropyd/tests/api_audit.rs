//! Audit crossings seen by the server's monitor over a fake pool whose
//! state the test sets: the low watermark, the inactive feeder (any
//! authorized external-pool call restarts its timer), external lost.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_common::{bearer, post_add, raw, sample_status, token};
use entropyd::api;
use entropyd::audit::{Audit, AuditCounts};
use entropyd::backend::{ExternalPoolInfo, PoolBackend, StatusSnapshot};
use entropyd::server::{ApiServer, ListenAddr, ServerConfig};

#[derive(Debug, Default)]
struct Settable {
    available: AtomicU64,
    lost: AtomicBool,
}

impl PoolBackend for Settable {
    fn external_pool(&self) -> ExternalPoolInfo {
        ExternalPoolInfo {
            enabled: true,
            capacity: 1000,
            currently_available: self.available.load(Ordering::SeqCst),
            low_watermark: 200,
            inactive_source_timeout: 1,
        }
    }

    fn add_external(&self, data: &[u8]) -> usize {
        let room = 1000 - self.available.load(Ordering::SeqCst);
        let take = (data.len() as u64).min(room);
        self.available.fetch_add(take, Ordering::SeqCst);
        take as usize
    }

    fn status(&self) -> StatusSnapshot {
        let mut s = sample_status();
        s.external.lost = self.lost.load(Ordering::SeqCst);
        // The memory cache holds what was added, in whole 32-byte blocks;
        // its low watermark is 7 blocks.
        s.memory_cache.len_blocks = self.available.load(Ordering::SeqCst) / 32;
        s.memory_cache.low_watermark_blocks = 7;
        s
    }
}

fn wait_for(what: &str, audit: &Audit, check: impl Fn(&AuditCounts) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check(&audit.counts()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", audit.counts());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn monitor_records_each_crossing_once() {
    let pool = Arc::new(Settable::default());
    let audit = Arc::new(Audit::counting_only());
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.token = Some(token());
    cfg.audit = Arc::clone(&audit);
    cfg.monitor_interval = Duration::from_millis(50);
    let server = ApiServer::start(cfg, Arc::clone(&pool) as _).unwrap();
    let ListenAddr::Tcp(addr) = *server.local_addr() else {
        panic!("not tcp")
    };
    // Empty at start: below the low watermark.
    wait_for("below at start", &audit, |c| c.low_watermark_below == 1);
    // No client call for the 1 s timeout: inactive.
    wait_for("inactive", &audit, |c| c.feeder_inactive == 1);
    let st = server.api_status();
    assert!(st.feeder_inactive);
    assert_eq!(st.seconds_since_client_call, None);
    // An add (authorized) is a sign of life and fills past the watermark.
    let body = api::encode_add_body(&[1u8; 500]);
    assert_eq!(raw(addr, &post_add(&body, Some(&bearer()))).0, 200);
    wait_for("active and recovered", &audit, |c| {
        c.feeder_active == 1 && c.low_watermark_recovered == 1
    });
    let since = server.api_status().seconds_since_client_call;
    assert!(matches!(since, Some(s) if s < 5), "{since:?}");
    // A refused add is no sign of life, and is a write-refused record.
    wait_for("inactive again", &audit, |c| c.feeder_inactive == 2);
    assert_eq!(raw(addr, &post_add(&body, None)).0, 401);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(audit.counts().feeder_active, 1);
    assert_eq!(audit.counts().write_refused, 1);
    // A GET of the external pool is one; a GET of the status is not.
    let status = b"GET /entropy/status HTTP/1.1\r\n\r\n";
    assert_eq!(raw(addr, status).0, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(audit.counts().feeder_active, 1);
    assert_eq!(
        raw(addr, b"GET /entropy/external-pool HTTP/1.1\r\n\r\n").0,
        200
    );
    wait_for("active again", &audit, |c| c.feeder_active == 2);
    // External lost and recovered: one record each.
    pool.lost.store(true, Ordering::SeqCst);
    wait_for("lost", &audit, |c| c.external_lost == 1);
    pool.lost.store(false, Ordering::SeqCst);
    wait_for("recovered", &audit, |c| c.external_recovered == 1);
    std::thread::sleep(Duration::from_millis(300));
    let c = audit.counts();
    assert_eq!((c.external_lost, c.external_recovered), (1, 1));
    assert_eq!((c.low_watermark_below, c.low_watermark_recovered), (1, 1));
    // The counts are in the status the API serves.
    let (code, body) = raw(addr, status);
    assert_eq!(code, 200);
    let snap: StatusSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(snap.api.unwrap().audit.external_lost, 1);
}
