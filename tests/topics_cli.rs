//! `mailbox topic …`, `mailbox sub …`, `mailbox send --to topic:…` and
//! `mailbox listen --target topic:<pattern>` as an operator and an agent use them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::Value;

fn mailbox(b: &Broker, token: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailbox"));
    c.env_remove("MAILBOX_CONFIG")
        .env("MAILBOX_URL", b.url(""))
        .env("MAILBOX_TOKEN", token);
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_sub_commands() {
    let b = Broker::start(EngineKind::Memory);
    let (admin, bob, alice) = (b.admin_token("ops"), b.token("bob"), b.token("alice"));
    let run =
        |token: &str, args: &[&str]| mailbox(&b, token).args(args).output().expect("run mailbox");

    let v = json(run(
        &admin,
        &[
            "topic",
            "create",
            "research.papers",
            "--retention-max-len",
            "100",
            "--retention",
            "1d",
            "--json",
        ],
    ));
    assert_eq!(v["config"]["retention_max_len"], 100);
    assert_eq!(v["config"]["retention_seconds"], 86400);

    let sub = json(run(&bob, &["sub", "add", "research.#", "--json"]));
    assert_eq!(sub["mailbox"], "bob");
    let list = json(run(&bob, &["sub", "list", "--json"]));
    assert_eq!(list[0]["id"], sub["id"]);
    let table = ok(run(&bob, &["sub", "list"]));
    assert!(table.contains("research.#"), "{table}");

    // Listen on a pattern while alice publishes.
    let mut listener = mailbox(&b, &bob)
        .args(["listen", "--target", "topic:research.#", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("listen");
    let stdout = listener.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The listener subscribes "from latest": publish until it has seen one (bounded).
    let mut heard = None;
    for _ in 0..100 {
        let receipt = json(run(
            &alice,
            &[
                "send",
                "--to",
                "topic:research.papers",
                "--text",
                "hello topic",
            ],
        ));
        assert_eq!(receipt["status"], "stored");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            heard = Some(line);
            break;
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    let heard: Value = serde_json::from_str(&heard.expect("the listener printed a message"))
        .expect("a JSON envelope per line");
    assert_eq!(heard["topic"], "research.papers");
    assert_eq!(heard["payload"], "hello topic");

    let info = json(run(&bob, &["topic", "info", "research.papers", "--json"]));
    let published = info["total"].as_u64().expect("total");
    assert!(published >= 1);
    let history = json(run(
        &bob,
        &[
            "topic",
            "history",
            "research.papers",
            "--json",
            "--limit",
            "500",
        ],
    ));
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(published as usize)
    );
    let listed = json(run(
        &bob,
        &["topic", "list", "--prefix", "research", "--json"],
    ));
    assert_eq!(listed["topics"][0]["name"], "research.papers");
    let table = ok(run(&bob, &["topic", "list"]));
    assert!(table.contains("research.papers"), "{table}");

    // The durable subscription put a copy of each in bob's mailbox.
    let inbox = json(run(&bob, &["inbox", "--json", "--limit", "500"]));
    assert_eq!(
        inbox["messages"].as_array().map(Vec::len),
        Some(published as usize)
    );

    let sub_id = sub["id"].as_str().expect("id");
    ok(run(&bob, &["sub", "remove", sub_id]));
    assert_eq!(
        json(run(&bob, &["sub", "list", "--json"])),
        Value::Array(vec![])
    );
    // Deleting needs `manage`: refused for bob, with the broker's code on stderr.
    let out = run(&bob, &["topic", "delete", "research.papers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission_denied"));
    ok(run(&admin, &["topic", "delete", "research.papers"]));
    let out = run(&bob, &["topic", "info", "research.papers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
}
