//! The supervision drill's hook (debug builds only): `MAILBOX_DRILL_PANIC_MAILBOX=<name>` makes
//! the writer of that mailbox panic once, in the middle of handling a stored group commit (after
//! storage took it, before its callers are answered). `tests/supervision.rs` uses it to show the
//! writer restarted, nothing accepted lost and the other mailboxes unaffected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<String>> = OnceLock::new();
static FIRED: AtomicBool = AtomicBool::new(false);

/// Panics the first time it is called for the drill's mailbox.
pub fn maybe_panic(mailbox: &str) {
    let target = TARGET.get_or_init(|| std::env::var("MAILBOX_DRILL_PANIC_MAILBOX").ok());
    if target.as_deref() == Some(mailbox) && !FIRED.swap(true, Ordering::Relaxed) {
        panic!("supervision drill: the writer of `{mailbox}` panics mid-batch");
    }
}
