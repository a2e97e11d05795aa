//! The disk spool (SPEC section 4, "Accepted = durable"): while Redis is down direct sends are
//! answered 202 `spooled` and reach Redis in order, exactly once, when it is back — also across
//! a kill -9 of the broker; a full spool answers 503 and keeps nothing; retries with an
//! Idempotency-Key never make duplicates; browses of active mailboxes are served from the
//! node's cache meanwhile; SIGTERM loses nothing.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Broker, EngineKind};
use serde_json::{json, Value};

/// Sends a direct message; answers (status, body, Retry-After present, degraded header).
async fn send(b: &Broker, to: &str, payload: Value, key: Option<&str>) -> (u16, Value, bool) {
    let mut req = b
        .http
        .post(b.url("/v1/messages"))
        .bearer_auth(b.token("alice"))
        .json(&json!({"to": format!("mailbox:{to}"), "payload": payload}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.expect("send");
    let retry_after = r.headers().contains_key("retry-after");
    let (s, v) = common::status_json(r).await;
    (s, v, retry_after)
}

/// Polls `total` of `mailbox` until it is `n` (at most 30 s): the replay is asynchronous.
async fn wait_total(b: &Broker, mailbox: &str, n: u64) {
    let start = Instant::now();
    loop {
        let (s, v) = b
            .get(&b.token(mailbox), &format!("/v1/mailboxes/{mailbox}"))
            .await;
        if s == 200 && v["total"].as_u64() == Some(n) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {n} messages in {mailbox}: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ready(b: &Broker) -> (u16, Value) {
    common::status_json(
        b.http
            .get(b.url("/health/ready"))
            .send()
            .await
            .expect("ready"),
    )
    .await
}

fn payloads(msgs: &[Value]) -> Vec<Value> {
    msgs.iter().map(|m| m["payload"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_sends_reach_redis_in_order_when_it_returns() {
    let mut b = Broker::start(EngineKind::Redis);
    b.send("alice", "bob", json!({"payload": "before"})).await;
    b.redis.as_mut().expect("redis").kill();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, v, _) = send(&b, "bob", json!(i), None).await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["status"], "spooled", "{v}");
        assert!(v.get("seq").is_none(), "no seq before it is stored: {v}");
        ids.push(v["id"].clone());
    }
    let (s, v) = ready(&b).await;
    assert_eq!(s, 200, "spooling is a degraded but working node: {v}");
    assert_eq!(v["status"], "degraded: spooling", "{v}");
    let (_, metrics) =
        common::status_json(b.http.get(b.url("/metrics")).send().await.expect("metrics")).await;
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.contains("mailbox_spool_messages 20")),
        "{metrics}"
    );

    b.redis.as_mut().expect("redis").restart();
    wait_total(&b, "bob", 21).await;
    let msgs = b.messages("bob").await;
    let mut want = vec![json!("before")];
    want.extend((0..20).map(|i| json!(i)));
    assert_eq!(payloads(&msgs), want, "in order, each once");
    let got: Vec<Value> = msgs[1..].iter().map(|m| m["id"].clone()).collect();
    assert_eq!(got, ids, "the ids answered are the ids stored");
    // New sends go straight to Redis again, after the replayed ones.
    let r = b.send("alice", "bob", json!({"payload": "after"})).await;
    assert_eq!(r["seq"], "22");
    let (s, v) = ready(&b).await;
    assert_eq!((s, v["status"].clone()), (200, json!("ready")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_sends_survive_a_kill_9_of_the_broker() {
    let mut b = Broker::start(EngineKind::Redis);
    b.send("alice", "bob", json!({"payload": "before"})).await;
    b.redis.as_mut().expect("redis").kill();
    let mut ids = Vec::new();
    for i in 0..15 {
        let (s, v, _) = send(&b, "bob", json!(i), None).await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].clone());
    }
    b.kill();
    b.redis.as_mut().expect("redis").restart();
    b.crash_and_restart();
    wait_total(&b, "bob", 16).await;
    let msgs = b.messages("bob").await;
    let got: Vec<Value> = msgs[1..].iter().map(|m| m["id"].clone()).collect();
    assert_eq!(got, ids, "all present, in order, exactly once");
    // And a second restart replays nothing twice.
    b.crash_and_restart();
    b.send("alice", "bob", json!({"payload": "after"})).await;
    assert_eq!(b.total("bob").await, 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_and_keeps_nothing() {
    let mut b = Broker::start_with(EngineKind::Redis, &[("MAILBOX__SPOOL__MAX_BYTES", "3000")]);
    b.send("alice", "bob", json!({"payload": "before"})).await;
    b.redis.as_mut().expect("redis").kill();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let (s, v, retry_after) = send(&b, "bob", json!(format!("m{i}")), None).await;
        match s {
            202 => accepted.push(json!(format!("m{i}"))),
            503 => {
                assert!(retry_after, "503 carries Retry-After");
                assert_eq!(v["error"]["code"], "unavailable", "{v}");
                refused.push(json!(format!("m{i}")));
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(
        !accepted.is_empty() && !refused.is_empty(),
        "the spool filled up"
    );
    let (s, v) = ready(&b).await;
    assert_eq!(s, 503, "a full spool cannot take sends: {v}");

    b.redis.as_mut().expect("redis").restart();
    wait_total(&b, "bob", 1 + accepted.len() as u64).await;
    let got = payloads(&b.messages("bob").await);
    assert_eq!(got[1..], accepted[..]);
    assert!(
        refused.iter().all(|r| !got.contains(r)),
        "nothing refused appears"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_with_idempotent_retries_loses_and_duplicates_nothing() {
    let mut b = Broker::start(EngineKind::Redis);
    b.send("alice", "bob", json!({"payload": "warm"})).await;
    const N: usize = 120;
    let bb = b.http.clone();
    let port = b.port;
    let token = b.token("alice");
    let load = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for w in 0..4 {
            let (http, token) = (bb.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in (w..N).step_by(4) {
                    let key = format!("k{i}");
                    let start = Instant::now();
                    loop {
                        let r = http
                            .post(format!("http://127.0.0.1:{port}/v1/messages"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &key)
                            .json(&json!({"to": "mailbox:bob", "payload": i}))
                            .send()
                            .await;
                        if let Ok(r) = r {
                            let (s, v) = common::status_json(r).await;
                            if s == 201 || s == 202 {
                                ids.push((i, v["id"].clone()));
                                break;
                            }
                        }
                        assert!(
                            start.elapsed() < Duration::from_secs(60),
                            "send {i} never accepted"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("sender"));
        }
        all
    });
    // Kill Redis while the load runs, then bring it back.
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.redis.as_mut().expect("redis").kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    b.redis.as_mut().expect("redis").restart();
    let ids = load.await.expect("load");
    assert_eq!(ids.len(), N);
    wait_total(&b, "bob", 1 + N as u64).await;
    let msgs = b.messages("bob").await;
    let stored: HashSet<Value> = msgs.iter().map(|m| m["payload"].clone()).collect();
    assert_eq!(stored.len(), 1 + N, "no duplicate");
    let stored_ids: HashSet<Value> = msgs.iter().map(|m| m["id"].clone()).collect();
    for (i, id) in ids {
        assert!(stored.contains(&json!(i)), "{i} lost");
        assert!(
            stored_ids.contains(&id),
            "the id answered for {i} is the one stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_browse_is_served_from_the_cache_and_other_reads_answer_503() {
    let mut b = Broker::start(EngineKind::Redis);
    for i in 0..5 {
        b.send("alice", "bob", json!({"payload": i})).await;
    }
    b.send("alice", "carol", json!({"payload": "c"})).await;
    b.redis.as_mut().expect("redis").kill();
    let r = b
        .http
        .get(b.url("/v1/mailboxes/bob/messages?limit=3"))
        .bearer_auth(b.token("bob"))
        .send()
        .await
        .expect("browse");
    assert_eq!(
        r.headers()
            .get("x-mailbox-degraded")
            .and_then(|h| h.to_str().ok()),
        Some("cached")
    );
    let (s, v) = common::status_json(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["degraded"], true, "{v}");
    assert_eq!(
        payloads(v["messages"].as_array().expect("messages")),
        vec![json!(0), json!(1), json!(2)]
    );
    assert_eq!(v["next"], "3", "{v}");
    let (s, v) = b
        .get(&b.token("bob"), "/v1/mailboxes/bob/messages?after=3")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        payloads(v["messages"].as_array().expect("messages")),
        vec![json!(3), json!(4)]
    );
    // Read state lives in Redis; other reads answer 503 with Retry-After.
    for path in [
        "/v1/mailboxes/bob/messages?unread=true",
        "/v1/mailboxes/bob",
    ] {
        let r = b
            .http
            .get(b.url(path))
            .bearer_auth(b.token("bob"))
            .send()
            .await
            .expect("read");
        assert_eq!(r.status().as_u16(), 503, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
    }
    // A mailbox not active on this node has nothing cached.
    let (s, _) = b.get(&b.token("dave"), "/v1/mailboxes/dave/messages").await;
    assert_eq!(s, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_queued_writes_loses_nothing() {
    let mut b = Broker::start(EngineKind::Redis);
    // Some writes wait in the spool, more are in flight when SIGTERM arrives.
    b.redis.as_mut().expect("redis").kill();
    for i in 0..10 {
        let (s, v, _) = send(&b, "bob", json!(format!("s{i}")), None).await;
        assert_eq!(s, 202, "{v}");
    }
    b.redis.as_mut().expect("redis").restart();
    let (http, port, token) = (b.http.clone(), b.port, b.token("alice"));
    let load = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for i in 0..200 {
            let r = http
                .post(format!("http://127.0.0.1:{port}/v1/messages"))
                .bearer_auth(&token)
                .json(&json!({"to": "mailbox:bob", "payload": format!("q{i}")}))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => accepted.push(json!(format!("q{i}"))),
                _ => break,
            }
        }
        accepted
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = tokio::task::block_in_place(|| b.terminate());
    assert!(status.success(), "graceful exit: {status:?}");
    let accepted = load.await.expect("load");
    b.crash_and_restart();
    let got = payloads(&b.messages("bob").await);
    for i in 0..10 {
        assert!(got.contains(&json!(format!("s{i}"))), "spooled s{i} lost");
    }
    for a in &accepted {
        assert!(got.contains(a), "accepted {a} lost");
    }
    let unique: HashSet<&Value> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no duplicate");
}
