//! Messages the mailbox actor understands.

use actix::Message;
use tokio::sync::watch;

use crate::storage::{AppendOutcome, NewRecord, StorageError};

/// Store records in this mailbox, in order, atomically (all or none).
#[derive(Message)]
#[rtype(result = "Result<AppendOutcome, StorageError>")]
pub struct Deliver {
    pub records: Vec<NewRecord>,
}

/// A receiver that changes whenever this node stores something in the mailbox (long-poll wake).
#[derive(Message)]
#[rtype(result = "watch::Receiver<u64>")]
pub struct Watch;

/// Sent by the registry when the actor has been idle: finish what is queued, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Something became receivable without a write through this actor (a redelivery): wake the
/// long-polls.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;
