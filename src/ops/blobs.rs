//! Blobs (SPEC section 3): an upload is written to storage one chunk at a time as it arrives,
//! a download is read back one chunk at a time as it is sent, so a blob of any size never sits
//! in memory beyond one chunk ([`BLOB_CHUNK`]). A message that references a blob keeps it alive
//! at least as long as the message ([`Ops::retain_blob`]).
//!
//! Permissions: `blobs`, `send` to upload; `blobs`, `read` to download.

use chrono::Utc;
use futures_util::Stream;
use mailbox_actors::blobs::BlobStore;
use mailbox_actors::model::{is_valid_blob_id, BlobMeta, SendRequest, BLOB_CHUNK};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Ops;
use crate::auth::Agent;
use crate::error::ApiError;

/// Extra time a referenced blob outlives its message, so clock skew between nodes or a slow
/// reader never finds the message without its blob.
const RETAIN_MARGIN_MS: i64 = 60_000;
/// Longest `Content-Type` kept with a blob.
const MAX_CONTENT_TYPE: usize = 255;

/// `POST /v1/blobs` answers this (201).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BlobInfo {
    /// Put this in a message's `blob` field; `GET /v1/blobs/{id}` downloads it.
    pub id: String,
    /// Bytes stored.
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes (the download's `ETag`).
    pub sha256: String,
}

fn too_large(max: u64) -> ApiError {
    ApiError::Engine(mailbox_actors::Error::TooLarge {
        field: "body".into(),
        message: format!("blob is over the limit of {max} bytes (limits.max_blob_bytes)"),
    })
}

fn blob_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("blob `{id}`"))
}

fn metered(direction: &'static str, n: usize) {
    metrics::counter!("mailbox_blob_bytes_total", "direction" => direction).increment(n as u64);
}

/// An upload in progress: bytes are hashed as they come and stored a chunk at a time. Drop it
/// without [`finish`](Self::finish) and its chunks expire with the blob TTL; call
/// [`abort`](Self::abort) to remove them at once.
pub struct BlobUpload {
    store: BlobStore,
    id: String,
    owner: String,
    content_type: String,
    /// The chunk being filled: at most [`BLOB_CHUNK`] bytes.
    buf: Vec<u8>,
    /// Index of the chunk being filled.
    index: u32,
    size: u64,
    hasher: Sha256,
    max: u64,
    ttl_ms: i64,
}

impl Ops {
    /// Starts an upload by `agent`. `declared` is the body's announced length: over the limit
    /// it is refused before a byte is read.
    pub fn blob_upload(
        &self,
        agent: &Agent,
        content_type: Option<&str>,
        declared: Option<u64>,
    ) -> Result<BlobUpload, ApiError> {
        self.require(agent, "blobs", "send")?;
        let max = self.limits.max_blob_bytes as u64;
        if declared.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        let content_type = content_type
            .map(str::trim)
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= MAX_CONTENT_TYPE
                    && c.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .unwrap_or("application/octet-stream")
            .to_owned();
        Ok(BlobUpload {
            store: self.blobs.clone(),
            id: mailbox_actors::model::new_id(),
            owner: agent.id.clone(),
            content_type,
            buf: Vec::with_capacity(BLOB_CHUNK),
            index: 0,
            size: 0,
            hasher: Sha256::new(),
            max,
            ttl_ms: i64::try_from(self.limits.blob_ttl_seconds.saturating_mul(1000))
                .unwrap_or(i64::MAX / 2),
        })
    }

    /// The meta of blob `id` for a download by `agent`, or `not_found`.
    pub async fn blob_meta(&self, agent: &Agent, id: &str) -> Result<BlobMeta, ApiError> {
        self.require(agent, "blobs", "read")?;
        if !is_valid_blob_id(id) {
            return Err(blob_not_found(id));
        }
        self.blobs.meta(id).await?.ok_or_else(|| blob_not_found(id))
    }

