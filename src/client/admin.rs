//! Admin calls of the client library: agents and API keys, the key exchange, policies, the
//! audit trail and stats. The answers are the broker's JSON bodies (SPEC section 5, "Shapes of
//! the admin routes").

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Client, ClientError};

/// One Casbin rule: `{"ptype": "p", "rule": ["agent", "mailbox:*", "send"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub ptype: String,
    pub rule: Vec<String>,
}

/// A created agent: `api_key` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedAgent {
    pub id: String,
    pub roles: Vec<String>,
    pub api_key: String,
    pub created_at: String,
}

/// An agent as listed (never a key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSummary {
    pub id: String,
    pub roles: Vec<String>,
    pub created_at: String,
}

#[derive(Deserialize)]
struct Agents {
    agents: Vec<AgentSummary>,
}

#[derive(Deserialize)]
struct Policies {
    policies: Vec<Rule>,
}

/// A token from the API-key exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: String,
}

impl Client {
    /// Creates an agent; the answer carries its API key (shown once).
    pub async fn create_agent(
        &self,
        id: &str,
        roles: &[String],
    ) -> Result<CreatedAgent, ClientError> {
        self.call(
            self.request(Method::POST, "/v1/admin/agents")
                .json(&json!({ "id": id, "roles": roles })),
        )
        .await
    }

    pub async fn agents(&self) -> Result<Vec<AgentSummary>, ClientError> {
        let a: Agents = self
            .call(self.request(Method::GET, "/v1/admin/agents"))
            .await?;
        Ok(a.agents)
    }

    /// Deletes an agent: its API key no longer exchanges for a token.
    pub async fn delete_agent(&self, id: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call(self.request(Method::DELETE, &format!("/v1/admin/agents/{id}")))
            .await?;
        Ok(())
    }

    /// Exchanges an API key for a token (needs no token itself).
    pub async fn exchange_key(
        &self,
        agent_id: &str,
        api_key: &str,
    ) -> Result<IssuedToken, ClientError> {
        self.call(
            self.request(Method::POST, "/v1/auth/token")
                .json(&json!({ "agent_id": agent_id, "api_key": api_key })),
        )
        .await
    }

    /// The rules in force.
    pub async fn policies(&self) -> Result<Vec<Rule>, ClientError> {
        let p: Policies = self
            .call(self.request(Method::GET, "/v1/admin/policies"))
            .await?;
        Ok(p.policies)
    }

    /// Adds a rule (in force at once, written back to the policy file).
    pub async fn add_policy(&self, rule: &Rule) -> Result<(), ClientError> {
        let _: Value = self
            .call(self.request(Method::POST, "/v1/admin/policies").json(rule))
            .await?;
        Ok(())
    }

    pub async fn remove_policy(&self, rule: &Rule) -> Result<(), ClientError> {
        let _: Value = self
            .call(
                self.request(Method::DELETE, "/v1/admin/policies")
                    .json(rule),
            )
            .await?;
        Ok(())
    }

    /// Rereads the policy files: `{result, rules}`.
    pub async fn reload_policies(&self) -> Result<Value, ClientError> {
        self.call(self.request(Method::POST, "/v1/admin/policies/reload"))
            .await
    }

    /// What the policy decides for `(sub, obj, act)`.
    pub async fn check_policy(&self, sub: &str, obj: &str, act: &str) -> Result<bool, ClientError> {
        let v: Value = self
            .call(
                self.request(Method::GET, "/v1/admin/policies/check")
                    .query(&[("sub", sub), ("obj", obj), ("act", act)]),
            )
            .await?;
        Ok(v["allowed"].as_bool().unwrap_or(false))
    }

    /// A page of the audit trail (`agent`, `kind`, `since`, `before`, `limit`): `{events, next}`.
    pub async fn audit(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, "/v1/admin/audit").query(query))
            .await
    }

    pub async fn stats(&self) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, "/v1/admin/stats"))
            .await
    }
}
