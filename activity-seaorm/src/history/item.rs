//! One item's undo: what it must hold now ([`Expect`]), what it goes back to ([`Target`]),
//! checked and written under the row's lock and logged as `reverted` ([`apply`]), or only
//! described ([`plan_item`]). Per entity: the registry points at these.

use activity_core::{ActivityEntry, Change, ChangeAction, ModelActivity};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseTransaction, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, TryIntoModel,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::history::apply::{
    Effect, effect, field_index, is_plain, key_fields, row_of, same, set_field,
};
use crate::history::{Conflict, HistoryError, REVERTED};
use crate::write::before::model_entry;

/// What to do when a field changed since the entry being reverted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Revert nothing if anything conflicts (the default): [`HistoryError::Conflicts`].
    #[default]
    Strict,
    /// Revert the fields (and items) that do not conflict; report the others in
    /// [`Reverted::skipped`].
    SkipConflicting,
    /// Overwrite the later changes too; reported in [`Reverted::forced`] and recorded in the
    /// `reverted` entry as forced.
    Force,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::SkipConflicting => "skip_conflicting",
            Mode::Force => "force",
        }
    }
}

/// What a revert did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Reverted {
    /// The `reverted` entries written, one per item changed.
    pub entries: Vec<Uuid>,
    /// Conflicting fields left as they are ([`Mode::SkipConflicting`]).
    pub skipped: Vec<Conflict>,
    /// Conflicting fields overwritten ([`Mode::Force`]).
    pub forced: Vec<Conflict>,
    /// Fields whose value to go back to the log never held (masked, or of a type that cannot be
    /// read back), as `(scope, item id, field)`: left as they are.
    pub unknown: Vec<(String, String, String)>,
    /// Entries of a group left as they are, and why (manual or summary entries, scopes without
    /// a registered entity): only outside [`Mode::Strict`], which refuses the group instead.
    pub not_revertible: Vec<(uuid::Uuid, String)>,
}

impl Reverted {
    pub(crate) fn absorb(&mut self, other: Reverted) {
        self.entries.extend(other.entries);
        self.skipped.extend(other.skipped);
        self.forced.extend(other.forced);
        self.unknown.extend(other.unknown);
        self.not_revertible.extend(other.not_revertible);
    }
}

/// What one item must hold now for the revert to go ahead.
#[derive(Clone, Debug)]
pub(crate) enum Expect {
    /// A row whose fields (index in `FIELDS`, by display name in the log) hold these values.
    Row(Vec<(String, Value)>),
    /// No row with the item's key.
    NoRow,
}

/// What one item goes back to.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// These fields (log names) back to these values.
    Fields(Vec<(String, Value)>),
    /// No row: delete it.
    Delete,
    /// A row again, with these field values (log names); fields not listed are empty.
    Insert(Vec<(String, Value)>),
    /// Nothing: created and deleted within what is reverted.
    Nothing,
}

/// One item's revert: from `expect` to `target`, undoing `reverts` (oldest first).
#[derive(Clone, Debug)]
pub(crate) struct ItemChange {
    pub(crate) scope: String,
    pub(crate) item_id: String,
    pub(crate) expect: Expect,
    pub(crate) target: Target,
    /// The entries undone, oldest first.
    pub(crate) reverts: Vec<Uuid>,
    /// The newest of them: later entries are the ones a conflict names.
    pub(crate) last: (chrono::DateTime<chrono::Utc>, Uuid),
}

