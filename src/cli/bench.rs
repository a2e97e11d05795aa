//! `mailbox bench`: drive a running broker and, for the ratio, raw Redis on the same machine.
//! Figures are printed, never asserted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::bench_report::{CpuMeter, Report};
use super::Conn;
use crate::client::Client;
use crate::config::Config;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print, as the last line, one JSON object with the run's figures.
    #[arg(long, global = true)]
    json: bool,
    /// The broker's Redis, read for its CPU counters (`INFO cpu`); defaults to `--raw-redis`.
    #[arg(long, env = "MAILBOX_BENCH_REDIS", global = true)]
    redis: Option<String>,
}

#[derive(Subcommand)]
enum Scenario {
    /// N clients POSTing direct messages of SIZE bytes.
    SendRest {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Also run the same number of XADDs straight against this Redis (e.g. redis://127.0.0.1:6379).
        #[arg(long, num_args = 0..=1, default_missing_value = "redis://127.0.0.1:6379")]
        raw_redis: Option<String>,
        /// Config whose secret mints the bench tokens (when --token is not given).
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// N clients sending over WebSocket, up to W sends in flight each, matched to their `ok` by `ref`.
    SendWs {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Sends in flight per client.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Also run XADDs against this Redis with a connection per client, awaiting each reply.
        #[arg(long, num_args = 0..=1, default_missing_value = "redis://127.0.0.1:6379")]
        raw_redis: Option<String>,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Fill a mailbox with N messages, then time a WebSocket subscribe `from: beginning` until the
    /// last one arrives.
    Catchup {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Also time an XRANGE of the same backlog on this Redis.
        #[arg(long, num_args = 0..=1, default_missing_value = "redis://127.0.0.1:6379")]
        raw_redis: Option<String>,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// N consumers doing receive → ack round trips on pre-filled mailboxes (one per consumer,
    /// or the token's own mailbox shared by all when --token is given).
    Ack {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 32)]
        consumers: usize,
        /// Round trips in all (the mailboxes are pre-filled with this many messages).
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Config whose secret mints the bench tokens (when --token is not given).
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Send → WebSocket push latency at a fixed rate.
    E2e {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Also measure XADD → blocking XREAD on this Redis at the same rate.
        #[arg(long, num_args = 0..=1, default_missing_value = "redis://127.0.0.1:6379")]
        raw_redis: Option<String>,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// One topic, N WebSocket subscribers, a publisher at a steady rate: deliveries/s and
    /// publish → push latency.
    Fanout {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// Messages published per second.
        #[arg(long, default_value_t = 300)]
        rate: u64,
        #[arg(long, default_value_t = 3000)]
        messages: usize,
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// The topic published to; subscribers use `--pattern`.
        #[arg(long, default_value = "bench.fanout.events")]
        topic: String,
        #[arg(long, default_value = "bench.fanout.#")]
        pattern: String,
        /// Connections opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Hold N idle WebSocket sessions; report broker RSS per session.
    Sessions {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Connections opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, env = "MAILBOX_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Mints bench tokens with the configured secret (the bench runs beside the broker).
fn authority(config: Option<&std::path::Path>) -> Result<crate::auth::TokenAuthority, String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    crate::auth::TokenAuthority::new(&cfg.auth).map_err(|e| e.to_string())
}

/// Throughput and latency of one run.
pub(super) struct Figures {
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Sorted ascending.
    pub latencies_us: Vec<u64>,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    pub fn print(&self, label: &str) {
        self.print_as(label, "msgs/s");
    }

    pub fn print_as(&self, label: &str, unit: &str) {
        println!(
            "{label:<10} {:>10.0} {unit}   p50 {:>7.3} ms   p99 {:>7.3} ms   p999 {:>7.3} ms   ok {} errors {}",
            self.rate(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(0.999),
            self.ok,
            self.errors
        );
    }
}

pub(super) fn bar(total: usize, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(label.to_owned());
    pb
}

/// Runs `clients` tasks that together do `total` operations; each task calls `op(client, i)`.
async fn drive<F, Fut>(clients: usize, total: usize, label: &str, op: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let pb = bar(total, label);
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let n = total / clients + usize::from(c < total % clients);
        let op = op.clone();
        let pb = pb.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0;
            for i in 0..n {
                let t = Instant::now();
                if op(c, i).await {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                pb.inc(1);
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies_us.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    pb.finish_and_clear();
    latencies_us.sort_unstable();
    Figures {
        ok: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

pub async fn run(a: BenchArgs) -> Result<(), String> {
    let json = a.json;
    let redis = a.redis.clone();
    let report = match a.scenario {
        Scenario::SendRest {
            conn,
            clients,
            messages,
            size,
            raw_redis,
            config,
        } => {
            let redis = redis.or_else(|| raw_redis.clone());
            send_rest(
                conn,
                clients.max(1),
                messages,
                size,
                raw_redis,
                redis,
                config,
            )
            .await?
        }
        Scenario::SendWs {
            conn,
            clients,
            window,
            messages,
            size,
            raw_redis,
            config,
        } => {
            let redis = redis.or_else(|| raw_redis.clone());
            super::bench_send_ws::send_ws(
                &conn.url,
                &authority(config.as_deref())?,
                super::bench_send_ws::SendWsPlan {
                    clients: clients.max(1),
                    window: window.max(1),
                    messages,
                    size,
                },
                raw_redis,
                redis,
            )
            .await?
        }
        Scenario::Catchup {
            conn,
            messages,
            size,
            raw_redis,
            config,
        } => {
            let redis = redis.or_else(|| raw_redis.clone());
            super::bench_catchup::catchup(
                &conn.url,
                &authority(config.as_deref())?,
                messages,
                size,
                raw_redis,
                redis,
            )
            .await?
        }
        Scenario::Ack {
            conn,
            consumers,
            messages,
            size,
            config,
        } => ack(conn, consumers.max(1), messages, size, redis, config).await?,
        Scenario::E2e {
            conn,
            rate,
            messages,
            size,
            raw_redis,
            config,
        } => {
            let redis = redis.or_else(|| raw_redis.clone());
            super::bench_ws::e2e(
                &conn.url,
                &authority(config.as_deref())?,
                super::bench_ws::E2ePlan {
                    rate,
                    messages,
                    size,
                },
                raw_redis,
                redis,
            )
            .await?
        }
        Scenario::Fanout {
            conn,
            subscribers,
            rate,
            messages,
            size,
            topic,
            pattern,
            concurrency,
            config,
        } => {
            super::bench_fanout::fanout(
                &conn.url,
                &authority(config.as_deref())?,
                super::bench_fanout::FanoutPlan {
                    subscribers: subscribers.max(1),
                    rate: rate.max(1),
                    messages,
                    size,
                    topic,
                    pattern,
                    concurrency: concurrency.max(1),
                },
                redis,
            )
            .await?
        }
        Scenario::Sessions {
            conn,
            count,
            concurrency,
            config,
        } => {
            super::bench_ws::sessions(
                &conn.url,
                &authority(config.as_deref())?,
                count,
                concurrency,
                redis,
            )
            .await?
        }
    };
    report.print_cpu();
    if json {
        println!("{}", report.to_json());
    }
    Ok(())
}

/// One client per bench agent `<prefix>-<n>`, or the given token for all.
fn bench_clients(
    conn: &Conn,
    n: usize,
    prefix: &str,
    config: Option<&std::path::Path>,
) -> Result<Vec<Client>, String> {
    let authority = match &conn.token {
        Some(_) => None,
        None => Some(authority(config)?),
    };
    let mut pool = Vec::with_capacity(n);
    for c in 0..n {
        let token = match (&conn.token, &authority) {
            (Some(t), _) => t.clone(),
            (None, Some(a)) => {
                a.mint(&format!("{prefix}-{c}"), &[], Some(3600))
                    .map_err(|e| e.client_message())?
                    .0
            }
            (None, None) => return Err("no token".into()),
        };
        pool.push(Client::new(&conn.url, Some(token)).map_err(|e| e.to_string())?);
    }
    Ok(pool)
}

/// The `ack` scenario: pre-fill, then receive → ack round trips.
async fn ack(
    conn: Conn,
    consumers: usize,
    messages: usize,
    size: usize,
    redis: Option<String>,
    config: Option<PathBuf>,
) -> Result<Report, String> {
    println!(
        "ack: {consumers} consumers, {messages} receive→ack round trips on {size} B messages, broker {}",
        conn.url
    );
    let pool = bench_clients(&conn, consumers, "bench-ack", config.as_deref())?;
    let mailboxes: Vec<String> = match &conn.token {
        Some(t) => {
            let own = crate::client::token_subject(t).ok_or("cannot tell the token's agent")?;
            vec![own; consumers]
        }
        None => (0..consumers).map(|c| format!("bench-ack-{c}")).collect(),
    };
    // Pre-fill each consumer's share with batches of 100.
    let payload = "x".repeat(size);
    let fill = bar(messages, "pre-fill");
    for c in 0..consumers {
        let mut left = messages / consumers + usize::from(c < messages % consumers);
        while left > 0 {
            let n = left.min(100);
            let items: Vec<_> = (0..n)
                .map(|_| json!({"to": format!("mailbox:{}", mailboxes[c]), "payload": payload, "require_ack": true}))
                .collect();
            pool[c]
                .raw(
                    reqwest::Method::POST,
                    "/v1/messages/batch",
                    Some(&json!({ "messages": items })),
                )
                .await
                .map_err(|e| format!("pre-fill: {e}"))?;
            fill.inc(n as u64);
            left -= n;
        }
    }
    fill.finish_and_clear();
    let (pool, mailboxes) = (Arc::new(pool), Arc::new(mailboxes));
    let meter = CpuMeter::start(&conn.url, redis.as_deref()).await;
    let figures = {
        let (pool, mailboxes) = (pool.clone(), mailboxes.clone());
        drive(consumers, messages, "receive+ack", move |c, _| {
            let (pool, mailboxes) = (pool.clone(), mailboxes.clone());
            async move {
                let Ok(got) = pool[c].receive(&mailboxes[c], 1, 0).await else {
                    return false;
                };
                match got.first() {
                    Some(m) => pool[c].ack(&mailboxes[c], &m.id).await.is_ok(),
                    None => false,
                }
            }
        })
        .await
    };
    figures.print_as("ack", "round trips/s");
    let cpu = meter.per_op(figures.ok).await;
    Ok(Report {
        cpu,
        ..Report::new("ack", figures)
    })
}

async fn send_rest(
    conn: Conn,
    clients: usize,
    messages: usize,
    size: usize,
    raw_redis: Option<String>,
    redis: Option<String>,
    config: Option<PathBuf>,
) -> Result<Report, String> {
    println!(
        "send-rest: {clients} clients, {messages} messages of {size} B, broker {}",
        conn.url
    );
    // One agent per client (rate limits are per agent).
    let pool = bench_clients(&conn, clients, "bench", config.as_deref())?;
    let authority = match &conn.token {
        Some(_) => None,
        None => Some(authority(config.as_deref())?),
    };
    let pool = Arc::new(pool);
    let payload = "x".repeat(size);
    // A fresh sink per run, so earlier runs never fill it; removed afterwards when we can.
    let sink = format!(
        "bench-sink-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let body = Arc::new(json!({ "to": format!("mailbox:{sink}"), "payload": payload }));
    let meter = CpuMeter::start(&conn.url, redis.as_deref()).await;
    let broker = {
        let (pool, body) = (pool.clone(), body.clone());
        drive(clients, messages, "broker", move |c, _| {
            let (pool, body) = (pool.clone(), body.clone());
            async move { pool[c].send(&*body).await.is_ok() }
        })
        .await
    };
    let cpu = meter.per_op(broker.ok).await;
    broker.print("broker");
    if broker.errors > 0 {
        if let Err(e) = pool[0].send(&*body).await {
            println!("first error: {e}");
        }
    }
    if let Some(a) = &authority {
        delete_sink(&conn.url, a, &sink).await;
    }
    let report = Report {
        cpu,
        ..Report::new("send-rest", broker)
    };
    with_raw_xadd(report, raw_redis, clients, messages, size).await
}

/// Adds raw XADD figures for the same work (when `raw_redis` is given) and the throughput ratio.
pub(super) async fn with_raw_xadd(
    report: Report,
    raw_redis: Option<String>,
    clients: usize,
    messages: usize,
    size: usize,
) -> Result<Report, String> {
    let Some(url) = raw_redis else {
        return Ok(report);
    };
    let raw = raw_xadd(&url, clients, messages, size).await?;
    raw.print("raw redis");
    let report = report.with_raw_rate(raw);
    println!(
        "ratio      broker/raw XADD throughput = {:.2}",
        report.ratio.unwrap_or_default()
    );
    Ok(report)
}

/// Removes a bench's sink mailbox (as its owner), so runs do not pile up in Redis.
pub(super) async fn delete_sink(base: &str, auth: &crate::auth::TokenAuthority, sink: &str) {
    let Ok((token, _)) = auth.mint(sink, &[], Some(600)) else {
        return;
    };
    let Ok(c) = Client::new(base, Some(token)) else {
        return;
    };
    if let Err(e) = c
        .raw(
            reqwest::Method::DELETE,
            &format!("/v1/mailboxes/{sink}"),
            None,
        )
        .await
    {
        println!("could not delete {sink}: {e}");
    }
}

/// `messages` XADDs of a `size`-byte record from `clients` connections, each awaiting its reply:
/// what Redis alone does for the same work.
pub(super) async fn raw_xadd(
    url: &str,
    clients: usize,
    messages: usize,
    size: usize,
) -> Result<Figures, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("raw redis: {e}"))?,
        );
    }
    let conns = Arc::new(conns);
    let record = Arc::new(format!("{{\"payload\":\"{}\"}}", "x".repeat(size)).into_bytes());
    let raw = {
        let (conns, record) = (conns.clone(), record.clone());
        drive(clients, messages, "raw redis", move |c, _| {
            let mut con = conns[c].clone();
            let record = record.clone();
            async move {
                redis::cmd("XADD")
                    .arg(format!("bench:raw:{c}"))
                    .arg("*")
                    .arg("m")
                    .arg(&record[..])
                    .query_async::<String>(&mut con)
                    .await
                    .is_ok()
            }
        })
        .await
    };
    let mut con = conns[0].clone();
    let mut del = redis::cmd("DEL");
    for c in 0..clients {
        del.arg(format!("bench:raw:{c}"));
    }
    let _: Result<i64, _> = del.query_async(&mut con).await;
    Ok(raw)
}
