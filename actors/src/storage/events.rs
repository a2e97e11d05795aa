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
//!
//! On a Redis Cluster, plain `PUBLISH` is copied to every node of the cluster; the bus uses
//! sharded pub/sub instead: an announcement goes with `SPUBLISH` to one of a fixed set of
//! channels (`P:events:{e0}` … `{e7}`, chosen by a stable hash of the stream name, see
//! [`Keys::event_shard_of`]) and each node `SSUBSCRIBE`s to all of them over one RESP3
//! cluster connection with a push sender. The cluster client resubscribes by itself after a
//! reconnect or a failover; announcements in between are lost, which only delays pushes (see
//! above).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::Mutex;

use super::redis::connect::{self, AccessError, RedisAccess};
use super::redis::keys::Keys;

/// Announcements a cluster listener holds before it drops new ones (they are hints).
const PUSH_BUFFER: usize = 4096;

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

/// Where announcements go: one Redis (`PUBLISH` on `P:events`) or a cluster (sharded).
#[derive(Clone)]
enum Link {
    Single {
        client: redis::Client,
        publisher: Arc<Mutex<Option<redis::aio::MultiplexedConnection>>>,
    },
    Cluster {
        urls: Vec<String>,
        access: RedisAccess,
        publisher: Arc<Mutex<Option<ClusterConnection>>>,
    },
}

/// Announces and listens. Cloning is shallow.
#[derive(Clone)]
pub struct EventBus {
    link: Link,
    keys: Keys,
    node: String,
    outbox: Arc<Outbox>,
}

/// Announcements not yet sent. While one batch is on its way, new announcements gather here
/// and go together in the next round trip (one pipeline), so a busy node sends one round trip
/// per batch rather than one per group commit, and never queues tasks behind a lock.
#[derive(Default)]
struct Outbox {
    pending: std::sync::Mutex<Pending>,
    /// A caller is sending: the others only add to `pending`.
    sending: AtomicBool,
}

/// `(stream, first, last)` in the order they were announced.
#[derive(Default)]
struct Pending {
    groups: Vec<(String, u64, u64)>,
}

impl Pending {
    /// Adds a group; one that continues the stream's latest pending group (`first` right after
    /// its `last`) extends it instead, so a listener fetches the same records either way.
    fn add(&mut self, stream: &str, first: u64, last: u64) {
        let latest = self.groups.iter_mut().rev().find(|g| g.0 == stream);
        if let Some(g) = latest.filter(|g| first > 0 && g.2 > 0 && g.2 + 1 == first) {
            g.2 = last;
            return;
        }
        self.groups.push((stream.to_owned(), first, last));
    }

    fn take(&mut self) -> Vec<(String, u64, u64)> {
        std::mem::take(&mut self.groups)
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("channel", &self.keys.events())
            .field("cluster", &matches!(self.link, Link::Cluster { .. }))
            .field("node", &self.node)
            .finish()
    }
}

