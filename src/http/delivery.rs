//! Consuming a mailbox: `POST /v1/mailboxes/{name}/receive`, and settling a delivery with
//! `…/messages/{id}/ack` and `…/messages/{id}/nack` (SPEC sections 4 and 5).

use actix_web::{post, web, HttpResponse};

use super::{parse_json_or_default, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{NackArgs, ReceiveArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(receive).service(ack).service(nack);
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_receive",
    params(("name" = String, Path, description = "Mailbox name (agent id)")),
    request_body(content = Option<crate::ops::ReceiveArgs>, description = "`{max, wait_seconds}`; empty body: one message, no wait"),
    responses(
        (status = 200, description = "Messages handed over (each an attempt)", body = crate::ops::Received),
        crate::openapi::Refusals
    )
)]
#[post("/mailboxes/{name}/receive")]
async fn receive(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    // An empty body takes the defaults: one message, no waiting.
    let args: ReceiveArgs = parse_json_or_default(&body)?;
    let received = state.ops.receive(&agent, &name, args).await?;
    metrics::counter!("mailbox_messages_delivered_total", "transport" => "rest")
        .increment(received.messages.len() as u64);
    Ok(HttpResponse::Ok().json(received))
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "message_ack",
    params(("name" = String, Path, description = "Mailbox name (agent id)"), ("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Settled", body = crate::ops::Acked),
        crate::openapi::Refusals
    )
)]
#[post("/mailboxes/{name}/messages/{id}/ack")]
async fn ack(
    state: web::Data<AppState>,
    agent: Agent,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.ops.ack(&agent, &name, &id).await?))
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "message_nack",
    params(("name" = String, Path, description = "Mailbox name (agent id)"), ("id" = String, Path, description = "Message id")),
    request_body(content = Option<crate::ops::NackArgs>, description = "`{requeue, reason}`"),
    responses(
        (status = 200, description = "Requeued or dead-lettered", body = crate::ops::NackResult),
        crate::openapi::Refusals
    )
)]
#[post("/mailboxes/{name}/messages/{id}/nack")]
async fn nack(
    state: web::Data<AppState>,
    agent: Agent,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    let body = read_body(payload, SMALL_BODY).await?;
    let args: NackArgs = parse_json_or_default(&body)?;
    Ok(HttpResponse::Ok().json(state.ops.nack(&agent, &name, &id, args).await?))
}
