//! `mailbox-actors`: the engine of the Inter-LLM Mailbox. It knows actors and storage, never HTTP.
//!
//! ```text
//!  face (HTTP / WS / MCP / CLI, crate `mailbox`)
//!    │ 1. PermissionHandle::check  ── read lock ──▶ Arc<casbin::Enforcer>  ◀── PermissionActor
//!    │                                                       (polls the policy files, swaps)
//!    │ 2. RegistryHandle::send / mailbox(name) / topic(name) / router()
//!    ▼
//!  Registry (actor, supervised) ── GetMailbox ──▶ MailboxActor (one per active mailbox;
//!    │   retires idle actors,                       group-commits writes, pushes to its live
//!    │   trims topic histories by age               subscribers, wakes long-polls)
//!    │                          ── GetTopic ────▶ TopicActor (one per active topic;
//!    │                                              group-commits into the topic history)
//!    │                                                  │ Route (each stored message)
//!    │                                                  ▼
//!    │                                   Router (one per node): live trie of WS pattern
//!    │                                   subscriptions → Pushed to sessions; durable trie of
//!    │                                   subscriptions → which mailboxes get a copy
//!    ▼
//!  StorageHandle ─────────────────────────────────▶ StorageActor (circuit breaker, metrics)
//!                                                       │
//!                                                       ▼
//!                                              Engine::Redis | Engine::Memory
//! ```
//!
//! The path of one message:
//! - **direct** (`mailbox:bob`): MailboxActor(bob) appends it (one Lua script) and pushes it to
//!   bob's live subscriptions.
//! - **topic** (`topic:research.papers.ml`): TopicActor appends it to the topic's history and
//!   hands it to the Router, which pushes it to every matching live pattern subscription; then
//!   the send path asks the Router's durable trie which mailboxes subscribe and appends one copy
//!   to each (pipelined, `storage.append_many`), telling their live mailbox actors.
//! - **broadcast**: one copy to every known agent's mailbox, the same way.
//!
//! Reads (browse, stats) go straight from the handle to the storage actor; only writes are
//! ordered by the mailbox and topic actors. Every guarantee is anchored in storage, never in actor
//! memory: actix drops the message being handled when an actor restarts.

pub mod error;
pub mod mailbox;
pub mod model;
pub mod permission;
pub mod registry;
pub mod storage;
pub mod topic;

pub use error::Error;
