//! `mailbox bench catchup`: fill a mailbox with N messages, then time a WebSocket subscribe
//! `from: beginning` until the last one has arrived. The raw equivalent reads the same number
//! of entries from one Redis stream with XRANGE pages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::bench::{bar, Figures};
use super::bench_report::{CpuMeter, Report};
use super::bench_ws::ws_url;
use crate::auth::TokenAuthority;
use crate::client::Client;

/// Messages per batch request while filling (the batch limit).
const FILL_BATCH: usize = 100;
/// Messages each filling agent sends, within the default per-agent burst.
const PER_FILLER: usize = 2000;
/// XRANGE page size for the raw read.
const RAW_PAGE: usize = 10_000;

pub async fn catchup(
    base: &str,
    auth: &TokenAuthority,
    messages: usize,
    size: usize,
    raw_redis: Option<String>,
    redis: Option<String>,
) -> Result<Report, String> {
    println!("catchup: a backlog of {messages} messages of {size} B, broker {base}");
    let owner = format!(
        "bench-catchup-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    fill(base, auth, &owner, messages, size).await?;
    let token = auth
        .mint(&owner, &[], Some(3600))
        .map_err(|e| e.client_message())?
        .0;
    let pb = bar(messages, "catch-up");
    let meter = CpuMeter::start(base, redis.as_deref()).await;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (mut got, mut errors, mut from) = (0usize, 0usize, "beginning".to_owned());
    // A slow-consumer close (1013) is part of the protocol: resume after the last seq seen.
    'sessions: while got < messages {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(ws_url(base, &token)).await else {
            errors = messages - got;
            break;
        };
        let sub = json!({"op": "subscribe", "ref": "s", "target": format!("mailbox:{owner}"), "from": from});
        if ws
            .send(Message::Text(sub.to_string().into()))
            .await
            .is_err()
        {
            continue;
        }
        while got < messages {
            let t = match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => continue 'sessions,
                Ok(Some(Ok(_))) => continue,
                Err(_) => {
                    errors = messages - got;
                    break 'sessions;
                }
            };
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                continue;
            };
            match v["type"].as_str() {
                Some("message") => {
                    if let Some(seq) = v["message"]["seq"].as_str() {
                        from = seq.to_owned();
                    }
                    got += 1;
                    pb.inc(1);
                }
                Some("error") => {
                    pb.finish_and_clear();
                    return Err(format!("subscribe refused: {t}"));
                }
                _ => {}
            }
        }
    }
    let seconds = start.elapsed();
    pb.finish_and_clear();
    let broker = Figures {
        ok: got,
        errors,
        elapsed: seconds,
        latencies_us: Vec::new(),
    };
    let cpu = meter.per_op(got).await;
    broker.print_as("broker", "msgs/s");
    println!(
        "broker     {got} of {messages} backlog messages in {:.3} s",
        seconds.as_secs_f64()
    );
    super::bench::delete_sink(base, auth, &owner).await;
    let report = Report {
        cpu,
        extra: Some(("seconds", seconds.as_secs_f64())),
        ..Report::new("catchup", broker)
    };
    let Some(url) = raw_redis else {
        return Ok(report);
    };
    let raw = raw_xrange(&url, messages, size).await?;
    println!(
        "raw redis  {} entries by XRANGE in {:.3} s",
        raw.ok,
        raw.elapsed.as_secs_f64()
    );
    let report = report.with_raw_rate(raw);
    println!(
        "ratio      broker/raw catch-up rate = {:.2}",
        report.ratio.unwrap_or_default()
    );
    Ok(report)
}

/// Fills `owner`'s mailbox with batches from several sender agents (so the per-agent rate limit
/// does not shape the fill), eight requests at a time.
async fn fill(
    base: &str,
    auth: &TokenAuthority,
    owner: &str,
    messages: usize,
    size: usize,
) -> Result<(), String> {
    let pb = bar(messages, "fill");
    let slots = Arc::new(Semaphore::new(8));
    let payload = "x".repeat(size);
    let mut tasks = Vec::new();
    let mut senders: Vec<Client> = Vec::new();
    for (b, first) in (0..messages).step_by(FILL_BATCH).enumerate() {
        let filler = first / PER_FILLER;
        if senders.len() <= filler {
            let token = auth
                .mint(&format!("bench-fill-{filler}"), &[], Some(3600))
                .map_err(|e| e.client_message())?
                .0;
            senders.push(Client::new(base, Some(token)).map_err(|e| e.to_string())?);
        }
        let n = FILL_BATCH.min(messages - first);
        let items: Vec<Value> = (0..n)
            .map(|_| json!({"to": format!("mailbox:{owner}"), "payload": payload}))
            .collect();
        let (client, slots, pb) = (senders[filler].clone(), slots.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = slots.acquire_owned().await.ok();
            let r = client
                .raw(
                    reqwest::Method::POST,
                    "/v1/messages/batch",
                    Some(&json!({ "messages": items })),
                )
                .await;
            pb.inc(n as u64);
            r.map(|_| ()).map_err(|e| format!("fill batch {b}: {e}"))
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    pb.finish_and_clear();
    Ok(())
}

/// XADDs `messages` entries (pipelined, not timed), then times reading them all back by XRANGE.
async fn raw_xrange(url: &str, messages: usize, size: usize) -> Result<Figures, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("raw redis: {e}"))?;
    let key = "bench:raw:catchup";
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut con).await;
    let record = format!("{{\"payload\":\"{}\"}}", "x".repeat(size));
    for chunk in (0..messages).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for _ in chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("m")
                .arg(&record)
                .ignore();
        }
        pipe.query_async::<()>(&mut con)
            .await
            .map_err(|e| format!("raw fill: {e}"))?;
    }
    let start = Instant::now();
    let (mut got, mut after) = (0usize, "-".to_owned());
    while got < messages {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&after)
            .arg("+")
            .arg("COUNT")
            .arg(RAW_PAGE)
            .query_async(&mut con)
            .await
            .map_err(|e| format!("raw XRANGE: {e}"))?;
        let Some(last) = page.ids.last() else { break };
        after = format!("({}", last.id);
        got += page.ids.len();
    }
    let elapsed = start.elapsed();
    let _: Result<i64, _> = redis::cmd("DEL").arg(key).query_async(&mut con).await;
    Ok(Figures {
        ok: got,
        errors: messages - got.min(messages),
        elapsed,
        latencies_us: Vec::new(),
    })
}
