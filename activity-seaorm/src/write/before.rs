//! An update's before-state, typed: what `before_save` leaves for `after_save`, how it is read
//! (locked) from the database, and how an update SeaORM never confirmed is settled at flush.

use std::any::Any;

use activity_core::entry::activity;
use activity_core::{ActivityConfig, ActivityContext, ActivityEntry, ChangeAction, ModelActivity};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QueryResult,
    QuerySelect, QueryTrait, Select, Statement, TryIntoModel,
};

use crate::keys::{conn_key, model_item_id};
use crate::write::frame::{self, PendingState, UnconfirmedUpdate, stamp};

/// The model type of an active model.
pub type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// The active model type of a model.
pub type ActiveModelOf<M> = <<M as sea_orm::ModelTrait>::Entity as EntityTrait>::ActiveModel;

/// A new entry for `model`: scope, item id, name, short id and tenant from the derive, time from
/// the configured clock.
pub(crate) fn model_entry<M: ModelActivity>(
    model: &M,
    item_id: Option<String>,
    activity: &str,
) -> ActivityEntry {
    let mut entry = ActivityEntry::new(M::SCOPE, activity);
    entry.created_at = now();
    entry.item_id = item_id;
    entry.detail.name = model.activity_name();
    entry.detail.short_id = model.activity_short_id();
    entry.team_id = model.activity_team_id();
    entry.organization_id = model.activity_organization_id();
    entry.own_tenant = M::TEAM_FIELD.is_some()
        || M::ORGANIZATION_FIELD.is_some()
        || entry.team_id.is_some()
        || entry.organization_id.is_some();
    entry
}

/// A `created` or `deleted` entry for `model`: a deletion with every tracked field (masked ones
/// masked), a creation too when the model asks for snapshots (`#[activity(snapshot)]`).
pub(crate) fn lifecycle_entry<M: ModelActivity + sea_orm::ModelTrait>(
    model: &M,
    item_id: Option<String>,
    action: ChangeAction,
) -> ActivityEntry {
    let verb = match action {
        ChangeAction::Deleted => activity::DELETED,
        _ => activity::CREATED,
    };
    let mut entry = model_entry(model, item_id, verb);
    // A deletion records every tracked field whatever the model says: the row is gone, and
    // this is all that can read it back or restore it (`history`).
    if M::SNAPSHOT || action == ChangeAction::Deleted {
        model.activity_snapshot(action, &mut entry.detail.changes);
    }
    entry
}

/// A query for `am`'s row by its primary key (`None` if the key is not set).
pub(crate) fn key_query<A: ActiveModelTrait>(am: &A) -> Option<Select<A::Entity>> {
    let mut query = <A::Entity as EntityTrait>::find();
    for pk in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
        let col = pk.into_column();
        match am.get(col) {
            ActiveValue::Set(v) | ActiveValue::Unchanged(v) => query = query.filter(col.eq(v)),
            ActiveValue::NotSet => return None,
        }
    }
    Some(query)
}

/// Where an update's before-state came from.
pub(crate) enum Origin {
    /// Read by `before_save`, locked. Kept with the context and time of the update, in case
    /// its entry is only settled at flush.
    Read {
        context: Option<Box<ActivityContext>>,
        at: DateTime<Utc>,
        /// The lock is held until the update's transaction ends: the read is exact. Without a
        /// transaction it ended with the read, so only the columns the update set are compared
        /// (another writer's change in between is not this update's).
        held: bool,
    },
    /// Supplied by `Tracked`: the model as the caller loaded it, possibly stale, so only the
    /// columns the caller set are compared. `Tracked` updates always return their row, so one
    /// that never reached `after_save` failed and changed nothing.
    Tracked,
}

/// The before-state of one update of an `A`.
pub(crate) struct UpdateBefore<A: ActiveModelTrait> {
    pub(crate) before: ModelOf<A>,
    /// The active model as written: which columns the update set.
    pub(crate) written: A,
    pub(crate) origin: Origin,
}

impl<A> UpdateBefore<A>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
{
    /// The `updated` entry of an update SeaORM confirmed, `after` being the row it returned
    /// (`None` when nothing changed).
    pub(crate) fn confirmed(self, after: &ModelOf<A>) -> Option<ActivityEntry> {
        let before = match self.origin {
            Origin::Read { held: true, .. } => self.before,
            // Columns the caller did not set take their value from the row as written, so a
            // stale before-state never blames this update for another writer's change.
            Origin::Read { held: false, .. } | Origin::Tracked => {
                with_set_columns(after, &self.before, &self.written)?
            }
        };
        changes(&before, after)
    }

