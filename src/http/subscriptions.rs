//! `/v1/subscriptions`: durable topic subscriptions into a mailbox (see [`crate::ops::subscriptions`]).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{created_or_ok, parse_json, query_args, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::ListSubscriptionsArgs;
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(remove);
}

const CREATE_BODY: usize = 64 * 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    pattern: String,
    mailbox: Option<String>,
}

/// `POST /v1/subscriptions {pattern, mailbox?}`: 201 when created, 200 when the same mailbox
/// already subscribed to the same pattern (answering that subscription).
#[utoipa::path(
    tag = "subscriptions",
    operation_id = "subscription_create",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created", body = crate::ops::Subscribed),
        (status = 200, description = "Already subscribed: that subscription", body = crate::ops::Subscribed),
        crate::openapi::Refusals
    )
)]
#[post("/subscriptions")]
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
#[utoipa::path(
    tag = "subscriptions",
    operation_id = "subscription_list",
    params(crate::ops::ListSubscriptionsArgs),
    responses(
        (status = 200, description = "Subscriptions", body = crate::ops::SubscriptionList),
        crate::openapi::Refusals
    )
)]
#[get("/subscriptions")]
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListSubscriptionsArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_subscriptions(&agent, args).await?))
}

#[utoipa::path(
    tag = "subscriptions",
    operation_id = "subscription_show",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = mailbox_actors::model::Subscription),
        crate::openapi::Refusals
    )
)]
#[get("/subscriptions/{id}")]
async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.show_subscription(&agent, &id).await?))
}

#[utoipa::path(
    tag = "subscriptions",
    operation_id = "subscription_delete",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::Refusals
    )
)]
#[delete("/subscriptions/{id}")]
async fn remove(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.unsubscribe(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
