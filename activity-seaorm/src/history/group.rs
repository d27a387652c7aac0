//! Undoing a whole transaction or request: the net change per item, each item's
//! compare-and-set, newest item first, all in one transaction; and the dry run.

use activity_core::{ActivityEntry, ModelActivity};
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use crate::history::apply::{field_index, is_plain, row_of};
use crate::history::revert::{Expect, IMMEDIATE, ItemChange, Mode, Reverted, Target, check};
use crate::history::{Conflict, HistoryError, registry};
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

/// What a group revert would do to one item (see [`plan`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ItemPlan {
    /// The item's scope.
    pub scope: String,
    /// The item id.
    pub item_id: String,
    /// `"update"`, `"delete"`, `"insert"`, or `"none"` (created and deleted within the group).
    pub action: &'static str,
    /// Per field: its name in the log, what it holds now (`None`: no row, or a value the log
    /// never holds) and what it would go back to (`None`: unknown, left as it is).
    pub fields: Vec<(String, Option<Value>, Option<Value>)>,
    /// Fields (or the row) changed since the group: what [`Mode`] decides about.
    pub conflicts: Vec<Conflict>,
    /// Fields the log never held the value of (masked, excluded): left as they are.
    pub unknown: Vec<String>,
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
            activity_log::Entity::find().filter(Column::CorrelationId.eq(id.as_str()))
        }
        Group::Request(id) => {
            activity_log::Entity::find().filter(Column::RequestId.eq(id.as_str()))
        }
    };
    Ok(select
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(ActivityEntry::from)
        .collect())
}

/// Each item's change, newest first (children created last are deleted first; parents deleted
/// last are inserted first), and the entries that cannot be reverted.
fn item_changes(
    entries: &[ActivityEntry],
) -> (
    Vec<(ItemChange, &'static registry::Registration)>,
    Vec<(Uuid, String)>,
) {
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
    changes.sort_by(|(a, _), (b, _)| b.last.cmp(&a.last));
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
            let mut done = Reverted::default();
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

/// One item's plan, for entity `E` (the registry's entry point).
pub(crate) async fn plan_item<E>(
    txn: &DatabaseTransaction,
    change: ItemChange,
) -> Result<ItemPlan, HistoryError>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let row = row_of::<E, _>(txn, &change.item_id, false).await?;
    let conflicts = check::<E>(txn, &change, row.as_ref()).await?;
    let fields_spec = <E::Model as ModelActivity>::FIELDS;
    let now = |display: &str| -> Option<Value> {
        let index = field_index::<E::Model>(display)?;
        if !is_plain(&fields_spec[index]) {
            return None;
        }
        row.as_ref().and_then(|r| r.activity_field_json(index))
    };
    let mut unknown = Vec::new();
    let mut plan_fields =
        |targets: &[(String, Value)]| -> Vec<(String, Option<Value>, Option<Value>)> {
            targets
                .iter()
                .map(|(field, target)| {
                    let plain =
                        field_index::<E::Model>(field).is_some_and(|i| is_plain(&fields_spec[i]));
                    if !plain {
                        unknown.push(field.clone());
                    }
                    (field.clone(), now(field), plain.then(|| target.clone()))
                })
                .collect()
        };
    let (action, fields) = match &change.target {
        Target::Fields(targets) => ("update", plan_fields(targets)),
        Target::Insert(targets) => ("insert", plan_fields(targets)),
        Target::Delete => {
            let current = match &change.expect {
                Expect::Row(fields) => fields
                    .iter()
                    .map(|(f, _)| (f.clone(), now(f), None))
                    .collect(),
                Expect::NoRow => Vec::new(),
            };
            ("delete", current)
        }
        Target::Nothing => ("none", Vec::new()),
    };
    Ok(ItemPlan {
        scope: change.scope,
        item_id: change.item_id,
        action,
        fields,
        conflicts,
        unknown,
    })
}
