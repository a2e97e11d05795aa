//! The Redis engine's delivery state (layout in the parent module). Each operation is one
//! `delivery.lua` call on the mailbox's slot, then, where needed, a second step on global keys
//! that is safe to repeat: schedule entries are added with `ZADD LT` (an entry is never later
//! than the truth; an early one only makes the scheduler look and move it), and dead letters
//! are copied from the mailbox's outbox into the queue under a deterministic id before the
//! outbox entry goes. On a single Redis the script itself keeps the schedule entries of
//! receive, take and ack (they are the hot path: one round trip each, not two); on a cluster
//! the schedule lives in another slot, so those go through the second step too.

use async_trait::async_trait;
use chrono::Utc;
use redis::{ScriptInvocation, Value};

use super::{as_string, as_u64, corrupt, Conn, RedisEngine};
use crate::storage::delivery::{
    count_dead, Buried, DeadReason, DeliverySettings, DueReport, Handed, NackOutcome,
};
use crate::storage::engine::{Delivery, Mailboxes};
use crate::storage::StorageError;

/// Schedule entries fetched per round trip by the reconciliation.
const RECONCILE_CHUNK: usize = 50;

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => as_string(other)?.parse::<f64>().ok().map(|f| f as i64),
    }
}

/// A flat `seq, meta, record, …` list of outbox entries.
pub(super) fn parse_buried(v: Option<&Value>) -> Result<Vec<Buried>, StorageError> {
    let Some(Value::Array(flat)) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(flat.len() / 3);
    for t in flat.chunks(3) {
        let [seq, meta, Value::BulkString(record)] = t else {
            return Err(corrupt("dead-letter outbox"));
        };
        let seq = as_u64(seq).ok_or_else(|| corrupt("dead-letter outbox"))?;
        let meta = as_string(meta).ok_or_else(|| corrupt("dead-letter outbox"))?;
        out.push(Buried::from_outbox(seq, &meta, record.clone())?);
    }
    Ok(out)
}

