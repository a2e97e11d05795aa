//! `/v1/admin/*` (agents, policies, audit, stats) and `POST /v1/auth/token` (the API-key
//! exchange, the one `/v1` route without a bearer token). Who may: see [`crate::ops::admin`].

use actix_web::{web, HttpRequest, HttpResponse};
use mailbox_actors::permission::PolicyRule;

use super::{query_args, small_json};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{AuditArgs, CheckArgs, CreateAgentArgs, TokenArgs};
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/token", web::post().to(token)).service(
        web::scope("/admin")
            .service(
                web::resource("/agents")
                    .route(web::post().to(create_agent))
                    .route(web::get().to(list_agents)),
            )
            .route("/agents/{id}", web::delete().to(delete_agent))
            .service(
                web::resource("/policies")
                    .route(web::get().to(list_policies))
                    .route(web::post().to(add_policy))
                    .route(web::delete().to(remove_policy)),
            )
            .route("/policies/reload", web::post().to(reload_policies))
            .route("/policies/check", web::get().to(check_policy))
            .route("/audit", web::get().to(audit))
            .route("/stats", web::get().to(stats)),
    );
}

async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let args: TokenArgs = small_json(payload).await?;
    Ok(HttpResponse::Ok().json(state.ops.exchange_key(args, req.path()).await?))
}

async fn create_agent(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let args: CreateAgentArgs = small_json(payload).await?;
    Ok(HttpResponse::Created().json(state.ops.create_agent(&agent, args).await?))
}

async fn list_agents(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.list_agents(&agent).await?))
}

async fn delete_agent(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.ops.delete_agent(&agent, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_policies(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.list_policies(&agent)?))
}

async fn add_policy(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rule: PolicyRule = small_json(payload).await?;
    state.ops.add_policy(&agent, rule.clone()).await?;
    Ok(HttpResponse::Created().json(rule))
}

async fn remove_policy(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rule: PolicyRule = small_json(payload).await?;
    state.ops.remove_policy(&agent, rule).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn reload_policies(
    state: web::Data<AppState>,
    agent: Agent,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.reload_policies(&agent).await?))
}

async fn check_policy(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: CheckArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.check_policy(&agent, args)?))
}

async fn audit(
    state: web::Data<AppState>,
    agent: Agent,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let args: AuditArgs = query_args(&req)?;
    Ok(HttpResponse::Ok().json(state.ops.audit(&agent, args).await?))
}

async fn stats(state: web::Data<AppState>, agent: Agent) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.ops.stats(&agent, &state.node_id).await?))
}
