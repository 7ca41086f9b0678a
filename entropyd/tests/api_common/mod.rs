//! Shared helpers for the API tests (a fake pool and a raw HTTP client).
#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entropool::{HealthState, Source};
use entropyd::auth::ApiToken;
use entropyd::backend::{
    ExternalPoolInfo, ExternalStatus, MemoryCacheStatus, OutputStatus, PoolBackend, SourceStatus,
    StatusSnapshot, StorageCacheStatus,
};
use entropyd::server::{ApiServer, ListenAddr, ServerConfig};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A fake pool: an external intake of `capacity` bytes that records every
/// byte it takes.
#[derive(Debug)]
pub struct FakePool {
    pub enabled: bool,
    pub capacity: u64,
    pub state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub available: u64,
    pub credited: Vec<u8>,
    pub add_calls: u64,
}

impl FakePool {
    pub fn new(capacity: u64, available: u64) -> Arc<FakePool> {
        Arc::new(FakePool {
            enabled: true,
            capacity,
            state: Mutex::new(FakeState {
                available,
                ..FakeState::default()
            }),
        })
    }

    pub fn credited(&self) -> Vec<u8> {
        self.state.lock().unwrap().credited.clone()
    }

    pub fn add_calls(&self) -> u64 {
        self.state.lock().unwrap().add_calls
    }
}

impl PoolBackend for FakePool {
    fn external_pool(&self) -> ExternalPoolInfo {
        let st = self.state.lock().unwrap();
        ExternalPoolInfo {
            enabled: self.enabled,
            capacity: self.capacity,
            currently_available: st.available,
            low_watermark: self.capacity / 5,
            inactive_source_timeout: 60,
        }
    }

    fn add_external(&self, data: &[u8]) -> usize {
        let mut st = self.state.lock().unwrap();
        st.add_calls += 1;
        let room = usize::try_from(self.capacity - st.available).unwrap();
        let take = room.min(data.len());
        st.available += take as u64;
        st.credited.extend_from_slice(&data[..take]);
        take
    }

    fn status(&self) -> StatusSnapshot {
        sample_status()
    }
}

/// A snapshot with every field set to something distinct.
pub fn sample_status() -> StatusSnapshot {
    StatusSnapshot {
        version: "0.1.0".to_owned(),
        uptime_seconds: 3723,
        running: true,
        sources_mask: 12,
        memory_cache: MemoryCacheStatus {
            len_blocks: 1234,
            capacity_blocks: 16384,
            low_watermark_percent: 20,
            low_watermark_blocks: 3276,
            refill_wanted: true,
        },
        storage_cache: StorageCacheStatus {
            len_blocks: 131_000,
            capacity_blocks: 131_072,
        },
        sources: Source::ALL
            .iter()
            .enumerate()
            .map(|(i, &source)| SourceStatus {
                source,
                enabled: source.bit() & 12 != 0,
                samples: 1000 + i as u64,
                credited_bits: 2000 + i as u64,
                health: [
                    None,
                    None,
                    Some(HealthState::Quarantined),
                    Some(HealthState::Healthy),
                ][i],
                health_failures: i as u64,
            })
            .collect(),
        external: ExternalStatus {
            lost: true,
            seconds_since_last: Some(75),
            lost_timeout_seconds: 60,
        },
        output: OutputStatus {
            blocks_emitted: 5000,
            bytes_forwarded: 160_000,
            ..OutputStatus::default()
        },
        api: None,
    }
}

pub fn token() -> ApiToken {
    ApiToken::from_bytes(TOKEN.as_bytes()).unwrap()
}

/// Starts a server on 127.0.0.1:0 with the token and a 1 KiB body limit.
pub fn start(pool: Arc<FakePool>, with_token: bool) -> (ApiServer, SocketAddr) {
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    if with_token {
        cfg.token = Some(token());
    }
    cfg.body_limit = 1024;
    cfg.request_timeout = Duration::from_secs(2);
    cfg.workers = 2;
    let server = ApiServer::start(cfg, pool).unwrap();
    let ListenAddr::Tcp(addr) = *server.local_addr() else {
        panic!("not tcp")
    };
    (server, addr)
}

/// Sends raw bytes, reads the whole answer; returns (status, body).
pub fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    read_answer(&mut s)
}

pub fn read_answer(s: &mut impl Read) -> (u16, String) {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    parse_answer(&out)
}

pub fn parse_answer(out: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(out).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A POST add request with `body`, optionally authorized with `auth`.
pub fn post_add(body: &[u8], auth: Option<&str>) -> Vec<u8> {
    let mut req = format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}
