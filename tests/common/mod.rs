//! Test harness: a private `redis-server` on a free port in a temp dir, the real `mailbox`
//! binary on another free port, tokens minted with the test secret. Everything is killed on drop.

#![allow(dead_code)]

pub mod python;
pub mod ws;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SECRET: &str = "test-secret-0123456789";

/// A port nobody listens on now, never handed out twice in one test binary (parallel tests
/// would otherwise race for it). A parallel process may still take it before the caller binds
/// it: callers that start a server check that *their* process listens (`listens`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port` (Linux `/proc`). A TCP
/// connect alone cannot tell: it may reach another process that took the port, or connect the
/// socket to itself when the port is in the ephemeral range and nobody listens.
pub fn listens(pid: u32, port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// Waits (bounded) until `child` listens on `port`; false when it exited first (typically
/// because a parallel test took the port).
pub fn wait_listening(child: &mut Child, port: u16, what: &str) -> bool {
    let mut exited = false;
    wait_until(Duration::from_secs(20), what, || {
        exited = matches!(child.try_wait(), Ok(Some(_)));
        exited || listens(child.id(), port)
    });
    !exited
}

/// Runs `start` on `port`, then on fresh ports while it answers false (a parallel test took the
/// port before the server bound it), at most 5 tries; answers the port it started on.
pub fn start_on_a_free_port(port: u16, what: &str, mut start: impl FnMut(u16) -> bool) -> u16 {
    let mut port = port;
    for _ in 0..5 {
        if start(port) {
            return port;
        }
        port = free_port();
    }
    panic!("{what} could not bind a free port in 5 tries");
}

/// Sets `key` in an environment list, replacing an earlier value.
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value));
}

