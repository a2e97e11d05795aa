//! `POST /v1/messages`: send; `POST /v1/messages/batch`: send many, all stored or none.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use mailbox_actors::dispatch::{BatchItem, SendReceipt, MAX_BATCH};
use mailbox_actors::model::{Address, SendRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::post().to(send))
        .route("/messages/batch", web::post().to(send_batch));
}

/// A batch body is capped at this many maximal payloads.
const BATCH_BODY_PAYLOADS: usize = 16;

/// Room for the envelope's other fields around a maximal payload.
pub const BODY_OVERHEAD: usize = 64 * 1024;

/// Validates, checks permission and stores one send; shared by REST, WebSocket and MCP.
pub async fn send_one(
    state: &AppState,
    agent: &Agent,
    mut req: SendRequest,
    header_key: Option<String>,
) -> Result<SendReceipt, ApiError> {
    let started = Instant::now();
    let to = req.validate(&state.limits)?;
    let obj = match &to {
        Address::Broadcast => "broadcast".to_owned(),
        other => other.permission_object(),
    };
    agent.require(state, &obj, "send")?;
    if let Err(retry_after) = state.rate.take(&agent.id, 1) {
        metrics::counter!("mailbox_rate_limited_total").increment(1);
        return Err(ApiError::RateLimited {
            message: format!(
                "`{}` is over its send rate ({}/s, burst {})",
                agent.id, state.limits_cfg.rate_per_second, state.limits_cfg.rate_burst
            ),
            retry_after,
        });
    }
    let key = header_key.or_else(|| req.idempotency_key.take());
    let receipt = state
        .dispatch
        .send(&agent.id, req, &to, key.as_deref())
        .await?;
    metrics::histogram!("mailbox_send_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(receipt)
}

fn idempotency_header(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.to_owned())),
        _ => Err(ApiError::validation(
            "Idempotency-Key",
            "must be 1-256 visible ASCII characters",
        )),
    }
}

async fn send(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.limits.max_message_bytes + BODY_OVERHEAD).await?;
    let send: SendRequest = parse_json(&body)?;
    let key = idempotency_header(&req)?;
    let receipt = send_one(&state, &agent, send, key).await?;
    Ok(HttpResponse::Created().json(receipt))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    messages: Vec<Value>,
}

/// Parses, validates and permission-checks every item before anything is stored; the first bad
/// item is answered with its `details.index` (and `details.field` when a rule named one).
fn check_batch(
    state: &AppState,
    agent: &Agent,
    items: Vec<Value>,
) -> Result<Vec<BatchItem>, ApiError> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "messages",
            format!("`messages` must hold 1-{MAX_BATCH} messages"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let mut req: SendRequest = serde_json::from_value(item)
            .map_err(|e| ApiError::BadRequest(format!("invalid message: {e}")).at_index(i))?;
        let to = req
            .validate(&state.limits)
            .map_err(|e| ApiError::from(e).at_index(i))?;
        let obj = match &to {
            Address::Broadcast => "broadcast".to_owned(),
            other => other.permission_object(),
        };
        agent
            .require(state, &obj, "send")
            .map_err(|e| e.at_index(i))?;
        let key = req.idempotency_key.take();
        out.push(BatchItem {
            request: req,
            to,
            idempotency_key: key,
        });
    }
    Ok(out)
}

async fn send_batch(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let limit = (state.limits.max_message_bytes + BODY_OVERHEAD) * BATCH_BODY_PAYLOADS;
    let body = read_body(payload, limit).await?;
    let b: BatchBody = parse_json(&body)?;
    let items = check_batch(&state, &agent, b.messages)?;
    let results = state
        .dispatch
        .send_batch(&agent.id, items)
        .await
        .map_err(|e| ApiError::from(e.error).at_index(e.index))?;
    metrics::histogram!("mailbox_send_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Created().json(json!({ "results": results })))
}
