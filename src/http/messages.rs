//! `POST /v1/messages`: send; `POST /v1/messages/batch`: send many, all stored or none.

use actix_web::{post, web, HttpRequest, HttpResponse};
use mailbox_actors::model::SendRequest;

use super::{parse_json, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BatchArgs, SendArgs, BODY_OVERHEAD};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(send).service(send_batch);
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

#[utoipa::path(
    tag = "messages",
    operation_id = "send_message",
    request_body = mailbox_actors::model::SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried send with the same key answers the first result (24 h)")),
    responses(
        (status = 201, description = "Stored or delivered", body = mailbox_actors::dispatch::SendReceipt),
        (status = 202, description = "Spooled (Redis down): will reach Redis in order", body = mailbox_actors::dispatch::SendReceipt),
        crate::openapi::Refusals
    )
)]
#[post("/messages")]
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

#[utoipa::path(
    tag = "messages",
    operation_id = "send_batch",
    request_body = crate::ops::BatchArgs,
    responses(
        (status = 201, description = "All stored (or none: the error names `details.index`)", body = crate::ops::BatchReceipt),
        crate::openapi::Refusals
    )
)]
#[post("/messages/batch")]
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
