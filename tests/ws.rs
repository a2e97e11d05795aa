//! WebSocket sessions (SPEC section 6) with a real client against the real broker.

mod common;

use std::time::Duration;

use common::{Broker, EngineKind};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, recv, send, subscribe, Ws, WAIT};

/// Reads `n` message frames and answers their seqs.
async fn messages(ws: &mut Ws, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let f = recv(ws).await;
        assert_eq!(f["type"], "message", "{f}");
        seqs.push(
            f["message"]["seq"]
                .as_str()
                .expect("seq")
                .parse()
                .expect("numeric"),
        );
    }
    seqs
}

async fn send_many(b: &Broker, to: &str, n: usize, senders: usize) {
    let mut tasks = Vec::new();
    for w in 0..senders {
        let (http, url, token) = (
            b.http.clone(),
            b.url("/v1/messages"),
            b.token(&format!("sender{w}")),
        );
        let to = to.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / senders {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"to": to, "payload": format!("{w}-{i}")}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status().as_u16(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender task");
    }
}

fn contiguous(seqs: &[u64], first: u64) {
    let want: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, want.as_slice(), "every message once, in stored order");
}

async fn rest_sends_are_pushed_once_in_order(b: &Broker) {
    let mut ws = connect(b, "bob").await;
    let sub = subscribe(&mut ws, "mailbox:bob", "latest").await;
    send_many(b, "mailbox:bob", 300, 10).await;
    let f = recv(&mut ws).await;
    assert_eq!(
        (f["type"].as_str(), f["subscription"].as_str()),
        (Some("message"), Some(sub.as_str()))
    );
    assert_eq!(f["message"]["mailbox"], "bob");
    let mut seqs = vec![f["message"]["seq"]
        .as_str()
        .expect("seq")
        .parse::<u64>()
        .expect("n")];
    seqs.extend(messages(&mut ws, 299).await);
    contiguous(&seqs, 1);
}

async fn resume_from_last_seq_gets_exactly_what_was_missed(b: &Broker) {
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "beginning").await;
    b.send("alice", "bob", json!({"payload": "first"})).await;
    let last = messages(&mut ws, 1).await[0];
    drop(ws);
    send_many(b, "mailbox:bob", 500, 5).await;
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", &last.to_string()).await;
    let got = messages(&mut ws, 500).await;
    contiguous(&got, last + 1);
    // Again, with sends continuing while the backlog replays.
    drop(ws);
    send_many(b, "mailbox:bob", 300, 3).await;
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", &(last + 500).to_string()).await;
    let (during, got) = tokio::join!(send_many(b, "mailbox:bob", 300, 3), messages(&mut ws, 600));
    let () = during;
    contiguous(&got, last + 501);
    send(&mut ws, json!({"op": "ping", "ref": "p"})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "pong", "ref": "p"}),
        "nothing more was sent"
    );
}

