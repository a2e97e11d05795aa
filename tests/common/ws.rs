//! A real WebSocket client for tests: connect with a token, send and read JSON frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Broker;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn connect(b: &Broker, agent: &str) -> Ws {
    let mut req = b.ws_url().into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", b.token(agent))
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["agent"], agent);
    ws
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send frame");
}

/// The next text frame as JSON (bounded wait).
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("json frame");
        }
    }
}

pub async fn subscribe(ws: &mut Ws, target: &str, from: &str) -> String {
    send(
        ws,
        json!({"op": "subscribe", "ref": "sub", "target": target, "from": from}),
    )
    .await;
    let ok = recv(ws).await;
    assert_eq!(
        (ok["type"].as_str(), ok["ref"].as_str()),
        (Some("ok"), Some("sub")),
        "{ok}"
    );
    ok["subscription"]
        .as_str()
        .expect("subscription id")
        .to_owned()
}
