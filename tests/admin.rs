//! Administration against the real binary: agents and API keys (both engines; on Redis the
//! plaintext key appears nowhere), policy edits written back to the file, hand edits and a
//! garbage file, the audit trail with paging, one security alert per burst of denials, stats,
//! and 403 for non-admins on every admin route.

mod common;

use std::time::{Duration, Instant};

use common::{Broker, EngineKind};
use serde_json::{json, Value};

/// Polls the audit trail (admin token) until `done` holds for its events, at most 10 s.
async fn audit_until(b: &Broker, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let admin = b.admin_token("ops");
    let start = Instant::now();
    loop {
        let (status, v) = b.get(&admin, &format!("/v1/admin/audit?{query}")).await;
        assert_eq!(status, 200, "{v}");
        let events = v["events"].as_array().cloned().unwrap_or_default();
        if done(&events) {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "audit `{query}` never matched; last: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn agents_and_api_keys(b: &Broker) {
    let admin = b.admin_token("ops");
    let (status, created) = b
        .post(
            &admin,
            "/v1/admin/agents",
            &json!({"id": "carol", "roles": ["agent", "reviewer"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().expect("api key").to_owned();
    assert_eq!(created["id"], "carol");
    assert_eq!(created["roles"], json!(["agent", "reviewer"]));
    assert!(created["created_at"].is_string());

    let (status, v) = b
        .post(&admin, "/v1/admin/agents", &json!({"id": "carol"}))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, v) = b
        .post(&admin, "/v1/admin/agents", &json!({"id": "Not Valid"}))
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["details"]["field"], "id");

    let (status, list) = b.get(&admin, "/v1/admin/agents").await;
    assert_eq!(status, 200);
    assert_eq!(list["agents"][0]["id"], "carol");
    let text = list.to_string();
    assert!(!text.contains(&key) && !text.contains("hash"), "{text}");

    // The key exchanges for a token carrying the record's roles; the token works.
    let (status, t) = b
        .post(
            "",
            "/v1/auth/token",
            &json!({"agent_id": "carol", "api_key": key}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert!(t["expires_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    let token = t["token"].as_str().expect("token");
    let (status, _) = b.get(token, "/v1/mailboxes/carol").await;
    assert_eq!(status, 200);
    let claims = mailbox::client::token_subject(token);
    assert_eq!(claims.as_deref(), Some("carol"));

    // A wrong key: 401 and an auth_failure event naming the agent.
    let (status, v) = b
        .post(
            "",
            "/v1/auth/token",
            &json!({"agent_id": "carol", "api_key": "mbx_wrong"}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    audit_until(b, "kind=auth_failure&agent=carol", |e| !e.is_empty()).await;

    // Revoked: the key no longer exchanges.
    let (status, _) = b.delete(&admin, "/v1/admin/agents/carol", None).await;
    assert_eq!(status, 204);
    let (status, _) = b.delete(&admin, "/v1/admin/agents/carol", None).await;
    assert_eq!(status, 404);
    let (status, _) = b
        .post(
            "",
            "/v1/auth/token",
            &json!({"agent_id": "carol", "api_key": key}),
        )
        .await;
    assert_eq!(status, 401);
    let events = audit_until(b, "kind=admin_action&agent=ops", |e| e.len() >= 2).await;
    assert_eq!(
        events[0]["detail"]["action"], "agent_deleted",
        "newest first"
    );
    assert_eq!(events[1]["detail"]["action"], "agent_created");

    if let Some(redis) = &b.redis {
        // Recreate, then look at every key and value Redis holds.
        let (_, created) = b
            .post(&admin, "/v1/admin/agents", &json!({"id": "dave"}))
            .await;
        let key = created["api_key"].as_str().expect("api key").to_owned();
        let dump = dump_redis(redis.port);
        assert!(dump.contains("dave"), "the agent is stored");
        assert!(
            !dump.contains(&key) && !dump.contains(&key[4..]),
            "the plaintext API key is stored in Redis"
        );
    }
}

/// Every key and value in a Redis, as text.
fn dump_redis(port: u16) -> String {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
    let mut c = client.get_connection().expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("keys");
    let mut out = String::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).expect("type");
        let v: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&k).query(&mut c),
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut c),
            "zset" => redis::cmd("ZRANGE").arg(&k).arg(0).arg(-1).query(&mut c),
            "list" => redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(&mut c),
            "stream" => redis::cmd("XRANGE").arg(&k).arg("-").arg("+").query(&mut c),
            other => panic!("unexpected type {other}"),
        }
        .expect("value");
        out.push_str(&k);
        out.push('\n');
        out.push_str(&format!("{v:?}"));
        collect_bytes(&v, &mut out);
        out.push('\n');
    }
    out
}

fn collect_bytes(v: &redis::Value, out: &mut String) {
    match v {
        redis::Value::BulkString(b) => out.push_str(&String::from_utf8_lossy(b)),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|i| collect_bytes(i, out))
        }
        redis::Value::Map(kv) => kv.iter().for_each(|(k, v)| {
            collect_bytes(k, out);
            collect_bytes(v, out);
        }),
        other => out.push_str(&format!("{other:?}")),
    }
    out.push('\n');
}

async fn non_admins_are_refused(b: &Broker) {
    let bob = b.token("bob");
    let rule = json!({"ptype": "p", "rule": ["bob", "*", "*"]});
    for (method, path) in [
        ("POST", "/v1/admin/agents"),
        ("GET", "/v1/admin/agents"),
        ("DELETE", "/v1/admin/agents/carol"),
        ("GET", "/v1/admin/policies"),
        ("POST", "/v1/admin/policies"),
        ("DELETE", "/v1/admin/policies"),
        ("POST", "/v1/admin/policies/reload"),
        ("GET", "/v1/admin/policies/check?sub=a&obj=b&act=c"),
        ("GET", "/v1/admin/audit"),
        ("GET", "/v1/admin/stats"),
    ] {
        let (status, v) = match method {
            "GET" => b.get(&bob, path).await,
            "DELETE" => b.delete(&bob, path, Some(&rule)).await,
            _ => {
                let body = if path.ends_with("agents") {
                    json!({"id": "zed"})
                } else {
                    rule.clone()
                };
                b.post(&bob, path, &body).await
            }
        };
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "permission_denied");
    }
    let (status, _) = b.get("", "/v1/admin/stats").await;
    assert_eq!(status, 401);
}

async fn stats_count_what_is_there(b: &Broker) {
    b.send("alice", "bob", json!({"payload": "hi"})).await;
    let (status, s) = b.get(&b.admin_token("ops"), "/v1/admin/stats").await;
    assert_eq!(status, 200, "{s}");
    assert!(s["mailboxes"].as_u64() >= Some(1), "{s}");
    for field in ["sessions", "topics", "dead_letters", "agents"] {
        assert!(s[field].is_u64(), "{field}: {s}");
    }
    assert!(s["actors"]["mailboxes"].is_u64(), "{s}");
    assert!(
        s["rates"]["messages_last_minute"].as_u64() >= Some(1),
        "{s}"
    );
}

/// 25 denials within a minute: exactly one security alert, and the metric counts it.
async fn denials_raise_one_alert(b: &Broker) {
    let mallory = b.token("mallory");
    for _ in 0..25 {
        let (status, _) = b.get(&mallory, "/v1/mailboxes/alice").await;
        assert_eq!(status, 403);
    }
    audit_until(b, "kind=permission_denied&agent=mallory&limit=100", |e| {
        e.len() == 25
    })
    .await;
    let alerts = audit_until(b, "kind=security_alert&agent=mallory", |e| !e.is_empty()).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["detail"]["denials"], 20);
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("mailbox_security_alerts_total 1"),
        "{metrics}"
    );
}

