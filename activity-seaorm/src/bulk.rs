//! Logged equivalents of `Entity::update_many`, `delete_many` and `insert_many`, which run no
//! SeaORM hooks.
//!
//! - [`BulkMode::PerRow`]: one entry per affected row, with the current actor. Updates and deletes
//!   read the affected rows once (`SELECT .. FOR UPDATE` on PostgreSQL/MySQL), write, then log
//!   every entry in one multi-row INSERT (at COMMIT inside [`transaction`](crate::transaction)).
//! - [`BulkMode::Summary`]: the write, plus one entry with the filter, the affected count and the
//!   columns set (values masked like any change).
//!
//! Both honour [`mute_signals`](crate::mute_signals) (muted: the plain write, no read, no entry)
//! and the model's masks.
//!
//! ```ignore
//! use activity_seaorm::bulk::{self, BulkMode};
//! let changed = bulk::update_many::<feature_flag::Entity, _>(
//!     &txn,
//!     feature_flag::Column::TeamId.eq(7),
//!     feature_flag::ActiveModel { active: Set(false), ..Default::default() },
//!     BulkMode::PerRow,
//! )
//! .await?;
//! ```
//!
//! Only constant values (`Set(..)` on an active model) are supported for updates, so the entry's
//! `after` is exactly what was written; for column expressions (`counter + 1`) use SeaORM's
//! `update_many` and [`log_activity`](crate::log_activity) a summary yourself.

use activity_core::entry::activity;
use activity_core::{ActivityEntry, Change, ChangeAction, Masking, ModelActivity, is_muted};
use sea_orm::sea_query::{Condition, IntoCondition};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QuerySelect, QueryTrait,
    TryIntoModel, Value,
};

use crate::hooks::model_entry;
use crate::keys::{model_item_id, value_json};
use crate::manual::bulk_log_activity;

/// How a bulk write is logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BulkMode {
    /// One entry per affected row.
    #[default]
    PerRow,
    /// One entry for the whole statement.
    Summary,
}

/// Primary keys per `IN (..)` list.
const KEYS_PER_STATEMENT: usize = 1_000;