async fn unread_mode_and_ops_over_the_socket(b: &Broker) {
    b.send("alice", "bob", json!({"payload": 1})).await;
    b.send("alice", "bob", json!({"payload": 2})).await;
    b.post(
        &b.token("bob"),
        "/v1/mailboxes/bob/read",
        &json!({"up_to": "1"}),
    )
    .await;
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "unread").await;
    assert_eq!(messages(&mut ws, 1).await, vec![2], "only the unread one");
    // send, read and unsubscribe over the same socket; every ref is echoed.
    send(
        &mut ws,
        json!({"op": "send", "ref": "s", "message": {"to": "mailbox:carol", "payload": "hi"}}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (
            ok["type"].as_str(),
            ok["ref"].as_str(),
            ok["status"].as_str()
        ),
        (Some("ok"), Some("s"), Some("stored")),
        "{ok}"
    );
    send(
        &mut ws,
        json!({"op": "read", "ref": "r", "mailbox": "bob", "up_to": "2"}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "ok", "ref": "r", "unread": 0})
    );
    send(
        &mut ws,
        json!({"op": "unsubscribe", "ref": "u", "subscription": "s1"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "ok");
    b.send("alice", "bob", json!({"payload": 3})).await;
    send(&mut ws, json!({"op": "ping", "ref": "p"})).await;
    assert_eq!(
        recv(&mut ws).await["type"],
        "pong",
        "no push after unsubscribe"
    );
    let (_, page) = b
        .get(&b.token("carol"), "/v1/mailboxes/carol/messages")
        .await;
    assert_eq!(
        page["messages"][0]["from"], "bob",
        "the socket's send came from the token's agent"
    );
}

async fn bad_frames_get_errors_and_the_session_survives(b: &Broker) {
    let mut ws = connect(b, "bob").await;
    for (frame, r) in [
        (Message::Text("not json".into()), Value::Null),
        (
            Message::Text(json!({"op": "dance", "ref": "d"}).to_string().into()),
            json!("d"),
        ),
        (Message::Text("[1,2]".into()), Value::Null),
        (Message::Binary(vec![1u8, 2, 3].into()), Value::Null),
    ] {
        ws.send(frame).await.expect("send");
        let e = recv(&mut ws).await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some("bad_request")),
            "{e}"
        );
        assert_eq!(e.get("ref").cloned().unwrap_or(Value::Null), r);
    }
    send(
        &mut ws,
        json!({"op": "subscribe", "ref": "x", "target": "mailbox:alice"}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("permission_denied"), Some("x"))
    );
    send(
        &mut ws,
        json!({"op": "subscribe", "ref": "y", "target": "mailbox:bob", "from": "yesterday"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], "validation_failed");
    send(
        &mut ws,
        json!({"op": "send", "ref": "z", "message": {"to": "mailbox:Nope", "payload": 1}}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["details"]["field"].as_str()),
        (Some("validation_failed"), Some("to"))
    );
    // A value that breaks a rule is `validation_failed` naming the field, as over REST.
    for (frame, field) in [
        (
            json!({"op": "send", "ref": "p", "message": {"to": "mailbox:bob", "payload": 1, "priority": "super"}}),
            "message.priority",
        ),
        (
            json!({"op": "send", "ref": "t", "message": {"to": "mailbox:bob", "payload": 1, "ttl_seconds": -5}}),
            "message.ttl_seconds",
        ),
        (json!({"op": "subscribe", "ref": "m"}), "target"),
    ] {
        send(&mut ws, frame.clone()).await;
        let e = recv(&mut ws).await;
        assert_eq!(
            (e["code"].as_str(), e["details"]["field"].as_str()),
            (Some("validation_failed"), Some(field)),
            "{frame}: {e}"
        );
        assert_eq!(e["ref"], frame["ref"]);
    }
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    b.send("alice", "bob", json!({"payload": "still works"}))
        .await;
    assert_eq!(recv(&mut ws).await["message"]["payload"], "still works");
}