impl ItemChange {
    /// The change that undoes `entries` (one item's, oldest first, at least one): the net of
    /// them, from what the first found to what the last left.
    pub(crate) fn undoing(entries: &[&ActivityEntry]) -> Result<Option<ItemChange>, HistoryError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(None);
        };
        let Some(item_id) = first.item_id.clone() else {
            return Err(HistoryError::NotRevertible {
                entry: first.id,
                reason: "it names no item".into(),
            });
        };
        let followed: Vec<&&ActivityEntry> = entries
            .iter()
            .filter(|e| effect(e) != Effect::Other)
            .collect();
        let (Some(head), Some(tail)) = (followed.first(), followed.last()) else {
            return Err(HistoryError::NotRevertible {
                entry: first.id,
                reason: "it changed no field of its item".into(),
            });
        };
        let existed = effect(head) != Effect::Created;
        let exists = effect(tail) != Effect::Deleted;
        // Per field: the value the first entry found, and the one the last left.
        let mut before: Vec<(String, Value)> = Vec::new();
        let mut after: Vec<(String, Value)> = Vec::new();
        for entry in &followed {
            for change in &entry.detail.changes {
                let Some(field) = &change.field else { continue };
                if !before.iter().any(|(f, _)| f == field) {
                    before.push((field.clone(), change.before.clone()));
                }
                match after.iter_mut().find(|(f, _)| f == field) {
                    Some(slot) => slot.1 = change.after.clone(),
                    None => after.push((field.clone(), change.after.clone())),
                }
            }
        }
        let (expect, target) = match (existed, exists) {
            (true, true) => (Expect::Row(after), Target::Fields(before)),
            (false, true) => (Expect::Row(after), Target::Delete),
            (true, false) => {
                let recorded = entries.iter().any(|e| {
                    effect(e) == Effect::Deleted
                        && e.detail.changes.iter().any(|c| c.field.is_some())
                });
                if !recorded {
                    return Err(HistoryError::NotRecorded(tail.id));
                }
                (Expect::NoRow, Target::Insert(before))
            }
            (false, false) => (Expect::NoRow, Target::Nothing),
        };
        Ok(Some(ItemChange {
            scope: first.scope.clone(),
            item_id,
            expect,
            target,
            reverts: entries.iter().map(|e| e.id).collect(),
            last: (last.created_at, last.id),
        }))
    }
}

/// The item's row now, checked against `change.expect`: the conflicts (empty when it holds
/// what is expected).
pub(crate) async fn check<E>(
    txn: &DatabaseTransaction,
    change: &ItemChange,
    row: Option<&E::Model>,
) -> Result<Vec<Conflict>, HistoryError>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let later =
        crate::history::apply::entries_of(txn, &change.scope, &change.item_id, Some(change.last))
            .await?;
    let touching = |field: Option<&str>| -> Vec<Uuid> {
        later
            .iter()
            .filter(|e| match field {
                None => matches!(effect(e), Effect::Created | Effect::Deleted),
                Some(f) => e
                    .detail
                    .changes
                    .iter()
                    .any(|c| c.field.as_deref() == Some(f)),
            })
            .map(|e| e.id)
            .collect()
    };
    let conflict =
        |field: Option<String>, expected: Value, actual: Value, later_entries| Conflict {
            scope: change.scope.clone(),
            item_id: change.item_id.clone(),
            field,
            expected,
            actual,
            later_entries,
        };
    let mut conflicts = Vec::new();
    match (&change.expect, row) {
        (Expect::Row(fields), Some(row)) => {
            for (field, expected) in fields {
                let Some(index) = field_index::<E::Model>(field) else {
                    continue;
                };
                if !is_plain(&<E::Model as ModelActivity>::FIELDS[index]) {
                    continue;
                }
                let actual = row.activity_field_json(index).unwrap_or(Value::Null);
                if !same(&actual, expected) {
                    conflicts.push(conflict(
                        Some(field.clone()),
                        expected.clone(),
                        actual,
                        touching(Some(field)),
                    ));
                }
            }
        }
        (Expect::Row(_), None) => {
            conflicts.push(conflict(
                None,
                Value::Bool(true),
                Value::Bool(false),
                touching(None),
            ));
        }
        (Expect::NoRow, Some(_)) => {
            conflicts.push(conflict(
                None,
                Value::Bool(false),
                Value::Bool(true),
                touching(None),
            ));
        }
        (Expect::NoRow, None) => {}
    }
    Ok(conflicts)
}

