//! The Redis engine's appends (`scripts/append.lua`): one stream per script call, or many
//! mailboxes pipelined in one round trip (fan-out copies). Mailbox appends record each record's
//! delivery state; then a second, repeatable step fills the global retry schedule and the
//! dead-letter queue (see [`super::delivery`]). Topic histories keep no delivery state.

use chrono::Utc;
use redis::Value;

use super::{as_string, as_u64, corrupt, delivery, Conn, RedisEngine};
use crate::storage::delivery::Buried;
use crate::storage::{AppendOutcome, Appended, NewRecord, StorageError, StoredRecord, Stream};

/// The append script's answer, before the second, repeatable step (see [`delivery`]).
pub(super) struct ScriptAppend {
    outcome: AppendOutcome,
    /// Evicted records that awaited an ack, now in the mailbox's dead-letter outbox.
    buried: Vec<Buried>,
    /// `(seq, expires_at ms)` of stored records that await an ack and expire.
    expiring: Vec<(u64, i64)>,
}

/// Reads the append script's reply (see `scripts/append.lua`).
pub(super) fn parse_append(stream: &Stream, reply: Value) -> Result<ScriptAppend, StorageError> {
    let Value::Array(parts) = reply else {
        return Err(corrupt("append"));
    };
    if let Some(Value::BulkString(tag)) = parts.first() {
        if tag == b"full" {
            return Err(StorageError::MailboxFull {
                mailbox: stream.name().to_owned(),
                max_len: parts.get(1).and_then(as_u64).unwrap_or_default(),
            });
        }
        if tag == b"missing" {
            return Err(StorageError::UnknownTopic(stream.name().to_owned()));
        }
    }
    let (Some(Value::Array(results)), Some(Value::Array(evicted))) = (parts.first(), parts.get(1))
    else {
        return Err(corrupt("append"));
    };
    let buried = delivery::parse_buried(parts.get(2))?;
    let expiring = delivery::parse_pairs(parts.get(3))?;
    let mut out = AppendOutcome::default();
    for r in results {
        let Value::Array(r) = r else {
            return Err(corrupt("append"));
        };
        let kind = r.first().and_then(as_u64);
        let seq = r.get(1).and_then(as_u64).ok_or_else(|| corrupt("append"))?;
        out.results
            .push(match (kind, r.get(2).and_then(as_string)) {
                (Some(1), Some(id)) => Appended::Duplicate { id, seq },
                _ => Appended::Stored { seq },
            });
    }
    for pair in evicted.chunks(2) {
        if let [seq, Value::BulkString(record)] = pair {
            let seq = as_u64(seq).ok_or_else(|| corrupt("append"))?;
            out.evicted.push(StoredRecord {
                seq,
                record: record.clone(),
            });
        }
    }
    Ok(ScriptAppend {
        outcome: out,
        buried,
        expiring,
    })
}

impl RedisEngine {
    /// Keys and arguments of the append script on one stream. `topic` is `Some(must_exist)`
    /// for topic histories (they drop their oldest messages when full, may be required to exist
    /// already, and keep no delivery state); mailboxes record each record's delivery metadata.
    pub(super) fn append_parts(
        &self,
        stream: &Stream,
        records: &[NewRecord],
        default_max_len: u64,
        topic: Option<bool>,
    ) -> (Vec<String>, Vec<Vec<u8>>) {
        let mut keys: Vec<String> = [
            "meta", "msgs", "ids", "ready", "dm", "att", "flight", "wait", "dead",
        ]
        .iter()
        .map(|part| self.keys.stream(stream, part))
        .collect();
        let mut args: Vec<Vec<u8>> = vec![
            default_max_len.to_string().into_bytes(),
            Utc::now().timestamp_millis().to_string().into_bytes(),
            records.len().to_string().into_bytes(),
        ];
        for r in records {
            args.push(r.id.clone().into_bytes());
            args.push(r.record.clone());
            match &r.idempotency {
                Some(k) => {
                    keys.push(self.keys.stream(stream, &format!("idem:{k}")));
                    args.push(keys.len().to_string().into_bytes());
                }
                None => args.push(b"0".to_vec()),
            }
            args.push(r.delivery.rank.to_string().into_bytes());
            args.push(if r.delivery.require_ack {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            });
            args.push(r.delivery.expires_ms.to_string().into_bytes());
        }
        if let Some(must_exist) = topic {
            args.push(b"drop_oldest".to_vec());
            args.push(if must_exist {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            });
            // No delivery state for a topic history.
            args.push(b"1".to_vec());
        }
        (keys, args)
    }

