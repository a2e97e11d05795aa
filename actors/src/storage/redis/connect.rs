//! How the broker reaches Redis: the URL (`redis://` or `rediss://` for TLS, possibly with an
//! ACL user and password), plus [`RedisAccess`]: a password read from a file (a mounted Secret,
//! so it never sits in a config file or the environment) and the CA that signs the Redis
//! server's certificate. Every Redis client the broker makes (the pool, the event bus, the cluster
//! clients through [`cluster_builder`]) is built from [`connection_info`] so each gets the
//! same password and TLS settings; nothing ever falls back to plaintext.
//!
//! The password never reaches a log line: [`redact`] is what may be printed of a URL, and
//! `RedisAccess`'s `Debug` hides it.

use std::path::PathBuf;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

use crate::storage::StorageError;

/// Credentials and trust beyond the URL (config `redis.password_file`, `redis.tls_ca_file`).
#[derive(Clone, Default)]
pub struct RedisAccess {
    /// Replaces (or sets) the URL's password; read from `redis.password_file`.
    pub password: Option<String>,
    /// PEM CA bundle the Redis server certificate must chain to (`rediss://` only); without it
    /// the system roots are used.
    pub tls_ca: Option<PathBuf>,
}

impl std::fmt::Debug for RedisAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAccess")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// Why a Redis client could not be built: a configuration mistake, reported at start.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("configuration key `redis.url`: `{url}` is not a Redis URL: {cause}")]
    Url { url: String, cause: String },
    #[error("configuration key `redis.tls_ca_file`: set, but `{url}` is not a `rediss://` URL (TLS); refusing to connect without TLS")]
    CaWithoutTls { url: String },
    #[error("configuration key `redis.tls_ca_file`: cannot read `{path}`: {cause}")]
    Ca { path: String, cause: String },
}

impl From<AccessError> for StorageError {
    fn from(e: AccessError) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

/// Reads a password file: the whole file, without its trailing line break (as `kubectl create
/// secret --from-file` and `echo > file` leave one).
pub fn read_password_file(path: &std::path::Path) -> std::io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

/// `url` with any password replaced by `***`: the only form of a Redis URL that may be logged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://***@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

/// The connection settings for `url` with `access` applied: the password from the file wins
/// over the URL's, and a CA file makes the TLS connection trust exactly that CA.
pub fn connection_info(url: &str, access: &RedisAccess) -> Result<ConnectionInfo, AccessError> {
    let mut info = url.into_connection_info().map_err(|e| AccessError::Url {
        url: redact(url),
        cause: e.to_string(),
    })?;
    if let Some(pw) = &access.password {
        let settings = info.redis_settings().clone().set_password(pw);
        info = info.set_redis_settings(settings);
    }
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    match (&access.tls_ca, tls) {
        (Some(_), false) => Err(AccessError::CaWithoutTls { url: redact(url) }),
        (Some(path), true) => {
            let ca_error = |cause: String| AccessError::Ca {
                path: path.display().to_string(),
                cause,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let client = redis::Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| ca_error(e.to_string()))?;
            Ok(client.get_connection_info().clone())
        }
        (None, _) => Ok(info),
    }
}

/// A single-node client for `url` with `access` applied (pub/sub, tools).
pub fn client_for(url: &str, access: &RedisAccess) -> Result<redis::Client, AccessError> {
    let info = connection_info(url, access)?;
    redis::Client::open(info).map_err(|e| AccessError::Url {
        url: redact(url),
        cause: e.to_string(),
    })
}

/// A cluster client builder for the seed `urls` with `access` applied to every node the
/// cluster client reaches (it takes user, password and TLS mode from the first seed, so every
/// seed must agree; the CA goes to the builder, which uses it for every node it discovers).
pub fn cluster_builder(
    urls: &[String],
    access: &RedisAccess,
) -> Result<redis::cluster::ClusterClientBuilder, AccessError> {
    // Each URL checked exactly as a single-node client would be (CA without TLS, bad URL).
    for url in urls {
        connection_info(url, access)?;
    }
    let password_only = RedisAccess {
        password: access.password.clone(),
        tls_ca: None,
    };
    let infos = urls
        .iter()
        .map(|u| connection_info(u, &password_only))
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = redis::cluster::ClusterClientBuilder::new(infos);
    if let Some(path) = &access.tls_ca {
        let pem = std::fs::read(path).map_err(|e| AccessError::Ca {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        builder = builder.certs(TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    Ok(builder)
}

/// Whether a Redis failure is Redis (or its TLS layer) refusing us rather than being away: a
/// wrong password, a user without a needed permission, a certificate we do not trust. Retrying
/// does not help until an operator fixes the configuration, so readiness says so and the
/// spool does not pretend the node can take sends.
pub fn is_refusal(e: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    if matches!(e.kind(), ErrorKind::AuthenticationFailed) {
        return true;
    }
    if e.code().is_some_and(|c| c == "NOPERM" || c == "WRONGPASS") {
        return true;
    }
    let text = e.to_string();
    text.contains("invalid peer certificate")
        || text.contains("NOPERM")
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
}

/// Every refusal's message starts with this, so readiness can tell "refused" from "away".
pub const REFUSED: &str = "Redis refused the broker";

/// Describes a refusal for operators (readiness, logs): what to check, never a secret.
pub fn refusal_reason(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let what = if text.contains("invalid peer certificate") {
        "its TLS certificate is not trusted (check redis.tls_ca_file)"
    } else if text.contains("NOPERM") {
        "the ACL user lacks a permission the broker needs (see the README's ACL line)"
    } else {
        "the credentials are wrong (check the user in redis.url and redis.password_file)"
    };
    format!("{REFUSED}: {what}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("redis://mailbox:s3cret@db:6379/0"),
            "redis://mailbox:***@db:6379/0"
        );
        assert_eq!(redact("rediss://:pw@db"), "rediss://:***@db");
        assert_eq!(redact("redis://pw@db:1"), "redis://***@db:1");
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
        assert_eq!(redact("unix:///tmp/r.sock"), "unix:///tmp/r.sock");
    }

    #[test]
    fn the_password_file_wins_and_debug_hides_it() {
        let access = RedisAccess {
            password: Some("from-file".into()),
            tls_ca: None,
        };
        let info = connection_info("redis://u:from-url@127.0.0.1:1", &access).expect("info");
        assert_eq!(info.redis_settings().password(), Some("from-file"));
        assert_eq!(info.redis_settings().username(), Some("u"));
        assert!(!format!("{access:?}").contains("from-file"));
    }

    #[test]
    fn a_ca_file_needs_tls() {
        let access = RedisAccess {
            password: None,
            tls_ca: Some("/nonexistent/ca.pem".into()),
        };
        let e = connection_info("redis://127.0.0.1:1", &access).expect_err("refused");
        assert!(matches!(e, AccessError::CaWithoutTls { .. }), "{e}");
        let e = connection_info("rediss://127.0.0.1:1", &access).expect_err("unreadable");
        assert!(e.to_string().contains("redis.tls_ca_file"), "{e}");
    }

    #[test]
    fn a_password_file_loses_its_line_break() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").expect("write");
        assert_eq!(read_password_file(&f).expect("read"), "hunter2");
    }
}
