//! Helpers of the delivery test suites (`tests/delivery.rs`, `tests/dead_letters.rs`,
//! `tests/batch.rs`): delivery settings, an engine matrix macro, and short REST calls.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::Broker;

/// Short timeouts so redelivery is quick: ack timeout 1 s, backoff 500 ms × 3^(attempt-1),
/// three attempts.
pub const FAST: &[(&str, &str)] = &[
    ("MAILBOX__DELIVERY__ACK_TIMEOUT_SECONDS", "1"),
    ("MAILBOX__DELIVERY__BACKOFF_BASE_MS", "500"),
    ("MAILBOX__DELIVERY__BACKOFF_MULTIPLIER", "3.0"),
    ("MAILBOX__DELIVERY__BACKOFF_MAX_MS", "10000"),
    ("MAILBOX__DELIVERY__MAX_ATTEMPTS", "3"),
];

/// Defaults (30 s ack timeout): nothing is redelivered while a test runs.
pub const SLOW: &[(&str, &str)] = &[];

/// Runs each listed test against both engines (Redis also as a cluster), with its delivery
/// settings.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident: $env:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start_with($crate::common::EngineKind::Redis, super::$env);
                    super::$name(&b).await;
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start_with($crate::common::EngineKind::Memory, super::$env);
                    super::$name(&b).await;
                }
            )*
        }
        mod on_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start_with($crate::common::EngineKind::Cluster, super::$env);
                    super::$name(&b).await;
                }
            )*
        }
    };
}

/// Polls `f` every 50 ms until it answers `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /v1/mailboxes/{mailbox}/receive` as `agent`; asserts 200.
pub async fn receive(b: &Broker, agent: &str, mailbox: &str, max: u64, wait: u64) -> Vec<Value> {
    let (s, v) = b
        .post(
            &b.token(agent),
            &format!("/v1/mailboxes/{mailbox}/receive"),
            &json!({"max": max, "wait_seconds": wait}),
        )
        .await;
    assert_eq!(s, 200, "receive: {v}");
    v["messages"].as_array().expect("messages").clone()
}

pub async fn settle(
    b: &Broker,
    agent: &str,
    mailbox: &str,
    id: &Value,
    op: &str,
    body: Value,
) -> (u16, Value) {
    let id = id.as_str().expect("id");
    b.post(
        &b.token(agent),
        &format!("/v1/mailboxes/{mailbox}/messages/{id}/{op}"),
        &body,
    )
    .await
}

/// Dead letters listed by an admin with `query`.
pub async fn dead_letters(b: &Broker, query: &str) -> Vec<Value> {
    let (s, v) = b
        .get(&b.admin_token("ops"), &format!("/v1/dead-letters?{query}"))
        .await;
    assert_eq!(s, 200, "{v}");
    v["dead_letters"].as_array().expect("dead_letters").clone()
}

pub async fn pending_acks(b: &Broker, mailbox: &str) -> u64 {
    let (_, v) = b
        .get(&b.token(mailbox), &format!("/v1/mailboxes/{mailbox}"))
        .await;
    v["pending_acks"].as_u64().expect("pending_acks")
}

pub fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
