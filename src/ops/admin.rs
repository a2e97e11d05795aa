//! Administration: agents and their API keys, the token exchange, the audit trail and stats.
//! Every route needs `admin` (`manage` to change, `read` to look); policies are in
//! [`super::policies`].

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use mailbox_actors::model::{
    is_valid_agent_id, AgentRecord, AuditEvent, AuditKind, AuditQuery, MAX_AUDIT_PAGE,
};
use mailbox_actors::registry::ActorCounts;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::args::{self, given};
use super::Ops;
use crate::auth::{api_key_hash, new_api_key, same_hash, Agent};
use crate::error::ApiError;

pub(crate) const OBJECT: &str = "admin";
/// Most roles one agent may hold.
const MAX_ROLES: usize = 32;

/// `POST /v1/admin/agents`: `{id, roles}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentArgs {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The new agent with its API key: the only time the key is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentCreated {
    pub id: String,
    pub roles: Vec<String>,
    pub api_key: String,
    pub created_at: String,
}

/// An agent as listed: never its key or the key's hash.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentInfo {
    pub id: String,
    pub roles: Vec<String>,
    pub created_at: String,
}

/// `{agents}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentInfo>,
}

/// `POST /v1/auth/token`: `{agent_id, api_key}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenArgs {
    pub agent_id: String,
    pub api_key: String,
}

/// `{token, expires_at}` (RFC 3339).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenIssued {
    pub token: String,
    pub expires_at: String,
}

/// `agent`, `kind`, `since` (RFC 3339), `before` (the `next` of the previous page), `limit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub agent: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub since: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub before: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub limit: Option<String>,
}

/// `{events, next}`, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub events: Vec<AuditEvent>,
    pub next: Option<String>,
}

/// Messages accepted by this node over the last minute.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Rates {
    pub messages_per_second: f64,
    pub messages_last_minute: u64,
}

/// `GET /v1/admin/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub node: String,
    /// WebSocket sessions on this node.
    pub sessions: usize,
    /// Live actors on this node, by kind.
    pub actors: ActorCounts,
    pub mailboxes: u64,
    pub topics: u64,
    pub dead_letters: u64,
    /// Agents created by an admin.
    pub agents: u64,
    pub rates: Rates,
}

/// Seconds the meter remembers.
const METER_SECONDS: i64 = 60;

/// Counts accepted messages per second over the last minute (for stats).
#[derive(Default)]
pub struct Meter {
    seconds: Mutex<VecDeque<(i64, u64)>>,
}

impl Meter {
    pub fn add(&self, n: u64) {
        let now = Utc::now().timestamp();
        let mut s = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        match s.back_mut() {
            Some((t, c)) if *t == now => *c += n,
            _ => s.push_back((now, n)),
        }
        while s.front().is_some_and(|(t, _)| *t <= now - METER_SECONDS) {
            s.pop_front();
        }
    }

    fn rates(&self) -> Rates {
        let now = Utc::now().timestamp();
        let s = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        let n: u64 = s
            .iter()
            .filter(|(t, _)| *t > now - METER_SECONDS)
            .map(|(_, c)| c)
            .sum();
        Rates {
            messages_per_second: n as f64 / METER_SECONDS as f64,
            messages_last_minute: n,
        }
    }
}

