//! Blobs: large payloads uploaded on their own (`POST /v1/blobs`) and referenced by messages
//! (`"blob": "<id>"`). Stored in fixed-size chunks so neither an upload nor a download ever
//! holds more than one chunk in memory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bytes of one stored chunk (the last chunk of a blob may be shorter).
pub const BLOB_CHUNK: usize = 1 << 20;

/// What is known of a complete blob. Written once, after its last chunk: a blob without its
/// meta is an upload in progress (or abandoned) and is not found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// A ULID, assigned by the server.
    pub id: String,
    /// Bytes in the blob.
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes (also the download's `ETag`).
    pub sha256: String,
    /// Stored chunks, numbered from 0; `ceil(size / BLOB_CHUNK)`.
    pub chunks: u32,
    /// The upload's `Content-Type`, given back on download.
    pub content_type: String,
    /// The uploading agent.
    pub owner: String,
    pub created_at: DateTime<Utc>,
}

impl BlobMeta {
    /// Chunks a blob of `size` bytes is stored in.
    pub fn chunks_for(size: u64) -> u32 {
        u32::try_from(size.div_ceil(BLOB_CHUNK as u64)).unwrap_or(u32::MAX)
    }
}

/// Checks a blob id taken from a path or a message: a ULID, as the server assigns.
pub fn is_valid_blob_id(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}
