//! Topic settings: history retention by length and by age, and `topics.auto_create = false`.

mod common;

use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

async fn publish(b: &Broker, from: &str, topic: &str, payload: Value) -> Value {
    let (s, v) = b
        .post(
            &b.token(from),
            "/v1/messages",
            &json!({"to": format!("topic:{topic}"), "payload": payload}),
        )
        .await;
    assert_eq!(s, 201, "publish to {topic}: {v}");
    v
}

async fn delete(b: &Broker, token: &str, path: &str) -> u16 {
    let r = b
        .http
        .delete(b.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE");
    r.status().as_u16()
}

async fn retention_by_length(b: &Broker) {
    let admin = b.admin_token("ops");
    let (s, v) = b
        .put(
            &admin,
            "/v1/topics/logs.app",
            &json!({"retention_max_len": 3}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["config"]["retention_max_len"], 3);
    for i in 1..=5 {
        publish(b, "alice", "logs.app", json!(i)).await;
    }
    let (_, h) = b.get(&admin, "/v1/topics/logs.app/messages").await;
    let payloads: Vec<&Value> = h["messages"]
        .as_array()
        .expect("msgs")
        .iter()
        .map(|m| &m["payload"])
        .collect();
    assert_eq!(
        payloads,
        [&json!(3), &json!(4), &json!(5)],
        "oldest dropped"
    );
    // Lowering the limit trims at once.
    let (s, _) = b
        .put(
            &admin,
            "/v1/topics/logs.app",
            &json!({"retention_max_len": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, info) = b.get(&admin, "/v1/topics/logs.app").await;
    assert_eq!(
        (&info["total"], info["last_seq"].as_str()),
        (&json!(1), Some("5"))
    );
}

/// Age retention needs a short trim interval, so each engine gets its own broker.
async fn retention_by_age(engine: EngineKind) {
    let b = Broker::start_with(engine, &[("MAILBOX__TOPICS__TRIM_INTERVAL_SECONDS", "1")]);
    let admin = b.admin_token("ops");
    let (s, v) = b
        .put(
            &admin,
            "/v1/topics/logs.short",
            &json!({"retention_seconds": 1}),
        )
        .await;
    assert_eq!((s, &v["config"]["retention_seconds"]), (201, &json!(1)));
    publish(&b, "alice", "logs.short", json!("old")).await;
    publish(&b, "alice", "logs.kept", json!("kept")).await;
    let start = std::time::Instant::now();
    loop {
        let (_, info) = b.get(&admin, "/v1/topics/logs.short").await;
        if info["total"] == 0 {
            break;
        }
        assert!(start.elapsed() < WAIT, "history not trimmed by age: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, info) = b.get(&admin, "/v1/topics/logs.short").await;
    assert_eq!(info["last_seq"], "1", "seqs keep counting");
    let (_, kept) = b.get(&admin, "/v1/topics/logs.kept").await;
    assert_eq!(kept["total"], 1, "the default (7 days) keeps it");
}

/// With `topics.auto_create = false`, topics must be created before anyone publishes.
async fn without_auto_create(engine: EngineKind) {
    let b = Broker::start_with(engine, &[("MAILBOX__TOPICS__AUTO_CREATE", "false")]);
    let body = json!({"to": "topic:alerts.disk", "payload": "full"});
    let (s, v) = b.post(&b.token("alice"), "/v1/messages", &body).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    assert_eq!(
        b.get(&b.token("alice"), "/v1/topics/alerts.disk").await.0,
        404
    );
    let admin = b.admin_token("ops");
    assert_eq!(
        b.put(&admin, "/v1/topics/alerts.disk", &json!({})).await.0,
        201
    );
    assert_eq!(
        b.put(&admin, "/v1/topics/alerts.disk", &json!({})).await.0,
        200
    );
    publish(&b, "alice", "alerts.disk", json!("full")).await;
    // Deleted again: publishing is refused again (the live topic actor does not recreate it).
    assert_eq!(delete(&b, &admin, "/v1/topics/alerts.disk").await, 204);
    let (s, _) = b.post(&b.token("alice"), "/v1/messages", &body).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_create_on_redis() {
    without_auto_create(EngineKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_create_on_memory() {
    without_auto_create(EngineKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_on_redis() {
    retention_by_age(EngineKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_on_memory() {
    retention_by_age(EngineKind::Memory).await;
}

both_engines!(retention_by_length);