    /// The entry of an update SeaORM never confirmed, from the row as it is `now`: only the
    /// columns it set that the database shows changed since the before-state.
    pub(crate) fn settled(self, now: &ModelOf<A>) -> Option<ActivityEntry> {
        let Origin::Read { context, at, .. } = self.origin else {
            return None;
        };
        let after = with_set_columns(&self.before, now, &self.written)?;
        let mut entry = changes(&self.before, &after)?;
        entry.created_at = at;
        stamp(&mut entry, context.as_deref());
        Some(entry)
    }
}

/// `base` with the columns `written` sets taken from `from`.
fn with_set_columns<A>(base: &ModelOf<A>, from: &ModelOf<A>, written: &A) -> Option<ModelOf<A>>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>>,
    ModelOf<A>: IntoActiveModel<A> + Clone,
{
    let mut merged = base.clone().into_active_model();
    for col in <A::Entity as EntityTrait>::Column::iter() {
        if let ActiveValue::Set(_) = written.get(col) {
            let value = sea_orm::ModelTrait::get(from, col);
            merged.try_set(col, value).ok()?;
        }
    }
    merged.try_into_model().ok()
}

fn changes<M: ModelActivity + sea_orm::ModelTrait>(before: &M, after: &M) -> Option<ActivityEntry> {
    let mut entry = model_entry(after, model_item_id(after), activity::UPDATED);
    before.activity_changes(after, &mut entry.detail.changes);
    (!entry.detail.changes.is_empty()).then_some(entry)
}

impl<A> UnconfirmedUpdate for UpdateBefore<A>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
{
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }

    fn settle_read(&self, backend: DbBackend) -> Option<Statement> {
        match self.origin {
            Origin::Read { .. } => Some(key_query(&self.written)?.build(backend)),
            Origin::Tracked => None,
        }
    }

    fn settle(self: Box<Self>, now: Option<QueryResult>) -> Option<ActivityEntry> {
        let now = ModelOf::<A>::from_query_result(&now?, "").ok()?;
        (*self).settled(&now)
    }
}

/// The configured clock's time: what a new entry is stamped with (and, for an update settled
/// only at flush, the time of the update itself; see [`Origin::Read`]).
pub(crate) fn now() -> DateTime<Utc> {
    ActivityConfig::with_current(|c| c.clock().now())
}

/// What the read row is about to undergo, which decides the lock taken on it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// An UPDATE: on PostgreSQL `FOR NO KEY UPDATE`, the lock the UPDATE itself takes when it
    /// leaves the key alone, so inserts of rows referencing this one (foreign-key checks take
    /// `KEY SHARE`) are not blocked; `FOR UPDATE` if the key changes.
    Update,
    /// A DELETE: `FOR UPDATE`.
    Delete,
}

/// The current row for `am`'s primary key, locked for the rest of the transaction where the
/// backend can.
pub(crate) async fn read_row<A, C>(
    am: &A,
    db: &C,
    intent: Intent,
) -> Result<Option<ModelOf<A>>, DbErr>
where
    A: ActiveModelTrait,
    C: ConnectionTrait,
{
    let Some(query) = key_query(am) else {
        return Ok(None);
    };
    let sets_key = <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter()
        .any(|pk| matches!(am.get(pk.into_column()), ActiveValue::Set(_)));
    let query = match db.get_database_backend() {
        DbBackend::Sqlite => query,
        DbBackend::Postgres if intent == Intent::Update && !sets_key => {
            query.lock(LockType::NoKeyUpdate)
        }
        _ => query.lock_exclusive(),
    };
    query.one(db).await
}

/// The row `Tracked::delete` supplied turned out changed or gone: the state its entry will
/// record is the row as it is now, read and locked as the hook path reads it (none: nothing to
/// log).
pub(crate) async fn reread_before_delete<A, C>(am: &A, db: &C, item_id: &str) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
    ModelOf<A>: ModelActivity + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let frame = frame::frame_for(conn_key(db));
    match read_row(am, db, Intent::Delete).await? {
        Some(row) => {
            let state = PendingState::Delete(Box::new(row));
            match frame {
                Some(frame) => frame.put_pending::<ModelOf<A>>(item_id.to_owned(), state),
                None => frame::put_loose::<ModelOf<A>>(item_id.to_owned(), state),
            }
        }
        None => {
            drop(match frame {
                Some(frame) => frame.take_pending::<ModelOf<A>>(item_id),
                None => frame::take_loose::<ModelOf<A>>(item_id),
            });
        }
    }
    Ok(())
}
