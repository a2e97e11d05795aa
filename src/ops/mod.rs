//! `ops`: the face-neutral operations of the broker. Every face (REST in [`crate::http`], the
//! WebSocket session in [`crate::ws`], the MCP tools, the CLI through the client) is a thin
//! adapter: parse its wire into the argument structs here, call one [`Ops`] method, render the
//! typed result or the one error type ([`ApiError`]).
//!
//! Why one layer: validation (SPEC sections 2 and 3, answered as `validation_failed` with
//! `details.field`), permission checks (Casbin) and rate limits are written once, so every face
//! refuses the same input with the same code and field, and a new face copies nothing.
//!
//! Arguments take values as a wire gives them (`Option<String>` for a query parameter that may
//! be a number or a word, `Option<i64>` for counts that may be out of range) and are checked
//! here. Results are `Serialize` structs whose JSON is exactly the REST body, so every face
//! renders the same object.
//!
//! Data flows one way: face → ops → dispatch / registry → the stream writers → storage actor →
//! Redis.

pub mod admin;
mod args;
pub mod blobs;
pub mod dead_letters;
pub mod delivery;
mod leases;
mod limits;
pub mod live;
pub mod mailboxes;
pub mod overview;
pub mod parse;
pub mod policies;
pub mod send;
pub mod subscriptions;
pub mod topics;

use std::sync::Arc;

use mailbox_actors::admin::{AdminStore, AuditLog};
use mailbox_actors::blobs::BlobStore;
use mailbox_actors::dead_letter::DeadLetterHandle;
use mailbox_actors::dispatch::Dispatcher;
use mailbox_actors::model::{check_mailbox_name, check_topic_name, MessageLimits};
use mailbox_actors::permission::PermissionHandle;
use mailbox_actors::registry::RegistryHandle;
use serde::Serialize;

pub use admin::{
    AgentCreated, AgentList, AuditArgs, AuditList, CreateAgentArgs, Stats, TokenArgs, TokenIssued,
};
pub use blobs::{BlobInfo, BlobUpload};
pub use dead_letters::{DeadLetterFilter, ListDeadLettersArgs, PurgeArgs, RequeueMatchingArgs};
pub use delivery::{Acked, NackArgs, NackResult, ReceiveArgs, Received, MAX_REASON};
pub use live::{MailboxStart, TopicStart, WatchTarget};
pub use mailboxes::{
    BrowseArgs, BrowsePage, ConfigureMailboxArgs, MailboxConfigured, MailboxInfo, MarkReadArgs,
    Unread, MAX_WAIT_SECONDS,
};
pub use policies::{CheckArgs, Decision, PolicyList, Reloaded};
pub use send::{BatchArgs, BatchReceipt, SendArgs, BODY_OVERHEAD};
pub use subscriptions::{ListSubscriptionsArgs, Subscribed, SubscriptionList};
pub use topics::{
    ConfigureTopicArgs, ListTopicsArgs, TopicConfigured, TopicInfo, TopicList, TopicPage,
};

use crate::auth::{Agent, TokenAuthority};
use crate::config::{Auth, Config, Limits, Quotas};
use crate::error::ApiError;

/// The engine handles [`Ops`] is built over.
pub struct Engines {
    pub registry: RegistryHandle,
    pub dead_letters: DeadLetterHandle,
    pub permissions: PermissionHandle,
    pub audit: AuditLog,
}

/// The operations, over cloneable engine handles. Cloning is shallow: handles are addresses and
/// the counters are shared (rate limits and quotas live in storage).
#[derive(Clone)]
pub struct Ops {
    /// Finds mailboxes and topics (reads, consumption, live subscriptions).
    registry: RegistryHandle,
    /// The send path: which streams a message goes to.
    dispatch: Dispatcher,
    /// The dead-letter queue's actor.
    dead_letters: DeadLetterHandle,
    /// Casbin, read under a lock by the caller's task.
    permissions: PermissionHandle,
    /// Agents, totals, and the rate and quota counters (in storage, so shared by nodes).
    admin: AdminStore,
    /// The audit trail (and security alerts).
    audit: AuditLog,
    /// Large payloads, uploaded and downloaded in chunks.
    blobs: BlobStore,
    /// Mints tokens for the API-key exchange.
    tokens: Arc<TokenAuthority>,
    /// `[auth]`: the API-key hash key.
    auth: Arc<Auth>,
    /// `[quotas]`: per-agent daily caps.
    quotas: Arc<Quotas>,
    /// Messages accepted over the last minute (stats).
    meter: Arc<admin::Meter>,
    /// Send tokens this node leased from the shared rate counters.
    leases: Arc<leases::Leases>,
    /// Message rules derived from `[limits]`.
    message_limits: MessageLimits,
    /// `[limits]` as configured (mailbox length cap, rate figures for error messages).
    limits: Arc<Limits>,
}

