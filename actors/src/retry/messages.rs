//! Messages the retry scheduler understands.

use actix::Message;

use crate::error::Error;
use crate::storage::DueReport;

/// Work through the schedule entries that are due (one bounded batch).
#[derive(Message)]
#[rtype(result = "Result<DueReport, Error>")]
pub struct RunDue;

/// Rebuild the schedule from the mailboxes' delivery state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile;
