//! `mailbox bench send-ws`: N WebSocket clients, each keeping up to W `send` ops in flight and
//! matching every `ok` (or `error`) to its send by `ref`. The raw equivalent is an XADD per
//! message from a connection per client, awaiting each reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::bench::{bar, Figures};
use super::bench_report::{CpuMeter, Report};
use super::bench_ws::ws_url;
use crate::auth::TokenAuthority;

/// What `send-ws` sends.
pub struct SendWsPlan {
    pub clients: usize,
    /// Sends in flight per client.
    pub window: usize,
    pub messages: usize,
    pub size: usize,
}

pub async fn send_ws(
    base: &str,
    auth: &TokenAuthority,
    plan: SendWsPlan,
    raw_redis: Option<String>,
    redis: Option<String>,
) -> Result<Report, String> {
    let SendWsPlan {
        clients,
        window,
        messages,
        size,
    } = plan;
    println!(
        "send-ws: {clients} clients × {window} in flight, {messages} messages of {size} B, broker {base}"
    );
    let sink = format!(
        "bench-ws-sink-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    // Connect everyone first: the measured phase is sending only.
    let mut sockets = Vec::with_capacity(clients);
    for c in 0..clients {
        // One agent per client (rate limits are per agent).
        let token = auth
            .mint(&format!("bench-ws-{c}"), &[], Some(3600))
            .map_err(|e| e.client_message())?
            .0;
        let (ws, _) = tokio_tungstenite::connect_async(ws_url(base, &token))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        sockets.push(ws);
    }
    let payload = Arc::new("x".repeat(size));
    let pb = bar(messages, "send-ws");
    let meter = CpuMeter::start(base, redis.as_deref()).await;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(messages as u64 / 1000 + 60);
    let mut tasks = Vec::with_capacity(clients);
    for (c, ws) in sockets.into_iter().enumerate() {
        let n = messages / clients + usize::from(c < messages % clients);
        let (pb, payload, to) = (pb.clone(), payload.clone(), format!("mailbox:{sink}"));
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(window);
            let (mut sent, mut lat, mut errors) = (0usize, Vec::with_capacity(n), 0usize);
            while lat.len() + errors < n {
                let room = window.saturating_sub(in_flight.len()).min(n - sent);
                for _ in 0..room {
                    let frame = json!({"op": "send", "ref": sent.to_string(),
                        "message": {"to": to, "payload": *payload}});
                    if tx
                        .feed(Message::Text(frame.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    in_flight.insert(sent as u64, Instant::now());
                    sent += 1;
                }
                if room > 0 && tx.flush().await.is_err() {
                    errors = n - lat.len();
                    break;
                }
                let t = match tokio::time::timeout_at(deadline, rx.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    _ => {
                        errors = n - lat.len();
                        break;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                let Some(r) = v["ref"].as_str().and_then(|r| r.parse::<u64>().ok()) else {
                    continue;
                };
                let Some(at) = in_flight.remove(&r) else {
                    continue;
                };
                if v["type"] == "ok" {
                    lat.push(at.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                pb.inc(1);
            }
            let _ = tx.send(Message::Close(None)).await;
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::with_capacity(messages);
    let mut errors = 0;
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                latencies_us.extend(l);
                errors += e;
            }
            Err(_) => errors += messages / clients,
        }
    }
    let elapsed = start.elapsed();
    pb.finish_and_clear();
    latencies_us.sort_unstable();
    let broker = Figures {
        ok: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    };
    let cpu = meter.per_op(broker.ok).await;
    broker.print("broker");
    super::bench::delete_sink(base, auth, &sink).await;
    let report = Report {
        cpu,
        ..Report::new("send-ws", broker)
    };
    super::bench::with_raw_xadd(report, raw_redis, clients, messages, size).await
}
