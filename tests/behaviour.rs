//! The behaviour suite of SPEC sections 2–5 and 7–8, run against both engines (Redis and memory)
//! through the real binary over real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{mint, Broker};
use serde_json::{json, Value};

fn seqs(v: &Value) -> Vec<u64> {
    v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            m["seq"]
                .as_str()
                .expect("seq")
                .parse()
                .expect("numeric seq")
        })
        .collect()
}

async fn send_browse_read_unread(b: &Broker) {
    let bob = b.token("bob");
    let r1 = b.send("alice", "bob", json!({"payload": {"task": "summarise", "doc": 42}, "metadata": {"model": "claude"},
        "tags": ["urgent"], "priority": "high", "ttl_seconds": 3600, "correlation_id": "c-1", "reply_to": "mailbox:alice",
        "thread_id": "t-9", "require_ack": true})).await;
    assert_eq!(r1["status"], "stored");
    assert_eq!(r1["recipients"], 1);
    b.send("alice", "bob", json!({"payload": "hello"})).await;
    b.send(
        "carol",
        "bob",
        json!({"payload": "aGVsbG8=", "encoding": "base64"}),
    )
    .await;

    let (s, page) = b.get(&bob, "/v1/mailboxes/bob/messages").await;
    assert_eq!(s, 200, "{page}");
    let msgs = page["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 3);
    assert_eq!(page["unread"], 3);
    let m = &msgs[0];
    assert_eq!(m["id"], r1["id"]);
    assert_eq!(m["from"], "alice");
    assert_eq!(m["mailbox"], "bob");
    assert_eq!(m["content_type"], "application/json");
    assert_eq!(m["payload"], json!({"task": "summarise", "doc": 42}));
    assert_eq!(m["metadata"]["model"], "claude");
    assert_eq!(m["priority"], "high");
    assert_eq!(m["require_ack"], true);
    assert_eq!(m["thread_id"], "t-9");
    assert!(m["expires_at"].is_string() && m["created_at"].is_string());
    assert_eq!(msgs[1]["content_type"], "text/plain");
    assert_eq!(msgs[2]["content_type"], "application/octet-stream");
    assert_eq!(msgs[2]["encoding"], "base64");
    assert_eq!(
        seqs(&page),
        {
            let mut s = seqs(&page);
            s.sort();
            s.dedup();
            s
        },
        "seqs strictly increase"
    );

    // Mark one by id, then everything up to the second: the unread count drops each time.
    let (s, v) = b
        .post(
            &bob,
            "/v1/mailboxes/bob/read",
            &json!({"ids": [msgs[2]["id"]]}),
        )
        .await;
    assert_eq!((s, v["unread"].as_u64()), (200, Some(2)));
    let (_, unread) = b.get(&bob, "/v1/mailboxes/bob/messages?unread=true").await;
    assert_eq!(seqs(&unread).len(), 2);
    let (s, v) = b
        .post(
            &bob,
            "/v1/mailboxes/bob/read",
            &json!({"up_to": msgs[1]["seq"]}),
        )
        .await;
    assert_eq!((s, v["unread"].as_u64()), (200, Some(0)));
    let (_, info) = b.get(&bob, "/v1/mailboxes/bob").await;
    assert_eq!(
        (info["total"].as_u64(), info["unread"].as_u64()),
        (Some(3), Some(0))
    );

    // Read state is per reader: an admin reading bob's mailbox still has everything unread.
    let (s, info) = b.get(&b.admin_token("ops"), "/v1/mailboxes/bob").await;
    assert_eq!((s, info["unread"].as_u64()), (200, Some(3)));

    // An unknown id changes nothing.
    let (s, v) = b
        .post(
            &bob,
            "/v1/mailboxes/bob/read",
            &json!({"ids": ["01J0000000000000000000000A"]}),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
}

async fn every_filter(b: &Broker) {
    let bob = b.token("bob");
    b.send(
        "alice",
        "bob",
        json!({"payload": "a1", "tags": ["x"], "thread_id": "t1"}),
    )
    .await;
    let before_mid = chrono::Utc::now();
    b.send(
        "carol",
        "bob",
        json!({"payload": {"k": 1}, "priority": "urgent"}),
    )
    .await;
    b.send(
        "alice",
        "bob",
        json!({"payload": "a2", "tags": ["y", "x"], "content_type": "text/markdown"}),
    )
    .await;
    b.send("dave", "bob", json!({"payload": "gone", "ttl_seconds": 1}))
        .await;

    let q = |query: &str| {
        let path = format!("/v1/mailboxes/bob/messages?{query}");
        let bob = bob.clone();
        async move {
            let (s, v) = b.get(&bob, &path).await;
            assert_eq!(s, 200, "{path}: {v}");
            v["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m["payload"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(q("sender=alice").await, vec![json!("a1"), json!("a2")]);
    assert_eq!(q("tag=x").await, vec![json!("a1"), json!("a2")]);
    assert_eq!(q("thread_id=t1").await, vec![json!("a1")]);
    assert_eq!(q("priority=urgent").await, vec![json!({"k": 1})]);
    assert_eq!(q("content_type=text/markdown").await, vec![json!("a2")]);
    assert_eq!(
        q("content_type=application/json").await,
        vec![json!({"k": 1})]
    );
    let since = urlencode(&before_mid.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    assert_eq!(
        q(&format!("since={since}&sender=alice")).await,
        vec![json!("a2")]
    );
    assert_eq!(q(&format!("until={since}")).await, vec![json!("a1")]);
    assert_eq!(q("after=1&before=3").await, vec![json!({"k": 1})]);
    assert_eq!(q("after=2&limit=1").await, vec![json!("a2")]);
    // The ttl=1 message stops being listed once it expires.
    common::wait_until(Duration::from_secs(5), "the ttl message to expire", || {
        let rt = tokio::runtime::Handle::current();
        let all = tokio::task::block_in_place(|| rt.block_on(q("sender=dave")));
        all.is_empty()
    });
    // Bad parameters are refused and name themselves.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("wait=61", "wait"),
        ("after=x", "after"),
        ("since=yesterday", "since"),
        ("priority=max", "priority"),
        ("unread=maybe", "unread"),
    ] {
        let (s, v) = b
            .get(&bob, &format!("/v1/mailboxes/bob/messages?{query}"))
            .await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (422, Some(field)),
            "{query}"
        );
    }
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

async fn thousand_messages_page_without_gap_or_duplicate(b: &Broker) {
    let alice = b.token("alice");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, url, alice) = (b.http.clone(), b.url("/v1/messages"), alice.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..125 {
                let r = http
                    .post(&url)
                    .bearer_auth(&alice)
                    .json(&json!({"to": "mailbox:bob", "payload": format!("{w}-{i}")}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status().as_u16(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let bob = b.token("bob");
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/mailboxes/bob/messages?limit=77&after={a}"),
            None => "/v1/mailboxes/bob/messages?limit=77".to_owned(),
        };
        let (s, page) = b.get(&bob, &path).await;
        assert_eq!(s, 200);
        all.extend(seqs(&page));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(all, (1..=1000).collect::<Vec<u64>>());
}

async fn long_poll_wakes_on_send_and_times_out_cleanly(b: &Broker) {
    let bob = b.token("bob");
    let start = Instant::now();
    let (s, v) = b.get(&bob, "/v1/mailboxes/bob/messages?wait=1").await;
    assert_eq!((s, v["messages"].as_array().map(Vec::len)), (200, Some(0)));
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited the full second"
    );

    let (http, url) = (b.http.clone(), b.url("/v1/mailboxes/bob/messages?wait=30"));
    let poll = tokio::spawn(async move {
        let r = http.get(url).bearer_auth(bob).send().await.expect("poll");
        (Instant::now(), common::status_json(r).await)
    });
    // No event tells us the poll is parked; give it time to get there (a late poll still passes:
    // it finds the message on its first look).
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send("alice", "bob", json!({"payload": "wake up"})).await;
    let sent = Instant::now();
    let (woke, (s, v)) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("poll answered")
        .expect("task");
    assert_eq!(s, 200);
    assert_eq!(v["messages"][0]["payload"], "wake up");
    let lag = woke.saturating_duration_since(sent);
    assert!(
        lag < Duration::from_secs(2),
        "woke {lag:?} after the send, well before the 30 s wait"
    );
}

async fn every_rule_is_a_clear_error_and_stores_nothing(b: &Broker) {
    let alice = b.token("alice");
    let cases = [
        // Values of known fields that break a rule (enum, sign, type): 422, not 400.
        (
            json!({"to": "mailbox:bob", "payload": "x", "priority": "super"}),
            "priority",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "ttl_seconds": -5}),
            "ttl_seconds",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "tags": "urgent"}),
            "tags",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "require_ack": "yes"}),
            "require_ack",
        ),
        (json!({"payload": "x"}), "to"),
        (json!({"to": "mailbox:Bob", "payload": "x"}), "to"),
        (json!({"to": "bob", "payload": "x"}), "to"),
        (json!({"to": "mailbox:bob"}), "payload"),
        (
            json!({"to": "mailbox:bob", "payload": "!!", "encoding": "base64"}),
            "payload",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "encoding": "rot13"}),
            "encoding",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "content_type": "plain"}),
            "content_type",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "tags": vec!["t"; 17]}),
            "tags",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "metadata": (0..33).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
            "metadata",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "reply_to": "somewhere"}),
            "reply_to",
        ),
        (json!({"to": "topic:a..b", "payload": "x"}), "to"),
    ];
    for (body, field) in cases {
        let (s, v) = b.post(&alice, "/v1/messages", &body).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["details"]["field"], field, "{body}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    for raw in [
        b"{\"to\":".to_vec(),
        b"[]".to_vec(),
        b"".to_vec(),
        b"\xff\xfe".to_vec(),
        br#"{"to":"mailbox:bob","payload":"x","requires_ack":true}"#.to_vec(),
    ] {
        let (s, v) = b.post_raw(&alice, "/v1/messages", raw.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    // Over the payload limit, and a body far over it.
    let big = "x".repeat((1 << 20) + 1);
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages",
            &json!({"to": "mailbox:bob", "payload": big}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (s, v) = b
        .post_raw(&alice, "/v1/messages", vec![b' '; 3 << 20])
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Publishing to a pattern is not a topic; broadcast is for admins only.
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages",
            &json!({"to": "topic:research.*", "payload": "x"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (422, Some("to"))
    );
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages",
            &json!({"to": "broadcast", "payload": "x"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert_eq!(b.total("bob").await, 0, "nothing was stored");
}

async fn bad_tokens_are_refused_and_store_nothing(b: &Broker) {
    let body = json!({"to": "mailbox:bob", "payload": "x"});
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret"),
    )
    .expect("mint");
    let none_alg = {
        use base64::Engine as _;
        let e = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            e(json!({"alg": "none", "typ": "JWT"})),
            e(json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() + 600}))
        )
    };
    for (label, token) in [
        ("expired", Some(mint("alice", &[], -10))),
        ("wrong key", Some(wrong_key)),
        ("alg none", Some(none_alg)),
        ("bad subject", Some(mint("Not Valid", &[], 600))),
        ("garbage", Some("abc.def".to_owned())),
        ("missing", None),
    ] {
        let mut r = b.http.post(b.url("/v1/messages")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let (s, v) = common::status_json(r.send().await.expect("send")).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("unauthenticated")),
            "{label}: {v}"
        );
    }
    assert_eq!(b.total("bob").await, 0);
}

