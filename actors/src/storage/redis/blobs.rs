//! Blobs in Redis. Layout (`P` = `redis.key_prefix`), both keys under the blob's own hash tag so
//! a Redis Cluster keeps a blob in one slot:
//! - `P:blob:{<id>}:data`  hash: chunk index -> chunk bytes (1 MiB each, the last shorter)
//! - `P:blob:{<id>}:meta`  hash: `size`, `sha256`, `chunks`, `content_type`, `owner`,
//!   `created_at` (ms); written after the last chunk, so a blob without it is not found
//!
//! With encryption at rest on, each chunk is stored sealed (see `storage::cipher`); the meta
//! stays readable (sizes, digest, content type, owner: what serving and expiry need).
//!
//! Both keys carry the blob's expiry (`PEXPIREAT`): chunks of an abandoned upload go by
//! themselves, and a message that references the blob extends it (`blob_retain.lua`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};

use super::RedisEngine;
use crate::model::BlobMeta;
use crate::storage::engine::Blobs;
use crate::storage::StorageError;

fn meta_from(id: &str, mut h: HashMap<String, String>) -> Result<Option<BlobMeta>, StorageError> {
    if h.is_empty() {
        return Ok(None);
    }
    let bad = |f: &str| StorageError::Corrupt(format!("blob `{id}` meta: bad `{f}`"));
    let num = |f: &str| -> Result<u64, StorageError> {
        h.get(f).and_then(|v| v.parse().ok()).ok_or_else(|| bad(f))
    };
    let size = num("size")?;
    let chunks = u32::try_from(num("chunks")?).map_err(|_| bad("chunks"))?;
    let created_ms = i64::try_from(num("created_at")?).map_err(|_| bad("created_at"))?;
    let created_at = Utc
        .timestamp_millis_opt(created_ms)
        .single()
        .ok_or_else(|| bad("created_at"))?;
    let mut text = |f: &str| h.remove(f).ok_or_else(|| bad(f));
    Ok(Some(BlobMeta {
        id: id.to_owned(),
        size,
        sha256: text("sha256")?,
        chunks,
        content_type: text("content_type")?,
        owner: text("owner")?,
        created_at,
    }))
}

#[async_trait]
impl Blobs for RedisEngine {
    async fn blob_write_chunk(
        &self,
        id: &str,
        index: u32,
        bytes: Vec<u8>,
        expires_at_ms: i64,
    ) -> Result<(), StorageError> {
        let data = self.keys.blob(id, "data");
        // With encryption at rest on, the chunk is sealed (associated data: blob id and index).
        let bytes = crate::storage::cipher::seal_chunk(id, index, bytes)?;
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(&data)
            .arg(index)
            .arg(bytes)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&data)
            .arg(expires_at_ms)
            .ignore();
        let mut c = self.conn().await?;
        let () = self.timed(p.query_async(&mut c)).await?;
        Ok(())
    }

    async fn blob_read_chunk(&self, id: &str, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let mut c = self.conn().await?;
        let stored: Option<Vec<u8>> = self
            .timed(
                redis::cmd("HGET")
                    .arg(self.keys.blob(id, "data"))
                    .arg(index)
                    .query_async(&mut c),
            )
            .await?;
        stored
            .map(|b| crate::storage::cipher::open_chunk(id, index, b))
            .transpose()
    }

    async fn blob_commit(&self, meta: BlobMeta, expires_at_ms: i64) -> Result<(), StorageError> {
        let key = self.keys.blob(&meta.id, "meta");
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("size")
            .arg(meta.size)
            .arg("sha256")
            .arg(&meta.sha256)
            .arg("chunks")
            .arg(meta.chunks)
            .arg("content_type")
            .arg(&meta.content_type)
            .arg("owner")
            .arg(&meta.owner)
            .arg("created_at")
            .arg(meta.created_at.timestamp_millis())
            .ignore();
        for k in [key.clone(), self.keys.blob(&meta.id, "data")] {
            p.cmd("PEXPIREAT").arg(k).arg(expires_at_ms).ignore();
        }
        let mut c = self.conn().await?;
        let () = self.timed(p.query_async(&mut c)).await?;
        Ok(())
    }

    async fn blob_meta(&self, id: &str) -> Result<Option<BlobMeta>, StorageError> {
        let mut c = self.conn().await?;
        let h: HashMap<String, String> = self
            .timed(
                redis::cmd("HGETALL")
                    .arg(self.keys.blob(id, "meta"))
                    .query_async(&mut c),
            )
            .await?;
        meta_from(id, h)
    }

    async fn blob_retain(&self, id: &str, until_ms: Option<i64>) -> Result<bool, StorageError> {
        let mut inv = self.scripts.blob_retain.key(self.keys.blob(id, "meta"));
        inv.key(self.keys.blob(id, "data"))
            .arg(until_ms.map_or_else(String::new, |u| u.to_string()))
            .arg(Utc::now().timestamp_millis());
        let mut c = self.conn().await?;
        let found: i64 = self.timed(inv.invoke_async(&mut c)).await?;
        Ok(found == 1)
    }

    async fn blob_discard(&self, id: &str) -> Result<(), StorageError> {
        let mut c = self.conn().await?;
        let _: i64 = self
            .timed(
                redis::cmd("DEL")
                    .arg(self.keys.blob(id, "data"))
                    .arg(self.keys.blob(id, "meta"))
                    .query_async(&mut c),
            )
            .await?;
        Ok(())
    }
}
