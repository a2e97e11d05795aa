//! Policy rules as the admin API sees them (`{"ptype","rule"}`), and edits of the policy file's
//! text that keep every comment, blank line and the order of the other rules.

use serde::{Deserialize, Serialize};

/// One Casbin rule: `p, sub, obj, act` or `g, member, role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub ptype: String,
    pub rule: Vec<String>,
}

/// Why a rule is not acceptable: names the field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRule {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidRule {
    InvalidRule {
        field,
        message: message.into(),
    }
}

impl PolicyRule {
    /// Checks the rule could be one line of the policy file: `p` with 3 fields or `g` with 2,
    /// each non-empty, without commas, quotes, line breaks or surrounding spaces, and not
    /// starting a comment.
    pub fn check(&self) -> Result<(), InvalidRule> {
        let want = match self.ptype.as_str() {
            "p" => 3,
            "g" => 2,
            other => {
                return Err(invalid(
                    "ptype",
                    format!("`{other}` is not a policy type (`p` or `g`)"),
                ))
            }
        };
        if self.rule.len() != want {
            return Err(invalid(
                "rule",
                format!(
                    "a `{}` rule has {want} fields ({}), not {}",
                    self.ptype,
                    if want == 3 {
                        "sub, obj, act"
                    } else {
                        "member, role"
                    },
                    self.rule.len()
                ),
            ));
        }
        for f in &self.rule {
            let bad = f.is_empty()
                || f.len() > 256
                || f.trim() != f
                || f.starts_with('#')
                || f.chars().any(|c| c == ',' || c == '"' || c.is_control());
            if bad {
                return Err(invalid(
                    "rule",
                    format!("`{f}` is not a valid field (non-empty, at most 256 characters, no commas, quotes, control characters or surrounding spaces)"),
                ));
            }
        }
        Ok(())
    }

    /// The rule as a line of the policy file.
    pub fn line(&self) -> String {
        let mut fields = vec![self.ptype.as_str()];
        fields.extend(self.rule.iter().map(String::as_str));
        fields.join(", ")
    }

    /// Whether a line of the policy file is this rule (spacing aside).
    fn is_line(&self, line: &str) -> bool {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            return false;
        }
        let mut fields = l.split(',').map(str::trim);
        fields.next() == Some(self.ptype.as_str())
            && fields.eq(self.rule.iter().map(String::as_str))
    }
}

/// The policy text with `rule` appended, or `None` if it is already there.
pub fn with_rule(text: &str, rule: &PolicyRule) -> Option<String> {
    if text.lines().any(|l| rule.is_line(l)) {
        return None;
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&rule.line());
    out.push('\n');
    Some(out)
}

/// The policy text without the lines of `rule`, or `None` if it is not there.
pub fn without_rule(text: &str, rule: &PolicyRule) -> Option<String> {
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if rule.is_line(line) {
            found = true;
        } else {
            out.push_str(line);
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fields: &[&str]) -> PolicyRule {
        PolicyRule {
            ptype: "p".into(),
            rule: fields.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let text = "# head\np, agent, mailbox:*, send\n\n# admins\np, admin, *, *\n";
        let added = with_rule(text, &p(&["carol", "topic:x", "read"])).expect("new rule");
        assert_eq!(
            added,
            "# head\np, agent, mailbox:*, send\n\n# admins\np, admin, *, *\np, carol, topic:x, read\n"
        );
        assert!(
            with_rule(&added, &p(&["agent", "mailbox:*", "send"])).is_none(),
            "present"
        );
        let removed = without_rule(&added, &p(&["agent", "mailbox:*", "send"])).expect("found");
        assert_eq!(
            removed,
            "# head\n\n# admins\np, admin, *, *\np, carol, topic:x, read\n"
        );
        assert!(without_rule(&removed, &p(&["agent", "mailbox:*", "send"])).is_none());
        assert_eq!(
            with_rule("p, a, b, c", &p(&["d", "e", "f"])).as_deref(),
            Some("p, a, b, c\np, d, e, f\n")
        );
    }

    #[test]
    fn bad_rules_name_their_field() {
        assert_eq!(p(&["a", "b"]).check().map_err(|e| e.field), Err("rule"));
        assert_eq!(
            p(&["a", "b,c", "d"]).check().map_err(|e| e.field),
            Err("rule")
        );
        assert_eq!(
            p(&["a", " b", "d"]).check().map_err(|e| e.field),
            Err("rule")
        );
        let x = PolicyRule {
            ptype: "x".into(),
            rule: vec![],
        };
        assert_eq!(x.check().map_err(|e| e.field), Err("ptype"));
        let g = PolicyRule {
            ptype: "g".into(),
            rule: vec!["carol".into(), "admin".into()],
        };
        assert!(g.check().is_ok());
        assert_eq!(g.line(), "g, carol, admin");
    }
}
