//! Logged equivalents of `Entity::update_many`, `delete_many` and `insert_many`, which run no
//! SeaORM hooks: the functions below, or [`ExecLogged::exec_logged`] on SeaORM's own
//! statements (`Entity::update_many().set(..).filter(..).exec_logged(&db, mode)`).
//!
//! - [`BulkMode::PerRow`]: one entry per affected row, with the current actor. Updates and deletes
//!   work in batches of [`PER_ROW_BATCH`] rows: each batch is read and locked in primary-key
//!   order (`SELECT .. ORDER BY <key> LIMIT .. FOR UPDATE` on PostgreSQL/MySQL, so overlapping
//!   jobs lock in the same order and cannot deadlock each other), then written with the caller's
//!   filter kept (`<filter> AND <key> IN (<batch>)`: a row that stopped matching is never
//!   touched), and only the rows the database reports written (`RETURNING` on PostgreSQL and
//!   SQLite) are logged. Entries are written in one multi-row INSERT per batch (at COMMIT inside
//!   [`transaction`](crate::transaction)).
//! - [`BulkMode::Summary`]: the write, plus one entry per tenant with the affected count and the
//!   columns set — never the filter's SQL or its values; set values obey `exclude` and masks.
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
use sea_orm::sea_query::{Asterisk, Condition, Expr, ExprTrait, IntoCondition};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    IdenStatic, IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TryIntoModel, Value,
};

use crate::checked::{self, Verb};
use crate::keys::{model_item_id, value_json};
use crate::write::before::{lifecycle_entry, model_entry};
use crate::write::manual::bulk_log_activity;

/// How a bulk write is logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkMode {
    /// One entry per affected row.
    #[default]
    PerRow,
    /// One entry for the whole statement.
    Summary,
}

/// Rows read, locked and written per batch in [`BulkMode::PerRow`]: bounds the memory a bulk
/// job holds, whatever the filter matches.
pub const PER_ROW_BATCH: u64 = 500;

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
    // Earlier unconfirmed updates of rows this may change keep their own entries (muted or not).
    crate::write::flush::settle_updates_of::<E::Model, C>(db).await?;
    if is_muted(scope) {
        return plain_update::<E, C>(db, filter, values).await;
    }
    if mode == BulkMode::Summary {
        let tenants = tenant_counts::<E, C>(db, &filter).await?;
        let count = plain_update::<E, C>(db, filter, values.clone()).await?;
        let entries = summaries::<E>("bulk_updated", count, tenants, Some(&values));
        bulk_log_activity(db, entries).await?;
        return Ok(count);
    }
    let mut count = 0;
    let mut after = None;
    loop {
        let batch = locked_batch::<E, C>(db, &filter, after.take()).await?;
        let Some(last) = batch.last() else {
            break;
        };
        let next = key_values::<E>(last);
        let keep = Condition::all()
            .add(filter.clone())
            .add(by_keys::<E>(&batch));
        let written = updated_rows::<E, C>(db, keep, &values, &batch).await?;
        count += written.len() as u64;
        let entries = written
            .iter()
            .filter_map(|(before, after)| {
                let mut entry = model_entry(after, model_item_id(after), activity::UPDATED);
                before.activity_changes(after, &mut entry.detail.changes);
                (!entry.detail.changes.is_empty()).then_some(entry)
            })
            .collect();
        bulk_log_activity(db, entries).await?;
        if (batch.len() as u64) < PER_ROW_BATCH {
            break;
        }
        after = Some(next);
    }
    Ok(count)
}

async fn plain_update<E, C>(db: &C, filter: Condition, values: E::ActiveModel) -> Result<u64, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    announce_update::<E>(&values);
    Ok(E::update_many()
        .set(values)
        .filter(filter)
        .exec(db)
        .await?
        .rows_affected)
}

/// Announce an `UPDATE .. SET <values>` to checked mode (none when no value is set: SeaORM
/// then sends no statement).
fn announce_update<E: EntityTrait>(values: &E::ActiveModel) {
    if values.is_changed() {
        checked::announce::<E>(Verb::Update);
    }
}

