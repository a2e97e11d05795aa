//! A mailbox: info, configure, delete, browse (with the long-poll), mark read. The browse query
//! is shared with topic history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailbox_actors::mailbox::BrowseQuery;
use mailbox_actors::model::{
    check_mailbox_name, Envelope, MailboxConfig, MessageFilter, Overflow, Priority, ReadMark,
};
use serde::{Deserialize, Serialize};

use super::args::{self, given};
use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// Longest long-poll (browse `wait`, receive `wait_seconds`).
pub const MAX_WAIT_SECONDS: u64 = 60;
/// Longest browse page.
const MAX_PAGE: usize = 500;
/// Most ids one mark-read may name.
const MAX_READ_IDS: usize = 1000;

/// The browse query of SPEC section 5, as a query string or tool arguments give it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct BrowseArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub after: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub before: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub since: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub until: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub sender: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub content_type: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub thread_id: Option<String>,
    /// `true`: only messages the caller has not marked read (mailboxes only).
    #[serde(default, deserialize_with = "args::text")]
    pub unread: Option<String>,
    /// 1-500, default 50.
    #[serde(default, deserialize_with = "args::text")]
    pub limit: Option<String>,
    /// Seconds to wait for a first match, 0-60.
    #[serde(default, deserialize_with = "args::text")]
    pub wait: Option<String>,
}

impl BrowseArgs {
    /// The checked query and the long-poll wait.
    pub(crate) fn query(&self) -> Result<(BrowseQuery, Duration), ApiError> {
        let limit = args::limit("limit", &self.limit, 50, MAX_PAGE)?;
        let wait = match given(&self.wait) {
            None => 0,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= MAX_WAIT_SECONDS => n,
                _ => {
                    return Err(ApiError::validation(
                        "wait",
                        format!("`wait` must be 0-{MAX_WAIT_SECONDS} seconds"),
                    ))
                }
            },
        };
        let unread_only = args::flag("unread", &self.unread)?;
        let priority = given(&self.priority)
            .map(|p| {
                Priority::parse(p).ok_or_else(|| {
                    ApiError::validation("priority", "`priority` is low, normal, high or urgent")
                })
            })
            .transpose()?;
        let time = |field, v: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
            given(v).map(|s| args::time(field, s)).transpose()
        };
        let seq = |field, v: &Option<String>| given(v).map(|s| args::seq(field, s)).transpose();
        let text = |v: &Option<String>| given(v).map(str::to_owned);
        let query = BrowseQuery {
            after: seq("after", &self.after)?,
            before: seq("before", &self.before)?,
            filter: MessageFilter {
                since: time("since", &self.since)?,
                until: time("until", &self.until)?,
                sender: text(&self.sender),
                content_type: text(&self.content_type),
                priority,
                tag: text(&self.tag),
                thread_id: text(&self.thread_id),
            },
            unread_only,
            limit,
        };
        Ok((query, Duration::from_secs(wait)))
    }
}

/// A page of a mailbox: `{messages, next, unread}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BrowsePage {
    pub messages: Vec<Envelope>,
    pub next: Option<String>,
    /// The caller's unread count after this page; left out of a degraded page (read state
    /// lives in storage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// Served from the node's cache of recent messages while storage is down (SPEC section
    /// 4): faces mark it (REST: header `X-Mailbox-Degraded: cached`). Left out when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

/// `GET /v1/mailboxes/{name}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MailboxInfo {
    pub name: String,
    pub total: u64,
    pub unread: u64,
    pub pending_acks: u64,
    pub last_seq: String,
    pub created_at: Option<DateTime<Utc>>,
    pub config: MailboxConfig,
}

/// Mailbox settings; every field may be left out.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureMailboxArgs {
    pub max_len: Option<u64>,
    /// `reject` (default) or `drop_oldest`.
    pub overflow: Option<String>,
    pub retention_seconds: Option<u64>,
}

/// `{name, config}`; `created` when the mailbox did not exist (REST: 201, else 200).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MailboxConfigured {
    pub name: String,
    pub config: MailboxConfig,
    #[serde(skip)]
    pub created: bool,
}

/// Exactly one of `ids` (1-1000 message ids) or `up_to` (a seq).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadArgs {
    pub ids: Option<Vec<String>>,
    pub up_to: Option<String>,
}

