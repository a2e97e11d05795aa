//! `mailbox bench` against the real binary, a private Redis and raw Redis: each scenario runs
//! small, finishes, and ends with the one JSON line a dashboard or a script reads. Figures are
//! never asserted (speed is measured, not tested); completeness and the report's shape are.

mod common;

use std::process::Command;

use common::{Broker, EngineKind, SECRET};
use serde_json::Value;

/// Runs `mailbox bench <args> --json` against `b` and returns the last stdout line, parsed.
fn bench(b: &Broker, args: &[&str]) -> Value {
    let redis = b.redis.as_ref().expect("a Redis broker").url();
    let out = Command::new(env!("CARGO_BIN_EXE_mailbox"))
        .arg("bench")
        .args(args)
        .args(["--json", "--url", &b.url(""), "--redis", &redis])
        .env_remove("MAILBOX_CONFIG")
        .env_remove("MAILBOX_TOKEN")
        .env("MAILBOX__AUTH__JWT_SECRET", SECRET)
        .output()
        .expect("run mailbox bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn assert_shape(v: &Value, scenario: &str, ok: u64) {
    assert_eq!(v["scenario"], scenario, "{v}");
    assert_eq!(v["ok"], ok, "every operation succeeded: {v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert!(v["rate"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    for k in ["p50_ms", "p99_ms", "p999_ms"] {
        assert!(v[k].is_number(), "{k} in {v}");
    }
    // The broker and Redis CPU counters were both read.
    assert!(v["broker_cpu_us_per_op"].is_number(), "{v}");
    assert!(v["redis_cpu_us_per_op"].is_number(), "{v}");
}

#[test]
fn send_rest_and_send_ws_report_beside_raw_redis() {
    let b = Broker::start(EngineKind::Redis);
    let raw = b.redis.as_ref().expect("redis").url();
    for scenario in ["send-rest", "send-ws"] {
        let v = bench(
            &b,
            &[
                scenario,
                "--clients",
                "4",
                "--messages",
                "400",
                "--raw-redis",
                &raw,
            ],
        );
        assert_shape(&v, scenario, 400);
        assert_eq!(v["raw"]["ok"], 400, "{v}");
        assert!(v["ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    }
    // The bench removed its sink mailboxes and raw streams afterwards.
    let mut con = redis::Client::open(raw.as_str())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*sink*")
        .query(&mut con)
        .expect("KEYS");
    let raw_left: Vec<String> = redis::cmd("KEYS")
        .arg("bench:raw:*")
        .query(&mut con)
        .expect("KEYS");
    assert!(raw_left.is_empty(), "{raw_left:?}");
    assert!(
        left.iter().all(|k| !k.contains(":stream")),
        "sink streams left behind: {left:?}"
    );
}

#[test]
fn catchup_replays_the_whole_backlog_and_reports_seconds() {
    // A small pending limit, so the replay also crosses slow-consumer closes and resumes.
    let b = Broker::start_with(EngineKind::Redis, &[("MAILBOX__WS__MAX_PENDING", "200")]);
    let raw = b.redis.as_ref().expect("redis").url();
    let v = bench(&b, &["catchup", "--messages", "1500", "--raw-redis", &raw]);
    assert_shape(&v, "catchup", 1500);
    assert!(v["seconds"].as_f64().is_some_and(|s| s > 0.0), "{v}");
    assert_eq!(v["raw"]["ok"], 1500, "{v}");
}

#[test]
fn e2e_keeps_reading_past_the_broker_heartbeat() {
    // Heartbeat every second and a run of ~3 s: before the fix the reader stopped at the first
    // ping and reported the rest as errors.
    let b = Broker::start_with(
        EngineKind::Redis,
        &[("MAILBOX__WS__HEARTBEAT_SECONDS", "1")],
    );
    let v = bench(&b, &["e2e", "--rate", "50", "--messages", "150"]);
    assert_shape(&v, "e2e", 150);
    assert!(v["raw"].is_null(), "no raw run was asked for: {v}");
}

#[test]
fn ack_and_sessions_report_their_figures() {
    let b = Broker::start(EngineKind::Redis);
    let v = bench(&b, &["ack", "--consumers", "4", "--messages", "200"]);
    assert_shape(&v, "ack", 200);
    let v = bench(&b, &["sessions", "--count", "50"]);
    assert_eq!(v["scenario"], "sessions");
    assert_eq!(v["ok"], 50, "{v}");
    assert!(v["kib_per_session"].is_number(), "{v}");
}
