//! Blobs (SPEC section 3): `POST /v1/blobs` streams a body into storage in chunks and answers
//! `{id, size, sha256}`, `GET /v1/blobs/{id}` streams it back byte for byte; messages carry
//! `"blob": id` over REST, WebSocket and MCP; a referencing message keeps its blob alive; a
//! blob uploaded on one node is downloaded from another. On both engines, real binary.

mod common;
mod delivery_support;

use std::time::Duration;

use common::ws::{connect, recv, send, subscribe};
use common::{Broker, EngineKind};
use delivery_support::eventually;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// A 3 MiB blob limit, so "over the limit" is quick to reach.
const LIMITED: &[(&str, &str)] = &[("MAILBOX__LIMITS__MAX_BLOB_BYTES", "3145728")];
/// Blobs live 2 s unless a message references them.
const SHORT_LIVED: &[(&str, &str)] = &[("MAILBOX__LIMITS__BLOB_TTL_SECONDS", "2")];

/// Deterministic bytes that do not compress or repeat at chunk boundaries.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Uploads `body` as `agent`; answers the status, the JSON body and the `Location` header.
async fn upload(
    b: &Broker,
    agent: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Value, Option<String>) {
    let r = b
        .http
        .post(b.url("/v1/blobs"))
        .bearer_auth(b.token(agent))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /v1/blobs");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (s, v) = common::status_json(r).await;
    (s, v, location)
}

/// Uploads and asserts 201; answers the blob id.
async fn stored(b: &Broker, agent: &str, body: Vec<u8>) -> String {
    let (s, v, _) = upload(b, agent, body, "application/octet-stream").await;
    assert_eq!(s, 201, "upload: {v}");
    v["id"].as_str().expect("id").to_owned()
}

/// Downloads blob `id` as `agent`: status, headers and body.
async fn download(b: &Broker, agent: &str, id: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = b
        .http
        .get(b.url(&format!("/v1/blobs/{id}")))
        .bearer_auth(b.token(agent))
        .send()
        .await
        .expect("GET /v1/blobs/{id}");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("blob body").to_vec();
    (status, headers, body)
}

async fn upload_and_download_are_byte_exact(b: &Broker) {
    for (n, seed) in [(5 * MIB / 2, 1), (MIB, 2), (10, 3)] {
        let data = bytes(n, seed);
        let (s, v, location) = upload(b, "alice", data.clone(), "image/png").await;
        assert_eq!(s, 201, "{n} bytes: {v}");
        let id = v["id"].as_str().expect("id");
        assert_eq!(v["size"], json!(n), "{v}");
        assert_eq!(v["sha256"], json!(sha256_hex(&data)), "{v}");
        assert_eq!(
            location.as_deref(),
            Some(format!("/v1/blobs/{id}").as_str())
        );

        // Another agent downloads it: the very bytes, their type, length and digest.
        let (s, headers, body) = download(b, "bob", id).await;
        assert_eq!(s, 200);
        assert_eq!(body.len(), n);
        assert!(body == data, "{n} bytes come back byte for byte");
        let header = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("content-type").as_deref(), Some("image/png"));
        assert_eq!(header("content-length"), Some(n.to_string()));
        let etag = format!("\"{}\"", sha256_hex(&data));
        assert_eq!(header("etag"), Some(etag.clone()));

        // A client holding this copy is told so.
        let r = b
            .http
            .get(b.url(&format!("/v1/blobs/{id}")))
            .bearer_auth(b.token("bob"))
            .header("if-none-match", etag)
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(r.status().as_u16(), 304);
    }
    let m = b.metrics().await;
    assert!(
        m.lines().any(
            |l| l.starts_with(r#"mailbox_blob_bytes_total{direction="in"}"#)
                && l.split(' ').nth(1).and_then(|v| v.parse::<u64>().ok())
                    >= Some((7 * MIB / 2 + 10) as u64)
        ),
        "mailbox_blob_bytes_total counts uploads"
    );
}

/// Uploads `data` with `Transfer-Encoding: chunked` (no length announced) over a raw
/// connection, 64 KiB per chunk, and answers the status and JSON body. Stops writing if the
/// server answers early and closes.
async fn chunked_upload(b: &Broker, agent: &str, data: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", b.port))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/blobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        b.token(agent)
    );
    let write = async {
        conn.write_all(head.as_bytes()).await?;
        for c in data.chunks(64 * 1024) {
            conn.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .await?;
            conn.write_all(c).await?;
            conn.write_all(b"\r\n").await?;
        }
        conn.write_all(b"0\r\n\r\n").await
    };
    // The server may refuse mid-body and close: what matters is its answer.
    let _ = tokio::time::timeout(Duration::from_secs(30), write).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Blob keys in the broker's Redis (none on the memory engine, which has no Redis).
