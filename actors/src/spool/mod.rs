//! The spool: sends kept on the node's disk while storage cannot take them, and replayed into
//! storage in order when it can (SPEC section 4, "Accepted = durable").
//!
//! A mailbox writer offers each group commit to the spool first: while the spool holds anything,
//! the group goes there too (so a mailbox's order holds: nothing overtakes what waits on disk);
//! otherwise it goes to storage, and if storage answers `Unavailable` (the circuit is open, a
//! timeout, a connection dropped mid-call: the outcome may be unknown) the group is spooled.
//! Each record keeps the message id fixed before it was spooled, and storage answers an id it
//! already holds as a duplicate, so a write that did land, or a replay repeated after a crash,
//! is never stored twice.
//!
//! The log ([`log`]) is append-only, framed and checksummed; an append answers only after its
//! fsync. The [`replay`] task drains it in order through pipelined `append_many` calls, records
//! its progress in a cursor file (fsynced), and truncates the log once it is empty. A kill -9 at
//! any point leaves a log that replays correctly on the next start: a torn last frame fails its
//! checksum and is dropped (it was never acknowledged); frames replayed but not yet recorded in
//! the cursor replay again as duplicates.
//!
//! While a record waits here, a retry with its idempotency key answers the same id (the spool
//! keeps the keys of what it holds); once replayed, storage's own idempotency keys take over.

pub mod log;
pub mod replay;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::storage::{AppendOutcome, Appended, NewRecord, StorageError};
use log::Entry;

/// Config `[spool]`.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Where the log and its cursor live (created if missing).
    pub dir: PathBuf,
    /// Most bytes the log may hold waiting for replay; past it sends answer 503.
    pub max_bytes: u64,
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool `{path}`: {source}")]
pub struct SpoolError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// What an offer to the spool did.
pub enum Offer {
    /// Spooled (answered with each record's final id).
    Spooled(AppendOutcome),
    /// The spool is empty and the offer was not forced: store the records directly.
    Declined(Vec<NewRecord>),
}

/// The node's spool. Cloning is shallow.
#[derive(Clone)]
pub struct Spool(Arc<Inner>);

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("pending", &self.pending())
            .finish()
    }
}

struct Inner {
    files: Mutex<Files>,
    /// Records spooled and not yet replayed; 0 lets sends skip the spool without a lock.
    pending: AtomicU64,
    max_bytes: u64,
    /// Wakes the replayer when something is spooled.
    wake: Notify,
    /// The pending count, for waiters (graceful shutdown waits for 0).
    count: watch::Sender<u64>,
}

struct Files {
    log: File,
    cursor: File,
    /// End of the valid log (appends go here).
    end: u64,
    /// How far the log has been replayed into storage.
    done: u64,
    /// Idempotency key → message id of the records waiting here.
    keys: HashMap<String, String>,
    /// `(end offset of its frame, key)` in log order, to forget keys once replayed.
    key_order: VecDeque<(u64, String)>,
    /// A failed write could not be undone: refuse further appends rather than write after a
    /// torn frame (which would hide them from replay).
    broken: bool,
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("spool: {e}"))
}