/// Update the rows of `batch` that still match `keep`; returns (before, after) of each row
/// written. `RETURNING` says which where the backend has it; on MySQL the batch is re-read and a
/// row counts as written when it holds the written values (inside a transaction the batch's
/// locks make that every row).
async fn updated_rows<E, C>(
    db: &C,
    keep: Condition,
    values: &E::ActiveModel,
    batch: &[E::Model],
) -> Result<Vec<(E::Model, E::Model)>, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: TryIntoModel<E::Model>,
    C: ConnectionTrait,
{
    let by_key: std::collections::HashMap<String, &E::Model> = batch
        .iter()
        .filter_map(|m| Some((model_item_id(m)?, m)))
        .collect();
    let before_of =
        |row: &E::Model| model_item_id(row).and_then(|k| by_key.get(&k).map(|m| (*m).clone()));
    announce_update::<E>(values);
    if db.support_returning() {
        let rows = E::update_many()
            .set(values.clone())
            .filter(keep)
            .exec_with_returning(db)
            .await?;
        return Ok(rows
            .into_iter()
            .filter_map(|after| Some((before_of(&after)?, after)))
            .collect());
    }
    // MySQL: through the primary key, so the statement locks the batch and nothing else. On a
    // small table InnoDB may prefer a scan, and a scan locks every row it reads — rows another
    // job holds, a deadlock (seen on MariaDB 10.11 with 1,200 rows and batches of 500).
    let update = E::update_many()
        .set(values.clone())
        .filter(keep)
        .into_query();
    let mut statement = db.get_database_backend().build(&update);
    let table = format!("UPDATE `{}` SET ", E::default().table_name());
    if statement.sql.starts_with(&table) {
        let hinted = format!(
            "UPDATE `{}` FORCE INDEX (PRIMARY) SET ",
            E::default().table_name()
        );
        statement.sql = statement.sql.replacen(&table, &hinted, 1);
    }
    db.execute_raw(statement).await?;
    let now = E::find().filter(by_keys::<E>(batch)).all(db).await?;
    Ok(now
        .into_iter()
        .filter_map(|row| {
            let before = before_of(&row)?;
            let expected = apply::<E>(&before, values)?;
            let written = E::Column::iter().all(|col| {
                !matches!(values.get(col), ActiveValue::Set(_))
                    || sea_orm::ModelTrait::get(&row, col)
                        == sea_orm::ModelTrait::get(&expected, col)
            });
            written.then_some((before, row))
        })
        .collect())
}

