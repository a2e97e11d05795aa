//! A segment trie of topic patterns: insert and remove `pattern → id`, and find every id whose
//! pattern matches a topic name. Pure data, no I/O.
//!
//! Matching walks only the branches a topic can take (its literal segment, `*`, and any `#`
//! along the way), so its cost depends on the topic's depth and on how many patterns match,
//! not on how many patterns are stored: 10 000 patterns cost about what 10 do.
//!
//! Patterns are checked by [`crate::model::is_valid_topic_pattern`] before they get here; the
//! trie itself treats `*` as exactly one segment and `#` (meaningful only as the last segment)
//! as zero or more segments.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

#[derive(Debug)]
struct Node<K> {
    /// Children by literal segment.
    children: HashMap<Box<str>, Node<K>>,
    /// The `*` child: any one segment.
    star: Option<Box<Node<K>>>,
    /// Ids of patterns that end here with `#`: they match this node and everything below.
    rest: HashSet<K>,
    /// Ids of patterns that end exactly here.
    exact: HashSet<K>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            star: None,
            rest: HashSet::new(),
            exact: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Node<K> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.rest.is_empty()
            && self.exact.is_empty()
    }

    fn visit(&self, segs: &[&str], f: &mut impl FnMut(&K)) {
        self.rest.iter().for_each(&mut *f);
        let Some((first, tail)) = segs.split_first() else {
            self.exact.iter().for_each(f);
            return;
        };
        if let Some(child) = self.children.get(*first) {
            child.visit(tail, f);
        }
        if let Some(star) = &self.star {
            star.visit(tail, f);
        }
    }

    /// Removes `id` under `segs`; answers whether it was there. Prunes emptied branches.
    fn remove(&mut self, segs: &[&str], id: &K) -> bool {
        let Some((first, tail)) = segs.split_first() else {
            return self.exact.remove(id);
        };
        match *first {
            "#" if tail.is_empty() => self.rest.remove(id),
            "*" => {
                let Some(star) = self.star.as_mut() else {
                    return false;
                };
                let removed = star.remove(tail, id);
                if star.is_empty() {
                    self.star = None;
                }
                removed
            }
            lit => {
                let Some(child) = self.children.get_mut(lit) else {
                    return false;
                };
                let removed = child.remove(tail, id);
                if child.is_empty() {
                    self.children.remove(lit);
                }
                removed
            }
        }
    }
}

/// Patterns to ids. `K` is whatever names a subscriber (a subscription id, a session key).
#[derive(Debug)]
pub struct PatternTrie<K> {
    root: Node<K>,
    len: usize,
}

impl<K> Default for PatternTrie<K> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash + Clone> PatternTrie<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many (pattern, id) pairs are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `id` under `pattern`; answers false if that pair was already there.
    pub fn insert(&mut self, pattern: &str, id: K) -> bool {
        let segs: Vec<&str> = pattern.split('.').collect();
        let last = segs.len() - 1;
        let mut node = &mut self.root;
        for (i, seg) in segs.iter().enumerate() {
            if *seg == "#" && i == last {
                let added = node.rest.insert(id);
                self.len += usize::from(added);
                return added;
            }
            node = if *seg == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.children.entry((*seg).into()).or_default()
            };
        }
        let added = node.exact.insert(id);
        self.len += usize::from(added);
        added
    }

    /// Removes `id` from under `pattern`; answers whether it was there.
    pub fn remove(&mut self, pattern: &str, id: &K) -> bool {
        let segs: Vec<&str> = pattern.split('.').collect();
        let removed = self.root.remove(&segs, id);
        self.len -= usize::from(removed);
        removed
    }

    /// Every id whose pattern matches `topic`. An id stored under several matching patterns
    /// appears once per pattern; callers that need a set deduplicate.
    pub fn matches(&self, topic: &str) -> Vec<K> {
        let mut out = Vec::new();
        self.for_each_match(topic, |id| out.push(id.clone()));
        out
    }

    /// Calls `f` with every id whose pattern matches `topic`, without collecting them.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&K)) {
        let segs: Vec<&str> = topic.split('.').collect();
        self.root.visit(&segs, &mut f);
    }
}

