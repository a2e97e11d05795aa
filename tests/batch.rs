//! `POST /v1/messages/batch`: all stored or none, the refused item named by `details.index`.

mod common;
mod delivery_support;

use common::Broker;
use delivery_support::{receive, SLOW};
use serde_json::{json, Value};

async fn batch_is_all_or_none(b: &Broker) {
    let alice = b.token("alice");
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages/batch",
            &json!({"messages": [
                {"to": "mailbox:bob", "payload": 1},
                {"to": "mailbox:carol", "payload": 2, "require_ack": true},
                {"to": "mailbox:bob", "payload": 3, "priority": "urgent"},
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(
        (
            results[0]["seq"].as_str(),
            results[2]["seq"].as_str(),
            results[1]["seq"].as_str()
        ),
        (Some("1"), Some("2"), Some("1"))
    );
    assert!(results
        .iter()
        .all(|r| r["status"] == "stored" && r["recipients"] == 1 && r["id"].is_string()));
    assert_eq!((b.total("bob").await, b.total("carol").await), (2, 1));

    let bad_items = [
        (
            json!({"to": "mailbox:bob", "payload": "x", "ttl_seconds": 0}),
            422,
            Some("ttl_seconds"),
        ),
        (
            json!({"to": "mailbox:Nope", "payload": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"to": "mailbox:bob", "payload": "x", "requires_ack": true}),
            400,
            None,
        ),
        (json!({"to": "broadcast", "payload": "x"}), 403, None),
    ];
    for (bad, status, field) in bad_items {
        let (s, v) = b
            .post(
                &alice,
                "/v1/messages/batch",
                &json!({"messages": [
                    {"to": "mailbox:bob", "payload": "ok"},
                    {"to": "mailbox:carol", "payload": "ok"},
                    bad.clone(),
                ]}),
            )
            .await;
        assert_eq!(s, status, "{bad}: {v}");
        assert_eq!(v["error"]["details"]["index"], 2, "{v}");
        assert_eq!(v["error"]["details"]["field"].as_str(), field, "{v}");
    }
    // A mailbox without room refuses the whole batch, including what would fit elsewhere.
    b.put(
        &b.token("carol"),
        "/v1/mailboxes/carol",
        &json!({"max_len": 1}),
    )
    .await;
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages/batch",
            &json!({"messages": [
                {"to": "mailbox:bob", "payload": "fits"},
                {"to": "mailbox:carol", "payload": "does not"},
            ]}),
        )
        .await;
    assert_eq!(
        (
            s,
            v["error"]["code"].as_str(),
            v["error"]["details"]["index"].as_u64()
        ),
        (507, Some("mailbox_full"), Some(1)),
        "{v}"
    );
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"to": "mailbox:bob", "payload": i}))
        .collect();
    let (s, v) = b
        .post(&alice, "/v1/messages/batch", &json!({"messages": too_many}))
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (422, Some("messages"))
    );
    let (s, _) = b
        .post(&alice, "/v1/messages/batch", &json!({"messages": []}))
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        (b.total("bob").await, b.total("carol").await),
        (2, 1),
        "nothing more was stored"
    );
    // Urgent first from the batch too.
    let got = receive(b, "bob", "bob", 2, 0).await;
    assert_eq!(
        (got[0]["payload"].clone(), got[1]["payload"].clone()),
        (json!(3), json!(1))
    );
}

on_both_engines!(batch_is_all_or_none: SLOW);