/// `DELETE .. WHERE <filter>`, logged. Returns the rows deleted.
pub async fn delete_many<E, C>(
    db: &C,
    filter: impl IntoCondition,
    mode: BulkMode,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let filter = filter.into_condition();
    let scope = <E::Model as ModelActivity>::SCOPE;
    let delete = |condition: Condition| {
        checked::announce::<E>(Verb::Delete);
        E::delete_many().filter(condition).exec(db)
    };
    crate::write::flush::settle_updates_of::<E::Model, C>(db).await?;
    if is_muted(scope) {
        return Ok(delete(filter).await?.rows_affected);
    }
    if mode == BulkMode::Summary {
        let tenants = tenant_counts::<E, C>(db, &filter).await?;
        let count = delete(filter).await?.rows_affected;
        let entries = summaries::<E>("bulk_deleted", count, tenants, None);
        bulk_log_activity(db, entries).await?;
        return Ok(count);
    }
    let mut count = 0;
    loop {
        // Deleted rows leave the filter: every batch starts from the lowest key again.
        let batch = locked_batch::<E, C>(db, &filter, None).await?;
        if batch.is_empty() {
            break;
        }
        let keep = Condition::all()
            .add(filter.clone())
            .add(by_keys::<E>(&batch));
        let deleted = delete(keep).await?.rows_affected;
        count += deleted;
        let gone: Vec<&E::Model> = if deleted == batch.len() as u64 {
            batch.iter().collect()
        } else {
            // Some rows stopped matching (no lock held outside a transaction): log only the
            // ones that are really gone.
            let left = E::find().filter(by_keys::<E>(&batch)).all(db).await?;
            let left: std::collections::HashSet<String> =
                left.iter().filter_map(model_item_id).collect();
            batch
                .iter()
                .filter(|m| model_item_id(*m).is_none_or(|k| !left.contains(&k)))
                .collect()
        };
        let entries = gone
            .into_iter()
            .map(|m| lifecycle_entry(m, model_item_id(m), ChangeAction::Deleted))
            .collect();
        bulk_log_activity(db, entries).await?;
        if (batch.len() as u64) < PER_ROW_BATCH || deleted == 0 {
            break;
        }
    }
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
        let tenants = if is_muted(scope) {
            Vec::new()
        } else {
            inserted_tenants::<E>(&models)
        };
        checked::announce::<E>(Verb::Insert);
        E::insert_many(models).exec_without_returning(db).await?;
        if !is_muted(scope) {
            let entries = summaries::<E>("bulk_created", count, tenants, None);
            bulk_log_activity(db, entries).await?;
        }
        return Ok(count);
    }
    let inserted: Vec<E::Model> = if db.support_returning() {
        checked::announce::<E>(Verb::Insert);
        E::insert_many(models).exec_with_returning(db).await?
    } else {
        let mut out = Vec::with_capacity(models.len());
        for model in models {
            checked::announce::<E>(Verb::Insert);
            out.push(E::insert(model).exec_with_returning(db).await?);
        }
        out
    };
    let entries = inserted
        .iter()
        .map(|m| lifecycle_entry(m, model_item_id(m), ChangeAction::Created))
        .collect();
    bulk_log_activity(db, entries).await?;
    Ok(inserted.len() as u64)
}

/// The next [`PER_ROW_BATCH`] rows matching `filter` after the key `after`, in primary-key
/// order, locked until the end of the transaction where the backend can.
async fn locked_batch<E, C>(
    db: &C,
    filter: &Condition,
    after: Option<Vec<Value>>,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let keys: Vec<E::Column> = <E::PrimaryKey as Iterable>::iter()
        .map(PrimaryKeyToColumn::into_column)
        .collect();
    let mut select = E::find().filter(filter.clone());
    if let Some(after) = after {
        select = select.filter(after_key(&keys, after));
    }
    for key in &keys {
        select = select.order_by_asc(*key);
    }
    select = select.limit(PER_ROW_BATCH);
    if db.get_database_backend() != DbBackend::Sqlite {
        select = select.lock_exclusive();
    }
    select.all(db).await
}

/// Rows after `values` in the order of `keys`: `(k1 > v1) OR (k1 = v1 AND k2 > v2) ...`
/// (spelled out rather than a row-value comparison, which not every backend plans well).
fn after_key<Col: ColumnTrait>(keys: &[Col], values: Vec<Value>) -> Condition {
    let mut any = Condition::any();
    for i in 0..keys.len() {
        let mut all = Condition::all();
        for (key, value) in keys.iter().zip(&values).take(i) {
            all = all.add(key.eq(value.clone()));
        }
        if let (Some(key), Some(value)) = (keys.get(i), values.get(i)) {
            all = all.add(key.gt(value.clone()));
        }
        any = any.add(all);
    }
    any
}

