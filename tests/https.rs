//! HTTPS and WSS served by the broker itself (SPEC section 8, "Secure transport and data at
//! rest": `server.tls_cert_file`, `server.tls_key_file`), with certificates from a test CA made
//! here: REST and WebSocket work over TLS, the `mailbox` CLI talks to it with `--ca-file` /
//! `MAILBOX_CA_FILE`, a plain HTTP request to the TLS port gets no 2xx, and a rotated
//! certificate is served to new connections without a restart.

mod common;
#[path = "common/secure.rs"]
mod secure;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{mint, status_json};
use futures_util::{SinkExt, StreamExt};
use secure::{LoggedBroker, Pki};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// An HTTPS client that trusts exactly the CA in `ca`.
fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA pem")])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("https client")
}

fn ws_connector(ca: &Path) -> tokio_tungstenite::Connector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("CA cert")).expect("add CA");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_tungstenite::Connector::Rustls(Arc::new(cfg))
}

/// A broker (memory engine) serving TLS with `cert.pem`/`key.pem` in `dir`.
fn tls_broker(dir: &Path) -> LoggedBroker {
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    LoggedBroker::start(&[
        ("MAILBOX__STORAGE__ENGINE", "memory"),
        ("MAILBOX__SERVER__TLS_CERT_FILE", &cert),
        ("MAILBOX__SERVER__TLS_KEY_FILE", &key),
    ])
}

/// Issues a leaf of `pki` and moves it into place atomically (as a Secret update would).
fn install_leaf(pki: &Pki, dir: &Path, name: &str) {
    let (c, k) = pki.leaf_into(pki.dir.path(), name, name);
    std::fs::copy(&k, dir.join("key.pem.new")).expect("copy key");
    std::fs::copy(&c, dir.join("cert.pem.new")).expect("copy cert");
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).expect("rename key");
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).expect("rename cert");
}

fn https_url(b: &LoggedBroker, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", b.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websocket_work_over_tls_and_plain_http_gets_no_2xx() {
    let pki = Pki::new("listener");
    let dir = tempfile::tempdir().expect("tempdir");
    install_leaf(&pki, dir.path(), "first");
    let b = tls_broker(dir.path());
    let http = https_client(&pki.ca_pem);

    let (status, live) = status_json(
        http.get(https_url(&b, "/health/live"))
            .send()
            .await
            .expect("https GET"),
    )
    .await;
    assert_eq!((status, live["status"].as_str()), (200, Some("live")));

    // WSS: a subscriber gets a message sent over HTTPS.
    let url = format!(
        "wss://127.0.0.1:{}/v1/ws?token={}",
        b.port,
        mint("bob", &[], 300)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(ws_connector(&pki.ca_pem)),
    )
    .await
    .expect("wss connects");
    let sub = json!({"op": "subscribe", "ref": "s", "target": "mailbox:bob", "from": "latest"});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .expect("subscribe");
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("json frame");
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "ok" && v["ref"] == "s" {
                break;
            }
        }
    }
    let (status, receipt) = status_json(
        http.post(https_url(&b, "/v1/messages"))
            .bearer_auth(mint("alice", &[], 300))
            .json(&json!({"to": "mailbox:bob", "payload": "über TLS ✓"}))
            .send()
            .await
            .expect("https send"),
    )
    .await;
    assert_eq!(status, 201, "{receipt}");
    let pushed = loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("push in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == "message" {
                break v;
            }
        }
    };
    assert_eq!(pushed["message"]["id"], receipt["id"]);
    assert_eq!(pushed["message"]["payload"], "über TLS ✓");

    // Plain HTTP to the TLS port: never a 2xx (the TLS layer refuses it).
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match plain
        .get(format!("http://127.0.0.1:{}/health/live", b.port))
        .send()
        .await
    {
        Ok(r) => assert!(
            !r.status().is_success(),
            "plain HTTP got {} from the TLS port",
            r.status()
        ),
        Err(e) => assert!(!e.is_timeout(), "refused, not hung: {e}"),
    }
    // A client that does not trust the test CA (system roots) is refused.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let e = untrusting
        .get(https_url(&b, "/health/live"))
        .send()
        .await
        .expect_err("an unknown CA is not trusted");
    assert!(e.is_connect(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_and_listens_over_https_with_a_ca_file() {
    let pki = Pki::new("listener");
    let dir = tempfile::tempdir().expect("tempdir");
    install_leaf(&pki, dir.path(), "first");
    let b = tls_broker(dir.path());
    let base = https_url(&b, "");
    let ca = pki.ca_pem.display().to_string();

    // `listen` (WSS) with the CA from the environment.
    let mut listen = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .args(["listen", "--json", "--from", "beginning", "--url", &base])
        .env("MAILBOX_TOKEN", mint("bob", &[], 300))
        .env("MAILBOX_CA_FILE", &ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailbox listen");
    let out = listen.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // `send` (HTTPS) with --ca-file.
    let sent = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .args([
            "send",
            "--url",
            &base,
            "--ca-file",
            &ca,
            "--to",
            "mailbox:bob",
            "--text",
            "hello over https",
        ])
        .env("MAILBOX_TOKEN", mint("alice", &[], 300))
        .env_remove("MAILBOX_CA_FILE")
        .output()
        .expect("mailbox send");
    assert!(sent.status.success(), "{sent:?}");
    let receipt: Value = serde_json::from_slice(&sent.stdout).expect("receipt json");

    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("listen prints the message");
    let _ = listen.kill();
    let _ = listen.wait();
    let v: Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(v["id"], receipt["id"], "{line}");
    assert_eq!(v["payload"], "hello over https");

    // Without the CA the CLI fails clearly (the certificate is not trusted), exit non-zero.
    let refused = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .args(["health", "--url", &base])
        .env_remove("MAILBOX_CA_FILE")
        .output()
        .expect("mailbox health");
    assert!(!refused.status.success(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let old = Pki::new("old");
    let new = Pki::new("new");
    let dir = tempfile::tempdir().expect("tempdir");
    install_leaf(&old, dir.path(), "first");
    let b = tls_broker(dir.path());
    let (trusts_old, trusts_new) = (old.ca_pem.clone(), new.ca_pem.clone());
    // A fresh client each time: every probe is a new TLS handshake (no pooled connection).
    let live = |ca: &Path| {
        let c = https_client(ca);
        let url = https_url(&b, "/health/live");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(live(&trusts_old).await.expect("old cert served"), 200);
    assert!(
        live(&trusts_new).await.is_err(),
        "the new CA is not in use yet"
    );

    install_leaf(&new, dir.path(), "second");
    // The files are looked at again at most once a second, on a handshake.
    let start = Instant::now();
    loop {
        if let Ok(200) = live(&trusts_new).await {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the rotated certificate was not picked up; logs:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        live(&trusts_old).await.is_err(),
        "new handshakes no longer get the old certificate"
    );
    assert!(b.logs().contains("TLS certificate reloaded"));
}

#[test]
fn a_missing_certificate_stops_the_start_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .arg("serve")
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX__SERVER__BIND", "127.0.0.1:0")
        .env("MAILBOX__STORAGE__ENGINE", "memory")
        .env("MAILBOX__AUTH__JWT_SECRET", common::SECRET)
        .env("MAILBOX__SERVER__TLS_CERT_FILE", "/nonexistent/cert.pem")
        .env("MAILBOX__SERVER__TLS_KEY_FILE", "/nonexistent/key.pem")
        .output()
        .expect("run the broker");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.tls_cert_file"), "{stderr}");
}
