//! Optional OpenTelemetry export (config `log.otlp_endpoint`; empty, the default, is off):
//! spans and log events as OTLP/HTTP JSON, `POST {endpoint}/v1/traces` and `/v1/logs`, the
//! encoding every OpenTelemetry Collector (and Jaeger, Tempo, …) accepts on port 4318.
//!
//! Hand-written rather than the `opentelemetry` crates: those pull in a protobuf/gRPC stack and
//! their own runtime glue (dozens of crates, minutes of build on two cores) to do what is here a
//! `tracing` layer and a JSON body. The layer records each span (name, fields, start and end,
//! trace and parent ids) and each event (severity, message, fields, the ids of the span it
//! happened in, and the nearest `request_id`), and hands them to a bounded queue; one thread
//! batches them (up to [`MAX_BATCH`] or every [`FLUSH_EVERY`]) and posts them. A full queue or a
//! collector that does not answer drops telemetry, never slows a request.
//!
//! An incoming W3C `traceparent` recorded on a span (the HTTP request span does) makes that span
//! a child of the caller's trace.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Spans and logs waiting for the exporter; past it they are dropped (and counted).
const QUEUE: usize = 8192;
/// Most records in one POST.
pub const MAX_BATCH: usize = 512;
/// A batch is sent at most this long after its first record.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

thread_local! {
    /// Set on the exporter's thread: its own HTTP client's events are not exported (a loop).
    static EXPORTING: Cell<bool> = const { Cell::new(false) };
}

/// One record for the exporter: a finished span or a log event, already in OTLP JSON.
enum Item {
    Span(Value),
    Log(Value),
    /// Send what is queued, then answer.
    Flush(mpsc::Sender<()>),
}

/// What the layer keeps on each open span (a span extension).
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start_ns: u64,
    attributes: Vec<(String, Value)>,
}

/// The `tracing` layer: records spans and events and queues them for the exporter thread.
pub struct OtlpLayer {
    tx: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

/// A handle to flush the exporter (at shutdown).
#[derive(Clone)]
pub struct OtlpHandle {
    tx: SyncSender<Item>,
}

impl OtlpHandle {
    /// Sends what is queued; waits at most `limit`.
    pub fn flush(&self, limit: Duration) {
        let (done, wait) = mpsc::channel();
        if self.tx.try_send(Item::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(limit);
        }
    }
}

/// Starts the exporter thread for `endpoint` (e.g. `http://collector:4318`); answers the layer
/// to install and a handle to flush it. `node_id` (`server.node_id`, may be empty) becomes
/// `service.instance.id`.
pub fn start(
    endpoint: &str,
    service_name: &str,
    node_id: &str,
) -> std::io::Result<(OtlpLayer, OtlpHandle)> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let exporter = Exporter {
        traces_url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        logs_url: format!("{}/v1/logs", endpoint.trim_end_matches('/')),
        resource: resource(service_name, node_id),
        dropped: dropped.clone(),
    };
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || exporter.run(rx))?;
    Ok((
        OtlpLayer {
            tx: tx.clone(),
            dropped,
        },
        OtlpHandle { tx },
    ))
}

/// The resource every batch describes: this service and, when configured, this node.
fn resource(service_name: &str, node_id: &str) -> Value {
    let mut attrs = vec![
        attr("service.name", json!({ "stringValue": service_name })),
        attr(
            "service.version",
            json!({ "stringValue": env!("CARGO_PKG_VERSION") }),
        ),
    ];
    if !node_id.is_empty() {
        attrs.push(attr(
            "service.instance.id",
            json!({ "stringValue": node_id }),
        ));
    }
    json!({ "attributes": attrs })
}

