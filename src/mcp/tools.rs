//! The eight tools: arguments → one call → a result (text + `structuredContent`). This is the
//! only file of the MCP face that touches the operations, so it is the one that follows them.
//!
//! TEMPORARY: until the ops layer (`crate::ops`) lands, the calls go to the engine paths the
//! REST handlers use (`send_one`, the mailbox/topic handles, the router), with the same
//! permission checks. When ops lands, each arm below becomes `ops::x(state, agent, args)`.
//!
//! Every failure — malformed arguments, an unknown tool, a denial — is a tool result with
//! `isError: true`, never a JSON-RPC error, so the model sees it and the session goes on.

use std::collections::HashMap;
use std::time::Duration;

use mailbox_actors::mailbox::MAX_RECEIVE;
use mailbox_actors::model::{
    check_topic_name, check_topic_pattern, ReadMark, SendRequest, TopicStats,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::render;
use super::schema::TOOLS;
use crate::auth::Agent;
use crate::error::ApiError;
use crate::http::mailboxes::{authorize, browse_query, MAX_WAIT_SECONDS};
use crate::server::AppState;

/// Messages `check_inbox` hands over when `max` is not given.
const DEFAULT_RECEIVE: i64 = 10;
/// Topics `list_topics` answers when `limit` is not given, and at most.
const DEFAULT_TOPICS: usize = 100;
const MAX_TOPICS: usize = 1000;

/// What a tool answers before it is wrapped as a `CallToolResult`.
struct Output {
    text: String,
    structured: Value,
}

/// Runs tool `name` with `arguments` as `agent`; always answers a `CallToolResult`.
pub async fn call(state: &AppState, agent: &Agent, name: &str, arguments: Value) -> Value {
    let outcome = match name {
        "send_message" => send_message(state, agent, arguments).await,
        "check_inbox" => check_inbox(state, agent, arguments).await,
        "browse_messages" => browse_messages(state, agent, arguments).await,
        "ack_message" => ack_message(state, agent, arguments).await,
        "mark_read" => mark_read(state, agent, arguments).await,
        "list_topics" => list_topics(state, agent, arguments).await,
        "subscribe_topic" => subscribe_topic(state, agent, arguments).await,
        "unsubscribe_topic" => unsubscribe_topic(state, agent, arguments).await,
        other => Err(ApiError::BadRequest(format!(
            "unknown tool `{other}`; the tools are {}",
            TOOLS.join(", ")
        ))),
    };
    match outcome {
        Ok(o) => render::ok(o.text, o.structured),
        Err(e) => render::error(name, &e),
    }
}

/// Arguments as the tool's struct; anything else is `bad_request` naming the tool.
fn args<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, ApiError> {
    let arguments = match arguments {
        Value::Null => json!({}),
        v => v,
    };
    serde_json::from_value(arguments)
        .map_err(|e| ApiError::BadRequest(format!("invalid arguments for {tool}: {e}")))
}

/// The mailbox a call is about: the named one, or the caller's own.
fn mailbox_of(agent: &Agent, mailbox: Option<String>) -> String {
    mailbox.unwrap_or_else(|| agent.id.clone())
}

/// A bounded integer argument, `default` when absent.
fn bounded(field: &str, v: Option<i64>, default: i64, max: i64, min: i64) -> Result<i64, ApiError> {
    match v {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation(
            field,
            format!("`{field}` must be {min}-{max}"),
        )),
    }
}