/// A model's primary-key values, in key order.
fn key_values<E: EntityTrait>(model: &E::Model) -> Vec<Value> {
    <E::PrimaryKey as Iterable>::iter()
        .map(|pk| sea_orm::ModelTrait::get(model, pk.into_column()))
        .collect()
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

/// Rows matching `filter` per tenant (team, organization), read before the statement changes
/// them; one group with no tenant for models without tenant fields.
async fn tenant_counts<E, C>(db: &C, filter: &Condition) -> Result<Vec<Tenant>, DbErr>
where
    E: EntityTrait,
    E::Model: ModelActivity,
    C: ConnectionTrait,
{
    let team = tenant_column::<E>(<E::Model as ModelActivity>::TEAM_FIELD);
    let org = tenant_column::<E>(<E::Model as ModelActivity>::ORGANIZATION_FIELD);
    if team.is_none() && org.is_none() {
        return Ok(vec![Tenant::default()]);
    }
    let mut select = E::find()
        .select_only()
        .filter(filter.clone())
        .column_as(Expr::col(Asterisk).count(), "n");
    for (col, alias) in [(team, "team"), (org, "org")] {
        if let Some(col) = col {
            select = select
                .column_as(Expr::col(col).cast_as(text_type(db)), alias)
                .group_by(col);
        }
    }
    let rows = db
        .query_all_raw(select.build(db.get_database_backend()))
        .await?;
    Ok(rows
        .iter()
        .map(|row| Tenant {
            team_id: row.try_get::<Option<String>>("", "team").ok().flatten(),
            organization_id: row.try_get::<Option<String>>("", "org").ok().flatten(),
            count: row
                .try_get::<i64>("", "n")
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        })
        .collect())
}

fn text_type<C: ConnectionTrait>(db: &C) -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new(match db.get_database_backend() {
        DbBackend::MySql => "char",
        _ => "text",
    })
}

/// The column of the tenant field at `index` in `FIELDS`.
fn tenant_column<E>(index: Option<usize>) -> Option<E::Column>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let spec = <E::Model as ModelActivity>::FIELDS.get(index?)?;
    E::Column::iter().find(|c| c.as_str() == spec.column)
}

/// The tenants of rows about to be inserted, counted.
fn inserted_tenants<E>(models: &[E::ActiveModel]) -> Vec<Tenant>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let team = tenant_column::<E>(<E::Model as ModelActivity>::TEAM_FIELD);
    let org = tenant_column::<E>(<E::Model as ModelActivity>::ORGANIZATION_FIELD);
    let text = |am: &E::ActiveModel, col: Option<E::Column>| match am.get(col?) {
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => crate::keys::value_text(&v),
        ActiveValue::NotSet => None,
    };
    let mut tenants: Vec<Tenant> = Vec::new();
    for am in models {
        let (team_id, organization_id) = (text(am, team), text(am, org));
        match tenants
            .iter_mut()
            .find(|t| t.team_id == team_id && t.organization_id == organization_id)
        {
            Some(t) => t.count += 1,
            None => tenants.push(Tenant {
                team_id,
                organization_id,
                count: 1,
            }),
        }
    }
    tenants
}

/// One tenant's share of a bulk statement.
#[derive(Debug, Default)]
struct Tenant {
    team_id: Option<String>,
    organization_id: Option<String>,
    count: u64,
}

/// One summary entry per tenant: the rows it had matching (the statement's total when the
/// model has no tenant) and the columns set — names only, masked and excluded as any change;
/// never the filter's SQL or its bound values, which may name secrets.
fn summaries<E>(
    verb: &str,
    total: u64,
    tenants: Vec<Tenant>,
    values: Option<&E::ActiveModel>,
) -> Vec<ActivityEntry>
where
    E: EntityTrait,
    E::Model: ModelActivity,
{
    let scope = <E::Model as ModelActivity>::SCOPE;
    let mut changes = Vec::new();
    let mut columns = Vec::new();
    if let Some(values) = values {
        for (i, col) in E::Column::iter().enumerate() {
            let ActiveValue::Set(v) = values.get(col) else {
                continue;
            };
            let Some(spec) = <E::Model as ModelActivity>::field_for_column_at(i, col.as_str())
            else {
                continue;
            };
            if spec.excluded {
                continue;
            }
            columns.push(serde_json::Value::String(spec.display.to_owned()));
            let after = match spec.masking {
                Masking::None => value_json(&v),
                _ => serde_json::Value::String(activity_core::diff::MASKED.to_owned()),
            };
            changes.push(Change::new(
                scope,
                ChangeAction::Changed,
                Some(spec.display),
                serde_json::Value::Null,
                after,
            ));
        }
    }
    let single =
        tenants.len() == 1 && tenants[0].team_id.is_none() && tenants[0].organization_id.is_none();
    tenants
        .into_iter()
        // A statement that matched nothing changed nothing: no entry, with tenants or without.
        .filter(|t| if single { total > 0 } else { t.count > 0 })
        .map(|t| {
            let mut entry = ActivityEntry::new(scope, verb)
                .with_changes(changes.clone())
                .forced();
            entry.team_id = t.team_id;
            entry.organization_id = t.organization_id;
            entry.own_tenant = !single;
            let count = if single { total } else { t.count };
            entry.detail.context = Some(serde_json::json!({
                "count": count,
                "columns": columns,
            }));
            entry
        })
        .collect()
}

