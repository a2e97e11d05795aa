//! Batch intents on Redis: `P:{intents}:due` (zset id by stored ms) and `P:{intents}:body`
//! (hash id -> body), both in the one slot of the tag `intents`, so each write of both is one
//! `MULTI`. See `dispatch::intent` for what they are for.

use async_trait::async_trait;
use chrono::Utc;

use super::RedisEngine;
use crate::storage::engine::Intents;
use crate::storage::StorageError;

#[async_trait]
impl Intents for RedisEngine {
    async fn intent_put(&self, id: &str, body: Vec<u8>) -> Result<(), StorageError> {
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(self.keys.intents("body"))
            .arg(id)
            .arg(body)
            .ignore()
            .cmd("ZADD")
            .arg(self.keys.intents("due"))
            .arg(Utc::now().timestamp_millis())
            .arg(id)
            .ignore();
        let mut c = self.conn().await?;
        let () = self.timed(p.query_async(&mut c)).await?;
        Ok(())
    }

    async fn intent_delete(&self, id: &str) -> Result<bool, StorageError> {
        let mut p = redis::pipe();
        p.atomic()
            .cmd("ZREM")
            .arg(self.keys.intents("due"))
            .arg(id)
            .ignore()
            .cmd("HDEL")
            .arg(self.keys.intents("body"))
            .arg(id);
        let mut c = self.conn().await?;
        let (n,): (u64,) = self.timed(p.query_async(&mut c)).await?;
        Ok(n > 0)
    }

    async fn intents_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut c = self.conn().await?;
        let ids: Vec<String> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.intents("due"))
                    .arg("-inf")
                    .arg(format!("({before_ms}"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let bodies: Vec<Option<Vec<u8>>> = self
            .timed(
                redis::cmd("HMGET")
                    .arg(self.keys.intents("body"))
                    .arg(&ids)
                    .query_async(&mut c),
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, body) in ids.into_iter().zip(bodies) {
            match body {
                Some(b) => out.push((id, b)),
                // Deleted between the two reads (its batch just finished): drop the index entry.
                None => {
                    let _: i64 = self
                        .timed(
                            redis::cmd("ZREM")
                                .arg(self.keys.intents("due"))
                                .arg(&id)
                                .query_async(&mut c),
                        )
                        .await?;
                }
            }
        }
        Ok(out)
    }
}
