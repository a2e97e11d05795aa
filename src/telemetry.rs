//! Logging (tracing, text or JSON), the optional OTLP export ([`otlp`]) and the Prometheus
//! recorder.

pub mod otlp;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::{Log, LogFormat};

/// Installs the global subscriber: logs to stderr, and with `log.otlp_endpoint` set, spans and
/// logs to an OpenTelemetry collector too (answers the handle to flush that at shutdown). Later
/// calls (tests starting several brokers) are no-ops.
pub fn init_logging(cfg: &Log, node_id: &str) -> Option<otlp::OtlpHandle> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let text: Box<dyn Layer<Registry> + Send + Sync> = match cfg.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let mut failed = None;
    let (export, handle) = if cfg.otlp_endpoint.is_empty() {
        (None, None)
    } else {
        match otlp::start(&cfg.otlp_endpoint, &cfg.otlp_service_name, node_id) {
            Ok((layer, handle)) => (Some(layer), Some(handle)),
            Err(e) => {
                // Logged once the subscriber below is installed.
                failed = Some(e);
                (None, None)
            }
        }
    };
    let installed = tracing_subscriber::registry()
        .with(text)
        .with(export)
        .with(filter)
        .try_init();
    if installed.is_err() {
        return None;
    }
    if let Some(e) = failed {
        tracing::warn!(endpoint = %cfg.otlp_endpoint, error = %e, "OTLP export not started");
    }
    if handle.is_some() {
        tracing::info!(endpoint = %cfg.otlp_endpoint, "exporting spans and logs over OTLP/HTTP");
    }
    handle
}

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.install_recorder());
            match handle {
                Ok(h) => {
                    register_catalogue();
                    let upkeep = h.clone();
                    std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        })
                        .map_err(|e| tracing::warn!(error = %e, "no metrics upkeep thread"))
                        .ok();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Label values each labelled series of SPEC section 11 starts with, so a dashboard or alert
/// sees a 0 from the first scrape instead of "no data" until the first event.
const ACCEPT_ROUTES: &[&str] = &["direct", "topic", "broadcast", "batch"];
const TRANSPORTS: &[&str] = &["rest", "ws", "mcp"];
const DEAD_REASONS: &[&str] = &[
    "max_attempts",
    "rejected",
    "expired",
    "undeliverable",
    "evicted",
];
const ACTOR_KINDS: &[&str] = &["mailbox", "topic", "retry", "dead_letter"];
const RELOAD_RESULTS: &[&str] = &["ok", "error"];
const BLOB_DIRECTIONS: &[&str] = &["in", "out"];

/// Every metric of SPEC section 11, described (Prometheus `# HELP`) and registered at its
/// zero: counters with each label value the SPEC names, gauges at 0 (`increment(0)` registers
/// without touching a value another part already set), histograms with no samples yet.
///
/// Why at start: alerts such as `increase(mailbox_dead_letters_total[30m])` and rate panels
/// are blind to a series that does not exist yet, and an operator reading `/metrics` after a
/// restart must see the whole catalogue. Runs once per process (the recorder is global).
fn register_catalogue() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    let counters: &[(&str, &str, &str, &[&str])] = &[
        (
            "mailbox_messages_accepted_total",
            "Messages accepted (stored or spooled), by route.",
            "route",
            ACCEPT_ROUTES,
        ),
        (
            "mailbox_messages_delivered_total",
            "Messages handed to a reader, by transport.",
            "transport",
            TRANSPORTS,
        ),
        (
            "mailbox_messages_acked_total",
            "Deliveries acknowledged.",
            "",
            &[],
        ),
        (
            "mailbox_redeliveries_total",
            "Deliveries made again after an ack timeout or a nack.",
            "",
            &[],
        ),
        (
            "mailbox_dead_letters_total",
            "Messages dead-lettered, by reason.",
            "reason",
            DEAD_REASONS,
        ),
        (
            "mailbox_storage_errors_total",
            "Storage (Redis) operations that failed.",
            "",
            &[],
        ),
        (
            "mailbox_auth_failures_total",
            "Requests refused as unauthenticated.",
            "",
            &[],
        ),
        (
            "mailbox_permission_denied_total",
            "Requests refused by the Casbin policy.",
            "",
            &[],
        ),
        (
            "mailbox_rate_limited_total",
            "Sends refused by the per-agent rate limit.",
            "",
            &[],
        ),
        (
            "mailbox_policy_reloads_total",
            "Policy reloads, by result.",
            "result",
            RELOAD_RESULTS,
        ),
        (
            "mailbox_security_alerts_total",
            "Security alerts raised (e.g. a burst of denials for one agent).",
            "",
            &[],
        ),
        (
            "mailbox_http_requests_total",
            "HTTP requests answered, by method, route pattern and status.",
            "",
            &[],
        ),
        (
            "mailbox_blob_bytes_total",
            "Blob bytes stored by uploads (`in`) and sent by downloads (`out`).",
            "direction",
            BLOB_DIRECTIONS,
        ),
        (
            "mailbox_otlp_dropped_total",
            "Spans and logs not exported (queue full or collector unreachable; log.otlp_endpoint).",
            "",
            &[],
        ),
        (
            "mailbox_ws_slow_consumers_total",
            "WebSocket sessions closed as slow consumers (1013).",
            "",
            &[],
        ),
    ];
    for (name, help, label, values) in counters {
        describe_counter!(*name, Unit::Count, *help);
        match (*label, *values) {
            // Its labels come from the request; the series appear with the first request.
            ("", _) if *name == "mailbox_http_requests_total" => {}
            ("", _) => metrics::counter!(*name).increment(0),
            (label, values) => {
                for v in values {
                    metrics::counter!(*name, label => *v).increment(0);
                }
            }
        }
    }
    let gauges: &[(&str, &str)] = &[
        (
            "mailbox_ws_sessions",
            "Live WebSocket sessions on this node.",
        ),
        (
            "mailbox_storage_circuit_open",
            "1 while the storage circuit breaker is open.",
        ),
        (
            "mailbox_spool_messages",
            "Messages in this node's on-disk spool, waiting for Redis.",
        ),
        (
            "mailbox_durable_subscriptions",
            "Durable topic subscriptions known to this node.",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(*name, *help);
        metrics::gauge!(*name).increment(0.0);
    }
    describe_gauge!("mailbox_actors", "Running actors on this node, by kind.");
    for kind in ACTOR_KINDS {
        metrics::gauge!("mailbox_actors", "kind" => *kind).increment(0.0);
    }
    let histograms: &[(&str, &str)] = &[
        (
            "mailbox_send_duration_seconds",
            "Time to accept a send (validation to durable).",
        ),
        (
            "mailbox_delivery_latency_seconds",
            "Time from acceptance to a live push.",
        ),
    ];
    for (name, help) in histograms {
        describe_histogram!(*name, Unit::Seconds, *help);
        let _ = metrics::histogram!(*name);
    }
}
