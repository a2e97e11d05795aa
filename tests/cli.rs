//! The `mailbox` command line as an operator and an agent use it.

mod common;

use std::process::Command;

use common::{Broker, EngineKind};

fn mailbox() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailbox"));
    c.env_remove("MAILBOX_CONFIG")
        .env_remove("MAILBOX_TOKEN")
        .env_remove("MAILBOX_URL");
    c
}

#[test]
fn an_invalid_config_exits_2_naming_the_key() {
    let out = mailbox()
        .arg("serve")
        .env("MAILBOX__LIMITS__MAILBOX_MAX_LEN", "lots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mailbox_max_len"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[server]\nbind = \"not an address\"\n").expect("write");
    let out = mailbox()
        .arg("serve")
        .arg("--config")
        .arg(&f)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.bind"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_send_inbox_health() {
    let b = Broker::start(EngineKind::Memory);
    let token = |agent: &str| {
        let out = mailbox()
            .args(["token", "--agent", agent, "--ttl", "1h"])
            .env("MAILBOX__AUTH__JWT_SECRET", common::SECRET)
            .output()
            .expect("token");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let url = b.url("");
    let out = mailbox()
        .args([
            "send",
            "--to",
            "mailbox:bob",
            "--text",
            "hello bob",
            "--priority",
            "high",
            "--url",
            &url,
            "--token",
            &alice,
        ])
        .output()
        .expect("send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_slice(&out.stdout).expect("receipt is JSON");
    assert_eq!(receipt["status"], "stored");
    let out = mailbox()
        .args(["send", "--to", "mailbox:bob", "--json", "{\"k\":1}"])
        .env("MAILBOX_URL", &url)
        .env("MAILBOX_TOKEN", &alice)
        .output()
        .expect("send");
    assert!(out.status.success());

    let out = mailbox()
        .args(["inbox", "--unread"])
        .env("MAILBOX_URL", &url)
        .env("MAILBOX_TOKEN", &bob)
        .output()
        .expect("inbox");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("hello bob") && table.contains("2 unread"),
        "{table}"
    );
    let out = mailbox()
        .args(["inbox", "--json", "--limit", "1"])
        .env("MAILBOX_URL", &url)
        .env("MAILBOX_TOKEN", &bob)
        .output()
        .expect("inbox");
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(page["messages"][0]["payload"], "hello bob");
    assert_eq!(page["next"], "1");

    // Failures: non-zero exit, the broker's message on stderr.
    let out = mailbox()
        .args(["inbox", "--mailbox", "alice"])
        .env("MAILBOX_URL", &url)
        .env("MAILBOX_TOKEN", &bob)
        .output()
        .expect("inbox");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission_denied"));
    let out = mailbox()
        .args([
            "send",
            "--to",
            "mailbox:Nope",
            "--text",
            "x",
            "--url",
            &url,
            "--token",
            &alice,
        ])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation_failed"));

    let out = mailbox()
        .args(["health", "--url", &url])
        .output()
        .expect("health");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ready"));
    let out = mailbox()
        .args(["health", "--url", "http://127.0.0.1:1"])
        .output()
        .expect("health");
    assert_eq!(out.status.code(), Some(1));
}
