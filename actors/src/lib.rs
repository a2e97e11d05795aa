//! `mailbox-actors`: the engine of the Inter-LLM Mailbox. It knows actors and storage, never HTTP.
//!
//! ```text
//!  face (HTTP / WS / MCP / CLI, crate `mailbox`) ── ops: validate, permit, rate-limit
//!    │ 1. PermissionHandle::check  ── read lock ──▶ Arc<casbin::Enforcer>  ◀── PermissionActor
//!    │                                                       (polls the policy files, swaps)
//!    │ 2. Dispatcher::send / send_batch          (the send path: which streams get a copy)
//!    │    RegistryHandle::mailbox(name) / topic(name) / router()   (reads, consumption)
//!    ▼
//!  Registry (actor, supervised) ── GetWriter ──▶ StreamWriter<K> (one per active stream;
//!    │   starts and retires writers,              orders, group-commits, retires when idle)
//!    │   trims topic histories by age,             K = MailboxKind: pushes to its live
//!    │   tracks WebSocket sessions                     subscribers, wakes long-polls,
//!    │   ◀── Notify (redelivery: wake long-polls)      announces on the EventBus
//!    │                                             K = TopicKind: hands each stored message
//!    │                                                  to the Router
//!    │                                   Router (one per node): live trie of WS pattern
//!    │                                   subscriptions → Pushed to sessions; durable trie of
//!    │                                   subscriptions → which mailboxes get a copy
//!    ▼                                                  │ Append (storage call)
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
//! While storage cannot take a mailbox append, the mailbox writer puts it in the node's
//! [`spool`] (an fsynced on-disk log) instead and answers `Spooled`; the spool's replayer
//! stores it in order when storage is back (idempotently: an append of a message id the stream
//! holds answers `Duplicate`). Each mailbox writer also keeps a bounded cache of its recent
//! stored messages, which browses fall back to while storage is down.
//!
//! Every stream has exactly one writer on a node: direct sends, fan-out and broadcast copies and
//! dead-letter requeues into a mailbox all go through its [`stream::StreamWriter`].
//!
//! The path of one message:
//! - **direct** (`mailbox:bob`): the Dispatcher hands it to bob's writer, which appends it (one
//!   Lua script, with its delivery state, group-committed with whatever else is queued) and
//!   pushes it to bob's live subscriptions.
//! - **topic** (`topic:research.papers.ml`): the topic's writer appends it to the history and
//!   hands it to the Router, which pushes it to every matching live pattern subscription; then
//!   the Dispatcher asks the Router's durable trie which mailboxes subscribe and hands one copy
//!   to each mailbox's writer (many at a time), with the same delivery state as a direct send.
//! - **broadcast**: one copy to every known agent's mailbox, the same way.
//! - **batch** across mailboxes: an intent record first, then each mailbox's writer, then the
//!   intent goes; every node rolls forward intents a crash left ([`dispatch::intent`]).
//!
//! Storage is one Redis or a Redis Cluster (`redis.cluster_urls`): every key of a stream shares
//! its hash tag, so each Lua script stays in one slot; pipelines across slots are split per slot
//! (`storage/redis/conn.rs`); all key names are in `storage/redis/keys.rs`.
//!
//! Reads (browse, stats) and consumption (receive, ack, nack: each one atomic storage call) go
//! straight from the handle to the storage actor; only writes are ordered by the writers. Every
//! guarantee is anchored in storage, never in actor memory: actix drops the message being
//! handled when an actor restarts. The retry schedule and the dead-letter queue live in storage
//! too (see [`storage::delivery`]), so a broker killed mid-backoff redelivers after a restart.

pub mod admin;
pub mod blobs;
pub mod dead_letter;
pub mod dispatch;
pub mod error;
pub mod mailbox;
pub mod model;
pub mod permission;
pub mod registry;
pub mod retry;
pub mod spool;
pub mod storage;
pub mod stream;
pub mod topic;

pub use error::Error;
