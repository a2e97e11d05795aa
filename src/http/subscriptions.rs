//! `/v1/subscriptions`: durable topic subscriptions into a mailbox (see [`crate::ops::subscriptions`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{created_or_ok, parse_json, query_args, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::ListSubscriptionsArgs;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subscriptions")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/subscriptions/{id}")
            .route(web::get().to(show))
            .route(web::delete().to(remove)),
    );
}

const CREATE_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    pattern: String,
    mailbox: Option<String>,
}

/// `POST /v1/subscriptions {pattern, mailbox?}`: 201 when created, 200 when the same mailbox
/// already subscribed to the same pattern (answering that subscription).
async fn create(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, CREATE_BODY).await?;
    let b: CreateBody = parse_json(&body)?;
    let r = state
        .ops
        .subscribe(&agent, &b.pattern, b.mailbox.as_deref())
        .await?;
    Ok(created_or_ok(r.created, &r))
}

/// `GET /v1/subscriptions[?all=true]`.
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListSubscriptionsArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_subscriptions(&agent, args).await?))
}

async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.show_subscription(&agent, &id).await?))
}

async fn remove(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.unsubscribe(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
