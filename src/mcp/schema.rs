//! The eight tool definitions: JSON Schema inputs (with `required` where REST requires a field)
//! and declared output schemas. They are read by a model on every turn, so every word costs:
//! all eight together stay under 2,000 tokens of JSON (a unit test holds that line).

use std::sync::OnceLock;

use serde_json::{json, Value};

/// Tool names, in the order `tools/list` gives them.
pub const TOOLS: [&str; 8] = [
    "send_message",
    "check_inbox",
    "browse_messages",
    "ack_message",
    "mark_read",
    "list_topics",
    "subscribe_topic",
    "unsubscribe_topic",
];

fn s(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn int(description: &str, min: u64, max: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max, "description": description })
}

fn object(properties: Value, required: &[&str]) -> Value {
    let mut o = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// `{messages: [...]}` plus extra top-level properties. Message fields that may be null are
/// left untyped so a validating client accepts every envelope.
fn messages_out(extra: Value) -> Value {
    let message = object(
        json!({ "id": {"type": "string"}, "seq": {"type": "string"}, "from": {"type": "string"},
                "payload": {}, "thread_id": {}, "reply_to": {} }),
        &["id", "seq", "from", "payload"],
    );
    let mut props = json!({ "messages": { "type": "array", "items": message } });
    if let (Some(p), Value::Object(e)) = (props.as_object_mut(), extra) {
        p.extend(e);
    }
    object(props, &["messages"])
}

fn mailbox_arg() -> Value {
    s("Mailbox to use; default: your own")
}

fn definitions() -> Value {
    let send = object(
        json!({
            "to": s("mailbox:<agent>, topic:<name> or broadcast"),
            "payload": { "description": "Text or any JSON value" },
            "blob": s("Instead of payload (then null): an id from POST /v1/blobs"),
            "thread_id": s("Conversation thread to continue or start"),
            "reply_to": s("Where answers should go, e.g. mailbox:<you>"),
            "correlation_id": s("Id the answer should echo"),
            "require_ack": { "type": "boolean", "description": "Redeliver until the recipient acks" },
            "priority": { "enum": ["low", "normal", "high", "urgent"] },
            "ttl_seconds": { "type": "integer", "minimum": 1 },
            "tags": { "type": "array", "items": {"type": "string"} },
            "metadata": { "type": "object" },
            "content_type": s("Default: text/plain for text, else application/json"),
            "encoding": { "enum": ["base64"] },
            "idempotency_key": s("Retrying with the same key never sends twice")
        }),
        &["to", "payload"],
    );
    let browse = object(
        json!({
            "mailbox": mailbox_arg(),
            "topic": s("Read this topic's history instead of a mailbox"),
            "unread": { "type": "boolean", "description": "Only messages not marked read" },
            "after": s("Only after this seq (paging: pass `next`)"),
            "before": s("Only before this seq"),
            "since": s("RFC 3339 time"),
            "until": s("RFC 3339 time"),
            "sender": s("Only from this agent"),
            "thread_id": s("Only this thread"),
            "tag": { "type": "string" },
            "priority": { "enum": ["low", "normal", "high", "urgent"] },
            "content_type": { "type": "string" },
            "limit": int("Default 50", 1, 500),
            "wait_seconds": int("Wait for a first match", 0, 60)
        }),
        &[],
    );
    json!([
        {
            "name": "send_message",
            "description": "Send a message as yourself to an agent's mailbox, a topic or everyone.",
            "inputSchema": send,
            "outputSchema": object(
                json!({ "id": {"type": "string"}, "status": {"type": "string"},
                        "recipients": {"type": "integer"} }),
                &["id", "status"]),
        },
        {
            "name": "check_inbox",
            "description": "Receive new messages, highest priority first, waiting up to wait_seconds for mail to arrive. Ack those with require_ack.",
            "inputSchema": object(json!({
                "max": int("Default 10", 1, 100),
                "wait_seconds": int("Return as soon as mail arrives; default 0", 0, 60),
                "mailbox": mailbox_arg()
            }), &[]),
            "outputSchema": messages_out(json!({})),
        },
        {
            "name": "browse_messages",
            "description": "Read a mailbox or topic history without consuming it, with filters.",
            "inputSchema": browse,
            "outputSchema": messages_out(json!({ "next": {}, "unread": {} })),
        },
        {
            "name": "ack_message",
            "description": "Confirm you handled a message, so it is not redelivered.",
            "inputSchema": object(json!({ "id": s("Message id"), "mailbox": mailbox_arg() }), &["id"]),
            "outputSchema": object(json!({ "id": {"type": "string"}, "status": {"type": "string"} }), &["id"]),
        },
        {
            "name": "mark_read",
            "description": "Mark messages read: by ids, or everything up to a seq.",
            "inputSchema": object(json!({
                "ids": { "type": "array", "items": {"type": "string"} },
                "up_to": s("Seq"),
                "mailbox": mailbox_arg()
            }), &[]),
            "outputSchema": object(json!({ "unread": {"type": "integer"} }), &["unread"]),
        },
        {
            "name": "list_topics",
            "description": "List topics (names are dot-separated, e.g. research.papers).",
            "inputSchema": object(json!({ "prefix": s("Only this topic and those under it"),
                                          "limit": int("Default 100", 1, 1000) }), &[]),
            "outputSchema": object(json!({ "topics": { "type": "array", "items": {"type": "object"} } }), &["topics"]),
        },
        {
            "name": "subscribe_topic",
            "description": "Copy every message published to matching topics into your mailbox.",
            "inputSchema": object(json!({ "pattern": s("Topic name; * matches one segment, a final # any number") }), &["pattern"]),
            "outputSchema": object(json!({ "id": {"type": "string"}, "pattern": {"type": "string"} }), &["id", "pattern"]),
        },
        {
            "name": "unsubscribe_topic",
            "description": "Stop a subscription, by its pattern or id.",
            "inputSchema": object(json!({ "pattern": {"type": "string"}, "id": {"type": "string"} }), &[]),
            "outputSchema": object(json!({ "removed": { "type": "array", "items": {"type": "string"} } }), &["removed"]),
        }
    ])
}

/// The definitions, built once.
pub fn tools() -> &'static Value {
    static TOOLS_JSON: OnceLock<Value> = OnceLock::new();
    TOOLS_JSON.get_or_init(definitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_tools_each_with_both_schemas() {
        let tools = tools().as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, TOOLS);
        for t in &tools {
            assert_eq!(t["inputSchema"]["type"], "object", "{}", t["name"]);
            assert_eq!(t["outputSchema"]["type"], "object", "{}", t["name"]);
        }
    }

    /// The budget: about four characters a token for JSON, so 8,000 characters.
    #[test]
    fn all_eight_fit_in_two_thousand_tokens() {
        let chars = tools().to_string().len();
        assert!(chars <= 8000, "tool definitions are {chars} characters");
    }
}
