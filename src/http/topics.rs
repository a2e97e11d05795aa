//! `/v1/topics`: the topic tree, create/configure, info, delete, and topic history.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{created_or_ok, parse_json_or_default, query_args, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BrowseArgs, ConfigureTopicArgs, ListTopicsArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/topics", web::get().to(list))
        .service(
            web::resource("/topics/{name}")
                .route(web::get().to(info))
                .route(web::put().to(configure))
                .route(web::delete().to(delete)),
        )
        .route("/topics/{name}/messages", web::get().to(history));
}

/// Settings bodies are small.
const SETTINGS_BODY: usize = 64 * 1024;

/// `GET /v1/topics?prefix=&after=&limit=`.
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListTopicsArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_topics(&agent, args).await?))
}

async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.topic_info(&agent, &name).await?))
}

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

async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_topic(&agent, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn history(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: BrowseArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.topic_history(&agent, &name, args).await?))
}
