//! Consuming a mailbox (SPEC section 4): receive, and settling a delivery with ack or nack.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mailbox_actors::mailbox::MAX_RECEIVE;
use mailbox_actors::model::{DeadReason, Envelope, NackOutcome};
use serde::{Deserialize, Serialize};

use super::{Ops, MAX_WAIT_SECONDS};
use crate::auth::Agent;
use crate::error::ApiError;

/// Longest nack reason kept with a dead letter.
pub const MAX_REASON: usize = 1024;

/// `max` 1-100 (default 1), `wait_seconds` 0-60 (default 0: answer at once).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveArgs {
    pub max: Option<i64>,
    pub wait_seconds: Option<i64>,
}

/// `{messages}`: the deliveries handed over, each stamped with its attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Received {
    pub messages: Vec<Envelope>,
}

/// `{id, status: "acked", attempt}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Acked {
    pub id: String,
    pub status: &'static str,
    pub attempt: u32,
}

/// `requeue` (default false: dead-letter it) and a `reason` (default `nacked by <agent>`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackArgs {
    pub requeue: Option<bool>,
    pub reason: Option<String>,
}

/// What a nack did: `{id, status: "requeued", attempt, redeliver_at}` or
/// `{id, status: "dead_lettered", attempt, reason}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NackResult {
    Requeued {
        id: String,
        attempt: u32,
        redeliver_at: Option<DateTime<Utc>>,
    },
    DeadLettered {
        id: String,
        attempt: u32,
        reason: DeadReason,
    },
}

impl NackResult {
    fn new(id: String, outcome: NackOutcome) -> Self {
        match outcome {
            NackOutcome::Requeued {
                attempt,
                redeliver_at_ms,
            } => NackResult::Requeued {
                id,
                attempt,
                redeliver_at: Utc.timestamp_millis_opt(redeliver_at_ms).single(),
            },
            NackOutcome::DeadLettered { attempt, reason } => NackResult::DeadLettered {
                id,
                attempt,
                reason,
            },
        }
    }
}

impl Ops {
    /// Hands over up to `max` messages, waiting up to `wait_seconds` for a first one. Faces
    /// count `mailbox_messages_delivered_total` under their own `transport` label.
    pub async fn receive(
        &self,
        agent: &Agent,
        name: &str,
        args: ReceiveArgs,
    ) -> Result<Received, ApiError> {
        let max = match args.max {
            None => 1,
            Some(n) if (1..=MAX_RECEIVE as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(ApiError::validation(
                    "max",
                    format!("`max` must be 1-{MAX_RECEIVE}"),
                ))
            }
        };
        let wait = match args.wait_seconds {
            None => 0,
            Some(s) if (0..=MAX_WAIT_SECONDS as i64).contains(&s) => s as u64,
            Some(_) => {
                return Err(ApiError::validation(
                    "wait_seconds",
                    format!("`wait_seconds` must be 0-{MAX_WAIT_SECONDS}"),
                ))
            }
        };
        self.authorize_mailbox(agent, name, "read")?;
        let messages = self
            .registry
            .mailbox(name)
            .receive(max, Duration::from_secs(wait))
            .await?;
        Ok(Received { messages })
    }

    pub async fn ack(&self, agent: &Agent, mailbox: &str, id: &str) -> Result<Acked, ApiError> {
        self.authorize_mailbox(agent, mailbox, "read")?;
        let attempt = self.registry.mailbox(mailbox).ack(id).await?;
        tracing::debug!(mailbox = %mailbox, message_id = %id, attempt, "acked");
        Ok(Acked {
            id: id.to_owned(),
            status: "acked",
            attempt,
        })
    }

    pub async fn nack(
        &self,
        agent: &Agent,
        mailbox: &str,
        id: &str,
        args: NackArgs,
    ) -> Result<NackResult, ApiError> {
        if args.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            return Err(ApiError::validation(
                "reason",
                format!("`reason` must be at most {MAX_REASON} bytes"),
            ));
        }
        self.authorize_mailbox(agent, mailbox, "read")?;
        let requeue = args.requeue.unwrap_or(false);
        let reason = args
            .reason
            .unwrap_or_else(|| format!("nacked by {}", agent.id));
        let outcome = self
            .registry
            .mailbox(mailbox)
            .nack(id, requeue, &reason)
            .await?;
        tracing::debug!(mailbox = %mailbox, message_id = %id, requeue, ?outcome, "nacked");
        Ok(NackResult::new(id.to_owned(), outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_answers_keep_the_rest_shape() {
        let v = serde_json::to_value(NackResult::new(
            "m1".into(),
            NackOutcome::Requeued {
                attempt: 2,
                redeliver_at_ms: 0,
            },
        ))
        .expect("serializes");
        assert_eq!(v["status"], "requeued");
        assert_eq!(
            (v["id"].as_str(), v["attempt"].as_u64()),
            (Some("m1"), Some(2))
        );
        assert!(v["redeliver_at"].is_string(), "{v}");
        let v = serde_json::to_value(NackResult::new(
            "m1".into(),
            NackOutcome::DeadLettered {
                attempt: 3,
                reason: DeadReason::Rejected,
            },
        ))
        .expect("serializes");
        assert_eq!(
            (v["status"].as_str(), v["reason"].as_str()),
            (Some("dead_lettered"), Some("rejected"))
        );
    }
}
