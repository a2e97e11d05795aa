//! One connection type for both deployments: a single Redis (multiplexed connections from a
//! deadpool pool, each checked out once and shared, see [`Lanes`]) or a Redis Cluster (redis-rs's async cluster client: one multiplexed
//! connection per master, routed by key slot, which follows `MOVED`/`ASK` redirections, refreshes
//! its slot map and reconnects after a failover by itself).
//!
//! [`Conn`] implements [`redis::aio::ConnectionLike`], so every command, script and single-slot
//! pipeline of the engine runs unchanged on both. What differs is a pipeline whose commands
//! touch several slots: a cluster refuses it (`CROSSSLOT`), so such work goes through
//! [`Conn::spread`] (independent commands: one pipeline per slot, all sent at once, answers
//! back in order) or [`Conn::ordered`] (commands whose order matters: one slot's run at a time).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::{Mutex, OnceCell};

use super::{connect, RedisSettings};
use crate::storage::StorageError;

/// Where connections come from. Cloning is shallow.
#[derive(Clone)]
pub(super) enum Backend {
    Single(Arc<Lanes>),
    Cluster(Arc<ClusterLink>),
}

/// The connections to a single Redis. Every thread that calls storage (the actor system's
/// thread, each HTTP worker) has its own lanes, `redis.pool_size` split evenly among those
/// threads (at least one each: fewer, busier connections per thread batch more commands per
/// write and cost both sides fewer wake-ups), each holding one connection
/// made on that thread on first use and then shared by every caller of the lane on that thread
/// (a multiplexed connection pipelines concurrent commands); callers take their thread's lanes
/// round-robin. A multiplexed connection's reader and writer run as a task on the runtime that
/// made it, so keeping a thread's calls on its own connections keeps a request, its Redis
/// round trip and its answer on one thread: no hand-over to another thread and back, which
/// cost a wake-up (and often a context switch) each way.
/// Connections come from a deadpool pool and are detached from it at once (the pool only
/// makes them, with the configured timeouts, password and TLS): checking one out per call, as
/// long ago, cost a round trip each time (deadpool health-checks a checkout with `UNWATCH` +
/// `PING`). When a connection fails with a broken-connection error or a timeout, every
/// connection made so far, on every thread, is dropped (see [`Lanes::discard`]) and the next
/// caller of a lane makes a fresh one. Nothing here relies on per-connection state: no
/// `WATCH`, no blocking command, no subscription (the event bus has its own connection).
pub(super) struct Lanes {
    pool: Pool,
    /// Lanes per thread.
    per_thread: usize,
    threads: std::sync::RwLock<HashMap<std::thread::ThreadId, Arc<ThreadLanes>>>,
    /// Connections made so far (each is numbered by it).
    generation: AtomicU64,
    /// Connections numbered below this were discarded: not handed out again.
    floor: AtomicU64,
    timeout: Duration,
}

/// One thread's lanes.
struct ThreadLanes {
    slots: Vec<Mutex<Option<(u64, MultiplexedConnection)>>>,
    next: AtomicUsize,
}

