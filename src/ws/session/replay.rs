//! What a subscription's catch-up replays from: a mailbox (whose replayed messages awaiting an
//! ack are delivery attempts) or a single topic's history (no delivery state).

use std::collections::HashMap;

use mailbox_actors::mailbox::{BrowseQuery, MailboxHandle, Page};
use mailbox_actors::topic::TopicHandle;

/// What a catch-up replays from.
pub(super) enum Replay {
    Mailbox(MailboxHandle),
    Topic(TopicHandle),
}

impl Replay {
    /// The next page to send. In a mailbox, the replayed messages that await an ack are
    /// delivery attempts too: they are recorded (in order, before sending) and each is stamped
    /// with the attempt it is.
    pub(super) async fn replay_page(
        &self,
        reader: &str,
        q: &BrowseQuery,
    ) -> Result<Page, mailbox_actors::Error> {
        let mailbox = match self {
            Replay::Mailbox(m) => m,
            Replay::Topic(t) => return t.browse(q).await,
        };
        let mut page = mailbox.browse(reader, q).await?;
        let awaiting: Vec<u64> = page
            .messages
            .iter()
            .filter(|e| e.require_ack)
            .filter_map(|e| e.seq.parse().ok())
            .collect();
        if !awaiting.is_empty() {
            let attempts: HashMap<u64, u32> = mailbox
                .record_delivery(awaiting)
                .await?
                .into_iter()
                .collect();
            for env in &mut page.messages {
                env.attempt = env
                    .seq
                    .parse()
                    .ok()
                    .and_then(|s: u64| attempts.get(&s).copied());
            }
        }
        Ok(page)
    }
}
