//! The Redis engine's dead-letter queue: `P:dlq:dl:<id>` holds each dead letter, `P:dlq:ids` and
//! `P:dlq:by:<mailbox>` index them by id (score 0, so `ZRANGEBYLEX` walks them in time order).
//! Writes put the body first and indexes after; deletes the reverse. A listing skips an index
//! entry whose body is gone.

use async_trait::async_trait;

use super::{corrupt, Conn, RedisEngine};
use crate::storage::delivery::{
    decode_dead, id_floor, DeadPage, DeadQuery, MAX_DEAD_PAGE, MAX_DEAD_SCAN,
};
use crate::storage::engine::DeadLetters;
use crate::storage::{DeadLetter, StorageError};

/// Dead letters removed per round trip by a purge.
const PURGE_CHUNK: usize = 500;

impl RedisEngine {
    /// Drops the index entries, then the body.
    async fn dlq_remove(
        &self,
        c: &mut Conn,
        id: &str,
        mailbox: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut cmds = Vec::with_capacity(3);
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.keys.dlq_ids()).arg(id);
        cmds.push((self.keys.dlq_ids(), zrem));
        if let Some(m) = mailbox {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(self.keys.dlq_by(m)).arg(id);
            cmds.push((self.keys.dlq_by(m), zrem));
        }
        let mut del = redis::cmd("DEL");
        del.arg(self.keys.dlq_body(id));
        cmds.push((self.keys.dlq_body(id), del));
        self.timed(c.ordered(cmds)).await?;
        Ok(())
    }
}

#[async_trait]
impl DeadLetters for RedisEngine {
    async fn dlq_list(&self, q: DeadQuery) -> Result<DeadPage, StorageError> {
        let index = match &q.mailbox {
            Some(m) => self.keys.dlq_by(m),
            None => self.keys.dlq_ids(),
        };
        let limit = q.limit.clamp(1, MAX_DEAD_PAGE);
        let chunk = (limit * 2).clamp(100, MAX_DEAD_PAGE);
        let mut cursor = q.after.clone();
        let mut page = DeadPage::default();
        let mut scanned = 0;
        let mut c = self.conn().await?;
        loop {
            let min = cursor
                .as_ref()
                .map_or_else(|| "-".to_owned(), |a| format!("({a}"));
            let ids: Vec<String> = self
                .timed(
                    redis::cmd("ZRANGEBYLEX")
                        .arg(&index)
                        .arg(min)
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(chunk)
                        .query_async(&mut c),
                )
                .await?;
            if ids.is_empty() {
                return Ok(page);
            }
            let exhausted = ids.len() < chunk;
            let mut get = redis::cmd("MGET");
            for id in &ids {
                get.arg(self.keys.dlq_body(id));
            }
            let bodies: Vec<Option<Vec<u8>>> = self.timed(get.query_async(&mut c)).await?;
            for (id, body) in ids.into_iter().zip(bodies) {
                if page.dead_letters.len() == limit || scanned >= MAX_DEAD_SCAN {
                    page.next = cursor;
                    return Ok(page);
                }
                scanned += 1;
                cursor = Some(id);
                let Some(body) = body else {
                    continue;
                };
                let d = decode_dead(&body)?;
                if q.reason.is_none_or(|r| r == d.reason) {
                    page.dead_letters.push(d);
                }
            }
            if exhausted {
                return Ok(page);
            }
        }
    }

    async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StorageError> {
        let mut c = self.conn().await?;
        let body: Option<Vec<u8>> = self
            .timed(
                redis::cmd("GET")
                    .arg(self.keys.dlq_body(id))
                    .query_async(&mut c),
            )
            .await?;
        body.map(|b| decode_dead(&b)).transpose()
    }

    async fn dlq_delete(&self, id: &str) -> Result<bool, StorageError> {
        let Some(d) = self.dlq_get(id).await? else {
            return Ok(false);
        };
        let mut c = self.conn().await?;
        self.dlq_remove(&mut c, id, Some(&d.mailbox)).await?;
        Ok(true)
    }

    async fn dlq_purge(&self, before_ms: i64) -> Result<u64, StorageError> {
        let floor = format!("({}", id_floor(before_ms));
        let mut c = self.conn().await?;
        let mut n = 0;
        loop {
            let ids: Vec<String> = self
                .timed(
                    redis::cmd("ZRANGEBYLEX")
                        .arg(self.keys.dlq_ids())
                        .arg("-")
                        .arg(&floor)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(PURGE_CHUNK)
                        .query_async(&mut c),
                )
                .await?;
            if ids.is_empty() {
                return Ok(n);
            }
            for id in ids {
                let body: Option<Vec<u8>> = self
                    .timed(
                        redis::cmd("GET")
                            .arg(self.keys.dlq_body(&id))
                            .query_async(&mut c),
                    )
                    .await?;
                let mailbox = match body.map(|b| decode_dead(&b)).transpose() {
                    Ok(d) => d.map(|d| d.mailbox),
                    Err(e) => {
                        tracing::warn!(error = %e, dead_letter = %id, "purging an unreadable dead letter");
                        None
                    }
                };
                self.dlq_remove(&mut c, &id, mailbox.as_deref()).await?;
                n += 1;
            }
        }
    }

    async fn dlq_count(&self) -> Result<u64, StorageError> {
        let mut c = self.conn().await?;
        let n: Option<u64> = self
            .timed(
                redis::cmd("ZCARD")
                    .arg(self.keys.dlq_ids())
                    .query_async(&mut c),
            )
            .await?;
        n.ok_or_else(|| corrupt("dlq count"))
    }
}