impl Lanes {
    /// The calling thread's lanes (made on its first call).
    fn mine(&self) -> Arc<ThreadLanes> {
        let me = std::thread::current().id();
        if let Some(t) = self
            .threads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&me)
        {
            return Arc::clone(t);
        }
        let mut threads = self.threads.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(threads.entry(me).or_insert_with(|| {
            Arc::new(ThreadLanes {
                slots: (0..self.per_thread).map(|_| Mutex::new(None)).collect(),
                next: AtomicUsize::new(0),
            })
        }))
    }

    async fn get(self: &Arc<Self>) -> Result<Conn, StorageError> {
        let mine = self.mine();
        let lane = mine.next.fetch_add(1, Ordering::Relaxed) % mine.slots.len();
        let taken = tokio::time::timeout(self.timeout, async {
            let mut slot = mine.slots[lane].lock().await;
            let floor = self.floor.load(Ordering::Relaxed);
            if let Some((_, conn)) = slot.as_ref().filter(|(g, _)| *g >= floor) {
                return Ok(conn.clone());
            }
            // Made here, so its reader and writer run on this thread; detached from the pool,
            // which only makes connections.
            let conn = deadpool_redis::Connection::take(self.pool.get().await?);
            let generation = self.generation.fetch_add(1, Ordering::Relaxed);
            *slot = Some((generation, conn.clone()));
            Ok::<_, StorageError>(conn)
        })
        .await;
        match taken {
            Ok(Ok(conn)) => Ok(Conn::Single(Shared {
                conn,
                lanes: Arc::clone(self),
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StorageError::Unavailable(
                "redis: connecting timed out".into(),
            )),
        }
    }

    /// After a connection broke: no connection made so far is handed out again, on any
    /// thread (each lane drops its own on its next call). A broken connection usually means
    /// Redis restarted or the network failed, which broke the others too (including those
    /// made since the failing call took its own); dropping them all at once means the next
    /// callers reconnect, rather than each finding one more dead lane behind the circuit
    /// breaker's probe, one per cool-down. At worst a few good connections are made again.
    /// Connections made after this call are kept.
    fn discard(&self) {
        self.floor
            .fetch_max(self.generation.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// One lane's connection, as handed to a caller.
pub(super) struct Shared {
    conn: MultiplexedConnection,
    lanes: Arc<Lanes>,
}

impl Shared {
    /// After a failed call: a broken connection or one that stopped answering is not handed
    /// out again.
    fn check<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_unrecoverable_error()
            {
                self.lanes.discard();
            }
        }
        r
    }
}

/// The cluster client and its one (multiplexed, self-healing) connection, made on first use
/// so the broker starts while the cluster is still down.
pub(super) struct ClusterLink {
    client: redis::cluster::ClusterClient,
    conn: OnceCell<ClusterConnection>,
    timeout: Duration,
}

impl Backend {
    /// A pool on `redis.url`, or a cluster client on `redis.cluster_urls` when that is set;
    /// both with the password and TLS of `redis.password_file` / `redis.tls_ca_file` (see
    /// `connect.rs`). Connections are made lazily, so this succeeds while Redis is down.
    pub(super) fn connect(settings: &RedisSettings) -> Result<Self, StorageError> {
        if !settings.cluster_urls.is_empty() {
            let client = connect::cluster_builder(&settings.cluster_urls, &settings.access)?
                .connection_timeout(settings.command_timeout)
                .response_timeout(settings.command_timeout)
                .build()
                .map_err(|e| StorageError::Unavailable(format!("bad redis cluster config: {e}")))?;
            return Ok(Self::Cluster(Arc::new(ClusterLink {
                client,
                conn: OnceCell::new(),
                timeout: settings.command_timeout,
            })));
        }
        let info = connect::connection_info(&settings.url, &settings.access)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.command_timeout))
            .set_response_timeout(Some(settings.command_timeout));
        let manager = deadpool_redis::Manager::new_with_config(info, config)?;
        let mut pool_cfg = PoolConfig::new(settings.pool_size.max(1));
        pool_cfg.timeouts = Timeouts {
            wait: Some(settings.command_timeout),
            create: Some(settings.command_timeout),
            recycle: Some(settings.command_timeout),
        };
        let pool = Pool::builder(manager)
            .config(pool_cfg)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Unavailable(format!("bad redis config: {e}")))?;
        Ok(Self::Single(Arc::new(Lanes {
            pool,
            per_thread: (settings.pool_size / settings.threads.max(1)).max(1),
            threads: Default::default(),
            generation: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            timeout: settings.command_timeout,
        })))
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    pub(super) async fn get(&self) -> Result<Conn, StorageError> {
        match self {
            Self::Single(lanes) => lanes.get().await,
            Self::Cluster(link) => {
                let c = link
                    .conn
                    .get_or_try_init(|| async {
                        match tokio::time::timeout(link.timeout, link.client.get_async_connection())
                            .await
                        {
                            Ok(r) => r.map_err(StorageError::from),
                            Err(_) => Err(StorageError::Unavailable(
                                "redis cluster: connecting timed out".into(),
                            )),
                        }
                    })
                    .await?;
                Ok(Conn::Cluster(c.clone()))
            }
        }
    }
}

