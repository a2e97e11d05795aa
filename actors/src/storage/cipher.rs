//! Encryption at rest (config `storage.encryption_key_file` / `storage.encryption_key_files`):
//! AES-256-GCM (aws-lc-rs, the provider already in the tree through rustls) over what a message
//! says, so someone who reads Redis, a backup of it, its AOF or the spool reads no payload and
//! no metadata.
//!
//! A sealed body is `e | key id (8 hex chars: the first 4 bytes of SHA-256 of the key) | nonce
//! (12 random bytes, fresh per record) | ciphertext + 16-byte tag`, with the message id as
//! associated data, so a body moved under another id fails to open. A stored message record
//! keeps its 26-byte id in front in clear (storage deduplicates and evicts by id), then the
//! sealed body in place of the JSON (or `z` + zstd) it would hold otherwise; blob chunks are
//! sealed whole with `blob id / chunk index` as associated data. Records written before
//! encryption was turned on (no `e`) are read as they are.
//!
//! The keyring is process-wide ([`install`]) because records are encoded and decoded by free
//! functions ([`super::encode`], [`super::decode`]) called from every actor and both engines;
//! one broker process serves one configuration. The first key seals, every listed key opens:
//! rotating is "put the new key first, keep the old ones listed while records under them
//! remain". A record whose key is not listed fails alone, as [`StorageError::KeyMissing`]
//! naming the key id. Key material is never logged: only key ids are.

use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};

use super::StorageError;

/// First byte of a sealed body.
pub const SEALED: u8 = b'e';
/// Width of a key id (hex).
pub const KEY_ID_LEN: usize = 8;
/// Bytes a sealed body adds to its plaintext.
pub const OVERHEAD: usize = 1 + KEY_ID_LEN + NONCE_LEN + 16;

/// One AES-256 key and its id.
pub struct Key {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish()
    }
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an encryption key must be 32 bytes, base64-encoded (got {0} bytes after decoding)")]
    Length(usize),
    #[error("an encryption key must be base64 (32 random bytes, e.g. `openssl rand -base64 32`)")]
    Base64,
}

impl Key {
    /// From the raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::Length(bytes.len()))?;
        let digest = Sha256::digest(bytes);
        let id = digest[..KEY_ID_LEN / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    /// From the text of a key file: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Base64)?;
        if bytes.len() != 32 {
            return Err(KeyError::Length(bytes.len()));
        }
        Self::from_bytes(&bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys of this node: the first seals, all open.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// `keys` newest first; at least one.
    pub fn new(keys: Vec<Key>) -> Option<Self> {
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// The ids, newest first (for logs).
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(Key::id).collect()
    }

    /// Appends `e | key id | nonce | ciphertext+tag` of `plain` to `out`.
    pub fn seal_into(
        &self,
        aad: &[u8],
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StorageError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StorageError::Corrupt("no randomness for a nonce".into()))?;
        let mut buf = plain.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| StorageError::Corrupt("encryption failed".into()))?;
        out.reserve(1 + KEY_ID_LEN + NONCE_LEN + buf.len());
        out.push(SEALED);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(())
    }

    /// Opens a sealed body (starting with [`SEALED`]).
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
        open_with(Some(self), aad, sealed)
    }
}

/// The key id a sealed body names.
pub fn key_id_of(sealed: &[u8]) -> Option<&str> {
    sealed
        .get(1..=KEY_ID_LEN)
        .and_then(|b| std::str::from_utf8(b).ok())
}

fn open_with(ring: Option<&Keyring>, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
    let short = || StorageError::Corrupt("sealed record too short".into());
    if sealed.len() < OVERHEAD || sealed.first() != Some(&SEALED) {
        return Err(short());
    }
    let key_id = key_id_of(sealed).ok_or_else(short)?;
    let Some(key) = ring.and_then(|r| r.keys.iter().find(|k| k.id == key_id)) else {
        return Err(StorageError::KeyMissing {
            key_id: key_id.to_owned(),
        });
    };
    let nonce_at = 1 + KEY_ID_LEN;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[nonce_at..nonce_at + NONCE_LEN]);
    let mut buf = sealed[nonce_at + NONCE_LEN..].to_vec();
    let plain = key
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| {
            StorageError::Corrupt(format!(
                "sealed record does not open under key {key_id} (tampered, or moved)"
            ))
        })?;
    let n = plain.len();
    buf.truncate(n);
    Ok(buf)
}