    /// The append script on one stream (see [`Self::append_parts`]), then its second step.
    pub(super) async fn append_stream(
        &self,
        stream: &Stream,
        records: Vec<NewRecord>,
        default_max_len: u64,
        topic: Option<bool>,
    ) -> Result<AppendOutcome, StorageError> {
        let (keys, args) = self.append_parts(stream, &records, default_max_len, topic);
        let mut inv = self.scripts.append.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut c = self.conn().await?;
        let reply: Value = self.timed(inv.invoke_async(&mut c)).await?;
        let script = parse_append(stream, reply)?;
        Ok(self.finish_append(&mut c, stream, script).await)
    }

    /// The second, repeatable step of an append into a mailbox: the global retry schedule for
    /// expiring records and the dead-letter queue for evicted ones awaiting an ack.
    async fn finish_append(
        &self,
        c: &mut Conn,
        stream: &Stream,
        script: ScriptAppend,
    ) -> AppendOutcome {
        if let Stream::Mailbox(mailbox) = stream {
            self.schedule_at(c, mailbox, &script.expiring).await;
            self.flush_buried(c, mailbox, script.buried).await;
        }
        script.outcome
    }

    /// `append_many`: appends to many mailboxes in one round trip (a pipeline of append
    /// scripts) and records their agents as known. Each mailbox's append is atomic on its own
    /// and records delivery state exactly like `append`; answers one result per item, in order.
    pub(super) async fn append_pipelined(
        &self,
        items: Vec<(String, Vec<NewRecord>)>,
        default_max_len: u64,
    ) -> Result<Vec<Result<AppendOutcome, StorageError>>, StorageError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let streams: Vec<Stream> = items
            .iter()
            .map(|(m, _)| Stream::Mailbox(m.clone()))
            .collect();
        // One script call per mailbox, then the agents: on a cluster they go out as one
        // pipeline per slot, all at once (see `Conn::spread`).
        let mut cmds = Vec::with_capacity(items.len() + 1);
        for (stream, (_, records)) in streams.iter().zip(&items) {
            let (keys, args) = self.append_parts(stream, records, default_max_len, None);
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.scripts.append.get_hash())
                .arg(keys.len())
                .arg(&keys)
                .arg(args);
            cmds.push((keys[0].clone(), cmd));
        }
        let mut sadd = redis::cmd("SADD");
        sadd.arg(self.keys.agents());
        for (m, _) in &items {
            sadd.arg(m);
        }
        cmds.push((self.keys.agents(), sadd));
        let mut c = self.conn().await?;
        let mut replies = self.timed(c.spread(cmds.clone())).await?;
        let missing: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.as_ref().is_err_and(|e| {
                    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
                })
            })
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            // A Redis lost its scripts (restart, SCRIPT FLUSH): those appends did not run. Load
            // (on a cluster `SCRIPT LOAD` goes to every node) and run just those again.
            let _: String = self
                .timed(self.scripts.append.prepare_invoke().load_async(&mut c))
                .await?;
            let again: Vec<_> = missing.iter().map(|&i| cmds[i].clone()).collect();
            let redone = self.timed(c.spread(again)).await?;
            for (i, r) in missing.into_iter().zip(redone) {
                replies[i] = r;
            }
        }
        let mut out = Vec::with_capacity(streams.len());
        for (stream, r) in streams.iter().zip(replies) {
            out.push(match r.map_err(StorageError::from) {
                Ok(v) => match parse_append(stream, v) {
                    Ok(script) => Ok(self.finish_append(&mut c, stream, script).await),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            });
        }
        Ok(out)
    }
}
