//! Client ops of a session: parse a frame, check it, act, answer with its `ref`.

use actix::prelude::*;
use serde_json::{json, Value};

use mailbox_actors::model::check_mailbox_name;
use mailbox_actors::model::ReadMark;

use super::WsSession;
use crate::error::ApiError;
use crate::ws::frames::{ClientFrame, ServerFrame};

impl WsSession {
    pub(super) fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err((reference, message)) => {
                self.error(reference, &ApiError::BadRequest(message), ctx);
                return;
            }
        };
        let reference = frame.reference().map(str::to_owned);
        match frame {
            ClientFrame::Ping { .. } => self.send_frame(&ServerFrame::Pong { reference }, ctx),
            ClientFrame::Subscribe { target, from, .. } => {
                self.subscribe(reference, &target, from.as_deref(), ctx)
            }
            ClientFrame::Unsubscribe { subscription, .. } => {
                match self.subs.remove(&subscription) {
                    Some(sub) => {
                        self.detach(subscription.clone(), sub.source);
                        self.ok(reference, json!({ "subscription": subscription }), ctx);
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
                let (state, agent) = (self.state.clone(), self.agent.clone());
                let fut = async move {
                    let args = crate::ops::SendArgs {
                        message: *message,
                        idempotency_key,
                    };
                    state.ops.send(&agent, args).await
                };
                ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
                    Ok(receipt) => act.ok(
                        reference,
                        serde_json::to_value(receipt).unwrap_or(Value::Null),
                        ctx,
                    ),
                    Err(e) => act.error(reference, &e, ctx),
                }));
            }
            ClientFrame::Read {
                mailbox,
                up_to,
                ids,
                ..
            } => {
                let mark = match (ids, up_to) {
                    (Some(ids), None) if !ids.is_empty() && ids.len() <= 1000 => ReadMark::Ids(ids),
                    (None, Some(s)) => match s.parse() {
                        Ok(seq) => ReadMark::UpTo(seq),
                        Err(_) => {
                            return self.error(
                                reference,
                                &ApiError::validation("up_to", "`up_to` must be a seq"),
                                ctx,
                            )
                        }
                    },
                    _ => {
                        return self.error(
                            reference,
                            &ApiError::validation(
                                "ids",
                                "send exactly one of `ids` (1-1000) or `up_to`",
                            ),
                            ctx,
                        )
                    }
                };
                if let Err(e) = self.authorize_mailbox(&mailbox, "read") {
                    return self.error(reference, &e, ctx);
                }
                let (handle, reader) =
                    (self.state.registry.mailbox(&mailbox), self.agent.id.clone());
                ctx.spawn(
                    async move { handle.mark_read(&reader, mark).await }
                        .into_actor(self)
                        .map(move |r, act, ctx| match r {
                            Ok(unread) => act.ok(reference, json!({ "unread": unread }), ctx),
                            Err(e) => act.error(reference, &e.into(), ctx),
                        }),
                );
            }
            ClientFrame::Ack { mailbox, id, .. } => {
                if let Err(e) = self.authorize_mailbox(&mailbox, "read") {
                    return self.error(reference, &e, ctx);
                }
                let handle = self.state.registry.mailbox(&mailbox);
                let fut = async move {
                    handle
                        .ack(&id)
                        .await
                        .map(|attempt| json!({ "id": id, "status": "acked", "attempt": attempt }))
                };
                ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
                    Ok(v) => act.ok(reference, v, ctx),
                    Err(e) => act.error(reference, &e.into(), ctx),
                }));
            }
            ClientFrame::Nack {
                mailbox,
                id,
                requeue,
                reason,
                ..
            } => {
                let (state, agent) = (self.state.clone(), self.agent.clone());
                let fut = async move {
                    let args = crate::ops::NackArgs { requeue, reason };
                    let r = state.ops.nack(&agent, &mailbox, &id, args).await?;
                    Ok::<_, ApiError>(serde_json::to_value(r).unwrap_or(Value::Null))
                };
                ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
                    Ok(v) => act.ok(reference, v, ctx),
                    Err(e) => act.error(reference, &e, ctx),
                }));
            }
        }
    }

    pub(super) fn authorize_mailbox(&self, name: &str, act: &str) -> Result<(), ApiError> {
        check_mailbox_name(name)?;
        self.agent
            .require(&self.state, &format!("mailbox:{name}"), act)
    }
}
