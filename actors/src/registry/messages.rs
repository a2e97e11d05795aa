//! Messages the registry understands.

use std::marker::PhantomData;

use actix::{Addr, Message};

use crate::stream::{StreamKind, StreamWriter};

/// The live writer of a mailbox or topic, started if needed.
pub struct GetWriter<K> {
    pub name: String,
    pub kind: PhantomData<fn() -> K>,
}

impl<K: StreamKind> Message for GetWriter<K> {
    type Result = Addr<StreamWriter<K>>;
}

/// Something became receivable in a mailbox outside its writer (e.g. a redelivery): wake its
/// long-polls if it has a live writer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notify {
    pub name: String,
}

/// How many actors of each kind are alive on this node.
#[derive(Message)]
#[rtype(result = "ActorCounts")]
pub struct CountActors;

#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ActorCounts {
    pub mailboxes: usize,
    pub topics: usize,
    pub sessions: usize,
}

/// Asks a session to close with a WebSocket close code (1001 at shutdown).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub code: u16,
    pub reason: String,
}

/// A session has opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSession {
    pub id: u64,
    pub agent: String,
    pub close: actix::Recipient<CloseSession>,
}

/// A session has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterSession {
    pub id: u64,
}

/// Close every session (graceful shutdown); answers how many were asked.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAllSessions {
    pub code: u16,
    pub reason: String,
}