async fn bad_token_is_refused_before_upgrade(b: &Broker) {
    let mut req = b.ws_url().into_client_request().expect("request");
    req.headers_mut()
        .insert("authorization", "Bearer nonsense".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    // ?token= works for clients that cannot set headers.
    let url = format!("{}?token={}", b.ws_url(), b.token("bob"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect with ?token=");
    assert_eq!(recv(&mut ws).await["agent"], "bob");
}

async fn pushes_are_delivery_attempts_settled_over_the_socket(b: &Broker) {
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    let first = b
        .send(
            "alice",
            "bob",
            json!({"payload": "do it", "require_ack": true}),
        )
        .await;
    let f = recv(&mut ws).await;
    assert_eq!(
        (f["message"]["id"].clone(), f["message"]["attempt"].clone()),
        (first["id"].clone(), json!(1))
    );
    // In flight with the socket: a REST consumer does not get it too.
    let (s, got) = b
        .post(
            &b.token("bob"),
            "/v1/mailboxes/bob/receive",
            &json!({"max": 10}),
        )
        .await;
    assert_eq!(
        (s, got["messages"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{got}"
    );
    send(
        &mut ws,
        json!({"op": "ack", "ref": "a", "mailbox": "bob", "id": first["id"]}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (
            ok["type"].as_str(),
            ok["ref"].as_str(),
            ok["status"].as_str()
        ),
        (Some("ok"), Some("a"), Some("acked")),
        "{ok}"
    );
    send(
        &mut ws,
        json!({"op": "ack", "ref": "again", "mailbox": "bob", "id": first["id"]}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await["code"],
        "conflict",
        "a second ack is refused, harmlessly"
    );

    let second = b
        .send(
            "alice",
            "bob",
            json!({"payload": "no thanks", "require_ack": true}),
        )
        .await;
    assert_eq!(recv(&mut ws).await["message"]["id"], second["id"]);
    send(&mut ws, json!({"op": "nack", "ref": "n", "mailbox": "bob", "id": second["id"], "requeue": false, "reason": "cannot"})).await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (ok["ref"].as_str(), ok["status"].as_str()),
        (Some("n"), Some("dead_lettered")),
        "{ok}"
    );
    let (_, dl) = b.get(&b.token("bob"), "/v1/dead-letters?mailbox=bob").await;
    assert_eq!(dl["dead_letters"][0]["reason"], "rejected", "{dl}");
    let (_, info) = b.get(&b.token("bob"), "/v1/mailboxes/bob").await;
    assert_eq!(info["pending_acks"], 0);

    // Replay counts too: settled messages come without an attempt, a fresh one as attempt 1.
    drop(ws);
    let third = b
        .send(
            "alice",
            "bob",
            json!({"payload": "while away", "require_ack": true}),
        )
        .await;
    let mut ws = connect(b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "beginning").await;
    let replay: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(recv(&mut ws).await["message"].clone());
        }
        v
    };
    assert_eq!(replay[2]["id"], third["id"]);
    assert_eq!(
        (replay[0].get("attempt"), replay[2]["attempt"].clone()),
        (None, json!(1))
    );
    let (_, info) = b.get(&b.token("bob"), "/v1/mailboxes/bob").await;
    assert_eq!(info["pending_acks"], 1, "the replayed one is in flight");
}

both_engines!(
    pushes_are_delivery_attempts_settled_over_the_socket,
    rest_sends_are_pushed_once_in_order,
    resume_from_last_seq_gets_exactly_what_was_missed,
    unread_mode_and_ops_over_the_socket,
    bad_frames_get_errors_and_the_session_survives,
    bad_token_is_refused_before_upgrade,
);

async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(c))) => return c.map(|c| c.code),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_closes_with_1009() {
    let b = Broker::start_with(
        EngineKind::Memory,
        &[("MAILBOX__WS__MAX_FRAME_BYTES", "4096")],
    );
    let mut ws = connect(&b, "bob").await;
    send(&mut ws, json!({"op": "ping", "x": "y".repeat(10_000)})).await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_with_1013_and_resumes_losing_nothing() {
    let b = Broker::start_with(EngineKind::Redis, &[("MAILBOX__WS__MAX_PENDING", "16")]);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    // Do not read while 1500 messages of 16 KiB are pushed: socket buffers fill, the queue too.
    let big = "x".repeat(16 * 1024);
    let (http, url, token) = (b.http.clone(), b.url("/v1/messages"), b.token("alice"));
    for i in 0..1500 {
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"to": "mailbox:bob", "payload": big, "metadata": {"i": i}}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 201);
    }
    let mut seqs = Vec::new();
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                seqs.push(
                    v["message"]["seq"]
                        .as_str()
                        .expect("seq")
                        .parse::<u64>()
                        .expect("n"),
                );
            }
            Some(Ok(Message::Close(c))) => break c.map(|c| c.code),
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Again));
    assert!(seqs.len() < 1500, "the consumer was cut before the end");
    contiguous(&seqs, 1);
    let last = seqs.last().copied().unwrap_or(0);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", &last.to_string()).await;
    let rest = messages(&mut ws, 1500 - seqs.len()).await;
    contiguous(&rest, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sessions_are_dropped_after_two_heartbeats() {
    let b = Broker::start_with(
        EngineKind::Memory,
        &[("MAILBOX__WS__HEARTBEAT_SECONDS", "1")],
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={}", b.ws_url(), b.token("bob")))
            .await
            .expect("connect");
    // Take the welcome, then stay silent: no frames, no pongs (tungstenite answers pings only
    // while it is being read).
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("welcome")
        .expect("open")
        .expect("frame");
    assert!(matches!(first, Message::Text(_)));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut closed = false;
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, ws.next()).await {
        match m {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a silent session is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_with_1001() {
    let mut b = Broker::start(EngineKind::Memory);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    let broker_exit = tokio::task::spawn_blocking(move || {
        let status = b.terminate();
        (b, status)
    });
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
    let (_b, status) = broker_exit.await.expect("join");
    assert!(status.success(), "graceful exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_library_resumes_across_a_broker_restart() {
    let mut b = Broker::start(EngineKind::Redis);
    let mut sub = mailbox::client::Subscriber::spawn(
        &b.url(""),
        &b.token("bob"),
        "mailbox:bob",
        Some("beginning"),
    );
    b.send("alice", "bob", json!({"payload": 0})).await;
    let mut seen = Vec::new();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    seen.push(m.seq.parse::<u64>().expect("n"));
    for i in 1..100 {
        b.send("alice", "bob", json!({"payload": i})).await;
    }
    b.crash_and_restart();
    for i in 100..200 {
        b.send("alice", "bob", json!({"payload": i})).await;
    }
    while seen.len() < 200 {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        seen.push(m.seq.parse::<u64>().expect("n"));
    }
    contiguous(&seen, 1);
    assert_eq!(sub.last_seq().as_deref(), Some("200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sessions() {
    let b = Broker::start(EngineKind::Redis);
    let mut sockets = Vec::new();
    for i in 0..1000 {
        let mut ws = connect(&b, &format!("agent{i}")).await;
        subscribe(&mut ws, &format!("mailbox:agent{i}"), "latest").await;
        sockets.push(ws);
    }
    let (_, stats) = b.get(&b.token("x"), "/health/ready").await;
    assert_eq!(stats["status"], "ready");
    for i in (0..1000).step_by(10) {
        b.send("alice", &format!("agent{i}"), json!({"payload": i}))
            .await;
    }
    for (i, ws) in sockets.iter_mut().enumerate().step_by(10) {
        let f = recv(ws).await;
        assert_eq!(f["message"]["payload"], json!(i));
    }
    let text = b
        .http
        .get(b.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.lines().any(|l| l == "mailbox_ws_sessions 1000"),
        "gauge counts every session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_accepted_by_node_a_reaches_a_session_on_node_b() {
    let a = Broker::start(EngineKind::Redis);
    let b = Broker::another_node(&a);
    let mut ws = connect(&b, "bob").await;
    subscribe(&mut ws, "mailbox:bob", "latest").await;
    // The subscription made node B's mailbox actor live; node A accepts every send.
    for i in 0..50 {
        a.send("alice", "bob", json!({"payload": i})).await;
    }
    contiguous(&messages(&mut ws, 50).await, 1);
    // A long-poll on node B wakes for a send accepted by node A.
    let (http, url, token) = (
        b.http.clone(),
        b.url("/v1/mailboxes/bob/messages?after=50&wait=20"),
        b.token("bob"),
    );
    let poll = tokio::spawn(async move {
        common::status_json(http.get(url).bearer_auth(token).send().await.expect("poll")).await
    });
    let waker = a.send("alice", "bob", json!({"payload": "wake"})).await;
    let (s, page) = tokio::time::timeout(WAIT, poll)
        .await
        .expect("poll answered")
        .expect("task");
    assert_eq!(s, 200);
    assert_eq!(page["messages"][0]["id"], waker["id"]);
    assert_eq!(messages(&mut ws, 1).await, vec![51]);
}
