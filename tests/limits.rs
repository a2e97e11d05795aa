//! Per-agent send rates: over the bucket answers 429 `rate_limited` with `Retry-After`, stores
//! nothing, and other agents are unaffected.

mod common;

use common::{Broker, EngineKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_is_429_and_stores_nothing() {
    let b = Broker::start_with(
        EngineKind::Memory,
        &[
            ("MAILBOX__LIMITS__RATE_PER_SECOND", "1"),
            ("MAILBOX__LIMITS__RATE_BURST", "3"),
        ],
    );
    for i in 0..3 {
        b.send("alice", "bob", json!({"payload": i})).await;
    }
    let r = b
        .http
        .post(b.url("/v1/messages"))
        .bearer_auth(b.token("alice"))
        .json(&json!({"to": "mailbox:bob", "payload": "one too many"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some_and(|v| v
        .to_str()
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s >= 1)));
    let (_, v) = common::status_json(r).await;
    assert_eq!(v["error"]["code"], "rate_limited");
    assert_eq!(b.total("bob").await, 3);
    // Another agent has its own bucket.
    b.send("carol", "bob", json!({"payload": "fine"})).await;
}
