//! `/v1/topics`: the topic tree, create/configure, info, delete, and topic history.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use mailbox_actors::model::{check_topic_name, TopicConfig, TopicStats};
use serde::Deserialize;
use serde_json::{json, Value};

use super::mailboxes::browse_query;
use super::{parse_json_or_default, read_body};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/topics", web::get().to(list))
        .service(
            web::resource("/topics/{name}")
                .route(web::get().to(info))
                .route(web::put().to(configure))
                .route(web::delete().to(delete)),
        )
        .route("/topics/{name}/messages", web::get().to(history));
}

/// Settings bodies are small.
const SMALL_BODY: usize = 64 * 1024;
/// Longest history a topic may ask for.
const MAX_RETENTION_LEN: u64 = 10_000_000;
/// Oldest history a topic may ask for: ten years.
const MAX_RETENTION_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Topics per page of a listing.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// Checks the name and the caller's right to `act` on the topic.
fn authorize(state: &AppState, agent: &Agent, name: &str, act: &str) -> Result<(), ApiError> {
    check_topic_name("topic", name)?;
    agent.require(state, &format!("topic:{name}"), act)
}

fn topic_json(s: &TopicStats) -> Value {
    json!({
        "name": s.name,
        "total": s.total,
        "last_seq": s.last_seq.to_string(),
        "created_at": s.created_at,
        "config": s.config,
    })
}

/// `GET /v1/topics?prefix=&after=&limit=`: the topics at or under `prefix` (by segment:
/// `research` lists `research` and `research.papers.ml`, not `researchers`), by name, with
/// their counts. Checked as `read` on `topic:<prefix>.#` (`topic:#` without a prefix).
async fn list(
    state: web::Data<AppState>,
    agent: Agent,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let prefix = get("prefix").unwrap_or_default();
    if !prefix.is_empty() {
        check_topic_name("prefix", prefix)?;
    }
    let after = get("after");
    if let Some(a) = after {
        check_topic_name("after", a)?;
    }
    let limit = match get("limit") {
        None => DEFAULT_LIST,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "limit",
                    format!("`limit` must be 1-{MAX_LIST}"),
                ))
            }
        },
    };
    let obj = if prefix.is_empty() {
        "topic:#".to_owned()
    } else {
        format!("topic:{prefix}.#")
    };
    agent.require(&state, &obj, "read")?;
    let page = state.registry.topics(prefix, after, limit).await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|t| t.name.clone()))
        .flatten();
    let topics: Vec<Value> = page.iter().map(topic_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "topics": topics, "next": next })))
}

async fn info(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &agent, &name, "read")?;
    match state.registry.topic(&name).stats().await? {
        Some(s) => Ok(HttpResponse::Ok().json(topic_json(&s))),
        None => Err(ApiError::not_found(format!("topic `{name}`"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigureBody {
    retention_max_len: Option<u64>,
    retention_seconds: Option<u64>,
}

async fn configure(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, SMALL_BODY).await?;
    // An empty body creates the topic with the default retention.
    let b: ConfigureBody = parse_json_or_default(&body)?;
    check_topic_name("topic", &name)?;
    if b.retention_max_len
        .is_some_and(|m| m == 0 || m > MAX_RETENTION_LEN)
    {
        return Err(ApiError::validation(
            "retention_max_len",
            format!("`retention_max_len` must be 1-{MAX_RETENTION_LEN}"),
        ));
    }
    if b.retention_seconds
        .is_some_and(|s| s == 0 || s > MAX_RETENTION_SECONDS)
    {
        return Err(ApiError::validation(
            "retention_seconds",
            format!("`retention_seconds` must be 1-{MAX_RETENTION_SECONDS}"),
        ));
    }
    authorize(&state, &agent, &name, "manage")?;
    let config = TopicConfig {
        retention_max_len: b.retention_max_len,
        retention_seconds: b.retention_seconds,
    };
    let created = state.registry.topic(&name).configure(config).await?;
    tracing::info!(target: "audit", kind = "topic_configured", agent = %agent.id, topic = %name, "topic configured");
    let defaults = state.registry.topic_settings().defaults;
    let body = json!({ "name": name.as_str(), "config": config.or(defaults) });
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
    if !state.registry.topic(&name).delete().await? {
        return Err(ApiError::not_found(format!("topic `{name}`")));
    }
    tracing::info!(target: "audit", kind = "topic_deleted", agent = %agent.id, topic = %name, "topic deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// The history: the mailbox browse query (`unread` is refused: topics have no read state).
async fn history(
    state: web::Data<AppState>,
    agent: Agent,
    name: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &agent, &name, "read")?;
    let (query, wait) = browse_query(&q)?;
    let topic = state.registry.topic(&name);
    if topic.stats().await?.is_none() {
        return Err(ApiError::not_found(format!("topic `{name}`")));
    }
    let page = topic.browse_wait(&query, wait).await?;
    Ok(HttpResponse::Ok().json(json!({ "messages": page.messages, "next": page.next })))
}
