//! Cross-node fan-out over Redis pub/sub. After a node stores a group of messages in a stream it
//! announces `(stream, last seq, first seq)` on `P:events`; every other node's listener hands the
//! announcement to its registry: for a mailbox, its live writer (if any) wakes long-polls and
//! pushes the new messages to its WebSocket sessions; for a topic (`topic:<name>`), the router
//! fetches exactly that group from the history and pushes it to matching live subscriptions.
//! Mailbox announcements are hints: sessions check seqs and catch up from storage on any gap,
//! so a lost announcement delays a push, it never loses a message.
//!
//! The listener uses its own dedicated connection (never a pooled one: deadpool recycles
//! connections without a push sender) and reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;

/// A stream got new messages on another node.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StreamAppended {
    pub stream: String,
    /// The last seq of the group.
    pub seq: u64,
    /// The first seq of the group (older nodes announce only the last: then `seq`).
    pub first: u64,
}

/// Announces and listens. Cloning is shallow.
#[derive(Clone)]
pub struct EventBus {
    client: redis::Client,
    channel: String,
    node: String,
    publisher: Arc<Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("channel", &self.channel)
            .field("node", &self.node)
            .finish()
    }
}

impl EventBus {
    pub fn new(
        url: &str,
        access: &super::redis::connect::RedisAccess,
        key_prefix: &str,
        node: &str,
    ) -> Result<Self, super::redis::connect::AccessError> {
        Ok(Self {
            client: super::redis::connect::client_for(url, access)?,
            channel: format!("{key_prefix}:events"),
            node: node.to_owned(),
            publisher: Arc::new(Mutex::new(None)),
        })
    }

    /// Tells other nodes that `stream` got messages `first..=seq`. Best effort.
    pub async fn announce(&self, stream: &str, first: u64, seq: u64) {
        let mut guard = self.publisher.lock().await;
        if guard.is_none() {
            match self.client.get_multiplexed_async_connection().await {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "event bus: cannot connect to announce");
                    return;
                }
            }
        }
        let Some(conn) = guard.as_mut() else { return };
        let msg = format!("{}\t{stream}\t{seq}\t{first}", self.node);
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(msg)
            .query_async(conn)
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "event bus: announce failed");
            *guard = None;
        }
    }

    /// Listens forever (reconnecting), handing other nodes' announcements to `sink`.
    pub async fn listen(self, sink: actix::Recipient<StreamAppended>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&self.channel).await {
                    Ok(()) => {
                        tracing::info!(channel = %self.channel, "event bus listening");
                        backoff = Duration::from_millis(100);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(text) = msg.get_payload::<String>() else {
                                continue;
                            };
                            let mut parts = text.splitn(4, '\t');
                            let (Some(node), Some(stream), Some(seq)) =
                                (parts.next(), parts.next(), parts.next())
                            else {
                                continue;
                            };
                            if node == self.node {
                                continue;
                            }
                            let Ok(seq) = seq.parse() else { continue };
                            let first = parts.next().and_then(|f| f.parse().ok()).unwrap_or(seq);
                            sink.do_send(StreamAppended {
                                stream: stream.to_owned(),
                                seq,
                                first,
                            });
                        }
                        tracing::warn!("event bus connection lost; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "event bus: subscribe failed"),
                },
                Err(e) => tracing::debug!(error = %e, "event bus: cannot connect"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