fn blob_keys(b: &Broker) -> Vec<String> {
    let Some(redis) = &b.redis else {
        return Vec::new();
    };
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--scan",
            "--pattern",
            "*:blob:*",
        ])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn over_the_limit_is_413_and_nothing_is_stored(b: &Broker) {
    let limit = 3 * MIB;
    // Announced too large: refused before a byte is stored.
    let (s, v, _) = upload(b, "alice", bytes(limit + 1, 5), "application/octet-stream").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    // Streamed without a length: refused when the limit is passed, after three chunks were
    // already stored; they are removed.
    let (s, v) = chunked_upload(b, "alice", &bytes(limit + 1, 6)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    assert_eq!(
        blob_keys(b),
        Vec::<String>::new(),
        "nothing of the refused uploads is kept"
    );
    // Exactly at the limit is fine.
    let data = bytes(limit, 7);
    let id = stored(b, "alice", data.clone()).await;
    assert!(download(b, "alice", &id).await.2 == data);
    if b.redis.is_some() {
        let keys = blob_keys(b);
        assert_eq!(keys.len(), 2, "one data and one meta key: {keys:?}");
        assert!(
            keys.iter().all(|k| k.contains(&format!(":blob:{{{id}}}:"))),
            "both under the blob's hash tag: {keys:?}"
        );
    }
}

async fn unknown_blobs_are_404_and_refused_on_send(b: &Broker) {
    let alice = b.token("alice");
    for id in ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-blob-id"] {
        let (s, v) = b.get(&alice, &format!("/v1/blobs/{id}")).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{v}"
        );
    }
    // A send that references a blob nobody uploaded is refused, and stores nothing.
    let (s, v) = b
        .post(
            &alice,
            "/v1/messages",
            &json!({"to": "mailbox:bob", "blob": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("blob"),
        "{v}"
    );
    assert_eq!(b.total("bob").await, 0);
    // Payload and blob together, or a blob id that is no id, break a rule.
    let id = stored(b, "alice", bytes(10, 8)).await;
    for body in [
        json!({"to": "mailbox:bob", "blob": id, "payload": "x"}),
        json!({"to": "mailbox:bob", "blob": "nope"}),
    ] {
        let (s, v) = b.post(&alice, "/v1/messages", &body).await;
        assert_eq!(
            (s, v["error"]["details"]["field"].as_str()),
            (422, Some("blob")),
            "{v}"
        );
    }
    // An empty body is no blob.
    let (s, v, _) = upload(b, "alice", Vec::new(), "text/plain").await;
    assert_eq!(
        (s, v["error"]["details"]["field"].as_str()),
        (422, Some("body")),
        "{v}"
    );
    // Same bearer token rule as every /v1 route.
    let r = b
        .http
        .get(b.url(&format!("/v1/blobs/{id}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let r = b
        .http
        .post(b.url("/v1/blobs"))
        .body("x")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401);
}

/// The one message in `messages` carrying `blob`.
fn with_blob<'a>(messages: &'a [Value], blob: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["blob"] == blob)
        .unwrap_or_else(|| panic!("no message with blob {blob} in {messages:?}"))
}

async fn messages_carry_blobs_over_rest_ws_and_mcp(b: &Broker) {
    let data = bytes(3 * MIB / 2, 9);
    let id = stored(b, "alice", data.clone()).await;
    let mut bob = connect(b, "bob").await;
    subscribe(&mut bob, "mailbox:bob", "latest").await;

    // REST send: pushed live with the blob id, no payload.
    b.send(
        "alice",
        "bob",
        json!({"blob": id, "correlation_id": "c-rest"}),
    )
    .await;
    let pushed = recv(&mut bob).await;
    assert_eq!(pushed["type"], "message", "{pushed}");
    assert_eq!(pushed["message"]["blob"], json!(id), "{pushed}");
    assert_eq!(pushed["message"]["payload"], Value::Null, "{pushed}");
    assert_eq!(
        pushed["message"]["content_type"],
        "application/octet-stream"
    );

    // WebSocket send.
    let mut alice = connect(b, "alice").await;
    send(
        &mut alice,
        json!({"op": "send", "ref": "s1", "message": {"to": "mailbox:bob", "blob": id, "correlation_id": "c-ws"}}),
    )
    .await;
    let ok = recv(&mut alice).await;
    assert_eq!(
        (ok["type"].as_str(), ok["ref"].as_str()),
        (Some("ok"), Some("s1")),
        "{ok}"
    );
    let pushed = recv(&mut bob).await;
    assert_eq!(pushed["message"]["blob"], json!(id), "{pushed}");
    assert_eq!(pushed["message"]["correlation_id"], "c-ws");
    // An unknown blob over the socket: an error frame, the session stays.
    send(
        &mut alice,
        json!({"op": "send", "ref": "s2", "message": {"to": "mailbox:bob", "blob": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}),
    )
    .await;
    let err = recv(&mut alice).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{err}"
    );

    // MCP send_message with the blob, then check_inbox hands it over with its id.
    let mcp = |agent: &str, id: u32, name: &str, arguments: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}});
        b.http
            .post(b.url("/mcp"))
            .bearer_auth(b.token(agent))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
    };
    let r = mcp(
        "alice",
        1,
        "send_message",
        json!({"to": "mailbox:bob", "payload": null, "blob": id, "correlation_id": "c-mcp"}),
    )
    .await
    .expect("MCP send");
    let v: Value = r.json().await.expect("JSON-RPC");
    assert_eq!(v["result"]["isError"], false, "{v}");
    let pushed = recv(&mut bob).await;
    assert_eq!(pushed["message"]["correlation_id"], "c-mcp", "{pushed}");

    // Browsing shows all three, each carrying the blob; the blob downloads whole.
    let all = b.messages("bob").await;
    assert_eq!(all.len(), 3);
    for c in ["c-rest", "c-ws", "c-mcp"] {
        let m = all.iter().find(|m| m["correlation_id"] == c).expect(c);
        assert_eq!(with_blob(std::slice::from_ref(m), &id)["from"], "alice");
    }
    let r = mcp("bob", 2, "check_inbox", json!({"max": 10}))
        .await
        .expect("MCP check_inbox");
    let v: Value = r.json().await.expect("JSON-RPC");
    let got = v["result"]["structuredContent"]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(got.len(), 3, "{v}");
    assert_eq!(with_blob(&got, &id)["from"], "alice");
    let (s, _, body) = download(b, "bob", &id).await;
    assert_eq!(s, 200);
    assert!(body == data);
}

