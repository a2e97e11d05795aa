//! At-least-once delivery for an agent that only uses WebSocket (SPEC section 6, "Acks over
//! WebSocket"): an unacked push comes back on its socket with the next attempt, an ack over the
//! socket settles it, after `max_attempts` it is a dead letter; a session that closes with
//! unacked pushes hands them to the next session (also on another node) or to `receive`.

mod common;

use common::ws::{connect, recv, send, subscribe, Ws, WAIT};
use common::{Broker, EngineKind};
use serde_json::{json, Value};

/// Ack timeout 1 s, backoff 200 ms, three attempts.
const FAST: &[(&str, &str)] = &[
    ("MAILBOX__DELIVERY__ACK_TIMEOUT_SECONDS", "1"),
    ("MAILBOX__DELIVERY__BACKOFF_BASE_MS", "200"),
    ("MAILBOX__DELIVERY__BACKOFF_MULTIPLIER", "1.0"),
    ("MAILBOX__DELIVERY__MAX_ATTEMPTS", "3"),
];

/// The next `message` frame (other frames are skipped), within the bound of `recv`.
async fn next_message(ws: &mut Ws) -> Value {
    loop {
        let f = recv(ws).await;
        if f["type"] == "message" {
            return f["message"].clone();
        }
    }
}

async fn send_acked(b: &Broker, to: &str) -> String {
    let v = b
        .send(
            "alice",
            to,
            json!({"payload": {"job": 1}, "require_ack": true}),
        )
        .await;
    v["id"].as_str().expect("id").to_owned()
}

async fn info(b: &Broker, name: &str) -> Value {
    let (s, v) = b
        .get(&b.token(name), &format!("/v1/mailboxes/{name}"))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn unacked_pushes_come_back_until_acked(engine: EngineKind) {
    let b = Broker::start_with(engine, FAST);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    let id = send_acked(&b, "bob").await;
    let first = next_message(&mut ws).await;
    assert_eq!(
        (first["id"].as_str(), first["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(
        info(&b, "bob").await["pending_acks"],
        1,
        "the push is in flight"
    );
    // Not acked: after the ack timeout and the backoff it is pushed again on the same socket.
    let second = next_message(&mut ws).await;
    assert_eq!(
        (second["id"].as_str(), second["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    assert_eq!(second["seq"], first["seq"]);
    send(
        &mut ws,
        json!({"op": "ack", "ref": "a", "mailbox": "bob", "id": id}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (ok["type"].as_str(), ok["status"].as_str()),
        (Some("ok"), Some("acked")),
        "{ok}"
    );
    assert_eq!(ok["attempt"], 2);
    assert_eq!(info(&b, "bob").await["pending_acks"], 0);
    // Settled: nothing more comes (a ping answers before any redelivery could).
    let quiet =
        tokio::time::timeout(std::time::Duration::from_secs(3), next_message(&mut ws)).await;
    assert!(
        quiet.is_err(),
        "an acked message is not pushed again: {quiet:?}"
    );
}

async fn never_acked_becomes_a_dead_letter(engine: EngineKind) {
    let b = Broker::start_with(engine, FAST);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    let id = send_acked(&b, "bob").await;
    for attempt in 1..=3 {
        let m = next_message(&mut ws).await;
        assert_eq!(
            (m["id"].as_str(), m["attempt"].as_u64()),
            (Some(id.as_str()), Some(attempt))
        );
    }
    // No event tells a client that a message was buried: poll, bounded.
    let admin = b.admin_token("ops");
    let started = std::time::Instant::now();
    let v = loop {
        let (s, v) = b.get(&admin, "/v1/dead-letters?mailbox=bob").await;
        assert_eq!(s, 200, "{v}");
        if v["dead_letters"].as_array().is_some_and(|d| !d.is_empty()) {
            break v;
        }
        assert!(started.elapsed() < WAIT, "no dead letter after {WAIT:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(v["dead_letters"].as_array().map(Vec::len), Some(1), "{v}");
    let d = &v["dead_letters"][0];
    assert_eq!(
        (d["reason"].as_str(), d["attempts"].as_u64()),
        (Some("max_attempts"), Some(3)),
        "{d}"
    );
    assert_eq!(d["message"]["id"], id.as_str());
}

async fn a_closed_sessions_unacked_push_goes_to_the_next_session(a: &Broker, b: &Broker) {
    let mut first = connect(a, "bob").await;
    subscribe(&mut first, "mailbox:bob", "latest").await;
    let id = send_acked(a, "bob").await;
    let m = next_message(&mut first).await;
    assert_eq!(m["attempt"], 1);
    let last_seq = m["seq"].as_str().expect("seq").to_owned();
    drop(first);
    // The agent comes back (on node `b`) resuming after the seq it saw: the unacked message is
    // redelivered there once its ack timeout has passed.
    let mut again = connect(b, "bob").await;
    subscribe(&mut again, "mailbox:bob", &last_seq).await;
    let m = next_message(&mut again).await;
    assert_eq!(
        (m["id"].as_str(), m["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    send(
        &mut again,
        json!({"op": "ack", "ref": "a", "mailbox": "bob", "id": id}),
    )
    .await;
    assert_eq!(recv(&mut again).await["status"], "acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_unacked_pushes_come_back_until_acked() {
    unacked_pushes_come_back_until_acked(EngineKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_unacked_pushes_come_back_until_acked() {
    unacked_pushes_come_back_until_acked(EngineKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_never_acked_becomes_a_dead_letter() {
    never_acked_becomes_a_dead_letter(EngineKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_never_acked_becomes_a_dead_letter() {
    never_acked_becomes_a_dead_letter(EngineKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_a_closed_sessions_unacked_push_goes_to_the_next_session() {
    let b = Broker::start_with(EngineKind::Memory, FAST);
    a_closed_sessions_unacked_push_goes_to_the_next_session(&b, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_two_nodes_a_closed_sessions_unacked_push_goes_to_a_session_on_the_other_node() {
    let a = Broker::start_with(EngineKind::Redis, FAST);
    let b = Broker::another_node_with(&a, FAST);
    a_closed_sessions_unacked_push_goes_to_the_next_session(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_closed_sessions_unacked_push_goes_to_receive() {
    let b = Broker::start_with(EngineKind::Redis, FAST);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    let id = send_acked(&b, "bob").await;
    assert_eq!(next_message(&mut ws).await["attempt"], 1);
    drop(ws);
    let (s, v) = b
        .post(
            &b.token("bob"),
            "/v1/mailboxes/bob/receive",
            &json!({"max": 1, "wait_seconds": 20}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let m = &v["messages"][0];
    assert_eq!(
        (m["id"].as_str(), m["attempt"].as_u64()),
        (Some(id.as_str()), Some(2)),
        "{v}"
    );
}
