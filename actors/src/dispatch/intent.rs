//! Batch intents: a batch across mailboxes stays "all stored or none" even when the broker dies
//! half-way. Each mailbox's append is atomic on its own (one script in the mailbox's slot), but
//! several mailboxes (several Redis Cluster slots, often several nodes) cannot share one atomic
//! step. So a batch with more than one mailbox runs in three steps:
//!
//! 1. **Intent written**: every item of the batch, encoded ([`encode`]), stored under a fresh id
//!    with the time (`P:{intents}:…`, one slot) before anything is appended.
//! 2. **Applied per mailbox**: each mailbox's items through its writer, as today; a refusal
//!    (a full mailbox) retracts what the batch already stored.
//! 3. **Intent deleted**, then the client gets its receipts.
//!
//! Recovery ([`Dispatcher::recover_intents`], at start and every [`RECOVERY_INTERVAL`] on each
//! node) rolls forward every intent older than [`INTENT_GRACE`]: it appends all its items again.
//! That is safe to repeat because the append script answers a message id the mailbox already
//! holds as a duplicate of itself and stores nothing; several nodes recovering at once are
//! safe for the same reason. If a mailbox now refuses its items, recovery retracts the batch's
//! items everywhere instead (none stored). A crash:
//! - before step 1 completes: nothing stored, nothing to recover; the client got an error or
//!   no answer and may retry.
//! - during step 2: some mailboxes hold their items (consumers may already see them); recovery
//!   stores the rest 30–45 s later.
//! - between steps 2 and 3: all stored; recovery finds every item present and just deletes the
//!   intent.
//!
//! Known limit: an item already consumed and removed (a `receive` of a message without an ack)
//! before recovery runs is stored again by the roll-forward, since the mailbox no longer knows
//! its id.

use std::time::Duration;

use chrono::Utc;

use super::Dispatcher;
use crate::error::Error;
use crate::storage::delivery::DeliveryMeta;
use crate::storage::{decode, record_id, Appended, NewRecord};

/// How old an intent must be before recovery takes it: far longer than a batch takes while its
/// broker lives, so recovery never races a batch still in flight.
pub const INTENT_GRACE: Duration = Duration::from_secs(30);
/// How often each node looks for intents to roll forward.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(15);
/// Intents recovered per pass.
const RECOVERY_CHUNK: usize = 100;
const MAGIC: &[u8; 4] = b"MBI1";

/// The items of one mailbox.
pub type IntentGroup = (String, Vec<NewRecord>);

fn put_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    // Frames are bounded by the request size limit, far below 4 GiB.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_frame<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    let (frame, rest) = (rest.get(..len)?, rest.get(len..)?);
    *input = rest;
    Some(frame)
}

/// Encodes a batch: per item its mailbox, its idempotency key (empty = none, after a flag
/// byte) and its stored record bytes, each length-prefixed.
pub fn encode(groups: &[IntentGroup]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (mailbox, records) in groups {
        for r in records {
            put_frame(&mut out, mailbox.as_bytes());
            match &r.idempotency {
                Some(k) => {
                    out.push(1);
                    put_frame(&mut out, k.as_bytes());
                }
                None => out.push(0),
            }
            put_frame(&mut out, &r.record);
        }
    }
    out
}

/// Decodes [`encode`]'s bytes back into groups (items of one mailbox together, in order).
pub fn decode_intent(body: &[u8]) -> Result<Vec<IntentGroup>, Error> {
    let bad = || Error::Internal("unreadable batch intent".into());
    let mut input = body.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
    let mut groups: Vec<IntentGroup> = Vec::new();
    while !input.is_empty() {
        let mailbox = std::str::from_utf8(take_frame(&mut input).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_owned();
        let (flag, rest) = input.split_first().ok_or_else(bad)?;
        input = rest;
        let idempotency = match flag {
            0 => None,
            _ => Some(
                std::str::from_utf8(take_frame(&mut input).ok_or_else(bad)?)
                    .map_err(|_| bad())?
                    .to_owned(),
            ),
        };
        let record = take_frame(&mut input).ok_or_else(bad)?.to_vec();
        let env = decode(&record, 0)?;
        let r = NewRecord {
            id: record_id(&record).to_owned(),
            record,
            idempotency,
            delivery: DeliveryMeta::of(&env),
        };
        match groups.iter_mut().find(|(m, _)| *m == mailbox) {
            Some((_, rs)) => rs.push(r),
            None => groups.push((mailbox, vec![r])),
        }
    }
    Ok(groups)
}

/// What one recovery pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Intents whose batch is now stored in full.
    pub rolled_forward: usize,
    /// Intents whose batch could no longer be stored and was retracted everywhere.
    pub rolled_back: usize,
    /// Intents left for a later pass (storage unavailable).
    pub left: usize,
}