fn check_roles(roles: &[String]) -> Result<(), ApiError> {
    if roles.len() > MAX_ROLES {
        return Err(ApiError::validation(
            "roles",
            format!("at most {MAX_ROLES} roles"),
        ));
    }
    match roles.iter().find(|r| !is_valid_agent_id(r)) {
        Some(r) => Err(ApiError::validation(
            "roles",
            format!("`{r}` is not a valid role (same rule as an agent id)"),
        )),
        None => Ok(()),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Ops {
    /// Records an admin's action in the audit trail.
    pub(crate) fn admin_action(&self, agent: &Agent, detail: serde_json::Value) {
        self.audit
            .record(AuditKind::AdminAction, Some(&agent.id), detail);
    }

    /// Records a failed authentication (a bad token, a wrong API key).
    pub fn auth_failed(&self, agent: Option<&str>, reason: &str, path: &str) {
        metrics::counter!("mailbox_auth_failures_total").increment(1);
        self.audit.record(
            AuditKind::AuthFailure,
            agent,
            json!({ "reason": reason, "path": path }),
        );
    }

    pub async fn create_agent(
        &self,
        agent: &Agent,
        args: CreateAgentArgs,
    ) -> Result<AgentCreated, ApiError> {
        if !is_valid_agent_id(&args.id) {
            return Err(ApiError::validation(
                "id",
                format!("`{}` is not a valid agent id", args.id),
            ));
        }
        check_roles(&args.roles)?;
        self.require(agent, OBJECT, "manage")?;
        let api_key = new_api_key();
        let created_at = rfc3339(Utc::now());
        self.admin
            .create_agent(AgentRecord {
                id: args.id.clone(),
                roles: args.roles.clone(),
                created_at: created_at.clone(),
                key_hash: api_key_hash(self.auth.api_key_secret(), &args.id, &api_key),
            })
            .await?;
        self.admin_action(
            agent,
            json!({ "action": "agent_created", "id": args.id, "roles": args.roles }),
        );
        Ok(AgentCreated {
            id: args.id,
            roles: args.roles,
            api_key,
            created_at,
        })
    }

    pub async fn list_agents(&self, agent: &Agent) -> Result<AgentList, ApiError> {
        self.require(agent, OBJECT, "manage")?;
        let agents = self.admin.agents().await?;
        Ok(AgentList {
            agents: agents
                .into_iter()
                .map(|a| AgentInfo {
                    id: a.id,
                    roles: a.roles,
                    created_at: a.created_at,
                })
                .collect(),
        })
    }

    pub async fn delete_agent(&self, agent: &Agent, id: &str) -> Result<(), ApiError> {
        check_mailbox_id(id)?;
        self.require(agent, OBJECT, "manage")?;
        self.admin.delete_agent(id).await?;
        self.admin_action(agent, json!({ "action": "agent_deleted", "id": id }));
        Ok(())
    }

    /// Exchanges an API key for a token carrying the agent's roles. Any refusal is the same
    /// `unauthenticated`, whether the agent is unknown, revoked or the key wrong.
    pub async fn exchange_key(&self, args: TokenArgs, path: &str) -> Result<TokenIssued, ApiError> {
        let refused = |why: &str| {
            self.auth_failed(
                is_valid_agent_id(&args.agent_id).then_some(args.agent_id.as_str()),
                why,
                path,
            );
            ApiError::Unauthenticated("unknown agent or wrong API key".into())
        };
        if !is_valid_agent_id(&args.agent_id) || args.api_key.len() > 256 {
            return Err(refused("malformed agent id or key"));
        }
        let Some(record) = self.admin.agent(&args.agent_id).await? else {
            return Err(refused("unknown or revoked agent"));
        };
        let hash = api_key_hash(self.auth.api_key_secret(), &args.agent_id, &args.api_key);
        if !same_hash(&hash, &record.key_hash) {
            return Err(refused("wrong API key"));
        }
        let (token, exp) = self.tokens.mint(&record.id, &record.roles, None)?;
        let expires_at = DateTime::from_timestamp(i64::try_from(exp).unwrap_or(i64::MAX), 0)
            .map(rfc3339)
            .unwrap_or_default();
        Ok(TokenIssued { token, expires_at })
    }

    pub async fn audit(&self, agent: &Agent, args: AuditArgs) -> Result<AuditList, ApiError> {
        let kind = given(&args.kind)
            .map(|k| {
                AuditKind::parse(k).ok_or_else(|| {
                    ApiError::validation(
                        "kind",
                        format!("`{k}` is not one of auth_failure, permission_denied, admin_action, policy_reload, security_alert"),
                    )
                })
            })
            .transpose()?;
        let since_ms = given(&args.since)
            .map(|s| args::time("since", s).map(|t| t.timestamp_millis()))
            .transpose()?;
        let before = given(&args.before).map(str::to_owned);
        if let Some(b) = &before {
            let ok = b.len() <= 48
                && b.split_once('-')
                    .is_some_and(|(ms, n)| ms.parse::<u64>().is_ok() && n.parse::<u64>().is_ok());
            if !ok {
                return Err(ApiError::validation(
                    "before",
                    format!("`{b}` is not an audit event id"),
                ));
            }
        }
        let limit = args::limit("limit", &args.limit, 50, MAX_AUDIT_PAGE)?;
        self.require(agent, OBJECT, "read")?;
        let page = self
            .audit
            .list(AuditQuery {
                agent: given(&args.agent).map(str::to_owned),
                kind,
                since_ms,
                before,
                limit,
            })
            .await?;
        Ok(AuditList {
            events: page.events,
            next: page.next,
        })
    }

    pub async fn stats(&self, agent: &Agent, node: &str) -> Result<Stats, ApiError> {
        self.require(agent, OBJECT, "read")?;
        let actors = self.registry.actor_counts().await?;
        let counts = self.admin.counts().await?;
        Ok(Stats {
            node: node.to_owned(),
            sessions: actors.sessions,
            actors,
            mailboxes: counts.mailboxes,
            topics: counts.topics,
            dead_letters: counts.dead_letters,
            agents: counts.agents,
            rates: self.meter.rates(),
        })
    }
}

fn check_mailbox_id(id: &str) -> Result<(), ApiError> {
    if is_valid_agent_id(id) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "id",
            format!("`{id}` is not a valid agent id"),
        ))
    }
}
