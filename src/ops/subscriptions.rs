//! Durable topic subscriptions: messages published to a topic matching the pattern are copied
//! into the mailbox (default: the caller's own), at most once per message and mailbox however
//! many of its subscriptions match.

use mailbox_actors::model::{check_mailbox_name, check_topic_pattern, Subscription};
use serde::{Deserialize, Serialize};

use super::{args, Ops};
use crate::auth::Agent;
use crate::error::ApiError;

/// `all=true`: every subscription (needs `read` on `admin`); otherwise the caller's.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListSubscriptionsArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub all: Option<String>,
}

/// `{subscriptions}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
}

/// The subscription; `created` is false when the same mailbox already subscribed to the same
/// pattern (REST: 201 when created, 200 otherwise).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscribed {
    #[serde(flatten)]
    pub subscription: Subscription,
    #[serde(skip)]
    pub created: bool,
}

impl Ops {
    /// Needs `subscribe` on `topic:<pattern>`, and for another agent's mailbox also `manage` on
    /// `mailbox:<name>`.
    pub async fn subscribe(
        &self,
        agent: &Agent,
        pattern: &str,
        mailbox: Option<&str>,
    ) -> Result<Subscribed, ApiError> {
        check_topic_pattern("pattern", pattern)?;
        let mailbox = mailbox.unwrap_or(&agent.id);
        check_mailbox_name(mailbox)?;
        self.require(agent, &format!("topic:{pattern}"), "subscribe")?;
        if mailbox != agent.id {
            self.require(agent, &format!("mailbox:{mailbox}"), "manage")?;
        }
        let (sub, created) = self
            .registry
            .router()
            .subscribe(pattern, mailbox, &agent.id)
            .await?;
        if created {
            tracing::info!(target: "audit", kind = "subscription_created", agent = %agent.id, subscription = %sub.id, pattern = %sub.pattern, mailbox = %sub.mailbox, "durable subscription created");
        }
        Ok(Subscribed {
            subscription: sub,
            created,
        })
    }

    pub async fn list_subscriptions(
        &self,
        agent: &Agent,
        args: ListSubscriptionsArgs,
    ) -> Result<SubscriptionList, ApiError> {
        let all = args::flag("all", &args.all)?;
        if all {
            self.require(agent, "admin", "read")?;
        }
        let subscriptions = self
            .registry
            .router()
            .subscriptions()
            .await?
            .into_iter()
            .filter(|s| all || s.mailbox == agent.id || s.created_by == agent.id)
            .collect();
        Ok(SubscriptionList { subscriptions })
    }

    pub async fn show_subscription(
        &self,
        agent: &Agent,
        id: &str,
    ) -> Result<Subscription, ApiError> {
        let sub = self.find_subscription(id).await?;
        self.may_see(agent, &sub)?;
        Ok(sub)
    }

    /// Copies stop before this answers (on this node at once; other nodes follow within a
    /// second).
    pub async fn unsubscribe(&self, agent: &Agent, id: &str) -> Result<(), ApiError> {
        let sub = self.find_subscription(id).await?;
        self.may_see(agent, &sub)?;
        if self.registry.router().unsubscribe(id).await?.is_none() {
            return Err(ApiError::not_found(format!("subscription `{id}`")));
        }
        tracing::info!(target: "audit", kind = "subscription_deleted", agent = %agent.id, subscription = %id, "durable subscription deleted");
        Ok(())
    }

    async fn find_subscription(&self, id: &str) -> Result<Subscription, ApiError> {
        self.registry
            .router()
            .subscription(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("subscription `{id}`")))
    }

    /// May the caller see and remove `sub`? Its mailbox's owner, its creator, and whoever may
    /// manage that mailbox (admins).
    fn may_see(&self, agent: &Agent, sub: &Subscription) -> Result<(), ApiError> {
        if sub.mailbox == agent.id || sub.created_by == agent.id {
            return Ok(());
        }
        self.require(agent, &format!("mailbox:{}", sub.mailbox), "manage")
    }
}
