//! Messages the registry understands.

use actix::{Addr, Message};

use crate::mailbox::MailboxActor;
use crate::topic::TopicActor;

/// The live actor of a mailbox, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<MailboxActor>")]
pub struct GetMailbox {
    pub name: String,
}

/// The live actor of a topic, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<TopicActor>")]
pub struct GetTopic {
    pub name: String,
}

/// Records a fan-out stored in mailboxes directly: (mailbox, seq, record). Mailboxes with a
/// live actor on this node get them pushed; the others have nobody to tell.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotifyStored {
    pub items: Vec<(String, u64, crate::storage::NewRecord)>,
}

/// Something became receivable in a mailbox outside its actor (e.g. a redelivery): wake its
/// long-polls if it has a live actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notify {
    pub name: String,
}

/// How many actors of each kind are alive on this node.
#[derive(Message)]
#[rtype(result = "ActorCounts")]
pub struct CountActors;

#[derive(Debug, Clone, Default, serde::Serialize)]
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
