//! Broadcast (to 10 000 known agents: one copy each; refused for non-admins) and retried
//! fan-out sends (stored once).

mod common;

use std::sync::Arc;

use common::{mint, status_json, Broker};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const AGENTS: usize = 10_000;
/// Requests in flight at once while setting up and checking.
const CONCURRENCY: usize = 64;

/// What the spawned tasks need of the broker: its address and an HTTP client (cheap clones).
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn of(b: &Broker) -> Self {
        Self {
            http: b.http.clone(),
            base: b.url(""),
        }
    }

    async fn call(&self, r: reqwest::RequestBuilder, agent: &str) -> (u16, Value) {
        status_json(
            r.bearer_auth(mint(agent, &[], 3600))
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    async fn put_mailbox(&self, name: &str) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v1/mailboxes/{name}", self.base))
            .json(&json!({}));
        self.call(r, name).await
    }

    async fn browse(&self, name: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/v1/mailboxes/{name}/messages", self.base));
        self.call(r, name).await
    }
}

/// Runs `op(i)` for every agent index, `CONCURRENCY` at a time.
async fn for_each_agent<F, Fut>(op: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::with_capacity(AGENTS);
    for i in 0..AGENTS {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let fut = op(i);
        tasks.push(tokio::spawn(async move {
            fut.await;
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

async fn broadcast_reaches_every_known_agent_once(b: &Broker) {
    let api = Arc::new(Api::of(b));
    // Agents become known by creating their mailbox, each with its own token.
    for_each_agent(|i| {
        let api = api.clone();
        async move {
            let name = format!("agent-{i:05}");
            let (s, v) = api.put_mailbox(&name).await;
            assert_eq!(s, 201, "{name}: {v}");
        }
    })
    .await;
    let (s, v) = b
        .post(
            &b.admin_token("ops"),
            "/v1/messages",
            &json!({"to": "broadcast", "payload": {"notice": "maintenance at noon"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["recipients"], AGENTS, "{v}");
    assert!(v.get("failed").is_none(), "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    for_each_agent(|i| {
        let (api, id) = (api.clone(), id.clone());
        async move {
            let name = format!("agent-{i:05}");
            let (s, page) = api.browse(&name).await;
            assert_eq!(s, 200, "{page}");
            let msgs = page["messages"].as_array().expect("messages");
            assert_eq!(msgs.len(), 1, "{name} holds exactly one copy: {page}");
            assert_eq!(msgs[0]["id"], id.as_str());
            assert_eq!(msgs[0]["mailbox"], name.as_str());
            assert_eq!(msgs[0]["to"], "broadcast");
        }
    })
    .await;
}

async fn non_admin_broadcast_is_refused_and_stores_nothing(b: &Broker) {
    b.send("alice", "bob", json!({"payload": "hi"})).await;
    let (s, v) = b
        .post(
            &b.token("alice"),
            "/v1/messages",
            &json!({"to": "broadcast", "payload": "all hands"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert_eq!(b.total("bob").await, 1, "nothing more was stored");
    // An admin's broadcast reaches bob.
    let (s, v) = b
        .post(
            &b.admin_token("ops"),
            "/v1/messages",
            &json!({"to": "broadcast", "payload": "all hands"}),
        )
        .await;
    assert_eq!((s, &v["recipients"]), (201, &json!(1)), "{v}");
    assert_eq!(b.total("bob").await, 2);
}

/// A send with an `Idempotency-Key` retried: the first answer again, nothing stored twice (the
/// history once, each mailbox copy once).
async fn retried_publish_and_broadcast_store_once(b: &Broker) {
    let send = |token: String, body: Value, key: &'static str| {
        let r = b
            .http
            .post(b.url("/v1/messages"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { status_json(r.send().await.expect("send")).await }
    };
    let (s, _) = b
        .post(
            &b.token("bob"),
            "/v1/subscriptions",
            &json!({"pattern": "ops.#"}),
        )
        .await;
    assert_eq!(s, 201);
    let body = json!({"to": "topic:ops.deploys", "payload": "v2"});
    let (s1, first) = send(b.token("alice"), body.clone(), "deploy-v2").await;
    let (s2, again) = send(b.token("alice"), body, "deploy-v2").await;
    assert_eq!((s1, s2), (201, 201), "{first} {again}");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        (&first["recipients"], &again["recipients"]),
        (&json!(2), &json!(2))
    );
    let (_, info) = b.get(&b.token("bob"), "/v1/topics/ops.deploys").await;
    assert_eq!(info["total"], 1, "{info}");
    assert_eq!(b.total("bob").await, 1);

    let body = json!({"to": "broadcast", "payload": "freeze"});
    let (_, first) = send(b.admin_token("ops"), body.clone(), "freeze-1").await;
    let (_, again) = send(b.admin_token("ops"), body, "freeze-1").await;
    assert_eq!(first["id"], again["id"], "{first} {again}");
    assert_eq!(b.total("bob").await, 2, "one broadcast copy");
}

both_engines!(
    broadcast_reaches_every_known_agent_once,
    non_admin_broadcast_is_refused_and_stores_nothing,
    retried_publish_and_broadcast_store_once,
);
