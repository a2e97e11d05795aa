//! Messages the registry understands.

use actix::{Addr, Message};

use crate::mailbox::MailboxActor;

/// The live actor of a mailbox, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<MailboxActor>")]
pub struct GetMailbox {
    pub name: String,
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
}