/// A connection to a single Redis or to a cluster.
pub(super) enum Conn {
    Single(Shared),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => Box::pin(async move {
                let r = c.conn.req_packed_command(cmd).await;
                c.check(r)
            }),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => Box::pin(async move {
                let r = c.conn.req_packed_commands(pipeline, offset, count).await;
                c.check(r)
            }),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.conn.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Commands, each with the key that routes it (its first key).
pub(super) type Routed = Vec<(String, Cmd)>;

fn pipe_of(cmds: impl IntoIterator<Item = Cmd>) -> Pipeline {
    let mut p = redis::pipe();
    p.ignore_errors();
    for c in cmds {
        p.add_command(c);
    }
    p
}

impl Conn {
    /// Runs independent commands in as few round trips as the deployment allows and answers
    /// one result per command, in order (a failed command fails alone). One Redis: one
    /// pipeline. A cluster: one pipeline per slot, all in flight at once over the per-node
    /// multiplexed connections, so the commands of a node travel together, never one by one.
    pub(super) async fn spread(&mut self, cmds: Routed) -> RedisResult<Vec<RedisResult<Value>>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let Conn::Cluster(cluster) = self else {
            return pipe_of(cmds.into_iter().map(|(_, c)| c))
                .query_async(self)
                .await;
        };
        let n = cmds.len();
        let mut groups: HashMap<Slot, (Vec<usize>, Vec<Cmd>)> = HashMap::new();
        for (i, (key, cmd)) in cmds.into_iter().enumerate() {
            let g = groups.entry(Slot::for_key(key.as_bytes())).or_default();
            g.0.push(i);
            g.1.push(cmd);
        }
        let runs = groups.into_values().map(|(idx, cmds)| {
            let mut c = cluster.clone();
            async move {
                let r: RedisResult<Vec<RedisResult<Value>>> =
                    pipe_of(cmds).query_async(&mut c).await;
                (idx, r)
            }
        });
        let mut out: Vec<Option<RedisResult<Value>>> = (0..n).map(|_| None).collect();
        for (idx, r) in futures_util::future::join_all(runs).await {
            match r {
                Ok(values) => {
                    for (i, v) in idx.into_iter().zip(values) {
                        out[i] = Some(v);
                    }
                }
                Err(e) => {
                    for i in idx {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "pipeline answered too few replies",
                    )))
                })
            })
            .collect())
    }

    /// [`Self::spread`], failing on the first failed command.
    pub(super) async fn spread_all(&mut self, cmds: Routed) -> RedisResult<Vec<Value>> {
        self.spread(cmds).await?.into_iter().collect()
    }

    /// Runs commands in the given order, stopping at the first failure. One Redis: one
    /// pipeline (Redis runs it in order). A cluster: each run of consecutive same-slot commands
    /// is one pipeline, and a run starts only after the one before it succeeded.
    pub(super) async fn ordered(&mut self, cmds: Routed) -> RedisResult<()> {
        let Conn::Cluster(_) = self else {
            let results: Vec<RedisResult<Value>> = pipe_of(cmds.into_iter().map(|(_, c)| c))
                .query_async(self)
                .await?;
            return results.into_iter().try_for_each(|r| r.map(drop));
        };
        let mut run: Vec<Cmd> = Vec::new();
        let mut slot = None;
        for (key, cmd) in cmds {
            let s = Slot::for_key(key.as_bytes());
            if slot.is_some_and(|prev| prev != s) && !run.is_empty() {
                self.run_in_order(std::mem::take(&mut run)).await?;
            }
            slot = Some(s);
            run.push(cmd);
        }
        if !run.is_empty() {
            self.run_in_order(run).await?;
        }
        Ok(())
    }

    async fn run_in_order(&mut self, cmds: Vec<Cmd>) -> RedisResult<()> {
        let results: Vec<RedisResult<Value>> = pipe_of(cmds).query_async(self).await?;
        results.into_iter().try_for_each(|r| r.map(drop))
    }
}
