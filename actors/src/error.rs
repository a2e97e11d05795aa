//! The engine's one error type. The faces map it to HTTP / WebSocket / MCP in exactly one place.

use crate::model::RequestError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule of SPEC sections 2–3 was broken; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Over a size limit.
    #[error("{message}")]
    TooLarge { field: String, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    #[error("mailbox `{mailbox}` is full ({max_len} messages)")]
    MailboxFull { mailbox: String, max_len: u64 },
    /// Storage is down or an actor could not be reached: retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A stored message is encrypted under a key this node does not have: that message
    /// cannot be served (503 `unavailable`, naming the key id); everything else works.
    #[error("{message}")]
    KeyMissing { key_id: String, message: String },
    /// A bug: logged in full, reported to clients without detail.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => Error::Unavailable(m),
            StorageError::MailboxFull { mailbox, max_len } => {
                Error::MailboxFull { mailbox, max_len }
            }
            StorageError::UnknownMessage(id) => Error::NotFound {
                what: format!("message `{id}`"),
            },
            StorageError::UnknownTopic(t) => Error::NotFound {
                what: format!("topic `{t}`"),
            },
            e @ StorageError::NotPending { .. } => Error::Conflict(e.to_string()),
            StorageError::Corrupt(m) => Error::Internal(m),
            StorageError::KeyMissing { key_id } => Error::KeyMissing {
                message: StorageError::KeyMissing {
                    key_id: key_id.clone(),
                }
                .to_string(),
                key_id,
            },
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid { field, message } => Error::Invalid { field, message },
            RequestError::TooLarge { field, message } => Error::TooLarge { field, message },
        }
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        Error::Unavailable(format!("actor unavailable: {e}"))
    }
}
