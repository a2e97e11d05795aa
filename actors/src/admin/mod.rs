//! What admins run, over storage: agents with API keys, the audit trail (with its security
//! alerts), totals, and the shared rate and quota counters. Faces reach these through
//! [`AdminStore`] and [`AuditLog`], never through the storage handle itself.

mod audit;

pub use audit::{AlertSettings, AuditLog};

use crate::error::Error;
use crate::model::{Admission, AgentRecord, QuotaOutcome, QuotaTake, RateSpec, StoreCounts};
use crate::registry::RegistryHandle;
use crate::storage::StorageHandle;

/// Typed admin operations. Cloning is shallow (a storage handle).
#[derive(Clone)]
pub struct AdminStore {
    storage: StorageHandle,
}

impl AdminStore {
    pub fn new(registry: &RegistryHandle) -> Self {
        Self {
            storage: registry.storage().clone(),
        }
    }

    /// Stores a new agent; `conflict` if the id is taken.
    pub async fn create_agent(&self, agent: AgentRecord) -> Result<(), Error> {
        let id = agent.id.clone();
        if self.storage.agent_create(agent).await? {
            Ok(())
        } else {
            Err(Error::Conflict(format!("agent `{id}` already exists")))
        }
    }

    pub async fn agent(&self, id: &str) -> Result<Option<AgentRecord>, Error> {
        Ok(self.storage.agent_get(id).await?)
    }

    pub async fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        Ok(self.storage.agent_list().await?)
    }

    /// Removes an agent; `not_found` if there was none.
    pub async fn delete_agent(&self, id: &str) -> Result<(), Error> {
        if self.storage.agent_delete(id).await? {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: format!("agent `{id}`"),
            })
        }
    }

    /// Takes `n` from `key`'s rate (shared by every node on one Redis).
    pub async fn take_rate(&self, key: &str, n: u32, rate: RateSpec) -> Result<Admission, Error> {
        Ok(self.storage.rate_take(key, n, rate).await?)
    }

    /// Counts a send against `agent`'s quota of the day, unless it would pass a cap.
    pub async fn take_quota(&self, agent: &str, take: QuotaTake) -> Result<QuotaOutcome, Error> {
        Ok(self.storage.quota_take(agent, take).await?)
    }

    pub async fn counts(&self) -> Result<StoreCounts, Error> {
        Ok(self.storage.counts().await?)
    }
}
