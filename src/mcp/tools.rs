//! The eight tools: arguments → one operation of [`crate::ops`] → a result (text +
//! `structuredContent`). This is the only file of the MCP face that calls the operations:
//! validation, permissions and rate limits are theirs, so a tool refuses exactly what the
//! matching REST route refuses, with the same code and field.
//!
//! Every failure — malformed arguments, an unknown tool, a denial — is a tool result with
//! `isError: true`, never a JSON-RPC error, so the model sees it and the session goes on.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::render;
use super::schema::TOOLS;
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{
    BrowseArgs, ListSubscriptionsArgs, ListTopicsArgs, MarkReadArgs, Ops, ReceiveArgs, SendArgs,
};
use mailbox_actors::model::SendRequest;

/// Messages `check_inbox` hands over when `max` is not given (REST's default is one; a model
/// is better served by a handful per call).
const DEFAULT_RECEIVE: i64 = 10;

/// What a tool answers before it is wrapped as a `CallToolResult`.
struct Output {
    text: String,
    structured: Value,
}

/// Runs tool `name` with `arguments` as `agent`; always answers a `CallToolResult`.
pub async fn call(ops: &Ops, agent: &Agent, name: &str, arguments: Value) -> Value {
    let outcome = match name {
        "send_message" => send_message(ops, agent, arguments).await,
        "check_inbox" => check_inbox(ops, agent, arguments).await,
        "browse_messages" => browse_messages(ops, agent, arguments).await,
        "ack_message" => ack_message(ops, agent, arguments).await,
        "mark_read" => mark_read(ops, agent, arguments).await,
        "list_topics" => list_topics(ops, agent, arguments).await,
        "subscribe_topic" => subscribe_topic(ops, agent, arguments).await,
        "unsubscribe_topic" => unsubscribe_topic(ops, agent, arguments).await,
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

/// Arguments as the tool's struct: unreadable is `bad_request` naming the tool, a broken rule
/// `validation_failed` naming the field.
fn args<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, ApiError> {
    let arguments = match arguments {
        Value::Null => json!({}),
        v => v,
    };
    crate::ops::parse::from_value(arguments).map_err(|e| match e {
        ApiError::BadRequest(m) => {
            ApiError::BadRequest(format!("invalid arguments for {tool}: {m}"))
        }
        other => other,
    })
}

/// An operation's typed result as structured content (its JSON is the REST body).
fn structured(result: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(result)
        .map_err(|e| ApiError::Engine(mailbox_actors::Error::Internal(e.to_string())))
}

/// The mailbox a call is about: the named one, or the caller's own.
fn mailbox_of(agent: &Agent, mailbox: Option<String>) -> String {
    mailbox.unwrap_or_else(|| agent.id.clone())
}

async fn send_message(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let message: SendRequest = args("send_message", a)?;
    let to = message.to.clone();
    let receipt = ops
        .send(
            agent,
            SendArgs {
                message,
                idempotency_key: None,
            },
        )
        .await?;
    Ok(Output {
        text: format!(
            "Sent message {} to {to} as \"{}\" ({}, {} stored cop{}).",
            receipt.id,
            agent.id,
            receipt.status,
            receipt.recipients,
            if receipt.recipients == 1 { "y" } else { "ies" }
        ),
        structured: structured(&receipt)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckInbox {
    max: Option<i64>,
    wait_seconds: Option<i64>,
    mailbox: Option<String>,
}

async fn check_inbox(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: CheckInbox = args("check_inbox", a)?;
    let name = mailbox_of(agent, a.mailbox);
    let received = ops
        .receive(
            agent,
            &name,
            ReceiveArgs {
                max: Some(a.max.unwrap_or(DEFAULT_RECEIVE)),
                wait_seconds: a.wait_seconds,
            },
        )
        .await?;
    metrics::counter!("mailbox_messages_delivered_total", "transport" => "mcp")
        .increment(received.messages.len() as u64);
    let waited = match a.wait_seconds {
        Some(w) if w > 0 => format!(" (waited {w} s)"),
        _ => String::new(),
    };
    Ok(Output {
        text: render::messages_text(&format!("mailbox {name}"), &received.messages, &waited),
        structured: structured(&received)?,
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

async fn browse_messages(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Browse = args("browse_messages", a)?;
    let query = BrowseArgs {
        after: a.after,
        before: a.before,
        since: a.since,
        until: a.until,
        sender: a.sender,
        content_type: a.content_type,
        priority: a.priority,
        tag: a.tag,
        thread_id: a.thread_id,
        unread: a.unread.map(|u| u.to_string()),
        limit: a.limit.map(|l| l.to_string()),
        wait: a.wait_seconds.map(|w| w.to_string()),
    };
    if let Some(topic) = a.topic {
        if a.mailbox.is_some() {
            return Err(ApiError::validation(
                "topic",
                "give `mailbox` or `topic`, not both",
            ));
        }
        let page = ops.topic_history(agent, &topic, query).await?;
        return Ok(Output {
            text: render::messages_text(&format!("topic {topic}"), &page.messages, ""),
            structured: structured(&page)?,
        });
    }
    let name = mailbox_of(agent, a.mailbox);
    let page = ops.browse(agent, &name, query).await?;
    let mut text = render::messages_text(&format!("mailbox {name}"), &page.messages, "");
    match page.unread {
        Some(n) => text.push_str(&format!("\n{n} unread in mailbox {name}.")),
        None => text.push_str(&format!(
            "\nStorage is down: these are the recent messages this node has cached for mailbox {name} (unread count unknown)."
        )),
    }
    if let Some(next) = &page.next {
        text.push_str(&format!(" More: browse again with after = \"{next}\"."));
    }
    Ok(Output {
        text,
        structured: structured(&page)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    id: String,
    mailbox: Option<String>,
}

async fn ack_message(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Ack = args("ack_message", a)?;
    let name = mailbox_of(agent, a.mailbox);
    let acked = ops.ack(agent, &name, &a.id).await?;
    Ok(Output {
        text: format!("Acked message {} in mailbox {name}.", acked.id),
        structured: structured(&acked)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    ids: Option<Vec<String>>,
    up_to: Option<String>,
    mailbox: Option<String>,
}

async fn mark_read(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: MarkRead = args("mark_read", a)?;
    let name = mailbox_of(agent, a.mailbox);
    let unread = ops
        .mark_read(
            agent,
            &name,
            MarkReadArgs {
                ids: a.ids,
                up_to: a.up_to,
            },
        )
        .await?;
    Ok(Output {
        text: format!(
            "Marked read; {} unread left in mailbox {name}.",
            unread.unread
        ),
        structured: structured(&unread)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListTopics {
    prefix: Option<String>,
    limit: Option<u64>,
}

async fn list_topics(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: ListTopics = args("list_topics", a)?;
    let list = ops
        .list_topics(
            agent,
            ListTopicsArgs {
                prefix: a.prefix,
                after: None,
                limit: a.limit.map(|l| l.to_string()),
            },
        )
        .await?;
    let names: Vec<String> = list
        .topics
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
        structured: structured(&list)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    pattern: String,
}

async fn subscribe_topic(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Subscribe = args("subscribe_topic", a)?;
    let sub = ops.subscribe(agent, &a.pattern, None).await?;
    Ok(Output {
        text: format!(
            "{} {}: messages published to matching topics are copied into mailbox {} (read them with check_inbox).",
            if sub.created { "Subscribed to" } else { "Already subscribed to" },
            sub.subscription.pattern,
            sub.subscription.mailbox
        ),
        structured: structured(&sub)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsubscribe {
    pattern: Option<String>,
    id: Option<String>,
}

/// By id, or every subscription of the caller's to `pattern` (a model remembers the pattern it
/// subscribed to more readily than an id).
async fn unsubscribe_topic(ops: &Ops, agent: &Agent, a: Value) -> Result<Output, ApiError> {
    let a: Unsubscribe = args("unsubscribe_topic", a)?;
    let ids = match (a.id, a.pattern) {
        (Some(id), None) => vec![id],
        (None, Some(pattern)) => {
            let ids: Vec<String> = ops
                .list_subscriptions(agent, ListSubscriptionsArgs::default())
                .await?
                .subscriptions
                .into_iter()
                .filter(|s| s.pattern == pattern)
                .map(|s| s.id)
                .collect();
            if ids.is_empty() {
                return Err(ApiError::not_found(format!("subscription to `{pattern}`")));
            }
            ids
        }
        _ => {
            return Err(ApiError::validation(
                "pattern",
                "give exactly one of `pattern` or `id`",
            ))
        }
    };
    for id in &ids {
        ops.unsubscribe(agent, id).await?;
    }
    Ok(Output {
        text: format!("Removed {} subscription(s).", ids.len()),
        structured: json!({ "removed": ids }),
    })
}
