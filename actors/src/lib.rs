//! `mailbox-actors`: the engine of the Inter-LLM Mailbox. It knows actors and storage, never HTTP.
//!
//! ```text
//!  face (HTTP / WS / MCP / CLI, crate `mailbox`)
//!    │ 1. PermissionHandle::check  ── read lock ──▶ Arc<casbin::Enforcer>  ◀── PermissionActor
//!    │                                                       (polls the policy files, swaps)
//!    │ 2. RegistryHandle::send / send_batch / mailbox(name)
//!    ▼
//!  Registry (actor, supervised) ── GetMailbox ──▶ MailboxActor (one per active mailbox;
//!    │   retires idle actors                        group-commits writes, wakes long-polls)
//!    │   ◀── Notify (redelivery: wake long-polls)       │ Append
//!    │                                                  ▼
//!  StorageHandle ─────────────────────────────────▶ StorageActor (circuit breaker, metrics)
//!    ▲  receive / ack / nack (MailboxHandle)            │
//!    │                                                  ▼
//!    ├── RetryActor (supervised): every 200 ms  Engine::Redis | Engine::Memory
//!    │     RetryDue → redeliver / dead-letter,    per mailbox: ready, in flight, awaiting
//!    │     then Notify the registry               redelivery, attempts, dead-letter outbox;
//!    └── DeadLetterActor (supervised): list,      global: retry schedule, dead-letter queue
//!          requeue (→ MailboxHandle::deliver), purge, retention cleanup
//! ```
//!
//! Reads (browse, stats) and consumption (receive, ack, nack: each one atomic storage call) go
//! straight from the handle to the storage actor; only writes are ordered by the mailbox actor.
//! Every guarantee is anchored in storage, never in actor memory: actix drops the message being
//! handled when an actor restarts. The retry schedule and the dead-letter queue live in storage
//! too (see [`storage::delivery`]), so a broker killed mid-backoff redelivers after a restart.

pub mod dead_letter;
pub mod error;
pub mod mailbox;
pub mod model;
pub mod permission;
pub mod registry;
pub mod retry;
pub mod storage;

pub use error::Error;
