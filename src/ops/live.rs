//! Live subscriptions (WebSocket `subscribe`): which target, from where, and may the caller.
//! The pushing itself is the face's (a session registers with the engine and forwards pushes);
//! what is checked, and the errors, are here.

use mailbox_actors::model::{check_topic_pattern, is_single_topic};

use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// Where a mailbox subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxStart {
    /// Only messages stored from now on.
    Latest,
    /// Messages the agent has not marked read, then live (the default for mailboxes).
    Unread,
    /// Everything still stored, then live.
    Beginning,
    /// Everything after this seq, then live (exact resume).
    After(u64),
}

impl MailboxStart {
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("unread") => Some(Self::Unread),
            Some("latest") => Some(Self::Latest),
            Some("beginning") => Some(Self::Beginning),
            Some(seq) => seq.parse().ok().map(Self::After),
        }
    }
}

/// Where a topic subscription starts. A pattern with wildcards is live only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicStart {
    Latest,
    After(u64),
}

impl TopicStart {
    fn parse(pattern: &str, from: Option<&str>) -> Result<Self, ApiError> {
        let single = is_single_topic(pattern);
        match from {
            None | Some("latest") => Ok(Self::Latest),
            Some("unread") => Err(ApiError::validation(
                "from",
                "topics have no read state: use `latest` (or a seq for a single topic)",
            )),
            Some(_) if !single => Err(ApiError::validation(
                "from",
                "a topic pattern with wildcards is live only: `from` must be `latest`",
            )),
            Some("beginning") => Ok(Self::After(0)),
            Some(seq) => seq.parse().map(Self::After).map_err(|_| {
                ApiError::validation("from", "`from` is latest, beginning or a seq of this topic")
            }),
        }
    }
}

/// A checked, permitted live subscription target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// `mailbox:<agent>`: backlog, then live; exact resume.
    Mailbox { name: String, from: MailboxStart },
    /// `topic:<pattern>`: a single topic may start in its history; a wildcard pattern is live.
    Topic { pattern: String, from: TopicStart },
}

impl Ops {
    /// Checks a subscription target (`mailbox:<agent>` needs `read`, `topic:<pattern>` needs
    /// `subscribe`) and where it starts.
    pub fn watch(
        &self,
        agent: &Agent,
        target: &str,
        from: Option<&str>,
    ) -> Result<WatchTarget, ApiError> {
        if let Some(pattern) = target.strip_prefix("topic:") {
            check_topic_pattern("target", pattern)?;
            self.require(agent, &format!("topic:{pattern}"), "subscribe")?;
            let from = TopicStart::parse(pattern, from)?;
            return Ok(WatchTarget::Topic {
                pattern: pattern.to_owned(),
                from,
            });
        }
        let Some(name) = target.strip_prefix("mailbox:") else {
            return Err(ApiError::validation(
                "target",
                "subscribe to `mailbox:<agent>` or `topic:<pattern>`",
            ));
        };
        self.authorize_mailbox(agent, name, "read")?;
        let from = MailboxStart::parse(from).ok_or_else(|| {
            ApiError::validation("from", "`from` is latest, unread, beginning or a seq")
        })?;
        Ok(WatchTarget::Mailbox {
            name: name.to_owned(),
            from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_mailbox_subscriptions_may_start() {
        assert_eq!(
            MailboxStart::parse(Some("42")),
            Some(MailboxStart::After(42))
        );
        assert_eq!(MailboxStart::parse(None), Some(MailboxStart::Unread));
        assert_eq!(MailboxStart::parse(Some("yesterday")), None);
    }

    #[test]
    fn where_topic_subscriptions_may_start() {
        let start = TopicStart::parse;
        assert!(matches!(start("a.b", None), Ok(TopicStart::Latest)));
        assert!(matches!(
            start("a.#", Some("latest")),
            Ok(TopicStart::Latest)
        ));
        assert!(matches!(
            start("a.b", Some("12")),
            Ok(TopicStart::After(12))
        ));
        assert!(matches!(
            start("a.b", Some("beginning")),
            Ok(TopicStart::After(0))
        ));
        for (pattern, from) in [("a.*", "12"), ("a.#", "beginning"), ("a.b", "unread")] {
            let e = start(pattern, Some(from)).expect_err("refused");
            assert_eq!(e.details()["field"], "from", "{pattern} {from}");
        }
    }
}
