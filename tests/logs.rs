//! Logs (SPEC section 11): every HTTP request and every WebSocket op logs under a request id
//! (the HTTP one is returned as `X-Request-Id`), and message logs carry the message id and the
//! correlation id. Read from the real binary's JSON logs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, mint, wait_listening, SECRET};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_websocket_ops_log_with_a_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .arg("serve")
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("MAILBOX__STORAGE__ENGINE", "memory")
        .env("MAILBOX__AUTH__JWT_SECRET", SECRET)
        .env("MAILBOX__LOG__FORMAT", "json")
        .env("MAILBOX__LOG__LEVEL", "debug")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the broker");
    assert!(
        wait_listening(&mut child, port, "the broker to listen"),
        "the broker exited: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // HTTP: the answer's X-Request-Id is the id the request's log lines carry.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/messages"))
        .bearer_auth(mint("alice", &[], 300))
        .json(&json!({"to": "mailbox:bob", "payload": "hi", "correlation_id": "corr-42"}))
        .send()
        .await
        .expect("send");
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id")
        .to_owned();
    let sent: Value = r.json().await.expect("receipt");
    let message_id = sent["id"].as_str().expect("id").to_owned();

    // WebSocket: one send op with a ref.
    let url = format!(
        "ws://127.0.0.1:{port}/v1/ws?token={}",
        mint("carol", &[], 300)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let frame = json!({"op": "send", "ref": "r-7", "message": {"to": "mailbox:bob", "payload": 1}});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send frame");
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            if t.contains("\"r-7\"") {
                break;
            }
        }
    }
    drop(ws);

    child.kill().ok();
    child.wait().ok();
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&request_id) && l.contains("/v1/messages")),
        "no log line of the request {request_id}:\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&message_id) && l.contains("corr-42") && l.contains(&request_id)),
        "no message log with message id, correlation id and request id:\n{text}"
    );
    let ws_op = lines
        .iter()
        .find(|l| l.contains("\"ws_op\"") && l.contains("\"op\":\"send\"") && l.contains("r-7"))
        .unwrap_or_else(|| panic!("no WebSocket op log:\n{text}"));
    assert!(ws_op.contains("request_id"), "{ws_op}");
}

/// Every answer carries `X-Request-Id` — errors, the fallback, open routes — and a caller's own
/// short id is kept (so a proxy's logs and the broker's line up); a malformed one is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_and_a_callers_id_is_kept() {
    let b = common::Broker::start(common::EngineKind::Memory);
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    for (method, path) in [
        (reqwest::Method::GET, "/v1/mailboxes/bob"),
        (reqwest::Method::GET, "/no/such/route"),
        (reqwest::Method::PUT, "/v1/dead-letters"),
        (reqwest::Method::GET, "/health/live"),
        (reqwest::Method::GET, "/metrics"),
    ] {
        let r = b
            .http
            .request(method.clone(), b.url(path))
            .send()
            .await
            .expect("request");
        assert!(
            id_of(&r).is_some_and(|id| id.len() == 26),
            "{method} {path}"
        );
    }
    let token = b.token("alice");
    let r = b
        .http
        .get(b.url("/v1/mailboxes/alice"))
        .bearer_auth(&token)
        .header("x-request-id", "proxy-7f3a:retry.2")
        .send()
        .await
        .expect("request");
    assert_eq!(id_of(&r).as_deref(), Some("proxy-7f3a:retry.2"));
    let r = b
        .http
        .get(b.url("/v1/mailboxes/alice"))
        .bearer_auth(&token)
        .header("x-request-id", "has space and \"quotes\"")
        .send()
        .await
        .expect("request");
    let id = id_of(&r).expect("an id");
    assert!(id.len() == 26 && !id.contains(' '), "{id}");
}
