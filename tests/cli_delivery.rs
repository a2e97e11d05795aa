//! `mailbox receive`, `ack`, `nack` and `dlq …` as an agent and an operator use them.

mod common;

use std::process::{Command, Output};

use common::{Broker, EngineKind};
use serde_json::Value;

fn mailbox(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX_URL", url)
        .env("MAILBOX_TOKEN", token)
        .args(args)
        .output()
        .expect("run mailbox")
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_nack_and_dead_letters_from_the_command_line() {
    let b = Broker::start(EngineKind::Memory);
    let url = b.url("");
    let (alice, bob, ops) = (b.token("alice"), b.token("bob"), b.admin_token("ops"));
    let send = |text: &str| {
        ok_json(&mailbox(
            &url,
            &alice,
            &[
                "send",
                "--to",
                "mailbox:bob",
                "--text",
                text,
                "--require-ack",
            ],
        ))
    };

    let sent = send("first");
    let got = ok_json(&mailbox(&url, &bob, &["receive", "--max", "5", "--json"]));
    assert_eq!(got["messages"][0]["id"], sent["id"]);
    assert_eq!(got["messages"][0]["attempt"], 1);
    let id = sent["id"].as_str().expect("id");
    let acked = ok_json(&mailbox(&url, &bob, &["ack", "--id", id]));
    assert_eq!(acked["status"], "acked");
    let again = mailbox(&url, &bob, &["ack", "--id", id, "--mailbox", "bob"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("conflict"));

    let second = send("second");
    let table = mailbox(&url, &bob, &["receive", "--wait", "1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success() && text.contains("second") && text.contains("1 received"),
        "{text}"
    );
    let id2 = second["id"].as_str().expect("id");
    let nacked = ok_json(&mailbox(
        &url,
        &bob,
        &["nack", "--id", id2, "--reason", "broken"],
    ));
    assert_eq!(
        (nacked["status"].as_str(), nacked["reason"].as_str()),
        (Some("dead_lettered"), Some("rejected"))
    );

    // The agent may list its own mailbox's dead letters, not everyone's.
    let own = ok_json(&mailbox(
        &url,
        &bob,
        &["dlq", "list", "--mailbox", "bob", "--json"],
    ));
    assert_eq!(own["dead_letters"].as_array().map(Vec::len), Some(1));
    let all = mailbox(&url, &bob, &["dlq", "list"]);
    assert_eq!(all.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&all.stderr).contains("permission_denied"));

    let list = mailbox(&url, &ops, &["dlq", "list", "--reason", "rejected"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success()
            && text.contains("rejected")
            && text.contains("broken")
            && text.contains("1 shown"),
        "{text}"
    );
    let dl_id = own["dead_letters"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let shown = ok_json(&mailbox(&url, &ops, &["dlq", "show", &dl_id]));
    assert_eq!(shown["message"]["payload"], "second");

    // Requeue by id, then by filter: each time a fresh copy arrives with attempt 1.
    let r = ok_json(&mailbox(&url, &ops, &["dlq", "requeue", &dl_id]));
    assert_eq!(r["requeued"], 1);
    let got = ok_json(&mailbox(&url, &bob, &["receive", "--json"]));
    assert_eq!(
        (
            got["messages"][0]["payload"].as_str(),
            got["messages"][0]["attempt"].as_u64()
        ),
        (Some("second"), Some(1))
    );
    let id3 = got["messages"][0]["id"].as_str().expect("id").to_owned();
    ok_json(&mailbox(&url, &bob, &["nack", "--id", &id3]));
    let r = ok_json(&mailbox(
        &url,
        &ops,
        &["dlq", "requeue", "--all", "--mailbox", "bob"],
    ));
    assert_eq!(r["requeued"], 1);
    let got = ok_json(&mailbox(&url, &bob, &["receive", "--json"]));
    let id4 = got["messages"][0]["id"].as_str().expect("id").to_owned();
    let requeued = ok_json(&mailbox(&url, &bob, &["nack", "--id", &id4, "--requeue"]));
    assert_eq!(requeued["status"], "requeued");

    // Purge: nothing is a day old; a missing id is an error.
    let purged = ok_json(&mailbox(
        &url,
        &ops,
        &["dlq", "purge", "--older-than", "1d"],
    ));
    assert_eq!(purged["deleted"], 0);
    let missing = mailbox(&url, &ops, &["dlq", "purge", "01J0000000000000000000000A"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
}