impl Dispatcher {
    /// Step 1: stores the batch's intent; answers its id.
    pub(super) async fn intent_begin(&self, groups: &[IntentGroup]) -> Result<String, Error> {
        let id = crate::model::new_id();
        self.registry
            .storage()
            .intent_put(&id, encode(groups))
            .await?;
        Ok(id)
    }

    /// Step 3: drops the intent. A failure is logged: recovery finds the batch complete later
    /// and drops it then.
    pub(super) async fn intent_end(&self, id: &str) {
        if let Err(e) = self.registry.storage().intent_delete(id).await {
            tracing::warn!(intent = %id, error = %e, "batch intent left; recovery will drop it");
        }
    }

    /// Rolls forward (or, if a mailbox refuses, back) every intent older than `grace`.
    pub async fn recover_intents(&self, grace: Duration) -> Recovered {
        let mut done = Recovered::default();
        let before =
            Utc::now().timestamp_millis() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let due = match self
            .registry
            .storage()
            .intents_before(before, RECOVERY_CHUNK)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "batch intents: storage not reachable");
                return done;
            }
        };
        for (id, body) in due {
            let groups = match decode_intent(&body) {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(intent = %id, error = %e, "dropping an unreadable batch intent");
                    self.intent_end(&id).await;
                    continue;
                }
            };
            match self.roll_forward(groups).await {
                Ok(()) => {
                    tracing::info!(intent = %id, "batch intent rolled forward");
                    done.rolled_forward += 1;
                }
                Err(Error::Unavailable(e)) => {
                    tracing::warn!(intent = %id, error = %e, "batch intent left for the next pass");
                    done.left += 1;
                    continue;
                }
                Err(e) => {
                    tracing::error!(intent = %id, error = %e, "batch could not be completed; its items were retracted");
                    done.rolled_back += 1;
                }
            }
            self.intent_end(&id).await;
        }
        done
    }

    /// Appends every group again (what is there already is answered as a duplicate). On a
    /// refusal, retracts what this batch holds, in every mailbox, and answers the refusal.
    async fn roll_forward(&self, groups: Vec<IntentGroup>) -> Result<(), Error> {
        let mut held: Vec<(String, Vec<(String, u64)>)> = Vec::new();
        for (mailbox, records) in groups {
            let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
            match self.registry.mailbox(&mailbox).deliver(records).await {
                Ok(outcome) => {
                    let mine = ids
                        .into_iter()
                        .zip(&outcome.results)
                        .filter_map(|(id, r)| match r {
                            Appended::Stored { seq } => Some((id, *seq)),
                            // Only this very message: a duplicate by idempotency key is another.
                            Appended::Duplicate { id: was, seq } if *was == id => Some((id, *seq)),
                            _ => None,
                        })
                        .collect();
                    held.push((mailbox, mine));
                }
                Err(e @ Error::Unavailable(_)) => return Err(e),
                Err(e) => {
                    self.roll_back(held).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SendRequest;

    fn record(to: &str, idem: Option<&str>) -> NewRecord {
        let req = SendRequest {
            to: format!("mailbox:{to}"),
            payload: Some(serde_json::json!({"n": to}).into()),
            ..Default::default()
        };
        let env = req.into_envelope("a", crate::model::new_id(), Utc::now());
        NewRecord::of(&env, idem.map(str::to_owned)).expect("record")
    }

    #[test]
    fn an_intent_round_trips() {
        let groups = vec![
            (
                "bob".to_owned(),
                vec![record("bob", Some("a:k1")), record("bob", None)],
            ),
            ("carol".to_owned(), vec![record("carol", None)]),
        ];
        let back = decode_intent(&encode(&groups)).expect("decodes");
        assert_eq!(back.len(), 2);
        for ((m, rs), (m2, rs2)) in groups.iter().zip(&back) {
            assert_eq!(m, m2);
            for (a, b) in rs.iter().zip(rs2) {
                assert_eq!(a.id, b.id);
                assert_eq!(a.record, b.record);
                assert_eq!(a.idempotency, b.idempotency);
                assert_eq!(a.delivery, b.delivery);
            }
        }
        assert!(decode_intent(b"MBI1\x00\x00").is_err());
        assert!(decode_intent(b"nope").is_err());
    }
}