fn attr(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`): its trace and parent span ids.
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = s.trim().split('-');
    let (version, trace, parent, _flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" {
        return None;
    }
    let trace = unhex::<16>(trace).filter(|t| t.iter().any(|b| *b != 0))?;
    let parent = unhex::<8>(parent).filter(|p| p.iter().any(|b| *b != 0))?;
    Some((trace, parent))
}

/// Collects an event's or span's fields as OTLP attributes (and the event's message).
#[derive(Default)]
struct Fields {
    attributes: Vec<(String, Value)>,
    message: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value.get("stringValue").and_then(Value::as_str) {
                Some(s) => s.to_owned(),
                None => value.to_string(),
            });
            return;
        }
        let key = field.name().to_owned();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json!({ "stringValue": value }));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!({ "intValue": value.to_string() }));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!({ "intValue": value.to_string() }));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, json!({ "doubleValue": value }));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!({ "boolValue": value }));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, json!({ "stringValue": format!("{value:?}") }));
    }
}

fn attributes(list: &[(String, Value)]) -> Value {
    Value::Array(list.iter().map(|(k, v)| attr(k, v.clone())).collect())
}

fn severity(level: &Level) -> (u8, &'static str) {
    match *level {
        Level::TRACE => (1, "TRACE"),
        Level::DEBUG => (5, "DEBUG"),
        Level::INFO => (9, "INFO"),
        Level::WARN => (13, "WARN"),
        Level::ERROR => (17, "ERROR"),
    }
}

impl OtlpLayer {
    fn queue(&self, item: Item) {
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let inherited = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanData>()
                .map(|d| (d.trace_id, d.span_id))
        });
        let remote = fields
            .attributes
            .iter()
            .find(|(k, _)| k == "traceparent")
            .and_then(|(_, v)| v.get("stringValue")?.as_str())
            .and_then(parse_traceparent);
        let (trace_id, parent) = match (inherited, remote) {
            (Some((t, p)), _) => (t, Some(p)),
            (None, Some((t, p))) => (t, Some(p)),
            (None, None) => (rand::random::<[u8; 16]>(), None),
        };
        span.extensions_mut().insert(SpanData {
            trace_id,
            span_id: rand::random(),
            parent,
            start_ns: now_ns(),
            attributes: fields.attributes,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>() {
            let mut fields = Fields {
                attributes: std::mem::take(&mut data.attributes),
                message: None,
            };
            values.record(&mut fields);
            data.attributes = fields.attributes;
            // A caller's `traceparent`, recorded on a root span as it starts: join its trace.
            if data.parent.is_none() {
                let remote = data
                    .attributes
                    .iter()
                    .find(|(k, _)| k == "traceparent")
                    .and_then(|(_, v)| v.get("stringValue")?.as_str())
                    .and_then(parse_traceparent);
                if let Some((trace, parent)) = remote {
                    data.trace_id = trace;
                    data.parent = Some(parent);
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if EXPORTING.with(Cell::get) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let (number, text) = severity(meta.level());
        let mut ids = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let ext = span.extensions();
                let Some(data) = ext.get::<SpanData>() else {
                    continue;
                };
                ids.get_or_insert((data.trace_id, data.span_id));
                if let Some((_, v)) = data.attributes.iter().find(|(k, _)| k == "request_id") {
                    fields.attributes.push(("request_id".into(), v.clone()));
                    break;
                }
            }
        }
        fields
            .attributes
            .push(("target".into(), json!({ "stringValue": meta.target() })));
        let ts = now_ns().to_string();
        let mut record = json!({
            "timeUnixNano": ts,
            "observedTimeUnixNano": ts,
            "severityNumber": number,
            "severityText": text,
            "body": { "stringValue": fields.message.unwrap_or_default() },
            "attributes": attributes(&fields.attributes),
        });
        if let Some((trace, span)) = ids {
            record["traceId"] = json!(hex(&trace));
            record["spanId"] = json!(hex(&span));
        }
        self.queue(Item::Log(record));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if EXPORTING.with(Cell::get) {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let meta = span.metadata();
        // SERVER for a request or WebSocket op handled here, INTERNAL otherwise.
        let kind = if matches!(meta.name(), "request" | "ws_op") {
            2
        } else {
            1
        };
        let mut record = json!({
            "traceId": hex(&data.trace_id),
            "spanId": hex(&data.span_id),
            "name": meta.name(),
            "kind": kind,
            "startTimeUnixNano": data.start_ns.to_string(),
            "endTimeUnixNano": now_ns().to_string(),
            "attributes": attributes(&data.attributes),
        });
        if let Some(parent) = data.parent {
            record["parentSpanId"] = json!(hex(&parent));
        }
        self.queue(Item::Span(record));
    }
}

/// The exporter thread: batches and posts.
struct Exporter {
    traces_url: String,
    logs_url: String,
    resource: Value,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    fn run(self, rx: Receiver<Item>) {
        EXPORTING.with(|e| e.set(true));
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "otlp: no runtime for the exporter; export is off");
                return;
            }
        };
        let client = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "otlp: no HTTP client; export is off");
                return;
            }
        };
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        let mut flushes = Vec::new();
        loop {
            // Wait for a first record, then gather until the batch is full or old enough.
            let first = match rx.recv() {
                Ok(item) => item,
                Err(_) => return,
            };
            let deadline = Instant::now() + FLUSH_EVERY;
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Item::Span(s) => spans.push(s),
                    Item::Log(l) => logs.push(l),
                    Item::Flush(done) => {
                        flushes.push(done);
                        break;
                    }
                }
                if spans.len() + logs.len() >= MAX_BATCH {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                // Timed out (send the batch) or every sender gone (send it, then `recv` ends).
                next = rx.recv_timeout(left).ok();
            }
            runtime.block_on(self.post(&client, &mut spans, &mut logs));
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    async fn post(&self, client: &reqwest::Client, spans: &mut Vec<Value>, logs: &mut Vec<Value>) {
        let scope = json!({ "name": "mailbox", "version": env!("CARGO_PKG_VERSION") });
        let mut lost = self.dropped.swap(0, Ordering::Relaxed);
        if !spans.is_empty() {
            let n = spans.len() as u64;
            let body = json!({ "resourceSpans": [{
                "resource": self.resource,
                "scopeSpans": [{ "scope": scope, "spans": std::mem::take(spans) }],
            }]});
            if !self.send(client, &self.traces_url, &body).await {
                lost += n;
            }
        }
        if !logs.is_empty() {
            let n = logs.len() as u64;
            let body = json!({ "resourceLogs": [{
                "resource": self.resource,
                "scopeLogs": [{ "scope": scope, "logRecords": std::mem::take(logs) }],
            }]});
            if !self.send(client, &self.logs_url, &body).await {
                lost += n;
            }
        }
        if lost > 0 {
            metrics::counter!("mailbox_otlp_dropped_total").increment(lost);
        }
    }

    /// Posts one body; answers whether the collector took it.
    async fn send(&self, client: &reqwest::Client, url: &str, body: &Value) -> bool {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::debug!(
                    status = r.status().as_u16(),
                    url,
                    "otlp collector refused a batch"
                );
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, url, "otlp collector unreachable");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_or_refused() {
        let (t, p) = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
