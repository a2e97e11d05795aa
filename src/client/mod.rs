//! The Rust client library: typed REST calls (send, browse, receive, ack, nack, mark read,
//! mailbox info, topics, durable subscriptions, dead letters, health, administration) and a
//! reconnecting WebSocket [`Subscriber`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), mailbox::client::ClientError> {
//! use mailbox::client::Client;
//! let c = Client::new("http://127.0.0.1:7700", Some("<token>".into()))?;
//! let receipt = c.send(&serde_json::json!({"to": "mailbox:bob", "payload": "hi"})).await?;
//! let page = c.browse("bob", &[("unread", "true".into())]).await?;
//! for m in c.receive("bob", 10, 30).await? {
//!     // ... handle it, then settle it:
//!     c.ack("bob", &m.id).await?;
//! }
//! # Ok(()) }
//! ```

pub mod admin;
pub mod topics;
pub mod ws;

pub use admin::{AgentSummary, CreatedAgent, IssuedToken, Rule};
pub use topics::{HistoryPage, TopicInfo, TopicList};
pub use ws::Subscriber;

use mailbox_actors::model::Envelope;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A failed call: the broker's error (code and message, SPEC section 7) or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Value,
    },
    #[error("cannot reach the broker: {0}")]
    Transport(String),
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// The answer to a send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReceipt {
    pub id: String,
    pub status: String,
    pub recipients: u64,
    #[serde(default)]
    pub seq: Option<String>,
}

/// One page of a mailbox browse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub messages: Vec<Envelope>,
    pub next: Option<String>,
    /// Left out of a degraded page (read state lives in storage).
    #[serde(default)]
    pub unread: u64,
    /// Served from the broker's cache while its storage is down.
    #[serde(default)]
    pub degraded: bool,
}

/// The answer to an ack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckReceipt {
    pub id: String,
    pub status: String,
    pub attempt: u32,
}

/// The answer to a nack: `status` is `requeued` (with `redeliver_at`) or `dead_lettered`
/// (with `reason`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NackReceipt {
    pub id: String,
    pub status: String,
    pub attempt: u32,
    #[serde(default)]
    pub redeliver_at: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct Received {
    messages: Vec<Envelope>,
}

/// Whom to trust for an `https://` broker: the system roots (default), or exactly the CA
/// certificates of a PEM file (`--ca-file` / `MAILBOX_CA_FILE`), for a broker whose
/// certificate comes from a private CA. Cloning is shallow.
#[derive(Clone, Default)]
pub struct Trust {
    ca: Option<std::sync::Arc<Vec<rustls::pki_types::CertificateDer<'static>>>>,
}

impl Trust {
    /// Reads a PEM CA bundle; `None`: the system roots.
    pub fn from_file(path: Option<&std::path::Path>) -> Result<Self, ClientError> {
        use rustls::pki_types::pem::PemObject;
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let bad = |e: String| ClientError::Transport(format!("CA file `{}`: {e}", path.display()));
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        Ok(Self {
            ca: Some(std::sync::Arc::new(certs)),
        })
    }

    fn apply(&self, b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, ClientError> {
        let Some(ca) = &self.ca else { return Ok(b) };
        let certs = ca
            .iter()
            .map(|c| reqwest::Certificate::from_der(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(b.tls_certs_only(certs))
    }

    /// The WebSocket connector for this trust (`None`: tungstenite's default).
    pub(crate) fn ws_connector(&self) -> Result<Option<tokio_tungstenite::Connector>, ClientError> {
        let Some(ca) = &self.ca else { return Ok(None) };
        let mut roots = rustls::RootCertStore::empty();
        for c in ca.iter() {
            roots
                .add(c.clone())
                .map_err(|e| ClientError::Transport(format!("CA certificate: {e}")))?;
        }
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Some(tokio_tungstenite::Connector::Rustls(
            std::sync::Arc::new(cfg),
        )))
    }
}

/// A REST client bound to one broker and one token. Cloning is shallow.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_trust(base, token, &Trust::default())
    }

    /// A client of an `https://` broker whose certificate chains to `trust`.
    pub fn with_trust(
        base: &str,
        token: Option<String>,
        trust: &Trust,
    ) -> Result<Self, ClientError> {
        let http = trust
            .apply(reqwest::Client::builder().pool_max_idle_per_host(256))?
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn call<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T, ClientError> {
        let res = r.send().await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                b"null".as_slice()
            } else {
                &bytes
            };
            return serde_json::from_slice(body)
                .map_err(|e| ClientError::Transport(format!("unexpected answer: {e}")));
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let err = &v["error"];
        Err(ClientError::Api {
            status: status.as_u16(),
            code: err["code"].as_str().unwrap_or("unknown").to_owned(),
            message: err["message"].as_str().map_or_else(
                || String::from_utf8_lossy(&bytes).into_owned(),
                str::to_owned,
            ),
            details: err["details"].clone(),
        })
    }

    /// Sends a message (any JSON shaped like SPEC section 3).
    pub async fn send<B: Serialize + ?Sized>(&self, body: &B) -> Result<SendReceipt, ClientError> {
        self.call(self.request(Method::POST, "/v1/messages").json(body))
            .await
    }

