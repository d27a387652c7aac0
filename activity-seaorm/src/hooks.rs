//! The four `ActiveModelBehavior` hooks. `activity_hooks!()` calls them; call them yourself
//! when your `ActiveModelBehavior` has its own hook bodies:
//!
//! ```ignore
//! async fn before_save<C: ConnectionTrait>(self, db: &C, insert: bool) -> Result<Self, DbErr> {
//!     let this = my_validation(self)?;
//!     activity_seaorm::hooks::before_save(this, db, insert).await
//! }
//! ```
//!
//! Inserts log in `after_save` (generated keys are known). Updates read the before-state by
//! primary key in `before_save`, on the hook's own connection, locking the row as the UPDATE
//! will (`FOR NO KEY UPDATE` on PostgreSQL, `FOR UPDATE` on MySQL), unless [`Tracked`](crate::Tracked) supplied it or only `signal_exclude`d fields are
//! set. Deletes of a primary-key-only active model read the row first, so the entry has a name.

use std::any::Any;
use std::time::Instant;

use activity_core::entry::activity;
use activity_core::{ChangeAction, ModelActivity, is_muted};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QuerySelect, TryIntoModel,
};

use crate::buffer::{self, Pending};
use crate::keys::{active_item_id, conn_key, model_item_id};
use crate::write::{buffer_into, emit, model_entry};

/// The model type of an active model.
pub type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// `before_save`: on update, capture the before-state for `after_save`.
pub async fn before_save<A, C>(am: A, db: &C, insert: bool) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if insert {
        return Ok(am);
    }
    // A muted job with nothing waiting anywhere: done before the key is even formatted.
    if !buffer::any_pending() && is_muted(<ModelOf<A>>::SCOPE) {
        return Ok(am);
    }
    let Some(item_id) = active_item_id(&am) else {
        return Ok(am);
    };
    // Claim what is pending first, so nothing is left behind on any early return: either the
    // before-state `Tracked` supplied, or one left by an earlier update of this row that never
    // reached `after_save` (`update_without_returning`, or an update that failed).
    let mut supplied = None;
    let mut fresh = None;
    if let Some(earlier) = buffer::take_pending::<ModelOf<A>>(&item_id) {
        if earlier.conn == buffer::SUPPLIED {
            supplied = earlier.before.downcast::<ModelOf<A>>().ok().map(|m| *m);
        } else if buffer::is_open(earlier.conn) {
            fresh = Some(settle_earlier(&am, db, earlier).await?);
        } else {
            // Outside a helper transaction nothing vouches that the row has not changed
            // hands since: the state is stale. Read afresh.
            tracing::debug!(
                item_id,
                "dropping a before-state left outside a transaction"
            );
        }
    }
    if is_muted(<ModelOf<A>>::SCOPE) || !sets_signalling_field(&am) {
        return Ok(am);
    }
    let before = match (supplied, fresh) {
        (Some(model), _) | (None, Some(Some(model))) => model,
        (None, Some(None)) => return Ok(am),
        (None, None) => match read_row(&am, db, Intent::Update).await? {
            Some(model) => model,
            // No such row: the UPDATE will match nothing and nothing is logged.
            None => return Ok(am),
        },
    };
    let written = am.clone();
    let id = item_id.clone();
    buffer::put_pending::<ModelOf<A>>(
        item_id,
        Pending {
            conn: conn_key(db),
            before: Box::new(before) as Box<dyn Any + Send>,
            predict: Box::new(move |before| {
                let before = before.downcast::<ModelOf<A>>().ok()?;
                predicted_entry(&written, &before, id)
            }),
            at: Instant::now(),
        },
    );
    Ok(am)
}

/// Log what an earlier update of the same row, in a helper transaction still open, did when it
/// never reached `after_save`: the difference between its before-state and the row as it is
/// now (the row lock, or SQLite's write lock, keeps other writers out meanwhile). An `update_without_returning`
/// yields its entry; an update that failed changed nothing and yields none. The entry joins the
/// earlier update's transaction (which may be this savepoint's parent), as it would have at
/// that transaction's flush. Returns the current row: the before-state of the update starting.
async fn settle_earlier<A, C>(am: &A, db: &C, earlier: Pending) -> Result<Option<ModelOf<A>>, DbErr>
where
    A: ActiveModelTrait,
    ModelOf<A>: ModelActivity + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let current = read_row(am, db, Intent::Update).await?;
    let Some(now) = &current else {
        return Ok(current);
    };
    let Ok(before) = earlier.before.downcast::<ModelOf<A>>() else {
        return Ok(current);
    };
    let mut entry = model_entry(now, model_item_id(now), activity::UPDATED);
    before.activity_changes(now, &mut entry.detail.changes);
    if entry.detail.changes.is_empty() {
        return Ok(current);
    }
    if let Some(entry) = buffer_into(earlier.conn, entry) {
        tracing::debug!(item_id = ?entry.item_id, "the earlier update's transaction closed");
    }
    Ok(current)
}