async fn audit_pages_newest_first(b: &Broker) {
    let eve = b.token("eve");
    for i in 0..5 {
        let (status, _) = b.get(&eve, &format!("/v1/mailboxes/x{i}")).await;
        assert_eq!(status, 403);
    }
    let all = audit_until(b, "agent=eve&kind=permission_denied", |e| e.len() == 5).await;
    let admin = b.admin_token("ops");
    let (_, first) = b.get(&admin, "/v1/admin/audit?agent=eve&limit=2").await;
    assert_eq!(first["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        first["events"][0]["detail"]["obj"], "mailbox:x4",
        "newest first"
    );
    let next = first["next"].as_str().expect("a next cursor");
    let (_, second) = b
        .get(
            &admin,
            &format!("/v1/admin/audit?agent=eve&limit=2&before={next}"),
        )
        .await;
    assert_eq!(second["events"][0]["id"], all[2]["id"]);
    assert_eq!(second["events"][1]["detail"]["obj"], "mailbox:x1");
    for e in all {
        for field in ["id", "at", "kind", "agent", "detail"] {
            assert!(!e[field].is_null(), "{field} in {e}");
        }
    }
    let (status, v) = b.get(&admin, "/v1/admin/audit?kind=nope").await;
    assert_eq!(
        (status, v["error"]["details"]["field"].as_str()),
        (422, Some("kind"))
    );
    let (status, _) = b.get(&admin, "/v1/admin/audit?before=garbage").await;
    assert_eq!(status, 422);
    let (_, v) = b
        .get(
            &admin,
            "/v1/admin/audit?agent=eve&since=2999-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(v["events"], json!([]));
}

both_engines!(
    agents_and_api_keys,
    non_admins_are_refused,
    stats_count_what_is_there,
    denials_raise_one_alert,
    audit_pages_newest_first,
);

/// A broker on a private copy of the shipped policy; answers it and the copy's path.
fn broker_with_policy_copy(engine: EngineKind) -> (Broker, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.csv");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/casbin/policy.csv"),
    )
    .expect("shipped policy");
    std::fs::write(
        &policy,
        format!("# Site policy: keep this comment\n{shipped}\n# trailing note\n"),
    )
    .expect("write policy");
    let p = policy.display().to_string();
    let b = Broker::start_with(engine, &[("MAILBOX__PERMISSIONS__POLICY", p.as_str())]);
    (b, dir, policy)
}

