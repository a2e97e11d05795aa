//! `run`: start the actors and the HTTP server on a bound listener, until a shutdown signal
//! the caller passes. `main` (the `serve` command) and tests call the same function.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use mailbox_actors::admin::{AlertSettings, AuditLog};
use mailbox_actors::dead_letter::{DeadLetterHandle, DeadLetterSettings};
use mailbox_actors::dispatch::intent::{Recovered, INTENT_GRACE, RECOVERY_INTERVAL};
use mailbox_actors::dispatch::Dispatcher;
use mailbox_actors::mailbox::cache::CacheBudget;
use mailbox_actors::model::TopicConfig;
use mailbox_actors::permission::{PermissionHandle, PermissionSettings};
use mailbox_actors::registry::{RegistryHandle, RegistrySettings};
use mailbox_actors::retry::{RetryHandle, RetrySettings};
use mailbox_actors::spool::{Spool, SpoolSettings};
use mailbox_actors::storage::events::EventBus;
use mailbox_actors::storage::memory::MemoryEngine;
use mailbox_actors::storage::redis::{RedisEngine, RedisSettings};
use mailbox_actors::storage::{DeliverySettings, Engine, StorageHandle};
use mailbox_actors::topic::TopicSettings;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi as _;
use utoipa_actix_web::AppExt as _;

use crate::auth::TokenAuthority;
use crate::config::{Config, EngineKind};
use crate::http;
use crate::ops::{Engines, Ops};

/// What every handler shares. Cloning the handles inside is shallow.
pub struct AppState {
    /// The face-neutral operations every handler calls; it holds the engine handles
    /// (registry, dead letters, permissions), the limits and the rate limiter.
    pub ops: Ops,
    /// Kept so the scheduler lives as long as the server (it runs on its own timer).
    pub retry: RetryHandle,
    /// Checks bearer tokens (and mints them for the API-key exchange, through ops).
    pub tokens: Arc<TokenAuthority>,
    pub node_id: String,
    pub metrics: Option<PrometheusHandle>,
    pub config: Arc<Config>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Policy(#[from] mailbox_actors::permission::PolicyError),
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
    #[error("storage: {0}")]
    Storage(#[from] mailbox_actors::storage::StorageError),
    #[error(transparent)]
    Spool(#[from] mailbox_actors::spool::SpoolError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// HTTP/WebSocket worker threads: `server.workers`, or one per core (as actix-web's default).
fn workers(config: &Config) -> usize {
    match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        n => n,
    }
}

fn engine(config: &Config) -> Result<Engine, StartError> {
    Ok(match config.storage.engine {
        EngineKind::Memory => Engine::Memory(MemoryEngine::new()),
        EngineKind::Redis => Engine::Redis(RedisEngine::new(&RedisSettings {
            url: config.redis.url.clone(),
            cluster_urls: config.redis.cluster_urls.clone(),
            access: config.redis.access()?,
            pool_size: config.redis.pool_size,
            threads: workers(config) + 1,
            key_prefix: config.redis.key_prefix.clone(),
            command_timeout: Duration::from_millis(config.redis.command_timeout_ms),
        })?),
    })
}

/// Rolls forward batches a crash interrupted (see `dispatch::intent`): at start, then every
/// `RECOVERY_INTERVAL`, on every node (rolling forward is safe to repeat).
fn start_intent_recovery(dispatcher: Dispatcher) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(RECOVERY_INTERVAL);
        loop {
            tick.tick().await;
            let r = dispatcher.recover_intents(INTENT_GRACE).await;
            if r != Recovered::default() {
                tracing::info!(
                    rolled_forward = r.rolled_forward,
                    rolled_back = r.rolled_back,
                    left = r.left,
                    "batch intents recovered"
                );
            }
        }
    });
}

