//! `mailbox-actors`: the engine of the Inter-LLM Mailbox. It knows actors and storage, never HTTP.
//!
//! ```text
//!  face (HTTP / WS / MCP / CLI, crate `mailbox`)
//!    │ 1. PermissionHandle::check  ── read lock ──▶ Arc<casbin::Enforcer>  ◀── PermissionActor
//!    │                                                       (polls the policy files, swaps)
//!    │ 2. RegistryHandle::send / mailbox(name)
//!    ▼
//!  Registry (actor, supervised) ── GetMailbox ──▶ MailboxActor (one per active mailbox;
//!    │   retires idle actors                        group-commits writes, wakes long-polls)
//!    │                                                  │ Append
//!    ▼                                                  ▼
//!  StorageHandle ─────────────────────────────────▶ StorageActor (circuit breaker, metrics)
//!                                                       │
//!                                                       ▼
//!                                              Engine::Redis | Engine::Memory
//! ```
//!
//! Reads (browse, stats) go straight from the handle to the storage actor; only writes are
//! ordered by the mailbox actor. Every guarantee is anchored in storage, never in actor memory:
//! actix drops the message being handled when an actor restarts.

pub mod error;
pub mod mailbox;
pub mod model;
pub mod permission;
pub mod registry;
pub mod storage;
pub mod topic;

pub use error::Error;
