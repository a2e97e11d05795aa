//! `mailbox`: the faces of the Inter-LLM Mailbox — HTTP, WebSocket, CLI — over one operations
//! layer, plus config, telemetry and the Rust client library. The engine (actors, storage,
//! permissions) is the `mailbox-actors` crate.
//!
//! ```text
//!  http/ (REST)   ws/ (WebSocket sessions)   MCP   cli/ → client/ (REST, WebSocket)
//!        │               │                    │
//!        └─ parse ───────┴── parse ───────────┘        render: JSON body, ok frame, tool result
//!                        ▼                              errors: error.rs (status, frame, code)
//!  ops/  validate (SPEC 2/3 → validation_failed + details.field), Casbin (denials audited),
//!        rate limit and quotas (counters in storage), admin (agents, policies, audit, stats);
//!        typed arguments in, `Serialize` results out (the REST bodies)
//!                        ▼
//!  mailbox-actors: RegistryHandle (mailboxes, topics, router, sessions), DeadLetterHandle,
//!                  AdminStore + AuditLog (agents, audit trail, rate/quota counters),
//!                  PermissionHandle → stream writers → storage actor → Redis | memory
//! ```
//!
//! A face never imports another face, and never reaches storage: what faces need from the
//! engine beyond ops (live pushes, session bookkeeping, shutdown) goes through the engine's
//! handles ([`ops::Ops::registry`]). [`server::run`] starts it all on a listener and serves until
//! the shutdown future it is given resolves.

pub mod auth;
pub mod body;
pub mod cli;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod http;
pub mod mcp;
pub mod openapi;
pub mod ops;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod ws;