async fn allowed(b: &Broker, sub: &str, obj: &str, act: &str) -> bool {
    let (status, v) = b
        .get(
            &b.admin_token("ops"),
            &format!("/v1/admin/policies/check?sub={sub}&obj={obj}&act={act}"),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["allowed"].as_bool().expect("allowed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_edits_take_effect_and_are_written_back() {
    let (b, _dir, file) = broker_with_policy_copy(EngineKind::Memory);
    let admin = b.admin_token("ops");
    let (status, list) = b.get(&admin, "/v1/admin/policies").await;
    assert_eq!(status, 200);
    assert!(list["policies"]
        .as_array()
        .expect("policies")
        .contains(&json!({"ptype": "p", "rule": ["admin", "*", "*"]})));

    let rule = json!({"ptype": "g", "rule": ["carol", "admin"]});
    assert!(!allowed(&b, "carol", "broadcast", "send").await);
    let (status, v) = b.post(&admin, "/v1/admin/policies", &rule).await;
    assert_eq!(status, 201, "{v}");
    assert!(
        allowed(&b, "carol", "broadcast", "send").await,
        "in force at once"
    );
    let (status, _) = b.post(&admin, "/v1/admin/policies", &rule).await;
    assert_eq!(status, 409);
    let text = std::fs::read_to_string(&file).expect("policy");
    assert!(
        text.starts_with("# Site policy: keep this comment\n"),
        "{text}"
    );
    assert!(
        text.contains("# trailing note\ng, carol, admin\n"),
        "{text}"
    );
    assert!(text.contains("# Casbin") || text.contains("p, agent, mailbox:$self, read"));

    // Many edits at once: none is lost.
    let adds = (0..8).map(|i| {
        let b = &b;
        let admin = admin.clone();
        async move {
            let r = json!({"ptype": "p", "rule": [format!("bot{i}"), "topic:ops.#", "subscribe"]});
            b.post(&admin, "/v1/admin/policies", &r).await.0
        }
    });
    let statuses = futures_util::future::join_all(adds).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let text = std::fs::read_to_string(&file).expect("policy");
    for i in 0..8 {
        assert!(
            text.contains(&format!("p, bot{i}, topic:ops.#, subscribe\n")),
            "{text}"
        );
    }

    let (status, _) = b.delete(&admin, "/v1/admin/policies", Some(&rule)).await;
    assert_eq!(status, 204);
    let (status, v) = b.delete(&admin, "/v1/admin/policies", Some(&rule)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(!allowed(&b, "carol", "broadcast", "send").await);
    let text = std::fs::read_to_string(&file).expect("policy");
    assert!(!text.contains("g, carol, admin"));
    assert!(text.starts_with("# Site policy: keep this comment\n"));

    for bad in [
        json!({"ptype": "x", "rule": ["a", "b"]}),
        json!({"ptype": "p", "rule": ["a", "b"]}),
        json!({"ptype": "p", "rule": ["a", "b, c", "d"]}),
    ] {
        let (status, v) = b.post(&admin, "/v1/admin/policies", &bad).await;
        assert_eq!(status, 422, "{bad}: {v}");
    }
    let (status, _) = b
        .post_raw(&admin, "/v1/admin/policies", b"{nope".to_vec())
        .await;
    assert_eq!(status, 400);
    let (status, v) = b.get(&admin, "/v1/admin/policies/check?sub=a&obj=b").await;
    assert_eq!(
        (status, v["error"]["details"]["field"].as_str()),
        (422, Some("act"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_reload_and_a_garbage_file_keeps_the_old_policy() {
    let (b, _dir, file) = broker_with_policy_copy(EngineKind::Redis);
    let admin = b.admin_token("ops");
    // A hand edit takes effect within 2 s.
    let mut text = std::fs::read_to_string(&file).expect("policy");
    text.push_str("p, dana, broadcast, send\n");
    std::fs::write(&file, &text).expect("hand edit");
    let start = Instant::now();
    while !allowed(&b, "dana", "broadcast", "send").await {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "hand edit not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = b
        .post(&admin, "/v1/admin/policies/reload", &json!({}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], "ok");
    assert_eq!(v["rules"], 10);

    // Garbage: the API reload answers 422 with the parse error; the old policy stays.
    std::fs::write(&file, "p, only-two-fields\nthis is not a policy\n").expect("garbage");
    let (status, v) = b
        .post(&admin, "/v1/admin/policies/reload", &json!({}))
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1")),
        "{v}"
    );
    assert!(
        allowed(&b, "dana", "broadcast", "send").await,
        "old policy kept"
    );
    assert!(allowed(&b, "bob", "mailbox:bob", "read").await);
    let events = audit_until(&b, "kind=policy_reload", |e| {
        e.iter().any(|e| e["detail"]["result"] == "error")
    })
    .await;
    assert!(events.iter().any(|e| e["detail"]["result"] == "ok"));
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("mailbox_policy_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    // An edit through the API refuses to build on a file that does not load.
    let (status, _) = b
        .post(
            &admin,
            "/v1/admin/policies",
            &json!({"ptype": "g", "rule": ["x", "admin"]}),
        )
        .await;
    assert_eq!(status, 422);
}
