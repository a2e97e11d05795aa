//! `/v1/admin/*` (agents, policies, audit, stats) and `POST /v1/auth/token` (the API-key
//! exchange, the one `/v1` route without a bearer token). Who may: see [`crate::ops::admin`].

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use mailbox_actors::permission::PolicyRule;

use super::{query_args, small_json};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{AuditArgs, CheckArgs, CreateAgentArgs, TokenArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // The literal `/admin/policies/reload` and `/check` are distinct paths from `/admin/policies`.
    cfg.service(token)
        .service(create_agent)
        .service(list_agents)
        .service(delete_agent)
        .service(list_policies)
        .service(add_policy)
        .service(remove_policy)
        .service(reload_policies)
        .service(check_policy)
        .service(audit)
        .service(stats);
}

#[utoipa::path(
    tag = "admin",
    operation_id = "auth_token",
    request_body = crate::ops::TokenArgs,
    security(()),
    responses(
        (status = 200, description = "A JWT for the agent", body = crate::ops::TokenIssued),
        crate::openapi::Refusals
    )
)]
#[post("/auth/token")]
async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let args: TokenArgs = small_json(payload).await?;
    Ok(HttpResponse::Ok().json(state.ops.exchange_key(args, req.path()).await?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_agent_create",
    request_body = crate::ops::CreateAgentArgs,
    responses(
        (status = 201, description = "Created; the API key is shown only now", body = crate::ops::AgentCreated),
        crate::openapi::Refusals
    )
)]
#[post("/admin/agents")]
async fn create_agent(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let args: CreateAgentArgs = small_json(payload).await?;
    Ok(HttpResponse::Created().json(state.ops.create_agent(&agent, args).await?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_agent_list",
    responses(
        (status = 200, description = "Agents (never a key or its hash)", body = crate::ops::AgentList),
        crate::openapi::Refusals
    )
)]
#[get("/admin/agents")]
async fn list_agents(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.list_agents(&agent).await?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_agent_delete",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 204, description = "Deleted; its API key no longer exchanges for a token"),
        crate::openapi::Refusals
    )
)]
#[delete("/admin/agents/{id}")]
async fn delete_agent(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_agent(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_policy_list",
    responses(
        (status = 200, description = "The rules in force", body = crate::ops::PolicyList),
        crate::openapi::Refusals
    )
)]
#[get("/admin/policies")]
async fn list_policies(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.list_policies(&agent)?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_policy_add",
    request_body = mailbox_actors::permission::PolicyRule,
    responses(
        (status = 201, description = "Added and written back to the policy file", body = mailbox_actors::permission::PolicyRule),
        crate::openapi::Refusals
    )
)]
#[post("/admin/policies")]
async fn add_policy(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rule: PolicyRule = small_json(payload).await?;
    state.ops.add_policy(&agent, rule.clone()).await?;
    Ok(HttpResponse::Created().json(rule))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_policy_remove",
    request_body = mailbox_actors::permission::PolicyRule,
    responses(
        (status = 204, description = "Removed and written back to the policy file"),
        crate::openapi::Refusals
    )
)]
#[delete("/admin/policies")]
async fn remove_policy(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rule: PolicyRule = small_json(payload).await?;
    state.ops.remove_policy(&agent, rule).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_policy_reload",
    responses(
        (status = 200, description = "Reloaded", body = crate::ops::Reloaded),
        crate::openapi::Refusals
    )
)]
#[post("/admin/policies/reload")]
async fn reload_policies(
    state: web::Data<AppState>,
    agent: Agent,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.reload_policies(&agent).await?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_policy_check",
    params(crate::ops::CheckArgs),
    responses(
        (status = 200, description = "The decision", body = crate::ops::Decision),
        crate::openapi::Refusals
    )
)]
#[get("/admin/policies/check")]
async fn check_policy(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: CheckArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.check_policy(&agent, args)?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_audit",
    params(crate::ops::AuditArgs),
    responses(
        (status = 200, description = "Audit events, newest first", body = crate::ops::AuditList),
        crate::openapi::Refusals
    )
)]
#[get("/admin/audit")]
async fn audit(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: AuditArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.audit(&agent, args).await?))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_stats",
    responses(
        (status = 200, description = "Counts and rates", body = crate::ops::Stats),
        crate::openapi::Refusals
    )
)]
#[get("/admin/stats")]
async fn stats(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.stats(&agent, &state.node_id).await?))
}
