//! The MCP endpoint (SPEC section 10) against the real binary, driven by the official MCP Python
//! SDK — 2.x in its default (stateless, `server/discover`) and handshake modes, and 1.x — so
//! what is tested is what agents run. The scripts are in `tests/mcp/`; each SDK is installed
//! once into its own venv under the target dir (idempotent: a marker file says it is done).
//! The transport rules no SDK exercises (401, 405, SSE, version refusals) are checked with
//! plain HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::{json, Value};

/// The SDK versions the tests pin: the newest 2.x and the last 1.x.
const SDK2: &str = "2.3.0";
const SDK1: &str = "1.30.0";

/// The longest a script may run (it installs nothing; the SDKs are already in place).
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp")
}

/// A venv holding `mcp=={sdk}`, made on first use.
fn python_with_sdk(sdk: &str) -> PathBuf {
    common::python::venv_with(&format!("mcp-sdk-{sdk}"), &format!("mcp=={sdk}"))
}

/// The TypeScript SDK pinned for its check.
const TS_SDK: &str = "1.32.2";

/// A directory holding `@modelcontextprotocol/sdk@{TS_SDK}`, installed with npm on first use.
fn ts_sdk_dir() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mcp-ts-sdk-{TS_SDK}"));
    let marker = dir.join(".installed");
    if marker.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("create the TypeScript SDK dir");
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"mcp-ts-check","private":true}"#,
    )
    .expect("write package.json");
    common::python::install(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(format!("@modelcontextprotocol/sdk@{TS_SDK}")),
        "npm install @modelcontextprotocol/sdk (make test installs nodejs and npm)",
    );
    std::fs::write(&marker, TS_SDK).expect("write the SDK marker");
    dir
}

/// Tokens for every agent the scripts use.
fn tokens(b: &Broker) -> Value {
    let mut t = serde_json::Map::new();
    for a in ["alice", "bob", "carol", "planner", "worker", "reviewer"] {
        t.insert(a.into(), json!(b.token(a)));
    }
    Value::Object(t)
}

