//! WebSocket scenarios of `mailbox bench`: `e2e` (send → push latency at a fixed rate) and
//! `sessions` (idle sessions held open; broker RSS per session).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::bench::{bar, Figures};
use super::bench_report::{CpuMeter, Report};
use crate::auth::TokenAuthority;
use crate::client::Client;

pub(super) fn ws_url(base: &str, token: &str) -> String {
    format!(
        "{}/v1/ws?token={token}",
        base.trim_end_matches('/').replacen("http", "ws", 1)
    )
}

/// What `e2e` sends.
pub struct E2ePlan {
    /// Messages per second.
    pub rate: u64,
    pub messages: usize,
    pub size: usize,
}

/// Send → WebSocket push latency at `rate` msgs/s for `messages` messages.
pub async fn e2e(
    base: &str,
    auth: &TokenAuthority,
    plan: E2ePlan,
    raw: Option<String>,
    redis: Option<String>,
) -> Result<Report, String> {
    let E2ePlan {
        rate,
        messages,
        size,
    } = plan;
    println!("e2e: {messages} messages at {rate}/s, {size} B, broker {base}");
    // A fresh mailbox per run, so earlier runs never fill it (a full mailbox refuses every
    // send); removed afterwards.
    let inbox = format!(
        "bench-e2e-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let token = auth
        .mint(&inbox, &[], Some(3600))
        .map_err(|e| e.client_message())?
        .0;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(base, &token))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ws.send(Message::Text(
        json!({"op": "subscribe", "ref": "s", "target": format!("mailbox:{inbox}"), "from": "latest"})
            .to_string()
            .into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""ref":"s""#) => break,
            Some(Ok(_)) => continue,
            other => return Err(format!("subscribe failed: {other:?}")),
        }
    }
    let meter = CpuMeter::start(base, redis.as_deref()).await;
    let start = Instant::now();
    // Several sender agents, so the per-agent rate limit (default 1000/s) does not shape the run.
    let mut senders = Vec::new();
    for i in 0..(rate / 500 + 1) {
        let token = auth
            .mint(&format!("bench-e2e-sender-{i}"), &[], Some(3600))
            .map_err(|e| e.client_message())?
            .0;
        senders.push(Client::new(base, Some(token)).map_err(|e| e.to_string())?);
    }
    let pad = "x".repeat(size.saturating_sub(40));
    let senders = Arc::new(senders);
    let to = format!("mailbox:{inbox}");
    let first_error = Arc::new(std::sync::OnceLock::new());
    let send_error = first_error.clone();
    let send_task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(128));
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..messages {
            tick.tick().await;
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (c, pad, to) = (senders[i % senders.len()].clone(), pad.clone(), to.clone());
            let send_error = send_error.clone();
            tokio::spawn(async move {
                let t = start.elapsed().as_nanos() as u64;
                if let Err(e) = c
                    .send(&json!({"to": to, "payload": {"t": t, "i": i, "pad": pad}}))
                    .await
                {
                    let _ = send_error.set(e.to_string());
                }
                drop(permit);
            });
        }
    });
    let pb = bar(messages, "e2e");
    let mut lat = Vec::with_capacity(messages);
    let deadline = Instant::now() + Duration::from_secs(messages as u64 / rate.max(1) + 30);
    while lat.len() < messages && Instant::now() < deadline {
        // Pings (every `heartbeat_seconds`), pongs and other frames are not the end of the run:
        // only a closed or failed connection, or the deadline, is.
        let t = match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
            Ok(Some(Ok(_))) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        if let Some(sent) = v["message"]["payload"]["t"].as_u64() {
            let now = start.elapsed().as_nanos() as u64;
            lat.push(now.saturating_sub(sent) / 1000);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let _ = send_task.await;
    let elapsed = start.elapsed();
    let _ = ws.close(None).await;
    super::bench::delete_sink(base, auth, &inbox).await;
    if let Some(e) = first_error.get() {
        println!("first send error: {e}");
    }
    let errors = messages - lat.len();
    lat.sort_unstable();
    let broker = Figures {
        ok: lat.len(),
        errors,
        elapsed,
        latencies_us: lat,
    };
    let cpu = meter.per_op(broker.ok).await;
    broker.print("broker");
    let report = Report {
        cpu,
        ..Report::new("e2e", broker)
    };
    let Some(url) = raw else {
        return Ok(report);
    };
    let raw = raw_e2e(&url, rate, messages, size).await?;
    raw.print("raw redis");
    let report = report.with_raw_p99(raw);
    println!(
        "ratio      broker/raw p99 latency = {:.2}",
        report.ratio.unwrap_or_default()
    );
    Ok(report)
}

/// The same rate of XADDs, read back by a blocking XREAD consumer: Redis's own store-and-push time.
async fn raw_e2e(url: &str, rate: u64, messages: usize, size: usize) -> Result<Figures, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut reader = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("raw redis: {e}"))?;
    let writer = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("raw redis: {e}"))?;
    let key = "bench:raw:e2e";
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut reader).await;
    let start = Instant::now();
    let pad = "x".repeat(size);
    let send = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..messages {
            tick.tick().await;
            let mut w = writer.clone();
            let t = start.elapsed().as_nanos() as u64;
            let pad = pad.clone();
            tokio::spawn(async move {
                let _: Result<String, _> = redis::cmd("XADD")
                    .arg(key)
                    .arg("*")
                    .arg("t")
                    .arg(t)
                    .arg("p")
                    .arg(pad)
                    .query_async(&mut w)
                    .await;
            });
        }
    });
    let mut last = "0-0".to_owned();
    let mut lat = Vec::with_capacity(messages);
    let deadline = Instant::now() + Duration::from_secs(messages as u64 / rate.max(1) + 30);
    while lat.len() < messages && Instant::now() < deadline {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(key)
            .arg(&last)
            .query_async(&mut reader)
            .await
            .unwrap_or_default();
        let now = start.elapsed().as_nanos() as u64;
        for k in reply.keys {
            for id in k.ids {
                if let Some(t) = id.get::<u64>("t") {
                    lat.push(now.saturating_sub(t) / 1000);
                }
                last = id.id;
            }
        }
    }
    let _ = send.await;
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut reader).await;
    let elapsed = start.elapsed();
    let errors = messages - lat.len();
    lat.sort_unstable();
    Ok(Figures {
        ok: lat.len(),
        errors,
        elapsed,
        latencies_us: lat,
    })
}

