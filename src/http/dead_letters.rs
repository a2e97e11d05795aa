//! `/v1/dead-letters`: inspect, requeue and purge dead letters (see [`crate::ops::dead_letters`]
//! for who may).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{parse_json_or_default, query_args, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{ListDeadLettersArgs, PurgeArgs, RequeueMatchingArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/dead-letters")
            .route(web::get().to(list))
            .route(web::delete().to(purge)),
    )
    .route("/dead-letters/requeue", web::post().to(requeue_matching))
    .service(
        web::resource("/dead-letters/{id}")
            .route(web::get().to(show))
            .route(web::delete().to(delete)),
    )
    .route("/dead-letters/{id}/requeue", web::post().to(requeue));
}

async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListDeadLettersArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_dead_letters(&agent, args).await?))
}

async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.show_dead_letter(&agent, &id).await?))
}

async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_dead_letter(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn requeue(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.requeue_dead_letter(&agent, &id).await?))
}

async fn requeue_matching(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let args: RequeueMatchingArgs = parse_json_or_default(&body)?;
    Ok(HttpResponse::Ok().json(state.ops.requeue_dead_letters(&agent, args).await?))
}

async fn purge(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: PurgeArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.purge_dead_letters(&agent, args).await?))
}
