//! Layered configuration: the commented `config/default.toml` compiled in, then an optional file,
//! then `MAILBOX__SECTION__KEY` environment variables. Validated once at start; every error names
//! its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// An invalid configuration: reported at start with the key, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[source] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub redis: Redis,
    pub auth: Auth,
    pub permissions: Permissions,
    pub delivery: Delivery,
    pub limits: Limits,
    pub topics: Topics,
    pub dead_letter: DeadLetter,
    pub audit: Audit,
    pub quotas: Quotas,
    pub spool: Spool,
    pub cache: Cache,
    pub ws: Ws,
    pub metrics: Metrics,
    pub log: Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub bind: String,
    pub node_id: String,
    pub shutdown_timeout_seconds: u64,
    pub actor_idle_seconds: u64,
    /// HTTP/WebSocket worker threads; 0: one per CPU core.
    pub workers: usize,
    /// PEM certificate chain of the HTTPS/WSS listener; empty (with `tls_key_file`): plain HTTP.
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: PathBuf,
}

impl Server {
    /// The listener's certificate and key files when TLS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        (!self.tls_cert_file.as_os_str().is_empty())
            .then_some((self.tls_cert_file.as_path(), self.tls_key_file.as_path()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Redis,
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub engine: EngineKind,
    /// File holding the one encryption-at-rest key (base64 of 32 bytes); empty: off.
    pub encryption_key_file: PathBuf,
    /// Several key files, newest first (rotation): the first encrypts, all decrypt.
    pub encryption_key_files: Vec<PathBuf>,
}

impl Storage {
    /// The encryption-at-rest keyring from the key files (`None`: off). Errors name the key and
    /// the file, never its content.
    pub fn keyring(&self) -> Result<Option<mailbox_actors::storage::cipher::Keyring>, ConfigError> {
        use mailbox_actors::storage::cipher::{Key, Keyring};
        let (key, files): (&'static str, Vec<&PathBuf>) = match (
            self.encryption_key_file.as_os_str().is_empty(),
            self.encryption_key_files.is_empty(),
        ) {
            (true, true) => return Ok(None),
            (false, true) => (
                "storage.encryption_key_file",
                vec![&self.encryption_key_file],
            ),
            (true, false) => (
                "storage.encryption_key_files",
                self.encryption_key_files.iter().collect(),
            ),
            (false, false) => {
                return Err(invalid(
                    "storage.encryption_key_file",
                    "set storage.encryption_key_file or storage.encryption_key_files, not both",
                ))
            }
        };
        let mut keys = Vec::with_capacity(files.len());
        for f in files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| invalid(key, format!("cannot read `{}`: {e}", f.display())))?;
            keys.push(
                Key::from_base64(&text)
                    .map_err(|e| invalid(key, format!("`{}`: {e}", f.display())))?,
            );
        }
        Ok(Keyring::new(keys))
    }

    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            EngineKind::Redis => "redis",
            EngineKind::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    pub url: String,
    pub cluster_urls: Vec<String>,
    pub pool_size: usize,
    pub key_prefix: String,
    pub command_timeout_ms: u64,
    /// File holding the Redis password (a mounted Secret); empty: the URL's password, if any.
    pub password_file: PathBuf,
    /// PEM CA the Redis server's certificate must chain to (`rediss://` only); empty: system roots.
    pub tls_ca_file: PathBuf,
}

