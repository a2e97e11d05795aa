//! A client's close handshake completes at once: the broker answers a Close frame with its own
//! (echoing the code), so closing a session never waits for a connection timeout.

mod common;

use std::time::{Duration, Instant};

use common::ws::connect;
use common::{Broker, EngineKind};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How long the broker's answer to one close may take before the test calls it hung (a
/// generous bound: the answer is immediate; the bug this guards against took ~0.8 s).
const ANSWER: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_client_closes_are_answered_at_once() {
    let b = Broker::start(EngineKind::Memory);
    let started = Instant::now();
    for i in 0..1000 {
        let mut ws = connect(&b, "bob").await;
        let code = if i % 2 == 0 {
            CloseCode::Normal
        } else {
            CloseCode::Away
        };
        ws.send(Message::Close(Some(CloseFrame {
            code,
            reason: "bye".into(),
        })))
        .await
        .expect("send close");
        let answer = tokio::time::timeout(ANSWER, ws.next())
            .await
            .unwrap_or_else(|_| panic!("close {i} not answered within {ANSWER:?}"));
        match answer {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, code, "the code is echoed"),
            other => panic!("close {i}: expected the broker's close frame, got {other:?}"),
        }
    }
    // Reported, not asserted: speed belongs to benchmarks.
    eprintln!(
        "1000 sequential connect + close handshakes took {:?}",
        started.elapsed()
    );
}
