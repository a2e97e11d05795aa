//! Secure transport to Redis (SPEC section 8, "Secure transport and data at rest"): the broker
//! runs as the README's ACL user, with the password from `redis.password_file`, over TLS
//! (`rediss://`, `redis.tls_ca_file`) against a real `redis-server` that serves TLS only, with
//! certificates made here. A wrong password or an untrusted certificate keeps the node
//! not-ready with a clear reason; the password never shows up in a log line.

mod common;
#[path = "common/secure.rs"]
mod secure;

use std::time::Duration;

use common::{mint, status_json};
use futures_util::{SinkExt, StreamExt};
use secure::{readme_acl_line, LoggedBroker, Pki, TlsRedis};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const BROKER_PASSWORD: &str = "Broker-Pw-7f3a9c1e55d2";

/// Redis with the README's ACL user `mailbox` (password [`BROKER_PASSWORD`]).
async fn redis_with_acl_user(pki: &Pki) -> TlsRedis {
    let redis = TlsRedis::start(pki);
    let mut admin = redis.admin(&pki.ca_pem).await;
    let mut cmd = redis::cmd("ACL");
    for arg in readme_acl_line(BROKER_PASSWORD) {
        cmd.arg(arg);
    }
    let _: () = cmd
        .query_async(&mut admin)
        .await
        .expect("README ACL line applies");
    redis
}

fn password_file(dir: &std::path::Path, password: &str) -> String {
    let f = dir.join("redis-password");
    // As `kubectl create secret --from-file` of an `echo`ed file leaves it: a trailing newline.
    std::fs::write(&f, format!("{password}\n")).expect("write password file");
    f.display().to_string()
}

fn env<'a>(redis_url: &'a str, pw_file: &'a str, ca: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MAILBOX__STORAGE__ENGINE", "redis"),
        ("MAILBOX__REDIS__URL", redis_url),
        ("MAILBOX__REDIS__PASSWORD_FILE", pw_file),
        ("MAILBOX__REDIS__TLS_CA_FILE", ca),
    ]
}

async fn readiness(http: &reqwest::Client, b: &LoggedBroker) -> (u16, Value) {
    status_json(
        http.get(b.url("/health/ready"))
            .send()
            .await
            .expect("GET /health/ready"),
    )
    .await
}

