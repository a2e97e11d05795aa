//! The message: what a client sends (`SendRequest`) and what is stored and delivered (`Envelope`).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::address::{is_valid_agent_id, Address};
use super::payload::Payload;

/// Delivery priority: `receive` hands out higher first; browsing keeps stream order.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    fn is_normal(&self) -> bool {
        *self == Self::Normal
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "normal" => Some(Self::Normal),
            "high" => Some(Self::High),
            "urgent" => Some(Self::Urgent),
            _ => None,
        }
    }
}

/// A send request as it arrives over REST, WebSocket or MCP (SPEC section 3).
/// Unknown fields are refused so that a typo such as `requires_ack` is not silently ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub to: String,
    #[serde(default)]
    pub payload: Option<Payload>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub require_ack: Option<bool>,
    #[serde(default)]
    pub blob: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The stored and delivered form of a message. `seq` and `attempt` are filled in when read back;
/// they are not part of the stored bytes (the stream position is the storage's own key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Envelope {
    /// Stored records carry the id in front of the JSON only (see [`StoredEnvelope`]).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub seq: String,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mailbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub topic: Option<String>,
    /// Stored records leave out a direct message's `to` (`mailbox:<its mailbox>`).
    #[serde(default)]
    #[schema(required)]
    pub to: String,
    #[serde(default = "json_content_type")]
    #[schema(required)]
    pub content_type: String,
    pub payload: Payload,
    pub encoding: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schema(required)]
    pub priority: Priority,
    pub ttl_seconds: Option<u64>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub thread_id: Option<String>,
    #[serde(default)]
    #[schema(required)]
    pub require_ack: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blob: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempt: Option<u32>,
}

fn json_content_type() -> String {
    JSON_CONTENT_TYPE.to_owned()
}

const JSON_CONTENT_TYPE: &str = "application/json";

/// The JSON an [`Envelope`] is stored as: the same field names, without what reading back
/// restores (the id, which the record starts with; the seq, the stream position; a direct
/// message's `to`, which its mailbox gives, see [`Envelope::restore_to`]), without empty
/// optional fields, and without fields that hold their default (`content_type`
/// `application/json`, `priority` `normal`, `require_ack` false). About 270 bytes less per
/// message than the API form; records written in the API form still read back.
#[derive(Serialize)]
pub struct StoredEnvelope<'a> {
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailbox: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "is_json")]
    content_type: &'a str,
    payload: &'a Payload,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    metadata: &'a serde_json::Map<String, Value>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Priority::is_normal")]
    priority: Priority,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_ack: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob: Option<&'a str>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
}

impl<'a> From<&'a Envelope> for StoredEnvelope<'a> {
    fn from(e: &'a Envelope) -> Self {
        Self {
            from: &e.from,
            mailbox: e.mailbox.as_deref(),
            topic: e.topic.as_deref(),
            to: (!e.is_direct()).then_some(e.to.as_str()),
            content_type: &e.content_type,
            payload: &e.payload,
            encoding: e.encoding.as_deref(),
            metadata: &e.metadata,
            tags: &e.tags,
            priority: e.priority,
            ttl_seconds: e.ttl_seconds,
            correlation_id: e.correlation_id.as_deref(),
            reply_to: e.reply_to.as_deref(),
            thread_id: e.thread_id.as_deref(),
            require_ack: e.require_ack,
            blob: e.blob.as_deref(),
            created_at: e.created_at,
            expires_at: e.expires_at,
            attempt: e.attempt,
        }
    }
}

fn is_json(content_type: &&str) -> bool {
    *content_type == JSON_CONTENT_TYPE
}

impl Envelope {
    /// A direct message in its own mailbox: `to` is `mailbox:<mailbox>`.
    fn is_direct(&self) -> bool {
        self.mailbox
            .as_deref()
            .is_some_and(|m| self.to.strip_prefix("mailbox:") == Some(m))
    }

    /// Puts back the `to` a stored record left out (see [`StoredEnvelope`]).
    pub fn restore_to(&mut self) {
        if self.to.is_empty() {
            if let Some(m) = &self.mailbox {
                self.to = format!("mailbox:{m}");
            }
        }
    }

    /// True once `expires_at` has passed: the message is no longer delivered.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// Size limits a send is checked against (config `[limits]`).
#[derive(Debug, Clone)]
pub struct MessageLimits {
    pub max_message_bytes: usize,
    pub max_metadata_keys: usize,
    pub max_tags: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_metadata_keys: 32,
            max_tags: 16,
        }
    }
}

