//! `/v1/mailboxes/{name}`: info, configure, delete, browse, mark read.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use mailbox_actors::mailbox::BrowseQuery;
use mailbox_actors::model::{
    check_mailbox_name, MailboxConfig, MessageFilter, Overflow, Priority, ReadMark,
};
use serde::Deserialize;
use serde_json::json;

use super::{parse_json, parse_json_or_default, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
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

/// Small JSON bodies (settings, mark-read) are capped at this size.
pub const SMALL_BODY: usize = 1 << 20;
/// Longest long-poll.
pub const MAX_WAIT_SECONDS: u64 = 60;

/// Checks the name and the caller's right to `act` on the mailbox.
pub fn authorize(state: &AppState, agent: &Agent, name: &str, act: &str) -> Result<(), ApiError> {
    check_mailbox_name(name)?;
    agent.require(state, &format!("mailbox:{name}"), act)
}

async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &agent, &name, "read")?;
    let s = state.registry.mailbox(&name).stats(&agent.id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "name": name.as_str(),
        "total": s.total,
        "unread": s.unread,
        "pending_acks": s.pending_acks,
        "last_seq": s.last_seq.to_string(),
        "created_at": s.created_at,
        "config": s.config,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigureBody {
    max_len: Option<u64>,
    overflow: Option<String>,
    retention_seconds: Option<u64>,
}

async fn configure(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    // An empty body creates the mailbox with default settings.
    let b: ConfigureBody = parse_json_or_default(&body)?;
    check_mailbox_name(&name)?;
    if b.max_len
        .is_some_and(|m| m == 0 || m > state.limits_cfg.mailbox_max_len)
    {
        return Err(ApiError::validation(
            "max_len",
            format!("`max_len` must be 1-{}", state.limits_cfg.mailbox_max_len),
        ));
    }
    let overflow = match b.overflow.as_deref() {
        None | Some("reject") => Overflow::Reject,
        Some("drop_oldest") => Overflow::DropOldest,
        Some(o) => {
            return Err(ApiError::validation(
                "overflow",
                format!("`{o}`: use `reject` or `drop_oldest`"),
            ))
        }
    };
    if b.retention_seconds == Some(0) {
        return Err(ApiError::validation(
            "retention_seconds",
            "must be positive",
        ));
    }
    authorize(&state, &agent, &name, "manage")?;
    let config = MailboxConfig {
        max_len: b.max_len,
        overflow,
        retention_seconds: b.retention_seconds,
    };
    let created = state
        .registry
        .mailbox(&name)
        .configure(config.clone())
        .await?;
    tracing::info!(target: "audit", kind = "mailbox_configured", agent = %agent.id, mailbox = %name, "mailbox configured");
    let body = json!({ "name": name.as_str(), "config": config });
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

async fn delete(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &agent, &name, "manage")?;
    state.registry.mailbox(&name).delete().await?;
    tracing::info!(target: "audit", kind = "mailbox_deleted", agent = %agent.id, mailbox = %name, "mailbox deleted");
    Ok(HttpResponse::NoContent().finish())
}

fn parse_seq(field: &str, v: &str) -> Result<u64, ApiError> {
    v.parse()
        .map_err(|_| ApiError::validation(field, format!("`{v}` is not a seq from this stream")))
}

fn parse_time(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| ApiError::validation(field, format!("`{v}` is not an RFC 3339 time")))
}

/// Parses the browse query of SPEC section 5 (shared with topic history); answers the query
/// and the long-poll wait.
pub fn browse_query(q: &HashMap<String, String>) -> Result<(BrowseQuery, Duration), ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let limit = match get("limit") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err(ApiError::validation("limit", "`limit` must be 1-500")),
        },
    };
    let wait = match get("wait") {
        None => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT_SECONDS => n,
            _ => return Err(ApiError::validation("wait", "`wait` must be 0-60 seconds")),
        },
    };
    let unread_only = match get("unread") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "unread",
                "`unread` must be true or false",
            ))
        }
    };
    let priority = match get("priority") {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            ApiError::validation("priority", "`priority` is low, normal, high or urgent")
        })?),
    };
    let query = BrowseQuery {
        after: get("after").map(|v| parse_seq("after", v)).transpose()?,
        before: get("before").map(|v| parse_seq("before", v)).transpose()?,
        filter: MessageFilter {
            since: get("since").map(|v| parse_time("since", v)).transpose()?,
            until: get("until").map(|v| parse_time("until", v)).transpose()?,
            sender: get("sender").map(str::to_owned),
            content_type: get("content_type").map(str::to_owned),
            priority,
            tag: get("tag").map(str::to_owned),
            thread_id: get("thread_id").map(str::to_owned),
        },
        unread_only,
        limit,
    };
    Ok((query, Duration::from_secs(wait)))
}

async fn browse(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &agent, &name, "read")?;
    let (query, wait) = browse_query(&q)?;
    let mailbox = state.registry.mailbox(&name);
    let page = mailbox.browse_wait(&agent.id, &query, wait).await?;
    let unread = mailbox.stats(&agent.id).await?.unread;
    Ok(HttpResponse::Ok()
        .json(json!({ "messages": page.messages, "next": page.next, "unread": unread })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    ids: Option<Vec<String>>,
    up_to: Option<String>,
}

async fn mark_read(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    let b: ReadBody = parse_json(&body)?;
    let mark = match (b.ids, b.up_to) {
        (Some(ids), None) if !ids.is_empty() && ids.len() <= 1000 => ReadMark::Ids(ids),
        (Some(_), None) => {
            return Err(ApiError::validation(
                "ids",
                "`ids` must hold 1-1000 message ids",
            ))
        }
        (None, Some(s)) => ReadMark::UpTo(parse_seq("up_to", &s)?),
        _ => {
            return Err(ApiError::validation(
                "ids",
                "send exactly one of `ids` or `up_to`",
            ))
        }
    };
    authorize(&state, &agent, &name, "read")?;
    let unread = state
        .registry
        .mailbox(&name)
        .mark_read(&agent.id, mark)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "unread": unread })))
}
