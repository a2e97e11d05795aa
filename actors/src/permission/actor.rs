//! The permission actor: the one writer of the policy. Reloads (the file poll, the admin API,
//! a restart) and the admin API's edits are handled one at a time (`AtomicResponse`), so two
//! concurrent edits never read the same file and lose one another.
//!
//! An edit is written to a temporary file beside the policy, loaded from there (a rule that
//! makes the policy unloadable is refused and the file left alone), then renamed over the
//! policy file: a reader (a hand editor, the next poll, another node's poll) sees the old file
//! or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use super::rules::{with_rule, without_rule, PolicyRule};
use super::{build, policy_error, EditError, PermissionSettings, Policy, PolicyError};
use crate::model::AuditKind;

/// How often the policy files are checked for changes: hot reload within 2 s (SPEC), with room
/// for a reload on a busy node.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// What the files looked like when last loaded: a change triggers a reload. Contents, not
/// mtimes, so a Kubernetes ConfigMap swap (a symlink flip) is seen too. Taken *before* a load
/// reads the files, so an edit made while it loads is seen by the next poll rather than lost.
pub(super) type Fingerprint = (Option<Vec<u8>>, Option<Vec<u8>>);

pub(super) fn fingerprint(s: &PermissionSettings) -> Fingerprint {
    (std::fs::read(&s.model).ok(), std::fs::read(&s.policy).ok())
}

pub struct PermissionActor {
    settings: PermissionSettings,
    current: Arc<RwLock<Arc<Policy>>>,
    fingerprint: Fingerprint,
}

impl PermissionActor {
    /// `fingerprint`: the files as they were before `current` was loaded from them.
    pub(super) fn new(
        settings: PermissionSettings,
        current: Arc<RwLock<Arc<Policy>>>,
        fingerprint: Fingerprint,
    ) -> Self {
        Self {
            settings,
            current,
            fingerprint,
        }
    }
}

/// Rebuild the enforcer from the files; answers the number of rules.
#[derive(Message)]
#[rtype(result = "Result<usize, PolicyError>")]
pub(super) struct Reload {
    /// The admin who asked; `None` when a file change (or a restart) triggered it.
    pub by: Option<String>,
}

/// Add or remove one rule, writing the policy file back.
#[derive(Message)]
#[rtype(result = "Result<(), EditError>")]
pub(super) struct Edit {
    pub rule: PolicyRule,
    pub add: bool,
}

impl Actor for PermissionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.settings.watch {
            ctx.run_interval(POLL_EVERY, |act, ctx| {
                let now = fingerprint(&act.settings);
                if now != act.fingerprint {
                    act.fingerprint = now;
                    ctx.notify(Reload { by: None });
                }
            });
        }
    }
}

impl Supervised for PermissionActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Reload { by: None });
    }
}

impl Handler<Reload> for PermissionActor {
    type Result = AtomicResponse<Self, Result<usize, PolicyError>>;

    fn handle(&mut self, msg: Reload, _: &mut Context<Self>) -> Self::Result {
        let settings = self.settings.clone();
        let current = self.current.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let trigger = if msg.by.is_some() { "api" } else { "file" };
                let seen = fingerprint(&settings);
                let result = match build(&settings.model, &settings.policy).await {
                    Ok(e) => {
                        let policy = Arc::new(Policy::new(e));
                        let rules = policy.rules();
                        *current.write().unwrap_or_else(|p| p.into_inner()) = policy;
                        Ok(rules)
                    }
                    Err(e) => Err(e),
                };
                let (outcome, detail) = match &result {
                    Ok(rules) => {
                        tracing::info!(rules, trigger, "policy reloaded");
                        ("ok", json!({ "result": "ok", "rules": rules, "trigger": trigger }))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, trigger, "policy reload failed; keeping the old policy");
                        ("error", json!({ "result": "error", "error": e.to_string(), "trigger": trigger }))
                    }
                };
                metrics::counter!("mailbox_policy_reloads_total", "result" => outcome).increment(1);
                if let Some(audit) = &settings.audit {
                    audit.record(AuditKind::PolicyReload, msg.by.as_deref(), detail);
                }
                (result, seen)
            }
            .into_actor(self)
            .map(|(r, seen), act, _| {
                act.fingerprint = seen;
                r
            }),
        ))
    }
}

impl Handler<Edit> for PermissionActor {
    type Result = AtomicResponse<Self, Result<(), EditError>>;

    fn handle(&mut self, msg: Edit, _: &mut Context<Self>) -> Self::Result {
        let settings = self.settings.clone();
        let current = self.current.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let policy_file = &settings.policy;
                if policy_file.as_os_str().is_empty() {
                    return Err(EditError::Policy(policy_error(
                        policy_file,
                        &"the policy in force is the shipped one compiled in: set \
                          permissions.policy to a file to edit rules",
                    )));
                }
                let text = std::fs::read_to_string(policy_file)
                    .map_err(|e| policy_error(policy_file, &e))?;
                let line = msg.rule.line();
                let edited = if msg.add {
                    with_rule(&text, &msg.rule).ok_or_else(|| EditError::Exists(line.clone()))?
                } else {
                    without_rule(&text, &msg.rule).ok_or_else(|| EditError::Absent(line.clone()))?
                };
                let enforcer = write_back(&settings.model, policy_file, &edited).await?;
                *current.write().unwrap_or_else(|p| p.into_inner()) =
                    Arc::new(Policy::new(enforcer));
                metrics::counter!("mailbox_policy_reloads_total", "result" => "ok").increment(1);
                tracing::info!(rule = %line, added = msg.add, "policy edited and written back");
                Ok(())
            }
            .into_actor(self)
            .map(|r, act, _| {
                act.fingerprint = fingerprint(&act.settings);
                r
            }),
        ))
    }
}

/// Writes `text` to a temporary file beside `policy_file`, loads it, and only then renames it
/// over the policy file. Answers the loaded enforcer.
async fn write_back(
    model: &Path,
    policy_file: &Path,
    text: &str,
) -> Result<casbin::Enforcer, PolicyError> {
    let dir = policy_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = policy_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy.csv".into());
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", crate::model::new_id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(policy_error(&tmp, &e));
    }
    let enforcer = match build(model, &tmp).await {
        Ok(e) => e,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, policy_file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(policy_error(policy_file, &e));
    }
    Ok(enforcer)
}