/// Waits for `cond` at most `limit`, polling every 20 ms.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private Redis. Fails loudly when `redis-server` is missing: `make test` installs it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read(&mut buf)
        .map(|n| buf[..n].starts_with(b"+PONG"))
        .unwrap_or(false)
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = free_port();
        let mut s = Self {
            port,
            child: None,
            dir,
        };
        start_on_a_free_port(port, "redis-server", |p| {
            s.port = p;
            s.spawn()
        });
        s
    }

    /// Starts redis-server on `self.port`; false when it exited first (the port was taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests (make test installs it: apt-get install -y redis-server)");
        let up = wait_listening(&mut child, self.port, "redis-server to listen");
        self.child = Some(child);
        let port = self.port;
        if up {
            wait_until(
                Duration::from_secs(10),
                "redis-server to answer PING",
                || redis_ping(port),
            );
        }
        up
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis (fault tests): a process crash, after what it acknowledged has reached the
    /// AOF file. With `appendfsync everysec` Redis may hold acknowledged writes in its AOF buffer
    /// (up to 2 s while a background fsync runs); killing it then would lose them whatever the
    /// broker does, so the kill waits (bounded) until that buffer is empty.
    pub fn kill(&mut self) {
        if self.child.is_some() {
            self.wait_aof_written();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn wait_aof_written(&self) {
        let Ok(mut con) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Ok(info) = redis::cmd("INFO")
                .arg("persistence")
                .query::<String>(&mut con)
            else {
                return;
            };
            if info.lines().any(|l| l.trim() == "aof_buffer_length:0") {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts Redis again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server could not bind its port {} again",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private Redis Cluster: three masters (`redis-server --cluster-enabled yes`, no replicas)
/// on free ports in a temp dir, joined with `redis-cli --cluster create`. Stopped on drop.
pub struct RedisCluster {
    /// The masters' client ports.
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
    /// `requirepass` (and `masterauth`) of every node, if any.
    password: Option<String>,
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    redis_cli_auth(port, None, args)
}

fn redis_cli_auth(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    if let Some(pw) = password {
        cmd.env("REDISCLI_AUTH", pw);
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("redis-cli must be installed for these tests (make test installs redis-tools)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(0)
    }

    /// Three masters with `replicas` replicas each (`ports` then lists every node; see
    /// [`Self::masters`]).
    pub fn start_with(replicas: usize) -> Self {
        Self::launch(replicas, None)
    }

    /// Three masters whose every node requires `password` (`requirepass`, `masterauth`).
    pub fn start_with_password(password: &str) -> Self {
        Self::launch(0, Some(password))
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli_auth(port, self.password.as_deref(), args)
    }

    fn launch(replicas: usize, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let mut c = Self {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
            password: password.map(str::to_owned),
        };
        let auth: Vec<String> = password
            .map(|pw| {
                vec![
                    "--requirepass".into(),
                    pw.into(),
                    "--masterauth".into(),
                    pw.into(),
                ]
            })
            .unwrap_or_default();
        for _ in 0..3 * (1 + replicas) {
            // A free port can be taken by a parallel test before the node binds it: then the
            // node exits at once, and it is started again on other ports.
            let mut started = None;
            for _ in 0..5 {
                let port = free_port();
                // The cluster bus gets its own free port (port + 10000 may be taken or past 65535).
                let bus = free_port();
                let data = c.dir.path().join(port.to_string());
                std::fs::create_dir_all(&data).expect("node dir");
                let mut child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        &bus.to_string(),
                    ])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .args(["--cluster-node-timeout", "3000"])
                    .args(["--save", "", "--appendonly", "no"])
                    .args(&auth)
                    .arg("--dir")
                    .arg(&data)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect(
                        "redis-server must be installed for these tests (make test installs it)",
                    );
                let mut exited = false;
                wait_until(
                    Duration::from_secs(30),
                    "a cluster node to answer PING",
                    || {
                        exited = matches!(child.try_wait(), Ok(Some(_)));
                        exited || c.cli(port, &["ping"]).contains("PONG")
                    },
                );
                if !exited {
                    started = Some((child, port));
                    break;
                }
            }
            let (child, port) = started.expect("a cluster node started within 5 tries");
            c.children.push(child);
            c.ports.push(port);
        }
        let nodes: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = Command::new("redis-cli");
        if let Some(pw) = password {
            create.env("REDISCLI_AUTH", pw);
        }
        let status = create
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed for these tests (make test installs redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let ports = c.ports.clone();
        // Generous: on a loaded 2-core box several clusters form at once while tests run.
        wait_until(
            Duration::from_secs(60),
            "the cluster state to be ok",
            || {
                ports.iter().all(|&p| {
                    c.cli(p, &["cluster", "info"]).contains("cluster_state:ok")
                        && c.cli(p, &["cluster", "slots"]).lines().count() > 0
                })
            },
        );
        c
    }

    /// The ports of the nodes that are masters now (as `cluster nodes` on a live node says).
    pub fn masters(&self) -> Vec<u16> {
        let live = self
            .ports
            .iter()
            .zip(&self.children)
            .find(|(p, _)| self.cli(**p, &["ping"]).contains("PONG"))
            .map(|(p, _)| *p)
            .expect("a live node");
        self.cli(live, &["cluster", "nodes"])
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    /// Kills one node (SIGKILL), e.g. a master to force a failover.
    pub fn kill_node(&mut self, port: u16) {
        if let Some(i) = self.ports.iter().position(|&p| p == port) {
            let _ = self.children[i].kill();
            let _ = self.children[i].wait();
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// `MAILBOX__REDIS__CLUSTER_URLS`: the URLs, comma-separated.
    pub fn urls_csv(&self) -> String {
        self.urls().join(",")
    }

    /// Keys on one master matching `pattern` (`KEYS`: fine on a test cluster).
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        self.cli(port, &["--raw", "keys", pattern])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Redis,
    Memory,
    /// The Redis engine on a private three-master Redis Cluster.
    Cluster,
}

/// The real broker binary, configured through `MAILBOX__…` variables.
pub struct Broker {
    pub port: u16,
    pub redis: Option<RedisServer>,
    /// The cluster the broker runs on (`EngineKind::Cluster`), stopped after the broker.
    pub cluster: Option<RedisCluster>,
    child: Option<Child>,
    env: Vec<(String, String)>,
    pub http: reqwest::Client,
    /// This broker's own spool directory (kept across restarts, removed on drop).
    pub spool_dir: tempfile::TempDir,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Broker {
    pub fn start(engine: EngineKind) -> Self {
        Self::start_with(engine, &[])
    }

    /// Starts a broker; `extra` are more `MAILBOX__…` settings.
    pub fn start_with(engine: EngineKind, extra: &[(&str, &str)]) -> Self {
        if engine == EngineKind::Cluster {
            return Self::on_cluster(RedisCluster::start(), extra);
        }
        let redis = (engine == EngineKind::Redis).then(RedisServer::start);
        Self::launch(engine, redis, None, extra)
    }

    /// A broker on `cluster` (kept with the broker, stopped after it).
    pub fn on_cluster(cluster: RedisCluster, extra: &[(&str, &str)]) -> Self {
        let urls = cluster.urls_csv();
        let mut env: Vec<(&str, &str)> = vec![("MAILBOX__REDIS__CLUSTER_URLS", urls.as_str())];
        env.extend_from_slice(extra);
        let mut b = Self::launch(EngineKind::Cluster, None, None, &env);
        b.cluster = Some(cluster);
        b
    }

    /// A second node on the Redis of `other` (several nodes share one Redis).
    pub fn another_node(other: &Broker) -> Self {
        Self::another_node_with(other, &[])
    }

    /// A second node on the Redis of `other`, with more `MAILBOX__…` settings.
    pub fn another_node_with(other: &Broker, extra: &[(&str, &str)]) -> Self {
        if let Some(cluster) = &other.cluster {
            let urls = cluster.urls_csv();
            let mut env: Vec<(&str, &str)> = vec![("MAILBOX__REDIS__CLUSTER_URLS", urls.as_str())];
            env.extend_from_slice(extra);
            return Self::launch(EngineKind::Cluster, None, None, &env);
        }
        let url = other
            .redis
            .as_ref()
            .expect("the first node runs on Redis")
            .url();
        Self::launch(EngineKind::Redis, None, Some(url), extra)
    }

    fn launch(
        engine: EngineKind,
        redis: Option<RedisServer>,
        shared_url: Option<String>,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let spool_dir = tempfile::tempdir().expect("temp dir for the spool");
        let mut env: Vec<(String, String)> = vec![
            (
                "MAILBOX__SPOOL__DIR".into(),
                spool_dir.path().display().to_string(),
            ),
            ("MAILBOX__SERVER__BIND".into(), format!("127.0.0.1:{port}")),
            (
                "MAILBOX__STORAGE__ENGINE".into(),
                match engine {
                    EngineKind::Redis | EngineKind::Cluster => "redis",
                    EngineKind::Memory => "memory",
                }
                .into(),
            ),
            ("MAILBOX__AUTH__JWT_SECRET".into(), SECRET.into()),
            (
                "MAILBOX__PERMISSIONS__MODEL".into(),
                repo()
                    .join("config/casbin/model.conf")
                    .display()
                    .to_string(),
            ),
            (
                "MAILBOX__PERMISSIONS__POLICY".into(),
                repo()
                    .join("config/casbin/policy.csv")
                    .display()
                    .to_string(),
            ),
            ("MAILBOX__LOG__LEVEL".into(), "warn".into()),
            // The default (2 s): a loaded CI box running many brokers in parallel can take over
            // 500 ms for a call, and a timed-out append is spooled (202), not stored (201).
            ("MAILBOX__REDIS__COMMAND_TIMEOUT_MS".into(), "2000".into()),
        ];
        if let Some(url) = redis.as_ref().map(RedisServer::url).or(shared_url) {
            env.push(("MAILBOX__REDIS__URL".into(), url));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("http client");
        let mut b = Self {
            port,
            redis,
            cluster: None,
            child: None,
            env,
            http,
            spool_dir,
        };
        b.spawn();
        b
    }

    /// Starts the broker; when a parallel test took its port first, again on another one.
    fn spawn(&mut self) {
        start_on_a_free_port(self.port, "the broker", |p| {
            self.port = p;
            set_env(
                &mut self.env,
                "MAILBOX__SERVER__BIND",
                format!("127.0.0.1:{p}"),
            );
            self.spawn_on_port()
        });
    }

    fn spawn_on_port(&mut self) -> bool {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailbox"))
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("MAILBOX_CONFIG")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the mailbox binary");
        let up = wait_listening(&mut child, self.port, "the broker to listen");
        self.child = Some(child);
        up
    }

    /// Kills the broker without warning (SIGKILL) and starts it again on the same port.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        assert!(
            self.spawn_on_port(),
            "the restarted broker could not bind its port {} again",
            self.port
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("broker running");
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        c.wait().expect("broker exits")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/ws", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn token(&self, agent: &str) -> String {
        mint(agent, &[], 3600)
    }

    pub fn admin_token(&self, agent: &str) -> String {
        mint(agent, &["admin"], 3600)
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST");
        status_json(r).await
    }

    pub async fn post_raw(&self, token: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        status_json(r).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        status_json(r).await
    }

    pub async fn delete(&self, token: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).bearer_auth(token);
        let r = match body {
            Some(b) => r.json(b),
            None => r,
        };
        status_json(r.send().await.expect("DELETE")).await
    }

    pub async fn put(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("PUT");
        status_json(r).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Sends `payload` from `from` to `mailbox:to`; asserts 201 and answers the receipt.
    pub async fn send(&self, from: &str, to: &str, body: Value) -> Value {
        let mut body = body;
        body["to"] = Value::String(format!("mailbox:{to}"));
        let (status, v) = self.post(&self.token(from), "/v1/messages", &body).await;
        assert_eq!(status, 201, "send failed: {v}");
        v
    }

    /// Every message in `mailbox` (at most 500), oldest first, read with its owner's token.
    pub async fn messages(&self, mailbox: &str) -> Vec<Value> {
        let (status, v) = self
            .get(
                &self.token(mailbox),
                &format!("/v1/mailboxes/{mailbox}/messages?limit=500"),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// `total` in `mailbox`, read with its owner's token.
    pub async fn total(&self, mailbox: &str) -> u64 {
        let (status, v) = self
            .get(&self.token(mailbox), &format!("/v1/mailboxes/{mailbox}"))
            .await;
        assert_eq!(status, 200, "{v}");
        v["total"].as_u64().expect("total")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

pub fn mint(agent: &str, roles: &[&str], ttl: i64) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({ "sub": agent, "exp": now + ttl, "iat": now, "roles": roles });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("mint")
}

/// Runs each listed behaviour test against both engines, the Redis one on a single Redis and on
/// a three-master Redis Cluster.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start($crate::common::EngineKind::Redis);
                    super::$name(&b).await;
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start($crate::common::EngineKind::Memory);
                    super::$name(&b).await;
                }
            )*
        }
        mod on_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = $crate::common::Broker::start($crate::common::EngineKind::Cluster);
                    super::$name(&b).await;
                }
            )*
        }
    };
}
