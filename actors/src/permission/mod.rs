//! The permission actor and its read path.
//!
//! Decisions are made on the read path ([`PermissionHandle::check`]): a shared `Arc<Enforcer>`
//! behind a read lock, held only long enough to clone the `Arc`. The actor ([`actor`]) owns
//! everything that changes the policy: it polls the policy and model files and, when either
//! changes, builds a new enforcer from them and swaps it in; and it applies the admin API's
//! edits ([`rules`]) one at a time, writing the file back atomically. A file that does not
//! parse never replaces a good policy.

mod actor;
pub mod rules;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use casbin::{CoreApi, DefaultModel, Enforcer, FileAdapter, MgmtApi, StringAdapter};

use crate::admin::AuditLog;
pub use actor::PermissionActor;
use actor::{Edit, Reload};
pub use rules::{InvalidRule, PolicyRule};

/// The shipped model and policy (`config/casbin/`), compiled in: an empty path means "the
/// shipped file", so the binary decides the same way from any directory, or in an image that
/// carries no `config/` at all. Compiled-in rules cannot be edited (there is no file to write
/// back): the admin API's edits need `permissions.policy` to name a file.
pub const SHIPPED_MODEL: &str = include_str!("../../../config/casbin/model.conf");
pub const SHIPPED_POLICY: &str = include_str!("../../../config/casbin/policy.csv");

/// Where the model and policy live (empty: the shipped copy compiled in), and whether to
/// follow edits of the files.
#[derive(Debug, Clone)]
pub struct PermissionSettings {
    pub model: PathBuf,
    pub policy: PathBuf,
    pub watch: bool,
    /// Where reloads are recorded (`policy_reload` events); none in unit tests.
    pub audit: Option<AuditLog>,
}

/// Why the policy could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot load casbin policy ({path}): {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

/// Why an edit of the policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Invalid(#[from] InvalidRule),
    #[error("the rule `{0}` is already in the policy")]
    Exists(String),
    #[error("the rule `{0}` is not in the policy")]
    Absent(String),
    /// The file could not be read or written, or the edited policy does not load.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

fn policy_error(p: &Path, e: &dyn std::fmt::Display) -> PolicyError {
    PolicyError {
        path: if p.as_os_str().is_empty() {
            "compiled-in".to_owned()
        } else {
            p.display().to_string()
        },
        message: e.to_string(),
    }
}

/// Builds an enforcer from the model and a policy file (the configured one, or an edited copy
/// before it replaces it); an empty path stands for the shipped file compiled in.
async fn build(model: &Path, policy_file: &Path) -> Result<Enforcer, PolicyError> {
    let model_conf = if model.as_os_str().is_empty() {
        DefaultModel::from_str(SHIPPED_MODEL).await
    } else {
        DefaultModel::from_file(model).await
    }
    .map_err(|e| policy_error(model, &e))?;
    let shipped_policy = policy_file.as_os_str().is_empty();
    let policy = if shipped_policy {
        SHIPPED_POLICY.to_owned()
    } else {
        std::fs::read_to_string(policy_file).map_err(|e| policy_error(policy_file, &e))?
    };
    // casbin's file adapter skips lines it cannot split; refuse them instead, so a typo is
    // reported rather than silently dropping a rule.
    for (i, line) in policy.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        let ok = match fields.first() {
            Some(&"p") => fields.len() == 4 && fields.iter().all(|f| !f.is_empty()),
            Some(&"g") => fields.len() == 3 && fields.iter().all(|f| !f.is_empty()),
            _ => false,
        };
        if !ok {
            return Err(policy_error(
                policy_file,
                &format!(
                    "line {}: `{l}` is not `p, sub, obj, act` or `g, member, role`",
                    i + 1
                ),
            ));
        }
    }
    let enforcer = if shipped_policy {
        Enforcer::new(model_conf, StringAdapter::new(policy)).await
    } else {
        Enforcer::new(model_conf, FileAdapter::new(policy_file.to_path_buf())).await
    };
    enforcer.map_err(|e| policy_error(policy_file, &e))
}

/// Most decisions remembered per loaded policy; past it the memo starts over.
const MAX_MEMO: usize = 100_000;

/// One loaded policy and the decisions made with it. A reload builds a new `Policy`, so the
/// memo can never outlive the rules it was computed from.
struct Policy {
    enforcer: Enforcer,
    memo: RwLock<std::collections::HashMap<(String, String, String), bool>>,
}

impl Policy {
    /// How many rules (`p` and `g`) are in force.
    fn rules(&self) -> usize {
        self.enforcer.get_policy().len() + self.enforcer.get_grouping_policy().len()
    }

    fn new(enforcer: Enforcer) -> Self {
        Self {
            enforcer,
            memo: RwLock::new(std::collections::HashMap::new()),
        }
    }

    /// Casbin's decision for one subject, memoised (evaluating the matcher is the costly part).
    fn decide(&self, sub: &str, obj: &str, act: &str) -> bool {
        let key = (sub.to_owned(), obj.to_owned(), act.to_owned());
        if let Some(d) = self
            .memo
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return *d;
        }
        let decision = match self.enforcer.enforce((sub, obj, act)) {
            Ok(b) => b,
            Err(err) => {
                tracing::error!(error = %err, sub, obj, act, "casbin enforce failed; denying");
                return false;
            }
        };
        let mut memo = self.memo.write().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= MAX_MEMO {
            memo.clear();
        }
        memo.insert(key, decision);
        decision
    }
}

