//! Dead letters: inspect, requeue and purge. Permission `dead-letters`, `manage` (admins by
//! default); an agent that may read a mailbox may also list and see that mailbox's dead letters.

use chrono::{DateTime, Utc};
use mailbox_actors::dead_letter::Requeued as EngineRequeued;
use mailbox_actors::model::{check_mailbox_name, DeadLetter, DeadQuery, DeadReason, MAX_DEAD_PAGE};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::args::{self, given};
use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

const OBJECT: &str = "dead-letters";
/// Longest `after` cursor (a dead-letter id).
const MAX_CURSOR: usize = 64;

/// `mailbox`, `reason`, `after` (a dead-letter id), `limit` 1-[`MAX_DEAD_PAGE`] (default 50).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ListDeadLettersArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub mailbox: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub after: Option<String>,
    #[serde(default, deserialize_with = "args::text")]
    pub limit: Option<String>,
}

/// `{dead_letters, next}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// Which dead letters a bulk requeue takes (none given: all).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    pub mailbox: Option<String>,
    pub reason: Option<String>,
}

/// `{filter: {mailbox?, reason?}}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueMatchingArgs {
    #[serde(default, deserialize_with = "super::parse::object")]
    pub filter: DeadLetterFilter,
}

/// `older_than`: an RFC 3339 time or an age in seconds (0: all). Required.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct PurgeArgs {
    #[serde(default, deserialize_with = "args::text")]
    pub older_than: Option<String>,
}

/// `{requeued: 1, dead_letter, id, mailbox, seq}`: the message is back in its mailbox under a
/// new id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Requeued {
    pub requeued: u64,
    pub dead_letter: String,
    pub id: String,
    pub mailbox: String,
    pub seq: String,
}

/// `{requeued}`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct RequeuedCount {
    pub requeued: u64,
}

/// `{deleted}`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub deleted: u64,
}

fn parse_reason(v: &str) -> Result<DeadReason, ApiError> {
    DeadReason::parse(v).ok_or_else(|| {
        ApiError::validation(
            "reason",
            "`reason` is max_attempts, rejected, expired, undeliverable or evicted",
        )
    })
}

/// `older_than`: an RFC 3339 time, or an age in seconds.
fn parse_older_than(v: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(secs) = v.parse::<u64>() {
        let age = i64::try_from(secs)
            .ok()
            .and_then(chrono::Duration::try_seconds);
        return Ok(age
            .and_then(|a| Utc::now().checked_sub_signed(a))
            .unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(
                "older_than",
                "`older_than` is an RFC 3339 time or an age in seconds",
            )
        })
}

impl Ops {
    fn dead_letter_manager(&self, agent: &Agent) -> bool {
        self.allowed(agent, OBJECT, "manage")
    }

    pub async fn list_dead_letters(
        &self,
        agent: &Agent,
        args: ListDeadLettersArgs,
    ) -> Result<DeadLetterPage, ApiError> {
        let mailbox = given(&args.mailbox).map(str::to_owned);
        if let Some(m) = &mailbox {
            check_mailbox_name(m)?;
        }
        let reason = given(&args.reason).map(parse_reason).transpose()?;
        let limit = args::limit("limit", &args.limit, 50, MAX_DEAD_PAGE)?;
        let after = given(&args.after).map(str::to_owned);
        if after.as_ref().is_some_and(|a| a.len() > MAX_CURSOR) {
            return Err(ApiError::validation("after", "`after` is a dead-letter id"));
        }
        match &mailbox {
            Some(m) if !self.dead_letter_manager(agent) => {
                self.require(agent, &format!("mailbox:{m}"), "read")?
            }
            _ => self.require(agent, OBJECT, "manage")?,
        }
        let page = self
            .dead_letters
            .list(DeadQuery {
                mailbox,
                reason,
                after,
                limit,
            })
            .await?;
        Ok(DeadLetterPage {
            dead_letters: page.dead_letters,
            next: page.next,
        })
    }

    pub async fn show_dead_letter(&self, agent: &Agent, id: &str) -> Result<DeadLetter, ApiError> {
        if self.dead_letter_manager(agent) {
            return Ok(self.dead_letters.get(id).await?);
        }
        // Someone who may read the mailbox may see its dead letters; anyone else learns nothing
        // more than "not permitted", whether or not the id exists.
        let d = match self.dead_letters.get(id).await {
            Ok(d) => d,
            Err(mailbox_actors::Error::NotFound { .. }) => {
                return Err(self
                    .require(agent, OBJECT, "manage")
                    .err()
                    .unwrap_or_else(|| ApiError::not_found(format!("dead letter `{id}`"))))
            }
            Err(e) => return Err(e.into()),
        };
        match self.require(agent, &format!("mailbox:{}", d.mailbox), "read") {
            Ok(()) => Ok(d),
            Err(_) => Err(self
                .require(agent, OBJECT, "manage")
                .err()
                .unwrap_or_else(|| ApiError::PermissionDenied("not permitted".into()))),
        }
    }

    pub async fn delete_dead_letter(&self, agent: &Agent, id: &str) -> Result<(), ApiError> {
        self.require(agent, OBJECT, "manage")?;
        self.dead_letters.delete(id).await?;
        self.admin_action(agent, json!({ "action": "dead_letter_deleted", "id": id }));
        Ok(())
    }

    pub async fn requeue_dead_letter(&self, agent: &Agent, id: &str) -> Result<Requeued, ApiError> {
        self.require(agent, OBJECT, "manage")?;
        let EngineRequeued {
            dead_letter,
            id,
            mailbox,
            seq,
        } = self.dead_letters.requeue(id).await?;
        self.admin_action(
            agent,
            json!({ "action": "dead_letter_requeued", "id": dead_letter, "mailbox": mailbox }),
        );
        Ok(Requeued {
            requeued: 1,
            dead_letter,
            id,
            mailbox,
            seq,
        })
    }

    pub async fn requeue_dead_letters(
        &self,
        agent: &Agent,
        args: RequeueMatchingArgs,
    ) -> Result<RequeuedCount, ApiError> {
        let DeadLetterFilter { mailbox, reason } = args.filter;
        if let Some(m) = &mailbox {
            check_mailbox_name(m)?;
        }
        let reason = reason.as_deref().map(parse_reason).transpose()?;
        self.require(agent, OBJECT, "manage")?;
        let n = self
            .dead_letters
            .requeue_matching(mailbox.clone(), reason)
            .await?;
        self.admin_action(
            agent,
            json!({ "action": "dead_letters_requeued", "count": n, "mailbox": mailbox, "reason": reason.map(|r| r.as_str()) }),
        );
        Ok(RequeuedCount { requeued: n })
    }

    pub async fn purge_dead_letters(
        &self,
        agent: &Agent,
        args: PurgeArgs,
    ) -> Result<Purged, ApiError> {
        let Some(v) = given(&args.older_than) else {
            return Err(ApiError::validation(
                "older_than",
                "`older_than` is required (an RFC 3339 time or an age in seconds; 0 = all)",
            ));
        };
        let before = parse_older_than(v)?;
        self.require(agent, OBJECT, "manage")?;
        let n = self.dead_letters.purge(before).await?;
        self.admin_action(
            agent,
            json!({ "action": "dead_letters_purged", "count": n, "older_than": v }),
        );
        Ok(Purged { deleted: n })
    }
}