    /// Sends with an idempotency key: a retry answers the first receipt.
    pub async fn send_idempotent<B: Serialize + ?Sized>(
        &self,
        body: &B,
        key: &str,
    ) -> Result<SendReceipt, ClientError> {
        self.call(
            self.request(Method::POST, "/v1/messages")
                .header("Idempotency-Key", key)
                .json(body),
        )
        .await
    }

    /// Browses a mailbox; `query` takes the parameters of SPEC section 5.
    pub async fn browse(
        &self,
        mailbox: &str,
        query: &[(&str, String)],
    ) -> Result<Page, ClientError> {
        self.call(
            self.request(Method::GET, &format!("/v1/mailboxes/{mailbox}/messages"))
                .query(query),
        )
        .await
    }

    /// Consumes up to `max` messages (1-100), waiting up to `wait_seconds` (0-60) for one.
    /// Each is a delivery attempt (`attempt`); those with `require_ack` must be acked or nacked.
    pub async fn receive(
        &self,
        mailbox: &str,
        max: usize,
        wait_seconds: u64,
    ) -> Result<Vec<Envelope>, ClientError> {
        let r: Received = self
            .call(
                self.request(Method::POST, &format!("/v1/mailboxes/{mailbox}/receive"))
                    .json(&serde_json::json!({"max": max, "wait_seconds": wait_seconds})),
            )
            .await?;
        Ok(r.messages)
    }

    /// Settles a delivery: done. A second ack answers `conflict`.
    pub async fn ack(&self, mailbox: &str, id: &str) -> Result<AckReceipt, ClientError> {
        self.call(self.request(
            Method::POST,
            &format!("/v1/mailboxes/{mailbox}/messages/{id}/ack"),
        ))
        .await
    }

    /// Refuses a delivery: redelivered after backoff (`requeue`) or dead-lettered (`rejected`).
    pub async fn nack(
        &self,
        mailbox: &str,
        id: &str,
        requeue: bool,
        reason: Option<&str>,
    ) -> Result<NackReceipt, ClientError> {
        let mut body = serde_json::json!({ "requeue": requeue });
        if let Some(r) = reason {
            body["reason"] = Value::String(r.to_owned());
        }
        self.call(
            self.request(
                Method::POST,
                &format!("/v1/mailboxes/{mailbox}/messages/{id}/nack"),
            )
            .json(&body),
        )
        .await
    }

    /// Lists dead letters (`mailbox`, `reason`, `after`, `limit`): `{dead_letters, next}`.
    pub async fn dead_letters(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, "/v1/dead-letters").query(query))
            .await
    }

    pub async fn dead_letter(&self, id: &str) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/dead-letters/{id}")))
            .await
    }

    /// Requeues one dead letter: a fresh copy goes back into its mailbox.
    pub async fn requeue_dead_letter(&self, id: &str) -> Result<Value, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/dead-letters/{id}/requeue")))
            .await
    }

    /// Requeues every dead letter matching the filter: `{requeued}`.
    pub async fn requeue_dead_letters(
        &self,
        mailbox: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Value, ClientError> {
        let filter = serde_json::json!({ "mailbox": mailbox, "reason": reason });
        self.call(
            self.request(Method::POST, "/v1/dead-letters/requeue")
                .json(&serde_json::json!({ "filter": filter })),
        )
        .await
    }

    pub async fn delete_dead_letter(&self, id: &str) -> Result<(), ClientError> {
        let _: Value = self
            .call(self.request(Method::DELETE, &format!("/v1/dead-letters/{id}")))
            .await?;
        Ok(())
    }

    /// Deletes dead letters older than `older_than` (RFC 3339 or seconds): `{deleted}`.
    pub async fn purge_dead_letters(&self, older_than: &str) -> Result<Value, ClientError> {
        self.call(
            self.request(Method::DELETE, "/v1/dead-letters")
                .query(&[("older_than", older_than)]),
        )
        .await
    }

    /// Mailbox counts and settings.
    pub async fn mailbox(&self, mailbox: &str) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/mailboxes/{mailbox}")))
            .await
    }

    /// Marks everything up to `seq` read; answers the unread count.
    pub async fn mark_read_up_to(&self, mailbox: &str, seq: &str) -> Result<u64, ClientError> {
        let v: Value = self
            .call(
                self.request(Method::POST, &format!("/v1/mailboxes/{mailbox}/read"))
                    .json(&serde_json::json!({"up_to": seq})),
            )
            .await?;
        Ok(v["unread"].as_u64().unwrap_or_default())
    }

    /// Readiness of the broker (`/health/ready`); an error when it is not ready.
    pub async fn health(&self) -> Result<Value, ClientError> {
        self.call(self.request(Method::GET, "/health/ready")).await
    }

    /// Any call, for tools: method, path, optional JSON body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let r = self.request(method, path);
        self.call(match body {
            Some(b) => r.json(b),
            None => r,
        })
        .await
    }
}

/// The `sub` of a token, read without checking the signature (the broker checks it). Lets
/// tools default to "my own mailbox".
pub fn token_subject(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["sub"].as_str().map(str::to_owned)
}
