//! `entropyd status` and `entropyd submit` against a real daemon that
//! listens only on TLS (`run --tls-cert/--tls-key[/--tls-client-ca]`) on
//! 127.0.0.1, with certificates made at test time (rcgen; no key is ever
//! committed): the status is the pool's own (checked against a raw rustls
//! request), submitted bytes show in it, and each TLS failure (untrusted
//! CA, wrong host name, a client certificate asked for) is a clear error,
//! exit 1, with nothing sent. Also: a token never goes in clear off
//! loopback, and the TLS flags are checked before anything is called.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_common;
mod tls_common;

use std::path::Path;
use std::process::Output;

use e2e_common::{Daemon, Env, TOKEN, random_bytes, text};
use tls_common::{Pki, client_config, tls_request};

/// A daemon serving its API only over TLS on 127.0.0.1, external source
/// only, draining to a sink file; `client_ca` asks every client for a
/// certificate from that CA.
fn tls_daemon(env: &Env, cert: &Path, key: &Path, client_ca: Option<&Path>) -> Daemon {
    env.set(&["--memory-cache-size=64", "--storage-cache-size=0"]);
    let mut args = vec![
        "--sources=8".to_owned(),
        format!("--token-file={}", env.token.display()),
        format!("--tls-cert={}", cert.display()),
        format!("--tls-key={}", key.display()),
        format!("--sink={}", env.path("sink").display()),
    ];
    if let Some(ca) = client_ca {
        args.push(format!("--tls-client-ca={}", ca.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.start(&args)
}

fn https(d: &Daemon) -> String {
    format!("--listen=https://127.0.0.1:{}", d.addr.port())
}

fn arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

/// `status --json` parsed; fails the test when the command fails.
fn status_json(env: &Env, args: &[&str]) -> serde_json::Value {
    // --wait=0: the daemon listens already (an external-only daemon is
    // not "ready" before its first entropy; no need to wait for that).
    let mut all = vec!["status", "--json", "--wait=0"];
    all.extend_from_slice(args);
    let out = env.cmd(&all);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The status as a raw rustls client (calling "localhost") reads it.
fn raw_status(pki: &Pki, d: &Daemon) -> serde_json::Value {
    let request =
        format!("GET /entropy/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let (code, body) = tls_request(
        &client_config(&pki.ca_pem, None),
        d.addr,
        request.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn external_samples(status: &serde_json::Value) -> u64 {
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "external")
        .unwrap()["samples"]
        .as_u64()
        .unwrap()
}

/// `accepted N of M bytes`: N.
fn accepted(out: &Output) -> u64 {
    let said = text(&out.stdout);
    said.strip_prefix("accepted ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {said:?} ({})", text(&out.stderr)))
}

/// A failure with exit code `code` whose stderr holds every one of `want`.
fn assert_fails(out: &Output, code: i32, want: &[&str]) {
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{said}");
    for w in want {
        assert!(said.contains(w), "{w:?} not in {said}");
    }
}

#[test]
fn status_and_submit_reach_a_tls_only_daemon() {
    let env = Env::new();
    let pki = Pki::new("client-tls");
    let (cert, key) = pki.server("server");
    let d = tls_daemon(&env, &cert, &key, None);
    let listen = https(&d);
    let ca = arg("ca", &pki.ca_pem);
    let token = arg("token-file", &env.token);

    // The pool's state as a raw rustls client reads it.
    let raw = raw_status(&pki, &d);

    let before = status_json(&env, &[&listen, &ca]);
    assert_eq!(before["running"], true, "{before}");
    for field in ["version", "sources_mask"] {
        assert_eq!(before[field], raw[field], "{field}: {before} vs {raw}");
    }
    assert_eq!(
        before["memory_cache"]["capacity_blocks"], raw["memory_cache"]["capacity_blocks"],
        "{before}"
    );
    assert_eq!(external_samples(&before), external_samples(&raw));

    // submit over TLS with the token: the bytes show in the status.
    let data = random_bytes(1024);
    let out = env.cmd_stdin(&["submit", &listen, &ca, &token], &data);
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    let took = accepted(&out);
    assert!(took > 0, "{}", text(&out.stdout));
    let after = status_json(&env, &[&listen, &ca]);
    assert_eq!(
        external_samples(&after),
        external_samples(&before) + took,
        "{after}"
    );

    // The text view names the TLS address; `--tls-ca` is the same flag.
    let out = env.cmd(&[
        "status",
        "--wait=0",
        &listen,
        "--tls-ca",
        pki.ca_pem.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let at = format!(
        "daemon: running, API at https://127.0.0.1:{}",
        d.addr.port()
    );
    assert!(shown.starts_with(&at), "{shown}");

    // Found through the runtime file, which names the listener https://.
    let found = status_json(&env, &[&ca]);
    assert_eq!(found["running"], true, "{found}");
    assert_eq!(external_samples(&found), external_samples(&after));
    // ... where a client without --ca is told what it needs.
    assert_fails(
        &env.cmd(&["status", "--wait=0"]),
        2,
        &["is TLS", "--ca", "runtime file"],
    );
    // A plain client on the TLS port gets no status at all.
    let plain = format!("--listen=127.0.0.1:{}", d.addr.port());
    let out = env.cmd(&["status", "--wait=0", &plain]);
    assert_fails(&out, 1, &["the daemon listens on TLS", "https://"]);

    let (status, log) = d.stop();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn an_untrusted_or_misnamed_server_certificate_is_refused_clearly() {
    let env = Env::new();
    let pki = Pki::new("trusted");
    let rogue = Pki::new("rogue");
    // Issued by our CA for names other than the address called (the
    // test's own raw client calls it "localhost").
    let (cert, key) = pki.server_for("server", &["other.example", "localhost"]);
    let d = tls_daemon(&env, &cert, &key, None);
    let listen = https(&d);
    let token = arg("token-file", &env.token);

    // Another CA: not trusted. No fall-back to the state directory.
    let out = env.cmd(&["status", "--wait=0", &listen, &arg("ca", &rogue.ca_pem)]);
    assert_fails(&out, 1, &["not trusted", "--ca", "UnknownIssuer"]);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let out = env.cmd_stdin(
        &["submit", &listen, &arg("ca", &rogue.ca_pem), &token],
        &random_bytes(256),
    );
    assert_fails(&out, 1, &["not trusted"]);

    // Our CA, the wrong name.
    let ca = arg("ca", &pki.ca_pem);
    let out = env.cmd(&["status", "--wait=0", &listen, &ca]);
    assert_fails(&out, 1, &["wrong host name", "\"127.0.0.1\""]);
    let out = env.cmd_stdin(&["submit", &listen, &ca, &token], &random_bytes(256));
    assert_fails(&out, 1, &["wrong host name"]);

    // None of it reached the pool.
    let raw = raw_status(&pki, &d);
    assert_eq!(external_samples(&raw), 0, "{raw}");
}

#[test]
fn mutual_tls_with_and_without_the_client_certificate() {
    let env = Env::new();
    let pki = Pki::new("mtls");
    let (cert, key) = pki.server("server");
    let d = tls_daemon(&env, &cert, &key, Some(&pki.ca_pem));
    let listen = https(&d);
    let ca = arg("ca", &pki.ca_pem);
    let token = arg("token-file", &env.token);
    let (ccert, ckey) = pki.client_files("operator");
    let client = [arg("client-cert", &ccert), arg("client-key", &ckey)];

    // Without a client certificate: told that the daemon asks for one.
    let out = env.cmd(&["status", "--wait=0", &listen, &ca]);
    assert_fails(
        &out,
        1,
        &["asked for a client certificate", "--client-cert"],
    );
    let out = env.cmd_stdin(&["submit", &listen, &ca, &token], &random_bytes(256));
    assert_fails(&out, 1, &["asked for a client certificate"]);

    // A certificate from another CA: refused, and said so.
    let rogue = Pki::new("rogue");
    let (rcert, rkey) = rogue.client_files("intruder");
    let out = env.cmd(&[
        "status",
        "--wait=0",
        &listen,
        &ca,
        &arg("client-cert", &rcert),
        &arg("client-key", &rkey),
    ]);
    assert_fails(&out, 1, &["refused our client certificate"]);

    // With ours: the status, then a submit that shows in it.
    let before = status_json(&env, &[&listen, &ca, &client[0], &client[1]]);
    assert_eq!(external_samples(&before), 0, "{before}");
    let out = env.cmd_stdin(
        &["submit", &listen, &ca, &client[0], &client[1], &token],
        &random_bytes(512),
    );
    assert!(out.status.success(), "submit: {}", text(&out.stderr));
    let took = accepted(&out);
    assert!(took > 0);
    let after = status_json(&env, &[&listen, &ca, &client[0], &client[1]]);
    assert_eq!(external_samples(&after), took, "{after}");
}

#[test]
fn bad_addresses_and_tls_files_fail_before_any_call() {
    let env = Env::new();
    let pki = Pki::new("files");
    let token = arg("token-file", &env.token);
    // A token never goes in clear off loopback (192.0.2.1: TEST-NET-1,
    // never called: the refusal comes first).
    let out = env.cmd_stdin(&["submit", "--listen=192.0.2.1:8742", &token], b"abc");
    assert_fails(
        &out,
        2,
        &[
            "refusing to send the API token in clear",
            "https://192.0.2.1:8742",
        ],
    );
    let out = env.cmd(&["status", "--listen=192.0.2.1:8742", &token]);
    assert_fails(&out, 2, &["refusing to send the API token in clear"]);
    // https without --ca.
    let out = env.cmd(&["status", "--listen=https://127.0.0.1:1"]);
    assert_fails(&out, 2, &["give --ca"]);
    // An unreadable CA file, a CA file without certificates, a client key
    // that others can read.
    let missing = env.path("missing.pem");
    let out = env.cmd(&[
        "status",
        "--wait=0",
        "--listen=https://127.0.0.1:1",
        &arg("ca", &missing),
    ]);
    assert_fails(&out, 1, &["cannot read", "missing.pem"]);
    let empty = env.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let out = env.cmd_stdin(
        &[
            "submit",
            "--listen=https://127.0.0.1:1",
            &arg("ca", &empty),
            &token,
        ],
        b"abc",
    );
    assert_fails(&out, 2, &["empty.pem", "no PEM CA certificate"]);
    let (ccert, ckey) = pki.client_files("loose");
    std::fs::set_permissions(&ckey, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = env.cmd(&[
        "status",
        "--wait=0",
        "--listen=https://127.0.0.1:1",
        &arg("ca", &pki.ca_pem),
        &arg("client-cert", &ccert),
        &arg("client-key", &ckey),
    ]);
    assert_fails(&out, 2, &["loose-client.key", "group or others"]);
    // A bad address names the accepted forms.
    let out = env.cmd(&["status", "--listen=somewhere"]);
    assert_fails(&out, 2, &["https://HOST:PORT", "unix:/path"]);
}

#[test]
fn an_unspecified_address_from_the_runtime_file_asks_for_a_name() {
    // A TLS daemon on every address writes https://0.0.0.0:PORT in its
    // runtime file. The runtime file's pid must run: ours does.
    let env = Env::new();
    std::fs::create_dir(&env.state).unwrap();
    std::fs::set_permissions(
        &env.state,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        env.state.join("entropyd.runtime"),
        format!(
            "pid={}\nlisten=https://0.0.0.0:8743\nphase=ready\n",
            std::process::id()
        ),
    )
    .unwrap();
    let want = [
        "https://0.0.0.0:8743",
        "--listen=https://NAME:8743",
        "certificate",
        "runtime file",
        "entropyd.runtime",
    ];
    let out = env.cmd(&["status", "--wait=0"]);
    assert_fails(&out, 1, &want);
    let token = arg("token-file", &env.token);
    let out = env.cmd_stdin(&["submit", "--wait=0", &token], b"abc");
    assert_fails(&out, 1, &want);
    // Typed by the user, the same address stays invalid input.
    let out = env.cmd(&["status", "--wait=0", "--listen=https://0.0.0.0:8743"]);
    assert_fails(&out, 2, &["--listen=https://NAME:8743"]);
    let said = text(&out.stderr);
    assert!(!said.contains("runtime file"), "{said}");
}