/// Apply `change` to entity `E` in `txn`: lock, check, write, log. The registry's entry point.
pub(crate) async fn apply<E>(
    txn: &DatabaseTransaction,
    change: ItemChange,
    mode: Mode,
) -> Result<Reverted, HistoryError>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone + Send + Sync,
    E::ActiveModel:
        ActiveModelTrait<Entity = E> + ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    let scope = <E::Model as ModelActivity>::SCOPE;
    let row = row_of::<E, _>(txn, &change.item_id, true).await?;
    let conflicts = check::<E>(txn, &change, row.as_ref()).await?;
    let mut done = Reverted::default();
    let first = change.reverts.first().copied().unwrap_or_default();
    let context = |effect: &str, done: &Reverted| {
        json!({
            "reverts": change.reverts.iter().map(Uuid::to_string).collect::<Vec<_>>(),
            "effect": effect,
            "mode": mode.as_str(),
            "forced": done.forced.iter().filter_map(|c| c.field.clone()).collect::<Vec<_>>(),
            "skipped": done.skipped.iter().filter_map(|c| c.field.clone()).collect::<Vec<_>>(),
        })
    };
    match (&change.target, row) {
        (Target::Nothing, _) => return Ok(done),
        (Target::Fields(fields), Some(row)) => {
            let conflicting = |f: &str| conflicts.iter().find(|c| c.field.as_deref() == Some(f));
            let mut model = row.clone();
            let mut changes = Vec::new();
            let mut columns = Vec::new();
            for (field, value) in fields {
                let Some(index) = field_index::<E::Model>(field) else {
                    continue;
                };
                let spec = &<E::Model as ModelActivity>::FIELDS[index];
                if !is_plain(spec) {
                    done.unknown
                        .push((scope.to_owned(), change.item_id.clone(), field.clone()));
                    continue;
                }
                let now = row.activity_field_json(index).unwrap_or(Value::Null);
                if let Some(c) = conflicting(field) {
                    match mode {
                        Mode::Strict => continue,
                        Mode::SkipConflicting => {
                            done.skipped.push(c.clone());
                            continue;
                        }
                        // Already what it goes back to: nothing overwritten.
                        Mode::Force if same(&now, value) => continue,
                        Mode::Force => done.forced.push(c.clone()),
                    }
                }
                if same(&now, value) {
                    continue;
                }
                if !set_field(&mut model, index, value) {
                    done.unknown
                        .push((scope.to_owned(), change.item_id.clone(), field.clone()));
                    continue;
                }
                changes.push(Change::new(
                    scope,
                    ChangeAction::Changed,
                    Some(field),
                    now,
                    value.clone(),
                ));
                columns.push(spec.column);
            }
            if mode == Mode::Strict {
                if !conflicts.is_empty() {
                    return Err(HistoryError::Conflicts(conflicts));
                }
                if let Some((_, _, field)) = done.unknown.first() {
                    return Err(HistoryError::NotRevertible {
                        entry: first,
                        reason: format!(
                            "field {field:?} is masked or cannot be read back: the log never held its value"
                        ),
                    });
                }
            }
            if changes.is_empty() {
                if done.skipped.is_empty() && done.unknown.is_empty() {
                    return Ok(done);
                }
                return Err(HistoryError::Conflicts(conflicts));
            }
            let mut am = model.clone().into_active_model();
            for column in <E::Column as Iterable>::iter() {
                if columns.contains(&column.as_str()) {
                    am.reset(column);
                }
            }
            activity_core::mute_scopes(&[scope], am.update(txn)).await?;
            let mut entry = model_entry(&model, Some(change.item_id.clone()), REVERTED);
            entry.detail.changes = changes;
            entry.detail.context = Some(context("updated", &done));
            done.entries.push(entry.id);
            crate::log_activity(txn, entry).await?;
        }
        (Target::Delete, Some(row)) => {
            if !conflicts.is_empty() {
                match mode {
                    Mode::Strict => return Err(HistoryError::Conflicts(conflicts)),
                    Mode::SkipConflicting => {
                        done.skipped.extend(conflicts);
                        return Ok(done);
                    }
                    Mode::Force => done.forced.extend(conflicts),
                }
            }
            let am = row.clone().into_active_model();
            if let Err(e) = activity_core::mute_scopes(&[scope], am.delete(txn)).await {
                return Err(HistoryError::NotRevertible {
                    entry: first,
                    reason: format!(
                        "the row cannot be deleted (do other rows still refer to it?): {e}"
                    ),
                });
            }
            let mut entry = model_entry(&row, Some(change.item_id.clone()), REVERTED);
            row.activity_snapshot(ChangeAction::Deleted, &mut entry.detail.changes);
            entry.detail.context = Some(context("deleted", &done));
            done.entries.push(entry.id);
            crate::log_activity(txn, entry).await?;
        }
        (Target::Insert(fields), None) => {
            let Ok(mut model) =
                <E::ActiveModel as ActiveModelTrait>::default_values().try_into_model()
            else {
                return Err(HistoryError::NotRevertible {
                    entry: first,
                    reason: "the model has a field without a default value to start the row from"
                        .into(),
                });
            };
            let mut unknown_columns = Vec::new();
            let keys = key_fields::<E>(&change.item_id);
            for (index, value) in &keys {
                set_field(&mut model, *index, value);
            }
            for (index, spec) in <E::Model as ModelActivity>::FIELDS.iter().enumerate() {
                if keys.iter().any(|(k, _)| *k == index) {
                    continue;
                }
                if !is_plain(spec) {
                    done.unknown.push((
                        scope.to_owned(),
                        change.item_id.clone(),
                        spec.display.to_owned(),
                    ));
                    unknown_columns.push(spec.column);
                    continue;
                }
                let value = fields
                    .iter()
                    .find(|(f, _)| f == spec.display)
                    .map_or(Value::Null, |(_, v)| v.clone());
                if !set_field(&mut model, index, &value) {
                    done.unknown.push((
                        scope.to_owned(),
                        change.item_id.clone(),
                        spec.display.to_owned(),
                    ));
                    unknown_columns.push(spec.column);
                }
            }
            if mode == Mode::Strict && !done.unknown.is_empty() {
                let names: Vec<&str> = done.unknown.iter().map(|(_, _, f)| f.as_str()).collect();
                return Err(HistoryError::NotRevertible {
                    entry: first,
                    reason: format!(
                        "the log never held the deleted row's {names:?} (masked or excluded): it cannot be restored as it was; SkipConflicting or Force restores it with those left to the database's defaults"
                    ),
                });
            }
            let mut am = model.clone().into_active_model().reset_all();
            for column in <E::Column as Iterable>::iter() {
                if unknown_columns.contains(&column.as_str()) {
                    am.not_set(column);
                }
            }
            let inserted = match activity_core::mute_scopes(&[scope], am.insert(txn)).await {
                Ok(inserted) => inserted,
                Err(e) => {
                    return Err(HistoryError::NotRevertible {
                        entry: first,
                        reason: format!("the row cannot be inserted again: {e}"),
                    });
                }
            };
            let mut entry = model_entry(&inserted, Some(change.item_id.clone()), REVERTED);
            inserted.activity_snapshot(ChangeAction::Created, &mut entry.detail.changes);
            entry.detail.context = Some(context("created", &done));
            done.entries.push(entry.id);
            crate::log_activity(txn, entry).await?;
        }
        (Target::Fields(_) | Target::Delete, None) | (Target::Insert(_), Some(_)) => match mode {
            Mode::Force | Mode::Strict => return Err(HistoryError::Conflicts(conflicts)),
            Mode::SkipConflicting => done.skipped.extend(conflicts),
        },
    }
    Ok(done)
}

/// What a group revert would do to one item (see [`plan`](crate::history::plan)).
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
