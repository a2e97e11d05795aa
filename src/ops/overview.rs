//! The admin overview of mailboxes (`GET /v1/admin/mailboxes`), which the dashboard shows:
//! every known mailbox with its size, its owner's unread count and pending acks.

use serde::Serialize;

use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// Most mailboxes one overview lists (the page is for people; the rest are counted).
pub const MAX_OVERVIEW: usize = 500;

/// One mailbox as the overview shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MailboxSummary {
    pub name: String,
    pub total: u64,
    /// Not yet marked read by the mailbox's owner.
    pub unread: u64,
    pub pending_acks: u64,
}

/// `{mailboxes, known}`: `known` counts every known mailbox, listed or not.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MailboxOverview {
    pub mailboxes: Vec<MailboxSummary>,
    pub known: usize,
}

impl Ops {
    /// Every known mailbox (up to [`MAX_OVERVIEW`], by name) with its owner's unread count.
    /// Needs (`admin`, `read`).
    pub async fn mailbox_overview(&self, agent: &Agent) -> Result<MailboxOverview, ApiError> {
        self.require(agent, "admin", "read")?;
        let mut names = self.registry.known_agents().await?;
        names.sort();
        let known = names.len();
        let mut mailboxes = Vec::with_capacity(known.min(MAX_OVERVIEW));
        for name in names.into_iter().take(MAX_OVERVIEW) {
            let s = self.registry.mailbox(&name).stats(&name).await?;
            mailboxes.push(MailboxSummary {
                name,
                total: s.total,
                unread: s.unread,
                pending_acks: s.pending_acks,
            });
        }
        Ok(MailboxOverview { mailboxes, known })
    }
}