/// `after_save`: log `created`, or `updated` with the field changes.
pub async fn after_save<M, C>(model: M, db: &C, insert: bool) -> Result<M, DbErr>
where
    M: ModelActivity + sea_orm::ModelTrait + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if is_muted(M::SCOPE) {
        return Ok(model);
    }
    let item_id = model_item_id(&model);
    if insert {
        let mut entry = model_entry(&model, item_id, activity::CREATED);
        if M::SNAPSHOT {
            model.activity_snapshot(ChangeAction::Created, &mut entry.detail.changes);
        }
        emit(db, entry).await?;
        return Ok(model);
    }
    let Some(id) = item_id else {
        return Ok(model);
    };
    let Some(pending) = buffer::take_pending::<M>(&id) else {
        return Ok(model);
    };
    let Ok(before) = pending.before.downcast::<M>() else {
        return Ok(model);
    };
    let mut entry = model_entry(&model, Some(id), activity::UPDATED);
    before.activity_changes(&model, &mut entry.detail.changes);
    if !entry.detail.changes.is_empty() {
        emit(db, entry).await?;
    }
    Ok(model)
}

/// `before_delete`: make sure the active model carries the whole row, so the entry has a name.
pub async fn before_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if is_muted(<ModelOf<A>>::SCOPE) || is_complete(&am) {
        return Ok(am);
    }
    Ok(match read_row(&am, db, Intent::Delete).await? {
        // Every column `Unchanged`: the DELETE still filters on the primary key only.
        Some(model) => model.into_active_model(),
        None => am,
    })
}

/// `after_delete`: log `deleted`.
pub async fn after_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if is_muted(<ModelOf<A>>::SCOPE) {
        return Ok(am);
    }
    if let Ok(model) = am.clone().try_into_model() {
        let mut entry = model_entry(&model, active_item_id(&am), activity::DELETED);
        if <ModelOf<A>>::SNAPSHOT {
            model.activity_snapshot(ChangeAction::Deleted, &mut entry.detail.changes);
        }
        emit(db, entry).await?;
    }
    Ok(am)
}

fn is_complete<A: ActiveModelTrait>(am: &A) -> bool {
    <A::Entity as EntityTrait>::Column::iter().all(|c| !matches!(am.get(c), ActiveValue::NotSet))
}

/// Whether a set column maps to a field whose change produces an entry. Columns and
/// `ModelActivity::FIELDS` are both in declaration order; if they do not line up, assume yes.
fn sets_signalling_field<A>(am: &A) -> bool
where
    A: ActiveModelTrait,
    ModelOf<A>: ModelActivity,
{
    let fields = <ModelOf<A>>::FIELDS;
    let columns = <A::Entity as EntityTrait>::Column::iter();
    if columns.clone().count() != fields.len() {
        return true;
    }
    columns
        .zip(fields)
        .any(|(c, f)| f.signals() && matches!(am.get(c), ActiveValue::Set(_)))
}

/// What the read row is about to undergo, which decides the lock taken on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// An UPDATE: on PostgreSQL `FOR NO KEY UPDATE`, the lock the UPDATE itself takes when it
    /// leaves the key alone, so inserts of rows referencing this one (foreign-key checks take
    /// `KEY SHARE`) are not blocked; `FOR UPDATE` if the key changes.
    Update,
    /// A DELETE: `FOR UPDATE`.
    Delete,
}

/// The current row for `am`'s primary key, locked for the rest of the transaction where the
/// backend can.
async fn read_row<A, C>(am: &A, db: &C, intent: Intent) -> Result<Option<ModelOf<A>>, DbErr>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    let mut query = <A::Entity as EntityTrait>::find();
    let mut sets_key = false;
    for pk in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
        let col = pk.into_column();
        match am.get(col) {
            ActiveValue::Set(v) => {
                sets_key = true;
                query = query.filter(col.eq(v));
            }
            ActiveValue::Unchanged(v) => query = query.filter(col.eq(v)),
            ActiveValue::NotSet => return Ok(None),
        }
    }
    query = match db.get_database_backend() {
        DbBackend::Sqlite => query,
        DbBackend::Postgres if intent == Intent::Update && !sets_key => {
            query.lock(LockType::NoKeyUpdate)
        }
        _ => query.lock_exclusive(),
    };
    query.one(db).await
}

/// The `updated` entry the values being written would produce: used only if `after_save`
/// never runs (`update_without_returning`).
fn predicted_entry<A>(
    am: &A,
    before: &ModelOf<A>,
    item_id: String,
) -> Option<activity_core::ActivityEntry>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>>,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone,
{
    let mut merged = before.clone().into_active_model();
    for col in <A::Entity as EntityTrait>::Column::iter() {
        if let ActiveValue::Set(v) = am.get(col) {
            merged.try_set(col, v).ok()?;
        }
    }
    let after = merged.try_into_model().ok()?;
    let mut entry = model_entry(&after, Some(item_id), activity::UPDATED);
    before.activity_changes(&after, &mut entry.detail.changes);
    (!entry.detail.changes.is_empty()).then_some(entry)
}
