//! The dead-letter actor. Handlers run concurrently (each is a future over storage); the actor
//! itself keeps only its settings, so a restart loses nothing.

use actix::prelude::*;
use chrono::Utc;

use super::messages::{
    Cleanup, Count, Delete, Get, List, Purge, Requeue, RequeueMatching, Requeued,
};
use super::DeadLetterSettings;
use crate::error::Error;
use crate::model;
use crate::registry::RegistryHandle;
use crate::storage::{Appended, DeadPage, DeadQuery, NewRecord, MAX_DEAD_PAGE};

pub struct DeadLetterActor {
    registry: RegistryHandle,
    settings: DeadLetterSettings,
}

impl DeadLetterActor {
    pub fn new(registry: RegistryHandle, settings: DeadLetterSettings) -> Self {
        Self { registry, settings }
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: format!("dead letter `{id}`"),
    }
}

/// Requeues one dead letter: a fresh copy of its message goes back into its mailbox (new id and
/// seq, attempts and expiry start over), then the dead letter is deleted. The copy carries an
/// idempotency key made of the dead letter's id, so a requeue repeated after a failure between
/// the two steps does not store a second copy.
async fn requeue(registry: &RegistryHandle, id: &str) -> Result<Requeued, Error> {
    let storage = registry.storage();
    let d = storage.dlq_get(id).await?.ok_or_else(|| not_found(id))?;
    let now = Utc::now();
    let mut env = d.message;
    env.id = model::new_id();
    env.seq = String::new();
    env.attempt = None;
    env.created_at = now;
    env.expires_at = env
        .ttl_seconds
        .and_then(|t| i64::try_from(t).ok())
        .map(|t| now + chrono::Duration::seconds(t));
    env.mailbox = Some(d.mailbox.clone());
    let record = NewRecord::of(&env, Some(format!("!dlq:{id}")))?;
    let outcome = registry.mailbox(&d.mailbox).deliver(vec![record]).await?;
    let (new_id, seq) = match outcome.results.first() {
        Some(Appended::Stored { seq }) => (env.id, *seq),
        Some(Appended::Duplicate { id, seq }) => (id.clone(), *seq),
        // Kept in the spool: it reaches the mailbox in order; its seq is not known yet.
        Some(Appended::Spooled { id }) => (id.clone(), 0),
        None => return Err(Error::Internal("append answered no result".into())),
    };
    storage.dlq_delete(id).await?;
    tracing::info!(target: "audit", kind = "dead_letter_requeued", dead_letter = %id, message_id = %new_id, mailbox = %d.mailbox, "dead letter requeued");
    Ok(Requeued {
        dead_letter: id.to_owned(),
        id: new_id,
        mailbox: d.mailbox,
        seq: seq.to_string(),
    })
}

impl Actor for DeadLetterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "dead_letter").increment(1.0);
        ctx.notify(Cleanup);
        ctx.run_interval(self.settings.cleanup_every, |_, ctx| ctx.notify(Cleanup));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "dead_letter").decrement(1.0);
    }
}

impl Supervised for DeadLetterActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("dead-letter actor restarting");
    }
}

impl Handler<List> for DeadLetterActor {
    type Result = ResponseFuture<Result<DeadPage, Error>>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(async move { Ok(storage.dlq_list(msg.query).await?) })
    }
}

impl Handler<Get> for DeadLetterActor {
    type Result = ResponseFuture<Result<crate::storage::DeadLetter, Error>>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(async move {
            storage
                .dlq_get(&msg.id)
                .await?
                .ok_or_else(|| not_found(&msg.id))
        })
    }
}

impl Handler<Delete> for DeadLetterActor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(async move {
            if storage.dlq_delete(&msg.id).await? {
                Ok(())
            } else {
                Err(not_found(&msg.id))
            }
        })
    }
}

impl Handler<Requeue> for DeadLetterActor {
    type Result = ResponseFuture<Result<Requeued, Error>>;

    fn handle(&mut self, msg: Requeue, _: &mut Context<Self>) -> Self::Result {
        let registry = self.registry.clone();
        Box::pin(async move { requeue(&registry, &msg.id).await })
    }
}

impl Handler<RequeueMatching> for DeadLetterActor {
    type Result = ResponseFuture<Result<u64, Error>>;

    fn handle(&mut self, msg: RequeueMatching, _: &mut Context<Self>) -> Self::Result {
        let registry = self.registry.clone();
        Box::pin(async move {
            let mut n = 0;
            let mut after = None;
            loop {
                let page = registry
                    .storage()
                    .dlq_list(DeadQuery {
                        mailbox: msg.mailbox.clone(),
                        reason: msg.reason,
                        after: after.clone(),
                        limit: MAX_DEAD_PAGE,
                    })
                    .await?;
                for d in &page.dead_letters {
                    match requeue(&registry, &d.id).await {
                        Ok(_) => n += 1,
                        // Deleted or requeued meanwhile by someone else: not ours to count.
                        Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(n),
                }
            }
        })
    }
}

impl Handler<Purge> for DeadLetterActor {
    type Result = ResponseFuture<Result<u64, Error>>;

    fn handle(&mut self, msg: Purge, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(async move { Ok(storage.dlq_purge(msg.before.timestamp_millis()).await?) })
    }
}

impl Handler<Count> for DeadLetterActor {
    type Result = ResponseFuture<Result<u64, Error>>;

    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(async move { Ok(storage.dlq_count().await?) })
    }
}

impl Handler<Cleanup> for DeadLetterActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Cleanup, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        let retention =
            chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        Box::pin(async move {
            let Some(before) = Utc::now().checked_sub_signed(retention) else {
                return;
            };
            match storage.dlq_purge(before.timestamp_millis()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "dead letters past retention removed"),
                Err(e) => {
                    tracing::debug!(error = %e, "dead-letter cleanup failed; next run retries")
                }
            }
        })
    }
}
