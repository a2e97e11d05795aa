//! Blobs over storage: large payloads uploaded on their own and referenced by messages. Faces
//! reach them through [`BlobStore`], never through the storage handle itself; the streaming
//! (one chunk in memory at a time), the size limit and the digest are the face-neutral ops
//! layer's (`mailbox::ops::blobs`).

use crate::error::Error;
use crate::model::BlobMeta;
use crate::registry::RegistryHandle;
use crate::storage::StorageHandle;

/// Typed blob operations. Cloning is shallow (a storage handle).
#[derive(Clone)]
pub struct BlobStore {
    storage: StorageHandle,
}

impl BlobStore {
    pub fn new(registry: &RegistryHandle) -> Self {
        Self {
            storage: registry.storage().clone(),
        }
    }

    /// Stores chunk `index` of an upload, kept until `expires_at_ms` at least.
    pub async fn write_chunk(
        &self,
        id: &str,
        index: u32,
        bytes: Vec<u8>,
        expires_at_ms: i64,
    ) -> Result<(), Error> {
        Ok(self
            .storage
            .blob_write_chunk(id, index, bytes, expires_at_ms)
            .await?)
    }

    /// Chunk `index` of a blob, if it is there.
    pub async fn read_chunk(&self, id: &str, index: u32) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.storage.blob_read_chunk(id, index).await?)
    }

    /// Makes an uploaded blob visible until `expires_at_ms`.
    pub async fn commit(&self, meta: BlobMeta, expires_at_ms: i64) -> Result<(), Error> {
        Ok(self.storage.blob_commit(meta, expires_at_ms).await?)
    }

    /// The meta of a complete, live blob.
    pub async fn meta(&self, id: &str) -> Result<Option<BlobMeta>, Error> {
        Ok(self.storage.blob_meta(id).await?)
    }

    /// Keeps a blob until `until_ms` at least (`None`: for good); false if there is none.
    pub async fn retain(&self, id: &str, until_ms: Option<i64>) -> Result<bool, Error> {
        Ok(self.storage.blob_retain(id, until_ms).await?)
    }

    /// Removes a blob or an unfinished upload.
    pub async fn discard(&self, id: &str) -> Result<(), Error> {
        Ok(self.storage.blob_discard(id).await?)
    }
}
