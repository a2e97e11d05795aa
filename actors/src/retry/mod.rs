//! The retry scheduler: makes unacked and nacked messages receivable again when their backoff
//! has passed, and dead-letters what timed out for the last time or expired. Its schedule lives
//! in storage (Redis: the `P:retry` zset; memory engine: a `BTreeSet`), so a broker killed in
//! the middle of a backoff redelivers after it starts again, with the right attempt number.
//! Several nodes may run one each: every step re-checks the mailbox's state atomically.

pub mod actor;
pub mod messages;

use std::time::Duration;

use actix::prelude::*;

pub use actor::RetryActor;

use crate::error::Error;
use crate::registry::RegistryHandle;
use crate::storage::DueReport;

/// How the scheduler polls.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Time between two looks at the schedule.
    pub poll_every: Duration,
    /// Most entries one look works through (another look follows at once when it was full).
    pub batch: usize,
    /// Time between two rebuilds of the schedule from the mailboxes' state (also done at start):
    /// repairs an entry lost to a crash between a mailbox's update and the schedule's.
    pub reconcile_every: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_millis(200),
            batch: 256,
            reconcile_every: Duration::from_secs(300),
        }
    }
}

/// Cloneable access to the retry scheduler.
#[derive(Clone)]
pub struct RetryHandle {
    addr: Addr<RetryActor>,
}

impl RetryHandle {
    /// Starts the scheduler under a supervisor on the current arbiter.
    pub fn start(registry: RegistryHandle, settings: RetrySettings) -> Self {
        let addr = Supervisor::start(move |_| RetryActor::new(registry, settings));
        Self { addr }
    }

    /// Works through what is due now (normally the scheduler's own timer does this).
    pub async fn run_due(&self) -> Result<DueReport, Error> {
        self.addr.send(messages::RunDue).await?
    }
}
