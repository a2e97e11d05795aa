//! The dead-letter queue: messages that failed for good (`max_attempts`, `rejected`, `expired`,
//! `evicted`) with why and when. Admins list, inspect, requeue and purge them; dead letters
//! older than `dead_letter.retention_seconds` are removed automatically. The queue lives in
//! storage; the actor runs each request as its own future and owns the retention timer.

pub mod actor;
pub mod messages;

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

pub use actor::DeadLetterActor;
pub use messages::Requeued;

use crate::error::Error;
use crate::registry::RegistryHandle;
use crate::storage::{DeadLetter, DeadPage, DeadQuery, DeadReason};

/// Retention of dead letters (config `[dead_letter]`).
#[derive(Debug, Clone)]
pub struct DeadLetterSettings {
    /// Dead letters older than this are removed.
    pub retention: Duration,
    /// How often old dead letters are looked for.
    pub cleanup_every: Duration,
}

impl DeadLetterSettings {
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            cleanup_every: (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

/// Cloneable, typed access to the dead-letter actor.
#[derive(Clone)]
pub struct DeadLetterHandle {
    addr: Addr<DeadLetterActor>,
}

impl DeadLetterHandle {
    /// Starts the dead-letter actor under a supervisor on the current arbiter.
    pub fn start(registry: RegistryHandle, settings: DeadLetterSettings) -> Self {
        let addr = Supervisor::start(move |_| DeadLetterActor::new(registry, settings));
        Self { addr }
    }

    pub async fn list(&self, query: DeadQuery) -> Result<DeadPage, Error> {
        self.addr.send(messages::List { query }).await?
    }

    /// One dead letter; `NotFound` when there is none with this id.
    pub async fn get(&self, id: &str) -> Result<DeadLetter, Error> {
        self.addr.send(messages::Get { id: id.to_owned() }).await?
    }

    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        self.addr
            .send(messages::Delete { id: id.to_owned() })
            .await?
    }

    /// Puts a fresh copy (new id, new seq, attempts reset) back into the original mailbox and
    /// removes the dead letter.
    pub async fn requeue(&self, id: &str) -> Result<Requeued, Error> {
        self.addr
            .send(messages::Requeue { id: id.to_owned() })
            .await?
    }

    /// Requeues every dead letter matching the filter; answers how many.
    pub async fn requeue_matching(
        &self,
        mailbox: Option<String>,
        reason: Option<DeadReason>,
    ) -> Result<u64, Error> {
        self.addr
            .send(messages::RequeueMatching { mailbox, reason })
            .await?
    }

    /// Deletes dead letters that failed before `before`; answers how many.
    pub async fn purge(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.addr.send(messages::Purge { before }).await?
    }

    pub async fn count(&self) -> Result<u64, Error> {
        self.addr.send(messages::Count).await?
    }
}
