//! The write side of a WebSocket connection: the HTTP response body itself reads the session's
//! bounded queue and encodes its frames. A push is one queue hop from the session actor to the
//! connection's dispatcher; frames queued together leave in one write.
//!
//! actix-ws's own body is a second queue behind a writer task: two more hops and two more
//! allocations per frame, and per session a task and a 32-slot channel (`bench fanout`: ~10 % of
//! the broker's CPU). Its body is kept, unpolled, inside ours: dropping it is how its message
//! stream learns that the connection is gone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::CloseReason;
use tokio::sync::{mpsc, oneshot};

/// A frame the session queues for its client.
pub enum Outgoing {
    Text(String),
    Ping,
    Pong(Bytes),
}

/// Frames popped per poll at most, so one busy connection cannot hold its worker thread.
const MAX_BATCH: usize = 64;

/// RFC 6455: a control frame's payload is at most 125 bytes (a close: code + 123 of reason).
const MAX_CONTROL: usize = 125;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The response body of an upgraded connection.
pub struct Outbound {
    queue: mpsc::Receiver<Outgoing>,
    /// A close jumps the queue: it is sent before anything still queued, then the body ends.
    close: Option<oneshot::Receiver<CloseReason>>,
    done: bool,
    /// actix-ws's body, held only for its drop (see the module doc).
    _ws: BoxBody,
}

impl Outbound {
    pub fn new(
        queue: mpsc::Receiver<Outgoing>,
        close: oneshot::Receiver<CloseReason>,
        ws: BoxBody,
    ) -> Self {
        Self {
            queue,
            close: Some(close),
            done: false,
            _ws: ws,
        }
    }
}

impl MessageBody for Outbound {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        if let Some(close) = this.close.as_mut() {
            match Pin::new(close).poll(cx) {
                Poll::Ready(Ok(reason)) => {
                    this.done = true;
                    this.queue.close();
                    close_frame(&mut buf, &reason);
                    return Poll::Ready(Some(Ok(buf.freeze())));
                }
                // The session is gone without a close: whatever it queued still goes out.
                Poll::Ready(Err(_)) => this.close = None,
                Poll::Pending => {}
            }
        }
        for _ in 0..MAX_BATCH {
            match this.queue.poll_recv(cx) {
                Poll::Ready(Some(Outgoing::Text(t))) => frame(&mut buf, OP_TEXT, t.as_bytes()),
                Poll::Ready(Some(Outgoing::Ping)) => frame(&mut buf, OP_PING, b""),
                Poll::Ready(Some(Outgoing::Pong(b))) => {
                    frame(&mut buf, OP_PONG, &b[..b.len().min(MAX_CONTROL)])
                }
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !buf.is_empty() {
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if this.done {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// Appends one unmasked, final frame (a server never masks).
fn frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let len = payload.len();
    buf.reserve(len + 10);
    buf.extend_from_slice(&[0x80 | opcode]);
    if len < 126 {
        buf.extend_from_slice(&[len as u8]);
    } else if let Ok(short) = u16::try_from(len) {
        buf.extend_from_slice(&[126]);
        buf.extend_from_slice(&short.to_be_bytes());
    } else {
        buf.extend_from_slice(&[127]);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
    buf.extend_from_slice(payload);
}

/// A close frame: the code, then the reason cut to fit a control frame on a char boundary.
fn close_frame(buf: &mut BytesMut, reason: &CloseReason) {
    let code: u16 = reason.code.into();
    let mut payload = code.to_be_bytes().to_vec();
    if let Some(text) = reason.description.as_deref() {
        let mut end = text.len().min(MAX_CONTROL - 2);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&text.as_bytes()[..end]);
    }
    frame(buf, OP_CLOSE, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_ws::CloseCode;

    fn encoded(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        frame(&mut b, opcode, payload);
        b.to_vec()
    }

    #[test]
    fn frame_lengths_use_the_three_encodings() {
        assert_eq!(encoded(OP_TEXT, b"hi"), [0x81, 2, b'h', b'i']);
        let mid = encoded(OP_TEXT, &[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(mid.len(), 4 + 300);
        let big = encoded(OP_TEXT, &vec![b'x'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().expect("8 bytes")), 70_000);
        assert_eq!(encoded(OP_PING, b""), [0x89, 0]);
    }

    #[test]
    fn a_close_reason_is_cut_to_a_control_frame_on_a_char_boundary() {
        let mut b = BytesMut::new();
        let long = "é".repeat(100); // 200 bytes
        close_frame(
            &mut b,
            &CloseReason {
                code: CloseCode::Again,
                description: Some(long),
            },
        );
        assert_eq!(b[0], 0x88);
        let len = b[1] as usize;
        assert!(len <= MAX_CONTROL, "{len}");
        assert_eq!(&b[2..4], &1013u16.to_be_bytes());
        assert!(std::str::from_utf8(&b[4..]).is_ok());
        assert_eq!(len, 2 + 122);
    }
}
