//! Admin data: agent records (API keys, kept only as hashes), audit events, and the shapes of
//! the shared rate and quota counters. Pure data, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An agent an admin created. `key_hash` is the only trace of its API key (see the README,
/// "Administration": an HMAC-SHA256 under a server key); it never leaves the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub roles: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Hex HMAC of the API key.
    pub key_hash: String,
}

/// What an audit event is about (SPEC section 5, "Shapes of the admin routes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    AuthFailure,
    PermissionDenied,
    AdminAction,
    PolicyReload,
    SecurityAlert,
}

impl AuditKind {
    pub const ALL: [AuditKind; 5] = [
        AuditKind::AuthFailure,
        AuditKind::PermissionDenied,
        AuditKind::AdminAction,
        AuditKind::PolicyReload,
        AuditKind::SecurityAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::AuthFailure => "auth_failure",
            AuditKind::PermissionDenied => "permission_denied",
            AuditKind::AdminAction => "admin_action",
            AuditKind::PolicyReload => "policy_reload",
            AuditKind::SecurityAlert => "security_alert",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One audit event. `id` is assigned by storage when it is appended (`<ms>-<n>`, ordered by
/// time), so it is empty on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    #[serde(default)]
    pub id: String,
    /// RFC 3339, UTC, ms.
    pub at: String,
    pub kind: AuditKind,
    /// Who did it, or who was refused; `null` for events of no one (a file-triggered reload).
    pub agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Most audit events one page answers.
pub const MAX_AUDIT_PAGE: usize = 500;
/// Most stored events one listing looks at before it answers a short page (with `next`).
pub const MAX_AUDIT_SCAN: usize = 10_000;

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub agent: Option<String>,
    pub kind: Option<AuditKind>,
    /// Only events at or after this time (unix ms).
    pub since_ms: Option<i64>,
    /// Only events older than this id (the `next` of the previous page).
    pub before: Option<String>,
    pub limit: usize,
}

impl AuditQuery {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.kind.is_none_or(|k| k == e.kind)
            && self
                .agent
                .as_deref()
                .is_none_or(|a| e.agent.as_deref() == Some(a))
    }
}

/// `{events, next}`: `next` is set when older events may remain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next: Option<String>,
}

/// The unix-ms time of an audit id (`<ms>-<n>`).
pub fn audit_id_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

/// A rate: `per_second` sustained, `burst` at once (GCRA / token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub per_second: f64,
    pub burst: f64,
}

/// The answer of a rate or quota counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused; the caller may retry after this many seconds.
    Refused {
        retry_after: u64,
    },
}

/// Per-day caps of one agent; 0 means no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaSpec {
    pub messages_per_day: u64,
    pub bytes_per_day: u64,
}

/// What one quota check takes from an agent's day.
#[derive(Debug, Clone, Copy)]
pub struct QuotaTake {
    pub messages: u64,
    pub bytes: u64,
    pub caps: QuotaSpec,
    /// The UTC day, `YYYYMMDD`: counters are per day.
    pub day: u32,
    /// Seconds until the day ends (the answer's `retry_after`).
    pub day_left: u64,
}

/// Which cap a refused quota check hit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOutcome {
    Allowed,
    OverMessages,
    OverBytes,
}

/// Totals of what storage holds (`GET /v1/admin/stats`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StoreCounts {
    /// Agents with a mailbox.
    pub mailboxes: u64,
    pub topics: u64,
    pub dead_letters: u64,
    /// Agents created by an admin (with an API key).
    pub agents: u64,
}
