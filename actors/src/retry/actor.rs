//! The retry scheduler actor. It holds no state of its own worth keeping: a restart (panic,
//! supervisor) only loses the batch in hand, whose entries are still in storage.

use std::time::Duration;

use actix::prelude::*;

use super::messages::{Reconcile, RunDue};
use super::RetrySettings;
use crate::error::Error;
use crate::registry::RegistryHandle;
use crate::storage::DueReport;

/// Wait before retrying a reconciliation that failed (storage down at start).
const RECONCILE_RETRY: Duration = Duration::from_secs(5);

pub struct RetryActor {
    registry: RegistryHandle,
    settings: RetrySettings,
    /// A timer-driven pass is running: the next tick skips instead of piling up.
    busy: bool,
}

impl RetryActor {
    pub fn new(registry: RegistryHandle, settings: RetrySettings) -> Self {
        Self {
            registry,
            settings,
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (storage, delivery, batch) = (
            self.registry.storage().clone(),
            self.registry.delivery().clone(),
            self.settings.batch,
        );
        ctx.spawn(
            async move { storage.retry_due(batch, &delivery).await }
                .into_actor(self)
                .map(move |r, act, ctx| {
                    act.busy = false;
                    match r {
                        Ok(report) => {
                            act.after(&report);
                            if report.processed >= batch {
                                // More is due: go on without waiting for the timer.
                                act.tick(ctx);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "retry pass failed; next tick retries")
                        }
                    }
                }),
        );
    }

    fn after(&self, report: &DueReport) {
        for name in &report.woken {
            self.registry.notify(name);
        }
        if report.dead_lettered > 0 || !report.woken.is_empty() {
            tracing::debug!(
                processed = report.processed,
                woken = report.woken.len(),
                dead_lettered = report.dead_lettered,
                "retry pass"
            );
        }
    }
}

impl Actor for RetryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "retry").increment(1.0);
        ctx.notify(Reconcile);
        ctx.run_interval(self.settings.poll_every, |act, ctx| act.tick(ctx));
        ctx.run_interval(self.settings.reconcile_every, |_, ctx| {
            ctx.notify(Reconcile)
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("mailbox_actors", "kind" => "retry").decrement(1.0);
    }
}

impl Supervised for RetryActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("retry scheduler restarting");
        self.busy = false;
    }
}

impl Handler<RunDue> for RetryActor {
    type Result = ResponseActFuture<Self, Result<DueReport, Error>>;

    fn handle(&mut self, _: RunDue, _: &mut Context<Self>) -> Self::Result {
        let (storage, delivery, batch) = (
            self.registry.storage().clone(),
            self.registry.delivery().clone(),
            self.settings.batch,
        );
        Box::pin(
            async move { storage.retry_due(batch, &delivery).await }
                .into_actor(self)
                .map(|r, act, _| {
                    let report = r?;
                    act.after(&report);
                    Ok(report)
                }),
        )
    }
}

impl Handler<Reconcile> for RetryActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) -> Self::Result {
        let storage = self.registry.storage().clone();
        Box::pin(
            async move { storage.retry_reconcile().await }
                .into_actor(self)
                .map(|r, _, ctx| match r {
                    Ok(n) => tracing::debug!(entries = n, "retry schedule reconciled"),
                    Err(e) => {
                        tracing::warn!(error = %e, "retry schedule reconciliation failed; retrying soon");
                        ctx.run_later(RECONCILE_RETRY, |_, ctx| ctx.notify(Reconcile));
                    }
                }),
        )
    }
}
