//! Topics: the tree (list), info, create/configure, delete, and history.

use chrono::{DateTime, Utc};
use mailbox_actors::model::{check_topic_name, Envelope, TopicConfig, TopicStats};
use serde::{Deserialize, Serialize};

use super::args::{self, given};
use super::{BrowseArgs, Ops};
use crate::auth::Agent;
use crate::error::ApiError;

/// Longest history a topic may ask for.
const MAX_RETENTION_LEN: u64 = 10_000_000;
/// Oldest history a topic may ask for: ten years.
const MAX_RETENTION_SECONDS: u64 = 10 * 365 * 24 * 3600;
/// Topics per page of a listing.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// `prefix` (by segment), `after` (a topic name: the page starts past it), `limit` 1-1000.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListTopicsArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub prefix: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub after: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub limit: Option<String>,
}

/// One topic with its counts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub total: u64,
    pub last_seq: String,
    pub created_at: Option<DateTime<Utc>>,
    pub config: TopicConfig,
}

impl From<TopicStats> for TopicInfo {
    fn from(s: TopicStats) -> Self {
        Self {
            name: s.name,
            total: s.total,
            last_seq: s.last_seq.to_string(),
            created_at: s.created_at,
            config: s.config,
        }
    }
}

/// `{topics, next}`: `next` is the `after` of the following page, null on the last.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
    pub next: Option<String>,
}

/// Topic settings; left out means the configured default.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureTopicArgs {
    pub retention_max_len: Option<u64>,
    pub retention_seconds: Option<u64>,
}

/// `{name, config}` with defaults filled in; `created` when the topic did not exist.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TopicConfigured {
    pub name: String,
    pub config: TopicConfig,
    #[serde(skip)]
    pub created: bool,
}

/// A page of a topic's history: `{messages, next}` (topics have no read state).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicPage {
    pub messages: Vec<Envelope>,
    pub next: Option<String>,
}

impl Ops {
    /// The topics at or under `prefix` (by segment: `research` lists `research` and
    /// `research.papers.ml`, not `researchers`), by name. Checked as `read` on
    /// `topic:<prefix>.#` (`topic:#` without a prefix).
    pub async fn list_topics(
        &self,
        agent: &Agent,
        args: ListTopicsArgs,
    ) -> Result<TopicList, ApiError> {
        let prefix = given(&args.prefix).unwrap_or_default();
        if !prefix.is_empty() {
            check_topic_name("prefix", prefix)?;
        }
        let after = given(&args.after);
        if let Some(a) = after {
            check_topic_name("after", a)?;
        }
        let limit = args::limit("limit", &args.limit, DEFAULT_LIST, MAX_LIST)?;
        let obj = if prefix.is_empty() {
            "topic:#".to_owned()
        } else {
            format!("topic:{prefix}.#")
        };
        self.require(agent, &obj, "read")?;
        let page = self.registry.topics(prefix, after, limit).await?;
        let next = (page.len() == limit)
            .then(|| page.last().map(|t| t.name.clone()))
            .flatten();
        Ok(TopicList {
            topics: page.into_iter().map(TopicInfo::from).collect(),
            next,
        })
    }

    pub async fn topic_info(&self, agent: &Agent, name: &str) -> Result<TopicInfo, ApiError> {
        self.authorize_topic(agent, name, "read")?;
        match self.registry.topic(name).stats().await? {
            Some(s) => Ok(s.into()),
            None => Err(ApiError::not_found(format!("topic `{name}`"))),
        }
    }

    /// Creates or reconfigures a topic (needs `manage`).
    pub async fn configure_topic(
        &self,
        agent: &Agent,
        name: &str,
        args: ConfigureTopicArgs,
    ) -> Result<TopicConfigured, ApiError> {
        check_topic_name("topic", name)?;
        if args
            .retention_max_len
            .is_some_and(|m| m == 0 || m > MAX_RETENTION_LEN)
        {
            return Err(ApiError::validation(
                "retention_max_len",
                format!("`retention_max_len` must be 1-{MAX_RETENTION_LEN}"),
            ));
        }
        if args
            .retention_seconds
            .is_some_and(|s| s == 0 || s > MAX_RETENTION_SECONDS)
        {
            return Err(ApiError::validation(
                "retention_seconds",
                format!("`retention_seconds` must be 1-{MAX_RETENTION_SECONDS}"),
            ));
        }
        self.authorize_topic(agent, name, "manage")?;
        let config = TopicConfig {
            retention_max_len: args.retention_max_len,
            retention_seconds: args.retention_seconds,
        };
        let created = self.registry.topic(name).configure(config).await?;
        tracing::info!(target: "audit", kind = "topic_configured", agent = %agent.id, topic = %name, "topic configured");
        let defaults = self.registry.topic_settings().defaults;
        Ok(TopicConfigured {
            name: name.to_owned(),
            config: config.or(defaults),
            created,
        })
    }

    pub async fn delete_topic(&self, agent: &Agent, name: &str) -> Result<(), ApiError> {
        self.authorize_topic(agent, name, "manage")?;
        if !self.registry.topic(name).delete().await? {
            return Err(ApiError::not_found(format!("topic `{name}`")));
        }
        tracing::info!(target: "audit", kind = "topic_deleted", agent = %agent.id, topic = %name, "topic deleted");
        Ok(())
    }

    /// The history, with the mailbox browse query (`unread` is refused: no read state).
    pub async fn topic_history(
        &self,
        agent: &Agent,
        name: &str,
        args: BrowseArgs,
    ) -> Result<TopicPage, ApiError> {
        self.authorize_topic(agent, name, "read")?;
        let (query, wait) = args.query()?;
        let topic = self.registry.topic(name);
        if topic.stats().await?.is_none() {
            return Err(ApiError::not_found(format!("topic `{name}`")));
        }
        let page = topic.browse_wait(&query, wait).await?;
        Ok(TopicPage {
            messages: page.messages,
            next: page.next,
        })
    }
}