/// Does `pattern` match `topic`? The plain definition, segment by segment (used by tests and
/// for one-off checks where building a trie is not worth it).
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.split_first(), t.split_first()) {
            (Some((&"#", [])), _) => true,
            (Some((&"*", pr)), Some((_, tr))) => go(pr, tr),
            (Some((ps, pr)), Some((ts, tr))) => ps == ts && go(pr, tr),
            (None, None) => true,
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v
    }

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "b", false),
            ("a", "a.b", false),
            ("a.b", "a", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*.b", "a.b", true),
            ("*.*", "a.b", true),
            ("a.#", "a", true),
            ("a.#", "a.b", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b", false),
            ("a.#", "ab.c", false),
            ("#", "a", true),
            ("#", "a.b.c.d", true),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a.b.c.d", true),
            ("*.#", "x", true),
            ("research.papers.ml", "research.papers.ml", true),
            ("research.*.ml", "research.papers.ml", true),
            ("research.#", "research.papers.ml", true),
            ("research.#", "researchers.x", false),
        ];
        for &(pattern, topic, want) in cases {
            assert_eq!(
                pattern_matches(pattern, topic),
                want,
                "naive: {pattern} vs {topic}"
            );
            let mut t = PatternTrie::new();
            t.insert(pattern, 1u32);
            assert_eq!(
                !t.matches(topic).is_empty(),
                want,
                "trie: {pattern} vs {topic}"
            );
        }
    }

    #[test]
    fn insert_remove_and_prune() {
        let mut t = PatternTrie::new();
        assert!(t.insert("a.b", 1u32));
        assert!(!t.insert("a.b", 1), "the same pair twice is one entry");
        assert!(t.insert("a.*", 2));
        assert!(t.insert("a.#", 3));
        assert!(t.insert("a.#", 4));
        assert_eq!(t.len(), 4);
        assert_eq!(sorted(t.matches("a.b")), vec![1, 2, 3, 4]);
        assert_eq!(sorted(t.matches("a")), vec![3, 4]);
        assert!(t.remove("a.#", &3));
        assert!(!t.remove("a.#", &3));
        assert!(!t.remove("a.c", &1), "not stored under that pattern");
        assert!(!t.remove("x.y.z", &1));
        assert_eq!(sorted(t.matches("a.b")), vec![1, 2, 4]);
        for (p, id) in [("a.b", 1), ("a.*", 2), ("a.#", 4)] {
            assert!(t.remove(p, &id));
        }
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "emptied branches are pruned");
    }

    /// A small deterministic PRNG (xorshift64*), so the property test needs no crate and
    /// fails the same way every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const SEGS: [&str; 3] = ["a", "b", "c"];

    fn topic(rng: &mut Rng) -> String {
        let n = 1 + rng.below(4);
        (0..n)
            .map(|_| SEGS[rng.below(SEGS.len())])
            .collect::<Vec<_>>()
            .join(".")
    }

    fn pattern(rng: &mut Rng) -> String {
        let n = 1 + rng.below(4);
        let mut segs: Vec<&str> = (0..n)
            .map(|_| match rng.below(5) {
                0 => "*",
                i => SEGS[(i - 1) % SEGS.len()],
            })
            .collect();
        if rng.below(3) == 0 {
            if let Some(last) = segs.last_mut() {
                *last = "#";
            }
        }
        segs.join(".")
    }

    #[test]
    fn trie_agrees_with_the_naive_matcher() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _round in 0..50 {
            let mut trie = PatternTrie::new();
            let mut live: Vec<(String, u32)> = Vec::new();
            for id in 0..60u32 {
                let p = pattern(&mut rng);
                assert!(crate::model::is_valid_topic_pattern(&p), "{p}");
                trie.insert(&p, id);
                live.push((p, id));
            }
            // Remove a third of them again, so pruning is exercised.
            for _ in 0..20 {
                let i = rng.below(live.len());
                let (p, id) = live.swap_remove(i);
                assert!(trie.remove(&p, &id), "{p} {id}");
            }
            assert_eq!(trie.len(), live.len());
            for _ in 0..100 {
                let t = topic(&mut rng);
                let want: Vec<u32> = sorted(
                    live.iter()
                        .filter(|(p, _)| pattern_matches(p, &t))
                        .map(|(_, id)| *id)
                        .collect(),
                );
                assert_eq!(sorted(trie.matches(&t)), want, "topic {t}");
            }
        }
    }

    #[test]
    fn many_patterns_match_as_cheaply_as_few() {
        // Not a timing test: the number of ids visited stays small however many are stored.
        let mut t = PatternTrie::new();
        for i in 0..10_000u32 {
            t.insert(&format!("tenant{i}.events.#"), i);
        }
        t.insert("tenant7.*.created", 99_999);
        assert_eq!(sorted(t.matches("tenant7.events.created")), vec![7, 99_999]);
        assert!(t.matches("nobody.events").is_empty());
    }
}
