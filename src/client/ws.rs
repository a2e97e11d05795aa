//! A WebSocket subscriber that reconnects with exponential backoff and resumes from the last
//! seq it saw, so a broker restart or a slow-consumer close loses nothing and doubles nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mailbox_actors::model::Envelope;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::ClientError;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Messages held for the application before the reader waits (backpressure to the broker).
const BUFFER: usize = 1024;

/// Live messages of one target (`mailbox:<agent>`, `topic:<name>` or `topic:<pattern>`), across
/// reconnects. A pattern with wildcards (`topic:research.#`) is live only: its messages come
/// from many topics with seqs of their own, so a reconnect starts from `latest` again and
/// what was published while disconnected is not replayed (a durable subscription into a
/// mailbox is the way to miss nothing).
pub struct Subscriber {
    rx: mpsc::Receiver<Result<Envelope, ClientError>>,
    last_seq: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

enum Ended {
    /// The connection dropped or the broker closed it: reconnect and resume.
    Retry(String),
    /// The broker refused the subscription (auth, permission, validation): give up.
    Fatal(ClientError),
    /// The application dropped the subscriber.
    Stopped,
}

impl Subscriber {
    /// Starts subscribing. `base` is the broker's http(s) URL; `from` is `latest`, `unread`,
    /// `beginning` or a seq (used for the first connection; reconnects resume after the last seq).
    pub fn spawn(base: &str, token: &str, target: &str, from: Option<&str>) -> Self {
        Self::spawn_with_trust(base, token, target, from, &super::Trust::default())
    }

    /// As [`Subscriber::spawn`], for a `https://` broker whose certificate chains to `trust`.
    pub fn spawn_with_trust(
        base: &str,
        token: &str,
        target: &str,
        from: Option<&str>,
        trust: &super::Trust,
    ) -> Self {
        let trust = trust.clone();
        let url = format!(
            "{}/v1/ws",
            base.trim_end_matches('/').replacen("http", "ws", 1)
        );
        let (tx, rx) = mpsc::channel(BUFFER);
        let last_seq = Arc::new(Mutex::new(None::<String>));
        let (token, target, from) = (token.to_owned(), target.to_owned(), from.map(str::to_owned));
        let last = last_seq.clone();
        let resumable = !target
            .strip_prefix("topic:")
            .is_some_and(|p| p.contains(['*', '#']));
        let task = tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let last_seen = if resumable {
                    last.lock().map(|l| l.clone()).unwrap_or(None)
                } else {
                    None
                };
                let resume = last_seen.or_else(|| from.clone());
                let connector = match trust.ws_connector() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                match session(
                    &url,
                    connector,
                    &token,
                    &target,
                    resume.as_deref(),
                    &tx,
                    &last,
                )
                .await
                {
                    (Ended::Stopped, _) => return,
                    (Ended::Fatal(e), _) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    (Ended::Retry(why), progressed) => {
                        tracing::debug!(reason = %why, "subscriber reconnecting");
                        if progressed {
                            backoff = FIRST_BACKOFF;
                        }
                    }
                }
                let jitter = Duration::from_millis(rand::random::<u64>() % 50);
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        Self { rx, last_seq, task }
    }

    /// The next message; `None` once the subscriber has ended (after a fatal error).
    pub async fn next(&mut self) -> Option<Result<Envelope, ClientError>> {
        self.rx.recv().await
    }

    /// The seq of the last message received.
    pub fn last_seq(&self) -> Option<String> {
        self.last_seq.lock().map(|l| l.clone()).unwrap_or(None)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fatal(code: &str, message: &str) -> Ended {
    Ended::Fatal(ClientError::Api {
        status: 0,
        code: code.to_owned(),
        message: message.to_owned(),
        details: Value::Null,
    })
}

/// One connection; answers how it ended and whether any message arrived.
async fn session(
    url: &str,
    connector: Option<tokio_tungstenite::Connector>,
    token: &str,
    target: &str,
    from: Option<&str>,
    tx: &mpsc::Sender<Result<Envelope, ClientError>>,
    last: &Mutex<Option<String>>,
) -> (Ended, bool) {
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return (fatal("bad_request", &format!("bad broker URL: {e}")), false),
    };
    match format!("Bearer {token}").parse() {
        Ok(v) => {
            req.headers_mut().insert("authorization", v);
        }
        Err(_) => {
            return (
                fatal("unauthenticated", "the token is not a valid header value"),
                false,
            )
        }
    }
    let mut ws = match tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector)
        .await
    {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) if res.status().as_u16() == 401 => {
            return (
                fatal("unauthenticated", "the broker refused the token"),
                false,
            )
        }
        Err(e) => return (Ended::Retry(e.to_string()), false),
    };
    let mut sub = json!({ "op": "subscribe", "ref": "subscribe", "target": target });
    if let Some(f) = from {
        sub["from"] = json!(f);
    }
    if let Err(e) = ws.send(Message::Text(sub.to_string().into())).await {
        return (Ended::Retry(e.to_string()), false);
    }
    let mut progressed = false;
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(c)) => return (Ended::Retry(format!("closed: {c:?}")), progressed),
            Ok(_) => continue,
            Err(e) => return (Ended::Retry(e.to_string()), progressed),
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match v["type"].as_str() {
            Some("message") => {
                let Ok(env) = serde_json::from_value::<Envelope>(v["message"].clone()) else {
                    continue;
                };
                if let Ok(mut l) = last.lock() {
                    *l = Some(env.seq.clone());
                }
                progressed = true;
                if tx.send(Ok(env)).await.is_err() {
                    return (Ended::Stopped, progressed);
                }
            }
            Some("error") if v["ref"] == "subscribe" => {
                return (
                    fatal(
                        v["code"].as_str().unwrap_or("error"),
                        v["message"].as_str().unwrap_or(""),
                    ),
                    progressed,
                )
            }
            _ => {}
        }
    }
    (Ended::Retry("connection ended".into()), progressed)
}