/// The read path: cloneable, lock held only to clone an `Arc`.
#[derive(Clone)]
pub struct PermissionHandle {
    current: Arc<RwLock<Arc<Policy>>>,
    addr: Option<Addr<PermissionActor>>,
}

impl PermissionHandle {
    /// Loads the files and starts the permission actor. Fails if the policy does not load.
    pub async fn start(settings: PermissionSettings) -> Result<Self, PolicyError> {
        let seen = actor::fingerprint(&settings);
        let enforcer = build(&settings.model, &settings.policy).await?;
        let current = Arc::new(RwLock::new(Arc::new(Policy::new(enforcer))));
        let shared = current.clone();
        let addr = Supervisor::start(move |_| PermissionActor::new(settings, shared, seen));
        Ok(Self {
            current,
            addr: Some(addr),
        })
    }

    fn policy(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// May `agent` (holding the token's `roles`) do `act` on `obj`?
    pub fn check(&self, agent: &str, roles: &[String], obj: &str, act: &str) -> bool {
        let policy = self.policy();
        let allowed = |sub: &str| policy.decide(sub, obj, act);
        if allowed(agent) {
            return true;
        }
        // A token role is evaluated as its own subject; the `$self` rule must not hand a role
        // the mailbox that happens to share its name.
        roles
            .iter()
            .any(|r| obj.strip_prefix("mailbox:") != Some(r.as_str()) && allowed(r))
    }

    /// Reloads the files now; answers the number of rules, or the error if they do not parse
    /// (the old policy stays). `by`: the admin who asked, for the audit trail.
    pub async fn reload(&self, by: Option<&str>) -> Result<usize, PolicyError> {
        let Some(a) = &self.addr else {
            return Ok(self.policy().rules());
        };
        a.send(Reload {
            by: by.map(str::to_owned),
        })
        .await
        .unwrap_or_else(|e| {
            Err(policy_error(
                Path::new(""),
                &format!("permission actor unavailable: {e}"),
            ))
        })
    }

    /// Every rule in force: `p` rules in file order, then `g` rules.
    pub fn rules(&self) -> Vec<PolicyRule> {
        let policy = self.policy();
        let p = policy
            .enforcer
            .get_policy()
            .into_iter()
            .map(|rule| PolicyRule {
                ptype: "p".into(),
                rule,
            });
        let g = policy
            .enforcer
            .get_grouping_policy()
            .into_iter()
            .map(|rule| PolicyRule {
                ptype: "g".into(),
                rule,
            });
        p.chain(g).collect()
    }

    /// Adds a rule (in force at once, written back to the policy file).
    pub async fn add_rule(&self, rule: PolicyRule) -> Result<(), EditError> {
        self.edit(Edit { rule, add: true }).await
    }

    /// Removes a rule (in force at once, written back to the policy file).
    pub async fn remove_rule(&self, rule: PolicyRule) -> Result<(), EditError> {
        self.edit(Edit { rule, add: false }).await
    }

    async fn edit(&self, edit: Edit) -> Result<(), EditError> {
        edit.rule.check()?;
        let Some(a) = &self.addr else {
            return Err(EditError::Policy(policy_error(
                Path::new(""),
                &"the policy is not editable here",
            )));
        };
        a.send(edit).await.unwrap_or_else(|e| {
            Err(EditError::Policy(policy_error(
                Path::new(""),
                &format!("permission actor unavailable: {e}"),
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PermissionSettings {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/casbin");
        PermissionSettings {
            model: root.join("model.conf"),
            policy: root.join("policy.csv"),
            watch: false,
            audit: None,
        }
    }

    #[actix::test]
    async fn default_policy_decisions() {
        // The files, and the same files compiled in (empty paths).
        let compiled = PermissionSettings {
            model: PathBuf::new(),
            policy: PathBuf::new(),
            watch: true,
            audit: None,
        };
        for settings in [settings(), compiled] {
            decide_as_shipped(
                PermissionHandle::start(settings)
                    .await
                    .expect("shipped policy loads"),
            );
        }
    }

    fn decide_as_shipped(p: PermissionHandle) {
        let none: Vec<String> = vec![];
        let admin = vec!["admin".to_owned()];
        assert!(p.check("bob", &none, "mailbox:bob", "read"));
        assert!(p.check("bob", &none, "mailbox:bob", "manage"));
        assert!(!p.check("bob", &none, "mailbox:alice", "read"));
        assert!(p.check("bob", &none, "mailbox:alice", "send"));
        assert!(p.check("bob", &none, "topic:research.ml", "send"));
        assert!(!p.check("bob", &none, "broadcast", "send"));
        assert!(!p.check("bob", &none, "admin", "manage"));
        assert!(!p.check("bob", &none, "dead-letters", "manage"));
        assert!(p.check("ops", &admin, "broadcast", "send"));
        assert!(p.check("ops", &admin, "mailbox:alice", "read"));
        assert!(p.check("ops", &admin, "admin", "manage"));
        // A token role never stands for the mailbox that shares its name.
        assert!(!p.check("bob", &["agent".to_owned()], "mailbox:agent", "read"));
    }
}
