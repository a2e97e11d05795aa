//! A payload is the sender's bytes: floats, big integers, key order and spacing come back exactly
//! as sent, through every path (REST send, batch and WebSocket send in; browse, receive, topic
//! history and WebSocket push out), on both engines.

mod common;

use common::ws::{connect, subscribe, WAIT};
use common::{Broker, EngineKind};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Numbers a `f64` cannot hold exactly, keys out of order, and spacing.
const PAYLOAD: &str =
    r#"{"z": 0.10218761674816845, "big": 123456789012345678901234567890, "a": [1.0, -0e0, 1E+2]}"#;

/// A response body as text (a parsed `Value` would round the very numbers under test).
async fn get_text(b: &Broker, agent: &str, path: &str) -> String {
    let r = b
        .http
        .get(b.url(path))
        .bearer_auth(b.token(agent))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    r.text().await.expect("body")
}

async fn post_text(b: &Broker, agent: &str, path: &str, body: String) -> (u16, String) {
    let r = b
        .http
        .post(b.url(path))
        .bearer_auth(b.token(agent))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

fn count(haystack: &str) -> usize {
    haystack.matches(PAYLOAD).count()
}

async fn payloads_round_trip_byte_exact(engine: EngineKind) {
    let b = Broker::start(engine);
    // A live session sees the pushes with the exact bytes too.
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;

    let one = format!(r#"{{"to": "mailbox:bob", "payload": {PAYLOAD}}}"#);
    let (s, body) = post_text(&b, "alice", "/v1/messages", one).await;
    assert_eq!(s, 201, "{body}");
    let batch = format!(r#"{{"messages": [{{"to": "mailbox:bob", "payload": {PAYLOAD}}}]}}"#);
    let (s, body) = post_text(&b, "alice", "/v1/messages/batch", batch).await;
    assert_eq!(s, 201, "{body}");
    let frame = format!(
        r#"{{"op": "send", "ref": "w", "message": {{"to": "mailbox:bob", "payload": {PAYLOAD}}}}}"#
    );
    ws.send(Message::Text(frame.into()))
        .await
        .expect("send frame");

    // Three pushes and the `ok` of the WebSocket send, in some order: every push exact.
    let mut pushes = 0;
    while pushes < 3 {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        let text = m.into_text().expect("text frame").to_string();
        if text.contains(r#""type":"message""#) {
            assert_eq!(count(&text), 1, "push: {text}");
            pushes += 1;
        }
    }

    let page = get_text(&b, "bob", "/v1/mailboxes/bob/messages").await;
    assert_eq!(count(&page), 3, "browse: {page}");
    let (s, got) = post_text(
        &b,
        "bob",
        "/v1/mailboxes/bob/receive",
        json!({"max": 10}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(count(&got), 3, "receive: {got}");

    let publish = format!(r#"{{"to": "topic:exact.numbers", "payload": {PAYLOAD}}}"#);
    let (s, body) = post_text(&b, "alice", "/v1/messages", publish).await;
    assert_eq!(s, 201, "{body}");
    let history = get_text(&b, "bob", "/v1/topics/exact.numbers/messages").await;
    assert_eq!(count(&history), 1, "history: {history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_payloads_round_trip_byte_exact() {
    payloads_round_trip_byte_exact(EngineKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_payloads_round_trip_byte_exact() {
    payloads_round_trip_byte_exact(EngineKind::Redis).await;
}
