//! `POST /v1/messages`: send; `POST /v1/messages/batch`: send many, all stored or none.

use actix_web::{web, HttpRequest, HttpResponse};
use mailbox_actors::model::SendRequest;

use super::{parse_json, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BatchArgs, SendArgs, BODY_OVERHEAD};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/messages", web::post().to(send))
        .route("/messages/batch", web::post().to(send_batch));
}

/// A batch body is capped at this many maximal payloads.
const BATCH_BODY_PAYLOADS: usize = 16;

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
    let limit = state.ops.message_limits().max_message_bytes + BODY_OVERHEAD;
    let body = read_body(payload, limit).await?;
    let message: SendRequest = parse_json(&body)?;
    let idempotency_key = idempotency_header(&req)?;
    let receipt = state
        .ops
        .send(
            &agent,
            SendArgs {
                message,
                idempotency_key,
            },
        )
        .await?;
    Ok(created_or_spooled(receipt.status == "spooled").json(receipt))
}

async fn send_batch(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit =
        (state.ops.message_limits().max_message_bytes + BODY_OVERHEAD) * BATCH_BODY_PAYLOADS;
    let body = read_body(payload, limit).await?;
    let args: BatchArgs = parse_json(&body)?;
    let receipts = state.ops.send_batch(&agent, args).await?;
    let spooled = receipts.results.iter().any(|r| r.status == "spooled");
    Ok(created_or_spooled(spooled).json(receipts))
}

/// 201, or 202 when the node's spool kept the message while storage is down (SPEC section 4).
fn created_or_spooled(spooled: bool) -> actix_web::HttpResponseBuilder {
    if spooled {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Created()
    }
}
