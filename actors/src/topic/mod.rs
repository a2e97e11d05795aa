//! Topics: the pattern trie that matches topic names against subscriptions' patterns.

pub mod trie;

pub use trie::PatternTrie;
