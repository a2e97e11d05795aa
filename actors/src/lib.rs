//! `mailbox-actors`: the engine of the Inter-LLM Mailbox. It knows actors and storage, never HTTP.
//!
//! ```text
//!  face (HTTP / WS / MCP / CLI, crate `mailbox`)
//!    │ 1. PermissionHandle::check  ── read lock ──▶ Arc<casbin::Enforcer>  ◀── PermissionActor
//!    │                                                       (polls the policy files, swaps)
//!    │ 2. RegistryHandle::send / send_batch / mailbox(name) / topic(name) / router()
//!    ▼
//!  Registry (actor, supervised) ── GetMailbox ──▶ MailboxActor (one per active mailbox;
//!    │   retires idle actors,                       group-commits writes, pushes to its live
//!    │   trims topic histories by age               subscribers, wakes long-polls, announces
//!    │   ◀── Notify (redelivery: wake long-polls)   its writes on the EventBus)
//!    │                          ── GetTopic ────▶ TopicActor (one per active topic;
//!    │                                              group-commits into the topic history)
//!    │                                                  │ Route (each stored message)
//!    │                                                  ▼
//!    │                                   Router (one per node): live trie of WS pattern
//!    │                                   subscriptions → Pushed to sessions; durable trie of
//!    │                                   subscriptions → which mailboxes get a copy
//!    │                                                  │ Append
//!    ▼                                                  ▼
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
//! The path of one message:
//! - **direct** (`mailbox:bob`): MailboxActor(bob) appends it (one Lua script, with its delivery
//!   state) and pushes it to bob's live subscriptions.
//! - **topic** (`topic:research.papers.ml`): TopicActor appends it to the topic's history and
//!   hands it to the Router, which pushes it to every matching live pattern subscription; then
//!   the send path asks the Router's durable trie which mailboxes subscribe and appends one copy
//!   to each (pipelined, `storage.append_many`, with the same delivery state as a direct send),
//!   telling their live mailbox actors.
//! - **broadcast**: one copy to every known agent's mailbox, the same way.
//!
//! Reads (browse, stats) and consumption (receive, ack, nack: each one atomic storage call) go
//! straight from the handle to the storage actor; only writes are ordered by the mailbox and
//! topic actors. Every guarantee is anchored in storage, never in actor memory: actix drops the
//! message being handled when an actor restarts. The retry schedule and the dead-letter queue
//! live in storage too (see [`storage::delivery`]), so a broker killed mid-backoff redelivers
//! after a restart.

pub mod dead_letter;
pub mod error;
pub mod mailbox;
pub mod model;
pub mod permission;
pub mod registry;
pub mod retry;
pub mod storage;
pub mod topic;

pub use error::Error;
