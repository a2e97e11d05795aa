//! Topics, wildcard patterns, durable subscriptions and broadcast (SPEC sections 2, 4, 5, 6),
//! through the real binary, against Redis and the memory engine.

mod common;

use std::collections::BTreeSet;

use common::Broker;
use serde_json::{json, Value};

use common::ws::{connect, recv, send, subscribe, Ws};

/// Asserts nothing else was pushed: a ping is answered next.
async fn nothing_more(ws: &mut Ws) {
    send(ws, json!({"op": "ping", "ref": "quiet"})).await;
    assert_eq!(
        recv(ws).await,
        json!({"type": "pong", "ref": "quiet"}),
        "nothing more was pushed"
    );
}

async fn publish(b: &Broker, from: &str, topic: &str, payload: Value) -> Value {
    let (s, v) = b
        .post(
            &b.token(from),
            "/v1/messages",
            &json!({"to": format!("topic:{topic}"), "payload": payload}),
        )
        .await;
    assert_eq!(s, 201, "publish to {topic}: {v}");
    assert_eq!(v["status"], "stored");
    v
}

async fn delete(b: &Broker, token: &str, path: &str) -> (u16, Value) {
    let r = b
        .http
        .delete(b.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE");
    common::status_json(r).await
}

fn field(v: &(u16, Value)) -> (u16, Option<&str>, Option<&str>) {
    (
        v.0,
        v.1["error"]["code"].as_str(),
        v.1["error"]["details"]["field"].as_str(),
    )
}

async fn live_patterns_get_one_frame_per_matching_subscription(b: &Broker) {
    let mut ws = connect(b, "bob").await;
    let all = subscribe(&mut ws, "topic:research.#", "latest").await;
    let star = subscribe(&mut ws, "topic:research.*.ml", "latest").await;
    let exact = subscribe(&mut ws, "topic:research.papers.ml", "latest").await;
    subscribe(&mut ws, "topic:other.#", "latest").await;
    subscribe(&mut ws, "topic:research.*", "latest").await;

    let receipt = publish(b, "alice", "research.papers.ml", json!({"n": 1})).await;
    assert_eq!(receipt["recipients"], 1, "only the history: {receipt}");
    assert_eq!(receipt["seq"], "1");
    let mut got = BTreeSet::new();
    for _ in 0..3 {
        let f = recv(&mut ws).await;
        assert_eq!(f["type"], "message", "{f}");
        assert_eq!(f["message"]["topic"], "research.papers.ml");
        assert_eq!(f["message"]["id"], receipt["id"]);
        assert_eq!(f["message"]["from"], "alice");
        got.insert(f["subscription"].as_str().expect("sub").to_owned());
    }
    assert_eq!(got, BTreeSet::from([all.clone(), star, exact]));
    nothing_more(&mut ws).await;

    // `research.#` matches `research` itself (zero more segments); `research.*` does not.
    publish(b, "alice", "research", json!("root")).await;
    let f = recv(&mut ws).await;
    assert_eq!(
        (f["subscription"].as_str(), f["message"]["payload"].as_str()),
        (Some(all.as_str()), Some("root"))
    );
    nothing_more(&mut ws).await;

    // Publishing over a WebSocket works the same.
    let mut alice = connect(b, "alice").await;
    send(
        &mut alice,
        json!({"op": "send", "ref": "p", "message": {"to": "topic:research.x.y", "payload": "ws"}}),
    )
    .await;
    let ok = recv(&mut alice).await;
    assert_eq!(
        (ok["type"].as_str(), ok["ref"].as_str(), ok["seq"].as_str()),
        (Some("ok"), Some("p"), Some("1")),
        "{ok}"
    );
    let f = recv(&mut ws).await;
    assert_eq!(
        (f["subscription"].as_str(), f["message"]["topic"].as_str()),
        (Some(all.as_str()), Some("research.x.y"))
    );
    nothing_more(&mut ws).await;
}

async fn durable_subscription_copies_once_and_stops_when_deleted(b: &Broker) {
    let bob = b.token("bob");
    let s1 = b
        .post(&bob, "/v1/subscriptions", &json!({"pattern": "research.#"}))
        .await;
    assert_eq!(s1.0, 201, "{}", s1.1);
    assert_eq!(
        (s1.1["pattern"].as_str(), s1.1["mailbox"].as_str()),
        (Some("research.#"), Some("bob"))
    );
    assert!(s1.1["id"].is_string() && s1.1["created_at"].is_string());
    let s2 = b
        .post(
            &bob,
            "/v1/subscriptions",
            &json!({"pattern": "research.*.ml"}),
        )
        .await;
    assert_eq!(s2.0, 201);
    let again = b
        .post(&bob, "/v1/subscriptions", &json!({"pattern": "research.#"}))
        .await;
    assert_eq!((again.0, &again.1["id"]), (200, &s1.1["id"]), "idempotent");
    let (s, list) = b.get(&bob, "/v1/subscriptions").await;
    assert_eq!(
        (s, list["subscriptions"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    let (s, one) = b
        .get(
            &bob,
            &format!("/v1/subscriptions/{}", s1.1["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!((s, &one["pattern"]), (200, &json!("research.#")));
    // Someone else's subscription is not theirs to see or remove.
    let (s, _) = b
        .get(
            &b.token("mallory"),
            &format!("/v1/subscriptions/{}", s1.1["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(s, 403);

    // Bob is offline. Two of his patterns match: one copy.
    let receipt = publish(b, "alice", "research.papers.ml", json!("paper")).await;
    assert_eq!(receipt["recipients"], 2, "history + bob: {receipt}");
    publish(b, "alice", "sports.results", json!("nope")).await;
    assert_eq!(b.total("bob").await, 1);

    // He comes back: the copy is in his mailbox, exactly once, like a direct message.
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "unread").await;
    let f = recv(&mut ws).await;
    assert_eq!(f["message"]["id"], receipt["id"]);
    assert_eq!(f["message"]["mailbox"], "bob");
    assert_eq!(f["message"]["to"], "topic:research.papers.ml");
    assert_eq!(f["message"]["payload"], "paper");
    nothing_more(&mut ws).await;
    let (_, page) = b.get(&bob, "/v1/mailboxes/bob/messages?unread=true").await;
    assert_eq!(page["unread"], 1, "the copy has read state: {page}");
    // Online, a copy is pushed to his mailbox subscription as it is stored.
    let live = publish(b, "alice", "research.talks", json!("live")).await;
    assert_eq!(live["recipients"], 2);
    let f = recv(&mut ws).await;
    assert_eq!(
        (&f["message"]["id"], f["message"]["seq"].as_str()),
        (&live["id"], Some("2"))
    );
    nothing_more(&mut ws).await;

    // Deleting both subscriptions stops the copies at once.
    for s in [&s1.1, &s2.1] {
        let path = format!("/v1/subscriptions/{}", s["id"].as_str().expect("id"));
        assert_eq!(delete(b, &bob, &path).await.0, 204);
        assert_eq!(b.get(&bob, &path).await.0, 404);
    }
    let receipt = publish(b, "alice", "research.papers.ml", json!("later")).await;
    assert_eq!(receipt["recipients"], 1);
    assert_eq!(b.total("bob").await, 2);
    nothing_more(&mut ws).await;
    let (_, list) = b.get(&bob, "/v1/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));
}

async fn subscribing_another_mailbox_needs_manage(b: &Broker) {
    let (s, v) = b
        .post(
            &b.token("bob"),
            "/v1/subscriptions",
            &json!({"pattern": "a.#", "mailbox": "alice"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let admin = b.admin_token("ops");
    let (s, sub) = b
        .post(
            &admin,
            "/v1/subscriptions",
            &json!({"pattern": "a.#", "mailbox": "alice"}),
        )
        .await;
    assert_eq!((s, sub["mailbox"].as_str()), (201, Some("alice")));
    // Alice sees it (her mailbox), bob does not; admins list everyone's with ?all=true.
    let (_, list) = b.get(&b.token("alice"), "/v1/subscriptions").await;
    assert_eq!(list["subscriptions"][0]["id"], sub["id"]);
    let (_, list) = b.get(&b.token("bob"), "/v1/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));
    assert_eq!(
        b.get(&b.token("bob"), "/v1/subscriptions?all=true").await.0,
        403
    );
    let (s, list) = b.get(&admin, "/v1/subscriptions?all=true").await;
    assert_eq!(
        (s, list["subscriptions"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    publish(b, "bob", "a.b", json!(1)).await;
    assert_eq!(b.total("alice").await, 1);
}

async fn topic_tree_info_history_and_delete(b: &Broker) {
    for t in [
        "research.papers.ml",
        "research.papers.nlp",
        "research",
        "researchers.x",
        "other",
    ] {
        publish(b, "alice", t, json!(t)).await;
    }
    publish(b, "alice", "research.papers.ml", json!("second")).await;
    let bob = b.token("bob");
    let (s, v) = b.get(&bob, "/v1/topics?prefix=research").await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["research", "research.papers.ml", "research.papers.nlp"]
    );
    assert_eq!(v["topics"][1]["total"], 2);
    let (_, v) = b.get(&bob, "/v1/topics").await;
    assert_eq!(v["topics"].as_array().map(Vec::len), Some(5));
    let (_, v) = b.get(&bob, "/v1/topics?limit=2").await;
    assert_eq!(v["next"], "research", "pages in name order");
    let (_, v) = b.get(&bob, "/v1/topics?limit=2&after=research").await;
    assert_eq!(v["topics"][0]["name"], "research.papers.ml");

    let (s, info) = b.get(&bob, "/v1/topics/research.papers.ml").await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(
        (
            info["name"].as_str(),
            &info["total"],
            info["last_seq"].as_str()
        ),
        (Some("research.papers.ml"), &json!(2), Some("2"))
    );
    assert!(info["created_at"].is_string());
    assert_eq!(info["config"]["retention_max_len"], 10000);

    let (s, h) = b
        .get(&bob, "/v1/topics/research.papers.ml/messages?after=1")
        .await;
    assert_eq!(s, 200, "{h}");
    let msgs = h["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (
            msgs[0]["seq"].as_str(),
            msgs[0]["topic"].as_str(),
            &msgs[0]["payload"]
        ),
        (Some("2"), Some("research.papers.ml"), &json!("second"))
    );
    assert!(
        msgs[0].get("mailbox").is_none(),
        "a history copy names its topic only"
    );
    let unread = b
        .get(&bob, "/v1/topics/research.papers.ml/messages?unread=true")
        .await;
    assert_eq!(
        field(&unread),
        (422, Some("validation_failed"), Some("unread"))
    );
    assert_eq!(b.get(&bob, "/v1/topics/nowhere").await.0, 404);
    assert_eq!(b.get(&bob, "/v1/topics/nowhere/messages").await.0, 404);
    // A topic is not a mailbox, nor a known agent.
    assert_eq!(b.total("research").await, 0);

    // Managing topics is for admins by default.
    assert_eq!(delete(b, &bob, "/v1/topics/other").await.0, 403);
    let admin = b.admin_token("ops");
    assert_eq!(delete(b, &admin, "/v1/topics/other").await.0, 204);
    assert_eq!(delete(b, &admin, "/v1/topics/other").await.0, 404);
    assert_eq!(b.get(&bob, "/v1/topics/other").await.0, 404);
    // Publishing again (auto_create) brings it back, from scratch.
    let r = publish(b, "alice", "other", json!("again")).await;
    assert_eq!(r["seq"], "1");

    let metrics = b
        .http
        .get(b.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        r#"mailbox_messages_accepted_total{route="topic"}"#,
        r#"mailbox_actors{kind="topic"}"#,
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
}

async fn single_topic_resumes_from_a_seq(b: &Broker) {
    for i in 1..=3 {
        publish(b, "alice", "jobs.done", json!(i)).await;
    }
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "topic:jobs.done", "1").await;
    for want in ["2", "3"] {
        let f = recv(&mut ws).await;
        assert_eq!(f["message"]["seq"], want, "{f}");
    }
    publish(b, "alice", "jobs.done", json!(4)).await;
    assert_eq!(recv(&mut ws).await["message"]["seq"], "4");
    nothing_more(&mut ws).await;
    let mut ws = connect(b, "carol").await;
    subscribe(&mut ws, "topic:jobs.done", "beginning").await;
    assert_eq!(recv(&mut ws).await["message"]["seq"], "1");
}

async fn patterns_and_names_are_validated(b: &Broker) {
    let bob = b.token("bob");
    for bad in ["a.#.b", "a..b", "A.b", "", "a.b#", "#.a"] {
        let r = b
            .post(&bob, "/v1/subscriptions", &json!({"pattern": bad}))
            .await;
        assert_eq!(
            field(&r),
            (422, Some("validation_failed"), Some("pattern")),
            "{bad}"
        );
    }
    let r = b
        .post(
            &bob,
            "/v1/subscriptions",
            &json!({"pattern": "a.#", "mailbox": "Nope"}),
        )
        .await;
    assert_eq!(field(&r), (422, Some("validation_failed"), Some("mailbox")));
    let r = b
        .post(
            &bob,
            "/v1/messages",
            &json!({"to": "topic:a.*", "payload": 1}),
        )
        .await;
    assert_eq!(
        field(&r),
        (422, Some("validation_failed"), Some("to")),
        "publish to a pattern"
    );
    assert_eq!(
        field(&b.get(&bob, "/v1/topics/Bad").await),
        (422, Some("validation_failed"), Some("topic"))
    );
    assert_eq!(
        field(&b.get(&bob, "/v1/topics?prefix=a..b").await),
        (422, Some("validation_failed"), Some("prefix"))
    );
    let admin = b.admin_token("ops");
    let r = b
        .put(&admin, "/v1/topics/a.b", &json!({"retention_max_len": 0}))
        .await;
    assert_eq!(
        field(&r),
        (422, Some("validation_failed"), Some("retention_max_len"))
    );
    let r = b
        .put(&admin, "/v1/topics/a.b", &json!({"retention_seconds": 0}))
        .await;
    assert_eq!(
        field(&r),
        (422, Some("validation_failed"), Some("retention_seconds"))
    );

    let mut ws = connect(b, "bob").await;
    for (target, from, want) in [
        ("topic:a.#.b", "latest", "target"),
        ("topic:A", "latest", "target"),
        ("topic:a.#", "5", "from"),
        ("topic:a.*", "beginning", "from"),
        ("topic:a.b", "unread", "from"),
    ] {
        send(
            &mut ws,
            json!({"op": "subscribe", "ref": "x", "target": target, "from": from}),
        )
        .await;
        let e = recv(&mut ws).await;
        assert_eq!(
            (
                e["type"].as_str(),
                e["code"].as_str(),
                e["details"]["field"].as_str()
            ),
            (Some("error"), Some("validation_failed"), Some(want)),
            "{target} from {from}: {e}"
        );
    }
}

both_engines!(
    live_patterns_get_one_frame_per_matching_subscription,
    durable_subscription_copies_once_and_stops_when_deleted,
    subscribing_another_mailbox_needs_manage,
    topic_tree_info_history_and_delete,
    single_topic_resumes_from_a_seq,
    patterns_and_names_are_validated,
);
