//! Pure data: messages, addresses, ids and their validation. No I/O lives here.

pub mod address;
pub mod admin;
pub mod blob;
pub mod delivery;
pub mod message;
pub mod payload;
pub mod topic;

pub use address::{is_valid_agent_id, is_valid_topic, is_valid_topic_pattern, Address};
pub use admin::{
    audit_id_ms, Admission, AgentRecord, AuditEvent, AuditKind, AuditPage, AuditQuery,
    QuotaOutcome, QuotaSpec, QuotaTake, RateSpec, StoreCounts, MAX_AUDIT_PAGE, MAX_AUDIT_SCAN,
};
pub use blob::{is_valid_blob_id, BlobMeta, BLOB_CHUNK};
pub use delivery::{
    DeadLetter, DeadPage, DeadQuery, DeadReason, DeliverySettings, MailboxStats, NackOutcome,
    ReadMark, ReadState, MAX_DEAD_PAGE,
};
pub use message::{
    check_mailbox_name, Envelope, MailboxConfig, MessageFilter, MessageLimits, Overflow, Priority,
    RequestError, SendRequest, StoredEnvelope,
};
pub use payload::Payload;
pub use topic::{
    check_topic_name, check_topic_pattern, is_single_topic, is_under, Subscription, TopicConfig,
    TopicStats,
};

/// A new ULID string: unique and time-sortable.
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}
