//! `/v1/dead-letters`: inspect, requeue and purge dead letters. Permission `dead-letters`,
//! `manage` (admins by default); an agent that may read a mailbox may also list and see that
//! mailbox's dead letters (`?mailbox=<name>`).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use mailbox_actors::model::check_mailbox_name;
use mailbox_actors::model::{DeadQuery, DeadReason, MAX_DEAD_PAGE};
use serde::Deserialize;
use serde_json::json;

use super::mailboxes::SMALL_BODY;
use super::{parse_json_or_default, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

const OBJECT: &str = "dead-letters";

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

fn parse_reason(v: &str) -> Result<DeadReason, ApiError> {
    DeadReason::parse(v).ok_or_else(|| {
        ApiError::validation(
            "reason",
            "`reason` is max_attempts, rejected, expired, undeliverable or evicted",
        )
    })
}

fn is_manager(state: &AppState, agent: &Agent) -> bool {
    state
        .permissions
        .check(&agent.id, &agent.roles, OBJECT, "manage")
}

async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mailbox = get("mailbox").map(str::to_owned);
    if let Some(m) = &mailbox {
        check_mailbox_name(m)?;
    }
    let reason = get("reason").map(parse_reason).transpose()?;
    let limit = match get("limit") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_DEAD_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "limit",
                    format!("`limit` must be 1-{MAX_DEAD_PAGE}"),
                ))
            }
        },
    };
    let after = get("after").map(str::to_owned);
    if after.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::validation("after", "`after` is a dead-letter id"));
    }
    match &mailbox {
        Some(m) if !is_manager(&state, &agent) => {
            agent.require(&state, &format!("mailbox:{m}"), "read")?
        }
        _ => agent.require(&state, OBJECT, "manage")?,
    }
    let page = state
        .dead_letters
        .list(DeadQuery {
            mailbox,
            reason,
            after,
            limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "dead_letters": page.dead_letters, "next": page.next })))
}

async fn show(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if is_manager(&state, &agent) {
        return Ok(HttpResponse::Ok().json(state.dead_letters.get(&id).await?));
    }
    // Someone who may read the mailbox may see its dead letters; anyone else learns nothing
    // more than "not permitted", whether or not the id exists.
    let d = match state.dead_letters.get(&id).await {
        Ok(d) => d,
        Err(mailbox_actors::Error::NotFound { .. }) => {
            return Err(agent
                .require(&state, OBJECT, "manage")
                .err()
                .unwrap_or_else(|| ApiError::not_found(format!("dead letter `{id}`"))))
        }
        Err(e) => return Err(e.into()),
    };
    match agent.require(&state, &format!("mailbox:{}", d.mailbox), "read") {
        Ok(()) => Ok(HttpResponse::Ok().json(d)),
        Err(_) => Err(agent
            .require(&state, OBJECT, "manage")
            .err()
            .unwrap_or_else(|| ApiError::PermissionDenied("not permitted".into()))),
    }
}

async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    agent.require(&state, OBJECT, "manage")?;
    state.dead_letters.delete(&id).await?;
    tracing::info!(target: "audit", kind = "dead_letter_deleted", agent = %agent.id, dead_letter = %id, "dead letter deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn requeue(
    state: web::Data<AppState>,
    agent: Agent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    agent.require(&state, OBJECT, "manage")?;
    let r = state.dead_letters.requeue(&id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "requeued": 1,
        "dead_letter": r.dead_letter,
        "id": r.id,
        "mailbox": r.mailbox,
        "seq": r.seq,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Filter {
    mailbox: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequeueBody {
    #[serde(default)]
    filter: Filter,
}

async fn requeue_matching(
    state: web::Data<AppState>,
    agent: Agent,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let b: RequeueBody = parse_json_or_default(&body)?;
    if let Some(m) = &b.filter.mailbox {
        check_mailbox_name(m)?;
    }
    let reason = b.filter.reason.as_deref().map(parse_reason).transpose()?;
    agent.require(&state, OBJECT, "manage")?;
    let n = state
        .dead_letters
        .requeue_matching(b.filter.mailbox.clone(), reason)
        .await?;
    tracing::info!(target: "audit", kind = "dead_letters_requeued", agent = %agent.id, count = n, mailbox = ?b.filter.mailbox, "dead letters requeued");
    Ok(HttpResponse::Ok().json(json!({ "requeued": n })))
}

/// `older_than`: an RFC 3339 time, or an age in seconds.
fn parse_older_than(v: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(secs) = v.parse::<u64>() {
        let age = i64::try_from(secs)
            .ok()
            .and_then(chrono::Duration::try_seconds);
        return Ok(age
            .and_then(|a| Utc::now().checked_sub_signed(a))
            .unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(
                "older_than",
                "`older_than` is an RFC 3339 time or an age in seconds",
            )
        })
}

async fn purge(
    state: web::Data<AppState>,
    agent: Agent,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let Some(v) = q.get("older_than").filter(|v| !v.is_empty()) else {
        return Err(ApiError::validation(
            "older_than",
            "`older_than` is required (an RFC 3339 time or an age in seconds; 0 = all)",
        ));
    };
    let before = parse_older_than(v)?;
    agent.require(&state, OBJECT, "manage")?;
    let n = state.dead_letters.purge(before).await?;
    tracing::info!(target: "audit", kind = "dead_letters_purged", agent = %agent.id, count = n, "dead letters purged");
    Ok(HttpResponse::Ok().json(json!({ "deleted": n })))
}
