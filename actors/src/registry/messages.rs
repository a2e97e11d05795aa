//! Messages the registry understands.

use actix::{Addr, Message};

use crate::mailbox::MailboxActor;

/// The live actor of a mailbox, started if needed.
#[derive(Message)]
#[rtype(result = "Addr<MailboxActor>")]
pub struct GetMailbox {
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
