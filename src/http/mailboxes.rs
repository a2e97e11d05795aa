//! `/v1/mailboxes/{name}`: info, configure, delete, browse, mark read.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};

use super::{created_or_ok, parse_json, parse_json_or_default, query_args, read_body, SMALL_BODY};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{BrowseArgs, ConfigureMailboxArgs, MarkReadArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(info)
        .service(configure)
        .service(delete)
        .service(browse)
        .service(mark_read);
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_info",
    params(("name" = String, Path, description = "Mailbox name (agent id)")),
    responses(
        (status = 200, description = "Counts and settings", body = crate::ops::MailboxInfo),
        crate::openapi::Refusals
    )
)]
#[get("/mailboxes/{name}")]
async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.mailbox_info(&agent, &name).await?))
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_configure",
    params(("name" = String, Path, description = "Mailbox name (agent id)")),
    request_body(content = Option<crate::ops::ConfigureMailboxArgs>, description = "Settings; empty body: defaults"),
    responses(
        (status = 201, description = "Created", body = crate::ops::MailboxConfigured),
        (status = 200, description = "Reconfigured", body = crate::ops::MailboxConfigured),
        crate::openapi::Refusals
    )
)]
#[put("/mailboxes/{name}")]
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

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_delete",
    params(("name" = String, Path, description = "Mailbox name (agent id)")),
    responses(
        (status = 204, description = "Deleted with its messages"),
        crate::openapi::Refusals
    )
)]
#[delete("/mailboxes/{name}")]
async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_mailbox(&agent, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_browse",
    params(("name" = String, Path, description = "Mailbox name (agent id)"), crate::ops::BrowseArgs),
    responses(
        (status = 200, description = "A page of messages, no side effects", body = crate::ops::BrowsePage),
        crate::openapi::Refusals
    )
)]
#[get("/mailboxes/{name}/messages")]
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

#[utoipa::path(
    tag = "mailboxes",
    operation_id = "mailbox_mark_read",
    params(("name" = String, Path, description = "Mailbox name (agent id)")),
    request_body = crate::ops::MarkReadArgs,
    responses(
        (status = 200, description = "Unread count after", body = crate::ops::Unread),
        crate::openapi::Refusals
    )
)]
#[post("/mailboxes/{name}/read")]
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