/// Starts everything on `listener` and serves until `shutdown` resolves: then WebSocket
/// sessions are closed with 1001 and in-flight requests finish within
/// `server.shutdown_timeout_seconds`. `main` passes [`shutdown_signal`] (SIGTERM/SIGINT); a test
/// passes whatever it wants to stop the server with (e.g. a oneshot receiver). Must run inside
/// an actix system.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), StartError> {
    let node_id = if config.server.node_id.is_empty() {
        format!("node-{}", &ulid::Ulid::generate().to_string()[20..]).to_lowercase()
    } else {
        config.server.node_id.clone()
    };
    // A bad certificate or key stops the start before anything else runs.
    let tls = config
        .server
        .tls()
        .map(|(cert, key)| crate::tls::server_config(cert, key))
        .transpose()?;
    let keyring = config.storage.keyring()?;
    match &keyring {
        Some(k) => {
            tracing::info!(keys = ?k.ids(), "encryption at rest on (key ids; the first encrypts)")
        }
        None => tracing::debug!("encryption at rest off"),
    }
    mailbox_actors::storage::cipher::install(keyring);
    let storage = StorageHandle::start(engine(&config)?);
    // The spool backs the Redis engine only: the memory engine is never unavailable.
    let spool = match config.storage.engine {
        EngineKind::Redis if config.spool.max_bytes > 0 => Some(Spool::open(&SpoolSettings {
            dir: config.spool.dir.clone(),
            max_bytes: config.spool.max_bytes,
        })?),
        _ => None,
    };
    if let Err(e) = storage.ping().await {
        tracing::warn!(error = %e, "storage is not reachable yet; /health/ready reports 503 until it is");
    }
    let registry = RegistryHandle::start(
        storage,
        RegistrySettings {
            default_max_len: config.limits.mailbox_max_len,
            idle_timeout: Duration::from_secs(config.server.actor_idle_seconds.max(1)),
            topics: TopicSettings {
                auto_create: config.topics.auto_create,
                defaults: TopicConfig {
                    retention_max_len: Some(config.topics.retention_max_len),
                    retention_seconds: (config.topics.retention_seconds > 0)
                        .then_some(config.topics.retention_seconds),
                },
                trim_interval: Duration::from_secs(config.topics.trim_interval_seconds),
            },
            bus: match config.storage.engine {
                EngineKind::Redis if !config.redis.cluster_urls.is_empty() => Some(
                    EventBus::cluster(
                        &config.redis.cluster_urls,
                        &config.redis.access()?,
                        &config.redis.key_prefix,
                        &node_id,
                    )
                    .map_err(|e| StartError::Storage(e.into()))?,
                ),
                EngineKind::Redis => Some(
                    EventBus::new(
                        &config.redis.url,
                        &config.redis.access()?,
                        &config.redis.key_prefix,
                        &node_id,
                    )
                    .map_err(|e| StartError::Storage(e.into()))?,
                ),
                EngineKind::Memory => None,
            },
            delivery: DeliverySettings {
                ack_timeout: Duration::from_secs(config.delivery.ack_timeout_seconds),
                backoff_base_ms: config.delivery.backoff_base_ms,
                backoff_multiplier: config.delivery.backoff_multiplier,
                backoff_max_ms: config.delivery.backoff_max_ms,
                max_attempts: config.delivery.max_attempts,
            },
            spool: spool.clone(),
            cache: Arc::new(CacheBudget::new(
                config.cache.mailbox_bytes,
                config.cache.total_bytes,
            )),
        },
    );
    if let Some(spool) = &spool {
        mailbox_actors::spool::replay::start(spool.clone(), registry.clone());
    }
    let retry = RetryHandle::start(registry.clone(), RetrySettings::default());
    start_intent_recovery(Dispatcher::new(registry.clone()));
    let dead_letters = DeadLetterHandle::start(
        registry.clone(),
        DeadLetterSettings::new(Duration::from_secs(
            config.dead_letter.retention_seconds.max(1),
        )),
    );
    let audit = AuditLog::new(
        &registry,
        config.audit.max_len,
        AlertSettings {
            threshold: config.audit.alert_denials,
            window: Duration::from_secs(config.audit.alert_window_seconds),
        },
    );
    let permissions = PermissionHandle::start(PermissionSettings {
        model: config.permissions.model.clone(),
        policy: config.permissions.policy.clone(),
        watch: config.permissions.watch,
        audit: Some(audit.clone()),
    })
    .await?;
    let registry_for_shutdown = registry.clone();
    let tokens = Arc::new(TokenAuthority::new(&config.auth)?);
    let ops = Ops::new(
        Engines {
            registry,
            dead_letters,
            permissions,
            audit,
        },
        tokens.clone(),
        &config,
    );
    let state = web::Data::new(AppState {
        ops,
        retry,
        tokens,
        node_id: node_id.clone(),
        metrics: if config.metrics.enabled {
            crate::telemetry::metrics()
        } else {
            None
        },
        config: Arc::new(config.clone()),
    });
    let addr = listener.local_addr()?;
    // The document is collected from the route registrations; built once, shared by workers.
    let document = crate::openapi::Served(std::sync::Arc::new(crate::openapi::finish(
        App::new()
            .into_utoipa_app()
            .openapi(crate::openapi::ApiDoc::openapi())
            .configure(http::routes)
            .split_for_parts()
            .1,
    )));
    let server = HttpServer::new(move || {
        App::new()
            .into_utoipa_app()
            .configure(http::routes)
            .into_app()
            .configure(crate::openapi::docs)
            .app_data(web::Data::new(document.clone()))
            .app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                crate::error::ApiError::BadRequest(format!("invalid query string: {e}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                crate::error::ApiError::BadRequest(format!("invalid path: {e}")).into()
            }))
            .wrap_fn(http::observe)
            .default_service(web::to(http::not_found))
    })
    // Small frames (pushes, answers) must leave at once: Nagle + delayed ACK adds ~40 ms.
    .tcp_nodelay(true)
    .shutdown_timeout(config.server.shutdown_timeout_seconds)
    .disable_signals();
    let server = server.workers(workers(&config));
    let server = match &tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls.clone())?,
        None => server.listen(listener)?,
    }
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: closing WebSocket sessions (1001), draining requests");
        match registry_for_shutdown
            .close_all_sessions(crate::ws::session::CLOSE_GOING_AWAY, "server shutting down")
            .await
        {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "sessions asked to close"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not reach the registry to close sessions"),
        }
        handle.stop(true).await;
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, %scheme, node = %node_id, engine = config.storage.engine_name(), "mailbox broker listening");
    server.await?;
    // Requests have drained (with them the group commits they waited for); now the spool.
    if let Some(spool) = &spool {
        let within = Duration::from_secs(config.server.shutdown_timeout_seconds.max(1));
        if spool.pending() > 0 && !spool.drained(within).await {
            tracing::warn!(
                waiting = spool.pending(),
                "storage did not take the whole spool before shutdown; it stays on disk and is replayed at the next start"
            );
        }
    }
    tracing::info!("mailbox broker stopped");
    Ok(())
}

/// The `serve` command's shutdown: resolves on the first SIGTERM/SIGINT (graceful shutdown
/// starts); a second signal while it runs exits at once (exit code 130), for an operator who
/// will not wait for the spool to drain.
pub async fn shutdown_then_force() {
    shutdown_signal().await;
    actix_web::rt::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second shutdown signal: exiting now");
        std::process::exit(130);
    });
}

/// Resolves on SIGTERM or SIGINT: the shutdown signal of the `serve` command.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; only Ctrl-C stops the broker gracefully");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
