//! The write side of a WebSocket connection: the HTTP response body itself drains the session's
//! bounded queue and encodes its frames. A push is one queue hop from the session actor to the
//! connection's dispatcher; frames queued together leave in one write.
//!
//! actix-ws's own body is a second queue behind a writer task: two more hops and two more
//! allocations per frame, and per session a task and a 32-slot channel (`bench fanout`: ~10 % of
//! the broker's CPU). Its body is kept, unpolled, inside ours: dropping it is how its message
//! stream learns that the connection is gone.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::CloseReason;

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

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `ws.max_pending` frames are waiting: the client reads too slowly.
    Full,
    /// The connection is closing or gone.
    Closed,
}

/// The queue between a session and its connection's body. The session actor and the body live
/// on the same HTTP worker thread, so it is a plain `VecDeque` behind an `Rc`: it allocates
/// nothing until a frame waits, where a tokio channel allocates a 32-slot block per session.
struct Shared {
    queue: VecDeque<Outgoing>,
    cap: usize,
    /// A close asked for and not yet sent: it jumps the queue.
    close: Option<CloseReason>,
    /// No frame will leave any more (the close went out, or the connection is gone).
    closed: bool,
    /// Live [`Frames`] handles; none left ends the body once the queue is drained.
    senders: usize,
    body: Option<Waker>,
    /// Senders waiting for room (backlog replays).
    room: Vec<Waker>,
}

impl Shared {
    fn wake_body(&mut self) {
        if let Some(w) = self.body.take() {
            w.wake();
        }
    }

    fn wake_room(&mut self) {
        for w in self.room.drain(..) {
            w.wake();
        }
    }

    fn accepts(&self) -> Result<(), Refused> {
        if self.closed || self.close.is_some() {
            Err(Refused::Closed)
        } else if self.queue.len() >= self.cap {
            Err(Refused::Full)
        } else {
            Ok(())
        }
    }
}

/// The session's end of the queue. Clones share it (a backlog replay holds one while it runs).
pub struct Frames(Rc<RefCell<Shared>>);

impl Frames {
    /// Queues a frame now, or says why not.
    pub fn try_send(&self, frame: Outgoing) -> Result<(), Refused> {
        let mut s = self.0.borrow_mut();
        s.accepts()?;
        s.queue.push_back(frame);
        s.wake_body();
        Ok(())
    }

