//! `/metrics` of a broker that has done nothing yet: every name of SPEC section 11 is there, with
//! the label values the SPEC names, so alerts and dashboards see zeros rather than no data.

mod common;

use common::{Broker, EngineKind};

/// Series as they must appear in the text of the first scrape.
const EXPECTED: &[&str] = &[
    r#"mailbox_messages_accepted_total{route="direct"} 0"#,
    r#"mailbox_messages_accepted_total{route="topic"} 0"#,
    r#"mailbox_messages_accepted_total{route="broadcast"} 0"#,
    r#"mailbox_messages_delivered_total{transport="ws"} 0"#,
    r#"mailbox_messages_delivered_total{transport="rest"} 0"#,
    r#"mailbox_messages_delivered_total{transport="mcp"} 0"#,
    "mailbox_messages_acked_total 0",
    "mailbox_redeliveries_total 0",
    r#"mailbox_dead_letters_total{reason="max_attempts"} 0"#,
    r#"mailbox_dead_letters_total{reason="rejected"} 0"#,
    r#"mailbox_dead_letters_total{reason="expired"} 0"#,
    r#"mailbox_dead_letters_total{reason="undeliverable"} 0"#,
    r#"mailbox_dead_letters_total{reason="evicted"} 0"#,
    "mailbox_ws_sessions 0",
    r#"mailbox_actors{kind="mailbox"}"#,
    r#"mailbox_actors{kind="topic"}"#,
    "mailbox_storage_errors_total 0",
    "mailbox_storage_circuit_open 0",
    "mailbox_spool_messages 0",
    "mailbox_auth_failures_total 0",
    "mailbox_permission_denied_total 0",
    "mailbox_rate_limited_total 0",
    r#"mailbox_policy_reloads_total{result="ok"}"#,
    r#"mailbox_policy_reloads_total{result="error"} 0"#,
    "mailbox_security_alerts_total 0",
    r#"mailbox_blob_bytes_total{direction="in"} 0"#,
    r#"mailbox_blob_bytes_total{direction="out"} 0"#,
    // Histograms: buckets from 100 µs to 5 s, and the count.
    r#"mailbox_send_duration_seconds_bucket{le="0.0001"} 0"#,
    r#"mailbox_send_duration_seconds_bucket{le="5"} 0"#,
    r#"mailbox_send_duration_seconds_bucket{le="+Inf"} 0"#,
    "mailbox_send_duration_seconds_count 0",
    r#"mailbox_delivery_latency_seconds_bucket{le="0.001"} 0"#,
    "mailbox_delivery_latency_seconds_count 0",
    // Help text for the catalogue.
    "# HELP mailbox_messages_accepted_total",
    "# TYPE mailbox_send_duration_seconds histogram",
];

async fn scrape(b: &Broker) -> String {
    let r = b
        .http
        .get(b.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_broker_shows_every_metric_of_the_spec() {
    let b = Broker::start(EngineKind::Redis);
    let text = scrape(&b).await;
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|s| !text.contains(s))
        .collect();
    assert!(missing.is_empty(), "missing {missing:#?} from\n{text}");
    // The request counter appears once a request has been answered.
    let text = scrape(&b).await;
    assert!(
        text.contains(r#"mailbox_http_requests_total{method="GET",route="/metrics",status="200"}"#),
        "{text}"
    );
}
