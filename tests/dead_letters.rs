//! Dead letters (SPEC sections 4 and 5): requeue, delete, purge, expiry, overflow eviction and
//! who may see them, against both engines through the real binary.

mod common;
mod delivery_support;

use std::time::Duration;

use common::Broker;
use delivery_support::{
    dead_letters, eventually, pending_acks, receive, settle, urlencode, FAST, SLOW,
};
use serde_json::{json, Value};

async fn dead_letters_requeue_delete_and_purge(b: &Broker) {
    let admin = b.admin_token("ops");
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = b
            .send(
                "alice",
                "bob",
                json!({"payload": format!("m{i}"), "require_ack": true, "ttl_seconds": 3600}),
            )
            .await;
        ids.push(m["id"].clone());
    }
    assert_eq!(receive(b, "bob", "bob", 3, 0).await.len(), 3);
    for id in &ids {
        let (s, _) = settle(b, "bob", "bob", id, "nack", json!({"reason": "nope"})).await;
        assert_eq!(s, 200);
    }
    // Pages by id cursor: two, then the third.
    let (_, page) = b.get(&admin, "/v1/dead-letters?mailbox=bob&limit=2").await;
    let dl = page["dead_letters"]
        .as_array()
        .expect("dead_letters")
        .clone();
    assert_eq!(dl.len(), 2);
    let next = page["next"]
        .as_str()
        .expect("a cursor to the third")
        .to_owned();
    let rest = dead_letters(b, &format!("mailbox=bob&after={next}")).await;
    assert_eq!(rest.len(), 1);
    let mut listed: Vec<Value> = dl
        .iter()
        .chain(&rest)
        .map(|d| d["message"]["id"].clone())
        .collect();
    listed.sort_by_key(|v| v.to_string());
    let mut want = ids.clone();
    want.sort_by_key(|v| v.to_string());
    assert_eq!(listed, want);

    // Requeue one: a fresh copy (new id, attempt 1) is receivable; the dead letter is gone.
    let first = dl[0]["id"].as_str().expect("id").to_owned();
    let (s, v) = b.get(&admin, &format!("/v1/dead-letters/{first}")).await;
    assert_eq!((s, &v["message"]), (200, &dl[0]["message"]), "{v}");
    let (s, v) = b
        .post(
            &admin,
            &format!("/v1/dead-letters/{first}/requeue"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got = receive(b, "bob", "bob", 10, 5).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0]["payload"], &got[0]["attempt"], &got[0]["id"]),
        (&dl[0]["message"]["payload"], &json!(1), &v["id"])
    );
    assert_ne!(got[0]["id"], dl[0]["message"]["id"]);
    assert!(
        got[0]["expires_at"].as_str() > dl[0]["message"]["expires_at"].as_str(),
        "its ttl starts over"
    );
    let (s, _) = b.get(&admin, &format!("/v1/dead-letters/{first}")).await;
    assert_eq!(s, 404);
    let (s, _) = b
        .post(
            &admin,
            &format!("/v1/dead-letters/{first}/requeue"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);

    // Requeue by filter, then purge everything.
    let (s, v) = b
        .post(
            &admin,
            "/v1/dead-letters/requeue",
            &json!({"filter": {"mailbox": "bob", "reason": "rejected"}}),
        )
        .await;
    assert_eq!((s, v["requeued"].as_u64()), (200, Some(2)), "{v}");
    let got = receive(b, "bob", "bob", 10, 5).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for m in &got {
        let (s, _) = settle(
            b,
            "bob",
            "bob",
            &m["id"],
            "nack",
            json!({"reason": "again"}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, v) = b
        .post(
            &admin,
            "/v1/dead-letters/requeue",
            &json!({"filter": {"reason": "sideways"}}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (422, Some("reason"))
    );
    let r = b
        .http
        .delete(b.url("/v1/dead-letters?older_than=3600"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("purge");
    let (s, v) = common::status_json(r).await;
    assert_eq!(
        (s, v["deleted"].as_u64()),
        (200, Some(0)),
        "nothing is an hour old"
    );
    let one = dead_letters(b, "").await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = b
        .http
        .delete(b.url(&format!("/v1/dead-letters/{one}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    let r = b
        .http
        .delete(b.url(&format!(
            "/v1/dead-letters?older_than={}",
            urlencode(&chrono::Utc::now().to_rfc3339())
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("purge");
    let (s, v) = common::status_json(r).await;
    assert_eq!((s, v["deleted"].as_u64()), (200, Some(1)), "{v}");
    assert!(dead_letters(b, "").await.is_empty());
}

async fn expired_messages_are_never_handed_over(b: &Broker) {
    let acked = b
        .send(
            "alice",
            "bob",
            json!({"payload": "stale", "require_ack": true, "ttl_seconds": 1}),
        )
        .await;
    b.send(
        "alice",
        "bob",
        json!({"payload": "fleeting", "ttl_seconds": 1}),
    )
    .await;
    // Nobody receives: the scheduler dead-letters the one that awaited an ack when it expires.
    let dl = eventually(
        Duration::from_secs(10),
        "the expired dead letter",
        || async {
            let d = dead_letters(b, "reason=expired").await;
            (!d.is_empty()).then_some(d)
        },
    )
    .await;
    assert_eq!(dl.len(), 1);
    assert_eq!(
        (&dl[0]["message"]["id"], dl[0]["attempts"].as_u64()),
        (&acked["id"], Some(0))
    );
    assert!(
        receive(b, "bob", "bob", 10, 0).await.is_empty(),
        "expired messages are not handed over"
    );
    assert_eq!(
        dead_letters(b, "").await.len(),
        1,
        "one without require_ack just lapses"
    );

    // Received but not acked before its ttl: dead-lettered as expired, not redelivered.
    let m = b
        .send(
            "alice",
            "carol",
            json!({"payload": "soon", "require_ack": true, "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(receive(b, "carol", "carol", 1, 0).await.len(), 1);
    let dl = eventually(Duration::from_secs(10), "the in-flight expiry", || async {
        let d = dead_letters(b, "mailbox=carol").await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(
        (&dl[0]["message"]["id"], dl[0]["reason"].as_str()),
        (&m["id"], Some("expired"))
    );
    assert!(receive(b, "carol", "carol", 1, 2).await.is_empty());
}

async fn overflow_evicts_unacked_into_dead_letters(b: &Broker) {
    let bob = b.token("bob");
    let (s, _) = b
        .put(
            &bob,
            "/v1/mailboxes/bob",
            &json!({"max_len": 2, "overflow": "drop_oldest"}),
        )
        .await;
    assert_eq!(s, 201);
    let a = b
        .send("alice", "bob", json!({"payload": "a", "require_ack": true}))
        .await;
    b.send("alice", "bob", json!({"payload": "b"})).await;
    let c = b
        .send("alice", "bob", json!({"payload": "c", "require_ack": true}))
        .await;
    // `a` (awaiting an ack) was evicted; `b` goes next without one, and leaves no dead letter.
    b.send("alice", "bob", json!({"payload": "d"})).await;
    let dl = dead_letters(b, "mailbox=bob").await;
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(
        (&dl[0]["message"]["id"], dl[0]["reason"].as_str()),
        (&a["id"], Some("evicted"))
    );
    // Evicting one in flight dead-letters it too, with its attempt count.
    assert_eq!(receive(b, "bob", "bob", 1, 0).await[0]["id"], c["id"]);
    b.send("alice", "bob", json!({"payload": "e"})).await;
    let dl = dead_letters(b, "mailbox=bob&reason=evicted").await;
    assert_eq!(dl.len(), 2);
    let of_c = dl
        .iter()
        .find(|d| d["message"]["id"] == c["id"])
        .expect("c's dead letter");
    assert_eq!(of_c["attempts"], 1);
    assert_eq!(pending_acks(b, "bob").await, 0);

    // With overflow = reject the send is refused and nothing is dead-lettered.
    b.put(
        &bob,
        "/v1/mailboxes/bob",
        &json!({"max_len": 2, "overflow": "reject"}),
    )
    .await;
    let (s, v) = b
        .post(
            &b.token("alice"),
            "/v1/messages",
            &json!({"to": "mailbox:bob", "payload": "f", "require_ack": true}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (507, Some("mailbox_full"))
    );
    assert_eq!(dead_letters(b, "").await.len(), 2);
}

async fn dead_letter_permissions(b: &Broker) {
    let m = b
        .send("alice", "bob", json!({"payload": "x", "require_ack": true}))
        .await;
    receive(b, "bob", "bob", 1, 0).await;
    let (s, _) = settle(b, "bob", "bob", &m["id"], "nack", json!({})).await;
    assert_eq!(s, 200);
    let bob = b.token("bob");
    let (s, v) = b.get(&bob, "/v1/dead-letters").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    let (s, v) = b.get(&bob, "/v1/dead-letters?mailbox=bob").await;
    assert_eq!(
        (s, v["dead_letters"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    let id = v["dead_letters"][0]["id"].as_str().expect("id").to_owned();
    let (s, _) = b.get(&bob, &format!("/v1/dead-letters/{id}")).await;
    assert_eq!(s, 200, "bob may see his own mailbox's dead letter");
    let (s, _) = b.get(&bob, "/v1/dead-letters?mailbox=alice").await;
    assert_eq!(s, 403);
    let mallory = b.token("mallory");
    let (s, _) = b.get(&mallory, &format!("/v1/dead-letters/{id}")).await;
    assert_eq!(s, 403);
    let (s, _) = b
        .get(&mallory, "/v1/dead-letters/01J0000000000000000000000A")
        .await;
    assert_eq!(s, 403, "no hint whether an id exists");
    let (s, _) = b
        .post(&bob, &format!("/v1/dead-letters/{id}/requeue"), &json!({}))
        .await;
    assert_eq!(s, 403, "requeue is for admins");
    let r = b
        .http
        .delete(b.url("/v1/dead-letters?older_than=0"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("purge");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(dead_letters(b, "").await.len(), 1);
    let (s, v) = b
        .get(&b.admin_token("ops"), "/v1/dead-letters?reason=weird")
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (422, Some("reason"))
    );
}

/// Dead letters kept for one second only.
const SHORT_RETENTION: &[(&str, &str)] = &[("MAILBOX__DEAD_LETTER__RETENTION_SECONDS", "1")];

async fn dead_letters_past_retention_are_removed(b: &Broker) {
    let m = b
        .send("alice", "bob", json!({"payload": "x", "require_ack": true}))
        .await;
    receive(b, "bob", "bob", 1, 0).await;
    let (s, _) = settle(b, "bob", "bob", &m["id"], "nack", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(dead_letters(b, "").await.len(), 1);
    eventually(Duration::from_secs(10), "the retention cleanup", || async {
        dead_letters(b, "").await.is_empty().then_some(())
    })
    .await;
}

on_both_engines!(
    dead_letters_past_retention_are_removed: SHORT_RETENTION,
    dead_letters_requeue_delete_and_purge: SLOW,
    expired_messages_are_never_handed_over: FAST,
    overflow_evicts_unacked_into_dead_letters: SLOW,
    dead_letter_permissions: SLOW,
);
