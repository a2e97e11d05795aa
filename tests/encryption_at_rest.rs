//! Encryption at rest (SPEC section 8, "Secure transport and data at rest":
//! `storage.encryption_key_file`, `storage.encryption_key_files`): with a key, nothing a message
//! says (payload, metadata, tags, correlation id, sender) nor a blob's bytes can be read from
//! Redis (every key and value, and its AOF files) or from the spool; reads give the exact bytes
//! back; keys rotate (A → [B, A] → [B]) with old messages readable while their key is listed and
//! failing alone, naming the key id, when it is not; no key material in any log line.

mod common;
#[path = "common/secure.rs"]
mod secure;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{mint, status_json, RedisServer};
use secure::LoggedBroker;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Writes a key file (base64 of 32 bytes, trailing newline) and answers (path, base64, key id).
fn key_file(dir: &Path, name: &str, seed: u8) -> (String, String, String) {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let path = dir.join(name);
    std::fs::write(&path, format!("{b64}\n")).expect("write key file");
    let id: String = Sha256::digest(&raw)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path.display().to_string(), b64, id)
}

fn broker(redis: &RedisServer, keys: (&str, &str)) -> LoggedBroker {
    LoggedBroker::start(&[
        ("MAILBOX__STORAGE__ENGINE", "redis"),
        ("MAILBOX__REDIS__URL", &redis.url()),
        keys,
    ])
}

/// Every key name and every value in Redis, as bytes (strings, hashes, sets, sorted sets with
/// scores, lists, streams).
async fn dump_redis(redis: &RedisServer) -> Vec<u8> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(!keys.is_empty(), "the broker stored something");
    let mut out = Vec::new();
    for k in keys {
        out.extend_from_slice(&k);
        out.push(b'\n');
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .expect("TYPE");
        let v: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&k).query_async(&mut c).await,
            "hash" => redis::cmd("HGETALL").arg(&k).query_async(&mut c).await,
            "set" => redis::cmd("SMEMBERS").arg(&k).query_async(&mut c).await,
            "zset" => {
                redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
            }
            "list" => {
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            }
            "stream" => {
                redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut c)
                    .await
            }
            other => panic!("unexpected Redis type {other}"),
        }
        .expect("read value");
        flatten(&v, &mut out);
    }
    // The AOF files too (what a backup or a replica gets).
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query_async(&mut c)
        .await
        .expect("CONFIG GET dir");
    out.extend(files_under(Path::new(&dir[1])));
    out
}