/// What `GET /health/ready` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Storage answered a ping.
    #[serde(skip)]
    pub ready: bool,
    /// `memory` or `redis`.
    pub storage: &'static str,
    /// Why storage is not ready.
    #[serde(skip)]
    pub reason: Option<String>,
    /// Ready, but sends go to the spool (storage down, or the spool still draining).
    #[serde(skip)]
    pub spooling: Option<String>,
}

impl Ops {
    pub fn new(engines: Engines, tokens: Arc<TokenAuthority>, config: &Config) -> Self {
        let Engines {
            registry,
            dead_letters,
            permissions,
            audit,
        } = engines;
        let limits = &config.limits;
        Self {
            dispatch: Dispatcher::new(registry.clone()),
            admin: AdminStore::new(&registry),
            blobs: BlobStore::new(&registry),
            registry,
            dead_letters,
            permissions,
            audit,
            tokens,
            auth: Arc::new(config.auth.clone()),
            quotas: Arc::new(config.quotas.clone()),
            meter: Arc::default(),
            leases: Arc::default(),
            message_limits: MessageLimits {
                max_message_bytes: limits.max_message_bytes,
                max_metadata_keys: limits.max_metadata_keys,
                max_tags: limits.max_tags,
            },
            limits: Arc::new(limits.clone()),
        }
    }

    /// The engine, for what is not a request/answer operation: a face's live subscriptions
    /// (WebSocket pushes), session bookkeeping, shutdown.
    pub fn registry(&self) -> &RegistryHandle {
        &self.registry
    }

    /// The message rules, e.g. for a face's body-size cap (`max_message_bytes + BODY_OVERHEAD`).
    pub fn message_limits(&self) -> &MessageLimits {
        &self.message_limits
    }

    /// Fails with `permission_denied` unless policy allows `act` on `obj`.
    pub fn require(&self, agent: &Agent, obj: &str, act: &str) -> Result<(), ApiError> {
        if self.allowed(agent, obj, act) {
            return Ok(());
        }
        self.audit.denied(&agent.id, obj, act);
        Err(ApiError::PermissionDenied(format!(
            "`{}` may not {act} `{obj}`",
            agent.id
        )))
    }

    /// Whether policy allows `act` on `obj` (no audit record: for choosing a path, not refusing).
    fn allowed(&self, agent: &Agent, obj: &str, act: &str) -> bool {
        self.permissions.check(&agent.id, &agent.roles, obj, act)
    }

    /// Checks the mailbox name and the caller's right to `act` on it.
    pub fn authorize_mailbox(&self, agent: &Agent, name: &str, act: &str) -> Result<(), ApiError> {
        check_mailbox_name(name)?;
        self.require(agent, &format!("mailbox:{name}"), act)
    }

    /// Checks the topic name and the caller's right to `act` on it.
    fn authorize_topic(&self, agent: &Agent, name: &str, act: &str) -> Result<(), ApiError> {
        check_topic_name("topic", name)?;
        self.require(agent, &format!("topic:{name}"), act)
    }

    /// A session opens (WebSocket, MCP): the agent becomes known, so broadcasts reach it. A
    /// failure is logged, not refused: the session works without it.
    pub async fn connect(&self, agent: &Agent) {
        if let Err(e) = self.registry.touch_agent(&agent.id).await {
            tracing::debug!(agent = %agent.id, error = %e, "could not record the agent as known");
        }
    }

    /// Whether the node takes sends (readiness probes). Storage down with a spool that has room
    /// is ready but degraded ("spooling"): sends are accepted durably, so a load balancer
    /// keeps the node; a spool still draining after storage is back says so too. Storage down
    /// without a spool, or with a full one, is not ready.
    pub async fn ready(&self) -> Readiness {
        let storage = self.registry.storage_kind();
        let spool = self.registry.spool();
        let pending = spool.map_or(0, |s| s.pending());
        let room = self.limits.max_message_bytes as u64 + send::BODY_OVERHEAD as u64;
        match self.registry.ping().await {
            Ok(()) => Readiness {
                ready: true,
                storage,
                reason: None,
                spooling: (pending > 0)
                    .then(|| format!("replaying {pending} spooled messages into storage")),
            },
            // Redis refusing the broker (credentials, ACL, certificate) is no blip to ride
            // out on the spool: an operator must act, so the node says not ready.
            Err(e) if !e.is_refusal() && spool.is_some_and(|s| s.has_room(room)) => Readiness {
                ready: true,
                storage,
                reason: None,
                spooling: Some(format!(
                    "storage: {e}; sends are spooled to disk ({pending} waiting)"
                )),
            },
            Err(e) => Readiness {
                ready: false,
                storage,
                reason: Some(match spool {
                    Some(_) => format!("storage: {e}; the spool is full"),
                    None => format!("storage: {e}"),
                }),
                spooling: None,
            },
        }
    }
}