/// `{unread}`: the caller's unread count.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Unread {
    pub unread: u64,
}

impl Ops {
    pub async fn mailbox_info(&self, agent: &Agent, name: &str) -> Result<MailboxInfo, ApiError> {
        self.authorize_mailbox(agent, name, "read")?;
        let s = self.registry.mailbox(name).stats(&agent.id).await?;
        Ok(MailboxInfo {
            name: name.to_owned(),
            total: s.total,
            unread: s.unread,
            pending_acks: s.pending_acks,
            last_seq: s.last_seq.to_string(),
            created_at: s.created_at,
            config: s.config,
        })
    }

    /// Creates or reconfigures a mailbox (needs `manage`).
    pub async fn configure_mailbox(
        &self,
        agent: &Agent,
        name: &str,
        args: ConfigureMailboxArgs,
    ) -> Result<MailboxConfigured, ApiError> {
        check_mailbox_name(name)?;
        let cap = self.limits.mailbox_max_len;
        if args.max_len.is_some_and(|m| m == 0 || m > cap) {
            return Err(ApiError::validation(
                "max_len",
                format!("`max_len` must be 1-{cap}"),
            ));
        }
        let overflow = match args.overflow.as_deref() {
            None | Some("reject") => Overflow::Reject,
            Some("drop_oldest") => Overflow::DropOldest,
            Some(o) => {
                return Err(ApiError::validation(
                    "overflow",
                    format!("`{o}`: use `reject` or `drop_oldest`"),
                ))
            }
        };
        if args.retention_seconds == Some(0) {
            return Err(ApiError::validation(
                "retention_seconds",
                "must be positive",
            ));
        }
        self.authorize_mailbox(agent, name, "manage")?;
        let config = MailboxConfig {
            max_len: args.max_len,
            overflow,
            retention_seconds: args.retention_seconds,
        };
        let created = self
            .registry
            .mailbox(name)
            .configure(config.clone())
            .await?;
        tracing::info!(target: "audit", kind = "mailbox_configured", agent = %agent.id, mailbox = %name, "mailbox configured");
        Ok(MailboxConfigured {
            name: name.to_owned(),
            config,
            created,
        })
    }

    pub async fn delete_mailbox(&self, agent: &Agent, name: &str) -> Result<(), ApiError> {
        self.authorize_mailbox(agent, name, "manage")?;
        self.registry.mailbox(name).delete().await?;
        self.admin_action(
            agent,
            serde_json::json!({ "action": "mailbox_deleted", "mailbox": name }),
        );
        Ok(())
    }

    /// A page of a mailbox, waiting up to `wait` seconds for a first match.
    pub async fn browse(
        &self,
        agent: &Agent,
        name: &str,
        args: BrowseArgs,
    ) -> Result<BrowsePage, ApiError> {
        self.authorize_mailbox(agent, name, "read")?;
        let (query, wait) = args.query()?;
        let mailbox = self.registry.mailbox(name);
        let page = mailbox.browse_wait(&agent.id, &query, wait).await?;
        let unread = if page.degraded {
            None
        } else {
            Some(mailbox.stats(&agent.id).await?.unread)
        };
        Ok(BrowsePage {
            messages: page.messages,
            next: page.next,
            unread,
            degraded: page.degraded,
        })
    }

    pub async fn mark_read(
        &self,
        agent: &Agent,
        name: &str,
        args: MarkReadArgs,
    ) -> Result<Unread, ApiError> {
        let mark = match (args.ids, args.up_to) {
            (Some(ids), None) if !ids.is_empty() && ids.len() <= MAX_READ_IDS => ReadMark::Ids(ids),
            (Some(_), None) => {
                return Err(ApiError::validation(
                    "ids",
                    format!("`ids` must hold 1-{MAX_READ_IDS} message ids"),
                ))
            }
            (None, Some(s)) => ReadMark::UpTo(args::seq("up_to", &s)?),
            _ => {
                return Err(ApiError::validation(
                    "ids",
                    "send exactly one of `ids` or `up_to`",
                ))
            }
        };
        self.authorize_mailbox(agent, name, "read")?;
        let unread = self
            .registry
            .mailbox(name)
            .mark_read(&agent.id, mark)
            .await?;
        Ok(Unread { unread })
    }
}