async fn broker_rss(base: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", base.trim_end_matches('/')))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
}

/// Holds `count` idle sessions (each subscribed to its own mailbox) and reports RSS per session.
pub async fn sessions(
    base: &str,
    auth: &TokenAuthority,
    count: usize,
    concurrency: usize,
    redis: Option<String>,
) -> Result<Report, String> {
    println!("sessions: {count} idle WebSocket sessions, broker {base}");
    let before = broker_rss(base)
        .await
        .ok_or("cannot read process_resident_memory_bytes from /metrics")?;
    let meter = CpuMeter::start(base, redis.as_deref()).await;
    let pb = bar(count, "sessions");
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let token = auth
            .mint(&format!("idle-{i}"), &[], Some(3600))
            .map_err(|e| e.client_message())?
            .0;
        let url = ws_url(base, &token);
        let slots = slots.clone();
        let pb = pb.clone();
        tasks.push(tokio::spawn(async move {
            let permit = slots.acquire_owned().await.ok()?;
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
            let sub = json!({"op": "subscribe", "ref": "s", "target": format!("mailbox:idle-{i}"), "from": "latest"});
            ws.send(Message::Text(sub.to_string().into())).await.ok()?;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if t.as_str().contains(r#""ref":"s""#) {
                        break;
                    }
                }
            }
            drop(permit);
            pb.inc(1);
            Some(ws)
        }));
    }
    let mut open = Vec::with_capacity(count);
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            open.push(ws);
        }
    }
    pb.finish_and_clear();
    let took = start.elapsed();
    // Let allocations settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = broker_rss(base).await.ok_or("cannot read broker RSS")?;
    let per = (after - before) / open.len().max(1) as f64;
    println!(
        "broker     {} sessions open in {:.1} s   RSS {:.1} MiB -> {:.1} MiB   {:.1} KiB per session",
        open.len(),
        took.as_secs_f64(),
        before / 1048576.0,
        after / 1048576.0,
        per / 1024.0
    );
    if open.len() < count {
        println!(
            "           {} sessions failed to open (file descriptor limits? `ulimit -n`)",
            count - open.len()
        );
    }
    let opened = open.len();
    drop(open);
    let cpu = meter.per_op(opened).await;
    let figures = Figures {
        ok: opened,
        errors: count - opened,
        elapsed: took,
        latencies_us: Vec::new(),
    };
    Ok(Report {
        cpu,
        extra: Some(("kib_per_session", per / 1024.0)),
        ..Report::new("sessions", figures)
    })
}
