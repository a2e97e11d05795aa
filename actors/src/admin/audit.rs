//! The audit trail: every event goes to the `audit` tracing target at once and to storage (a
//! capped Redis stream, or the memory engine's ring) in the background, so a refusal is never
//! slowed by its own record. One writer task stores the events in the order they were recorded,
//! through a bounded queue: past [`QUEUE`] waiting events (a flood of denials against a slow
//! Redis) further ones are only logged, and counted in `mailbox_audit_dropped_total`. Denials are also counted per agent: `threshold` of them within
//! `window` raise one `security_alert` (a WARN log and `mailbox_security_alerts_total`), and
//! then no other for that agent until a whole window has passed since the alert.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::error::Error;
use crate::model::{AuditEvent, AuditKind, AuditPage, AuditQuery};
use crate::registry::RegistryHandle;
use crate::storage::StorageHandle;
use tokio::sync::mpsc;

/// Agents tracked before idle ones are swept from the denial counter.
const SWEEP_OVER: usize = 10_000;
/// Events waiting to be stored before new ones are dropped (still logged).
const QUEUE: usize = 10_000;

/// When denials become an alert (config `[audit]`).
#[derive(Debug, Clone, Copy)]
pub struct AlertSettings {
    /// Denials of one agent within `window` that raise an alert.
    pub threshold: usize,
    pub window: Duration,
}

#[derive(Default)]
struct Denials {
    recent: VecDeque<Instant>,
    alerted_at: Option<Instant>,
}

/// Records audit events. Cloning is shallow: clones share the storage handle and counters.
#[derive(Clone)]
pub struct AuditLog {
    storage: StorageHandle,
    /// To the writer task, which stores events one at a time, in order.
    queue: mpsc::Sender<AuditEvent>,
    alerts: AlertSettings,
    denials: Arc<Mutex<HashMap<String, Denials>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// `max_len`: events kept (the oldest go first). Starts the writer task, so it must be
    /// called on a thread of the actor system.
    pub fn new(registry: &RegistryHandle, max_len: u64, alerts: AlertSettings) -> Self {
        Self::start(registry.storage().clone(), max_len, alerts)
    }

    fn start(storage: StorageHandle, max_len: u64, alerts: AlertSettings) -> Self {
        let (queue, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        let writer = storage.clone();
        actix::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Err(e) = writer.audit_append(event, max_len).await {
                    tracing::warn!(error = %e, "could not store an audit event");
                }
            }
        });
        Self {
            storage,
            queue,
            alerts,
            denials: Arc::default(),
        }
    }

    /// Records an event: logged now, stored in the background, in order (a storage failure is
    /// logged, never passed to the caller: the action it describes has already happened).
    pub fn record(&self, kind: AuditKind, agent: Option<&str>, detail: Value) {
        let agent_field = agent.unwrap_or("-");
        match kind {
            AuditKind::SecurityAlert => {
                tracing::warn!(target: "audit", kind = kind.as_str(), agent = agent_field, detail = %detail, "security alert")
            }
            _ => {
                tracing::info!(target: "audit", kind = kind.as_str(), agent = agent_field, detail = %detail, "audit")
            }
        }
        let event = AuditEvent {
            id: String::new(),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            kind,
            agent: agent.map(str::to_owned),
            detail,
        };
        if self.queue.try_send(event).is_err() {
            metrics::counter!("mailbox_audit_dropped_total").increment(1);
        }
    }

    /// A permission denial: recorded, and counted towards a security alert.
    pub fn denied(&self, agent: &str, obj: &str, act: &str) {
        metrics::counter!("mailbox_permission_denied_total").increment(1);
        self.record(
            AuditKind::PermissionDenied,
            Some(agent),
            json!({ "obj": obj, "act": act }),
        );
        if let Some(count) = self.count_denial(agent, Instant::now()) {
            metrics::counter!("mailbox_security_alerts_total").increment(1);
            self.record(
                AuditKind::SecurityAlert,
                Some(agent),
                json!({
                    "reason": "repeated permission denials",
                    "denials": count,
                    "window_seconds": self.alerts.window.as_secs(),
                }),
            );
        }
    }

    /// Counts one denial; answers the count when it raises an alert.
    fn count_denial(&self, agent: &str, now: Instant) -> Option<usize> {
        let window = self.alerts.window;
        let mut all = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() > SWEEP_OVER {
            all.retain(|_, d| {
                d.recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let d = all.entry(agent.to_owned()).or_default();
        d.recent.push_back(now);
        while d
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            d.recent.pop_front();
        }
        let quiet = d
            .alerted_at
            .is_none_or(|at| now.duration_since(at) >= window);
        if d.recent.len() >= self.alerts.threshold.max(1) && quiet {
            d.alerted_at = Some(now);
            return Some(d.recent.len());
        }
        None
    }

    /// A page of the trail, newest first.
    pub async fn list(&self, query: AuditQuery) -> Result<AuditPage, Error> {
        Ok(self.storage.audit_list(query).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn one_alert_per_burst_of_denials() {
        let storage = StorageHandle::start(crate::storage::Engine::Memory(
            crate::storage::memory::MemoryEngine::new(),
        ));
        let log = AuditLog::start(
            storage,
            100,
            AlertSettings {
                threshold: 20,
                window: Duration::from_secs(60),
            },
        );
        let t0 = Instant::now();
        let alerts: Vec<usize> = (0..25)
            .filter_map(|i| log.count_denial("mallory", t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(alerts, vec![20], "one alert, at the 20th denial");
        assert_eq!(log.count_denial("eve", t0), None, "counted per agent");
        let later = t0 + Duration::from_secs(61);
        let again: Vec<usize> = (0..20)
            .filter_map(|i| log.count_denial("mallory", later + Duration::from_millis(i)))
            .collect();
        assert_eq!(again.len(), 1, "a new burst a window later alerts again");
    }
}