/// A flat `seq, ms, …` list.
pub(super) fn parse_pairs(v: Option<&Value>) -> Result<Schedule, StorageError> {
    let Some(Value::Array(flat)) = v else {
        return Ok(Vec::new());
    };
    flat.chunks(2)
        .map(|p| match p {
            [s, t] => Some((as_u64(s)?, as_i64(t)?)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| corrupt("schedule entries"))
}

fn member(mailbox: &str, seq: u64) -> String {
    format!("{mailbox}\n{seq}")
}

impl RedisEngine {
    /// A `delivery.lua` call with the common arguments filled in. On a single Redis it also
    /// names the global retry schedule, which the script then keeps itself for what it hands
    /// over and acks; on a cluster the schedule is in another slot, so callers add entries
    /// (and remove acked ones) in a second step.
    fn delivery_call(
        &self,
        mailbox: &str,
        op: &str,
        now: i64,
        settings: &DeliverySettings,
    ) -> ScriptInvocation<'_> {
        let mut inv = self
            .scripts
            .delivery
            .key(self.keys.mailbox(mailbox, "msgs"));
        for part in ["ready", "dm", "att", "flight", "wait", "dead", "ids"] {
            inv.key(self.keys.mailbox(mailbox, part));
        }
        if !self.is_cluster() {
            inv.key(self.keys.retry());
        }
        inv.arg(op)
            .arg(now)
            .arg(now + settings.ack_timeout_ms())
            .arg(settings.max_attempts)
            .arg(settings.backoff_base_ms)
            .arg(settings.backoff_multiplier)
            .arg(settings.backoff_max_ms)
            .arg(DeliverySettings::jitter())
            .arg(mailbox);
        inv
    }

    /// Runs a delivery call: its result, and the dead letters it put into the outbox.
    async fn run_delivery(
        &self,
        c: &mut Conn,
        inv: &ScriptInvocation<'_>,
    ) -> Result<(Value, Vec<Buried>), StorageError> {
        let reply: Value = self.timed(inv.invoke_async(c)).await?;
        let Value::Array(mut parts) = reply else {
            return Err(corrupt("delivery"));
        };
        let buried = parse_buried(parts.get(1))?;
        if parts.is_empty() {
            return Err(corrupt("delivery"));
        }
        Ok((parts.swap_remove(0), buried))
    }

    /// Adds retry-schedule entries; an earlier entry already there is kept. The mailbox's state
    /// is already updated, so a failure here is logged rather than answered: the periodic
    /// reconciliation puts the entries back.
    pub(super) async fn schedule_at(&self, c: &mut Conn, mailbox: &str, entries: &[(u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.retry()).arg("LT");
        for (seq, due) in entries {
            cmd.arg(*due).arg(member(mailbox, *seq));
        }
        if let Err(e) = self.timed(cmd.query_async::<i64>(c)).await {
            tracing::warn!(error = %e, mailbox, entries = entries.len(), "retry schedule not updated; the reconciliation will");
        }
    }

    /// Copies outbox entries into the dead-letter queue, then drops them from the outbox. A
    /// failure is logged and left for the reconciliation: the outbox still holds the entry.
    pub(super) async fn flush_buried(&self, c: &mut Conn, mailbox: &str, buried: Vec<Buried>) {
        for b in buried {
            if let Err(e) = self.flush_one(c, mailbox, &b).await {
                tracing::warn!(error = %e, mailbox, seq = b.seq, "dead letter left in the outbox; retried later");
            }
        }
    }

    async fn flush_one(&self, c: &mut Conn, mailbox: &str, b: &Buried) -> Result<(), StorageError> {
        let (id, stored) = b.encode(mailbox)?;
        let seq = b.seq.to_string();
        let body = self.keys.dlq_body(&id);
        let by = self.keys.dlq_by(mailbox);
        let outbox = self.keys.mailbox(mailbox, "dead");
        let mut set = redis::cmd("SET");
        set.arg(&body).arg(stored);
        let mut index = redis::cmd("ZADD");
        index.arg(self.keys.dlq_ids()).arg(0).arg(&id);
        let mut by_mailbox = redis::cmd("ZADD");
        by_mailbox.arg(&by).arg(0).arg(&id);
        let mut hdel = redis::cmd("HDEL");
        hdel.arg(&outbox).arg(&seq).arg(format!("{seq}:r"));
        // Body, then indexes, then the outbox entry goes: a failure at any step leaves the
        // outbox entry, and the reconciliation repeats the same writes under the same id.
        self.timed(c.ordered(vec![
            (body, set),
            (self.keys.dlq_ids(), index),
            (by, by_mailbox),
            (outbox, hdel),
        ]))
        .await?;
        count_dead(b.reason);
        tracing::info!(dead_letter = %id, mailbox, seq = b.seq, reason = b.reason.as_str(), "dead-lettered");
        Ok(())
    }

    /// The `settle` op for one entry: the next due time, whether it became receivable, and
    /// the dead letters it made.
    async fn settle(
        &self,
        c: &mut Conn,
        mailbox: &str,
        seq: u64,
        now: i64,
        settings: &DeliverySettings,
    ) -> Result<(Option<i64>, bool, Vec<Buried>), StorageError> {
        let mut inv = self.delivery_call(mailbox, "settle", now, settings);
        inv.arg(seq);
        let (r, buried) = self.run_delivery(c, &inv).await?;
        let Value::Array(parts) = &r else {
            return Err(corrupt("settle"));
        };
        let ready = parts.first().and_then(as_string).as_deref() == Some("ready");
        Ok((parts.get(1).and_then(as_i64), ready, buried))
    }
}

impl RedisEngine {
    /// `receive` or `redeliver` (the script's ops of those names): up to `max` hand-overs,
    /// looking at most 1000 ready messages.
    async fn hand_over(
        &self,
        mailbox: &str,
        op: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        let mut inv = self.delivery_call(mailbox, op, Utc::now().timestamp_millis(), settings);
        inv.arg(max).arg(1000);
        let mut c = self.conn().await?;
        let (r, buried) = self.run_delivery(&mut c, &inv).await?;
        let (handed, sched) = parse_handed(&r)?;
        self.schedule_at(&mut c, mailbox, &sched).await;
        self.flush_buried(&mut c, mailbox, buried).await;
        Ok(handed)
    }
}

#[async_trait]
impl Delivery for RedisEngine {
    async fn receive(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        self.hand_over(mailbox, "receive", max, settings).await
    }

    async fn redeliver(
        &self,
        mailbox: &str,
        max: usize,
        settings: &DeliverySettings,
    ) -> Result<Vec<Handed>, StorageError> {
        self.hand_over(mailbox, "redeliver", max, settings).await
    }

    async fn take(
        &self,
        mailbox: &str,
        seqs: Vec<u64>,
        settings: &DeliverySettings,
    ) -> Result<Vec<(u64, u32)>, StorageError> {
        let mut inv = self.delivery_call(mailbox, "take", Utc::now().timestamp_millis(), settings);
        for s in seqs {
            inv.arg(s);
        }
        let mut c = self.conn().await?;
        let (r, buried) = self.run_delivery(&mut c, &inv).await?;
        let (handed, sched) = parse_handed(&r)?;
        self.schedule_at(&mut c, mailbox, &sched).await;
        self.flush_buried(&mut c, mailbox, buried).await;
        Ok(handed.into_iter().map(|h| (h.seq, h.attempt)).collect())
    }

    async fn ack(&self, mailbox: &str, id: &str) -> Result<u32, StorageError> {
        let settings = DeliverySettings::default();
        let mut inv = self.delivery_call(mailbox, "ack", Utc::now().timestamp_millis(), &settings);
        inv.arg(id);
        let mut c = self.conn().await?;
        let (r, _) = self.run_delivery(&mut c, &inv).await?;
        let (seq, attempt) = settled(&r, id)?;
        if !self.is_cluster() {
            // The script removed the schedule entry.
            return Ok(attempt);
        }
        // A stale entry left by a failure here only makes the scheduler look once, find
        // nothing due and drop it.
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(self.keys.retry()).arg(member(mailbox, seq));
        if let Err(e) = self.timed(zrem.query_async::<i64>(&mut c)).await {
            tracing::debug!(error = %e, mailbox, seq, "retry entry of an acked message left");
        }
        Ok(attempt)
    }

    async fn nack(
        &self,
        mailbox: &str,
        id: &str,
        requeue: bool,
        reason: &str,
        settings: &DeliverySettings,
    ) -> Result<NackOutcome, StorageError> {
        let mut inv = self.delivery_call(mailbox, "nack", Utc::now().timestamp_millis(), settings);
        inv.arg(id).arg(u8::from(requeue)).arg(reason);
        let mut c = self.conn().await?;
        let (r, buried) = self.run_delivery(&mut c, &inv).await?;
        let (seq, attempt) = settled(&r, id)?;
        let Value::Array(parts) = &r else {
            return Err(corrupt("nack"));
        };
        let outcome = match parts.first().and_then(as_string).as_deref() {
            Some("requeued") => {
                let due = parts
                    .get(3)
                    .and_then(as_i64)
                    .ok_or_else(|| corrupt("nack"))?;
                self.schedule_at(&mut c, mailbox, &[(seq, due)]).await;
                NackOutcome::Requeued {
                    attempt,
                    redeliver_at_ms: due,
                }
            }
            _ => {
                let reason = parts
                    .get(3)
                    .and_then(as_string)
                    .and_then(|r| DeadReason::parse(&r))
                    .ok_or_else(|| corrupt("nack"))?;
                NackOutcome::DeadLettered { attempt, reason }
            }
        };
        self.flush_buried(&mut c, mailbox, buried).await;
        Ok(outcome)
    }

    async fn retry_due(
        &self,
        limit: usize,
        settings: &DeliverySettings,
    ) -> Result<DueReport, StorageError> {
        let now = Utc::now().timestamp_millis();
        let mut c = self.conn().await?;
        let due: Vec<(String, f64)> = self
            .timed(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.retry())
                    .arg("-inf")
                    .arg(now)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c),
            )
            .await?;
        let mut report = DueReport::default();
        for (entry, score) in due {
            report.processed += 1;
            let parsed = entry
                .split_once('\n')
                .and_then(|(m, s)| Some((m.to_owned(), s.parse::<u64>().ok()?)));
            let next = match &parsed {
                None => None,
                Some((mailbox, seq)) => {
                    match self.settle(&mut c, mailbox, *seq, now, settings).await {
                        Ok((next, ready, buried)) => {
                            if ready && !report.woken.contains(mailbox) {
                                report.woken.push(mailbox.clone());
                            }
                            report.dead_lettered += buried.len();
                            self.flush_buried(&mut c, mailbox, buried).await;
                            next
                        }
                        Err(e @ StorageError::Unavailable(_)) => return Err(e),
                        // A corrupt entry must not block the schedule: drop it, loudly.
                        Err(e) => {
                            tracing::error!(error = %e, mailbox, seq, "dropping a retry entry");
                            None
                        }
                    }
                }
            };
            let mut inv = self.scripts.schedule.key(self.keys.retry());
            inv.arg(&entry)
                .arg(score)
                .arg(next.map(|n| n.to_string()).unwrap_or_default());
            let _: i64 = self.timed(inv.invoke_async(&mut c)).await?;
        }
        Ok(report)
    }

    async fn retry_reconcile(&self) -> Result<usize, StorageError> {
        let agents = self.known_agents().await?;
        let mut c = self.conn().await?;
        let mut scheduled = 0;
        for chunk in agents.chunks(RECONCILE_CHUNK) {
            let mut cmds = Vec::with_capacity(chunk.len() * 3);
            for a in chunk {
                let tag = self.keys.mailbox(a, "flight");
                for part in ["flight", "wait"] {
                    let mut z = redis::cmd("ZRANGE");
                    z.arg(self.keys.mailbox(a, part))
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES");
                    cmds.push((tag.clone(), z));
                }
                let mut hlen = redis::cmd("HLEN");
                hlen.arg(self.keys.mailbox(a, "dead"));
                cmds.push((tag, hlen));
            }
            let replies = self.timed(c.spread_all(cmds)).await?;
            for (a, r) in chunk.iter().zip(replies.chunks(3)) {
                let [flight, wait, dead] = r else {
                    return Err(corrupt("reconcile"));
                };
                let mut entries = parse_pairs(Some(flight))?;
                entries.extend(parse_pairs(Some(wait))?);
                scheduled += entries.len();
                self.schedule_at(&mut c, a, &entries).await;
                if as_u64(dead).unwrap_or_default() > 0 {
                    let outbox: Vec<(String, Vec<u8>)> = self
                        .timed(
                            redis::cmd("HGETALL")
                                .arg(self.keys.mailbox(a, "dead"))
                                .query_async(&mut c),
                        )
                        .await?;
                    let records: std::collections::HashMap<&str, &Vec<u8>> = outbox
                        .iter()
                        .filter_map(|(k, v)| Some((k.strip_suffix(":r")?, v)))
                        .collect();
                    let mut buried = Vec::new();
                    for (k, v) in &outbox {
                        let (Ok(seq), Some(rec)) = (k.parse::<u64>(), records.get(k.as_str()))
                        else {
                            continue;
                        };
                        let meta = String::from_utf8_lossy(v);
                        buried.push(Buried::from_outbox(seq, &meta, (*rec).clone())?);
                    }
                    self.flush_buried(&mut c, a, buried).await;
                }
            }
        }
        Ok(scheduled)
    }

    async fn retract(
        &self,
        mailbox: &str,
        stored: Vec<(String, u64)>,
    ) -> Result<u64, StorageError> {
        let settings = DeliverySettings::default();
        let mut inv =
            self.delivery_call(mailbox, "retract", Utc::now().timestamp_millis(), &settings);
        for (id, seq) in stored {
            inv.arg(id).arg(seq);
        }
        let mut c = self.conn().await?;
        let (r, _) = self.run_delivery(&mut c, &inv).await?;
        as_u64(&r).ok_or_else(|| corrupt("retract"))
    }
}

