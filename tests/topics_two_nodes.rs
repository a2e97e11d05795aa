//! Topics on two nodes sharing one Redis: a durable subscription made through one node gets its
//! copies from publishes through the other at once, concurrent publishes through both nodes
//! give each subscriber each message exactly once, and a live pattern subscription on one node
//! gets what is published through the other.

mod common;

use std::collections::HashMap;

use common::ws::{connect, recv, subscribe, WAIT};
use common::{Broker, EngineKind};
use serde_json::{json, Value};

async fn subscribe_durable(b: &Broker, agent: &str, pattern: &str) {
    let (s, v) = b
        .post(
            &b.token(agent),
            "/v1/subscriptions",
            &json!({ "pattern": pattern }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn publish(b: &Broker, topic: &str, payload: Value) -> Value {
    let (s, v) = b
        .post(
            &b.token("alice"),
            "/v1/messages",
            &json!({ "to": format!("topic:{topic}"), "payload": payload }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

/// Every message id in `mailbox`, with how often it is there.
async fn ids_in(b: &Broker, mailbox: &str) -> HashMap<String, usize> {
    let (s, v) = b
        .get(
            &b.token(mailbox),
            &format!("/v1/mailboxes/{mailbox}/messages?limit=500"),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut ids = HashMap::new();
    for m in v["messages"].as_array().expect("messages") {
        *ids.entry(m["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_made_on_one_node_gets_copies_of_publishes_on_the_other_at_once() {
    let a = Broker::start(EngineKind::Redis);
    let b = Broker::another_node(&a);
    // Node A's router loads the (empty) subscription set before the subscription exists.
    let first = publish(&a, "news.eu", json!("before")).await;
    assert_eq!(first["recipients"], 1, "{first}");
    subscribe_durable(&b, "bob", "news.#").await;
    // No waiting: a subscription acknowledged by B is known to A's next publish.
    let v = publish(&a, "news.eu", json!("after")).await;
    assert_eq!(v["recipients"], 2, "history + bob's copy: {v}");
    let ids = ids_in(&b, "bob").await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids.get(v["id"].as_str().expect("id")), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_on_both_nodes_copy_each_message_once() {
    let a = Broker::start(EngineKind::Redis);
    let b = Broker::another_node(&a);
    for agent in ["bob", "carol"] {
        subscribe_durable(&a, agent, "jobs.*").await;
    }
    subscribe_durable(&b, "bob", "jobs.#").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { a.url("") } else { b.url("") };
        let (http, token) = (a.http.clone(), a.token("alice"));
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{node}/v1/messages"))
                .bearer_auth(token)
                .json(&json!({ "to": "topic:jobs.build", "payload": i }))
                .send()
                .await
                .expect("publish");
            let (s, v) = common::status_json(r).await;
            assert_eq!(s, 201, "{v}");
            assert_eq!(v["recipients"], 3, "history + bob + carol: {v}");
            v["id"].as_str().expect("id").to_owned()
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.expect("task"));
    }
    for agent in ["bob", "carol"] {
        let ids = ids_in(&a, agent).await;
        assert_eq!(ids.len(), sent.len(), "{agent}: {ids:?}");
        for id in &sent {
            assert_eq!(ids.get(id), Some(&1), "{agent} holds {id} exactly once");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_pattern_subscription_gets_publishes_from_the_other_node() {
    let a = Broker::start(EngineKind::Redis);
    let b = Broker::another_node(&a);
    let mut ws = connect(&b, "bob").await;
    let sub = subscribe(&mut ws, "topic:metrics.*", "latest").await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let topic = if i % 2 == 0 {
            "metrics.cpu"
        } else {
            "metrics.mem"
        };
        sent.push(publish(&a, topic, json!(i)).await["id"].clone());
    }
    // Not matching: never pushed.
    publish(&a, "other.cpu", json!("no")).await;
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let f = tokio::time::timeout(WAIT, recv(&mut ws))
            .await
            .expect("a push in time");
        assert_eq!(f["type"], "message", "{f}");
        assert_eq!(f["subscription"], sub.as_str());
        got.push(f["message"]["id"].clone());
    }
    // Per-topic order holds; across the two topics pushes may interleave.
    for topic_parity in [0, 1] {
        let want: Vec<&Value> = sent.iter().skip(topic_parity).step_by(2).collect();
        let seen: Vec<&Value> = got.iter().filter(|id| want.contains(id)).collect();
        assert_eq!(seen, want);
    }
}
