//! `/v1/topics`: the topic tree, create/configure, info, delete, and topic history.

use actix_web::{delete, get, put, web, HttpRequest, HttpResponse};

use super::{created_or_ok, parse_json_or_default, query_args, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BrowseArgs, ConfigureTopicArgs, ListTopicsArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(info)
        .service(configure)
        .service(delete)
        .service(history);
}

/// Settings bodies are small.
const SETTINGS_BODY: usize = 64 * 1024;

/// `GET /v1/topics?prefix=&after=&limit=`.
#[utoipa::path(
    tag = "topics",
    operation_id = "topic_list",
    params(crate::ops::ListTopicsArgs),
    responses(
        (status = 200, description = "Topics under the prefix", body = crate::ops::TopicList),
        crate::openapi::Refusals
    )
)]
#[get("/topics")]
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListTopicsArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_topics(&agent, args).await?))
}

#[utoipa::path(
    tag = "topics",
    operation_id = "topic_info",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 200, description = "Topic info", body = crate::ops::TopicInfo),
        crate::openapi::Refusals
    )
)]
#[get("/topics/{name}")]
async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.topic_info(&agent, &name).await?))
}

#[utoipa::path(
    tag = "topics",
    operation_id = "topic_configure",
    params(("name" = String, Path, description = "Topic name")),
    request_body(content = Option<crate::ops::ConfigureTopicArgs>, description = "History settings; empty body: defaults"),
    responses(
        (status = 201, description = "Created", body = crate::ops::TopicConfigured),
        (status = 200, description = "Reconfigured", body = crate::ops::TopicConfigured),
        crate::openapi::Refusals
    )
)]
#[put("/topics/{name}")]
async fn configure(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SETTINGS_BODY).await?;
    // An empty body creates the topic with the default retention.
    let args: ConfigureTopicArgs = parse_json_or_default(&body)?;
    let r = state.ops.configure_topic(&agent, &name, args).await?;
    Ok(created_or_ok(r.created, &r))
}

#[utoipa::path(
    tag = "topics",
    operation_id = "topic_delete",
    params(("name" = String, Path, description = "Topic name")),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::Refusals
    )
)]
#[delete("/topics/{name}")]
async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_topic(&agent, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "topics",
    operation_id = "topic_history",
    params(("name" = String, Path, description = "Topic name"), crate::ops::BrowseArgs),
    responses(
        (status = 200, description = "A page of the history", body = crate::ops::TopicPage),
        crate::openapi::Refusals
    )
)]
#[get("/topics/{name}/messages")]
async fn history(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: BrowseArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.topic_history(&agent, &name, args).await?))
}