    /// The bytes of a blob whose meta [`blob_meta`](Self::blob_meta) answered, chunk by chunk.
    /// A chunk gone meanwhile (the blob expired during the download) ends the stream with an
    /// error, so the reader sees a cut transfer rather than wrong bytes.
    pub fn blob_bytes(
        &self,
        meta: &BlobMeta,
    ) -> impl Stream<Item = Result<Vec<u8>, ApiError>> + 'static {
        let store = self.blobs.clone();
        let id = meta.id.clone();
        let chunks = meta.chunks;
        futures_util::stream::try_unfold(0u32, move |index| {
            let store = store.clone();
            let id = id.clone();
            async move {
                if index >= chunks {
                    return Ok(None);
                }
                match store.read_chunk(&id, index).await? {
                    Some(bytes) => {
                        metered("out", bytes.len());
                        Ok(Some((bytes, index + 1)))
                    }
                    None => {
                        tracing::warn!(blob = %id, chunk = index, "blob chunk gone during a download");
                        Err(blob_not_found(&id))
                    }
                }
            }
        })
    }

    /// A send that references a blob: the blob must exist, and is kept at least as long as the
    /// message (for good if the message has no `ttl_seconds`). Called before the message is
    /// stored, so a message never points at a blob that is gone.
    pub(crate) async fn retain_blob(&self, req: &SendRequest) -> Result<(), ApiError> {
        let Some(id) = &req.blob else {
            return Ok(());
        };
        let until = req.ttl_seconds.map(|t| {
            let ttl_ms = i64::try_from(t.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
            Utc::now().timestamp_millis() + ttl_ms + RETAIN_MARGIN_MS
        });
        if self.blobs.retain(id, until).await? {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "blob `{id}` (never uploaded, or expired: upload it again with POST /v1/blobs)"
            )))
        }
    }
}

impl BlobUpload {
    /// Takes the next bytes of the body. Past the size limit the upload is removed and refused
    /// (`payload_too_large`); a storage failure removes it too.
    pub async fn push(&mut self, mut bytes: &[u8]) -> Result<(), ApiError> {
        self.size += bytes.len() as u64;
        if self.size > self.max {
            self.discard().await;
            return Err(too_large(self.max));
        }
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let take = (BLOB_CHUNK - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == BLOB_CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Stores the last chunk and makes the blob visible. An empty body is refused.
    pub async fn finish(mut self) -> Result<BlobInfo, ApiError> {
        if self.size == 0 {
            return Err(ApiError::validation(
                "body",
                "a blob needs at least one byte (the request body is empty)",
            ));
        }
        if !self.buf.is_empty() {
            self.flush().await?;
        }
        let sha256 = hex(&self.hasher.clone().finalize());
        let meta = BlobMeta {
            id: self.id.clone(),
            size: self.size,
            sha256: sha256.clone(),
            chunks: self.index,
            content_type: self.content_type.clone(),
            owner: self.owner.clone(),
            created_at: Utc::now(),
        };
        let expires = Utc::now().timestamp_millis() + self.ttl_ms;
        if let Err(e) = self.store.commit(meta, expires).await {
            self.discard().await;
            return Err(e.into());
        }
        tracing::info!(blob = %self.id, size = self.size, owner = %self.owner, "blob stored");
        Ok(BlobInfo {
            id: self.id,
            size: self.size,
            sha256,
        })
    }

    /// Removes what was stored of an upload that will not finish (the client went away).
    pub async fn abort(mut self) {
        self.discard().await;
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOB_CHUNK));
        let n = chunk.len();
        let expires = Utc::now().timestamp_millis() + self.ttl_ms;
        if let Err(e) = self
            .store
            .write_chunk(&self.id, self.index, chunk, expires)
            .await
        {
            self.discard().await;
            return Err(e.into());
        }
        metered("in", n);
        self.index += 1;
        Ok(())
    }

    async fn discard(&mut self) {
        self.buf = Vec::new();
        if self.index == 0 {
            return;
        }
        if let Err(e) = self.store.discard(&self.id).await {
            // Its chunks still expire with the blob TTL.
            tracing::warn!(blob = %self.id, error = %e, "could not remove an unfinished upload");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
