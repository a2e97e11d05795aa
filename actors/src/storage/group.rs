//! Group commit, shared by the mailbox and topic actors: sends that queue up while one write is
//! in flight are stored together in one atomic storage call, then the outcome is split back into
//! one answer per send.

use std::collections::{HashSet, VecDeque};

use super::{AppendOutcome, NewRecord};

/// Most records one group commit stores.
pub const MAX_GROUP: usize = 512;

/// Takes the next group of whole sends off `queue`: at most [`MAX_GROUP`] records (a single
/// larger send goes alone), and no idempotency key twice (within one storage call the second
/// would not see the first).
pub fn next_group<R>(queue: &mut VecDeque<(Vec<NewRecord>, R)>) -> Vec<(Vec<NewRecord>, R)> {
    let mut group = Vec::new();
    let mut count = 0;
    let mut keys = HashSet::new();
    while let Some((records, _)) = queue.front() {
        let fits = group.is_empty() || count + records.len() <= MAX_GROUP;
        let clash = records
            .iter()
            .filter_map(|r| r.idempotency.as_ref())
            .any(|k| keys.contains(k));
        if !fits || clash {
            break;
        }
        keys.extend(records.iter().filter_map(|r| r.idempotency.clone()));
        count += records.len();
        if let Some(item) = queue.pop_front() {
            group.push(item);
        }
    }
    group
}

/// Splits the outcome of one append of a whole group into one outcome per send, given each
/// send's record count. Evicted records go with the first send's outcome.
pub fn split(
    mut outcome: AppendOutcome,
    sizes: impl IntoIterator<Item = usize>,
) -> Vec<AppendOutcome> {
    let mut results = outcome.results.drain(..);
    let mut evicted = Some(std::mem::take(&mut outcome.evicted));
    sizes
        .into_iter()
        .map(|n| AppendOutcome {
            results: results.by_ref().take(n).collect(),
            evicted: evicted.take().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Appended;

    fn rec(key: Option<&str>) -> NewRecord {
        NewRecord {
            id: crate::model::new_id(),
            record: Vec::new(),
            idempotency: key.map(str::to_owned),
            delivery: crate::storage::DeliveryMeta::default(),
        }
    }

    #[test]
    fn groups_stop_at_the_size_limit_and_at_a_repeated_key() {
        let mut q: VecDeque<(Vec<NewRecord>, u8)> = VecDeque::new();
        q.push_back((vec![rec(Some("a"))], 1));
        q.push_back((vec![rec(None), rec(None)], 2));
        q.push_back((vec![rec(Some("a"))], 3));
        q.push_back(((0..MAX_GROUP).map(|_| rec(None)).collect(), 4));
        let tags = |g: Vec<(Vec<NewRecord>, u8)>| g.into_iter().map(|(_, t)| t).collect::<Vec<_>>();
        assert_eq!(
            tags(next_group(&mut q)),
            vec![1, 2],
            "the key `a` again waits"
        );
        assert_eq!(tags(next_group(&mut q)), vec![3], "a full group waits");
        assert_eq!(tags(next_group(&mut q)), vec![4]);
        assert!(next_group(&mut q).is_empty());
    }

    #[test]
    fn split_hands_each_send_its_results() {
        let outcome = AppendOutcome {
            results: (1..=3).map(|seq| Appended::Stored { seq }).collect(),
            evicted: Vec::new(),
        };
        let parts = split(outcome, [1, 2]);
        assert_eq!(parts[0].results, vec![Appended::Stored { seq: 1 }]);
        assert_eq!(
            parts[1].results,
            vec![Appended::Stored { seq: 2 }, Appended::Stored { seq: 3 }]
        );
    }
}
