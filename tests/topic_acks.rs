//! Topic fan-out meets delivery (SPEC section 4): a copy of a topic message in a durable
//! subscriber's mailbox carries the message's delivery state like a direct send, so it is
//! received, acked and redelivered through the mailbox, on both engines.

mod common;
mod delivery_support;

use common::Broker;
use delivery_support::{pending_acks, receive, settle, FAST};
use serde_json::{json, Value};

async fn publish(b: &Broker, topic: &str, body: Value) -> Value {
    let mut body = body;
    body["to"] = json!(format!("topic:{topic}"));
    let (s, v) = b.post(&b.token("alice"), "/v1/messages", &body).await;
    assert_eq!(s, 201, "publish to {topic}: {v}");
    v
}

async fn a_durable_topic_copy_awaiting_an_ack_is_received_and_acked(b: &Broker) {
    let (s, sub) = b
        .post(
            &b.token("bob"),
            "/v1/subscriptions",
            &json!({"pattern": "jobs.#"}),
        )
        .await;
    assert_eq!(s, 201, "{sub}");
    let sent = publish(
        b,
        "jobs.build",
        json!({"payload": "build it", "require_ack": true}),
    )
    .await;
    assert_eq!(sent["recipients"], 2, "history + bob: {sent}");

    let got = receive(b, "bob", "bob", 10, 5).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], sent["id"]);
    assert_eq!(got[0]["to"], "topic:jobs.build");
    assert_eq!(got[0]["payload"], "build it");
    assert_eq!(got[0]["attempt"], 1, "{got:?}");
    assert_eq!(pending_acks(b, "bob").await, 1);
    // In flight: nobody else gets it meanwhile.
    assert!(receive(b, "bob", "bob", 10, 0).await.is_empty());

    let (s, v) = settle(b, "bob", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(s, 200, "ack: {v}");
    assert_eq!(pending_acks(b, "bob").await, 0);
    assert!(receive(b, "bob", "bob", 10, 0).await.is_empty());
    let (s, _) = settle(b, "bob", "bob", &sent["id"], "ack", json!({})).await;
    assert_eq!(s, 409, "already acked");

    // An unacked copy is redelivered like a direct message.
    let again = publish(
        b,
        "jobs.test",
        json!({"payload": "test it", "require_ack": true}),
    )
    .await;
    let first = receive(b, "bob", "bob", 10, 5).await;
    assert_eq!(
        (first.len(), &first[0]["id"], &first[0]["attempt"]),
        (1, &again["id"], &json!(1))
    );
    let second = receive(b, "bob", "bob", 10, 15).await;
    assert_eq!(
        (second.len(), &second[0]["id"], &second[0]["attempt"]),
        (1, &again["id"], &json!(2))
    );
    let (s, _) = settle(b, "bob", "bob", &again["id"], "ack", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(pending_acks(b, "bob").await, 0);

    // The topic's history still holds the original (it keeps no delivery state).
    let (s, hist) = b
        .get(&b.token("bob"), "/v1/topics/jobs.build/messages")
        .await;
    assert_eq!(s, 200, "{hist}");
    assert_eq!(hist["messages"][0]["id"], sent["id"]);
}

on_both_engines!(a_durable_topic_copy_awaiting_an_ack_is_received_and_acked: FAST);
