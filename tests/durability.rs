//! Redis-only guarantees: accepted messages survive a broker crash; a dead Redis gives 503s and
//! an honest readiness probe, and service comes back by itself.

mod common;

use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_a_broker_crash() {
    let mut b = Broker::start(EngineKind::Redis);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(b.send("alice", "bob", json!({"payload": i})).await["id"].clone());
    }
    b.crash_and_restart();
    let (s, page) = b
        .get(&b.token("bob"), "/v1/mailboxes/bob/messages?limit=100")
        .await;
    assert_eq!(s, 200);
    let got: Vec<_> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(got, ids);
    // Seqs keep increasing after the restart.
    let r = b.send("alice", "bob", json!({"payload": "after"})).await;
    assert_eq!(r["seq"], "51");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_without_a_spool_means_503_and_honest_readiness_then_recovery() {
    let mut b = Broker::start_with(EngineKind::Redis, &[("MAILBOX__SPOOL__MAX_BYTES", "0")]);
    b.send("alice", "bob", json!({"payload": "before"})).await;
    b.redis.as_mut().expect("redis").kill();

    let (s, v) = common::status_json(
        b.http
            .get(b.url("/health/ready"))
            .send()
            .await
            .expect("ready"),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert!(
        v["reason"].as_str().is_some_and(|r| r.contains("storage")),
        "{v}"
    );
    let r = b
        .http
        .post(b.url("/v1/messages"))
        .bearer_auth(b.token("alice"))
        .json(&json!({"to": "mailbox:bob", "payload": "during"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (_, v) = common::status_json(r).await;
    assert_eq!(v["error"]["code"], "unavailable");
    let (s, _) = common::status_json(
        b.http
            .get(b.url("/health/live"))
            .send()
            .await
            .expect("live"),
    )
    .await;
    assert_eq!(s, 200, "the process itself is alive");

    b.redis.as_mut().expect("redis").restart();
    wait_ready_again(&b);
    b.send("alice", "bob", json!({"payload": "after"})).await;
    let (_, page) = b.get(&b.token("bob"), "/v1/mailboxes/bob/messages").await;
    let payloads: Vec<_> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(
        payloads,
        vec![json!("before"), json!("after")],
        "AOF kept the message; the refused one was not stored"
    );
}

/// Every Redis connection breaks when Redis restarts. Once the broker is ready again, each call
/// gets a working connection: none is handed a dead one (the broker keeps `redis.pool_size`
/// shared connections and drops them all when one breaks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_no_call_gets_a_dead_connection() {
    let mut b = Broker::start_with(
        EngineKind::Redis,
        &[
            ("MAILBOX__SPOOL__MAX_BYTES", "0"),
            ("MAILBOX__REDIS__POOL_SIZE", "4"),
        ],
    );
    // More calls than connections, so every connection is made and in use.
    for i in 0..12 {
        b.send("alice", "bob", json!({"payload": i})).await;
    }
    b.redis.as_mut().expect("redis").restart();
    wait_ready_again(&b);
    // One broken connection is found by the first call that uses it; from then on every call
    // (they take the connections in turn) succeeds.
    let mut failed = 0;
    for i in 0..12 {
        let (s, _) = b
            .post(
                &b.token("alice"),
                "/v1/messages",
                &json!({"to": "mailbox:bob", "payload": format!("after {i}")}),
            )
            .await;
        if s != 201 {
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} of 12 sends after the restart failed");
    assert_eq!(b.messages("bob").await.len(), 12 + 12 - failed);
}

/// Waits (at most 15 s) for `/health/ready` to answer 200 after Redis came back.
fn wait_ready_again(b: &Broker) {
    let (http, url) = (b.http.clone(), b.url("/health/ready"));
    let rt = tokio::runtime::Handle::current();
    common::wait_until(
        Duration::from_secs(15),
        "readiness after Redis returns",
        || {
            tokio::task::block_in_place(|| {
                rt.block_on(async {
                    http.get(&url)
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false)
                })
            })
        },
    );
}