/// Retry-schedule entries: `(seq, due ms)`.
type Schedule = Vec<(u64, i64)>;

/// `{got, sched}` of receive/take: handed-over messages and their ack deadlines.
fn parse_handed(r: &Value) -> Result<(Vec<Handed>, Schedule), StorageError> {
    let Value::Array(parts) = r else {
        return Err(corrupt("receive"));
    };
    let Some(Value::Array(got)) = parts.first() else {
        return Err(corrupt("receive"));
    };
    let mut handed = Vec::with_capacity(got.len() / 3);
    for t in got.chunks(3) {
        let [seq, attempt, Value::BulkString(record)] = t else {
            return Err(corrupt("receive"));
        };
        handed.push(Handed {
            seq: as_u64(seq).ok_or_else(|| corrupt("receive"))?,
            attempt: as_u64(attempt)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or_else(|| corrupt("receive"))?,
            record: record.clone(),
        });
    }
    Ok((handed, parse_pairs(parts.get(1))?))
}

/// The `{'ok'|'dead'|'requeued', seq, attempts, …}` of ack/nack, or its refusal as an error.
fn settled(r: &Value, id: &str) -> Result<(u64, u32), StorageError> {
    let Value::Array(parts) = r else {
        return Err(corrupt("ack"));
    };
    let not = |why| StorageError::NotPending {
        id: id.to_owned(),
        why,
    };
    match parts.first().and_then(as_string).as_deref() {
        Some("unknown") => Err(StorageError::UnknownMessage(id.to_owned())),
        Some("settled") => Err(not("already acked, consumed or dead-lettered")),
        Some("undelivered") => Err(not("it has not been delivered yet")),
        Some(_) => {
            let seq = parts
                .get(1)
                .and_then(as_u64)
                .ok_or_else(|| corrupt("ack"))?;
            let n = parts
                .get(2)
                .and_then(as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| corrupt("ack"))?;
            Ok((seq, n))
        }
        None => Err(corrupt("ack")),
    }
}
