//! The real `entropyd run` as a remote-feeding server: refusals to start
//! in clear off loopback (exit 2), TLS with a token, audit lines on stderr
//! and their counts in `status`, SIGHUP reloading the certificate without
//! losing the pool, and the feeder-inactive / external-lost records.
//! Certificates are made at test time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_common;
mod tls_common;

use std::process::Command;

use e2e_common::*;
use entropyd::api::{self, AddResponse};
use entropyd::backend::StatusSnapshot;
use tls_common::*;

fn add_head(len: usize, token: &str) -> Vec<u8> {
    format!(
        "POST /entropy/external-pool?action=add HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes()
}

fn add_request(data: &[u8], token: &str) -> Vec<u8> {
    let body = api::encode_add_body(data);
    let mut req = add_head(body.len(), token);
    req.extend_from_slice(&body);
    req
}

fn status_request() -> Vec<u8> {
    format!("GET /entropy/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
        .into_bytes()
}

#[test]
fn off_loopback_in_clear_or_without_a_credential_is_exit_2() {
    let env = Env::new();
    let pki = Pki::new("refuse");
    let (cert, key) = pki.server("server");
    let token_arg = format!("--token-file={}", env.token.display());
    let cert_arg = format!("--tls-cert={}", cert.display());
    let key_arg = format!("--tls-key={}", key.display());
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["--listen=0.0.0.0:0", "--sources=8", &token_arg],
            "without TLS",
        ),
        (
            vec!["--listen=[::]:0", "--sources=8", &cert_arg, &key_arg],
            "without a credential",
        ),
        (
            vec!["--listen=127.0.0.1:0", "--sources=8", &cert_arg],
            "--tls-key",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["run"];
        all.extend_from_slice(&args);
        let out = env.cmd(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Nothing was started: no state directory was made.
    assert!(!env.state.exists());
}

#[test]
fn tls_daemon_audits_refusals_and_reloads_on_sighup_keeping_the_pool() {
    let env = Env::new();
    env.set(&["--storage-cache-size=0"]);
    let pki = Pki::new("remote");
    let (cert, key) = pki.server("server");
    let d = Daemon::start_on(
        &env.state,
        "0.0.0.0:0",
        &[
            "--sources=8",
            &format!("--token-file={}", env.token.display()),
            &format!("--tls-cert={}", cert.display()),
            &format!("--tls-key={}", key.display()),
        ],
    );
    let client = client_config(&pki.ca_pem, None);
    // Fill the pool past its start-up window with authorized adds.
    let mut available = 0;
    for _ in 0..4 {
        let (status, body) =
            tls_request(&client, d.addr, &add_request(&random_bytes(65536), TOKEN)).unwrap();
        assert_eq!(status, 200, "{body}");
        let add: AddResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(add.capacity, 512 * 1024);
        assert_eq!(add.inactive_source_timeout, 60);
        available = add.currently_available;
    }
    assert!(available > 0);
    // A wrong token: 401, nothing credited, an audit line with the peer.
    let (status, _) = tls_request(
        &client,
        d.addr,
        &add_request(&random_bytes(4096), "wrong-token-0123456789abcdef"),
    )
    .unwrap();
    assert_eq!(status, 401);
    wait_until("the audit line", || {
        d.log_text().lines().any(|l| {
            l.contains("entropyd: audit event=write-refused status=401 peer=127.0.0.1:")
                && l.contains("reason=wrong-token")
        })
    });
    // Off loopback, status needs the token too; it counts the record.
    let get_status = |want: u16| {
        let (status, body) = tls_request(&client, d.addr, &status_request()).unwrap();
        assert_eq!(status, want, "{body}");
        serde_json::from_str::<StatusSnapshot>(&body).unwrap()
    };
    let st = get_status(200);
    let api = st.api.unwrap();
    assert!(api.tls);
    assert_eq!(api.audit.write_refused, 1);
    let before = st.memory_cache.len_blocks;
    let first = server_cert(&client, d.addr);

    // SIGHUP with a new pair: reloaded, the pool kept.
    let (cert2, key2) = pki.server("next");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    let pid = d.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the reload", || {
        d.log_text().contains("TLS certificate and key reloaded")
    });
    let second = server_cert(&client, d.addr);
    assert_ne!(first, second);
    // A bad pair (a certificate without its key): logged, the old one kept.
    let (cert3, _) = pki.server("third");
    std::fs::copy(&cert3, &cert).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the refused reload", || {
        d.log_text().contains("TLS reload failed")
    });
    assert_eq!(server_cert(&client, d.addr), second);
    let st = get_status(200);
    assert!(
        st.memory_cache.len_blocks >= before,
        "the pool survived the reloads: {} < {before}",
        st.memory_cache.len_blocks
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn feeder_inactive_and_external_lost_are_audited_and_recovered() {
    let env = Env::new();
    env.set(&[
        "--storage-cache-size=0",
        "--external-entropy-lost-timeout=2",
    ]);
    let d = env.start(&[
        "--sources=8",
        &format!("--token-file={}", env.token.display()),
    ]);
    wait_until("inactive and lost", || {
        let log = d.log_text();
        log.contains("entropyd: audit event=feeder-inactive")
            && log.contains("entropyd: audit event=external-lost")
    });
    let st = d.status();
    let api = st.api.unwrap();
    assert!(api.feeder_inactive);
    assert_eq!(api.audit.external_lost, 1);
    assert!(st.external.lost);
    // Feeding again: the feeder is back and external recovers.
    let out = env.cmd_stdin(
        &[
            "submit",
            &d.listen(),
            &format!("--token-file={}", env.token.display()),
        ],
        &random_bytes(8192),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until("active and recovered", || {
        let log = d.log_text();
        log.contains("entropyd: audit event=feeder-active")
            && log.contains("entropyd: audit event=external-recovered")
    });
    // (Counts only: with a 2 s timeout it may be lost again by now.)
    let api = d.status().api.unwrap();
    assert!(api.audit.external_recovered >= 1);
    assert!(api.audit.feeder_active >= 1);
    // `status` shows the last client call and the last entropy apart.
    let out = env.cmd(&["status", &d.listen()]);
    let shown = text(&out.stdout);
    assert!(shown.contains("client calls   last call"), "{shown}");
    assert!(shown.contains("last entropy"), "{shown}");
    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}
