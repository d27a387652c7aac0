//! Extension points around appends: patch or veto before, observe after commit.

use std::fmt::Debug;

use crate::entry::ActivityEntry;

/// What `before_append` decided.
#[derive(Debug)]
pub enum AppendDecision {
    /// Write the (possibly patched) entry.
    Keep,
    /// Drop the entry.
    Veto,
}

/// Hooks run around every append. `after_append` runs only for committed entries.
pub trait ActivityHooks: Send + Sync + Debug {
    /// Patch `entry` in place, or veto it. Runs before the entry is written.
    fn before_append(&self, entry: &mut ActivityEntry) -> AppendDecision {
        let _ = entry;
        AppendDecision::Keep
    }

    /// Observe an entry once it is committed.
    fn after_append(&self, entry: &ActivityEntry) {
        let _ = entry;
    }
}

/// Hooks that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl ActivityHooks for NoHooks {}

/// Run `before_append` over `entries`, dropping vetoed ones and those that should not be written.
/// The writer's step; not needed by applications.
#[doc(hidden)]
pub fn prepare_entries(hooks: &dyn ActivityHooks, entries: &mut Vec<ActivityEntry>) {
    entries.retain_mut(|entry| {
        matches!(hooks.before_append(entry), AppendDecision::Keep) && entry.should_write()
    });
}
