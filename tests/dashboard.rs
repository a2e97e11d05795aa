//! `/dashboard` in a real headless Chromium (Debian's `chromium`; `make test` installs it),
//! driven over the DevTools protocol: the page takes an admin token through its form, keeps it
//! in session storage, shows the live session count, a mailbox that has messages, the dead-letter count and a recent
//! audit event, and a click on "Requeue" requeues the dead letter.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, EngineKind};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Chromium with the flags this machine needs and a fresh profile; killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    fn start() -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium (make test installs the `chromium` package)");
        let port = wait_for_port(profile.path());
        Self {
            child,
            _profile: profile,
            port,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Chromium writes the port it chose to `DevToolsActivePort` in the profile.
fn wait_for_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        if let Some(port) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        {
            return port;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromium did not open its DevTools port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One DevTools page session.
struct Page {
    ws: Socket,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Self {
        let list: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", browser.port))
            .await
            .expect("DevTools targets")
            .json()
            .await
            .expect("targets JSON");
        let url = list
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("DevTools WebSocket");
        Self { ws, next_id: 0 }
    }

    /// Sends a DevTools command and answers its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::Text(msg.into())).await.expect("send");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools socket open")
                .expect("DevTools frame");
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).expect("DevTools JSON");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates `expr` in the page and answers its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it answers `want` (the page refreshes by itself every few seconds).
    async fn wait_for(&mut self, expr: &str, want: Value) {
        let start = Instant::now();
        loop {
            let got = self.eval(expr).await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{expr}: still {got}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A dead letter in carol's mailbox: sent with `require_ack`, received, nacked without requeue.
async fn make_dead_letter(b: &Broker) -> String {
    let sent = b
        .send(
            "alice",
            "carol",
            json!({"payload": "bad job", "require_ack": true}),
        )
        .await;
    let carol = b.token("carol");
    let (s, got) = b
        .post(&carol, "/v1/mailboxes/carol/receive", &json!({"max": 1}))
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["messages"][0]["id"], sent["id"]);
    let id = sent["id"].as_str().expect("id");
    let (s, v) = b
        .post(
            &carol,
            &format!("/v1/mailboxes/carol/messages/{id}/nack"),
            &json!({"requeue": false}),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (200, Some("dead_lettered")),
        "{v}"
    );
    id.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_mailboxes_and_dead_letters_and_requeues() {
    let b = Broker::start(EngineKind::Redis);
    for text in ["one", "two"] {
        b.send("alice", "bob", json!({ "payload": text })).await;
    }
    make_dead_letter(&b).await;
    // A refusal, so the audit panel has an event to show.
    let (s, _) = b.get(&b.token("bob"), "/v1/admin/mailboxes").await;
    assert_eq!(s, 403);
    let admin = b.admin_token("ops");
    // One live WebSocket session to count.
    let _session = common::ws::connect(&b, "dave").await;

    let browser = tokio::task::spawn_blocking(Browser::start)
        .await
        .expect("browser");
    let mut page = Page::open(&browser).await;
    page.call("Page.enable", json!({})).await;
    page.call("Page.navigate", json!({"url": b.url("/dashboard")}))
        .await;
    page.wait_for(
        "document.readyState === 'complete' && !document.getElementById('login').hidden",
        json!(true),
    )
    .await;

    // The token goes in through the form and stays in session storage only.
    page.eval(&format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login').requestSubmit(); true",
        json!(admin)
    ))
    .await;
    page.wait_for(
        "sessionStorage.getItem('mailbox-admin-token')",
        json!(admin),
    )
    .await;
    page.wait_for("document.cookie", json!("")).await;

    page.wait_for(
        "document.getElementById('sessions').textContent",
        json!("1"),
    )
    .await;
    // bob's mailbox with its two unread messages; one dead letter.
    page.wait_for(
        "Array.from(document.querySelectorAll('#mailboxes tr[data-name=\"bob\"] td')).map(t => t.textContent).join('|')",
        json!("bob|2|2|0"),
    )
    .await;
    page.wait_for(
        "document.getElementById('dead-letter-count').textContent",
        json!("1"),
    )
    .await;
    page.wait_for(
        "document.querySelector('#dead-letters tr[data-id] td').textContent",
        json!("carol"),
    )
    .await;

    page.wait_for(
        "Array.from(document.querySelectorAll('#audit tr')).some(r => r.cells.length === 4 && r.cells[1].textContent === 'permission_denied' && r.cells[2].textContent === 'bob')",
        json!(true),
    )
    .await;

    // Requeue by click: the dead letter leaves the queue and carol has the message again.
    page.eval("document.querySelector('button.requeue').click(); true")
        .await;
    page.wait_for(
        "document.getElementById('dead-letter-count').textContent",
        json!("0"),
    )
    .await;
    let (s, v) = b.get(&admin, "/v1/dead-letters").await;
    assert_eq!(s, 200);
    assert_eq!(v["dead_letters"].as_array().map(Vec::len), Some(0), "{v}");
    let (_, page_of_carol) = b
        .get(&b.token("carol"), "/v1/mailboxes/carol/messages")
        .await;
    assert!(
        page_of_carol["messages"].as_array().is_some_and(|m| m
            .iter()
            .any(|m| m["payload"] == "bad job" && m["attempt"].is_null())),
        "{page_of_carol}"
    );
    // Nothing on the page failed.
    let status = page
        .eval("document.getElementById('status').className")
        .await;
    assert_eq!(
        status,
        "muted",
        "{}",
        page.eval("document.getElementById('status').textContent")
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_self_contained() {
    let b = Broker::start(EngineKind::Memory);
    let r = b
        .http
        .get(b.url("/dashboard"))
        .send()
        .await
        .expect("GET /dashboard");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("default-src 'none'")));
    let html = r.text().await.expect("html");
    for outside in ["http://", "https://", "src=\"//", "<link"] {
        assert!(!html.contains(outside), "the page loads {outside}…");
    }
    // Without an admin token the overview refuses.
    let (s, _) = b.get(&b.token("bob"), "/v1/admin/mailboxes").await;
    assert_eq!(s, 403);
}