/// `exec_logged(&db, mode)` on SeaORM's own bulk statements: the logged twin of `exec`, for
/// code written the SeaORM way.
///
/// ```ignore
/// use activity_seaorm::bulk::{BulkMode, ExecLogged};
/// feature_flag::Entity::update_many()
///     .set(feature_flag::ActiveModel { active: Set(false), ..Default::default() })
///     .filter(feature_flag::Column::TeamId.eq(7))
///     .exec_logged(&txn, BulkMode::PerRow)
///     .await?;
/// feature_flag::Entity::delete_many()
///     .filter(feature_flag::Column::Active.eq(false))
///     .exec_logged(&txn, BulkMode::Summary)
///     .await?;
/// feature_flag::Entity::insert_many(models).exec_logged(&txn, BulkMode::PerRow).await?;
/// ```
///
/// Each runs [`update_many`], [`delete_many`] or [`insert_many`] with the statement's filter,
/// values or rows, so it logs exactly as they do and returns the rows written. What those
/// cannot log is refused before anything is written, with an error saying why: a SET to an
/// expression (`counter + 1`: the entry's `after` would be a guess), and clauses beyond a
/// filter (ORDER BY, LIMIT, RETURNING, ON CONFLICT).
pub trait ExecLogged {
    /// Run the statement and log it (see [`ExecLogged`]).
    fn exec_logged<C: ConnectionTrait>(
        self,
        db: &C,
        mode: BulkMode,
    ) -> impl std::future::Future<Output = Result<u64, DbErr>> + Send;
}

impl<E> ExecLogged for sea_orm::UpdateMany<E>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone + Send + Sync + 'static,
    E::ActiveModel: TryIntoModel<E::Model> + Send + Sync,
{
    fn exec_logged<C: ConnectionTrait>(
        self,
        db: &C,
        mode: BulkMode,
    ) -> impl std::future::Future<Output = Result<u64, DbErr>> + Send {
        let parts = update_parts::<E>(&self, db.get_database_backend());
        async move {
            let (filter, values) = parts?;
            update_many::<E, C>(db, filter, values, mode).await
        }
    }
}

/// The filter and the values of SeaORM's `UpdateMany`, checked to rebuild it exactly.
fn update_parts<E>(
    update: &sea_orm::UpdateMany<E>,
    backend: DbBackend,
) -> Result<(Condition, E::ActiveModel), DbErr>
where
    E: EntityTrait,
{
    use crate::write::statement::{constant, filter_of, unsupported};
    use sea_orm::sea_query::Query;
    const WHAT: &str = "update_many";
    let query = update.as_query();
    let set = query.get_values();
    let mut values = E::ActiveModel::default();
    for (column, expr) in set {
        let name = column.to_string();
        let value = constant(expr).ok_or_else(|| {
            unsupported(
                WHAT,
                format!("`{name}` is set to an expression, not a value"),
            )
        })?;
        let col = name
            .parse::<E::Column>()
            .map_err(|_| unsupported(WHAT, format!("`{name}` is not a column of the entity")))?;
        values.try_set(col, value)?;
    }
    if set.is_empty() {
        return Err(unsupported(WHAT, "it sets nothing"));
    }
    let head = Query::update()
        .table(E::default().table_ref())
        .values(set.iter().map(|(c, e)| (c.clone(), (**e).clone())))
        .to_owned();
    let filter = filter_of(&backend.build(query), &head, backend, WHAT)?;
    Ok((filter, values))
}

