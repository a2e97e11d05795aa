//! Liveness, readiness and metrics.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(live).service(ready).service(prometheus);
}

/// The process is up.
#[utoipa::path(
    tag = "operations",
    operation_id = "health_live",
    security(()),
    responses((status = 200, description = "`{status: \"live\", node}`", body = Object))
)]
#[get("/health/live")]
async fn live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live", "node": state.node_id }))
}

/// 200 while the node takes sends: `ready`, or `degraded: spooling` (storage down and the
/// spool has room, or the spool still draining) with the reason; 503 with the reason otherwise.
#[utoipa::path(
    tag = "operations",
    operation_id = "health_ready",
    security(()),
    responses(
        (status = 200, description = "`{status: \"ready\", node, storage, policy}` or `{status: \"degraded: spooling\", reason, …}`", body = Object),
        (status = 503, description = "`{status: \"unavailable\", reason, storage}`, with Retry-After", body = Object)
    )
)]
#[get("/health/ready")]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let r = state.ops.ready().await;
    match r.reason {
        None => HttpResponse::Ok().json(match r.spooling {
            None => json!({
                "status": "ready", "node": state.node_id, "storage": r.storage, "policy": "loaded"
            }),
            Some(why) => json!({
                "status": "degraded: spooling", "reason": why, "node": state.node_id,
                "storage": r.storage, "policy": "loaded"
            }),
        }),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(json!({ "status": "unavailable", "reason": reason, "storage": r.storage })),
    }
}

/// Prometheus text (SPEC section 11 names every series).
#[utoipa::path(
    tag = "operations",
    operation_id = "metrics",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are disabled (`metrics.enabled = false`)", body = crate::openapi::ErrorBody)
    )
)]
#[get("/metrics")]
async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(h) => {
            if let Some(rss) = resident_memory_bytes() {
                metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
            }
            if let Some(cpu) = cpu_seconds() {
                metrics::gauge!("process_cpu_seconds_total").set(cpu);
            }
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4")
                .body(h.render())
        }
        None => HttpResponse::NotFound().json(json!({
            "error": { "code": "not_found", "message": "metrics are disabled", "details": {} }
        })),
    }
}

/// User + system CPU seconds this process has used, from `/proc/self/stat` (Linux; the kernel
/// reports clock ticks of USER_HZ = 100 per second to user space); `None` elsewhere. Benches read
/// it to report the broker's CPU per operation.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (`state`).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// This process's resident memory, from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
