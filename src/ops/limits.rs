//! Send admission: the per-agent rate (`[limits]`) and daily quotas (`[quotas]`). Both are
//! counters in storage: on Redis one Lua script each, shared by every node, so three nodes
//! behind a load balancer give an agent its rate once, not three times; the memory engine
//! counts in process.
//!
//! A storage failure while counting admits the send: the send itself then meets the same
//! storage and answers for it, and a limiter must not turn a blip into refusals.

use chrono::{Datelike, Timelike, Utc};
use mailbox_actors::model::{Admission, QuotaOutcome, QuotaSpec, QuotaTake, RateSpec};

use super::leases::Leases;
use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

impl Ops {
    /// Counts `messages` sends of `bytes` payload bytes against the agent's rate and quota.
    pub(crate) async fn admit(
        &self,
        agent: &Agent,
        messages: u32,
        bytes: impl FnOnce() -> u64,
    ) -> Result<(), ApiError> {
        let rate = RateSpec {
            per_second: f64::from(self.limits.rate_per_second),
            burst: f64::from(self.limits.rate_burst),
        };
        match self.take_rate(agent, messages, rate).await {
            Ok(Admission::Allowed) => {}
            Ok(Admission::Refused { retry_after }) => {
                metrics::counter!("mailbox_rate_limited_total").increment(1);
                return Err(ApiError::RateLimited {
                    message: format!(
                        "`{}` is over its send rate ({}/s, burst {})",
                        agent.id, self.limits.rate_per_second, self.limits.rate_burst
                    ),
                    retry_after,
                });
            }
            Err(e) => tracing::debug!(agent = %agent.id, error = %e, "rate not counted"),
        }
        let caps = self.quota_caps(agent);
        if caps == QuotaSpec::default() {
            return Ok(());
        }
        let now = Utc::now();
        let day = now.year() as u32 * 10_000 + now.month() * 100 + now.day();
        let day_left = 86_400 - u64::from(now.num_seconds_from_midnight());
        let take = QuotaTake {
            messages: u64::from(messages),
            bytes: if caps.bytes_per_day > 0 { bytes() } else { 0 },
            caps,
            day,
            day_left,
        };
        let (what, cap) = match self.admin.take_quota(&agent.id, take).await {
            Ok(QuotaOutcome::Allowed) => return Ok(()),
            Ok(QuotaOutcome::OverMessages) => ("messages", caps.messages_per_day),
            Ok(QuotaOutcome::OverBytes) => ("payload bytes", caps.bytes_per_day),
            Err(e) => {
                tracing::debug!(agent = %agent.id, error = %e, "quota not counted");
                return Ok(());
            }
        };
        metrics::counter!("mailbox_rate_limited_total").increment(1);
        Err(ApiError::RateLimited {
            message: format!(
                "`{}` is over its daily quota of {cap} {what}; it resets at 00:00 UTC",
                agent.id
            ),
            retry_after: day_left,
        })
    }

    /// Takes `messages` tokens: from this node's lease when it holds them, else a new lease
    /// from the shared counter (one round trip for many sends), else exactly what is needed.
    async fn take_rate(
        &self,
        agent: &Agent,
        messages: u32,
        rate: RateSpec,
    ) -> Result<Admission, mailbox_actors::Error> {
        if self.leases.spend(&agent.id, messages) {
            return Ok(Admission::Allowed);
        }
        let lease = Leases::size(self.limits.rate_burst);
        if lease > messages {
            if let Admission::Allowed = self.admin.take_rate(&agent.id, lease, rate).await? {
                self.leases.keep(&agent.id, lease - messages);
                return Ok(Admission::Allowed);
            }
        }
        self.admin.take_rate(&agent.id, messages, rate).await
    }

    /// The agent's daily caps: the most generous among its roles that have caps, else the
    /// default (`0` = no cap, the most generous of all).
    fn quota_caps(&self, agent: &Agent) -> QuotaSpec {
        let by_role: Vec<_> = agent
            .roles
            .iter()
            .filter_map(|r| self.quotas.roles.get(r))
            .collect();
        if by_role.is_empty() {
            return QuotaSpec {
                messages_per_day: self.quotas.messages_per_day,
                bytes_per_day: self.quotas.bytes_per_day,
            };
        }
        let most = |f: fn(&crate::config::QuotaCaps) -> u64| {
            if by_role.iter().any(|c| f(c) == 0) {
                0
            } else {
                by_role.iter().map(|c| f(c)).max().unwrap_or(0)
            }
        };
        QuotaSpec {
            messages_per_day: most(|c| c.messages_per_day),
            bytes_per_day: most(|c| c.bytes_per_day),
        }
    }
}