async fn send_message(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let req: SendRequest = args("send_message", a)?;
    let to = req.to.clone();
    let receipt = crate::http::messages::send_one(state, agent, req, None).await?;
    let structured = serde_json::to_value(&receipt)
        .map_err(|e| ApiError::Engine(mailbox_actors::Error::Internal(e.to_string())))?;
    Ok(Output {
        text: format!(
            "Sent message {} to {to} as \"{}\" ({}, {} stored cop{}).",
            receipt.id,
            agent.id,
            receipt.status,
            receipt.recipients,
            if receipt.recipients == 1 { "y" } else { "ies" }
        ),
        structured,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInbox {
    max: Option<i64>,
    wait_seconds: Option<i64>,
    mailbox: Option<String>,
}

async fn check_inbox(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: CheckInbox = args("check_inbox", a)?;
    let max = bounded("max", a.max, DEFAULT_RECEIVE, MAX_RECEIVE as i64, 1)? as usize;
    let wait = bounded(
        "wait_seconds",
        a.wait_seconds,
        0,
        MAX_WAIT_SECONDS as i64,
        0,
    )? as u64;
    let name = mailbox_of(agent, a.mailbox);
    authorize(state, agent, &name, "read")?;
    let messages = state
        .registry
        .mailbox(&name)
        .receive(max, Duration::from_secs(wait))
        .await?;
    metrics::counter!("mailbox_messages_delivered_total", "transport" => "mcp")
        .increment(messages.len() as u64);
    let waited = if wait > 0 {
        format!(" (waited {wait} s)")
    } else {
        String::new()
    };
    Ok(Output {
        text: render::messages_text(&format!("mailbox {name}"), &messages, &waited),
        structured: json!({ "messages": messages }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Browse {
    mailbox: Option<String>,
    topic: Option<String>,
    unread: Option<bool>,
    after: Option<String>,
    before: Option<String>,
    since: Option<String>,
    until: Option<String>,
    sender: Option<String>,
    thread_id: Option<String>,
    tag: Option<String>,
    priority: Option<String>,
    content_type: Option<String>,
    limit: Option<u64>,
    wait_seconds: Option<u64>,
}

async fn browse_messages(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Browse = args("browse_messages", a)?;
    // The REST query string, so both faces apply the very same filter rules.
    let mut q = HashMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            q.insert(k.to_owned(), v);
        }
    };
    put("after", a.after);
    put("before", a.before);
    put("since", a.since);
    put("until", a.until);
    put("sender", a.sender);
    put("thread_id", a.thread_id);
    put("tag", a.tag);
    put("priority", a.priority);
    put("content_type", a.content_type);
    put("unread", a.unread.map(|u| u.to_string()));
    put("limit", a.limit.map(|l| l.to_string()));
    put("wait", a.wait_seconds.map(|w| w.to_string()));
    let (query, wait) = browse_query(&q)?;
    if let Some(topic) = a.topic {
        if a.mailbox.is_some() {
            return Err(ApiError::validation(
                "topic",
                "give `mailbox` or `topic`, not both",
            ));
        }
        check_topic_name("topic", &topic)?;
        agent.require(state, &format!("topic:{topic}"), "read")?;
        let handle = state.registry.topic(&topic);
        if handle.stats().await?.is_none() {
            return Err(ApiError::not_found(format!("topic `{topic}`")));
        }
        let page = handle.browse_wait(&query, wait).await?;
        return Ok(Output {
            text: render::messages_text(&format!("topic {topic}"), &page.messages, ""),
            structured: json!({ "messages": page.messages, "next": page.next }),
        });
    }
    let name = mailbox_of(agent, a.mailbox);
    authorize(state, agent, &name, "read")?;
    let mailbox = state.registry.mailbox(&name);
    let page = mailbox.browse_wait(&agent.id, &query, wait).await?;
    let unread = mailbox.stats(&agent.id).await?.unread;
    let mut text = render::messages_text(&format!("mailbox {name}"), &page.messages, "");
    text.push_str(&format!("\n{unread} unread in mailbox {name}."));
    if let Some(next) = &page.next {
        text.push_str(&format!(" More: browse again with after = \"{next}\"."));
    }
    Ok(Output {
        text,
        structured: json!({ "messages": page.messages, "next": page.next, "unread": unread }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    id: String,
    mailbox: Option<String>,
}

async fn ack_message(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Ack = args("ack_message", a)?;
    let name = mailbox_of(agent, a.mailbox);
    authorize(state, agent, &name, "read")?;
    let attempt = state.registry.mailbox(&name).ack(&a.id).await?;
    Ok(Output {
        text: format!("Acked message {} in mailbox {name}.", a.id),
        structured: json!({ "id": a.id, "status": "acked", "attempt": attempt }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    ids: Option<Vec<String>>,
    up_to: Option<String>,
    mailbox: Option<String>,
}

async fn mark_read(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: MarkRead = args("mark_read", a)?;
    let mark = match (a.ids, a.up_to) {
        (Some(ids), None) if !ids.is_empty() && ids.len() <= 1000 => ReadMark::Ids(ids),
        (Some(_), None) => {
            return Err(ApiError::validation(
                "ids",
                "`ids` must hold 1-1000 message ids",
            ))
        }
        (None, Some(s)) => ReadMark::UpTo(s.parse().map_err(|_| {
            ApiError::validation("up_to", format!("`{s}` is not a seq from this stream"))
        })?),
        _ => {
            return Err(ApiError::validation(
                "ids",
                "give exactly one of `ids` or `up_to`",
            ))
        }
    };
    let name = mailbox_of(agent, a.mailbox);
    authorize(state, agent, &name, "read")?;
    let unread = state
        .registry
        .mailbox(&name)
        .mark_read(&agent.id, mark)
        .await?;
    Ok(Output {
        text: format!("Marked read; {unread} unread left in mailbox {name}."),
        structured: json!({ "unread": unread }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListTopics {
    prefix: Option<String>,
    limit: Option<i64>,
}

fn topic_json(t: &TopicStats) -> Value {
    json!({ "name": t.name, "total": t.total, "last_seq": t.last_seq.to_string() })
}

async fn list_topics(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: ListTopics = args("list_topics", a)?;
    let prefix = a.prefix.unwrap_or_default();
    if !prefix.is_empty() {
        check_topic_name("prefix", &prefix)?;
    }
    let limit = bounded(
        "limit",
        a.limit,
        DEFAULT_TOPICS as i64,
        MAX_TOPICS as i64,
        1,
    )? as usize;
    let obj = if prefix.is_empty() {
        "topic:#".to_owned()
    } else {
        format!("topic:{prefix}.#")
    };
    agent.require(state, &obj, "read")?;
    let page = state.registry.topics(&prefix, None, limit).await?;
    let names: Vec<String> = page
        .iter()
        .map(|t| format!("{} ({} messages)", t.name, t.total))
        .collect();
    let text = if names.is_empty() {
        "No topics yet.".to_owned()
    } else {
        format!("{} topic(s): {}", names.len(), names.join(", "))
    };
    Ok(Output {
        text,
        structured: json!({ "topics": page.iter().map(topic_json).collect::<Vec<_>>() }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    pattern: String,
}

async fn subscribe_topic(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Subscribe = args("subscribe_topic", a)?;
    check_topic_pattern("pattern", &a.pattern)?;
    agent.require(state, &format!("topic:{}", a.pattern), "subscribe")?;
    let (sub, created) = state
        .registry
        .router()
        .subscribe(&a.pattern, &agent.id, &agent.id)
        .await?;
    if created {
        tracing::info!(target: "audit", kind = "subscription_created", agent = %agent.id, subscription = %sub.id, pattern = %sub.pattern, "durable subscription created over MCP");
    }
    Ok(Output {
        text: format!(
            "{} {}: messages published to matching topics are copied into mailbox {} (read them with check_inbox).",
            if created { "Subscribed to" } else { "Already subscribed to" },
            sub.pattern,
            sub.mailbox
        ),
        structured: json!(sub),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsubscribe {
    pattern: Option<String>,
    id: Option<String>,
}

async fn unsubscribe_topic(state: &AppState, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Unsubscribe = args("unsubscribe_topic", a)?;
    if a.pattern.is_none() == a.id.is_none() {
        return Err(ApiError::validation(
            "pattern",
            "give exactly one of `pattern` or `id`",
        ));
    }
    // The caller's own subscriptions: into its mailbox, or created by it (as REST allows).
    let mine: Vec<_> = state
        .registry
        .router()
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| s.mailbox == agent.id || s.created_by == agent.id)
        .filter(|s| a.id.as_ref() == Some(&s.id) || a.pattern.as_ref() == Some(&s.pattern))
        .collect();
    if mine.is_empty() {
        return Err(ApiError::not_found(match (&a.pattern, &a.id) {
            (Some(p), _) => format!("subscription to `{p}`"),
            (_, Some(id)) => format!("subscription `{id}`"),
            _ => "subscription".to_owned(),
        }));
    }
    let mut removed = Vec::new();
    for s in mine {
        if state.registry.router().unsubscribe(&s.id).await?.is_some() {
            tracing::info!(target: "audit", kind = "subscription_deleted", agent = %agent.id, subscription = %s.id, "durable subscription deleted over MCP");
            removed.push(s.id);
        }
    }
    Ok(Output {
        text: format!("Removed {} subscription(s).", removed.len()),
        structured: json!({ "removed": removed }),
    })
}