    /// Queues a frame once there is room (a backlog replay is paced, not refused).
    pub async fn send(&self, frame: Outgoing) -> Result<(), Refused> {
        let mut frame = Some(frame);
        std::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            match s.accepts() {
                Err(Refused::Full) => {
                    s.room.push(cx.waker().clone());
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
                Ok(()) => {
                    if let Some(f) = frame.take() {
                        s.queue.push_back(f);
                    }
                    s.wake_body();
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await
    }

    /// Sends a close frame before anything still queued; the connection then ends.
    pub fn close(&self, reason: CloseReason) {
        let mut s = self.0.borrow_mut();
        if !s.closed && s.close.is_none() {
            s.close = Some(reason);
            s.wake_body();
        }
    }
}

impl Clone for Frames {
    fn clone(&self) -> Self {
        self.0.borrow_mut().senders += 1;
        Self(Rc::clone(&self.0))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.senders -= 1;
        if s.senders == 0 {
            s.wake_body();
        }
    }
}

/// The response body of an upgraded connection.
pub struct Outbound {
    shared: Rc<RefCell<Shared>>,
    /// actix-ws's body, held only for its drop (see the module doc).
    _ws: Option<BoxBody>,
}

impl Outbound {
    /// Holds actix-ws's body until this one is dropped.
    pub fn keeping(mut self, ws: BoxBody) -> Self {
        self._ws = Some(ws);
        self
    }
}

/// A queue of at most `cap` frames, and the body that writes them.
pub fn channel(cap: usize) -> (Frames, Outbound) {
    let shared = Rc::new(RefCell::new(Shared {
        queue: VecDeque::new(),
        cap: cap.max(1),
        close: None,
        closed: false,
        senders: 1,
        body: None,
        room: Vec::new(),
    }));
    let body = Outbound {
        shared: Rc::clone(&shared),
        _ws: None,
    };
    (Frames(shared), body)
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
        let mut s = self.shared.borrow_mut();
        if s.closed {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        if let Some(reason) = s.close.take() {
            s.closed = true;
            s.queue.clear();
            s.wake_room();
            close_frame(&mut buf, &reason);
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        let mut popped = false;
        for _ in 0..MAX_BATCH {
            let Some(f) = s.queue.pop_front() else { break };
            popped = true;
            match f {
                Outgoing::Text(t) => frame(&mut buf, OP_TEXT, t.as_bytes()),
                Outgoing::Ping => frame(&mut buf, OP_PING, b""),
                Outgoing::Pong(b) => frame(&mut buf, OP_PONG, &b[..b.len().min(MAX_CONTROL)]),
            }
        }
        if popped {
            s.wake_room();
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if s.senders == 0 {
            s.closed = true;
            return Poll::Ready(None);
        }
        if !s.body.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.body = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let mut s = self.shared.borrow_mut();
        s.closed = true;
        s.queue.clear();
        s.wake_room();
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

    fn poll(body: &mut Outbound) -> Poll<Option<Vec<u8>>> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(body).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(b.to_vec())),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => match e {},
        }
    }

    #[test]
    fn queued_frames_leave_together_and_a_full_queue_refuses() {
        let (out, mut body) = channel(2);
        assert_eq!(poll(&mut body), Poll::Pending);
        assert_eq!(out.try_send(Outgoing::Text("a".into())), Ok(()));
        assert_eq!(out.try_send(Outgoing::Ping), Ok(()));
        assert_eq!(out.try_send(Outgoing::Ping), Err(Refused::Full));
        assert_eq!(
            poll(&mut body),
            Poll::Ready(Some(vec![0x81, 1, b'a', 0x89, 0]))
        );
        assert_eq!(
            out.try_send(Outgoing::Pong(Bytes::from_static(b"p"))),
            Ok(())
        );
        assert_eq!(poll(&mut body), Poll::Ready(Some(vec![0x8A, 1, b'p'])));
        // The last sender gone: the body ends once drained.
        let replay = out.clone();
        drop(out);
        assert_eq!(poll(&mut body), Poll::Pending);
        drop(replay);
        assert_eq!(poll(&mut body), Poll::Ready(None));
    }

    #[test]
    fn a_close_jumps_the_queue_and_ends_the_body() {
        let (out, mut body) = channel(8);
        out.try_send(Outgoing::Text("late".into())).expect("room");
        out.close(CloseReason {
            code: CloseCode::Normal,
            description: None,
        });
        assert_eq!(out.try_send(Outgoing::Ping), Err(Refused::Closed));
        assert_eq!(
            poll(&mut body),
            Poll::Ready(Some(vec![0x88, 2, 0x03, 0xE8]))
        );
        assert_eq!(poll(&mut body), Poll::Ready(None));
    }

    #[actix_web::test]
    async fn a_replay_waits_for_room_and_is_refused_once_the_connection_is_gone() {
        let (out, mut body) = channel(1);
        out.try_send(Outgoing::Ping).expect("room");
        let waiting = out.clone();
        let sent =
            actix_web::rt::spawn(async move { waiting.send(Outgoing::Text("b".into())).await });
        actix_web::rt::task::yield_now().await;
        assert!(!sent.is_finished(), "no room yet");
        assert_eq!(poll(&mut body), Poll::Ready(Some(vec![0x89, 0])));
        assert_eq!(sent.await.expect("task"), Ok(()));
        drop(body);
        assert_eq!(out.send(Outgoing::Ping).await, Err(Refused::Closed));
    }

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
        assert_eq!(
            u64::from_be_bytes(big[2..10].try_into().expect("8 bytes")),
            70_000
        );
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
