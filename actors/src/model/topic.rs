//! Topics and durable subscriptions as data: settings, counts and the subscription record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::address::{is_valid_topic, is_valid_topic_pattern};
use super::message::RequestError;

/// Checks a topic name given in `field` (a path, a query parameter).
pub fn check_topic_name(field: &str, name: &str) -> Result<(), RequestError> {
    if is_valid_topic(name) {
        return Ok(());
    }
    Err(RequestError::Invalid {
        field: field.to_owned(),
        message: format!(
            "`{name}` is not a valid topic name (1-16 `.`-separated segments of [a-z0-9_-])"
        ),
    })
}

/// Checks a topic pattern given in `field`: a topic name whose segments may be `*`, with an
/// optional final `#`.
pub fn check_topic_pattern(field: &str, pattern: &str) -> Result<(), RequestError> {
    if is_valid_topic_pattern(pattern) {
        return Ok(());
    }
    Err(RequestError::Invalid {
        field: field.to_owned(),
        message: format!(
            "`{pattern}` is not a valid topic pattern (segments of [a-z0-9_-], `*` for one \
             segment, a final `#` for any number)"
        ),
    })
}

/// True when a pattern names exactly one topic (no `*`, no `#`).
pub fn is_single_topic(pattern: &str) -> bool {
    is_valid_topic(pattern)
}

/// Per-topic history settings (`PUT /v1/topics/{name}`). `None` follows the `[topics]` defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicConfig {
    /// Most messages kept in the history; the oldest are dropped first.
    pub retention_max_len: Option<u64>,
    /// Messages older than this are trimmed from the history (periodically).
    pub retention_seconds: Option<u64>,
}

impl TopicConfig {
    /// These settings with the gaps filled from `defaults`.
    pub fn or(self, defaults: TopicConfig) -> TopicConfig {
        TopicConfig {
            retention_max_len: self.retention_max_len.or(defaults.retention_max_len),
            retention_seconds: self.retention_seconds.or(defaults.retention_seconds),
        }
    }
}

/// Counts and settings of one topic's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicStats {
    pub name: String,
    /// Messages currently kept.
    pub total: u64,
    /// The last seq assigned (0 before the first message).
    pub last_seq: u64,
    pub created_at: Option<DateTime<Utc>>,
    /// What the topic set itself; defaults are filled in by the caller.
    pub config: TopicConfig,
}

/// A durable subscription: messages published to topics matching `pattern` are copied into
/// `mailbox` (at most one copy per message and mailbox, however many subscriptions match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub pattern: String,
    pub mailbox: String,
    pub created_at: DateTime<Utc>,
    /// The agent that created it (may differ from `mailbox` when an admin subscribes for it).
    pub created_by: String,
}

/// True when `topic` is at or under `prefix` in the topic tree (`research` covers `research`
/// and `research.papers.ml`, not `researchers`). An empty prefix covers everything.
pub fn is_under(topic: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || topic == prefix
        || topic
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_segments() {
        assert!(is_under("research.papers", "research"));
        assert!(is_under("research", "research"));
        assert!(is_under("anything", ""));
        assert!(!is_under("researchers", "research"));
        assert!(!is_under("re", "research"));
    }

    #[test]
    fn defaults_fill_gaps() {
        let d = TopicConfig {
            retention_max_len: Some(10),
            retention_seconds: Some(60),
        };
        let own = TopicConfig {
            retention_max_len: Some(3),
            retention_seconds: None,
        };
        assert_eq!(
            own.or(d),
            TopicConfig {
                retention_max_len: Some(3),
                retention_seconds: Some(60)
            }
        );
    }
}
