//! The send path: a validated, permitted request becomes stored copies. A direct message goes to
//! its mailbox's writer; a topic publish to the topic's writer, then one copy per mailbox with a
//! matching durable subscription; a broadcast one copy per known agent; a batch all or none.
//! Every copy into a mailbox goes through that mailbox's writer ([`crate::stream`]).

pub mod batch;
mod fanout;
pub mod intent;

use chrono::Utc;

pub use batch::{BatchError, BatchItem, MAX_BATCH};
pub use fanout::FANOUT_IN_FLIGHT;

use crate::error::Error;
use crate::model::{self, Address, SendRequest};
use crate::registry::RegistryHandle;
use crate::storage::{Appended, NewRecord};

/// What a send answers (`201 {id, status, recipients}`; `202` with status `spooled` when the
/// node's spool kept it while storage was down, and then without `seq`). `recipients` counts the stored
/// copies: 1 for a direct message; for a topic, 1 for its history plus one per mailbox with a
/// matching durable subscription; for a broadcast, one per known agent. Live WebSocket pushes
/// are not counted (they are not stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SendReceipt {
    pub id: String,
    pub status: &'static str,
    pub recipients: u64,
    /// The stored copy's position, when there is one stream (a topic: its history's seq).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// Mailbox copies of a fan-out that could not be stored (e.g. a full mailbox); logged and
    /// counted in `mailbox_fanout_failures_total`. Left out when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Sends messages. Cloning is shallow.
#[derive(Clone)]
pub struct Dispatcher {
    registry: RegistryHandle,
}

impl Dispatcher {
    pub fn new(registry: RegistryHandle) -> Self {
        Self { registry }
    }

    /// Stores a message sent by `from`. The request must already be validated (giving `to`)
    /// and permitted. `idempotency_key` makes a retried send answer the first receipt.
    pub async fn send(
        &self,
        from: &str,
        req: SendRequest,
        to: &Address,
        idempotency_key: Option<&str>,
    ) -> Result<SendReceipt, Error> {
        let name = match to {
            Address::Mailbox(name) => name,
            Address::Topic(topic) => return self.publish(from, req, topic, idempotency_key).await,
            Address::Broadcast => return self.broadcast(from, req, idempotency_key).await,
        };
        let mut env = req.into_envelope(from, model::new_id(), Utc::now());
        env.mailbox = Some(name.clone());
        let record = NewRecord::of(&env, idempotency_key.map(|k| format!("{from}:{k}")))?;
        let outcome = self.registry.mailbox(name).deliver(vec![record]).await?;
        let (id, seq) = match outcome.results.first() {
            Some(Appended::Stored { seq }) => (env.id.clone(), Some(*seq)),
            Some(Appended::Duplicate { id, seq }) => (id.clone(), Some(*seq)),
            // Kept in the spool (storage down): stored in order when it is back.
            Some(Appended::Spooled { id }) => (id.clone(), None),
            None => return Err(Error::Internal("append answered no result".into())),
        };
        if id == env.id {
            metrics::counter!("mailbox_messages_accepted_total", "route" => "direct").increment(1);
        }
        let status = if seq.is_some() { "stored" } else { "spooled" };
        tracing::debug!(message_id = %id, correlation_id = ?env.correlation_id, mailbox = %name, ?seq, status);
        Ok(SendReceipt {
            id,
            status,
            recipients: 1,
            seq: seq.map(|s| s.to_string()),
            failed: 0,
        })
    }
}
