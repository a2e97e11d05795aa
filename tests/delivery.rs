//! Delivery guarantees (SPEC sections 4 and 5): receive, ack, nack and redelivery with backoff,
//! against both engines through the real binary with short delivery timeouts. Redis-only: the
//! retry schedule survives a broker crash.

mod common;
mod delivery_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Broker, EngineKind};
use delivery_support::{dead_letters, eventually, pending_acks, receive, settle, FAST, SLOW};
use serde_json::{json, Value};

async fn unacked_is_redelivered_with_growing_gaps_then_dead_lettered_once(b: &Broker) {
    let sent = b
        .send(
            "alice",
            "bob",
            json!({"payload": "do it", "require_ack": true}),
        )
        .await;
    let mut times = Vec::new();
    for attempt in 1..=3 {
        let got = receive(b, "bob", "bob", 10, 15).await;
        times.push(Instant::now());
        assert_eq!(got.len(), 1, "attempt {attempt}: {got:?}");
        assert_eq!(got[0]["id"], sent["id"]);
        assert_eq!(got[0]["attempt"], attempt, "{got:?}");
        assert_eq!(pending_acks(b, "bob").await, 1);
        // While it is in flight nobody else gets it.
        assert!(receive(b, "bob", "bob", 10, 0).await.is_empty());
    }
    let (gap1, gap2) = (times[1] - times[0], times[2] - times[1]);
    // Gap n = ack timeout (1 s) + 500 ms × 3^(n-1) ± 10 %, plus scheduler ticks (≤ 0.4 s).
    assert!(
        gap1 >= Duration::from_millis(1400) && gap2 >= Duration::from_millis(2300),
        "{gap1:?} {gap2:?}"
    );
    assert!(gap2 > gap1, "gaps grow: {gap1:?} then {gap2:?}");

    let dl = eventually(Duration::from_secs(10), "the dead letter", || async {
        let d = dead_letters(b, "mailbox=bob").await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["reason"], "max_attempts");
    assert_eq!(dl[0]["attempts"], 3);
    assert_eq!(dl[0]["mailbox"], "bob");
    assert_eq!(dl[0]["message"]["id"], sent["id"]);
    assert_eq!(dl[0]["message"]["payload"], "do it");
    assert!(dl[0]["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(dl[0]["failed_at"].is_string());
    // Nothing more is delivered, and the dead letter stays the only one.
    assert!(receive(b, "bob", "bob", 10, 3).await.is_empty());
    assert_eq!(dead_letters(b, "").await.len(), 1);
    assert_eq!(pending_acks(b, "bob").await, 0);
}

async fn ack_stops_redelivery_and_a_second_ack_conflicts(b: &Broker) {
    let sent = b
        .send("alice", "bob", json!({"payload": 1, "require_ack": true}))
        .await;
    let other = b
        .send("alice", "bob", json!({"payload": 2, "require_ack": true}))
        .await;
    // Not delivered yet: nothing to ack.
    let (s, v) = settle(b, "bob", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );

    let got = receive(b, "bob", "bob", 1, 0).await;
    assert_eq!(got[0]["id"], sent["id"]);
    let (s, v) = settle(b, "mallory", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = settle(b, "bob", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(
        (s, v["status"].as_str(), v["attempt"].as_u64()),
        (200, Some("acked"), Some(1)),
        "{v}"
    );
    let (s, v) = settle(b, "bob", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let (s, v) = settle(
        b,
        "bob",
        "bob",
        &json!("01J0000000000000000000000A"),
        "ack",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    assert_eq!(pending_acks(b, "bob").await, 0);

    let again = receive(b, "bob", "bob", 10, 0).await;
    assert_eq!((again.len(), &again[0]["id"]), (1, &other["id"]));
    let (s, _) = settle(b, "bob", "bob", &other["id"], "ack", json!({})).await;
    assert_eq!(s, 200);
    // Well past the ack timeout and the first backoff: acked messages stay settled.
    assert!(receive(b, "bob", "bob", 10, 3).await.is_empty());

    // Without require_ack a message is handed over once, then it is consumed.
    let plain = b.send("alice", "bob", json!({"payload": "fyi"})).await;
    let got = receive(b, "bob", "bob", 10, 0).await;
    assert_eq!(
        (got.len(), &got[0]["id"], &got[0]["attempt"]),
        (1, &plain["id"], &json!(1))
    );
    let (s, _) = settle(b, "bob", "bob", &plain["id"], "ack", json!({})).await;
    assert_eq!(s, 409);
    assert!(receive(b, "bob", "bob", 10, 2).await.is_empty());
    // Browsing still shows everything: consuming is not deleting.
    assert_eq!(b.total("bob").await, 3);

    let text = b
        .http
        .get(b.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "mailbox_messages_acked_total",
        "mailbox_messages_delivered_total{transport=\"rest\"}",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

async fn concurrent_consumers_never_hold_the_same_message(b: &Broker) {
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"to": "mailbox:bob", "payload": i, "require_ack": true}))
        .collect();
    let (s, v) = b
        .post(
            &b.token("alice"),
            "/v1/messages/batch",
            &json!({"messages": items}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (http, url, token) = (
            b.http.clone(),
            b.url("/v1/mailboxes/bob/receive"),
            b.token("bob"),
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"max": 4}))
                    .send()
                    .await
                    .expect("receive");
                let (s, v) = common::status_json(r).await;
                assert_eq!(s, 200, "{v}");
                let got = v["messages"].as_array().expect("messages").clone();
                if got.is_empty() {
                    return ids;
                }
                ids.extend(got.iter().map(|m| m["id"].as_str().expect("id").to_owned()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("consumer"));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 60, "every message handed over exactly once");
    assert_eq!(unique.len(), 60);
    assert_eq!(pending_acks(b, "bob").await, 60);
}

async fn nack_dead_letters_as_rejected_or_requeues(b: &Broker) {
    let a = b
        .send(
            "alice",
            "bob",
            json!({"payload": "bad", "require_ack": true}),
        )
        .await;
    let c = b
        .send(
            "alice",
            "bob",
            json!({"payload": "later", "require_ack": true}),
        )
        .await;
    assert_eq!(receive(b, "bob", "bob", 2, 0).await.len(), 2);
    let (s, v) = settle(
        b,
        "bob",
        "bob",
        &a["id"],
        "nack",
        json!({"requeue": false, "reason": "bad input"}),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str(), v["reason"].as_str()),
        (200, Some("dead_lettered"), Some("rejected")),
        "{v}"
    );
    let (s, v) = settle(b, "bob", "bob", &c["id"], "nack", json!({"requeue": true})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("requeued")), "{v}");
    assert!(v["redeliver_at"].is_string(), "{v}");
    let (s, _) = settle(b, "bob", "bob", &a["id"], "nack", json!({})).await;
    assert_eq!(s, 409, "a dead letter cannot be nacked again");
    let (s, v) = settle(b, "bob", "bob", &c["id"], "nack", json!({"requeue": "yes"})).await;
    assert_eq!(
        (
            s,
            v["error"]["code"].as_str(),
            v["error"]["details"]["field"].as_str()
        ),
        (422, Some("validation_failed"), Some("requeue"))
    );

    let dl = dead_letters(b, "reason=rejected").await;
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(
        (
            dl[0]["message"]["id"].clone(),
            dl[0]["last_error"].as_str(),
            dl[0]["attempts"].as_u64()
        ),
        (a["id"].clone(), Some("bad input"), Some(1))
    );
    assert!(dead_letters(b, "reason=max_attempts").await.is_empty());

    let back = receive(b, "bob", "bob", 10, 10).await;
    assert_eq!(back.len(), 1);
    assert_eq!((&back[0]["id"], &back[0]["attempt"]), (&c["id"], &json!(2)));
}

async fn receive_hands_out_by_priority_then_fifo(b: &Broker) {
    for (p, label) in [
        ("low", "l1"),
        ("normal", "n1"),
        ("urgent", "u1"),
        ("high", "h1"),
        ("normal", "n2"),
        ("urgent", "u2"),
        ("low", "l2"),
    ] {
        b.send("alice", "bob", json!({"payload": label, "priority": p}))
            .await;
    }
    let first = receive(b, "bob", "bob", 3, 0).await;
    let rest = receive(b, "bob", "bob", 100, 0).await;
    let order: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|m| m["payload"].as_str().expect("payload"))
        .collect();
    assert_eq!(order, ["u1", "u2", "h1", "n1", "n2", "l1", "l2"]);
    // Bad parameters name themselves.
    for (body, field) in [
        (json!({"max": 0}), "max"),
        (json!({"max": 101}), "max"),
        (json!({"wait_seconds": 61}), "wait_seconds"),
    ] {
        let (s, v) = b
            .post(&b.token("bob"), "/v1/mailboxes/bob/receive", &body)
            .await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let (s, _) = b
        .post(&b.token("mallory"), "/v1/mailboxes/bob/receive", &json!({}))
        .await;
    assert_eq!(s, 403);
}

async fn receive_long_poll_wakes_on_send(b: &Broker) {
    let (http, url, token) = (
        b.http.clone(),
        b.url("/v1/mailboxes/bob/receive"),
        b.token("bob"),
    );
    let poll = tokio::spawn(async move {
        let r = http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"wait_seconds": 30}))
            .send()
            .await
            .expect("receive");
        (Instant::now(), common::status_json(r).await)
    });
    // A late poll still passes: it finds the message on its first look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send("alice", "bob", json!({"payload": "wake"})).await;
    let sent = Instant::now();
    let (woke, (s, v)) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(
        (s, v["messages"][0]["payload"].as_str()),
        (200, Some("wake"))
    );
    assert!(woke.saturating_duration_since(sent) < Duration::from_secs(2));
}

on_both_engines!(
    unacked_is_redelivered_with_growing_gaps_then_dead_lettered_once: FAST,
    ack_stops_redelivery_and_a_second_ack_conflicts: FAST,
    concurrent_consumers_never_hold_the_same_message: SLOW,
    nack_dead_letters_as_rejected_or_requeues: FAST,
    receive_hands_out_by_priority_then_fifo: SLOW,
    receive_long_poll_wakes_on_send: SLOW,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_schedule_survives_a_broker_crash() {
    let env = [
        ("MAILBOX__DELIVERY__ACK_TIMEOUT_SECONDS", "2"),
        ("MAILBOX__DELIVERY__BACKOFF_BASE_MS", "2000"),
        ("MAILBOX__DELIVERY__MAX_ATTEMPTS", "5"),
    ];
    let mut b = Broker::start_with(EngineKind::Redis, &env);
    let nacked = b
        .send(
            "alice",
            "bob",
            json!({"payload": "backoff", "require_ack": true}),
        )
        .await;
    let flying = b
        .send(
            "alice",
            "bob",
            json!({"payload": "in flight", "require_ack": true}),
        )
        .await;
    let rejected = b
        .send(
            "alice",
            "bob",
            json!({"payload": "rejected", "require_ack": true}),
        )
        .await;
    assert_eq!(receive(&b, "bob", "bob", 3, 0).await.len(), 3);
    let (s, v) = settle(
        &b,
        "bob",
        "bob",
        &nacked["id"],
        "nack",
        json!({"requeue": true}),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("requeued")));
    let (s, _) = settle(&b, "bob", "bob", &rejected["id"], "nack", json!({})).await;
    assert_eq!(s, 200);

    // Killed in the middle of the backoff (and of the other's ack timeout).
    b.crash_and_restart();

    assert_eq!(pending_acks(&b, "bob").await, 2);
    let mut back = Vec::new();
    while back.len() < 2 {
        let got = receive(&b, "bob", "bob", 10, 15).await;
        assert!(!got.is_empty(), "redelivery after the restart");
        back.extend(got);
    }
    let mut seen: Vec<(String, u64)> = back
        .iter()
        .map(|m| {
            (
                m["id"].as_str().expect("id").to_owned(),
                m["attempt"].as_u64().expect("attempt"),
            )
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (nacked["id"].as_str().expect("id").to_owned(), 2),
        (flying["id"].as_str().expect("id").to_owned(), 2),
    ];
    want.sort();
    assert_eq!(seen, want);
    let dl = dead_letters(&b, "").await;
    assert_eq!(
        (dl.len(), &dl[0]["message"]["id"]),
        (1, &rejected["id"]),
        "dead letters survive too"
    );
    for m in &back {
        let (s, _) = settle(&b, "bob", "bob", &m["id"], "ack", json!({})).await;
        assert_eq!(s, 200);
    }
    assert_eq!(pending_acks(&b, "bob").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_retry_schedule_is_rebuilt_at_start() {
    let mut b = Broker::start_with(EngineKind::Redis, FAST);
    let m = b
        .send("alice", "bob", json!({"payload": "x", "require_ack": true}))
        .await;
    assert_eq!(receive(&b, "bob", "bob", 1, 0).await.len(), 1);
    // As if the broker had died between the mailbox's update and the schedule's.
    let port = b.redis.as_ref().expect("redis").port.to_string();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port, "DEL", "mailbox:retry"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    b.crash_and_restart();
    let got = receive(&b, "bob", "bob", 1, 15).await;
    assert_eq!(
        (got.len(), &got[0]["id"], &got[0]["attempt"]),
        (1, &m["id"], &json!(2))
    );
}
