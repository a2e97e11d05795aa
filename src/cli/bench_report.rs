//! What every `mailbox bench` scenario reports: the human lines it prints as it goes and, with
//! `--json`, one JSON object as its last line (scenario, ok, errors, rate, p50/p99/p999, the raw
//! Redis figures, the ratio and the CPU each side spent per operation).

use serde_json::{json, Value};

use super::bench::Figures;

/// CPU seconds of the broker (its `process_cpu_seconds_total`) and of Redis (`INFO cpu`), read at
/// the start and end of the measured phase.
pub struct CpuMeter {
    base: String,
    redis: Option<redis::Client>,
    broker_at_start: Option<f64>,
    redis_at_start: Option<f64>,
}

impl CpuMeter {
    /// Reads both counters now. `redis` is the broker's Redis (`--redis`); without it the Redis
    /// side is reported as null.
    pub async fn start(base: &str, redis: Option<&str>) -> Self {
        let redis = redis.and_then(|u| redis::Client::open(u).ok());
        let mut meter = Self {
            base: base.trim_end_matches('/').to_owned(),
            redis,
            broker_at_start: None,
            redis_at_start: None,
        };
        meter.broker_at_start = meter.broker_seconds().await;
        meter.redis_at_start = meter.redis_seconds().await;
        meter
    }

    /// Microseconds of CPU per operation on each side since `start`.
    pub async fn per_op(&self, ops: usize) -> Cpu {
        let ops = ops.max(1) as f64;
        let delta = |before: Option<f64>, after: Option<f64>| {
            before
                .zip(after)
                .map(|(b, a)| ((a - b).max(0.0) * 1e6 / ops * 100.0).round() / 100.0)
        };
        Cpu {
            broker_us: delta(self.broker_at_start, self.broker_seconds().await),
            redis_us: delta(self.redis_at_start, self.redis_seconds().await),
        }
    }

    async fn broker_seconds(&self) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metric(&text, "process_cpu_seconds_total")
    }

    async fn redis_seconds(&self) -> Option<f64> {
        let mut con = self
            .redis
            .as_ref()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut con)
            .await
            .ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        Some(field("used_cpu_sys")? + field("used_cpu_user")?)
    }
}

/// The value of an unlabelled series in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU per operation, in microseconds; `None` where a counter could not be read.
#[derive(Default, Clone, Copy)]
pub struct Cpu {
    pub broker_us: Option<f64>,
    pub redis_us: Option<f64>,
}

/// One scenario's outcome.
pub struct Report {
    pub scenario: &'static str,
    pub broker: Figures,
    pub raw: Option<Figures>,
    /// Broker rate / raw rate, or for latency scenarios broker p99 / raw p99.
    pub ratio: Option<f64>,
    pub cpu: Cpu,
    /// A scenario-specific figure, e.g. `("kib_per_session", 12.5)` or `("seconds", 0.8)`.
    pub extra: Option<(&'static str, f64)>,
}

impl Report {
    pub fn new(scenario: &'static str, broker: Figures) -> Self {
        Self {
            scenario,
            broker,
            raw: None,
            ratio: None,
            cpu: Cpu::default(),
            extra: None,
        }
    }

    /// Adds the raw Redis figures and the throughput ratio.
    pub fn with_raw_rate(mut self, raw: Figures) -> Self {
        self.ratio = Some(round(self.broker.rate() / raw.rate().max(1e-9)));
        self.raw = Some(raw);
        self
    }

    /// Adds the raw Redis figures and the p99 latency ratio.
    pub fn with_raw_p99(mut self, raw: Figures) -> Self {
        self.ratio = Some(round(self.broker.pct(0.99) / raw.pct(0.99).max(1e-9)));
        self.raw = Some(raw);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = figures(&self.broker);
        v["scenario"] = json!(self.scenario);
        v["raw"] = self.raw.as_ref().map(figures).unwrap_or(Value::Null);
        v["ratio"] = json!(self.ratio);
        v["broker_cpu_us_per_op"] = json!(self.cpu.broker_us);
        v["redis_cpu_us_per_op"] = json!(self.cpu.redis_us);
        if let Some((k, x)) = self.extra {
            v[k] = json!(round(x));
        }
        v
    }

    /// The CPU line for people.
    pub fn print_cpu(&self) {
        let show = |x: Option<f64>| x.map_or("n/a".to_owned(), |v| format!("{v:.1} µs"));
        println!(
            "cpu/op     broker {}   redis {}",
            show(self.cpu.broker_us),
            show(self.cpu.redis_us)
        );
    }
}

fn figures(f: &Figures) -> Value {
    json!({
        "ok": f.ok,
        "errors": f.errors,
        "rate": round(f.rate()),
        "p50_ms": round(f.pct(0.50)),
        "p99_ms": round(f.pct(0.99)),
        "p999_ms": round(f.pct(0.999)),
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn figs(ok: usize, secs: u64, lat: Vec<u64>) -> Figures {
        Figures {
            ok,
            errors: 1,
            elapsed: Duration::from_secs(secs),
            latencies_us: lat,
        }
    }

    #[test]
    fn the_json_line_has_every_field_the_issue_names() {
        let r = Report::new("send-rest", figs(1000, 1, vec![1000, 2000, 3000]))
            .with_raw_rate(figs(4000, 1, vec![500]));
        let v = r.to_json();
        for k in [
            "scenario",
            "ok",
            "errors",
            "rate",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "raw",
            "ratio",
            "broker_cpu_us_per_op",
            "redis_cpu_us_per_op",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {v}");
        }
        assert_eq!(v["ratio"], json!(0.25));
        assert_eq!(v["raw"]["rate"], json!(4000.0));
        assert_eq!(v["p50_ms"], json!(2.0));
    }

    #[test]
    fn reads_an_unlabelled_series_only() {
        let text = "process_cpu_seconds_total_x 9\nprocess_cpu_seconds_total 1.5\n";
        assert_eq!(metric(text, "process_cpu_seconds_total"), Some(1.5));
    }
}
