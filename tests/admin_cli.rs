//! `mailbox agent …` and `mailbox policy …` as an operator uses them: tables for people,
//! `--json` for scripts, non-zero exit with the error on stderr. And SPEC section 8's promise
//! that any Casbin implementation decides the same: pycasbin, on the shipped model and policy,
//! against the broker's answers for a table of requests.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Broker, EngineKind};
use serde_json::Value;

fn mailbox(b: &Broker, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .env_remove("MAILBOX_CONFIG")
        .env("MAILBOX_URL", b.url(""))
        .env("MAILBOX_TOKEN", token)
        .args(args)
        .output()
        .expect("run mailbox")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_policy_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.csv");
    std::fs::copy(repo().join("config/casbin/policy.csv"), &policy).expect("copy policy");
    let p = policy.display().to_string();
    let b = Broker::start_with(
        EngineKind::Memory,
        &[("MAILBOX__PERMISSIONS__POLICY", p.as_str())],
    );
    let admin = b.admin_token("ops");

    let created = json(&mailbox(
        &b,
        &admin,
        &[
            "agent",
            "create",
            "carol",
            "--roles",
            "agent,reviewer",
            "--json",
        ],
    ));
    assert_eq!(created["id"], "carol");
    let key = created["api_key"].as_str().expect("key").to_owned();
    let table = stdout(&mailbox(&b, &admin, &["agent", "list"]));
    assert!(
        table.contains("carol") && table.contains("agent,reviewer"),
        "{table}"
    );
    assert!(!table.contains(&key));
    let listed = json(&mailbox(&b, &admin, &["agent", "list", "--json"]));
    assert_eq!(listed["agents"][0]["id"], "carol");
    let (status, _) = b
        .post(
            "",
            "/v1/auth/token",
            &serde_json::json!({"agent_id": "carol", "api_key": key}),
        )
        .await;
    assert_eq!(status, 200);
    let dup = mailbox(&b, &admin, &["agent", "create", "carol"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("conflict"));
    stdout(&mailbox(&b, &admin, &["agent", "delete", "carol"]));
    let again = mailbox(&b, &admin, &["agent", "delete", "carol"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not_found"));

    let check = |args: &[&str]| stdout(&mailbox(&b, &admin, args)).trim().to_owned();
    assert_eq!(
        check(&["policy", "check", "carol", "broadcast", "send"]),
        "denied"
    );
    stdout(&mailbox(
        &b,
        &admin,
        &["policy", "add", "g", "carol", "admin"],
    ));
    assert_eq!(
        check(&["policy", "check", "carol", "broadcast", "send"]),
        "allowed"
    );
    let rules = json(&mailbox(&b, &admin, &["policy", "list", "--json"]));
    assert!(rules["policies"]
        .as_array()
        .expect("policies")
        .contains(&serde_json::json!({"ptype": "g", "rule": ["carol", "admin"]})));
    assert!(stdout(&mailbox(&b, &admin, &["policy", "list"])).contains("carol, admin"));
    let reloaded = json(&mailbox(&b, &admin, &["policy", "reload", "--json"]));
    assert_eq!(reloaded["result"], "ok");
    assert_eq!(reloaded["rules"], 10);
    stdout(&mailbox(
        &b,
        &admin,
        &["policy", "remove", "g", "carol", "admin"],
    ));
    let checked = json(&mailbox(
        &b,
        &admin,
        &["policy", "check", "carol", "broadcast", "send", "--json"],
    ));
    assert_eq!(checked["allowed"], false);
    let refused = mailbox(&b, &b.token("bob"), &["policy", "list"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permission_denied"));
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The requests both implementations decide: (sub, obj, act).
const REQUESTS: &[(&str, &str, &str)] = &[
    ("bob", "mailbox:bob", "read"),
    ("bob", "mailbox:bob", "manage"),
    ("bob", "mailbox:alice", "read"),
    ("bob", "mailbox:alice", "send"),
    ("bob", "mailbox:alice", "manage"),
    ("bob", "topic:research.ml", "send"),
    ("bob", "topic:research.ml", "read"),
    ("bob", "topic:research.#", "subscribe"),
    ("bob", "topic:research.ml", "manage"),
    ("bob", "broadcast", "send"),
    ("bob", "dead-letters", "manage"),
    ("bob", "admin", "manage"),
    ("bob", "admin", "read"),
    ("bob", "blobs", "send"),
    ("bob", "blobs", "read"),
    ("admin", "broadcast", "send"),
    ("admin", "admin", "manage"),
    ("admin", "mailbox:alice", "read"),
    ("admin", "dead-letters", "manage"),
    ("agent", "mailbox:agent", "read"),
    ("agent", "mailbox:zed", "send"),
    ("carol", "mailbox:carol", "read"),
];

/// The pycasbin release the parity test runs.
const PYCASBIN: &str = "casbin==1.43.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pycasbin_decides_the_same() {
    let python = common::python::venv_with("pycasbin", PYCASBIN);
    let script = r#"
import json, sys, casbin
e = casbin.Enforcer(sys.argv[1], sys.argv[2])
print(json.dumps([e.enforce(*r) for r in json.loads(sys.stdin.read())]))
"#;
    let requests: Vec<[&str; 3]> = REQUESTS.iter().map(|(s, o, a)| [*s, *o, *a]).collect();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(repo().join("config/casbin/model.conf"))
        .arg(repo().join("config/casbin/policy.csv"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&requests).expect("json").as_bytes())
            .expect("write requests");
    }
    let out = child.wait_with_output().expect("pycasbin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).expect("decisions");

    let b = Broker::start(EngineKind::Memory);
    let admin = b.admin_token("ops");
    for ((sub, obj, act), py) in REQUESTS.iter().zip(theirs) {
        let (status, v) = b
            .get(
                &admin,
                &format!(
                    "/v1/admin/policies/check?sub={sub}&obj={}&act={act}",
                    obj.replace('#', "%23")
                ),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["allowed"], py,
            "({sub}, {obj}, {act}): broker vs pycasbin"
        );
    }
}