static KEYRING: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// Makes `ring` this process's keyring (`None`: store in clear). Called once at start.
pub fn install(ring: Option<Keyring>) {
    let mut slot = match KEYRING.write() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    *slot = ring.map(Arc::new);
}

/// The installed keyring, if encryption is on.
pub fn current() -> Option<Arc<Keyring>> {
    match KEYRING.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Opens `sealed` with the installed keyring (a missing key: [`StorageError::KeyMissing`]).
pub fn open(aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StorageError> {
    open_with(current().as_deref(), aad, sealed)
}

/// Blob chunks: sealed whole behind a 4-byte mark, so chunks stored in clear before encryption
/// was turned on still read.
const CHUNK_MARK: &[u8; 4] = b"MBE1";

fn chunk_aad(blob: &str, index: u32) -> Vec<u8> {
    format!("{blob}/{index}").into_bytes()
}

/// A blob chunk as stored: sealed when encryption is on.
pub fn seal_chunk(blob: &str, index: u32, bytes: Vec<u8>) -> Result<Vec<u8>, StorageError> {
    let Some(ring) = current() else {
        return Ok(bytes);
    };
    let mut out = CHUNK_MARK.to_vec();
    ring.seal_into(&chunk_aad(blob, index), &bytes, &mut out)?;
    Ok(out)
}

/// A stored blob chunk read back.
pub fn open_chunk(blob: &str, index: u32, stored: Vec<u8>) -> Result<Vec<u8>, StorageError> {
    match stored.strip_prefix(CHUNK_MARK.as_slice()) {
        Some(sealed) if sealed.first() == Some(&SEALED) => open(&chunk_aad(blob, index), sealed),
        _ => Ok(stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(seeds: &[u8]) -> Keyring {
        Keyring::new(
            seeds
                .iter()
                .map(|s| Key::from_bytes(&[*s; 32]).expect("key"))
                .collect(),
        )
        .expect("ring")
    }

    #[test]
    fn seal_open_round_trip_with_fresh_nonces_and_bound_to_the_id() {
        let r = ring(&[1]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        r.seal_into(b"id-1", b"hello", &mut a).expect("seal");
        r.seal_into(b"id-1", b"hello", &mut b).expect("seal");
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.windows(5).any(|w| w == b"hello"));
        assert_eq!(r.open(b"id-1", &a).expect("open"), b"hello");
        assert!(r.open(b"id-2", &a).is_err(), "bound to its id");
        assert_eq!(key_id_of(&a), Some(r.ids()[0]));
    }

    #[test]
    fn rotation_opens_old_records_while_their_key_is_listed() {
        let (old, both, new) = (ring(&[1]), ring(&[2, 1]), ring(&[2]));
        let mut rec = Vec::new();
        old.seal_into(b"x", b"old", &mut rec).expect("seal");
        assert_eq!(both.open(b"x", &rec).expect("open"), b"old");
        match new.open(b"x", &rec) {
            Err(StorageError::KeyMissing { key_id }) => assert_eq!(key_id, old.ids()[0]),
            other => panic!("expected KeyMissing, got {other:?}"),
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(matches!(
            Key::from_base64("not base64!"),
            Err(KeyError::Base64)
        ));
        assert!(matches!(Key::from_base64("AAAA"), Err(KeyError::Length(3))));
        let k = Key::from_base64(&format!("{}\n", "A".repeat(43) + "=")).expect("32 bytes");
        assert_eq!(k.id().len(), KEY_ID_LEN);
    }
}
