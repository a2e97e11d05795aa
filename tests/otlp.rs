//! OpenTelemetry export (`log.otlp_endpoint`): a tiny OTLP/HTTP collector on loopback receives
//! the request span (with its request id, in the caller's trace) and the request's logs (with
//! message and correlation ids); with the default config nothing is sent anywhere.

mod common;

use std::time::Duration;

use common::{Broker, EngineKind};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Serves HTTP/1.1 POSTs on one connection (keep-alive), passing on (path, JSON body) and
/// answering 200 `{}` as a collector does.
async fn serve_collector_connection(
    stream: tokio::net::TcpStream,
    out: mpsc::UnboundedSender<(String, Value)>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let _ = out.send((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A collector on `listener`: every request it gets comes out of the receiver.
fn collector(listener: TcpListener) -> mpsc::UnboundedReceiver<(String, Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_collector_connection(stream, tx.clone()));
        }
    });
    rx
}

/// The value of attribute `key` in an OTLP attribute list, as text.
fn attribute(item: &Value, key: &str) -> Option<String> {
    let value = item["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"]
        .clone();
    value
        .get("stringValue")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| value.get("intValue").map(|v| v.to_string()))
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_and_its_logs_reach_the_collector() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let mut received = collector(listener);
    let b = Broker::start_with(
        EngineKind::Memory,
        &[
            ("MAILBOX__LOG__OTLP_ENDPOINT", endpoint.as_str()),
            ("MAILBOX__LOG__OTLP_SERVICE_NAME", "mailbox-test"),
            ("MAILBOX__LOG__LEVEL", "debug"),
        ],
    );
    let r = b
        .http
        .post(b.url("/v1/messages"))
        .bearer_auth(b.token("alice"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(&json!({"to": "mailbox:bob", "payload": "hi", "correlation_id": "corr-otlp"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 201);
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id")
        .to_owned();
    let receipt: Value = r.json().await.expect("receipt");
    let message_id = receipt["id"].as_str().expect("id").to_owned();

    // Gather what the collector gets until it has both the span and the message log.
    let mut span = None;
    let mut message_log = None;
    let mut service = None;
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while span.is_none() || message_log.is_none() {
            let (path, body) = received.recv().await.expect("collector running");
            match path.as_str() {
                "/v1/traces" => {
                    let resource = &body["resourceSpans"][0];
                    service = attribute(&resource["resource"], "service.name");
                    for s in resource["scopeSpans"][0]["spans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if s["name"] == "request"
                            && attribute(s, "request_id").as_deref() == Some(&request_id)
                        {
                            span = Some(s.clone());
                        }
                    }
                }
                "/v1/logs" => {
                    let logs = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
                    for l in logs.as_array().into_iter().flatten() {
                        if attribute(l, "message_id").as_deref() == Some(&message_id) {
                            message_log = Some(l.clone());
                        }
                    }
                }
                other => panic!("unexpected collector path {other}"),
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "span {span:?} / message log {message_log:?} not received in time"
    );
    let span = span.expect("span");
    let log = message_log.expect("message log");
    assert_eq!(service.as_deref(), Some("mailbox-test"));
    // The request span, in the caller's trace, with its request id, method and route.
    assert_eq!(span["traceId"], TRACE, "{span}");
    assert_eq!(span["parentSpanId"], PARENT, "{span}");
    assert_eq!(span["kind"], 2, "a server span: {span}");
    assert_eq!(attribute(&span, "method").as_deref(), Some("POST"));
    assert_eq!(attribute(&span, "path").as_deref(), Some("/v1/messages"));
    assert_eq!(attribute(&span, "agent").as_deref(), Some("alice"));
    let start: u64 = span["startTimeUnixNano"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("start");
    let end: u64 = span["endTimeUnixNano"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("end");
    assert!(start > 0 && end >= start, "{span}");
    // The message log: message id, correlation id, the request id, inside the request's trace.
    assert!(
        attribute(&log, "correlation_id").is_some_and(|c| c.contains("corr-otlp")),
        "{log}"
    );
    assert_eq!(
        attribute(&log, "request_id").as_deref(),
        Some(request_id.as_str()),
        "{log}"
    );
    assert_eq!(log["traceId"], TRACE, "{log}");
    assert_eq!(log["severityText"], "DEBUG", "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_nothing_is_sent() {
    let defaults = mailbox::config::Config::defaults().expect("defaults");
    assert_eq!(
        defaults.log.otlp_endpoint, "",
        "export is off unless configured"
    );
    // The conventional OTLP/HTTP port on loopback: a default broker must not post there.
    let Ok(listener) = TcpListener::bind("127.0.0.1:4318").await else {
        eprintln!("127.0.0.1:4318 is taken; only the default value was checked");
        return;
    };
    let mut b = Broker::start_with(EngineKind::Memory, &[("MAILBOX__LOG__LEVEL", "debug")]);
    b.send("alice", "bob", json!({"payload": "hi"})).await;
    // A graceful stop flushes an exporter if there were one; after it, nothing has connected.
    assert!(b.terminate().success());
    let probe = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        probe.is_err(),
        "the broker connected to 127.0.0.1:4318 with export off"
    );
}
