//! Topic targets of the session: `{"op":"subscribe","target":"topic:<pattern>","from":…}`.
//!
//! The subscription registers with the node's router, which pushes every message stored in a
//! matching topic. `from` is `latest` (the default). A single topic (no wildcard) may also start
//! from a seq or `beginning`: the history is replayed first, then live, exactly like a mailbox.

use actix::prelude::*;
use mailbox_actors::mailbox::messages::SubscriberKey;
use mailbox_actors::model::{check_topic_pattern, is_single_topic};
use serde_json::json;

use super::{Mode, Source, Subscription, WsSession};
use crate::error::ApiError;

/// Where a topic subscription starts.
enum Start {
    Latest,
    After(u64),
}

fn start(pattern: &str, from: Option<&str>) -> Result<Start, ApiError> {
    let single = is_single_topic(pattern);
    match from {
        None | Some("latest") => Ok(Start::Latest),
        Some("unread") => Err(ApiError::validation(
            "from",
            "topics have no read state: use `latest` (or a seq for a single topic)",
        )),
        Some(_) if !single => Err(ApiError::validation(
            "from",
            "a topic pattern with wildcards is live only: `from` must be `latest`",
        )),
        Some("beginning") => Ok(Start::After(0)),
        Some(seq) => seq.parse().map(Start::After).map_err(|_| {
            ApiError::validation("from", "`from` is latest, beginning or a seq of this topic")
        }),
    }
}

impl WsSession {
    pub(super) fn subscribe_topic(
        &mut self,
        reference: Option<String>,
        pattern: &str,
        from: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        let checked = check_topic_pattern("target", pattern)
            .map_err(ApiError::from)
            .and_then(|()| {
                self.agent
                    .require(&self.state, &format!("topic:{pattern}"), "subscribe")
            })
            .and_then(|()| start(pattern, from));
        let start = match checked {
            Ok(s) => s,
            Err(e) => return self.error(reference, &e, ctx),
        };
        let sub_id = format!("s{}", self.next_sub);
        self.next_sub += 1;
        let key = SubscriberKey {
            session: self.id,
            subscription: sub_id.clone(),
        };
        let router = self.state.registry.router().clone();
        let recipient = ctx.address().recipient();
        let pattern = pattern.to_owned();
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
                    act.ok(reference, json!({ "subscription": sub_id }), ctx);
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
        let topic = self.state.registry.topic(&pattern);
        self.subs.insert(
            sub_id.clone(),
            Subscription {
                source: Source::Topic(topic.clone()),
                cursor: 0,
                mode: Mode::CatchingUp(Vec::new()),
            },
        );
        let fut = async move {
            router.add_live(key, &pattern, recipient).await?;
            Ok::<u64, mailbox_actors::Error>(match start {
                Start::After(seq) => seq,
                Start::Latest => topic.stats().await?.map_or(0, |s| s.last_seq),
            })
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| match r {
            Ok(cursor) => {
                act.ok(reference, json!({ "subscription": sub_id }), ctx);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_topic_subscriptions_may_start() {
        assert!(matches!(start("a.b", None), Ok(Start::Latest)));
        assert!(matches!(start("a.#", Some("latest")), Ok(Start::Latest)));
        assert!(matches!(start("a.b", Some("12")), Ok(Start::After(12))));
        assert!(matches!(
            start("a.b", Some("beginning")),
            Ok(Start::After(0))
        ));
        for (pattern, from) in [("a.*", "12"), ("a.#", "beginning"), ("a.b", "unread")] {
            let e = start(pattern, Some(from)).err().expect("refused");
            assert_eq!(e.details()["field"], "from", "{pattern} {from}");
        }
    }
}
