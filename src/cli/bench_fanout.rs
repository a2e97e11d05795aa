//! `mailbox bench fanout`: N WebSocket sessions subscribed to one topic pattern, one publisher
//! at a steady rate. Prints deliveries per second and publish → push latency (each payload
//! carries its send time, as in `e2e`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::bench::{bar, Figures};
use super::bench_report::{CpuMeter, Report};
use super::bench_ws::ws_url;
use crate::auth::TokenAuthority;
use crate::client::Client;

/// What to run.
pub struct FanoutPlan {
    pub subscribers: usize,
    pub rate: u64,
    pub messages: usize,
    pub size: usize,
    pub topic: String,
    pub pattern: String,
    pub concurrency: usize,
}

/// The send time in a frame: the number after `"t":` (payload `{"i":…,"pad":…,"t":…}`), read
/// without parsing the whole frame, so the load generator stays cheap.
fn sent_at(frame: &str) -> Option<u64> {
    let rest = &frame[frame.find("\"t\":")? + 4..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub async fn fanout(
    base: &str,
    auth: &TokenAuthority,
    plan: FanoutPlan,
    redis: Option<String>,
) -> Result<Report, String> {
    let FanoutPlan {
        subscribers,
        rate,
        messages,
        size,
        topic,
        pattern,
        concurrency,
    } = plan;
    println!(
        "fanout: {subscribers} subscribers on topic:{pattern}, {messages} messages to {topic} at {rate}/s, {size} B, broker {base}"
    );
    let pb = bar(subscribers, "subscribe");
    let slots = Arc::new(Semaphore::new(concurrency));
    // Everyone (subscribers + the publisher) passes once all subscriptions are in place.
    let ready = Arc::new(Barrier::new(subscribers + 1));
    let start = Instant::now();
    let deadline = Duration::from_secs(messages as u64 / rate + 30);
    let delivered = bar(subscribers * messages, "delivered");
    delivered.set_position(0);
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let token = auth
            .mint(&format!("fan-{i}"), &[], Some(3600))
            .map_err(|e| e.client_message())?
            .0;
        let (url, slots, ready, pb, delivered) = (
            ws_url(base, &token),
            slots.clone(),
            ready.clone(),
            pb.clone(),
            delivered.clone(),
        );
        let target = format!("topic:{pattern}");
        tasks.push(tokio::spawn(async move {
            let subscribed = async {
                let _permit = slots.acquire_owned().await.ok()?;
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
                let sub =
                    json!({"op": "subscribe", "ref": "s", "target": target, "from": "latest"});
                ws.send(Message::Text(sub.to_string().into())).await.ok()?;
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        if t.as_str().contains(r#""ref":"s""#) {
                            return t.as_str().contains(r#""type":"ok""#).then_some(ws);
                        }
                    }
                }
                None
            }
            .await;
            pb.inc(1);
            ready.wait().await;
            let mut ws = subscribed?;
            let mut lat = Vec::with_capacity(messages);
            let mut last = start.elapsed();
            let until = tokio::time::Instant::now() + deadline;
            while lat.len() < messages {
                let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, ws.next()).await else {
                    break;
                };
                let Message::Text(t) = m else { continue };
                if let Some(sent) = sent_at(t.as_str()) {
                    last = start.elapsed();
                    lat.push((last.as_nanos() as u64).saturating_sub(sent) / 1000);
                    delivered.inc(1);
                }
            }
            Some((lat, last))
        }));
    }
    ready.wait().await;
    pb.finish_and_clear();
    let publisher = Client::new(
        base,
        Some(
            auth.mint("bench-fanout-publisher", &[], Some(3600))
                .map_err(|e| e.client_message())?
                .0,
        ),
    )
    .map_err(|e| e.to_string())?;
    let pad = "x".repeat(size.saturating_sub(40));
    let meter = CpuMeter::start(base, redis.as_deref()).await;
    let first_send = start.elapsed();
    let send_task = tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(64));
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut errors = 0usize;
        let mut sends = Vec::with_capacity(messages);
        for i in 0..messages {
            tick.tick().await;
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (c, pad, to) = (publisher.clone(), pad.clone(), format!("topic:{topic}"));
            sends.push(tokio::spawn(async move {
                let t = start.elapsed().as_nanos() as u64;
                let ok = c
                    .send(&json!({"to": to, "payload": {"t": t, "i": i, "pad": pad}}))
                    .await
                    .is_ok();
                drop(permit);
                ok
            }));
        }
        for s in sends {
            if !matches!(s.await, Ok(true)) {
                errors += 1;
            }
        }
        errors
    });
    let mut lat = Vec::with_capacity(subscribers * messages);
    let mut open = 0;
    let mut last = first_send;
    for t in tasks {
        if let Ok(Some((l, at))) = t.await {
            open += 1;
            lat.extend(l);
            last = last.max(at);
        }
    }
    delivered.finish_and_clear();
    let send_errors = send_task.await.unwrap_or(messages);
    lat.sort_unstable();
    let expected = open * messages.saturating_sub(send_errors);
    let figures = Figures {
        ok: lat.len(),
        errors: expected.saturating_sub(lat.len()),
        elapsed: last.saturating_sub(first_send),
        latencies_us: lat,
    };
    println!(
        "broker     {open} of {subscribers} subscribers, {} publishes failed",
        send_errors
    );
    figures.print("deliveries");
    let cpu = meter.per_op(figures.ok).await;
    Ok(Report {
        cpu,
        ..Report::new("fanout", figures)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_send_time() {
        let f = r#"{"type":"message","subscription":"s1","message":{"payload":{"i":3,"pad":"xx","t":12345},"seq":"9"}}"#;
        assert_eq!(super::sent_at(f), Some(12345));
        assert_eq!(super::sent_at("{}"), None);
    }
}
