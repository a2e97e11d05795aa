//! The one writer of a stream. Every mailbox and every topic history active on this node has
//! exactly one [`StreamWriter`]: it orders the stream's writes, group-commits them, tells the
//! stream's listeners what was stored, and retires when idle. Mailbox and topic are two
//! configurations of it ([`StreamKind`]): what one atomic append is, and what to do with each
//! stored record (push to live sessions and announce to other nodes vs. route to matching
//! pattern subscriptions).
//!
//! Direct sends, fan-out copies, broadcast copies and dead-letter requeues into a mailbox all go
//! through that mailbox's writer, so the records it pushes are the records it stored, in seq
//! order, and nothing writes the stream behind its back on this node.

mod lanes;
pub mod messages;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

pub use lanes::CommitLanes;
pub use messages::{Append, Retire, Watch};
pub use writer::StreamWriter;

use crate::error::Error;
use crate::storage::{AppendOutcome, NewRecord, StorageError, StorageHandle};

/// What makes a mailbox writer differ from a topic writer.
pub trait StreamKind: Unpin + Sized + 'static {
    /// `mailbox` or `topic`: logs and the `mailbox_actors{kind}` gauge.
    const KIND: &'static str;

    /// The settings one group commit needs, moved into its future.
    type Appender: Appender;

    fn appender(&self) -> Self::Appender;

    /// A record this writer just stored at `seq` (called in seq order).
    fn stored(&mut self, name: &str, seq: u64, record: &NewRecord);

    /// A group commit stored records `first..=last` (seqs of this stream).
    fn committed(&mut self, _name: &str, _first: u64, _last: u64) {}

    /// Live listeners (WebSocket subscriptions) held: a writer with any is never idle.
    fn listeners(&self) -> usize {
        0
    }
}

/// One atomic append of a stream.
pub trait Appender: 'static {
    /// Stores `records` atomically, in order. `known`: an earlier append of this writer
    /// succeeded, so the stream exists.
    fn append(
        &self,
        storage: &StorageHandle,
        name: &str,
        records: Vec<NewRecord>,
        known: bool,
    ) -> impl Future<Output = Result<AppendOutcome, StorageError>>;
}

/// What the registry may read without a message round trip (idle sweeps), shared with the
/// writer.
pub struct Liveness {
    last_active_ms: AtomicI64,
    /// A write is queued or in flight.
    writing: AtomicBool,
    /// The last seq this node stored (or heard of); long-polls hold receivers of it.
    seq: watch::Sender<u64>,
    /// Live listeners of the stream.
    listeners: AtomicUsize,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            last_active_ms: AtomicI64::new(now_ms()),
            writing: AtomicBool::new(false),
            seq: watch::channel(0).0,
            listeners: AtomicUsize::new(0),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Liveness {
    /// True when nothing is queued, nobody waits on the stream and it saw no use for `idle_ms`.
    pub fn is_idle(&self, idle_ms: i64) -> bool {
        !self.writing.load(Ordering::Relaxed)
            && self.seq.receiver_count() == 0
            && self.listeners.load(Ordering::Relaxed) == 0
            && now_ms() - self.last_active_ms.load(Ordering::Relaxed) >= idle_ms
    }

    /// Raises the last known seq to `seq`, waking watchers if it moved.
    pub(crate) fn advance(&self, seq: u64) {
        self.seq.send_if_modified(|s| {
            let changed = seq > *s;
            *s = (*s).max(seq);
            changed
        });
    }

    /// Wakes every watcher without changing the seq (something became receivable).
    pub(crate) fn wake(&self) {
        self.seq.send_modify(|_| {});
    }

    pub(crate) fn last_seq(&self) -> u64 {
        *self.seq.borrow()
    }

    pub(crate) fn set_listeners(&self, n: usize) {
        self.listeners.store(n, Ordering::Relaxed);
    }

    fn touch(&self, busy: bool) {
        self.writing.store(busy, Ordering::Relaxed);
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Sends `msg` to the writer `lookup` finds; a writer retired by the idle sweep between lookup
/// and send answers `Closed`, so it is looked up again (a fresh one is started) and retried once.
pub(crate) async fn ask_writer<K, M, F, Fut>(
    name: &str,
    lookup: F,
    msg: M,
) -> Result<M::Result, Error>
where
    K: StreamKind,
    StreamWriter<K>: Handler<M>,
    <StreamWriter<K> as Actor>::Context: actix::dev::ToEnvelope<StreamWriter<K>, M>,
    M: Message + Clone + Send + 'static,
    M::Result: Send,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Addr<StreamWriter<K>>, Error>>,
{
    for _ in 0..2 {
        match lookup().await?.send(msg.clone()).await {
            Ok(r) => return Ok(r),
            Err(MailboxError::Closed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Unavailable(format!(
        "{} `{name}` writer keeps stopping",
        K::KIND
    )))
}

/// Runs `look` and, while it finds nothing, waits for the stream to change (`watch` gives a
/// receiver of its seq) until `wait` has passed. The receiver is taken before the first look, so
/// a message stored in between still wakes the wait. Long-polls of browse and history use it.
pub(crate) async fn look_or_wait<T, L, LF, W, WF>(
    wait: Duration,
    recheck: Option<Duration>,
    watch: W,
    mut look: L,
) -> Result<T, Error>
where
    T: Found,
    L: FnMut() -> LF,
    LF: Future<Output = Result<T, Error>>,
    W: Fn() -> WF,
    WF: Future<Output = Result<watch::Receiver<u64>, Error>>,
{
    if wait.is_zero() {
        return look().await;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = watch().await?;
    loop {
        let got = look().await?;
        let now = tokio::time::Instant::now();
        if got.found() || now >= deadline {
            return Ok(got);
        }
        let until = recheck.map_or(deadline, |r| deadline.min(now + r));
        match tokio::time::timeout_at(until, rx.changed()).await {
            Err(_) | Ok(Ok(())) => {}
            // The writer retired: watch the new one.
            Ok(Err(_)) => rx = watch().await?,
        }
    }
}

/// What a long-poll looks for: something to answer with.
pub(crate) trait Found {
    fn found(&self) -> bool;
}

impl<T> Found for Vec<T> {
    fn found(&self) -> bool {
        !self.is_empty()
    }
}

impl Found for crate::mailbox::Page {
    fn found(&self) -> bool {
        !self.messages.is_empty()
    }
}