async fn another_agents_mailbox_is_forbidden(b: &Broker) {
    b.send("alice", "bob", json!({"payload": "secret"})).await;
    let mallory = b.token("mallory");
    for path in ["/v1/mailboxes/bob", "/v1/mailboxes/bob/messages"] {
        let (s, v) = b.get(&mallory, path).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("permission_denied")),
            "{path}"
        );
    }
    let (s, _) = b
        .post(&mallory, "/v1/mailboxes/bob/read", &json!({"up_to": "1"}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = b
        .put(&mallory, "/v1/mailboxes/bob", &json!({"max_len": 1}))
        .await;
    assert_eq!(s, 403);
    let r = b
        .http
        .delete(b.url("/v1/mailboxes/bob"))
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 403);
    let (_, info) = b.get(&b.token("bob"), "/v1/mailboxes/bob").await;
    assert_eq!(
        (
            info["total"].as_u64(),
            info["unread"].as_u64(),
            info["config"]["max_len"].clone()
        ),
        (Some(1), Some(1), Value::Null)
    );
}

async fn idempotent_sends_store_once(b: &Broker) {
    let alice = b.token("alice");
    let body = json!({"to": "mailbox:bob", "payload": "once"});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = b
            .http
            .post(b.url("/v1/messages"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", "k-1")
            .json(&body)
            .send()
            .await
            .expect("send");
        let (s, v) = common::status_json(r).await;
        assert_eq!(s, 201);
        ids.push(v["id"].clone());
    }
    let (_, v) = b
        .post(
            &alice,
            "/v1/messages",
            &json!({"to": "mailbox:bob", "payload": "once", "idempotency_key": "k-1"}),
        )
        .await;
    ids.push(v["id"].clone());
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    // Another key, or another sender with the same key, is a new message.
    b.send(
        "alice",
        "bob",
        json!({"payload": "two", "idempotency_key": "k-2"}),
    )
    .await;
    b.send(
        "carol",
        "bob",
        json!({"payload": "three", "idempotency_key": "k-1"}),
    )
    .await;
    assert_eq!(b.total("bob").await, 3);
}

async fn unknown_mailbox_answers_zeros(b: &Broker) {
    let (s, v) = b.get(&b.token("newbie"), "/v1/mailboxes/newbie").await;
    assert_eq!(
        (s, v["total"].as_u64(), v["unread"].as_u64()),
        (200, Some(0), Some(0))
    );
    let (s, v) = b
        .get(&b.token("newbie"), "/v1/mailboxes/newbie/messages")
        .await;
    assert_eq!(
        (s, v["messages"].as_array().map(Vec::len), v["next"].clone()),
        (200, Some(0), Value::Null)
    );
    let (s, v) = b.get(&b.token("newbie"), "/v1/nothing-here").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
}

async fn mailbox_settings_and_overflow(b: &Broker) {
    let bob = b.token("bob");
    let (s, v) = b
        .put(&bob, "/v1/mailboxes/bob", &json!({"max_len": 2}))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = b
        .put(
            &bob,
            "/v1/mailboxes/bob",
            &json!({"max_len": 2, "overflow": "reject"}),
        )
        .await;
    assert_eq!(s, 200);
    for (body, field) in [
        (json!({"max_len": 0}), "max_len"),
        (json!({"overflow": "spill"}), "overflow"),
    ] {
        let (s, v) = b.put(&bob, "/v1/mailboxes/bob", &body).await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (422, Some(field))
        );
    }
    b.send("alice", "bob", json!({"payload": 1})).await;
    b.send("alice", "bob", json!({"payload": 2})).await;
    let (s, v) = b
        .post(
            &b.token("alice"),
            "/v1/messages",
            &json!({"to": "mailbox:bob", "payload": 3}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (507, Some("mailbox_full"))
    );
    b.put(
        &bob,
        "/v1/mailboxes/bob",
        &json!({"max_len": 2, "overflow": "drop_oldest"}),
    )
    .await;
    b.send("alice", "bob", json!({"payload": 4})).await;
    let (_, page) = b.get(&bob, "/v1/mailboxes/bob/messages").await;
    let payloads: Vec<Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!(2), json!(4)]);
    let (_, info) = b.get(&bob, "/v1/mailboxes/bob").await;
    assert_eq!(
        info["config"],
        json!({"max_len": 2, "overflow": "drop_oldest", "retention_seconds": null})
    );
    // Delete empties it.
    let r = b
        .http
        .delete(b.url("/v1/mailboxes/bob"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(b.total("bob").await, 0);
    // Seqs never restart: a cursor held from before the delete stays meaningful.
    let r = b.send("alice", "bob", json!({"payload": 5})).await;
    assert_eq!(r["seq"], "4");
}

async fn health_and_metrics(b: &Broker) {
    let (s, v) = common::status_json(
        b.http
            .get(b.url("/health/live"))
            .send()
            .await
            .expect("live"),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("live")));
    let (s, v) = common::status_json(
        b.http
            .get(b.url("/health/ready"))
            .send()
            .await
            .expect("ready"),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));
    b.send("alice", "bob", json!({"payload": 1})).await;
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
        "mailbox_messages_accepted_total",
        "mailbox_send_duration_seconds_bucket",
        "mailbox_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

both_engines!(
    send_browse_read_unread,
    every_filter,
    thousand_messages_page_without_gap_or_duplicate,
    long_poll_wakes_on_send_and_times_out_cleanly,
    every_rule_is_a_clear_error_and_stores_nothing,
    bad_tokens_are_refused_and_store_nothing,
    another_agents_mailbox_is_forbidden,
    idempotent_sends_store_once,
    unknown_mailbox_answers_zeros,
    mailbox_settings_and_overflow,
    health_and_metrics,
);
