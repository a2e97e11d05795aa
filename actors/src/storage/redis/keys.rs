//! Every Redis key and pub/sub channel name of the broker, in one place (`P` =
//! `redis.key_prefix`). The layout is the same on one Redis and on a Redis Cluster.
//!
//! On a cluster, a key's slot is the CRC16 of its hash tag (the text between the first `{` and
//! `}`), or of the whole key when it has none. Every key of one mailbox (`P:mb:{bob}:…`) or one
//! topic history (`P:tp:{news}:…`) carries the stream's name as its tag, so every Lua script on
//! a stream touches one slot. Global structures either live in one key (one slot, named here) or
//! are spread by their own names; the README's "Redis Cluster" table says which and what it
//! costs. No script and no `MULTI` ever spans two of the groups below.

use crate::storage::Stream;

/// How many sharded pub/sub channels carry cross-node events on a cluster (`P:events:{e0}` …
/// `{e7}`): enough to put some on every master of a usual cluster, few enough that each node
/// subscribes to all of them on one connection.
pub const EVENT_SHARDS: usize = 8;

/// Names of keys and channels under one prefix. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    // --- Per mailbox and per topic: sharded by the stream's name ---------------------------

    /// `P:mb:{<mailbox>}:<part>`: `meta`, `msgs`, `ids`, `upto`, `rd:<reader>`,
    /// `idem:<sender>:<key>`, `ready`, `dm`, `att`, `flight`, `wait`, `dead` (see the engine's
    /// module doc).
    pub fn mailbox(&self, mailbox: &str, part: &str) -> String {
        concat(&[&self.prefix, ":mb:{", mailbox, "}:", part])
    }

    /// `P:tp:{<topic>}:<part>`: `meta`, `msgs`, `ids`, `idem:<sender>:<key>`.
    pub fn topic(&self, topic: &str, part: &str) -> String {
        concat(&[&self.prefix, ":tp:{", topic, "}:", part])
    }

    /// A key of a mailbox or a topic history.
    pub fn stream(&self, stream: &Stream, part: &str) -> String {
        match stream {
            Stream::Mailbox(name) => self.mailbox(name, part),
            Stream::Topic(name) => self.topic(name, part),
        }
    }

    /// `P:rate:{<key>}`: one GCRA counter, sharded by its key.
    pub fn rate(&self, key: &str) -> String {
        format!("{}:rate:{{{key}}}", self.prefix)
    }

    /// `P:quota:{<agent>}:<day>`: one agent's counters of one UTC day, sharded by agent.
    pub fn quota(&self, agent: &str, day: u32) -> String {
        format!("{}:quota:{{{agent}}}:{day}", self.prefix)
    }

    /// `P:blob:{<id>}:<part>` (`data`, `meta`): one blob, sharded by its id.
    pub fn blob(&self, id: &str, part: &str) -> String {
        format!("{}:blob:{{{id}}}:{part}", self.prefix)
    }

    // --- Global: one key each, so one slot each -------------------------------------------

    /// `P:agents`: set of every agent with a mailbox (broadcast targets, reconciliation).
    pub fn agents(&self) -> String {
        format!("{}:agents", self.prefix)
    }

    /// `P:topics`: zset of every topic (all scores 0, by name).
    pub fn topics(&self) -> String {
        format!("{}:topics", self.prefix)
    }

    /// `P:{subs}:<part>`: durable subscriptions (`all`, `index`, `version`), one slot (tag
    /// `subs`) so `sub_add.lua`/`sub_remove.lua` update all three atomically.
    pub fn subs(&self, part: &str) -> String {
        format!("{}:{{subs}}:{part}", self.prefix)
    }

    /// `P:retry`: zset `<mailbox>\n<seq>` by due time (ms), the retry schedule.
    pub fn retry(&self) -> String {
        format!("{}:retry", self.prefix)
    }

    /// `P:dlq:ids`: zset (score 0, by id) of every dead letter.
    pub fn dlq_ids(&self) -> String {
        format!("{}:dlq:ids", self.prefix)
    }

    /// `P:dlq:by:<mailbox>`: the dead letters of one mailbox (its own slot).
    pub fn dlq_by(&self, mailbox: &str) -> String {
        format!("{}:dlq:by:{mailbox}", self.prefix)
    }

    /// `P:dlq:dl:<id>`: one dead letter's body (spread over the cluster by id).
    pub fn dlq_body(&self, id: &str) -> String {
        format!("{}:dlq:dl:{id}", self.prefix)
    }

    /// `P:admin:agents`: hash agent id -> JSON record.
    pub fn admin_agents(&self) -> String {
        format!("{}:admin:agents", self.prefix)
    }

    /// `P:audit`: the capped audit stream.
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// `P:{intents}:<part>`: cross-mailbox batch intents (`due` zset id by creation ms, `body`
    /// hash id -> encoded batch), one slot (tag `intents`) so both change atomically.
    pub fn intents(&self, part: &str) -> String {
        format!("{}:{{intents}}:{part}", self.prefix)
    }

    // --- Pub/sub channels --------------------------------------------------------------------

    /// `P:events`: the one cross-node event channel on a single Redis.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// `P:events:{e<n>}`: the sharded channels (`SPUBLISH`/`SSUBSCRIBE`) on a cluster.
    pub fn event_shards(&self) -> Vec<String> {
        (0..EVENT_SHARDS)
            .map(|n| format!("{}:events:{{e{n}}}", self.prefix))
            .collect()
    }

    /// The sharded channel that carries events of `stream` (a stable hash of its name).
    pub fn event_shard_of(&self, stream: &str) -> String {
        // FNV-1a: stable across builds and nodes, unlike std's randomly seeded hasher.
        let h = stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let n = (h % EVENT_SHARDS as u64) as usize;
        format!("{}:events:{{e{n}}}", self.prefix)
    }
}

/// `parts` joined, in one allocation: a storage call names up to ten keys of its stream, and
/// `format!` cost ~2 % of the broker's CPU in `bench ack`.
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn every_key_of_a_mailbox_shares_its_slot() {
        let k = Keys::new("mbx");
        let slot = Slot::for_key(k.mailbox("bob", "meta"));
        for part in ["msgs", "ids", "idem:alice:k1", "rd:carol", "dead"] {
            assert_eq!(Slot::for_key(k.mailbox("bob", part)), slot, "{part}");
        }
        assert_eq!(k.mailbox("bob", "meta"), "mbx:mb:{bob}:meta");
        let t = Slot::for_key(k.topic("news.eu", "meta"));
        assert_eq!(k.topic("news.eu", "meta"), "mbx:tp:{news.eu}:meta");
        assert_eq!(Slot::for_key(k.topic("news.eu", "idem:a:b")), t);
        assert_eq!(
            Slot::for_key(k.subs("all")),
            Slot::for_key(k.subs("version"))
        );
        assert_eq!(
            Slot::for_key(k.blob("01J", "data")),
            Slot::for_key(k.blob("01J", "meta"))
        );
        assert_eq!(
            Slot::for_key(k.intents("due")),
            Slot::for_key(k.intents("body"))
        );
    }

    #[test]
    fn event_shards_are_stable_and_listed() {
        let k = Keys::new("p");
        let all = k.event_shards();
        assert_eq!(all.len(), EVENT_SHARDS);
        let s = k.event_shard_of("bob");
        assert!(all.contains(&s));
        assert_eq!(s, k.event_shard_of("bob"));
    }
}