/// `UPDATE .. SET <values> WHERE <filter>`, logged. Returns the rows updated.
pub async fn update_many<E, C>(
    db: &C,
    filter: impl IntoCondition,
    values: E::ActiveModel,
    mode: BulkMode,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone + Send + Sync + 'static,
    E::ActiveModel: TryIntoModel<E::Model> + Send,
    C: ConnectionTrait,
{
    let filter = filter.into_condition();
    let scope = <E::Model as ModelActivity>::SCOPE;
    if is_muted(scope) || mode == BulkMode::Summary {
        let count = E::update_many()
            .set(values.clone())
            .filter(filter.clone())
            .exec(db)
            .await?
            .rows_affected;
        if !is_muted(scope) {
            let entry = summary::<E, C>(db, "bulk_updated", &filter, count, Some(&values));
            bulk_log_activity(db, vec![entry]).await?;
        }
        return Ok(count);
    }
    let before = locked_rows::<E, C>(db, filter).await?;
    let mut count = 0;
    for chunk in before.chunks(KEYS_PER_STATEMENT) {
        count += E::update_many()
            .set(values.clone())
            .filter(by_keys::<E>(chunk))
            .exec(db)
            .await?
            .rows_affected;
    }
    let entries = before
        .iter()
        .filter_map(|b| {
            let after = apply::<E>(b, &values)?;
            let mut entry = model_entry(&after, model_item_id(&after), activity::UPDATED);
            b.activity_changes(&after, &mut entry.detail.changes);
            (!entry.detail.changes.is_empty()).then_some(entry)
        })
        .collect();
    bulk_log_activity(db, entries).await?;
    Ok(count)
}

/// `DELETE .. WHERE <filter>`, logged. Returns the rows deleted.
pub async fn delete_many<E, C>(
    db: &C,
    filter: impl IntoCondition,
    mode: BulkMode,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let filter = filter.into_condition();
    let scope = <E::Model as ModelActivity>::SCOPE;
    if is_muted(scope) || mode == BulkMode::Summary {
        let count = E::delete_many()
            .filter(filter.clone())
            .exec(db)
            .await?
            .rows_affected;
        if !is_muted(scope) {
            let entry = summary::<E, C>(db, "bulk_deleted", &filter, count, None);
            bulk_log_activity(db, vec![entry]).await?;
        }
        return Ok(count);
    }
    let before = locked_rows::<E, C>(db, filter).await?;
    let mut count = 0;
    for chunk in before.chunks(KEYS_PER_STATEMENT) {
        count += E::delete_many()
            .filter(by_keys::<E>(chunk))
            .exec(db)
            .await?
            .rows_affected;
    }
    let entries = before
        .iter()
        .map(|m| {
            let mut entry = model_entry(m, model_item_id(m), activity::DELETED);
            if <E::Model as ModelActivity>::SNAPSHOT {
                m.activity_snapshot(ChangeAction::Deleted, &mut entry.detail.changes);
            }
            entry
        })
        .collect();
    bulk_log_activity(db, entries).await?;
    Ok(count)
}

/// `INSERT` of many rows, logged. Returns the rows inserted. Per row, the inserted models are
/// read back with `RETURNING` (PostgreSQL, SQLite); MySQL has none, so there each row is
/// inserted on its own.
pub async fn insert_many<E, C>(
    db: &C,
    models: Vec<E::ActiveModel>,
    mode: BulkMode,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Send + Sync + 'static,
    E::ActiveModel: Send,
    C: ConnectionTrait,
{
    if models.is_empty() {
        return Ok(0);
    }
    let scope = <E::Model as ModelActivity>::SCOPE;
    if is_muted(scope) || mode == BulkMode::Summary {
        let count = models.len() as u64;
        E::insert_many(models).exec_without_returning(db).await?;
        if !is_muted(scope) {
            let entry = summary::<E, C>(db, "bulk_created", &Condition::all(), count, None);
            bulk_log_activity(db, vec![entry]).await?;
        }
        return Ok(count);
    }
    let inserted: Vec<E::Model> = if db.support_returning() {
        E::insert_many(models).exec_with_returning(db).await?
    } else {
        let mut out = Vec::with_capacity(models.len());
        for model in models {
            out.push(E::insert(model).exec_with_returning(db).await?);
        }
        out
    };
    let entries = inserted
        .iter()
        .map(|m| {
            let mut entry = model_entry(m, model_item_id(m), activity::CREATED);
            if <E::Model as ModelActivity>::SNAPSHOT {
                m.activity_snapshot(ChangeAction::Created, &mut entry.detail.changes);
            }
            entry
        })
        .collect();
    bulk_log_activity(db, entries).await?;
    Ok(inserted.len() as u64)
}

/// The rows matching `filter`, locked until the end of the transaction where the backend can.
async fn locked_rows<E, C>(db: &C, filter: Condition) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut select = E::find().filter(filter);
    if db.get_database_backend() != DbBackend::Sqlite {
        select = select.lock_exclusive();
    }
    select.all(db).await
}

/// `pk IN (..)` (or `(pk1, pk2) IN (..)`) for the given models.
fn by_keys<E: EntityTrait>(models: &[E::Model]) -> Condition
where
    E::Model: sea_orm::ModelTrait,
{
    let keys: Vec<E::Column> = <E::PrimaryKey as Iterable>::iter()
        .map(PrimaryKeyToColumn::into_column)
        .collect();
    if let [key] = keys.as_slice() {
        let values: Vec<Value> = models
            .iter()
            .map(|m| sea_orm::ModelTrait::get(m, *key))
            .collect();
        return Condition::all().add(key.is_in(values));
    }
    models.iter().fold(Condition::any(), |any, m| {
        any.add(keys.iter().fold(Condition::all(), |all, k| {
            all.add(k.eq(sea_orm::ModelTrait::get(m, *k)))
        }))
    })
}

/// `before` with the `Set` values of `values` applied.
fn apply<E>(before: &E::Model, values: &E::ActiveModel) -> Option<E::Model>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let mut merged = before.clone().into_active_model();
    for col in E::Column::iter() {
        if let ActiveValue::Set(v) = values.get(col) {
            merged.try_set(col, v).ok()?;
        }
    }
    merged.try_into_model().ok()
}

/// One entry for a whole statement: filter (as SQL), count and the columns set.
fn summary<E, C>(
    db: &C,
    verb: &str,
    filter: &Condition,
    count: u64,
    values: Option<&E::ActiveModel>,
) -> ActivityEntry
where
    E: EntityTrait,
    E::Model: ModelActivity,
    C: ConnectionTrait,
{
    let scope = <E::Model as ModelActivity>::SCOPE;
    let sql = E::find()
        .filter(filter.clone())
        .build(db.get_database_backend())
        .to_string();
    let filter_text = sql.split_once(" WHERE ").map_or("", |(_, w)| w).to_owned();
    let mut changes = Vec::new();
    let mut columns = Vec::new();
    if let Some(values) = values {
        let fields = <E::Model as ModelActivity>::FIELDS;
        for (i, col) in E::Column::iter().enumerate() {
            let ActiveValue::Set(v) = values.get(col) else {
                continue;
            };
            let spec = fields.get(i);
            let name = spec.map_or_else(
                || sea_orm::IdenStatic::as_str(&col).to_owned(),
                |f| f.display.to_owned(),
            );
            columns.push(serde_json::Value::String(name.clone()));
            let after = match spec.map(|f| f.masking) {
                Some(Masking::None) | None => value_json(&v),
                Some(_) => serde_json::Value::String(activity_core::diff::MASKED.to_owned()),
            };
            changes.push(Change::new(
                scope,
                ChangeAction::Changed,
                Some(&name),
                serde_json::Value::Null,
                after,
            ));
        }
    }
    let mut entry = ActivityEntry::new(scope, verb)
        .with_changes(changes)
        .forced();
    entry.created_at = activity_core::ActivityConfig::with_current(|c| c.clock().now());
    entry.detail.context = Some(serde_json::json!({
        "filter": filter_text,
        "count": count,
        "columns": columns,
    }));
    entry
}
