//! Client ops of a session: parse a frame, call [`crate::ops`], answer with its `ref`. What is
//! checked and refused is decided in ops, so a frame gets the same error as the REST call.

use std::future::Future;

use actix::prelude::*;
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use super::WsSession;
use crate::error::ApiError;
use crate::ops::{MarkReadArgs, NackArgs, SendArgs};
use crate::ws::frames::{ClientFrame, ServerFrame};

impl WsSession {
    pub(super) fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        // Each op gets a request id, as an HTTP request does: every log line of the op (and of
        // the future it spawns, see `answer`) carries it with the session, agent, op and ref.
        let span = tracing::info_span!(
            "ws_op",
            request_id = %ulid::Ulid::generate(),
            session = self.id,
            agent = %self.agent.id,
            op = tracing::field::Empty,
            r#ref = tracing::field::Empty,
        );
        let _entered = span.enter();
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err((reference, e)) => {
                tracing::debug!(code = e.code(), error = %e, "frame refused");
                self.error(reference, &e, ctx);
                return;
            }
        };
        span.record("op", frame.op());
        if let Some(r) = frame.reference() {
            span.record("ref", r);
        }
        tracing::debug!("ws op");
        let reference = frame.reference().map(str::to_owned);
        // The app state and the agent are shared, not copied: an op's future holds them.
        let (state, agent) = (self.state.clone(), self.agent.clone());
        match frame {
            ClientFrame::Ping { .. } => self.send_frame(&ServerFrame::Pong { reference }, ctx),
            ClientFrame::Subscribe { target, from, .. } => {
                self.subscribe(reference, &target, from.as_deref(), ctx)
            }
            ClientFrame::Unsubscribe { subscription, .. } => {
                match self.subs.remove(&subscription) {
                    Some(sub) => {
                        self.detach(subscription.clone(), sub.source);
                        self.ok(reference, &json!({ "subscription": subscription }), ctx);
                    }
                    None => self.error(
                        reference,
                        &ApiError::not_found(format!("subscription `{subscription}`")),
                        ctx,
                    ),
                }
            }
            ClientFrame::Send {
                message,
                idempotency_key,
                ..
            } => {
                let args = SendArgs {
                    message: *message,
                    idempotency_key,
                };
                self.answer(
                    reference,
                    async move { state.ops.send(&agent, args).await },
                    ctx,
                );
            }
            ClientFrame::Read {
                mailbox,
                up_to,
                ids,
                ..
            } => {
                let args = MarkReadArgs { ids, up_to };
                let fut = async move { state.ops.mark_read(&agent, &mailbox, args).await };
                self.answer(reference, fut, ctx);
            }
            ClientFrame::Ack { mailbox, id, .. } => {
                let fut = async move { state.ops.ack(&agent, &mailbox, &id).await };
                self.answer(reference, fut, ctx);
            }
            ClientFrame::Nack {
                mailbox,
                id,
                requeue,
                reason,
                ..
            } => {
                let args = NackArgs { requeue, reason };
                let fut = async move { state.ops.nack(&agent, &mailbox, &id, args).await };
                self.answer(reference, fut, ctx);
            }
        }
    }

    /// Runs an op and answers its result as an `ok` frame, or its error as an `error` frame.
    /// Answers of one session may overtake each other: clients match them by `ref`.
    fn answer<T, F>(&mut self, reference: Option<String>, op: F, ctx: &mut Context<Self>)
    where
        T: Serialize,
        F: Future<Output = Result<T, ApiError>> + 'static,
    {
        // Boxed first: an op's future is large, and each adapter below would move it again.
        let op = Box::pin(op).instrument(tracing::Span::current());
        ctx.spawn(op.into_actor(self).map(move |r, act, ctx| match r {
            Ok(v) => act.ok(reference, &v, ctx),
            Err(e) => act.error(reference, &e, ctx),
        }));
    }
}