impl Redis {
    /// The password file read and the CA file named: what every Redis client is built with.
    /// Errors name the key.
    pub fn access(
        &self,
    ) -> Result<mailbox_actors::storage::redis::connect::RedisAccess, ConfigError> {
        use mailbox_actors::storage::redis::connect::{read_password_file, RedisAccess};
        let password = if self.password_file.as_os_str().is_empty() {
            None
        } else {
            let pw = read_password_file(&self.password_file).map_err(|e| {
                invalid(
                    "redis.password_file",
                    format!("cannot read `{}`: {e}", self.password_file.display()),
                )
            })?;
            if pw.is_empty() {
                return Err(invalid(
                    "redis.password_file",
                    format!("`{}` is empty", self.password_file.display()),
                ));
            }
            Some(pw)
        };
        Ok(RedisAccess {
            password,
            tls_ca: (!self.tls_ca_file.as_os_str().is_empty()).then(|| self.tls_ca_file.clone()),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub jwt_secret: String,
    pub jwt_public_key_file: String,
    pub token_ttl_seconds: u64,
    /// Server key of the API-key hashes (HMAC-SHA256); empty: `jwt_secret` is used.
    pub api_key_secret: String,
}

impl Auth {
    /// The key API keys are hashed under.
    pub fn api_key_secret(&self) -> &[u8] {
        if self.api_key_secret.is_empty() {
            self.jwt_secret.as_bytes()
        } else {
            self.api_key_secret.as_bytes()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    pub model: PathBuf,
    pub policy: PathBuf,
    pub watch: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub ack_timeout_seconds: u64,
    pub backoff_base_ms: u64,
    pub backoff_multiplier: f64,
    pub backoff_max_ms: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_metadata_keys: usize,
    pub max_tags: usize,
    pub mailbox_max_len: u64,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub max_blob_bytes: usize,
    /// How long an uploaded blob is kept; a message that references it extends this to cover
    /// the message.
    pub blob_ttl_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub auto_create: bool,
    pub retention_max_len: u64,
    /// 0: no age limit.
    pub retention_seconds: u64,
    pub trim_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub retention_seconds: u64,
}

/// The audit trail and its security alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Events kept (the oldest are dropped first).
    pub max_len: u64,
    /// Permission denials of one agent within `alert_window_seconds` that raise an alert.
    pub alert_denials: usize,
    pub alert_window_seconds: u64,
}

/// Per-day caps of one agent; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaCaps {
    #[serde(default)]
    pub messages_per_day: u64,
    #[serde(default)]
    pub bytes_per_day: u64,
}

/// Per-agent daily quotas: the default caps, and caps per role (a role's caps replace the
/// default for agents holding it; an agent with several such roles gets the most generous).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    pub messages_per_day: u64,
    pub bytes_per_day: u64,
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, QuotaCaps>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spool {
    /// Where sends are kept while Redis is down; a relative path resolves against the config
    /// file's directory (or the working directory without a file).
    pub dir: PathBuf,
    /// Most bytes waiting for replay; past it sends answer 503. 0 disables the spool.
    pub max_bytes: u64,
}

/// The mailbox writers' caches of recent messages, served by degraded browses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Bytes one active mailbox may cache; 0 disables degraded browses.
    pub mailbox_bytes: usize,
    /// Bytes all caches of the node may hold together.
    pub total_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ws {
    pub heartbeat_seconds: u64,
    pub max_frame_bytes: usize,
    pub max_pending: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
    /// OpenTelemetry collector base URL (`http://host:4318`): spans and logs are posted to its
    /// `/v1/traces` and `/v1/logs` as OTLP/HTTP JSON. Empty: no export.
    pub otlp_endpoint: String,
    /// `service.name` of the exported telemetry.
    pub otlp_service_name: String,
}

impl Config {
    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(f) = file {
            b = b.add_source(
                config::File::from(f)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        b = b.add_source(
            config::Environment::with_prefix("MAILBOX")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("redis.cluster_urls")
                .with_list_parse_key("storage.encryption_key_files"),
        );
        let mut cfg: Config = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(ConfigError::Load)?;
        if let Some(f) = file {
            cfg.resolve_paths_against(f)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// A relative path written in the config file means "beside this file", not "wherever the
    /// broker happens to be started": so `mailbox serve --config /etc/mailbox/config/x.toml`
    /// works from any directory, and a config directory can be moved as a whole. A path set by
    /// a `MAILBOX__…` variable (and not equal to the file's) stays relative to the working
    /// directory, as a command line path would.
    fn resolve_paths_against(&mut self, file: &Path) -> Result<(), ConfigError> {
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let written = config::Config::builder()
            .add_source(config::File::from(file).format(config::FileFormat::Toml))
            .build()
            .map_err(ConfigError::Load)?;
        let mut public_key = PathBuf::from(&self.auth.jwt_public_key_file);
        for (key, slot) in [
            ("permissions.model", &mut self.permissions.model),
            ("permissions.policy", &mut self.permissions.policy),
            ("spool.dir", &mut self.spool.dir),
            ("redis.password_file", &mut self.redis.password_file),
            ("server.tls_cert_file", &mut self.server.tls_cert_file),
            (
                "storage.encryption_key_file",
                &mut self.storage.encryption_key_file,
            ),
            ("server.tls_key_file", &mut self.server.tls_key_file),
            ("redis.tls_ca_file", &mut self.redis.tls_ca_file),
            ("auth.jwt_public_key_file", &mut public_key),
        ] {
            let from_file = written.get_string(key).ok().map(PathBuf::from);
            if slot.is_relative()
                && !slot.as_os_str().is_empty()
                && from_file.as_ref() == Some(slot)
            {
                *slot = base.join(&*slot);
            }
        }
        self.auth.jwt_public_key_file = public_key.display().to_string();
        let listed: Vec<PathBuf> = written
            .get_array("storage.encryption_key_files")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|v| v.into_string().ok().map(PathBuf::from))
            .collect();
        for f in &mut self.storage.encryption_key_files {
            if f.is_relative() && listed.contains(f) {
                *f = base.join(&*f);
            }
        }
        Ok(())
    }

    /// The compiled-in defaults alone (used by tests and tools).
    pub fn defaults() -> Result<Self, ConfigError> {
        let cfg: Config = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(ConfigError::Load)?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        self.storage.keyring()?;
        match (
            self.server.tls_cert_file.as_os_str().is_empty(),
            self.server.tls_key_file.as_os_str().is_empty(),
        ) {
            (true, false) => {
                return Err(invalid(
                    "server.tls_cert_file",
                    "server.tls_key_file is set: set both or neither",
                ))
            }
            (false, true) => {
                return Err(invalid(
                    "server.tls_key_file",
                    "server.tls_cert_file is set: set both or neither",
                ))
            }
            _ => {}
        }
        if self.redis.pool_size == 0 {
            return Err(invalid("redis.pool_size", "must be at least 1"));
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "redis.key_prefix",
                "must be non-empty and contain no braces",
            ));
        }
        if self.storage.engine == EngineKind::Redis
            && self.redis.url.is_empty()
            && self.redis.cluster_urls.is_empty()
        {
            return Err(invalid("redis.url", "set redis.url or redis.cluster_urls"));
        }
        if self.storage.engine == EngineKind::Redis {
            use mailbox_actors::storage::redis::connect::{connection_info, AccessError};
            let access = self.redis.access()?;
            for url in std::iter::once(&self.redis.url)
                .filter(|u| !u.is_empty())
                .chain(&self.redis.cluster_urls)
            {
                connection_info(url, &access).map_err(|e| match e {
                    AccessError::Url { .. } => invalid("redis.url", e.to_string()),
                    AccessError::CaWithoutTls { .. } | AccessError::Ca { .. } => {
                        invalid("redis.tls_ca_file", e.to_string())
                    }
                })?;
            }
        }
        if self.auth.jwt_secret.len() < 8 && self.auth.jwt_public_key_file.is_empty() {
            return Err(invalid("auth.jwt_secret", "must be at least 8 bytes"));
        }
        if !self.auth.api_key_secret.is_empty() && self.auth.api_key_secret.len() < 16 {
            return Err(invalid(
                "auth.api_key_secret",
                "must be at least 16 bytes (or empty to use auth.jwt_secret)",
            ));
        }
        if self.audit.max_len == 0 {
            return Err(invalid("audit.max_len", "must be positive"));
        }
        if self.audit.alert_denials == 0 {
            return Err(invalid("audit.alert_denials", "must be positive"));
        }
        if self.audit.alert_window_seconds == 0 {
            return Err(invalid("audit.alert_window_seconds", "must be positive"));
        }
        if let Some(role) = self
            .quotas
            .roles
            .keys()
            .find(|r| !mailbox_actors::model::is_valid_agent_id(r))
        {
            return Err(invalid(
                "quotas.roles",
                format!("`{role}` is not a valid role name"),
            ));
        }
        if self.auth.token_ttl_seconds == 0 {
            return Err(invalid("auth.token_ttl_seconds", "must be positive"));
        }
        if self.limits.max_message_bytes == 0 {
            return Err(invalid("limits.max_message_bytes", "must be positive"));
        }
        let otlp = &self.log.otlp_endpoint;
        if !(otlp.is_empty() || otlp.starts_with("http://") || otlp.starts_with("https://")) {
            return Err(invalid(
                "log.otlp_endpoint",
                "must be empty (no export) or an http:// or https:// URL",
            ));
        }
        if self.log.otlp_service_name.is_empty() {
            return Err(invalid("log.otlp_service_name", "must not be empty"));
        }
        if self.limits.blob_ttl_seconds == 0 {
            return Err(invalid("limits.blob_ttl_seconds", "must be positive"));
        }
        if self.limits.mailbox_max_len == 0 {
            return Err(invalid("limits.mailbox_max_len", "must be positive"));
        }
        if self.limits.rate_per_second == 0 || self.limits.rate_burst == 0 {
            return Err(invalid(
                "limits.rate_per_second",
                "rate and burst must be positive",
            ));
        }
        if self.topics.retention_max_len == 0 {
            return Err(invalid("topics.retention_max_len", "must be positive"));
        }
        if self.topics.trim_interval_seconds == 0 {
            return Err(invalid("topics.trim_interval_seconds", "must be positive"));
        }
        if self.delivery.ack_timeout_seconds == 0 {
            return Err(invalid(
                "delivery.ack_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.delivery.backoff_max_ms < self.delivery.backoff_base_ms {
            return Err(invalid(
                "delivery.backoff_max_ms",
                "must be at least delivery.backoff_base_ms",
            ));
        }
        if self.dead_letter.retention_seconds == 0 {
            return Err(invalid("dead_letter.retention_seconds", "must be positive"));
        }
        if self.delivery.max_attempts == 0 {
            return Err(invalid("delivery.max_attempts", "must be at least 1"));
        }
        if self.delivery.backoff_multiplier < 1.0 {
            return Err(invalid(
                "delivery.backoff_multiplier",
                "must be at least 1.0",
            ));
        }
        if self.ws.heartbeat_seconds == 0 {
            return Err(invalid("ws.heartbeat_seconds", "must be positive"));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(invalid(
                "log.level",
                format!("`{}` is not a tracing filter", self.log.level),
            ));
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .bind
            .parse()
            .map_err(|e| invalid("server.bind", format!("`{}`: {e}", self.server.bind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::defaults().expect("defaults parse");
        c.validate().expect("defaults are valid");
        assert_eq!(c.server.bind, "127.0.0.1:7700");
        assert_eq!(c.storage.engine, EngineKind::Redis);
        assert_eq!(c.limits.mailbox_max_len, 100_000);
        assert!(c.topics.auto_create);
    }

    #[test]
    fn otlp_export_and_blob_retention_are_checked() {
        let mut c = Config::defaults().expect("defaults parse");
        assert_eq!(c.log.otlp_endpoint, "", "export is off by default");
        assert_eq!(c.limits.blob_ttl_seconds, 86_400);
        c.log.otlp_endpoint = "collector:4318".into();
        let e = c.validate().expect_err("no scheme").to_string();
        assert!(e.contains("log.otlp_endpoint"), "{e}");
        c.log.otlp_endpoint = "http://127.0.0.1:4318".into();
        c.validate().expect("an http URL is fine");
        c.limits.blob_ttl_seconds = 0;
        let e = c.validate().expect_err("zero ttl").to_string();
        assert!(e.contains("limits.blob_ttl_seconds"), "{e}");
    }

    #[test]
    fn a_bad_file_names_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[limits]\nmax_message_bytes = \"lots\"\n").expect("write");
        let e = Config::load(Some(&f))
            .expect_err("bad type is refused")
            .to_string();
        assert!(e.contains("max_message_bytes"), "{e}");
        std::fs::write(&f, "[server]\nbind = \"nowhere\"\n").expect("write");
        let e = Config::load(Some(&f))
            .expect_err("bad bind is refused")
            .to_string();
        assert!(e.contains("server.bind"), "{e}");
        std::fs::write(&f, "[server]\nbindd = \"x\"\n").expect("write");
        let e = Config::load(Some(&f))
            .expect_err("unknown key is refused")
            .to_string();
        assert!(e.contains("bindd"), "{e}");
    }

    #[test]
    fn relative_paths_in_a_file_mean_beside_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[permissions]\nmodel = \"casbin/model.conf\"\npolicy = \"/abs/policy.csv\"\n\
             [spool]\ndir = \"spool\"\n",
        )
        .expect("write");
        let c = Config::load(Some(&f)).expect("loads");
        assert_eq!(c.permissions.model, dir.path().join("casbin/model.conf"));
        assert_eq!(c.permissions.policy, PathBuf::from("/abs/policy.csv"));
        assert_eq!(c.spool.dir, dir.path().join("spool"));
        assert_eq!(c.auth.jwt_public_key_file, "", "unset stays unset");
        let d = Config::defaults().expect("defaults");
        assert!(
            d.permissions.model.as_os_str().is_empty()
                && d.permissions.policy.as_os_str().is_empty(),
            "no file given: the compiled-in model and policy"
        );
    }
}
