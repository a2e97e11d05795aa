//! Topic targets of the session: `{"op":"subscribe","target":"topic:<pattern>","from":…}`.
//!
//! The subscription registers with the node's router, which pushes every message stored in a
//! matching topic. `from` is `latest` (the default). A single topic (no wildcard) may also start
//! from a seq or `beginning`: the history is replayed first, then live, exactly like a mailbox.

use actix::prelude::*;
use mailbox_actors::mailbox::messages::SubscriberKey;
use mailbox_actors::model::is_single_topic;
use serde_json::json;

use super::{Mode, Source, Subscription, WsSession};
use crate::ops::TopicStart;

impl WsSession {
    /// Starts a checked topic subscription (see [`crate::ops::Ops::watch`]).
    pub(super) fn subscribe_topic(
        &mut self,
        reference: Option<String>,
        pattern: String,
        start: TopicStart,
        ctx: &mut Context<Self>,
    ) {
        let sub_id = format!("s{}", self.next_sub);
        self.next_sub += 1;
        let key = SubscriberKey {
            session: self.id,
            subscription: sub_id.clone(),
        };
        let router = self.state.ops.registry().router().clone();
        let recipient = ctx.address().recipient();
        if !is_single_topic(&pattern) {
            // Pushes that beat the `ok` wait for it, so the client hears of the subscription
            // before its first message.
            self.subs.insert(
                sub_id.clone(),
                Subscription {
                    source: Source::Pattern,
                    cursor: 0,
                    mode: Mode::CatchingUp(Vec::new()),
                },
            );
            let fut = async move { router.add_live(key, &pattern, recipient).await };
            ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
                Ok(()) => {
                    act.ok(reference, &json!({ "subscription": sub_id }), ctx);
                    let early = match act.subs.get_mut(&sub_id) {
                        Some(sub) => match std::mem::replace(&mut sub.mode, Mode::Live) {
                            Mode::CatchingUp(b) => b,
                            Mode::Live => Vec::new(),
                        },
                        None => Vec::new(),
                    };
                    for p in early {
                        act.push_out(&p, ctx);
                    }
                }
                Err(e) => {
                    if let Some(sub) = act.subs.remove(&sub_id) {
                        act.detach(sub_id, sub.source);
                    }
                    act.error(reference, &e.into(), ctx);
                }
            }));
            return;
        }
        // One topic: register before looking at the history, buffer pushes, replay, go live.
        let topic = self.state.ops.registry().topic(&pattern);
        self.subs.insert(
            sub_id.clone(),
            Subscription {
                source: Source::Topic(pattern.clone()),
                cursor: 0,
                mode: Mode::CatchingUp(Vec::new()),
            },
        );
        let fut = async move {
            router.add_live(key, &pattern, recipient).await?;
            Ok::<u64, mailbox_actors::Error>(match start {
                TopicStart::After(seq) => seq,
                TopicStart::Latest => topic.stats().await?.map_or(0, |s| s.last_seq),
            })
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
            Ok(cursor) => {
                act.ok(reference, &json!({ "subscription": sub_id }), ctx);
                if let Some(sub) = act.subs.get_mut(&sub_id) {
                    sub.cursor = cursor;
                }
                act.catch_up(sub_id, false, ctx);
            }
            Err(e) => {
                if let Some(sub) = act.subs.remove(&sub_id) {
                    act.detach(sub_id, sub.source);
                }
                act.error(reference, &e.into(), ctx);
            }
        }));
    }
}
