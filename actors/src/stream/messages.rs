//! Messages every stream writer understands.

use actix::Message;
use tokio::sync::watch;

use crate::storage::{AppendOutcome, NewRecord, StorageError};

/// Store records in this stream, in order, atomically (all or none). Answers once storage has
/// them.
#[derive(Message, Clone)]
#[rtype(result = "Result<AppendOutcome, StorageError>")]
pub struct Append {
    pub records: Vec<NewRecord>,
}

/// A receiver that changes whenever this node stores something in the stream (long-poll wake).
#[derive(Message, Clone)]
#[rtype(result = "watch::Receiver<u64>")]
pub struct Watch;

/// Sent by the registry when the writer has been idle: finish what is queued, then stop.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Retire;
