//! What undoing an entry takes, shared by `as_of`, `revert` and the group revert: what an entry
//! did to its item, an item's rows and entries, and field values compared as the log compares
//! them.

use activity_core::entry::activity;
use activity_core::{ActivityEntry, FieldSpec, Masking, ModelActivity};
use sea_orm::sea_query::{ColumnType, Value as SeaValue};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, Iterable, PrimaryKeyToColumn,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use crate::history::REVERTED;
use crate::schema::activity_log;

/// What an entry did to its item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The row came into being.
    Created,
    /// Fields changed (the entry's changes say which).
    Updated,
    /// The row went away.
    Deleted,
    /// Nothing this history can follow (no changes of fields).
    Other,
}

/// `entry`'s effect: the lifecycle verbs, a revert's recorded effect, and any other verb with
/// field changes as an update (per-row bulk entries, workflow verbs that change fields).
pub(crate) fn effect(entry: &ActivityEntry) -> Effect {
    let verb = if entry.activity == REVERTED {
        entry
            .detail
            .context
            .as_ref()
            .and_then(|c| c.get("effect"))
            .and_then(Value::as_str)
            .unwrap_or("")
    } else {
        entry.activity.as_str()
    };
    match verb {
        v if v == activity::CREATED => Effect::Created,
        v if v == activity::DELETED => Effect::Deleted,
        _ if entry.detail.changes.iter().any(|c| c.field.is_some()) => Effect::Updated,
        _ => Effect::Other,
    }
}

/// The index in `M::FIELDS` of the field the log names `display`.
pub(crate) fn field_index<M: ModelActivity>(display: &str) -> Option<usize> {
    M::FIELDS.iter().position(|f| f.display == display)
}

/// Whether the log holds this field's values as they are (not masked, not excluded).
pub(crate) fn is_plain(spec: &FieldSpec) -> bool {
    !spec.excluded && spec.masking == Masking::None
}

/// JSON `null`, `""`, `[]` and `{}`: the values the diff treats as one.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Two encoded values the diff would call the same: both empty, or equal.
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (is_empty(a), is_empty(b)) {
        (true, true) => true,
        (false, false) => a == b,
        _ => false,
    }
}

/// Set field `index` of `model` to the encoded `value`. The log writes an empty value as
/// `null`; a field whose type has no `null` takes its own empty value (`""`, `[]`, `{}`).
pub(crate) fn set_field<M: ModelActivity>(model: &mut M, index: usize, value: &Value) -> bool {
    if model.activity_set_field_json(index, value) {
        return true;
    }
    is_empty(value)
        && [
            Value::Null,
            Value::String(String::new()),
            Value::Array(Vec::new()),
            Value::Object(serde_json::Map::new()),
        ]
        .iter()
        .any(|empty| model.activity_set_field_json(index, empty))
}

/// An item's entries after `(created_at, id)` (all, without a bound), oldest first.
pub(crate) async fn entries_of<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    item_id: &str,
    after: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
) -> Result<Vec<ActivityEntry>, DbErr> {
    use activity_log::Column;
    let mut select = crate::schema::table::find_entries()
        .filter(Column::Scope.eq(scope))
        .filter(Column::ItemId.eq(item_id));
    if let Some((at, id)) = after {
        select = select.filter(
            sea_orm::Condition::any().add(Column::CreatedAt.gt(at)).add(
                sea_orm::Condition::all()
                    .add(Column::CreatedAt.eq(at))
                    .add(Column::Id.gt(id)),
            ),
        );
    }
    oldest_first(db, select).await
}

/// The entries `select` finds, oldest first (by `created_at`, then id).
pub(crate) async fn oldest_first<C: ConnectionTrait>(
    db: &C,
    select: sea_orm::Select<activity_log::Entity>,
) -> Result<Vec<ActivityEntry>, DbErr> {
    use activity_log::Column;
    Ok(select
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(ActivityEntry::from)
        .collect())
}

/// The row of item `item_id` (its primary key as the log writes it), locked for the rest of
/// the transaction where the backend can (`FOR UPDATE`; SQLite's writer lock is the
/// transaction's own). `None` when no row has that key, or the id does not parse as this
/// entity's key.
pub(crate) async fn row_of<E, C>(
    db: &C,
    item_id: &str,
    lock: bool,
) -> Result<Option<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let columns: Vec<E::Column> = <E::PrimaryKey as Iterable>::iter()
        .map(PrimaryKeyToColumn::into_column)
        .collect();
    let parts = crate::keys::split_item_id(item_id, columns.len());
    if parts.len() != columns.len() {
        return Ok(None);
    }
    let mut select = E::find();
    for (column, text) in columns.iter().zip(&parts) {
        let Some(value) = key_value(column.def().get_column_type(), text) else {
            return Ok(None);
        };
        select = select.filter(column.eq(value));
    }
    if lock && db.get_database_backend() != DbBackend::Sqlite {
        select = select.lock_exclusive();
    }
    select.one(db).await
}

/// A key part written as text back as a value of its column's type.
fn key_value(column: &ColumnType, text: &str) -> Option<SeaValue> {
    // The exact width: PostgreSQL takes a parameter's type from the column, and an 8-byte
    // value bound where it expects 4 bytes is a protocol error.
    Some(match column {
        ColumnType::TinyInteger => SeaValue::TinyInt(Some(text.parse().ok()?)),
        ColumnType::SmallInteger => SeaValue::SmallInt(Some(text.parse().ok()?)),
        ColumnType::Integer => SeaValue::Int(Some(text.parse().ok()?)),
        ColumnType::BigInteger => SeaValue::BigInt(Some(text.parse().ok()?)),
        ColumnType::TinyUnsigned => SeaValue::TinyUnsigned(Some(text.parse().ok()?)),
        ColumnType::SmallUnsigned => SeaValue::SmallUnsigned(Some(text.parse().ok()?)),
        ColumnType::Unsigned => SeaValue::Unsigned(Some(text.parse().ok()?)),
        ColumnType::BigUnsigned => SeaValue::BigUnsigned(Some(text.parse().ok()?)),
        ColumnType::Uuid => SeaValue::Uuid(Some(text.parse().ok()?)),
        ColumnType::Boolean => SeaValue::Bool(Some(text.parse().ok()?)),
        _ => SeaValue::String(Some(text.to_owned())),
    })
}

/// The primary key's fields of `E`, by index in `FIELDS`, with their values (as the log
/// encodes values) read from `item_id`: a key is known even when the log excludes it (`id` is
/// one of the common exclusions), because the item id is the key.
pub(crate) fn key_fields<E>(item_id: &str) -> Vec<(usize, Value)>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let columns: Vec<E::Column> = <E::PrimaryKey as Iterable>::iter()
        .map(PrimaryKeyToColumn::into_column)
        .collect();
    let parts = crate::keys::split_item_id(item_id, columns.len());
    columns
        .iter()
        .zip(parts)
        .filter_map(|(column, text)| {
            let index = <E::Model as ModelActivity>::FIELDS
                .iter()
                .position(|f| f.column == sea_orm::IdenStatic::as_str(column))?;
            let value = match key_value(column.def().get_column_type(), &text)? {
                SeaValue::String(Some(s)) => Value::String(s),
                SeaValue::Uuid(Some(u)) => Value::String(u.hyphenated().to_string()),
                other => crate::keys::value_json(&other),
            };
            Some((index, value))
        })
        .collect()
}
