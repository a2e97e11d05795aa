//! Names and addresses: agent ids, topic names, topic patterns and the `to` field.
//!
//! Everything here is pure and checked once at the edge; the rest of the engine only ever sees
//! values that already passed these rules (SPEC section 2).

use std::fmt;

/// Longest agent id (and so mailbox name), in bytes.
pub const MAX_AGENT_ID_LEN: usize = 64;
/// Most segments in a topic name or pattern.
pub const MAX_TOPIC_SEGMENTS: usize = 16;
/// Longest topic segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// True when `s` matches `^[a-z0-9][a-z0-9_.-]{0,63}$`.
pub fn is_valid_agent_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_AGENT_ID_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

fn is_valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT_LEN
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

/// True when `s` is 1–16 `.`-joined segments, each `^[a-z0-9_-]{1,64}$`.
pub fn is_valid_topic(s: &str) -> bool {
    let segs: Vec<&str> = s.split('.').collect();
    segs.len() <= MAX_TOPIC_SEGMENTS && segs.iter().all(|seg| is_valid_segment(seg))
}

/// True when `s` is a topic name whose segments may be `*`, with an optional final `#`.
pub fn is_valid_topic_pattern(s: &str) -> bool {
    let segs: Vec<&str> = s.split('.').collect();
    if segs.len() > MAX_TOPIC_SEGMENTS {
        return false;
    }
    let last = segs.len() - 1;
    segs.iter()
        .enumerate()
        .all(|(i, seg)| *seg == "*" || (*seg == "#" && i == last) || is_valid_segment(seg))
}

/// Where a message goes: one mailbox, one topic, or every known agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Mailbox(String),
    Topic(String),
    Broadcast,
}

/// Why an address string was refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError(pub String);

impl Address {
    /// Parses `mailbox:<agent>`, `topic:<name>` or `broadcast`.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        if s == "broadcast" {
            return Ok(Address::Broadcast);
        }
        if let Some(name) = s.strip_prefix("mailbox:") {
            return if is_valid_agent_id(name) {
                Ok(Address::Mailbox(name.to_owned()))
            } else {
                Err(AddressError(format!(
                    "`{name}` is not a valid agent id (^[a-z0-9][a-z0-9_.-]{{0,63}}$)"
                )))
            };
        }
        if let Some(name) = s.strip_prefix("topic:") {
            return if is_valid_topic(name) {
                Ok(Address::Topic(name.to_owned()))
            } else {
                Err(AddressError(format!(
                    "`{name}` is not a valid topic name (1-16 `.`-separated segments of [a-z0-9_-])"
                )))
            };
        }
        Err(AddressError(
            "an address is `mailbox:<agent>`, `topic:<name>` or `broadcast`".to_owned(),
        ))
    }

    /// The Casbin object this address is checked against.
    pub fn permission_object(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Mailbox(m) => write!(f, "mailbox:{m}"),
            Address::Topic(t) => write!(f, "topic:{t}"),
            Address::Broadcast => f.write_str("broadcast"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids() {
        for ok in ["bob", "a", "0", "a.b-c_d", &"a".repeat(64)] {
            assert!(is_valid_agent_id(ok), "{ok}");
        }
        for bad in ["", "Bob", "-bob", ".x", "a b", "a:b", &"a".repeat(65), "é"] {
            assert!(!is_valid_agent_id(bad), "{bad}");
        }
    }

    #[test]
    fn topics_and_patterns() {
        assert!(is_valid_topic("research.papers.ml"));
        assert!(!is_valid_topic("research..ml"));
        assert!(!is_valid_topic("Research"));
        assert!(!is_valid_topic(&vec!["a"; 17].join(".")));
        assert!(is_valid_topic(&vec!["a"; 16].join(".")));
        assert!(is_valid_topic_pattern("a.*.c"));
        assert!(is_valid_topic_pattern("a.#"));
        assert!(is_valid_topic_pattern("#"));
        assert!(!is_valid_topic_pattern("a.#.b"));
        assert!(!is_valid_topic_pattern("a..b"));
        assert!(!is_valid_topic_pattern("A.b"));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse("mailbox:bob"),
            Ok(Address::Mailbox("bob".into()))
        );
        assert_eq!(
            Address::parse("topic:a.b"),
            Ok(Address::Topic("a.b".into()))
        );
        assert_eq!(Address::parse("broadcast"), Ok(Address::Broadcast));
        assert!(Address::parse("mailbox:Bob").is_err());
        assert!(Address::parse("bob").is_err());
        assert!(Address::parse("topic:a.*").is_err());
        assert_eq!(Address::Mailbox("x".into()).to_string(), "mailbox:x");
    }
}
