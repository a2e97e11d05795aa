//! Messages the dead-letter actor understands.

use actix::Message;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Error;
use crate::storage::{DeadLetter, DeadPage, DeadQuery, DeadReason};

/// List dead letters (filters and an id cursor).
#[derive(Message)]
#[rtype(result = "Result<DeadPage, Error>")]
pub struct List {
    pub query: DeadQuery,
}

/// One dead letter.
#[derive(Message)]
#[rtype(result = "Result<DeadLetter, Error>")]
pub struct Get {
    pub id: String,
}

/// Delete one dead letter.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Delete {
    pub id: String,
}

/// Put a fresh copy of a dead letter back into its mailbox.
#[derive(Message)]
#[rtype(result = "Result<Requeued, Error>")]
pub struct Requeue {
    pub id: String,
}

/// Requeue every dead letter that matches.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub struct RequeueMatching {
    pub mailbox: Option<String>,
    pub reason: Option<DeadReason>,
}

/// Delete dead letters that failed before a time.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub struct Purge {
    pub before: DateTime<Utc>,
}

/// How many dead letters there are.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub struct Count;

/// Remove dead letters past retention (the actor's timer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cleanup;

/// Where a requeued dead letter went: the fresh copy's id and seq.
#[derive(Debug, Clone, Serialize)]
pub struct Requeued {
    pub dead_letter: String,
    pub id: String,
    pub mailbox: String,
    pub seq: String,
}