fn flatten(v: &redis::Value, out: &mut Vec<u8>) {
    match v {
        redis::Value::BulkString(b) => out.extend_from_slice(b),
        redis::Value::SimpleString(s) => out.extend_from_slice(s.as_bytes()),
        redis::Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        redis::Value::Array(a) | redis::Value::Set(a) => a.iter().for_each(|x| flatten(x, out)),
        redis::Value::Map(m) => m.iter().for_each(|(k, x)| {
            flatten(k, out);
            flatten(x, out);
        }),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
    out.push(b'\n');
}

/// The bytes of every file under `dir`.
fn files_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const SECRETS: [&str; 5] = [
    "PAYLOAD-MARK-71b2",
    "META-MARK-93c4",
    "CORR-MARK-5d6e",
    "TAG-MARK-2f80",
    "BLOB-MARK-44a1",
];

async fn post(
    http: &reqwest::Client,
    b: &LoggedBroker,
    agent: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    status_json(
        http.post(b.url(path))
            .bearer_auth(mint(agent, &[], 300))
            .json(&body)
            .send()
            .await
            .expect("POST"),
    )
    .await
}

async fn get(http: &reqwest::Client, b: &LoggedBroker, agent: &str, path: &str) -> (u16, Value) {
    status_json(
        http.get(b.url(path))
            .bearer_auth(mint(agent, &[], 300))
            .send()
            .await
            .expect("GET"),
    )
    .await
}

async fn wait_ready(http: &reqwest::Client, b: &LoggedBroker) {
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(b.url("/health/ready")).send().await {
            if r.status().as_u16() == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "broker not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn a_message(text: &str) -> Value {
    json!({
        "to": "mailbox:bob",
        "payload": {"text": text, "exact": "ünïcödé ✓ \u{0001}"},
        "metadata": {"m": SECRETS[1]},
        "correlation_id": SECRETS[2],
        "tags": [SECRETS[3]],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_message_says_is_readable_in_redis_its_aof_or_the_spool() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (file, b64, key_id) = key_file(keys.path(), "k", 1);
    let mut redis = RedisServer::start();
    let b = broker(&redis, ("MAILBOX__STORAGE__ENCRYPTION_KEY_FILE", &file));
    let http = reqwest::Client::new();
    wait_ready(&http, &b).await;

    // A direct message, a topic publish, a dead letter, a blob.
    let (s, sent) = post(&http, &b, "alice", "/v1/messages", a_message(SECRETS[0])).await;
    assert_eq!(s, 201, "{sent}");
    let mut topic_msg = a_message(SECRETS[0]);
    topic_msg["to"] = json!("topic:news");
    let (s, v) = post(&http, &b, "alice", "/v1/messages", topic_msg).await;
    assert_eq!(s, 201, "{v}");
    let mut acked = a_message(SECRETS[0]);
    acked["to"] = json!("mailbox:carol");
    acked["require_ack"] = json!(true);
    let (s, v) = post(&http, &b, "alice", "/v1/messages", acked).await;
    assert_eq!(s, 201, "{v}");
    let (s, got) = post(&http, &b, "carol", "/v1/mailboxes/carol/receive", json!({})).await;
    assert_eq!(s, 200, "{got}");
    let carol_id = got["messages"][0]["id"]
        .as_str()
        .expect("received")
        .to_owned();
    let (s, v) = post(
        &http,
        &b,
        "carol",
        &format!("/v1/mailboxes/carol/messages/{carol_id}/nack"),
        json!({"requeue": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let blob = http
        .post(b.url("/v1/blobs"))
        .bearer_auth(mint("alice", &[], 300))
        .header("content-type", "application/octet-stream")
        .body(format!("{}-{}", SECRETS[4], "x".repeat(100)))
        .send()
        .await
        .expect("upload");
    let (s, blob) = status_json(blob).await;
    assert_eq!(s, 201, "{blob}");

    // Reads give the exact message back.
    let (s, page) = get(&http, &b, "bob", "/v1/mailboxes/bob/messages").await;
    assert_eq!(s, 200, "{page}");
    let m = &page["messages"][0];
    assert_eq!(m["id"], sent["id"]);
    assert_eq!(
        m["payload"],
        json!({"text": SECRETS[0], "exact": "ünïcödé ✓ \u{0001}"})
    );
    assert_eq!(m["metadata"]["m"], SECRETS[1]);
    assert_eq!(m["correlation_id"], SECRETS[2]);
    assert_eq!(m["tags"][0], SECRETS[3]);
    let bytes = http
        .get(b.url(&format!(
            "/v1/blobs/{}",
            blob["id"].as_str().expect("blob id")
        )))
        .bearer_auth(mint("alice", &[], 300))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        &bytes[..],
        format!("{}-{}", SECRETS[4], "x".repeat(100)).as_bytes()
    );

    // A second node on the same Redis with the same key reads the same bytes.
    let other = broker(&redis, ("MAILBOX__STORAGE__ENCRYPTION_KEY_FILE", &file));
    wait_ready(&http, &other).await;
    let (s, page2) = get(&http, &other, "bob", "/v1/mailboxes/bob/messages").await;
    assert_eq!(s, 200, "{page2}");
    assert_eq!(page2["messages"][0], page["messages"][0]);
    drop(other);

    // Redis and its AOF: records are there, sealed under the key's id; no secret in clear.
    let dump = dump_redis(&redis).await;
    assert!(
        contains(&dump, sent["id"].as_str().expect("id")),
        "ids stay visible"
    );
    assert!(contains(&dump, &key_id), "records name their key id");
    for s in SECRETS {
        assert!(!contains(&dump, s), "`{s}` readable in Redis");
    }

    // The spool: Redis down, a send is spooled on disk, sealed.
    redis.kill();
    let (s, v) = post(
        &http,
        &b,
        "alice",
        "/v1/messages",
        a_message("SPOOL-MARK-aa01"),
    )
    .await;
    assert_eq!(s, 202, "spooled: {v}");
    let spool = files_under(&b.spool_dir());
    assert!(
        contains(&spool, v["id"].as_str().expect("id")),
        "the spool holds it"
    );
    for s in ["SPOOL-MARK-aa01", SECRETS[1], SECRETS[2], SECRETS[3]] {
        assert!(!contains(&spool, s), "`{s}` readable in the spool");
    }
    redis.restart();
    let start = Instant::now();
    loop {
        let (s, page) = get(&http, &b, "bob", "/v1/mailboxes/bob/messages").await;
        if s == 200 && page["messages"].as_array().is_some_and(|m| m.len() == 2) {
            assert_eq!(page["messages"][1]["payload"]["text"], "SPOOL-MARK-aa01");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "spool replayed: {s} {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!b.logs().contains(&b64), "the key is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_a_missing_key_fails_only_its_messages() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (a, a64, a_id) = key_file(keys.path(), "a", 1);
    let (b_file, b64, b_id) = key_file(keys.path(), "b", 2);
    let redis = RedisServer::start();
    let http = reqwest::Client::new();

    // Key A alone.
    let node = broker(&redis, ("MAILBOX__STORAGE__ENCRYPTION_KEY_FILES", &a));
    wait_ready(&http, &node).await;
    let (s, m1) = post(&http, &node, "alice", "/v1/messages", a_message("first")).await;
    assert_eq!(s, 201, "{m1}");
    let logs_a = node.logs();
    drop(node);

    // [B, A]: the old message still reads; new ones are sealed under B.
    let both = format!("{b_file},{a}");
    let node = broker(&redis, ("MAILBOX__STORAGE__ENCRYPTION_KEY_FILES", &both));
    wait_ready(&http, &node).await;
    let (s, m2) = post(&http, &node, "alice", "/v1/messages", a_message("second")).await;
    assert_eq!(s, 201, "{m2}");
    let (s, page) = get(&http, &node, "bob", "/v1/mailboxes/bob/messages").await;
    assert_eq!(s, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["payload"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    let dump = dump_redis(&redis).await;
    assert!(
        contains(&dump, &a_id) && contains(&dump, &b_id),
        "each record names its key"
    );
    let logs_both = node.logs();
    drop(node);

    // [B] only: the message under A fails alone, naming A's id; the rest works.
    let node = broker(&redis, ("MAILBOX__STORAGE__ENCRYPTION_KEY_FILES", &b_file));
    wait_ready(&http, &node).await;
    let (s, err) = get(&http, &node, "bob", "/v1/mailboxes/bob/messages").await;
    assert_eq!(s, 503, "{err}");
    assert_eq!(err["error"]["code"], "unavailable", "{err}");
    assert_eq!(err["error"]["details"]["key_id"], a_id.as_str(), "{err}");
    let after = m1["seq"].as_str().expect("seq");
    let (s, page) = get(
        &http,
        &node,
        "bob",
        &format!("/v1/mailboxes/bob/messages?after={after}"),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["messages"][0]["payload"]["text"], "second");
    let (s, m3) = post(&http, &node, "alice", "/v1/messages", a_message("third")).await;
    assert_eq!(s, 201, "sends still work: {m3}");
    let (s, ready) = status_json(
        http.get(node.url("/health/ready"))
            .send()
            .await
            .expect("ready"),
    )
    .await;
    assert_eq!(s, 200, "the node stays ready: {ready}");

    for logs in [logs_a, logs_both, node.logs()] {
        assert!(
            !logs.contains(&a64) && !logs.contains(&b64),
            "key material in the logs"
        );
    }
}

#[test]
fn a_bad_key_file_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("short.key");
    std::fs::write(&f, "c2hvcnQ=\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .arg("serve")
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX__SERVER__BIND", "127.0.0.1:0")
        .env("MAILBOX__STORAGE__ENGINE", "memory")
        .env("MAILBOX__AUTH__JWT_SECRET", common::SECRET)
        .env("MAILBOX__STORAGE__ENCRYPTION_KEY_FILE", &f)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.encryption_key_file") && stderr.contains("32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2hvcnQ="), "{stderr}");
}