impl<E> ExecLogged for sea_orm::DeleteMany<E>
where
    E: EntityTrait,
    E::Model: ModelActivity + Clone + Send + Sync + 'static,
{
    fn exec_logged<C: ConnectionTrait>(
        self,
        db: &C,
        mode: BulkMode,
    ) -> impl std::future::Future<Output = Result<u64, DbErr>> + Send {
        let filter = delete_filter::<E>(&self, db.get_database_backend());
        async move { delete_many::<E, C>(db, filter?, mode).await }
    }
}

/// The filter of SeaORM's `DeleteMany`, checked to rebuild it exactly.
fn delete_filter<E: EntityTrait>(
    delete: &sea_orm::DeleteMany<E>,
    backend: DbBackend,
) -> Result<Condition, DbErr> {
    use crate::write::statement::filter_of;
    use sea_orm::sea_query::Query;
    const WHAT: &str = "delete_many";
    let head = Query::delete()
        .from_table(E::default().table_ref())
        .to_owned();
    filter_of(&backend.build(delete.as_query()), &head, backend, WHAT)
}

impl<E, A> ExecLogged for sea_orm::InsertMany<A>
where
    E: EntityTrait<ActiveModel = A>,
    A: ActiveModelTrait<Entity = E> + Send + Sync,
    E::Model: ModelActivity + IntoActiveModel<A> + Send + Sync + 'static,
{
    fn exec_logged<C: ConnectionTrait>(
        self,
        db: &C,
        mode: BulkMode,
    ) -> impl std::future::Future<Output = Result<u64, DbErr>> + Send {
        let rows = insert_rows::<A>(&self, db.get_database_backend());
        async move { insert_many::<E, C>(db, rows?, mode).await }
    }
}

/// The rows of SeaORM's `InsertMany`, as active models, checked to rebuild it exactly.
fn insert_rows<A: ActiveModelTrait>(
    insert: &sea_orm::InsertMany<A>,
    backend: DbBackend,
) -> Result<Vec<A>, DbErr> {
    use crate::write::statement::{insert_columns, same, unsupported, values};
    use sea_orm::sea_query::{Alias, Query};
    const WHAT: &str = "insert_many";
    let full = backend.build(insert.as_query());
    let names = insert_columns(&full.sql, backend)
        .ok_or_else(|| unsupported(WHAT, "its SQL is not `INSERT INTO .. (..) VALUES ..`"))?;
    let params = values(&full);
    if names.is_empty() || params.is_empty() || !params.len().is_multiple_of(names.len()) {
        return Err(unsupported(WHAT, "its rows are not one value per column"));
    }
    let columns = names
        .iter()
        .map(|n| {
            n.parse::<<A::Entity as EntityTrait>::Column>()
                .map_err(|_| unsupported(WHAT, format!("`{n}` is not a column of the entity")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rebuilt = Query::insert()
        .into_table(sea_orm::EntityName::table_ref(&A::Entity::default()))
        .columns(names.iter().map(|n| Alias::new(n.as_str())))
        .to_owned();
    let mut rows = Vec::with_capacity(params.len() / names.len());
    for chunk in params.chunks(names.len()) {
        let mut model = A::default();
        for (col, value) in columns.iter().zip(chunk) {
            model.try_set(*col, value.clone())?;
        }
        rebuilt
            .values(
                chunk
                    .iter()
                    .zip(&columns)
                    .map(|(v, c)| c.save_as(Expr::val(v.clone()))),
            )
            .map_err(|e| unsupported(WHAT, e))?;
        rows.push(model);
    }
    if !same(&full, &backend.build(&rebuilt)) {
        return Err(unsupported(
            WHAT,
            "it has more than plain rows (an expression, ON CONFLICT or RETURNING)",
        ));
    }
    Ok(rows)
}
