//! Sending: one message, or a batch stored all-or-nothing.

use std::time::Instant;

use mailbox_actors::dispatch::{BatchItem, SendReceipt, MAX_BATCH};
use mailbox_actors::model::{Address, SendRequest};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// Room for the envelope's other fields around a maximal payload: a face reading a send body
/// caps it at `max_message_bytes + BODY_OVERHEAD`.
pub const BODY_OVERHEAD: usize = 64 * 1024;

/// One send.
#[derive(Debug, Clone)]
pub struct SendArgs {
    pub message: SendRequest,
    /// Makes a retried send answer the first receipt. A face's own key (the REST
    /// `Idempotency-Key` header, the WebSocket frame's field) wins over the message's.
    pub idempotency_key: Option<String>,
}

/// A batch: each item is a message object, kept raw and parsed here so a bad item is refused
/// with its `details.index` and payloads stay byte-exact.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchArgs {
    #[schema(value_type = Vec<SendRequest>)]
    pub messages: Vec<Box<RawValue>>,
}

/// `{results}`: one receipt per item, in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchReceipt {
    pub results: Vec<SendReceipt>,
}

/// The permission object a send to `to` needs `send` on.
fn send_object(to: &Address) -> String {
    match to {
        Address::Broadcast => "broadcast".to_owned(),
        other => other.permission_object(),
    }
}

/// What a send counts against a byte quota: the payload as JSON text (a blob reference counts
/// its id only; blobs have their own limit).
fn payload_bytes(req: &SendRequest) -> u64 {
    req.payload.as_ref().map_or(0, |p| p.get().len() as u64)
}

impl Ops {
    /// Validates, checks permission and the caller's rate, and stores one message.
    pub async fn send(&self, agent: &Agent, args: SendArgs) -> Result<SendReceipt, ApiError> {
        let started = Instant::now();
        let SendArgs {
            message: mut req,
            idempotency_key,
        } = args;
        let to = req.validate(&self.message_limits)?;
        self.require(agent, &send_object(&to), "send")?;
        self.retain_blob(&req).await?;
        self.admit(agent, 1, || payload_bytes(&req)).await?;
        let key = idempotency_key.or_else(|| req.idempotency_key.take());
        let receipt = self
            .dispatch
            .send(&agent.id, req, &to, key.as_deref())
            .await?;
        self.meter.add(1);
        metrics::histogram!("mailbox_send_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(receipt)
    }

    /// Parses, validates and permission-checks every item before anything is stored (the first
    /// bad item is answered with its `details.index`), then stores them all or none.
    pub async fn send_batch(
        &self,
        agent: &Agent,
        args: BatchArgs,
    ) -> Result<BatchReceipt, ApiError> {
        let started = Instant::now();
        let items = self.check_batch(agent, args.messages)?;
        for (i, item) in items.iter().enumerate() {
            self.retain_blob(&item.request)
                .await
                .map_err(|e| e.at_index(i))?;
        }
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.admit(agent, n, || {
            items.iter().map(|i| payload_bytes(&i.request)).sum()
        })
        .await?;
        let results = self
            .dispatch
            .send_batch(&agent.id, items)
            .await
            .map_err(|e| ApiError::from(e.error).at_index(e.index))?;
        self.meter.add(results.len() as u64);
        metrics::histogram!("mailbox_send_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(BatchReceipt { results })
    }

    fn check_batch(
        &self,
        agent: &Agent,
        items: Vec<Box<RawValue>>,
    ) -> Result<Vec<BatchItem>, ApiError> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(ApiError::validation(
                "messages",
                format!("`messages` must hold 1-{MAX_BATCH} messages"),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let mut req: SendRequest =
                super::parse::from_slice(item.get().as_bytes()).map_err(|e| e.at_index(i))?;
            let to = req
                .validate(&self.message_limits)
                .map_err(|e| ApiError::from(e).at_index(i))?;
            self.require(agent, &send_object(&to), "send")
                .map_err(|e| e.at_index(i))?;
            let key = req.idempotency_key.take();
            out.push(BatchItem {
                request: req,
                to,
                idempotency_key: key,
            });
        }
        Ok(out)
    }
}
