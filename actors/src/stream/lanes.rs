//! Commit lanes: the group commits of many mailbox writers share storage round trips.
//!
//! Each mailbox writer still decides what it appends and in which order (one group in flight
//! per mailbox); the lanes only carry those groups to storage. A group that arrives while a lane
//! is free goes at once, alone; while all [`LANES`] are busy, groups of other mailboxes queue up
//! and the next free lane takes them together (at most [`MAX_PER_TRIP`] mailboxes) as one
//! pipelined `append_many`. So a broadcast to 10 000 agents, or 64 clients sending to 64
//! mailboxes, costs a few round trips rather than one per mailbox, and nothing waits for a timer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::storage::{AppendOutcome, NewRecord, StorageError, StorageHandle};

/// Pipelines to storage in flight at once.
pub const LANES: usize = 4;
/// Most mailboxes one pipeline carries.
pub const MAX_PER_TRIP: usize = 256;
/// Groups waiting for a lane before writers wait to hand theirs over (backpressure).
const QUEUE: usize = 16 * 1024;

type Reply = oneshot::Sender<Result<AppendOutcome, StorageError>>;

struct Job {
    mailbox: String,
    records: Vec<NewRecord>,
    reply: Reply,
}

/// Hands mailbox group commits to storage. Cloning is shallow.
#[derive(Clone)]
pub struct CommitLanes {
    tx: mpsc::Sender<Job>,
}

impl CommitLanes {
    /// Starts the lanes on the current arbiter. `default_max_len` is the length a mailbox
    /// without its own `max_len` may reach.
    pub fn start(storage: StorageHandle, default_max_len: u64) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        actix::spawn(run(rx, storage, default_max_len));
        Self { tx }
    }

    /// Appends `records` to `mailbox` atomically, in order (and makes the agent known).
    pub async fn append(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
    ) -> Result<AppendOutcome, StorageError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            mailbox: mailbox.to_owned(),
            records,
            reply,
        };
        if self.tx.send(job).await.is_err() {
            return Err(StorageError::Unavailable("commit lanes stopped".into()));
        }
        rx.await.unwrap_or_else(|_| {
            Err(StorageError::Unavailable(
                "commit lane dropped a write".into(),
            ))
        })
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, storage: StorageHandle, default_max_len: u64) {
    let lanes = Arc::new(Semaphore::new(LANES));
    while let Some(first) = rx.recv().await {
        // Wait for a free lane first: groups that arrive meanwhile ride along.
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_PER_TRIP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let storage = storage.clone();
        actix::spawn(async move {
            let (items, replies): (Vec<_>, Vec<_>) = jobs
                .into_iter()
                .map(|j| ((j.mailbox, j.records), j.reply))
                .unzip();
            match storage.append_many(items, default_max_len).await {
                Ok(results) => {
                    for (reply, r) in replies.into_iter().zip(results) {
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StorageError::Unavailable(msg.clone())));
                    }
                }
            }
            drop(lane);
        });
    }
}
