//! Consuming a mailbox: `POST /v1/mailboxes/{name}/receive`, and settling a delivery with
//! `…/messages/{id}/ack` and `…/messages/{id}/nack` (SPEC sections 4 and 5).

use actix_web::{web, HttpResponse};

use super::{parse_json_or_default, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{NackArgs, ReceiveArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/mailboxes/{name}/receive", web::post().to(receive))
        .route("/mailboxes/{name}/messages/{id}/ack", web::post().to(ack))
        .route("/mailboxes/{name}/messages/{id}/nack", web::post().to(nack));
}

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

async fn ack(
    state: web::Data<AppState>,
    agent: Agent,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.ops.ack(&agent, &name, &id).await?))
}

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
