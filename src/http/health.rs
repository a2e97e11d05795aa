//! Liveness, readiness and metrics.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

async fn live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live", "node": state.node_id }))
}

/// 200 while the node takes sends: `ready`, or `degraded: spooling` (storage down and the
/// spool has room, or the spool still draining) with the reason; 503 with the reason otherwise.
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

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.metrics {
        Some(h) => {
            if let Some(rss) = resident_memory_bytes() {
                metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
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

/// This process's resident memory, from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
