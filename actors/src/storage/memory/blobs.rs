//! The memory engine's blobs: chunks and meta in a map of their own (a blob transfer never
//! waits on the message lock), each blob with its expiry. Expired blobs are dropped when next
//! touched and swept whenever a chunk is written, so memory follows the blobs still alive.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::Utc;

use super::MemoryEngine;
use crate::model::BlobMeta;
use crate::storage::engine::Blobs;
use crate::storage::StorageError;

/// One blob: its chunks by index, its meta once complete, and when it goes (`None`: kept).
#[derive(Default)]
struct Blob {
    chunks: BTreeMap<u32, Vec<u8>>,
    meta: Option<BlobMeta>,
    expires_at_ms: Option<i64>,
}

impl Blob {
    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|e| e <= now_ms)
    }
}

#[derive(Default)]
pub(super) struct BlobState {
    blobs: Mutex<HashMap<String, Blob>>,
}

impl BlobState {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Blob>> {
        // See `MemoryEngine::lock`: a poisoned lock still holds the best data there is.
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live blob `id`, dropping it if it expired.
    fn live<'a>(map: &'a mut HashMap<String, Blob>, id: &str) -> Option<&'a mut Blob> {
        let now = Utc::now().timestamp_millis();
        if map.get(id).is_some_and(|b| b.expired(now)) {
            map.remove(id);
        }
        map.get_mut(id)
    }
}

#[async_trait]
impl Blobs for MemoryEngine {
    async fn blob_write_chunk(
        &self,
        id: &str,
        index: u32,
        bytes: Vec<u8>,
        expires_at_ms: i64,
    ) -> Result<(), StorageError> {
        let mut map = self.blobs.lock();
        let now = Utc::now().timestamp_millis();
        map.retain(|_, b| !b.expired(now));
        let blob = map.entry(id.to_owned()).or_default();
        blob.chunks.insert(index, bytes);
        blob.expires_at_ms = Some(
            blob.expires_at_ms
                .map_or(expires_at_ms, |e| e.max(expires_at_ms)),
        );
        Ok(())
    }

    async fn blob_read_chunk(&self, id: &str, index: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let mut map = self.blobs.lock();
        Ok(BlobState::live(&mut map, id).and_then(|b| b.chunks.get(&index).cloned()))
    }

    async fn blob_commit(&self, meta: BlobMeta, expires_at_ms: i64) -> Result<(), StorageError> {
        let mut map = self.blobs.lock();
        let blob = map.entry(meta.id.clone()).or_default();
        blob.meta = Some(meta);
        blob.expires_at_ms = Some(expires_at_ms);
        Ok(())
    }

    async fn blob_meta(&self, id: &str) -> Result<Option<BlobMeta>, StorageError> {
        let mut map = self.blobs.lock();
        Ok(BlobState::live(&mut map, id).and_then(|b| b.meta.clone()))
    }

    async fn blob_retain(&self, id: &str, until_ms: Option<i64>) -> Result<bool, StorageError> {
        let mut map = self.blobs.lock();
        let Some(blob) = BlobState::live(&mut map, id).filter(|b| b.meta.is_some()) else {
            return Ok(false);
        };
        blob.expires_at_ms = match (blob.expires_at_ms, until_ms) {
            (Some(now), Some(until)) => Some(now.max(until)),
            _ => None,
        };
        Ok(true)
    }

    async fn blob_discard(&self, id: &str) -> Result<(), StorageError> {
        self.blobs.lock().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> BlobMeta {
        BlobMeta {
            id: id.into(),
            size: 3,
            sha256: "x".into(),
            chunks: 1,
            content_type: "application/octet-stream".into(),
            owner: "alice".into(),
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_blob_is_found_once_committed_and_gone_once_discarded() {
        let e = MemoryEngine::new();
        let later = Utc::now().timestamp_millis() + 60_000;
        e.blob_write_chunk("b", 0, b"abc".to_vec(), later)
            .await
            .expect("write");
        assert_eq!(
            e.blob_meta("b").await.expect("meta"),
            None,
            "not before commit"
        );
        assert!(!e.blob_retain("b", None).await.expect("retain"));
        let m = meta("b");
        e.blob_commit(m.clone(), later).await.expect("commit");
        assert_eq!(e.blob_meta("b").await.expect("meta"), Some(m));
        assert_eq!(
            e.blob_read_chunk("b", 0).await.expect("read"),
            Some(b"abc".to_vec())
        );
        e.blob_discard("b").await.expect("discard");
        assert!(e.blobs.lock().is_empty(), "nothing kept");
    }

    #[tokio::test]
    async fn retain_extends_and_never_shortens() {
        let e = MemoryEngine::new();
        let now = Utc::now().timestamp_millis();
        e.blob_commit(meta("b"), now + 1_000).await.expect("commit");
        assert!(e
            .blob_retain("b", Some(now + 10_000))
            .await
            .expect("retain"));
        assert!(e.blob_retain("b", Some(now + 5_000)).await.expect("retain"));
        assert_eq!(e.blobs.lock()["b"].expires_at_ms, Some(now + 10_000));
        assert!(e.blob_retain("b", None).await.expect("retain"));
        assert!(e.blob_retain("b", Some(now + 5_000)).await.expect("retain"));
        assert_eq!(
            e.blobs.lock()["b"].expires_at_ms,
            None,
            "kept for good stays so"
        );
        e.blob_commit(meta("old"), now - 1).await.expect("commit");
        assert_eq!(e.blob_meta("old").await.expect("meta"), None, "expired");
    }
}