async fn a_referencing_message_extends_the_blob_expiry(b: &Broker) {
    let kept_data = bytes(MIB + 5, 10);
    let kept = stored(b, "alice", kept_data.clone()).await;
    let lapsed = stored(b, "alice", bytes(100, 11)).await;
    let forever = stored(b, "alice", bytes(100, 12)).await;
    b.send("alice", "bob", json!({"blob": kept, "ttl_seconds": 3600}))
        .await;
    b.send("alice", "bob", json!({"blob": forever})).await;
    // The unreferenced blob goes after its TTL (2 s)...
    eventually(
        Duration::from_secs(15),
        "the unreferenced blob to expire",
        || async { (download(b, "bob", &lapsed).await.0 == 404).then_some(()) },
    )
    .await;
    // ...the referenced ones stay, whole.
    let (s, _, body) = download(b, "bob", &kept).await;
    assert_eq!(s, 200);
    assert!(body == kept_data);
    assert_eq!(download(b, "bob", &forever).await.0, 200);
    if let Some(redis) = &b.redis {
        let ttl = |key: String| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &redis.port.to_string(), "PTTL", &key])
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<i64>()
                .expect("PTTL")
        };
        for part in ["meta", "data"] {
            let t = ttl(format!("mailbox:blob:{{{kept}}}:{part}"));
            assert!(t > 3_000_000, "{part} kept as long as the message: {t} ms");
            let t = ttl(format!("mailbox:blob:{{{forever}}}:{part}"));
            assert_eq!(
                t, -1,
                "{part} of a blob referenced by a message without ttl: kept"
            );
        }
    }
}

on_both_engines!(
    upload_and_download_are_byte_exact: LIMITED,
    over_the_limit_is_413_and_nothing_is_stored: LIMITED,
    unknown_blobs_are_404_and_refused_on_send: LIMITED,
    messages_carry_blobs_over_rest_ws_and_mcp: LIMITED,
    a_referencing_message_extends_the_blob_expiry: SHORT_LIVED,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_uploaded_on_one_node_is_read_on_another() {
    let a = Broker::start(EngineKind::Redis);
    let b = Broker::another_node(&a);
    let data = bytes(5 * MIB / 2, 13);
    let id = stored(&a, "alice", data.clone()).await;
    let (s, headers, body) = download(&b, "bob", &id).await;
    assert_eq!(s, 200);
    assert!(body == data, "node B serves node A's blob byte for byte");
    assert_eq!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{}\"", sha256_hex(&data)).as_str())
    );
    // A message sent through node B may reference it, and node A's reader gets it.
    let (s, v) = b
        .post(
            &b.token("carol"),
            "/v1/messages",
            &json!({"to": "mailbox:bob", "blob": id}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let got = a.messages("bob").await;
    assert_eq!(with_blob(&got, &id)["from"], "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_whose_bytes_expired_before_its_meta_is_404_not_a_cut_200() {
    let b = Broker::start(EngineKind::Redis);
    let id = stored(&b, "alice", bytes(100, 14)).await;
    // The bytes go first, as when the blob's keys expire one after the other during a download.
    let redis = b.redis.as_ref().expect("a Redis broker");
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "DEL"])
        .arg(format!("mailbox:blob:{{{id}}}:data"))
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let (s, _, body) = download(&b, "bob", &id).await;
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("an error body");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
}
