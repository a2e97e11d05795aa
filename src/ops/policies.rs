//! Policies: read the rules in force, add and remove one (in force at once, written back to the
//! policy file by the permission actor), reload the files, and ask what a request would get.
//! Permission `admin`, `manage`.

use mailbox_actors::permission::{EditError, PolicyRule};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::admin::OBJECT;
use super::args::{self, given};
use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// `{policies: [{ptype, rule}]}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyRule>,
}

/// `{result: "ok", rules}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    pub result: &'static str,
    pub rules: usize,
}

/// `sub`, `obj`, `act`: all required.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct CheckArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub sub: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub obj: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub act: Option<String>,
}

/// `{allowed}`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub allowed: bool,
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Invalid(i) => ApiError::validation(i.field, i.message),
            e @ EditError::Exists(_) => {
                ApiError::Engine(mailbox_actors::Error::Conflict(e.to_string()))
            }
            e @ EditError::Absent(_) => ApiError::not_found(e.to_string()),
            EditError::Policy(p) => ApiError::validation("policy", p.to_string()),
        }
    }
}

impl Ops {
    pub fn list_policies(&self, agent: &Agent) -> Result<PolicyList, ApiError> {
        self.require(agent, OBJECT, "manage")?;
        Ok(PolicyList {
            policies: self.permissions.rules(),
        })
    }

    pub async fn add_policy(&self, agent: &Agent, rule: PolicyRule) -> Result<(), ApiError> {
        rule.check().map_err(EditError::from)?;
        self.require(agent, OBJECT, "manage")?;
        let detail = json!({ "action": "policy_added", "ptype": rule.ptype, "rule": rule.rule });
        self.permissions.add_rule(rule).await?;
        self.admin_action(agent, detail);
        Ok(())
    }

    pub async fn remove_policy(&self, agent: &Agent, rule: PolicyRule) -> Result<(), ApiError> {
        rule.check().map_err(EditError::from)?;
        self.require(agent, OBJECT, "manage")?;
        let detail = json!({ "action": "policy_removed", "ptype": rule.ptype, "rule": rule.rule });
        self.permissions.remove_rule(rule).await?;
        self.admin_action(agent, detail);
        Ok(())
    }

    /// Rereads the files; a file that does not load answers 422 and the old policy stays.
    pub async fn reload_policies(&self, agent: &Agent) -> Result<Reloaded, ApiError> {
        self.require(agent, OBJECT, "manage")?;
        let rules = self
            .permissions
            .reload(Some(&agent.id))
            .await
            .map_err(|e| ApiError::validation("policy", e.to_string()))?;
        Ok(Reloaded {
            result: "ok",
            rules,
        })
    }

    /// What the policy decides for `(sub, obj, act)`, `sub` holding only the roles the policy
    /// gives it (as `mailbox policy check` and any Casbin implementation would see it).
    pub fn check_policy(&self, agent: &Agent, args: CheckArgs) -> Result<Decision, ApiError> {
        let field = |name: &'static str, v: &Option<String>| {
            given(v)
                .filter(|s| s.len() <= 512)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!("`{name}` is required (at most 512 characters)"),
                    )
                })
        };
        let (sub, obj, act) = (
            field("sub", &args.sub)?,
            field("obj", &args.obj)?,
            field("act", &args.act)?,
        );
        self.require(agent, OBJECT, "manage")?;
        Ok(Decision {
            allowed: self.permissions.check(&sub, &[], &obj, &act),
        })
    }
}
