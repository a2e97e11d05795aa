//! The registry starts a mailbox actor on first use and retires idle ones, so a million
//! mailboxes do not mean a million live actors; a retired mailbox works again on next use.

mod common;

use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::json;

fn live_mailbox_actors(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("mailbox_actors{kind=\"mailbox\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mailbox_actors_are_retired_and_restart_on_use() {
    let b = Broker::start_with(
        EngineKind::Redis,
        &[("MAILBOX__SERVER__ACTOR_IDLE_SECONDS", "1")],
    );
    for i in 0..5 {
        b.send("alice", &format!("box{i}"), json!({"payload": i}))
            .await;
    }
    let metrics = |b: &Broker| {
        let (http, url) = (b.http.clone(), b.url("/metrics"));
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(move || {
            rt.block_on(async move {
                http.get(url)
                    .send()
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("text")
            })
        })
    };
    assert_eq!(live_mailbox_actors(&metrics(&b)), Some(5.0));
    common::wait_until(Duration::from_secs(10), "idle actors to retire", || {
        live_mailbox_actors(&metrics(&b)) == Some(0.0)
    });
    // Nothing was in the actors but queues: the data is all there, and the next send works.
    b.send("alice", "box0", json!({"payload": "again"})).await;
    assert_eq!(b.total("box0").await, 2);
    assert_eq!(live_mailbox_actors(&metrics(&b)), Some(1.0));
}
