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

/// Two nodes on one Redis share each agent's rate: with per-node buckets the agent would get
/// the burst twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_rate() {
    let limits = [
        ("MAILBOX__LIMITS__RATE_PER_SECOND", "1"),
        ("MAILBOX__LIMITS__RATE_BURST", "6"),
    ];
    let a = Broker::start_with(EngineKind::Redis, &limits);
    let b = Broker::another_node_with(&a, &limits);
    let token = a.token("alice");
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..12 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, v) = node
            .post(
                &token,
                "/v1/messages",
                &json!({"to": "mailbox:bob", "payload": i}),
            )
            .await;
        match status {
            201 => accepted += 1,
            429 => {
                assert_eq!(v["error"]["code"], "rate_limited");
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    // The burst (6), plus at most what one second of refill adds while the test runs.
    assert!((6..=8).contains(&accepted), "accepted {accepted}");
    assert_eq!(accepted + refused, 12);
    assert_eq!(a.total("bob").await, accepted);
}

/// Daily quotas: the default cap, a role's own cap, and what the refused sender sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_quotas_per_role() {
    for engine in [EngineKind::Memory, EngineKind::Redis] {
        let b = Broker::start_with(
            engine,
            &[
                ("MAILBOX__QUOTAS__MESSAGES_PER_DAY", "2"),
                ("MAILBOX__QUOTAS__ROLES__VIP__MESSAGES_PER_DAY", "4"),
            ],
        );
        for i in 0..2 {
            b.send("alice", "bob", json!({"payload": i})).await;
        }
        let (status, v) = b
            .post(
                &b.token("alice"),
                "/v1/messages",
                &json!({"to": "mailbox:bob", "payload": "third"}),
            )
            .await;
        assert_eq!(status, 429, "{v}");
        assert_eq!(v["error"]["code"], "rate_limited");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("daily quota of 2 messages"), "{message}");
        let wait = v["error"]["details"]["retry_after_seconds"].as_u64();
        assert!(wait.is_some_and(|s| (1..=86_400).contains(&s)), "{v}");
        let vip = common::mint("vera", &["vip"], 3600);
        for i in 0..4 {
            let (status, v) = b
                .post(
                    &vip,
                    "/v1/messages",
                    &json!({"to": "mailbox:bob", "payload": i}),
                )
                .await;
            assert_eq!(status, 201, "{engine:?} {i}: {v}");
        }
        let (status, _) = b
            .post(
                &vip,
                "/v1/messages",
                &json!({"to": "mailbox:bob", "payload": "5th"}),
            )
            .await;
        assert_eq!(status, 429);
        assert_eq!(b.total("bob").await, 6);
    }
}
