//! The permission actor and its read path.
//!
//! Decisions are made on the read path ([`PermissionHandle::check`]): a shared `Arc<Enforcer>`
//! behind a read lock, held only long enough to clone the `Arc`. The actor owns everything that
//! changes the policy: it polls the policy and model files and, when either changes, builds a new
//! enforcer from them and swaps it in. A file that does not parse never replaces a good policy.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use casbin::{CoreApi, DefaultModel, Enforcer, FileAdapter, StringAdapter};

/// How often the policy files are checked for changes (hot reload within 2 s).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The shipped model and policy (`config/casbin/`), compiled in: an empty path means "the
/// shipped file", so the binary decides the same way from any directory, or in an image that
/// carries no `config/` at all.
pub const SHIPPED_MODEL: &str = include_str!("../../../config/casbin/model.conf");
pub const SHIPPED_POLICY: &str = include_str!("../../../config/casbin/policy.csv");

/// Where the model and policy live (empty: the shipped copy compiled in), and whether to
/// follow edits of the files.
#[derive(Debug, Clone)]
pub struct PermissionSettings {
    pub model: PathBuf,
    pub policy: PathBuf,
    pub watch: bool,
}

/// Why the policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load casbin policy ({path}): {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

async fn build(settings: &PermissionSettings) -> Result<Enforcer, PolicyError> {
    let err = |p: &PathBuf, e: &dyn std::fmt::Display| PolicyError {
        path: if p.as_os_str().is_empty() {
            "compiled-in".to_owned()
        } else {
            p.display().to_string()
        },
        message: e.to_string(),
    };
    let model = if settings.model.as_os_str().is_empty() {
        DefaultModel::from_str(SHIPPED_MODEL).await
    } else {
        DefaultModel::from_file(&settings.model).await
    }
    .map_err(|e| err(&settings.model, &e))?;
    let shipped_policy = settings.policy.as_os_str().is_empty();
    let policy = if shipped_policy {
        SHIPPED_POLICY.to_owned()
    } else {
        std::fs::read_to_string(&settings.policy).map_err(|e| err(&settings.policy, &e))?
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
            return Err(err(
                &settings.policy,
                &format!(
                    "line {}: `{l}` is not `p, sub, obj, act` or `g, member, role`",
                    i + 1
                ),
            ));
        }
    }
    let enforcer = if shipped_policy {
        Enforcer::new(model, StringAdapter::new(policy)).await
    } else {
        Enforcer::new(model, FileAdapter::new(settings.policy.clone())).await
    };
    enforcer.map_err(|e| err(&settings.policy, &e))
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
        let enforcer = build(&settings).await?;
        let current = Arc::new(RwLock::new(Arc::new(Policy::new(enforcer))));
        let fingerprint = fingerprint(&settings);
        let shared = current.clone();
        let addr = Supervisor::start(move |_| PermissionActor {
            settings,
            current: shared,
            fingerprint,
        });
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

    /// Reloads the files now; answers the error if they do not parse (the old policy stays).
    pub async fn reload(&self) -> Result<(), PolicyError> {
        match &self.addr {
            Some(a) => a.send(Reload).await.unwrap_or_else(|e| {
                Err(PolicyError {
                    path: String::new(),
                    message: format!("permission actor unavailable: {e}"),
                })
            }),
            None => Ok(()),
        }
    }
}

/// What the files looked like when last loaded: a change triggers a reload. Contents, not
/// mtimes, so a Kubernetes ConfigMap swap (a symlink flip) is seen too.
fn fingerprint(s: &PermissionSettings) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (std::fs::read(&s.model).ok(), std::fs::read(&s.policy).ok())
}

pub struct PermissionActor {
    settings: PermissionSettings,
    current: Arc<RwLock<Arc<Policy>>>,
    fingerprint: (Option<Vec<u8>>, Option<Vec<u8>>),
}

/// Rebuild the enforcer from the files.
#[derive(Message)]
#[rtype(result = "Result<(), PolicyError>")]
pub struct Reload;

impl Actor for PermissionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.settings.watch {
            ctx.run_interval(POLL_EVERY, |act, ctx| {
                let now = fingerprint(&act.settings);
                if now != act.fingerprint {
                    act.fingerprint = now;
                    ctx.notify(Reload);
                }
            });
        }
    }
}

impl Supervised for PermissionActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Reload);
    }
}

impl Handler<Reload> for PermissionActor {
    type Result = ResponseActFuture<Self, Result<(), PolicyError>>;

    fn handle(&mut self, _: Reload, _: &mut Context<Self>) -> Self::Result {
        let settings = self.settings.clone();
        let current = self.current.clone();
        Box::pin(
            async move {
                match build(&settings).await {
                    Ok(e) => {
                        *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Policy::new(e));
                        metrics::counter!("mailbox_policy_reloads_total", "result" => "ok").increment(1);
                        tracing::info!(target: "audit", kind = "policy_reload", result = "ok", "policy reloaded");
                        Ok(())
                    }
                    Err(e) => {
                        metrics::counter!("mailbox_policy_reloads_total", "result" => "error").increment(1);
                        tracing::error!(target: "audit", kind = "policy_reload", result = "error", error = %e, "policy reload failed; keeping the old policy");
                        Err(e)
                    }
                }
            }
            .into_actor(self),
        )
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
        }
    }

    #[actix::test]
    async fn default_policy_decisions() {
        // The files, and the same files compiled in (empty paths).
        let compiled = PermissionSettings {
            model: PathBuf::new(),
            policy: PathBuf::new(),
            watch: true,
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