/// Why a send request was refused. `TooLarge` maps to 413, `Invalid` to 422 naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    Invalid { field: String, message: String },
    TooLarge { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

const MAX_SHORT_STRING: usize = 256;
const MAX_TAG_LEN: usize = 64;
const MAX_METADATA_KEY_LEN: usize = 128;
/// Longest accepted `ttl_seconds`: one year.
pub const MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;

fn check_short(field: &str, v: &Option<String>) -> Result<(), RequestError> {
    match v {
        Some(s) if s.is_empty() || s.len() > MAX_SHORT_STRING => Err(invalid(
            field,
            format!("`{field}` must be 1-{MAX_SHORT_STRING} bytes"),
        )),
        _ => Ok(()),
    }
}

fn is_valid_content_type(s: &str) -> bool {
    let Some((ty, sub)) = s.split_once('/') else {
        return false;
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
    };
    let sub = sub.split(';').next().unwrap_or_default().trim();
    s.len() <= 255 && token(ty) && token(sub)
}

impl SendRequest {
    /// Checks every rule of SPEC sections 2–3 and returns the parsed destination.
    pub fn validate(&self, limits: &MessageLimits) -> Result<Address, RequestError> {
        let to = Address::parse(&self.to).map_err(|e| invalid("to", e.0))?;
        match (&self.payload, &self.blob) {
            (None, None) => return Err(invalid("payload", "`payload` is required")),
            (Some(_), Some(_)) => {
                return Err(invalid("blob", "send either `payload` or `blob`, not both"))
            }
            _ => {}
        }
        if let Some(blob) = &self.blob {
            if ulid::Ulid::from_string(blob).is_err() {
                return Err(invalid(
                    "blob",
                    "`blob` must be a blob id returned by POST /v1/blobs",
                ));
            }
        }
        if let Some(payload) = &self.payload {
            let size = match self.encoding.as_deref() {
                None => {
                    if payload.is_null() {
                        return Err(invalid("payload", "`payload` must not be null"));
                    }
                    match payload.as_string() {
                        Some(s) => s.len(),
                        None => payload.get().len(),
                    }
                }
                Some("base64") => {
                    let Some(s) = payload.as_string() else {
                        return Err(invalid(
                            "payload",
                            "with `encoding: base64` the payload must be a string",
                        ));
                    };
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|_| invalid("payload", "`payload` is not valid base64"))?
                        .len()
                }
                Some(other) => {
                    return Err(invalid(
                        "encoding",
                        format!("unknown encoding `{other}` (only `base64`)"),
                    ))
                }
            };
            if size > limits.max_message_bytes {
                return Err(RequestError::TooLarge {
                    field: "payload".into(),
                    message: format!(
                        "payload is {size} bytes, over the limit of {} bytes",
                        limits.max_message_bytes
                    ),
                });
            }
        } else if self.encoding.is_some() {
            return Err(invalid(
                "encoding",
                "`encoding` applies to `payload`, not `blob`",
            ));
        }
        if let Some(ct) = &self.content_type {
            if !is_valid_content_type(ct) {
                return Err(invalid(
                    "content_type",
                    "`content_type` must be a MIME type like `text/plain`",
                ));
            }
        }
        if let Some(md) = &self.metadata {
            if md.len() > limits.max_metadata_keys {
                return Err(invalid(
                    "metadata",
                    format!("at most {} metadata keys", limits.max_metadata_keys),
                ));
            }
            if let Some(k) = md
                .keys()
                .find(|k| k.is_empty() || k.len() > MAX_METADATA_KEY_LEN)
            {
                return Err(invalid(
                    "metadata",
                    format!("metadata key `{k}` must be 1-{MAX_METADATA_KEY_LEN} bytes"),
                ));
            }
        }
        if let Some(tags) = &self.tags {
            if tags.len() > limits.max_tags {
                return Err(invalid("tags", format!("at most {} tags", limits.max_tags)));
            }
            if tags.iter().any(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
                return Err(invalid(
                    "tags",
                    format!("each tag must be 1-{MAX_TAG_LEN} bytes"),
                ));
            }
        }
        if let Some(ttl) = self.ttl_seconds {
            if ttl == 0 || ttl > MAX_TTL_SECONDS {
                return Err(invalid(
                    "ttl_seconds",
                    format!("`ttl_seconds` must be 1-{MAX_TTL_SECONDS}"),
                ));
            }
        }
        check_short("correlation_id", &self.correlation_id)?;
        check_short("thread_id", &self.thread_id)?;
        check_short("idempotency_key", &self.idempotency_key)?;
        if let Some(r) = &self.reply_to {
            Address::parse(r).map_err(|e| invalid("reply_to", e.0))?;
        }
        Ok(to)
    }

    /// Builds the envelope for one stream copy. `from` is always the authenticated agent.
    pub fn into_envelope(self, from: &str, id: String, now: DateTime<Utc>) -> Envelope {
        let payload = self.payload.unwrap_or_default();
        let content_type = self.content_type.unwrap_or_else(|| {
            if payload.get().starts_with('"') && self.encoding.is_none() {
                "text/plain".to_owned()
            } else if self.encoding.is_some() || self.blob.is_some() {
                "application/octet-stream".to_owned()
            } else {
                "application/json".to_owned()
            }
        });
        let expires_at = self
            .ttl_seconds
            .and_then(|t| i64::try_from(t).ok())
            .map(|t| now + chrono::Duration::seconds(t));
        Envelope {
            id,
            seq: String::new(),
            from: from.to_owned(),
            mailbox: None,
            topic: None,
            to: self.to,
            content_type,
            payload,
            encoding: self.encoding,
            metadata: self.metadata.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            priority: self.priority.unwrap_or_default(),
            ttl_seconds: self.ttl_seconds,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
            thread_id: self.thread_id,
            require_ack: self.require_ack.unwrap_or(false),
            blob: self.blob,
            created_at: now,
            expires_at,
            attempt: None,
        }
    }
}

