//! `mailbox`: the faces of the Inter-LLM Mailbox — HTTP, CLI, config, telemetry and the Rust
//! client library. The engine (actors, storage, permissions) is the `mailbox-actors` crate.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod mcp;
pub mod ratelimit;
pub mod server;
pub mod telemetry;
pub mod ws;
