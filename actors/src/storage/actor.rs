//! The storage actor: the one door to the engine. It owns the circuit breaker (a dead Redis is
//! not hammered; callers fail fast with `Unavailable`) and the storage metrics
//! (`mailbox_storage_errors_total`, `mailbox_storage_circuit_open`).
//!
//! It has one message, [`Call`]: any operation of the engine, as a closure over it. The
//! operations are declared once, in [`super::engine`], which also generates the
//! [`StorageHandle`] method of each from the same line; so neither this actor nor the handle
//! restates an operation, and a new one needs no edit here. Every call is wrapped in the
//! breaker and runs concurrently with the others, never serialised. A call made on a thread of
//! the actor system runs as a task of that thread (see [`StorageHandle::call`]); one made
//! elsewhere is handed to the actor. Either way a call, once started, runs to its end even if
//! the caller stops waiting: the engine never sees half an operation dropped by a gone client.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::{Engine, StorageEngine, StorageError};

/// Consecutive backend failures that open the circuit.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open circuit refuses calls before letting one through to probe.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(2);

/// Stops calls to a backend that keeps failing; shared by the actor's in-flight futures.
#[derive(Default)]
pub struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    open: AtomicBool,
    /// The failure that opened the circuit, so fast-failed calls (and readiness) still say
    /// why, e.g. that Redis refused the credentials.
    last_error: std::sync::Mutex<String>,
}

impl Breaker {
    fn check(&self) -> Result<(), StorageError> {
        if self.open.load(Ordering::Relaxed)
            && Utc::now().timestamp_millis() < self.open_until_ms.load(Ordering::Relaxed)
        {
            let last = self
                .last_error
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default();
            return Err(StorageError::Unavailable(format!(
                "storage circuit open after repeated failures; last error: {last}"
            )));
        }
        Ok(())
    }

    fn record<T>(&self, r: &Result<T, StorageError>) {
        match r {
            Err(StorageError::Unavailable(e)) => {
                metrics::counter!("mailbox_storage_errors_total").increment(1);
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if let Ok(mut last) = self.last_error.lock() {
                    last.clone_from(e);
                }
                if n >= BREAKER_THRESHOLD {
                    let until =
                        Utc::now().timestamp_millis() + BREAKER_COOL_DOWN.as_millis() as i64;
                    self.open_until_ms.store(until, Ordering::Relaxed);
                    if !self.open.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "storage circuit opened");
                        metrics::gauge!("mailbox_storage_circuit_open").set(1.0);
                    }
                }
            }
            _ => {
                self.failures.store(0, Ordering::Relaxed);
                if self.open.swap(false, Ordering::Relaxed) {
                    tracing::info!("storage circuit closed");
                    metrics::gauge!("mailbox_storage_circuit_open").set(0.0);
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

pub struct StorageActor {
    engine: Arc<dyn StorageEngine>,
    breaker: Arc<Breaker>,
}

impl Actor for StorageActor {
    type Context = Context<Self>;
}

impl Supervised for StorageActor {}

/// The future of one engine operation, owning everything it needs.
type OpFuture<T> = Pin<Box<dyn Future<Output = Result<T, StorageError>>>>;

/// Any storage operation: a closure that starts it on the engine. Built by the
/// [`StorageHandle`] methods (see [`super::engine`]).
pub struct Call<T>(Box<dyn FnOnce(Arc<dyn StorageEngine>) -> OpFuture<T> + Send>);

impl<T: 'static> Message for Call<T> {
    type Result = Result<T, StorageError>;
}

impl<T: 'static> Handler<Call<T>> for StorageActor {
    type Result = ResponseFuture<Result<T, StorageError>>;

    fn handle(&mut self, Call(op): Call<T>, _: &mut Context<Self>) -> Self::Result {
        Box::pin(guarded(self.engine.clone(), self.breaker.clone(), op))
    }
}

/// One call through the circuit breaker.
async fn guarded<T>(
    engine: Arc<dyn StorageEngine>,
    breaker: Arc<Breaker>,
    op: impl FnOnce(Arc<dyn StorageEngine>) -> OpFuture<T>,
) -> Result<T, StorageError> {
    breaker.check()?;
    let r = op(engine).await;
    breaker.record(&r);
    r
}

/// Cloneable, typed access to the storage actor. Its operation methods (`append`, `receive`,
/// `dlq_list`, …) are generated in [`super::engine`] from the table of operations, with the
/// same names and signatures as the engine's.
#[derive(Clone)]
pub struct StorageHandle {
    addr: Addr<StorageActor>,
    engine: Arc<dyn StorageEngine>,
    breaker: Arc<Breaker>,
    kind: &'static str,
}

fn gone(e: MailboxError) -> StorageError {
    StorageError::Unavailable(format!("storage actor unavailable: {e}"))
}

impl StorageHandle {
    /// Starts the storage actor under a supervisor on the current arbiter.
    pub fn start(engine: Engine) -> Self {
        let breaker = Arc::new(Breaker::default());
        let kind = engine.kind();
        let engine = engine.shared();
        let (e, b) = (engine.clone(), breaker.clone());
        let addr = Supervisor::start(move |_| StorageActor {
            engine: e,
            breaker: b,
        });
        metrics::gauge!("mailbox_storage_circuit_open").set(0.0);
        Self {
            addr,
            engine,
            breaker,
            kind,
        }
    }

    pub fn engine_kind(&self) -> &'static str {
        self.kind
    }

    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs `op` on the engine through the circuit breaker. `op` owns its arguments: the call
    /// may outlive the caller, and runs to its end even if the caller stops waiting.
    ///
    /// On a thread of the actor system (the system's thread, an HTTP worker) the call runs
    /// right there, as a task of that thread, over that thread's own Redis connections, so a
    /// request and its Redis round trip never change threads. Elsewhere it goes through the
    /// storage actor.
    pub(super) async fn call<T, F, Fut>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn StorageEngine>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StorageError>> + 'static,
    {
        let op = move |engine| Box::pin(op(engine)) as OpFuture<T>;
        if actix::Arbiter::try_current().is_some() {
            let task = actix::spawn(guarded(self.engine.clone(), self.breaker.clone(), op));
            return task.await.unwrap_or_else(|e| {
                Err(StorageError::Unavailable(format!(
                    "storage call failed: {e}"
                )))
            });
        }
        self.addr.send(Call(Box::new(op))).await.map_err(gone)?
    }
}