impl Spool {
    /// Opens (or creates) the spool in `settings.dir`: checks the log from its cursor, drops a
    /// torn tail, and counts what waits for replay. Blocking; call once at start.
    pub fn open(settings: &SpoolSettings) -> Result<Self, SpoolError> {
        let err = |path: &PathBuf| {
            let path = path.display().to_string();
            move |source| SpoolError { path, source }
        };
        std::fs::create_dir_all(&settings.dir).map_err(err(&settings.dir))?;
        let log_path = settings.dir.join("spool.log");
        let cursor_path = settings.dir.join("spool.cursor");
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(err(&log_path))?;
        let mut cursor = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&cursor_path)
            .map_err(err(&cursor_path))?;
        let file_len = log.metadata().map_err(err(&log_path))?.len();
        let mut done = log::read_cursor(&mut cursor);
        if done > file_len {
            done = 0;
        }
        let (mut keys, mut key_order, mut pending) = (HashMap::new(), VecDeque::new(), 0u64);
        let mut at = done;
        loop {
            let scan = log::scan(&mut log, at, 4096, 16 << 20).map_err(err(&log_path))?;
            for (e, end) in &scan.entries {
                pending += 1;
                if let Some(k) = &e.record.idempotency {
                    keys.insert(k.clone(), e.record.id.clone());
                    key_order.push_back((*end, k.clone()));
                }
            }
            let more = scan.entries.len() == 4096 && scan.end > at;
            at = scan.end;
            if !more {
                break;
            }
        }
        if at < file_len {
            tracing::warn!(
                kept = at,
                dropped = file_len - at,
                "spool: dropping a torn last record (never acknowledged)"
            );
            log.set_len(at).map_err(err(&log_path))?;
            log.sync_all().map_err(err(&log_path))?;
        }
        if pending > 0 {
            tracing::warn!(
                records = pending,
                "spool: records from before the restart wait for replay"
            );
        }
        metrics::gauge!("mailbox_spool_messages").set(pending as f64);
        let files = Files {
            log,
            cursor,
            end: at,
            done,
            keys,
            key_order,
            broken: false,
        };
        Ok(Self(Arc::new(Inner {
            files: Mutex::new(files),
            pending: AtomicU64::new(pending),
            max_bytes: settings.max_bytes,
            wake: Notify::new(),
            count: watch::channel(pending).0,
        })))
    }

    /// Records waiting for replay.
    pub fn pending(&self) -> u64 {
        self.0.pending.load(Ordering::Acquire)
    }

    /// Whether the spool has room for about one more maximal message (readiness).
    pub fn has_room(&self, message_bytes: u64) -> bool {
        let f = self.lock();
        f.end - f.done + message_bytes <= self.0.max_bytes && !f.broken
    }

    /// Offers one group commit of `mailbox`. Unless `force`, an empty spool declines (the
    /// records go to storage); otherwise they are appended and fsynced, and each is answered
    /// `Spooled` with its final id (a record whose idempotency key waits here already is
    /// answered with that record's id and not written again). A full spool keeps nothing and
    /// answers `Unavailable`.
    pub async fn offer(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        force: bool,
    ) -> Result<Offer, StorageError> {
        if !force && self.pending() == 0 {
            return Ok(Offer::Declined(records));
        }
        let this = self.clone();
        let mailbox = mailbox.to_owned();
        tokio::task::spawn_blocking(move || this.offer_now(&mailbox, records, force))
            .await
            .map_err(unavailable)?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Files> {
        self.0.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn offer_now(
        &self,
        mailbox: &str,
        records: Vec<NewRecord>,
        force: bool,
    ) -> Result<Offer, StorageError> {
        let mut f = self.lock();
        if !force && self.pending() == 0 {
            return Ok(Offer::Declined(records));
        }
        if f.broken {
            return Err(unavailable("disabled after a write error"));
        }
        let mut bytes = Vec::new();
        let mut results = Vec::with_capacity(records.len());
        let mut fresh: Vec<(usize, Option<String>, String)> = Vec::new();
        for r in &records {
            if let Some(id) = r.idempotency.as_ref().and_then(|k| f.keys.get(k)) {
                results.push(Appended::Spooled { id: id.clone() });
                continue;
            }
            log::frame(&mut bytes, mailbox, r).ok_or_else(|| unavailable("record too large"))?;
            fresh.push((bytes.len(), r.idempotency.clone(), r.id.clone()));
            results.push(Appended::Spooled { id: r.id.clone() });
        }
        let held = f.end - f.done;
        if held + bytes.len() as u64 > self.0.max_bytes {
            metrics::counter!("mailbox_spool_full_total").increment(1);
            return Err(unavailable(format!(
                "full ({held} of {} bytes held)",
                self.0.max_bytes
            )));
        }
        if !bytes.is_empty() {
            let wrote = f.log.write_all(&bytes).and_then(|()| f.log.sync_data());
            if let Err(e) = wrote {
                let end = f.end;
                if f.log.set_len(end).and_then(|()| f.log.sync_data()).is_err() {
                    f.broken = true;
                }
                tracing::error!(error = %e, "spool: append failed; nothing kept");
                return Err(unavailable(e));
            }
        }
        let start = f.end;
        for (end, key, id) in fresh.iter() {
            if let Some(k) = key {
                f.keys.insert(k.clone(), id.clone());
                f.key_order.push_back((start + *end as u64, k.clone()));
            }
        }
        f.end += bytes.len() as u64;
        let n = fresh.len() as u64;
        let now = self.0.pending.fetch_add(n, Ordering::AcqRel) + n;
        drop(f);
        self.published(now);
        if n > 0 {
            self.0.wake.notify_one();
        }
        Ok(Offer::Spooled(AppendOutcome {
            results,
            evicted: Vec::new(),
        }))
    }

    fn published(&self, pending: u64) {
        metrics::gauge!("mailbox_spool_messages").set(pending as f64);
        self.0.count.send_replace(pending);
    }

    /// The next records to replay, in log order, with the log offset just past each.
    fn next_batch(&self, max: usize) -> Result<Vec<(Entry, u64)>, StorageError> {
        let mut f = self.lock();
        let done = f.done;
        Ok(log::scan(&mut f.log, done, max, 4 << 20)
            .map_err(unavailable)?
            .entries)
    }

    /// Records that the log is replayed up to `offset` (`count` records more); truncates the
    /// log once everything is.
    fn advance(&self, offset: u64, count: u64) -> Result<(), StorageError> {
        let mut f = self.lock();
        f.done = offset;
        while f.key_order.front().is_some_and(|(end, _)| *end <= offset) {
            if let Some((_, k)) = f.key_order.pop_front() {
                f.keys.remove(&k);
            }
        }
        let result = if f.done >= f.end {
            // Truncate first: a crash in between leaves a cursor past the end, read as 0.
            f.done = 0;
            f.end = 0;
            f.log
                .set_len(0)
                .and_then(|()| f.log.sync_all())
                .and_then(|()| log::write_cursor(&mut f.cursor, 0))
        } else {
            log::write_cursor(&mut f.cursor, offset)
        };
        let now = self
            .0
            .pending
            .fetch_sub(count, Ordering::AcqRel)
            .saturating_sub(count);
        drop(f);
        self.published(now);
        result.map_err(unavailable)
    }

    /// Waits until the spool is empty, at most `within`; answers whether it is.
    pub async fn drained(&self, within: Duration) -> bool {
        let mut rx = self.0.count.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
