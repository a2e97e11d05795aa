//! `GET /v1/admin/mailboxes`: every known mailbox with its owner's unread count (the
//! dashboard's mailbox table; see [`crate::ops::overview`]).

use actix_web::{get, web, HttpResponse};

use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(mailboxes);
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_mailboxes",
    responses(
        (status = 200, description = "Known mailboxes (first 500 by name) and how many are known", body = crate::ops::overview::MailboxOverview),
        crate::openapi::Refusals
    )
)]
#[get("/admin/mailboxes")]
async fn mailboxes(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.mailbox_overview(&agent).await?))
}