/// Runs `program script args` in `tests/mcp` within [`SCRIPT_LIMIT`]; fails the test with its
/// output unless it exits 0 and prints `{"ok": true}`. Answers the JSON lines it printed.
async fn run(program: &Path, script: &str, args: &Value, env: &[(&str, &Path)]) -> Vec<Value> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(script)
        .arg(args.to_string())
        .current_dir(scripts())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(SCRIPT_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} {args} ran over {SCRIPT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success() && lines.iter().any(|l| l["ok"] == true),
        "{script} ({}) failed:\n{stdout}\n{}",
        args["mode"],
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// Runs a Python `script` with SDK `sdk` in `mode` against `b`.
async fn run_script(b: &Broker, sdk: &str, script: &str, mode: &str) -> Vec<Value> {
    let args =
        json!({ "url": b.url("/mcp"), "base": b.url(""), "mode": mode, "tokens": tokens(b) });
    run(&python_with_sdk(sdk), script, &args, &[]).await
}

/// The tour in both handshake-era versions, each on a fresh broker.
async fn tour_the_handshake_era(sdk: &str, engine: EngineKind) {
    for (mode, version) in [
        ("legacy", "2025-11-25"),
        ("legacy-2025-06-18", "2025-06-18"),
    ] {
        let b = Broker::start(engine);
        let out = run_script(&b, sdk, "tour.py", mode).await;
        assert_eq!(field(&out, "protocol"), version, "{sdk} {mode}");
    }
}

fn field<'a>(lines: &'a [Value], key: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l.get(key).is_some())
        .map(|l| &l[key])
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk2_default_mode_speaks_the_stateless_era_and_every_tool_works() {
    let b = Broker::start(EngineKind::Redis);
    let out = run_script(&b, SDK2, "tour.py", "auto").await;
    assert_eq!(field(&out, "protocol"), "2026-07-28");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk2_pinned_to_the_handshake_era_works_at_both_versions() {
    tour_the_handshake_era(SDK2, EngineKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk1_works_at_both_handshake_versions() {
    tour_the_handshake_era(SDK1, EngineKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_inbox_is_woken_by_a_rest_send_and_an_empty_inbox_answers_after_the_wait() {
    let b = Broker::start(EngineKind::Redis);
    for (sdk, mode) in [(SDK2, "auto"), (SDK1, "legacy")] {
        let out = run_script(&b, sdk, "wake.py", mode).await;
        // The delay is printed, not asserted tight: timing belongs to benchmarks.
        println!(
            "sdk {sdk} ({mode}): REST send → check_inbox answer {} ms; empty inbox answered after {} s",
            field(&out, "wake_delay_ms"),
            field(&out, "empty_after_s")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_work_together_through_mcp_only() {
    let b = Broker::start(EngineKind::Redis);
    run_script(&b, SDK2, "three_agents.py", "auto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_http_401_and_the_sdk_cannot_connect() {
    let b = Broker::start(EngineKind::Memory);
    let r = b
        .http
        .post(b.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    let (_, body) = common::status_json(r).await;
    assert_eq!(body["error"]["code"], "unauthenticated");
    let args = json!({ "url": b.url("/mcp"), "mode": "auto", "tokens": {} });
    let out = run(&python_with_sdk(SDK2), "no_token.py", &args, &[]).await;
    assert_eq!(field(&out, "refused"), true);
}

/// One raw POST to /mcp: (status, content type, body text).
async fn raw(b: &Broker, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut req = b
        .http
        .post(b.url("/mcp"))
        .bearer_auth(b.token("alice"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("POST /mcp");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, r.text().await.expect("body"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_rules_of_both_generations() {
    let b = Broker::start(EngineKind::Memory);
    const JSON: (&str, &str) = ("accept", "application/json, text/event-stream");
    let ping = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;

    // GET and DELETE: no stream, no session.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = b
            .http
            .request(method.clone(), b.url("/mcp"))
            .bearer_auth(b.token("alice"))
            .header("mcp-protocol-version", "2026-07-28")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 405, "{method}");
        assert_eq!(
            r.headers().get("allow").map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );
    }

    // initialize negotiates; notifications get 202; ping answers {}.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (s, _, body) = raw(&b, &[JSON], init).await;
    assert_eq!(s, 200);
    assert_eq!(json_of(&body)["result"]["protocolVersion"], "2025-11-25");
    let (s, _, body) = raw(
        &b,
        &[JSON, ("mcp-protocol-version", "2025-11-25")],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!((s, body.as_str()), (202, ""));
    let (s, _, body) = raw(&b, &[JSON, ("mcp-protocol-version", "2025-06-18")], ping).await;
    assert_eq!((s, json_of(&body)["result"].clone()), (200, json!({})));

    // Accept: only SSE → the same answer as one SSE event.
    let (s, ct, body) = raw(&b, &[("accept", "text/event-stream")], ping).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let data = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line: {body}"));
    assert_eq!(json_of(data)["id"], 7);
    assert!(
        body.starts_with("event: message\n") && body.ends_with("\n\n"),
        "{body:?}"
    );

    // A tool argument that breaks a rule is `validation_failed` naming the field, as over REST.
    for (args, field) in [
        (
            json!({"to": "mailbox:bob", "payload": 1, "priority": "super"}),
            "priority",
        ),
        (
            json!({"to": "mailbox:bob", "payload": 1, "ttl_seconds": -5}),
            "ttl_seconds",
        ),
    ] {
        let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "send_message", "arguments": args}});
        let (s, _, body) = raw(
            &b,
            &[JSON, ("mcp-protocol-version", "2025-11-25")],
            &call.to_string(),
        )
        .await;
        let result = &json_of(&body)["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert_eq!(s, 200, "{body}");
        assert_eq!(result["isError"], true, "{body}");
        assert!(
            text.starts_with("Error validation_failed")
                && text.contains(&format!("\"field\":\"{field}\"")),
            "{text}"
        );
    }

    // Unparsable and batch bodies.
    let (s, _, body) = raw(&b, &[JSON], "{not json").await;
    assert_eq!(
        (s, json_of(&body)["error"]["code"].clone()),
        (400, json!(-32700))
    );
    let (s, _, body) = raw(&b, &[JSON], "[]").await;
    assert_eq!(
        (s, json_of(&body)["error"]["code"].clone()),
        (400, json!(-32600))
    );

    // Stateless era: the envelope and headers must agree; unknown versions name ours.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let discover =
        json!({"jsonrpc":"2.0","id":2,"method":"server/discover","params":{"_meta": meta}})
            .to_string();
    let modern = [
        JSON,
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ];
    let (s, _, body) = raw(&b, &modern, &discover).await;
    let v = json_of(&body);
    assert_eq!(s, 200, "{v}");
    assert!(v["result"]["supportedVersions"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("2026-07-28")) && a.contains(&json!("2025-06-18"))));
    assert_eq!(v["result"]["resultType"], "complete");
    let wrong_method = [
        JSON,
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let (s, _, body) = raw(&b, &wrong_method, &discover).await;
    assert_eq!(
        (s, json_of(&body)["error"]["code"].clone()),
        (400, json!(-32020))
    );
    let (s, _, body) = raw(
        &b,
        &[JSON, ("mcp-protocol-version", "2099-01-01")],
        &discover,
    )
    .await;
    let v = json_of(&body);
    assert_eq!((s, v["error"]["code"].clone()), (400, json!(-32022)));
    assert_eq!(v["error"]["data"]["requested"], "2099-01-01");

    // Unknown methods: 404 in the stateless era, a JSON-RPC error at 200 in the handshake era.
    let nope =
        json!({"jsonrpc":"2.0","id":3,"method":"nope/nope","params":{"_meta": meta}}).to_string();
    let (s, _, body) = raw(
        &b,
        &[
            JSON,
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "nope/nope"),
        ],
        &nope,
    )
    .await;
    assert_eq!(
        (s, json_of(&body)["error"]["code"].clone()),
        (404, json!(-32601))
    );
    let (s, _, body) = raw(&b, &[JSON, ("mcp-protocol-version", "2025-11-25")], &nope).await;
    assert_eq!(
        (s, json_of(&body)["error"]["code"].clone()),
        (200, json!(-32601))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_connects_waits_acks_and_survives_an_error() {
    let dir = ts_sdk_dir();
    let b = Broker::start(EngineKind::Memory);
    let args = json!({ "url": b.url("/mcp"), "mode": "handshake", "tokens": tokens(&b) });
    run(
        Path::new("node"),
        "ts_client.cjs",
        &args,
        &[("MCP_TS_SDK_DIR", dir.as_path())],
    )
    .await;
}
