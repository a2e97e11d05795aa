//! The supervision drill (SPEC section 11): the writer of one mailbox panics in the middle of a
//! group commit (debug builds: `MAILBOX_DRILL_PANIC_MAILBOX`). It is restarted, nothing accepted
//! is lost or duplicated, and the other mailboxes never notice.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Broker, EngineKind};
use serde_json::{json, Value};

/// Sends to `to` with an idempotency key until accepted (bounded); answers the receipt and how
/// many tries it took.
async fn send_until_accepted(b: &Broker, to: &str, i: usize) -> (Value, usize) {
    let start = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let r = b
            .http
            .post(b.url("/v1/messages"))
            .bearer_auth(b.token("alice"))
            .header("Idempotency-Key", format!("{to}-{i}"))
            .json(&json!({"to": format!("mailbox:{to}"), "payload": i}))
            .send()
            .await
            .expect("send");
        let (s, v) = common::status_json(r).await;
        if s == 201 {
            return (v, tries);
        }
        assert_eq!(s, 503, "a failed write is a 503, never a 500: {v}");
        assert!(start.elapsed() < Duration::from_secs(20), "never accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_panics_mid_batch_is_restarted_and_nothing_is_lost() {
    let b = std::sync::Arc::new(Broker::start_with(
        EngineKind::Redis,
        &[("MAILBOX_DRILL_PANIC_MAILBOX", "crashy")],
    ));
    let mut tasks = Vec::new();
    for to in ["crashy", "calm"] {
        for w in 0..4 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (w..40).step_by(4) {
                    let (v, tries) = send_until_accepted(&b, to, i).await;
                    out.push((to, i, v["id"].clone(), tries));
                }
                out
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.expect("sender"));
    }
    assert!(
        results
            .iter()
            .filter(|(to, ..)| *to == "calm")
            .all(|(.., tries)| *tries == 1),
        "the other mailbox never noticed"
    );
    for to in ["crashy", "calm"] {
        let msgs = b.messages(to).await;
        let ids: HashSet<&Value> = msgs.iter().map(|m| &m["id"]).collect();
        assert_eq!(msgs.len(), 40, "{to}: each accepted message exactly once");
        assert_eq!(ids.len(), 40);
        for (_, _, id, _) in results.iter().filter(|(t, ..)| *t == to) {
            assert!(ids.contains(id), "{to}: accepted {id} is stored");
        }
    }
    // The restarted writer works.
    let r = b.send("alice", "crashy", json!({"payload": "after"})).await;
    assert_eq!(r["seq"], "41");
}
