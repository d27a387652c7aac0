//! History read back and undone, backwards from the live row: [`as_of`] (the item as it was at
//! a moment), [`revert`] (undo one entry), [`revert_group`] and its dry run [`plan`] (undo a
//! whole transaction or request).
//!
//! **Backwards, never forwards.** The log holds each write's field-level `before` and `after`.
//! Rebuilding an item forward from its first entry is wrong whenever auditing started after the
//! item existed; here every answer starts from what is there now (the live row, or the
//! snapshot a `deleted` entry records) and undoes the later entries newest first.
//!
//! **Never a plausible wrong answer.** Before an entry is undone, every field it changed must
//! still hold the entry's `after`. If one does not, something wrote the row without the log (a
//! raw `UPDATE`, a summary-mode bulk, a trigger): [`as_of`] answers [`HistoryError::Gap`], not a
//! model that never existed. Masked fields (the log holds `"masked"`, not the value) and
//! excluded fields (the log holds nothing) come back as [`FieldValue::Masked`] and
//! [`FieldValue::Excluded`]: unknown, never guessed.
//!
//! **Undo is a compare-and-set.** [`revert`] locks the row, checks that every field the entry
//! changed still holds the entry's `after`, and only then writes the `before` back. A later
//! change to the same field is a [`Conflict`] naming the later entries; [`Mode`] says what to do
//! about it (all or nothing by default). The peers that write the old values over whatever is
//! there now lose the later change silently; this never does unless asked to ([`Mode::Force`],
//! recorded as forced). A revert is logged as a `reverted` entry whose context names the entry
//! it undid (`{"reverts": id, "effect": "updated" | "deleted" | "created"}`), so reverting a
//! revert is a redo. Reverting `created` deletes the row; reverting `deleted` inserts it again
//! with its key (undelete; a clash with a row that took the key is a conflict).
//!
//! **Entities by scope.** An entry names its scope; `#[derive(ModelActivity)]` on a SeaORM model
//! registers the entity for its scope at link time, so [`revert`] needs only the entry's id.
//!
//! **Who may undo what is the application's call.** [`revert`] and [`revert_group`] undo any
//! entry they are given: check first that the user may (the example application reverts only
//! entries of the user's organization, and a request only if every entry of it is). The revert
//! itself is logged with the current context's actor, like any write.
//!
//! `deleted` entries record every tracked field (masked ones as `"masked"`), so a deleted item
//! can be read back and restored. Entries written before that was the default, of models
//! without `#[activity(snapshot)]`, hold no fields: such an item cannot be reconstructed from
//! its deletion ([`HistoryError::NotRecorded`]).

mod apply;
mod as_of;
mod group;
mod item;
mod registry;
mod revert;

use sea_orm::DbErr;
use serde_json::Value;
use uuid::Uuid;

pub use as_of::{FieldValue, Version, as_of};
pub use group::{Group, Plan, plan, revert_group};
pub use item::{ItemPlan, Mode, Reverted};
#[doc(hidden)]
pub use registry::Registration;
pub use revert::revert;

/// The activity of an entry written by [`revert`] and [`revert_group`].
pub const REVERTED: &str = "reverted";

/// A field that no longer holds what an entry left in it: a later write changed it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Conflict {
    /// The item (`scope` and item id).
    pub scope: String,
    /// The item id.
    pub item_id: String,
    /// The field (its name in the log); `None` when the conflict is the row itself: gone when
    /// the entry left it there, or there when the entry left it deleted.
    pub field: Option<String>,
    /// What the entry left in the field (JSON, as the log stores it).
    pub expected: Value,
    /// What the field holds now.
    pub actual: Value,
    /// The entries after the reverted one that changed this field (or the row), oldest first:
    /// usually who to ask.
    pub later_entries: Vec<Uuid>,
}

/// A write that bypassed the log, found while undoing `entry`: the field holds `found`, but the
/// log says `expected` (the entry's `after`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Gap {
    /// The entry that could not be undone.
    pub entry: Uuid,
    /// The field (`None`: the row exists where the log says it did not, or the reverse).
    pub field: Option<String>,
    /// What the log says the field held after `entry`.
    pub expected: Value,
    /// What it held instead.
    pub found: Value,
}

impl Gap {
    /// `change` of `entry` says the field held its `after`; it held `found`.
    pub(crate) fn in_field(
        entry: uuid::Uuid,
        change: &activity_core::Change,
        found: &Value,
    ) -> Self {
        Gap {
            entry,
            field: change.field.clone(),
            expected: change.after.clone(),
            found: found.clone(),
        }
    }

    /// The row exists (`found`) where `entry` says it did not, or the reverse.
    pub(crate) fn in_row(entry: uuid::Uuid, found: bool) -> Self {
        Gap {
            entry,
            field: None,
            expected: Value::Bool(!found),
            found: Value::Bool(found),
        }
    }
}

/// Why history could not be read or undone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A write bypassed the log: the state asked for cannot be known.
    #[error("a write bypassed the activity log after entry {}: field {:?} holds {} where the log says {}", .0.entry, .0.field, .0.found, .0.expected)]
    Gap(Gap),
    /// Fields changed since the entry (see [`Mode`]); nothing was written.
    #[error("{} field(s) changed since the entry; nothing was reverted (first: {:?} of {} {})", .0.len(), .0.first().and_then(|c| c.field.clone()), .0.first().map_or("", |c| c.scope.as_str()), .0.first().map_or("", |c| c.item_id.as_str()))]
    Conflicts(Vec<Conflict>),
    /// No entry with this id.
    #[error("no activity entry {0}")]
    EntryNotFound(Uuid),
    /// No entity is registered for the entry's scope (a model without `#[derive(ModelActivity)]`
    /// and `#[sea_orm(table_name)]`, or a manual entry's scope).
    #[error("no entity is registered for scope {0:?}")]
    UnknownScope(String),
    /// The entry cannot be undone: `reason` says why (a manual entry without an item, a masked
    /// field whose value the log never held, a type that cannot be read back).
    #[error("entry {entry} cannot be reverted: {reason}")]
    NotRevertible {
        /// The entry.
        entry: Uuid,
        /// Why.
        reason: String,
    },
    /// A deleted item whose `deleted` entry holds none of its fields (written before deletions
    /// recorded them, for a model without `#[activity(snapshot)]`).
    #[error("entry {0} records no fields of the deleted item: it cannot be reconstructed")]
    NotRecorded(Uuid),
}

impl HistoryError {
    /// The conflicts, if that is what this is.
    pub fn conflicts(&self) -> Option<&[Conflict]> {
        match self {
            HistoryError::Conflicts(c) => Some(c),
            _ => None,
        }
    }
}
