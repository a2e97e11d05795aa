//! `/v1/subscriptions`: durable topic subscriptions. Messages published to a topic matching the
//! pattern are copied into the mailbox (default: the caller's own), at most once per message
//! and mailbox however many of its subscriptions match.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use mailbox_actors::model::{check_mailbox_name, check_topic_pattern, Subscription};
use serde::Deserialize;
use serde_json::json;

use super::{parse_json, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subscriptions")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/subscriptions/{id}")
            .route(web::get().to(show))
            .route(web::delete().to(remove)),
    );
}

const SMALL_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    pattern: String,
    mailbox: Option<String>,
}

/// `POST /v1/subscriptions {pattern, mailbox?}`: needs `subscribe` on `topic:<pattern>`, and
/// for another agent's mailbox also `manage` on `mailbox:<name>`. 201 when created, 200 when the
/// same mailbox already subscribed to the same pattern (answering that subscription).
async fn create(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let b: CreateBody = parse_json(&body)?;
    check_topic_pattern("pattern", &b.pattern)?;
    let mailbox = b.mailbox.unwrap_or_else(|| agent.id.clone());
    check_mailbox_name(&mailbox)?;
    agent.require(&state, &format!("topic:{}", b.pattern), "subscribe")?;
    if mailbox != agent.id {
        agent.require(&state, &format!("mailbox:{mailbox}"), "manage")?;
    }
    let (sub, created) = state
        .registry
        .router()
        .subscribe(&b.pattern, &mailbox, &agent.id)
        .await?;
    if created {
        tracing::info!(target: "audit", kind = "subscription_created", agent = %agent.id, subscription = %sub.id, pattern = %sub.pattern, mailbox = %sub.mailbox, "durable subscription created");
        Ok(HttpResponse::Created().json(sub))
    } else {
        Ok(HttpResponse::Ok().json(sub))
    }
}

/// May the caller see and remove `sub`? Its mailbox's owner, its creator, and whoever may
/// manage that mailbox (admins).
fn authorize(state: &AppState, agent: &Agent, sub: &Subscription) -> Result<(), ApiError> {
    if sub.mailbox == agent.id || sub.created_by == agent.id {
        return Ok(());
    }
    agent.require(state, &format!("mailbox:{}", sub.mailbox), "manage")
}

/// `GET /v1/subscriptions`: the caller's (into its mailbox, or created by it); with `all=true`
/// every subscription, for those allowed `read` on `admin`.
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let all = match q.get("all").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("all", "`all` must be true or false")),
    };
    if all {
        agent.require(&state, "admin", "read")?;
    }
    let subs: Vec<Subscription> = state
        .registry
        .router()
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| all || s.mailbox == agent.id || s.created_by == agent.id)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "subscriptions": subs })))
}

async fn find(state: &AppState, id: &str) -> Result<Subscription, ApiError> {
    state
        .registry
        .router()
        .subscription(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("subscription `{id}`")))
}

async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sub = find(&state, &id).await?;
    authorize(&state, &agent, &sub)?;
    Ok(HttpResponse::Ok().json(sub))
}

/// `DELETE /v1/subscriptions/{id}`: copies stop before this answers (on this node at once;
/// other nodes follow within a second).
async fn remove(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sub = find(&state, &id).await?;
    authorize(&state, &agent, &sub)?;
    if state.registry.router().unsubscribe(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("subscription `{id}`")));
    }
    tracing::info!(target: "audit", kind = "subscription_deleted", agent = %agent.id, subscription = %id, "durable subscription deleted");
    Ok(HttpResponse::NoContent().finish())
}
