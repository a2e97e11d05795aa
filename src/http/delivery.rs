//! Consuming a mailbox: `POST /v1/mailboxes/{name}/receive`, and settling a delivery with
//! `…/messages/{id}/ack` and `…/messages/{id}/nack` (SPEC sections 4 and 5).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{TimeZone, Utc};
use mailbox_actors::mailbox::MAX_RECEIVE;
use mailbox_actors::model::NackOutcome;
use serde::Deserialize;
use serde_json::json;

use super::mailboxes::{authorize, MAX_WAIT_SECONDS, SMALL_BODY};
use super::{parse_json_or_default, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

/// Longest nack reason kept with a dead letter.
pub const MAX_REASON: usize = 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mailboxes/{name}/receive", web::post().to(receive))
        .route("/mailboxes/{name}/messages/{id}/ack", web::post().to(ack))
        .route("/mailboxes/{name}/messages/{id}/nack", web::post().to(nack));
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReceiveBody {
    max: Option<i64>,
    wait_seconds: Option<i64>,
}

async fn receive(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    // An empty body takes the defaults: one message, no waiting.
    let b: ReceiveBody = parse_json_or_default(&body)?;
    let max = match b.max {
        None => 1,
        Some(n) if (1..=MAX_RECEIVE as i64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::validation(
                "max",
                format!("`max` must be 1-{MAX_RECEIVE}"),
            ))
        }
    };
    let wait = match b.wait_seconds {
        None => 0,
        Some(s) if (0..=MAX_WAIT_SECONDS as i64).contains(&s) => s as u64,
        Some(_) => {
            return Err(ApiError::validation(
                "wait_seconds",
                format!("`wait_seconds` must be 0-{MAX_WAIT_SECONDS}"),
            ))
        }
    };
    authorize(&state, &agent, &name, "read")?;
    let messages = state
        .registry
        .mailbox(&name)
        .receive(max, Duration::from_secs(wait))
        .await?;
    metrics::counter!("mailbox_messages_delivered_total", "transport" => "rest")
        .increment(messages.len() as u64);
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}

async fn ack(
    state: web::Data<AppState>,
    agent: Agent,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    authorize(&state, &agent, &name, "read")?;
    let attempt = state.registry.mailbox(&name).ack(&id).await?;
    tracing::debug!(mailbox = %name, message_id = %id, attempt, "acked");
    Ok(HttpResponse::Ok().json(json!({ "id": id, "status": "acked", "attempt": attempt })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NackBody {
    #[serde(default)]
    requeue: bool,
    reason: Option<String>,
}

async fn nack(
    state: web::Data<AppState>,
    agent: Agent,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let body = read_body(payload, SMALL_BODY).await?;
    let b: NackBody = parse_json_or_default(&body)?;
    if b.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
        return Err(ApiError::validation(
            "reason",
            format!("`reason` must be at most {MAX_REASON} bytes"),
        ));
    }
    authorize(&state, &agent, &name, "read")?;
    let reason = b
        .reason
        .unwrap_or_else(|| format!("nacked by {}", agent.id));
    let outcome = state
        .registry
        .mailbox(&name)
        .nack(&id, b.requeue, &reason)
        .await?;
    tracing::debug!(mailbox = %name, message_id = %id, requeue = b.requeue, ?outcome, "nacked");
    Ok(HttpResponse::Ok().json(nack_result(&id, outcome)))
}

/// The answer to a nack (REST body, WebSocket `ok` frame).
pub fn nack_result(id: &str, outcome: NackOutcome) -> serde_json::Value {
    match outcome {
        NackOutcome::Requeued {
            attempt,
            redeliver_at_ms,
        } => json!({
            "id": id,
            "status": "requeued",
            "attempt": attempt,
            "redeliver_at": Utc.timestamp_millis_opt(redeliver_at_ms).single(),
        }),
        NackOutcome::DeadLettered { attempt, reason } => json!({
            "id": id,
            "status": "dead_lettered",
            "attempt": attempt,
            "reason": reason,
        }),
    }
}
