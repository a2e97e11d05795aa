//! `/v1/mailboxes/{name}`: info, configure, delete, browse, mark read.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{created_or_ok, parse_json, parse_json_or_default, query_args, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BrowseArgs, ConfigureMailboxArgs, MarkReadArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/mailboxes/{name}")
            .route(web::get().to(info))
            .route(web::put().to(configure))
            .route(web::delete().to(delete)),
    )
    .route("/mailboxes/{name}/messages", web::get().to(browse))
    .route("/mailboxes/{name}/read", web::post().to(mark_read));
}

async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.mailbox_info(&agent, &name).await?))
}

async fn configure(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    // An empty body creates the mailbox with default settings.
    let args: ConfigureMailboxArgs = parse_json_or_default(&body)?;
    let r = state.ops.configure_mailbox(&agent, &name, args).await?;
    Ok(created_or_ok(r.created, &r))
}

async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_mailbox(&agent, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn browse(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: BrowseArgs = query_args(&req)?;
    let page = state.ops.browse(&agent, &name, args).await?;
    let mut res = HttpResponse::Ok();
    if page.degraded {
        res.insert_header(("X-Mailbox-Degraded", "cached"));
    }
    Ok(res.json(page))
}

async fn mark_read(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let args: MarkReadArgs = parse_json(&body)?;
    Ok(HttpResponse::Ok().json(state.ops.mark_read(&agent, &name, args).await?))
}