/// Checks a mailbox name taken from a path.
pub fn check_mailbox_name(name: &str) -> Result<(), RequestError> {
    if is_valid_agent_id(name) {
        Ok(())
    } else {
        Err(invalid(
            "mailbox",
            format!("`{name}` is not a valid mailbox name"),
        ))
    }
}

/// Metadata values kept on a message for filtering; built once per query.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub sender: Option<String>,
    pub content_type: Option<String>,
    pub priority: Option<Priority>,
    pub tag: Option<String>,
    pub thread_id: Option<String>,
}

impl MessageFilter {
    pub fn matches(&self, m: &Envelope) -> bool {
        self.since.is_none_or(|s| m.created_at >= s)
            && self.until.is_none_or(|u| m.created_at <= u)
            && self.sender.as_ref().is_none_or(|s| &m.from == s)
            && self
                .content_type
                .as_ref()
                .is_none_or(|c| &m.content_type == c)
            && self.priority.is_none_or(|p| m.priority == p)
            && self.tag.as_ref().is_none_or(|t| m.tags.contains(t))
            && self
                .thread_id
                .as_ref()
                .is_none_or(|t| m.thread_id.as_ref() == Some(t))
    }
}

/// Per-mailbox settings (`PUT /v1/mailboxes/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailboxConfig {
    pub max_len: Option<u64>,
    #[serde(default)]
    pub overflow: Overflow,
    pub retention_seconds: Option<u64>,
}

/// What a send into a full mailbox does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    #[default]
    Reject,
    DropOldest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> SendRequest {
        serde_json::from_value(v).expect("test request parses")
    }

    fn field_of(r: Result<Address, RequestError>) -> String {
        match r {
            Err(RequestError::Invalid { field, .. })
            | Err(RequestError::TooLarge { field, .. }) => field,
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let l = MessageLimits::default();
        let cases = [
            (json!({"to": "mailbox:Bob", "payload": "x"}), "to"),
            (json!({"to": "topic:a..b", "payload": "x"}), "to"),
            (json!({"to": "mailbox:bob"}), "payload"),
            (json!({"to": "mailbox:bob", "payload": null}), "payload"),
            (
                json!({"to": "mailbox:bob", "payload": 1, "encoding": "base64"}),
                "payload",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "!!", "encoding": "base64"}),
                "payload",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "encoding": "hex"}),
                "encoding",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "content_type": "nope"}),
                "content_type",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "tags": vec!["t"; 17]}),
                "tags",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "tags": [""]}),
                "tags",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "ttl_seconds": 0}),
                "ttl_seconds",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "reply_to": "nobody"}),
                "reply_to",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "correlation_id": ""}),
                "correlation_id",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "thread_id": "x".repeat(300)}),
                "thread_id",
            ),
            (
                json!({"to": "mailbox:bob", "payload": "x", "blob": "01J0000000000000000000000A"}),
                "blob",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(req(body.clone()).validate(&l)), field, "{body}");
        }
        let md: serde_json::Map<String, Value> =
            (0..33).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            field_of(
                req(json!({"to": "mailbox:bob", "payload": "x", "metadata": md})).validate(&l)
            ),
            "metadata"
        );
        let small = MessageLimits {
            max_message_bytes: 4,
            ..Default::default()
        };
        assert!(matches!(
            req(json!({"to": "mailbox:bob", "payload": "12345"})).validate(&small),
            Err(RequestError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_value::<SendRequest>(
            json!({"to": "broadcast", "payload": 1, "requires_ack": true})
        )
        .is_err());
    }

    #[test]
    fn content_type_defaults() {
        let now = Utc::now();
        let text =
            req(json!({"to": "mailbox:b", "payload": "hi"})).into_envelope("a", "1".into(), now);
        assert_eq!(text.content_type, "text/plain");
        let js = req(json!({"to": "mailbox:b", "payload": {"k": 1}})).into_envelope(
            "a",
            "1".into(),
            now,
        );
        assert_eq!(js.content_type, "application/json");
        let bin = req(json!({"to": "mailbox:b", "payload": "aGk=", "encoding": "base64"}))
            .into_envelope("a", "1".into(), now);
        assert_eq!(bin.content_type, "application/octet-stream");
        let ttl = req(json!({"to": "mailbox:b", "payload": 1, "ttl_seconds": 10})).into_envelope(
            "a",
            "1".into(),
            now,
        );
        assert_eq!(ttl.expires_at, Some(now + chrono::Duration::seconds(10)));
    }
}