/// `node \t stream \t seq \t first`: another node's announcement, or `None`.
fn parse(text: &str, me: &str) -> Option<StreamAppended> {
    let mut parts = text.splitn(4, '\t');
    let (Some(node), Some(stream), Some(seq)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if node == me {
        return None;
    }
    let seq = seq.parse().ok()?;
    let first = parts.next().and_then(|f| f.parse().ok()).unwrap_or(seq);
    Some(StreamAppended {
        stream: stream.to_owned(),
        seq,
        first,
    })
}

impl EventBus {
    /// A bus on one Redis.
    pub fn new(
        url: &str,
        access: &RedisAccess,
        key_prefix: &str,
        node: &str,
    ) -> Result<Self, AccessError> {
        Ok(Self {
            link: Link::Single {
                client: connect::client_for(url, access)?,
                publisher: Arc::new(Mutex::new(None)),
            },
            keys: Keys::new(key_prefix),
            node: node.to_owned(),
            outbox: Arc::default(),
        })
    }

    /// A bus on a Redis Cluster (sharded pub/sub over RESP3), with the same password and TLS
    /// as the engine's cluster client.
    pub fn cluster(
        urls: &[String],
        access: &RedisAccess,
        key_prefix: &str,
        node: &str,
    ) -> Result<Self, AccessError> {
        // Checks the URLs and the access now; the connections are made on first use.
        connect::cluster_builder(urls, access)?;
        Ok(Self {
            link: Link::Cluster {
                urls: urls.to_vec(),
                access: access.clone(),
                publisher: Arc::new(Mutex::new(None)),
            },
            keys: Keys::new(key_prefix),
            node: node.to_owned(),
            outbox: Arc::default(),
        })
    }

    /// Tells the other nodes that `stream` got the records `first..=seq`. Batched (see
    /// [`Outbox`]): the caller that finds nobody sending sends everything pending, round trip
    /// after round trip, until nothing is left. Best effort.
    pub async fn announce(&self, stream: &str, first: u64, seq: u64) {
        self.pending().add(stream, first, seq);
        let outbox = &self.outbox;
        if outbox.sending.swap(true, Ordering::AcqRel) {
            return;
        }
        loop {
            let batch = self.pending().take();
            if batch.is_empty() {
                outbox.sending.store(false, Ordering::Release);
                // An announcement added after the take, while `sending` was still set, found
                // a sender: unless another caller took over since, send it too.
                if self.pending().groups.is_empty() || outbox.sending.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            self.publish(batch).await;
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.outbox
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Sends announcements: `node \t stream \t seq \t first` each.
    async fn publish(&self, batch: Vec<(String, u64, u64)>) {
        let line = |(stream, first, seq): &(String, u64, u64)| {
            format!("{}\t{stream}\t{seq}\t{first}", self.node)
        };
        match &self.link {
            Link::Single { client, publisher } => {
                let made = async {
                    let c = client.get_multiplexed_async_connection().await;
                    c.map_err(|e| e.to_string())
                };
                let Some(mut conn) = connected(publisher, made).await else {
                    return;
                };
                let mut pipe = redis::pipe();
                for g in &batch {
                    pipe.cmd("PUBLISH")
                        .arg(self.keys.events())
                        .arg(line(g))
                        .ignore();
                }
                let sent: Result<(), _> = pipe.query_async(&mut conn).await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "event bus: announce failed");
                    *publisher.lock().await = None;
                }
            }
            Link::Cluster {
                urls,
                access,
                publisher,
            } => {
                let made = async {
                    let client = connect::cluster_builder(urls, access)
                        .map_err(|e| e.to_string())
                        .and_then(|b| b.build().map_err(|e| e.to_string()))?;
                    let c = client.get_async_connection().await;
                    c.map_err(|e| e.to_string())
                };
                let Some(conn) = connected(publisher, made).await else {
                    return;
                };
                // The cluster connection is multiplexed and heals itself; each announcement
                // goes to its stream's shard channel, all of them at once.
                let sends = batch.iter().map(|g| {
                    let mut conn = conn.clone();
                    let cmd = redis::cmd("SPUBLISH")
                        .arg(self.keys.event_shard_of(&g.0))
                        .arg(line(g))
                        .to_owned();
                    async move { cmd.query_async::<i64>(&mut conn).await }
                });
                for sent in futures_util::future::join_all(sends).await {
                    if let Err(e) = sent {
                        tracing::debug!(error = %e, "event bus: announce failed");
                    }
                }
            }
        }
    }

    /// Listens forever (reconnecting), handing other nodes' announcements to `sink`.
    pub async fn listen(self, sink: actix::Recipient<StreamAppended>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = match &self.link {
                Link::Single { client, .. } => self.listen_single(client, &sink).await,
                Link::Cluster { urls, access, .. } => {
                    self.listen_cluster(urls, access, &sink).await
                }
            };
            match result {
                // Connected and then lost: start over quickly.
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::debug!(error = %e, "event bus: cannot listen"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn listen_single(
        &self,
        client: &redis::Client,
        sink: &actix::Recipient<StreamAppended>,
    ) -> Result<(), String> {
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub
            .subscribe(self.keys.events())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(channel = %self.keys.events(), "event bus listening");
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            if let Some(event) = parse(&text, &self.node) {
                sink.do_send(event);
            }
        }
        tracing::warn!("event bus connection lost; reconnecting");
        Ok(())
    }

    async fn listen_cluster(
        &self,
        urls: &[String],
        access: &RedisAccess,
        sink: &actix::Recipient<StreamAppended>,
    ) -> Result<(), String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PushInfo>(PUSH_BUFFER);
        let client = connect::cluster_builder(urls, access)
            .map_err(|e| e.to_string())?
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(move |push: PushInfo| match tx.try_send(push) {
                Ok(()) => Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("mailbox_event_bus_dropped_total").increment(1);
                    Ok(())
                }
                Err(e) => Err(e),
            })
            .build()
            .map_err(|e| e.to_string())?;
        let mut conn = client
            .get_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        // One channel at a time: each lives in its own slot, usually on its own node.
        for channel in self.keys.event_shards() {
            conn.ssubscribe(&channel).await.map_err(|e| e.to_string())?;
        }
        tracing::info!(
            channels = self.keys.event_shards().len(),
            "event bus listening (sharded)"
        );
        while let Some(push) = rx.recv().await {
            if push.kind != PushKind::SMessage {
                continue;
            }
            let Some(Value::BulkString(payload)) = push.data.get(1) else {
                continue;
            };
            let Ok(text) = std::str::from_utf8(payload) else {
                continue;
            };
            if let Some(event) = parse(text, &self.node) {
                sink.do_send(event);
            }
        }
        // Never reached while the connection lives (it keeps the sender): it resubscribes by
        // itself after a reconnect.
        drop(conn);
        Ok(())
    }
}

/// The publishing connection in `slot`, made with `make` when there is none yet (or the last
/// one failed); `None` when it cannot be made (announcements are best effort).
async fn connected<C: Clone>(
    slot: &Mutex<Option<C>>,
    make: impl std::future::Future<Output = Result<C, String>>,
) -> Option<C> {
    let mut guard = slot.lock().await;
    if guard.is_none() {
        match make.await {
            Ok(c) => *guard = Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "event bus: cannot connect to announce");
                return None;
            }
        }
    }
    guard.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_announcements_join_only_groups_that_follow_each_other() {
        let mut p = Pending::default();
        p.add("alice", 1, 3);
        p.add("bob", 1, 1);
        p.add("alice", 4, 6);
        // A gap: another node stored 7..9 in between, so 10..11 is a group of its own (a
        // listener fetches exactly each range and must not push the other node's records).
        p.add("alice", 10, 11);
        p.add("bob", 0, 0);
        p.add("bob", 2, 2);
        assert_eq!(
            p.take(),
            vec![
                ("alice".to_owned(), 1, 6),
                ("bob".to_owned(), 1, 1),
                ("alice".to_owned(), 10, 11),
                ("bob".to_owned(), 0, 0),
                ("bob".to_owned(), 2, 2),
            ]
        );
        assert!(p.take().is_empty());
        p.add("alice", 12, 12);
        assert_eq!(p.take(), vec![("alice".to_owned(), 12, 12)]);
    }
}
