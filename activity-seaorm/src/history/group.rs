//! Undoing a whole transaction or request: the net change per item, each item's
//! compare-and-set, newest item first, all in one transaction; and the dry run.

use activity_core::ActivityEntry;
use scoped_futures::ScopedFutureExt;
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, TransactionTrait};
use uuid::Uuid;

use crate::history::apply::oldest_first;
use crate::history::item::{ItemChange, ItemPlan, Mode, Reverted};
use crate::history::revert::IMMEDIATE;
use crate::history::{HistoryError, registry};
use crate::schema::activity_log;

/// Which entries a group revert undoes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Group {
    /// Every entry of one transaction (or job) sharing this `correlation_id`.
    Correlation(String),
    /// Every entry of one request (`request_id`).
    Request(String),
}

/// The dry run of [`revert_group`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// The items, in the order the revert would take them (newest change first).
    pub items: Vec<ItemPlan>,
    /// Entries that cannot be reverted, and why (manual entries without an item, scopes with
    /// no registered entity, summary entries of bulk writes).
    pub not_revertible: Vec<(Uuid, String)>,
}

impl Plan {
    /// Whether [`revert_group`] in [`Mode::Strict`] would go ahead.
    pub fn is_clean(&self) -> bool {
        self.not_revertible.is_empty()
            && self
                .items
                .iter()
                .all(|i| i.conflicts.is_empty() && i.unknown.is_empty())
    }
}

/// The group's entries, oldest first.
async fn entries_of_group<C: sea_orm::ConnectionTrait>(
    db: &C,
    group: &Group,
) -> Result<Vec<ActivityEntry>, HistoryError> {
    use activity_log::Column;
    let select = match group {
        Group::Correlation(id) => {
            crate::schema::table::find_entries().filter(Column::CorrelationId.eq(id.as_str()))
        }
        Group::Request(id) => {
            crate::schema::table::find_entries().filter(Column::RequestId.eq(id.as_str()))
        }
    };
    Ok(oldest_first(db, select).await?)
}

/// One item's change and the entity that applies it.
type Undo = (ItemChange, &'static registry::Registration);

/// Each item's change, newest first (children created last are deleted first; parents deleted
/// last are inserted first), and the entries that cannot be reverted.
fn item_changes(entries: &[ActivityEntry]) -> (Vec<Undo>, Vec<(Uuid, String)>) {
    let mut items: Vec<((String, String), Vec<&ActivityEntry>)> = Vec::new();
    let mut not_revertible = Vec::new();
    for entry in entries {
        let Some(item) = &entry.item_id else {
            not_revertible.push((
                entry.id,
                "it names no item (a manual or summary entry)".to_owned(),
            ));
            continue;
        };
        let key = (entry.scope.clone(), item.clone());
        match items.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(entry),
            None => items.push((key, vec![entry])),
        }
    }
    let mut changes = Vec::new();
    for ((scope, _), list) in items {
        let registration = match registry::find(&scope) {
            Ok(r) => r,
            Err(e) => {
                not_revertible.extend(list.iter().map(|e2| (e2.id, e.to_string())));
                continue;
            }
        };
        match ItemChange::undoing(&list) {
            Ok(Some(change)) => changes.push((change, registration)),
            Ok(None) => {}
            Err(e) => not_revertible.extend(list.iter().map(|e2| (e2.id, e.to_string()))),
        }
    }
    changes.sort_by_key(|(change, _)| std::cmp::Reverse(change.last));
    (changes, not_revertible)
}

/// Undo every entry of `group` (a transaction's `correlation_id`, or a request's `request_id`):
/// per item the net change of the group's entries, checked against the row as the group left
/// it ([`Mode`]), items taken newest change first (so rows created by the group are deleted
/// children first and rows it deleted are inserted parents first), all in one transaction: a
/// conflict or a failure anywhere (in [`Mode::Strict`]) leaves everything as it was. Each item
/// changed gets a `reverted` entry; together they share a new `correlation_id`.
pub async fn revert_group(
    db: &DatabaseConnection,
    group: Group,
    mode: Mode,
) -> Result<Reverted, HistoryError> {
    let entries = entries_of_group(db, &group).await?;
    let (changes, not_revertible) = item_changes(&entries);
    if mode == Mode::Strict
        && let Some((entry, reason)) = not_revertible.first()
    {
        return Err(HistoryError::NotRevertible {
            entry: *entry,
            reason: reason.clone(),
        });
    }
    crate::transaction_with_options(db, IMMEDIATE, |txn| {
        async move {
            let mut done = Reverted {
                not_revertible,
                ..Reverted::default()
            };
            for (change, registration) in changes {
                done.absorb((registration.apply)(txn, change, mode).await?);
            }
            Ok::<_, HistoryError>(done)
        }
        .scope_boxed()
    })
    .await
}

/// What [`revert_group`] would do, without doing it: per item the action, each field's current
/// and target value, the conflicts and the fields it cannot restore; and the entries it cannot
/// revert. Reads only (in a transaction it rolls back).
pub async fn plan(db: &DatabaseConnection, group: Group) -> Result<Plan, HistoryError> {
    let entries = entries_of_group(db, &group).await?;
    let (changes, not_revertible) = item_changes(&entries);
    let txn = db.begin().await?;
    let mut items = Vec::with_capacity(changes.len());
    for (change, registration) in changes {
        items.push((registration.plan)(&txn, change).await?);
    }
    txn.rollback().await?;
    Ok(Plan {
        items,
        not_revertible,
    })
}
