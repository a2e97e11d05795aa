//! Reading a mailbox: browse with cursors and filters. Reads go straight to storage (through the
//! storage actor); only writes are ordered by the mailbox actor.

use chrono::Utc;

use crate::error::Error;
use crate::model::{Envelope, MessageFilter};
use crate::storage::{StorageHandle, StoredRecord, Stream};

/// Most messages one page may hold.
pub const MAX_PAGE: usize = 500;
/// Records one browse call may examine before it answers with a cursor to go on from, so a
/// filter that matches nothing in a huge mailbox still answers promptly.
const MAX_SCAN: usize = 20_000;

/// A browse request (`GET /v1/mailboxes/{name}/messages`), already parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct BrowseQuery {
    /// Only messages after this seq (exclusive).
    pub after: Option<u64>,
    /// Only messages before this seq (exclusive).
    pub before: Option<u64>,
    pub filter: MessageFilter,
    /// Only messages the reader has not marked read.
    pub unread_only: bool,
    pub limit: usize,
}

/// One page of a browse: `next` is the cursor for the following page, `None` at the end.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub messages: Vec<Envelope>,
    pub next: Option<String>,
    /// Served from the node's cache of recent messages while storage is down.
    pub degraded: bool,
}

/// Scans `stream` (a mailbox or a topic history) in seq order from the query's cursor and
/// collects what matches. Read state exists only in mailboxes: `unread_only` on a topic is
/// refused.
pub async fn browse(
    storage: &StorageHandle,
    stream: &Stream,
    reader: &str,
    q: &BrowseQuery,
) -> Result<Page, Error> {
    let read = match (q.unread_only, stream) {
        (false, _) => None,
        (true, Stream::Mailbox(name)) => Some(storage.read_state(name, reader).await?),
        (true, Stream::Topic(_)) => {
            return Err(Error::invalid(
                "unread",
                "topics have no read state: `unread` applies to mailboxes",
            ))
        }
    };
    let limit = q.limit.clamp(1, MAX_PAGE);
    let chunk = (limit * 2).clamp(100, MAX_PAGE);
    let now = Utc::now();
    let mut cursor = q.after.unwrap_or(0);
    let mut scanned = 0;
    let mut page = Page::default();
    loop {
        let records = storage.range(stream, cursor, q.before, chunk).await?;
        let exhausted = records.len() < chunk;
        for rec in records {
            cursor = rec.seq;
            scanned += 1;
            if read.as_ref().is_some_and(|r| r.is_read(rec.seq)) {
                continue;
            }
            let env = rec.decode()?;
            if env.is_expired(now) || !q.filter.matches(&env) {
                continue;
            }
            page.messages.push(env);
            if page.messages.len() == limit {
                page.next = Some(cursor.to_string());
                return Ok(page);
            }
        }
        if exhausted {
            return Ok(page);
        }
        if scanned >= MAX_SCAN {
            page.next = Some(cursor.to_string());
            return Ok(page);
        }
    }
}

/// A browse answered from a writer's cache of recent messages (`records`, ascending, already
/// within the query's `after`/`before`): same filters and limit, marked `degraded`. Read state
/// lives in storage, so `unread` cannot be answered: storage's error (`why`) stands.
pub fn browse_cached(
    records: Vec<StoredRecord>,
    q: &BrowseQuery,
    why: &str,
) -> Result<Page, Error> {
    if q.unread_only {
        return Err(Error::Unavailable(format!(
            "{why} (read state needs storage; the cache serves browses without `unread`)"
        )));
    }
    let limit = q.limit.clamp(1, MAX_PAGE);
    let now = Utc::now();
    let mut page = Page {
        degraded: true,
        ..Page::default()
    };
    for rec in records {
        let env = rec.decode()?;
        if env.is_expired(now) || !q.filter.matches(&env) {
            continue;
        }
        page.messages.push(env);
        if page.messages.len() == limit {
            page.next = Some(rec.seq.to_string());
            break;
        }
    }
    Ok(page)
}
