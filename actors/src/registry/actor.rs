//! The supervising registry: finds or starts the actor of a mailbox, retires idle ones, and
//! counts what is alive. Every later actor kind (topic, session, retry, dead letters) hangs here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::messages::{ActorCounts, CountActors, GetMailbox, Notify};
use crate::mailbox::messages::{Retire, Wake};
use crate::mailbox::{Liveness, MailboxActor};
use crate::storage::{DeliverySettings, StorageHandle};

/// What the registry needs to start actors.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// `limits.mailbox_max_len`: the length a mailbox without its own `max_len` may reach.
    pub default_max_len: u64,
    /// A mailbox actor with no activity for this long is stopped (its data stays in storage).
    pub idle_timeout: Duration,
    /// Config `[delivery]`: ack timeout, backoff, attempts.
    pub delivery: DeliverySettings,
}

pub struct Registry {
    storage: StorageHandle,
    settings: RegistrySettings,
    mailboxes: HashMap<String, (Addr<MailboxActor>, Arc<Liveness>)>,
}

impl Registry {
    pub fn new(storage: StorageHandle, settings: RegistrySettings) -> Self {
        Self {
            storage,
            settings,
            mailboxes: HashMap::new(),
        }
    }

    fn sweep(&mut self) {
        let idle_ms = i64::try_from(self.settings.idle_timeout.as_millis()).unwrap_or(i64::MAX);
        self.mailboxes.retain(|name, (addr, live)| {
            let keep = addr.connected() && !live.is_idle(idle_ms);
            if !keep {
                tracing::debug!(mailbox = %name, "retiring idle mailbox actor");
                addr.do_send(Retire);
            }
            keep
        });
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.settings.idle_timeout / 2).max(Duration::from_millis(100));
        ctx.run_interval(every, |act, _| act.sweep());
    }
}

impl Supervised for Registry {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Children keep running; forgetting them only means the next use starts a fresh actor.
        self.mailboxes.clear();
    }
}

impl Handler<GetMailbox> for Registry {
    type Result = MessageResult<GetMailbox>;

    fn handle(&mut self, msg: GetMailbox, _: &mut Context<Self>) -> Self::Result {
        if let Some((addr, _)) = self.mailboxes.get(&msg.name) {
            if addr.connected() {
                return MessageResult(addr.clone());
            }
        }
        let live = Arc::new(Liveness::default());
        let (storage, max_len, name, l) = (
            self.storage.clone(),
            self.settings.default_max_len,
            msg.name.clone(),
            live.clone(),
        );
        let addr = Supervisor::start(move |_| MailboxActor::new(name, storage, max_len, l));
        self.mailboxes.insert(msg.name, (addr.clone(), live));
        MessageResult(addr)
    }
}

impl Handler<Notify> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) {
        // Only a live actor can have waiters; an absent one has nobody to wake.
        if let Some((addr, _)) = self.mailboxes.get(&msg.name) {
            addr.do_send(Wake);
        }
    }
}

impl Handler<CountActors> for Registry {
    type Result = MessageResult<CountActors>;

    fn handle(&mut self, _: CountActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ActorCounts {
            mailboxes: self.mailboxes.len(),
        })
    }
}
