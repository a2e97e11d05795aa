//! The session actor: one per WebSocket connection. It reads the actix-ws message stream (added
//! to the actor's context), answers ops, and forwards pushes from mailbox actors.
//!
//! Writes go through a bounded queue (`ws.max_pending`) that the response body itself drains
//! (`outbound.rs`). A live push that finds the queue full closes the session with 1013: nothing
//! is lost, the agent resumes from the last seq it saw. Backlog replay waits for room instead.
//!
//! Exact resume: a subscription registers with the mailbox actor *before* it replays the backlog
//! from storage; pushes that arrive meanwhile are buffered and, once the replay is done, only
//! those past the replay's cursor are sent. Seqs of a mailbox are contiguous, so a live push
//! that skips one (a write this node did not see) triggers a catch-up from storage first.
//!
//! Topic targets (`topic:<pattern>`, see [`topics`]) register with the node's router instead.
//! A single topic behaves like a mailbox over its history (exact resume from a seq); a pattern
//! with wildcards is live only, its pushes go straight out.

mod ops;
mod replay;
mod topics;

use replay::Replay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::body::BoxBody;
use actix_web::{web, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use mailbox_actors::mailbox::messages::{Pushed, SubscriberKey};
use mailbox_actors::mailbox::BrowseQuery;
use mailbox_actors::registry::CloseSession;
use serde::Serialize;
use serde_json::{json, Value};

use super::frames::{message_frame, ok_frame, ServerFrame};
use super::outbound::{self, Frames, Outgoing, Refused};
use crate::auth::Agent;
use crate::error::ApiError;
use crate::ops::{MailboxStart, WatchTarget};
use crate::server::AppState;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Close codes used by the broker.
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TRY_AGAIN: u16 = 1013;

/// Pushes buffered per subscription while it replays, beyond which the session is a slow consumer.
const MAX_REPLAY_BUFFER: usize = 10_000;
/// A replay page.
const REPLAY_PAGE: usize = 500;

enum Mode {
    /// Replaying from storage; live pushes wait here.
    CatchingUp(Vec<Pushed>),
    Live,
}

/// Where a subscription's messages come from. Names, not handles: a handle carries the whole
/// registry handle (~300 bytes), and every session keeps a table of these.
enum Source {
    /// A mailbox: backlog, then live; exact resume.
    Mailbox(String),
    /// One topic: live, with exact resume from its history when `from` is a seq.
    Topic(String),
    /// A topic pattern with wildcards: live only, pushes are sent as they come.
    Pattern,
}

struct Subscription {
    source: Source,
    /// The last seq sent to the client.
    cursor: u64,
    mode: Mode,
}

pub struct WsSession {
    id: u64,
    /// Shared with the ops in flight (each op of a session used to clone the whole agent).
    agent: std::sync::Arc<Agent>,
    state: web::Data<AppState>,
    out: Frames,
    last_seen: Instant,
    subs: HashMap<String, Subscription>,
    next_sub: u64,
}

impl WsSession {
    /// Starts the actor for an upgraded connection; answers the response whose body writes the
    /// session's frames (`response` is actix-ws's handshake answer).
    pub fn start(
        agent: Agent,
        state: web::Data<AppState>,
        response: HttpResponse,
        stream: actix_ws::MessageStream,
    ) -> HttpResponse {
        let max_frame = state.config.ws.max_frame_bytes;
        let (out, body) = outbound::channel(state.config.ws.max_pending);
        let response = response.map_body(|_, ws| BoxBody::new(body.keeping(ws)));
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        WsSession::create(move |ctx| {
            ctx.add_stream(
                stream
                    .max_frame_size(max_frame)
                    .aggregate_continuations()
                    .max_continuation_size(max_frame),
            );
            WsSession {
                id,
                agent: std::sync::Arc::new(agent),
                state,
                out,
                last_seen: Instant::now(),
                subs: HashMap::new(),
                next_sub: 1,
            }
        });
        response
    }

    fn session_name(&self) -> String {
        format!("{}-{}", self.state.node_id, self.id)
    }

    /// Queues a frame; a full queue means a slow consumer (1013), a closed one ends the session.
    fn send(&mut self, frame: Outgoing, ctx: &mut Context<Self>) -> bool {
        match self.out.try_send(frame) {
            Ok(()) => true,
            Err(Refused::Full) => {
                metrics::counter!("mailbox_ws_slow_consumers_total").increment(1);
                tracing::info!(session = self.id, agent = %self.agent.id, "slow consumer: closing with 1013");
                self.close_with(
                    CLOSE_TRY_AGAIN,
                    "slow consumer: resume from your last seq",
                    ctx,
                );
                false
            }
            Err(Refused::Closed) => {
                ctx.stop();
                false
            }
        }
    }

    fn send_frame(&mut self, frame: &ServerFrame, ctx: &mut Context<Self>) {
        self.send(Outgoing::Text(frame.to_text()), ctx);
    }

    fn ok(&mut self, reference: Option<String>, result: &impl Serialize, ctx: &mut Context<Self>) {
        self.send(Outgoing::Text(ok_frame(reference.as_deref(), result)), ctx);
    }

    fn error(&mut self, reference: Option<String>, e: &ApiError, ctx: &mut Context<Self>) {
        let details = e.details();
        let frame = ServerFrame::Error {
            reference,
            code: e.code().to_owned(),
            message: e.client_message(),
            details: if details.as_object().is_some_and(|m| m.is_empty()) {
                Value::Null
            } else {
                details
            },
        };
        self.send_frame(&frame, ctx);
    }

    fn close_with(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        self.out.close(CloseReason {
            code: CloseCode::from(code),
            description: (!reason.is_empty()).then(|| reason.to_owned()),
        });
        ctx.stop();
    }

    fn subscribe(
        &mut self,
        reference: Option<String>,
        target: &str,
        from: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        let (name, from) = match self.state.ops.watch(&self.agent, target, from) {
            Ok(WatchTarget::Mailbox { name, from }) => (name, from),
            Ok(WatchTarget::Topic { pattern, from }) => {
                return self.subscribe_topic(reference, pattern, from, ctx)
            }
            Err(e) => return self.error(reference, &e, ctx),
        };
        let sub_id = format!("s{}", self.next_sub);
        self.next_sub += 1;
        let mailbox = self.state.ops.registry().mailbox(&name);
        self.subs.insert(
            sub_id.clone(),
            Subscription {
                source: Source::Mailbox(name),
                cursor: 0,
                mode: Mode::CatchingUp(Vec::new()),
            },
        );
        let key = SubscriberKey {
            session: self.id,
            subscription: sub_id.clone(),
        };
        let recipient = ctx.address().recipient();
        let reader = self.agent.id.clone();
        let fut = async move {
            mailbox.subscribe(key, recipient).await?;
            let (cursor, unread_only) = match from {
                MailboxStart::Latest => (mailbox.stats(&reader).await?.last_seq, false),
                MailboxStart::Beginning => (0, false),
                MailboxStart::After(seq) => (seq, false),
                MailboxStart::Unread => (mailbox.read_state(&reader).await?.upto, true),
            };
            Ok::<_, mailbox_actors::Error>((cursor, unread_only))
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
            Ok((cursor, unread_only)) => {
                act.ok(reference, &json!({ "subscription": sub_id }), ctx);
                if let Some(sub) = act.subs.get_mut(&sub_id) {
                    sub.cursor = cursor;
                }
                act.catch_up(sub_id, unread_only, ctx);
            }
            Err(e) => {
                act.subs.remove(&sub_id);
                act.error(reference, &e.into(), ctx);
            }
        }));
    }

    /// Replays from storage after the subscription's cursor, then drains buffered pushes.
    fn catch_up(&mut self, sub_id: String, unread_only: bool, ctx: &mut Context<Self>) {
        let Some(sub) = self.subs.get(&sub_id) else {
            return;
        };
        let source = match &sub.source {
            Source::Mailbox(m) => Replay::Mailbox(self.state.ops.registry().mailbox(m)),
            Source::Topic(t) => Replay::Topic(self.state.ops.registry().topic(t)),
            Source::Pattern => return,
        };
        let (mut cursor, out, reader) = (sub.cursor, self.out.clone(), self.agent.id.clone());
        let sid = sub_id.clone();
        let fut = async move {
            loop {
                let q = BrowseQuery {
                    after: Some(cursor),
                    unread_only,
                    limit: REPLAY_PAGE,
                    ..Default::default()
                };
                let page = source.replay_page(&reader, &q).await?;
                for env in &page.messages {
                    let json = serde_json::to_string(env)
                        .map_err(|e| mailbox_actors::Error::Internal(e.to_string()))?;
                    // Replay waits for room in the queue: a big backlog is paced, not refused.
                    if out
                        .send(Outgoing::Text(message_frame(&sid, &json)))
                        .await
                        .is_err()
                    {
                        return Ok(cursor);
                    }
                    metrics::counter!("mailbox_messages_delivered_total", "transport" => "ws")
                        .increment(1);
                    cursor = env.seq.parse().unwrap_or(cursor);
                }
                if page.next.is_none() {
                    return Ok::<u64, mailbox_actors::Error>(cursor);
                }
                if let Some(n) = page.next.and_then(|n| n.parse().ok()) {
                    cursor = cursor.max(n);
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let cursor = match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(session = act.id, error = %e, "replay failed; closing so the client resumes");
                    return act.close_with(CLOSE_TRY_AGAIN, "backlog replay failed: resume from your last seq", ctx);
                }
            };
            let Some(sub) = act.subs.get_mut(&sub_id) else { return };
            sub.cursor = sub.cursor.max(cursor);
            let buffered = match std::mem::replace(&mut sub.mode, Mode::Live) {
                Mode::CatchingUp(b) => b,
                Mode::Live => Vec::new(),
            };
            for p in buffered {
                act.deliver_live(p, false, ctx);
            }
        }));
    }

    /// Sends a live push in order; `check_gap` turns a skipped seq into a catch-up from storage.
    fn deliver_live(&mut self, p: Pushed, check_gap: bool, ctx: &mut Context<Self>) {
        let Some(sub) = self.subs.get_mut(&p.subscription) else {
            return;
        };
        if p.redelivery || matches!((&sub.source, &sub.mode), (Source::Pattern, Mode::Live)) {
            // A redelivery is already recorded as its next attempt, and goes out whatever the
            // cursor says (the stream position was sent before). A pattern is live only, and
            // its seqs come from many topics: nothing to order or resume.
            return self.push_out(&p, ctx);
        }
        match &mut sub.mode {
            Mode::CatchingUp(buf) => {
                buf.push(p);
                if buf.len() > MAX_REPLAY_BUFFER {
                    self.close_with(
                        CLOSE_TRY_AGAIN,
                        "slow consumer: resume from your last seq",
                        ctx,
                    );
                }
                return;
            }
            Mode::Live if p.seq <= sub.cursor => return,
            Mode::Live if check_gap && p.seq > sub.cursor + 1 => {
                let sub_id = p.subscription.clone();
                sub.mode = Mode::CatchingUp(vec![p]);
                return self.catch_up(sub_id, false, ctx);
            }
            // A message that awaits an ack is a delivery attempt: it goes through the ordered
            // storage path, which records the attempt before the frame leaves (so a `receive`
            // elsewhere can never hold it at the same time).
            Mode::Live if p.require_ack => {
                let sub_id = p.subscription.clone();
                sub.mode = Mode::CatchingUp(Vec::new());
                return self.catch_up(sub_id, false, ctx);
            }
            Mode::Live => sub.cursor = p.seq,
        }
        self.push_out(&p, ctx);
    }

    /// Sends one live push, with the delivery metrics.
    fn push_out(&mut self, p: &Pushed, ctx: &mut Context<Self>) {
        let latency =
            (chrono::Utc::now().timestamp_millis() - p.created_at_ms).max(0) as f64 / 1000.0;
        if self.send(Outgoing::Text(message_frame(&p.subscription, &p.json)), ctx) {
            metrics::counter!("mailbox_messages_delivered_total", "transport" => "ws").increment(1);
            metrics::histogram!("mailbox_delivery_latency_seconds").record(latency);
        }
    }

    /// Stops the pushes of a subscription that has been dropped.
    fn detach(&self, subscription: String, source: Source) {
        let key = SubscriberKey {
            session: self.id,
            subscription,
        };
        match source {
            Source::Mailbox(name) => {
                let m = self.state.ops.registry().mailbox(&name);
                actix_web::rt::spawn(async move { m.unsubscribe(key).await });
            }
            Source::Topic(_) | Source::Pattern => {
                self.state.ops.registry().router().remove_live(key)
            }
        }
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.ops.registry().register_session(
            self.id,
            &self.agent.id,
            ctx.address().recipient(),
        );
        let welcome = ServerFrame::Welcome {
            agent: self.agent.id.clone(),
            session: self.session_name(),
            node: self.state.node_id.clone(),
            heartbeat_seconds: self.state.config.ws.heartbeat_seconds,
        };
        self.send_frame(&welcome, ctx);
        let every = Duration::from_secs(self.state.config.ws.heartbeat_seconds);
        ctx.run_interval(every, move |act, ctx| {
            if act.last_seen.elapsed() > every * 2 {
                tracing::info!(session = act.id, agent = %act.agent.id, "heartbeat timeout");
                return act.close_with(CloseCode::Normal.into(), "heartbeat timeout", ctx);
            }
            act.send(Outgoing::Ping, ctx);
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.state.ops.registry().unregister_session(self.id);
        let subs: Vec<(String, Subscription)> = self.subs.drain().collect();
        for (sub_id, sub) in subs {
            self.detach(sub_id, sub.source);
        }
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        self.last_seen = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(t)) => self.handle_text(&t, ctx),
            Ok(AggregatedMessage::Binary(_)) => self.error(
                None,
                &ApiError::BadRequest(
                    "binary frames are not accepted; send JSON text frames".into(),
                ),
                ctx,
            ),
            Ok(AggregatedMessage::Ping(b)) => {
                self.send(Outgoing::Pong(b), ctx);
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            // Answer the client's close at once (echoing its code), so its close handshake
            // completes now rather than when the connection times out.
            Ok(AggregatedMessage::Close(reason)) => {
                let code = reason.map_or(CloseCode::Normal.into(), |r| u16::from(r.code));
                self.close_with(code, "", ctx)
            }
            Err(ProtocolError::Overflow) => {
                self.close_with(CLOSE_TOO_BIG, "frame over ws.max_frame_bytes", ctx)
            }
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "websocket protocol error");
                self.close_with(CloseCode::Protocol.into(), "protocol error", ctx)
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Pushed> for WsSession {
    type Result = ();

    fn handle(&mut self, p: Pushed, ctx: &mut Context<Self>) {
        self.deliver_live(p, true, ctx);
    }
}

impl Handler<CloseSession> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close_with(msg.code, &msg.reason, ctx);
    }
}