/// Polls readiness until it answers `want` (bounded).
async fn wait_ready(http: &reqwest::Client, b: &LoggedBroker, want: u16) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = readiness(http, b).await;
        if status == want {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness stayed {status} ({v}), expected {want}; logs:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_secret_in_logs(b: &LoggedBroker, secret: &str) {
    let logs = b.logs();
    assert!(!logs.is_empty(), "the broker logged something");
    assert!(
        !logs.contains(secret),
        "a log line contains the Redis password:\n{}",
        logs.lines()
            .filter(|l| l.contains(secret))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_work_as_the_readme_acl_user_over_tls() {
    let pki = Pki::new("redis");
    let redis = redis_with_acl_user(&pki).await;
    let pw = password_file(pki.dir.path(), BROKER_PASSWORD);
    let url = redis.url_for("mailbox");
    let ca = pki.ca_pem.display().to_string();
    let a = LoggedBroker::start(&env(&url, &pw, &ca));
    let b = LoggedBroker::start(&env(&url, &pw, &ca));
    let http = reqwest::Client::new();
    let ready = wait_ready(&http, &a, 200).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    wait_ready(&http, &b, 200).await;

    // A live WebSocket subscriber on node B: the push travels over Redis pub/sub.
    let ws_url = format!(
        "ws://127.0.0.1:{}/v1/ws?token={}",
        b.port,
        mint("bob", &[], 300)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("ws to node B");
    let sub = json!({"op": "subscribe", "ref": "s", "target": "mailbox:bob", "from": "latest"});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .expect("subscribe");
    let mut got_ok = false;
    while !got_ok {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            assert_ne!(v["type"], "error", "{v}");
            got_ok = v["type"] == "ok" && v["ref"] == "s";
        }
    }

    // Send on node A with an ack required; node B pushes it and serves it; node A settles it.
    let r = http
        .post(a.url("/v1/messages"))
        .bearer_auth(mint("alice", &[], 300))
        .json(&json!({"to": "mailbox:bob", "payload": {"text": "over TLS"}, "require_ack": true}))
        .send()
        .await
        .expect("send");
    let (status, receipt) = status_json(r).await;
    assert_eq!(status, 201, "{receipt}");
    let id = receipt["id"].as_str().expect("id").to_owned();

    let pushed = loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the push reaches node B in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == "message" {
                break v;
            }
        }
    };
    assert_eq!(pushed["message"]["id"], id.as_str(), "{pushed}");
    assert_eq!(pushed["message"]["payload"]["text"], "over TLS");

    let bob = mint("bob", &[], 300);
    let (status, page) = status_json(
        http.get(b.url("/v1/mailboxes/bob/messages"))
            .bearer_auth(&bob)
            .send()
            .await
            .expect("browse"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["id"], id.as_str(), "{page}");

    // The push was a delivery awaiting its ack (require_ack): settle it over REST on node A.
    let (status, acked) = status_json(
        http.post(a.url(&format!("/v1/mailboxes/bob/messages/{id}/ack")))
            .bearer_auth(&bob)
            .send()
            .await
            .expect("ack"),
    )
    .await;
    assert_eq!(status, 200, "{acked}");

    // A blob (chunks, meta, expiry, a referencing message extending it) on node A, read on B.
    let data: Vec<u8> = (0..(3 << 19)).map(|i: u32| (i % 251) as u8).collect();
    let (status, blob) = status_json(
        http.post(a.url("/v1/blobs"))
            .bearer_auth(mint("alice", &[], 300))
            .body(data.clone())
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, 201, "{blob}");
    let blob_id = blob["id"].as_str().expect("blob id").to_owned();
    let r = http
        .post(a.url("/v1/messages"))
        .bearer_auth(mint("alice", &[], 300))
        .json(&json!({"to": "mailbox:bob", "blob": blob_id}))
        .send()
        .await
        .expect("send with blob");
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .get(b.url(&format!("/v1/blobs/{blob_id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("download");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.expect("blob bytes").as_ref() == data.as_slice());

    // Redis denied the broker's user nothing: the ACL line covers every command it used.
    let mut admin = redis.admin(&pki.ca_pem).await;
    let denials: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .expect("ACL LOG");
    assert!(
        denials.is_empty(),
        "Redis denied the broker's user: {denials:?}"
    );
    assert_no_secret_in_logs(&a, BROKER_PASSWORD);
    assert_no_secret_in_logs(&b, BROKER_PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_keeps_the_node_not_ready_and_unlogged() {
    let pki = Pki::new("redis");
    let redis = redis_with_acl_user(&pki).await;
    let wrong = "Wrong-Pw-0d9e8f7a6b5c";
    let pw = password_file(pki.dir.path(), wrong);
    let url = redis.url_for("mailbox");
    let ca = pki.ca_pem.display().to_string();
    // The spool is on (the default): a refusal must still read as not ready, not "spooling".
    let b = LoggedBroker::start(&env(&url, &pw, &ca));
    let http = reqwest::Client::new();
    let v = wait_ready(&http, &b, 503).await;
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Redis refused the broker") && reason.contains("credentials"),
        "{v}"
    );
    // It keeps being refused on every probe (the broker keeps trying, never gives up).
    for _ in 0..3 {
        let (status, v) = readiness(&http, &b).await;
        assert_eq!(status, 503, "{v}");
    }
    assert_no_secret_in_logs(&b, wrong);
    assert_no_secret_in_logs(&b, TlsRedis::ADMIN_PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_and_never_downgraded() {
    let pki = Pki::new("redis");
    let other = Pki::new("stranger");
    let redis = redis_with_acl_user(&pki).await;
    let pw = password_file(pki.dir.path(), BROKER_PASSWORD);
    let url = redis.url_for("mailbox");
    let wrong_ca = other.ca_pem.display().to_string();
    let b = LoggedBroker::start(&env(&url, &pw, &wrong_ca));
    let http = reqwest::Client::new();
    let v = wait_ready(&http, &b, 503).await;
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("certificate is not trusted") && reason.contains("redis.tls_ca_file"),
        "{v}"
    );
    assert_no_secret_in_logs(&b, BROKER_PASSWORD);
    drop(b);

    // A CA file with a plaintext URL is a configuration error at start (exit code 2).
    let plain = format!("redis://mailbox@127.0.0.1:{}", redis.port);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .arg("serve")
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX__SERVER__BIND", "127.0.0.1:0")
        .env("MAILBOX__AUTH__JWT_SECRET", common::SECRET)
        .env("MAILBOX__REDIS__URL", &plain)
        .env("MAILBOX__REDIS__PASSWORD_FILE", &pw)
        .env(
            "MAILBOX__REDIS__TLS_CA_FILE",
            pki.ca_pem.display().to_string(),
        )
        .output()
        .expect("run the broker");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("redis.tls_ca_file") && stderr.contains("rediss://"),
        "{stderr}"
    );
    assert!(!stderr.contains(BROKER_PASSWORD), "{stderr}");
}

/// Every Redis command in the broker's code (`cmd("…")` in Rust, `redis.call('…')` in its Lua
/// scripts), and those its Redis client sends by itself, is granted by the README's ACL line:
/// a new command cannot slip in and break deployments that run the broker as that user.
#[test]
fn the_readme_acl_line_grants_every_command_the_broker_sends() {
    let granted: std::collections::BTreeSet<String> = readme_acl_line("x")
        .iter()
        .filter_map(|w| w.strip_prefix('+'))
        .map(str::to_lowercase)
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = std::collections::BTreeSet::new();
    // Sent by redis-rs and deadpool themselves: scripts, pub/sub, pool recycling, transactions,
    // cluster topology and redirects.
    for c in [
        "evalsha",
        "script|load",
        "subscribe",
        "ssubscribe",
        "unwatch",
        "ping",
        "multi",
        "exec",
        "cluster|slots",
        "asking",
    ] {
        used.insert(c.to_owned());
    }
    let mut stack = vec![root.join("actors/src"), root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                // The CLI's bench tools talk to Redis on their own account, not the broker's.
                if p != root.join("src/cli") {
                    stack.push(p);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let markers: &[&str] = match p.extension().and_then(|e| e.to_str()) {
                Some("rs") => &["cmd(\""],
                Some("lua") => &[
                    "redis.call('",
                    "redis.call(\"",
                    "redis.pcall('",
                    "redis.pcall(\"",
                ],
                _ => continue,
            };
            for m in markers {
                for (at, _) in text.match_indices(m) {
                    let name: String = text[at + m.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphabetic())
                        .collect();
                    if !name.is_empty() {
                        used.insert(name.to_lowercase());
                    }
                }
            }
        }
    }
    assert!(
        used.contains("xadd") && used.contains("time"),
        "the scan found the commands: {used:?}"
    );
    let missing: Vec<&String> = used.iter().filter(|c| !granted.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "the README's ACL line does not grant {missing:?} (add `+…` for each, and copy the rules to k8s/files/redis-mailbox.acl)"
    );
}
