//! `/v1/dead-letters`: inspect, requeue and purge dead letters (see [`crate::ops::dead_letters`]
//! for who may).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};

use super::{parse_json_or_default, query_args, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{ListDeadLettersArgs, PurgeArgs, RequeueMatchingArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // The literal `/dead-letters/requeue` before `/dead-letters/{id}`.
    cfg.service(list)
        .service(purge)
        .service(requeue_matching)
        .service(show)
        .service(delete)
        .service(requeue);
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_list",
    params(crate::ops::ListDeadLettersArgs),
    responses(
        (status = 200, description = "A page of dead letters", body = crate::ops::dead_letters::DeadLetterPage),
        crate::openapi::Refusals
    )
)]
#[get("/dead-letters")]
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: ListDeadLettersArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.list_dead_letters(&agent, args).await?))
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_show",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 200, description = "The dead letter", body = mailbox_actors::model::DeadLetter),
        crate::openapi::Refusals
    )
)]
#[get("/dead-letters/{id}")]
async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.show_dead_letter(&agent, &id).await?))
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_delete",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::Refusals
    )
)]
#[delete("/dead-letters/{id}")]
async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_dead_letter(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_requeue",
    params(("id" = String, Path, description = "Dead-letter id")),
    responses(
        (status = 200, description = "Back in its mailbox under a new id", body = crate::ops::dead_letters::Requeued),
        crate::openapi::Refusals
    )
)]
#[post("/dead-letters/{id}/requeue")]
async fn requeue(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.requeue_dead_letter(&agent, &id).await?))
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_requeue_matching",
    request_body(content = Option<crate::ops::RequeueMatchingArgs>, description = "`{filter: {mailbox?, reason?}}`; empty: all"),
    responses(
        (status = 200, description = "How many were requeued", body = crate::ops::dead_letters::RequeuedCount),
        crate::openapi::Refusals
    )
)]
#[post("/dead-letters/requeue")]
async fn requeue_matching(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let args: RequeueMatchingArgs = parse_json_or_default(&body)?;
    Ok(HttpResponse::Ok().json(state.ops.requeue_dead_letters(&agent, args).await?))
}

#[utoipa::path(
    tag = "dead-letters",
    operation_id = "dead_letter_purge",
    params(crate::ops::PurgeArgs),
    responses(
        (status = 200, description = "How many were purged", body = crate::ops::dead_letters::Purged),
        crate::openapi::Refusals
    )
)]
#[delete("/dead-letters")]
async fn purge(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: PurgeArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.purge_dead_letters(&agent, args).await?))
}
