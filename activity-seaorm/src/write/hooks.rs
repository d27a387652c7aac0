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
//! will (`FOR NO KEY UPDATE` on PostgreSQL, `FOR UPDATE` on MySQL), unless
//! [`Tracked`](crate::Tracked) supplied it or only `signal_exclude`d fields are set; the entry is
//! written by `after_save`, only for an update SeaORM confirmed. Deletes read the row (locked)
//! in `before_delete`, so the entry has a name and a delete that matches nothing logs nothing.
//! Use the four hooks together: each after-hook logs only what its before-hook prepared.

use activity_core::{ChangeAction, FieldSpec, ModelActivity, is_muted};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait, DbErr, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, TryIntoModel,
};

use crate::keys::{active_item_id, conn_key, model_item_id};
pub use crate::write::before::{ActiveModelOf, ModelOf};
use crate::write::before::{Intent, Origin, UpdateBefore, lifecycle_entry, now, read_row};
use crate::write::flush::record;
use crate::write::frame::{self, Frame, PendingState};

/// `before_save`: on update, capture the before-state for `after_save`. Announces the write
/// to [`checked`](crate::checked) mode (muted or not: muting is an explicit skip).
pub async fn before_save<A, C>(am: A, db: &C, insert: bool) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let am = prepare_save(am, db, insert).await?;
    crate::checked::announce_save(&am, insert);
    Ok(am)
}

async fn prepare_save<A, C>(am: A, db: &C, insert: bool) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if insert {
        return Ok(am);
    }
    // A muted job with nothing waiting: done before the key is even formatted.
    if is_muted(<ModelOf<A>>::SCOPE) && !frame::may_have_pending() {
        return Ok(am);
    }
    let Some(item_id) = active_item_id(&am) else {
        return Ok(am);
    };
    let frame = frame::frame_for(conn_key(db));
    // An earlier update of this row that never reached `after_save` (`update_without_returning`,
    // or a statement that failed and was handled) is settled first, from the row as it is now,
    // so this update's changes are never attributed to it (muted or not).
    let fresh = match &frame {
        Some(frame) => settle_earlier(&am, db, frame, &item_id).await?,
        None => {
            if frame::take_loose::<ModelOf<A>>(&item_id).is_some() {
                // Outside a transaction nothing vouches that the row has not changed hands
                // since: the state is stale.
                tracing::debug!(
                    item_id,
                    "dropping a before-state left outside a transaction"
                );
            }
            None
        }
    };
    let supplied = frame::take_supplied::<ModelOf<A>>(&item_id);
    if is_muted(<ModelOf<A>>::SCOPE) || !sets_signalling_field(&am) {
        return Ok(am);
    }
    let (before, origin) = match (fresh, supplied) {
        (Some(Some(model)), _) => (model, read_origin::<C>()),
        (Some(None), _) => return Ok(am),
        (None, Some(model)) => (model, Origin::Tracked),
        (None, None) => match read_row(&am, db, Intent::Update).await? {
            Some(model) => (model, read_origin::<C>()),
            // No such row: the UPDATE will match nothing and nothing is logged.
            None => return Ok(am),
        },
    };
    let state = PendingState::Update(Box::new(UpdateBefore {
        before,
        written: am.clone(),
        origin,
    }));
    match frame {
        Some(frame) => frame.put_pending::<ModelOf<A>>(item_id, state),
        None => frame::put_loose::<ModelOf<A>>(item_id, state),
    }
    Ok(am)
}

fn read_origin<C: ?Sized>() -> Origin {
    Origin::Read {
        // Autocommit (or a connection type the library does not know): the read's row lock
        // ended with its statement, and another writer may change the row before the UPDATE.
        held: crate::write::sink::change_state::<C>()
            == crate::write::failure::ChangeState::InOpenTransaction,
        context: activity_core::ActivityContext::current().map(Box::new),
        at: now(),
    }
}

/// Settle an earlier unconfirmed update of the row in `frame` or a transaction it is a
/// savepoint of: log what the database shows it changed, into the frame it ran in. Returns
/// `None` when there was none, else the current row (the before-state of the update starting;
/// the row lock, or SQLite's write lock, keeps other writers out meanwhile).
async fn settle_earlier<A, C>(
    am: &A,
    db: &C,
    frame: &std::sync::Arc<Frame>,
    item_id: &str,
) -> Result<Option<Option<ModelOf<A>>>, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let mut owner = Some(frame);
    let (owner, earlier) = loop {
        let Some(f) = owner else {
            return Ok(None);
        };
        if let Some(state) = f.take_pending::<ModelOf<A>>(item_id) {
            break (f, state);
        }
        owner = f.savepoint_of();
    };
    let current = read_row(am, db, Intent::Update).await?;
    if let (PendingState::Update(earlier), Some(now)) = (earlier, &current)
        && let Ok(earlier) = earlier.into_any().downcast::<UpdateBefore<A>>()
        && let Some(entry) = earlier.settled(now)
    {
        owner.push(entry);
    }
    Ok(Some(current))
}

/// `after_save`: log `created`, or `updated` with the field changes.
pub async fn after_save<M, C>(model: M, db: &C, insert: bool) -> Result<M, DbErr>
where
    M: ModelActivity
        + sea_orm::ModelTrait
        + IntoActiveModel<ActiveModelOf<M>>
        + Clone
        + Send
        + Sync
        + 'static,
    ActiveModelOf<M>: ActiveModelTrait<Entity = M::Entity> + TryIntoModel<M> + Send + 'static,
    M::Entity: EntityTrait<Model = M>,
    C: ConnectionTrait,
{
    if is_muted(M::SCOPE) {
        return Ok(model);
    }
    let item_id = model_item_id(&model);
    if insert {
        record(db, lifecycle_entry(&model, item_id, ChangeAction::Created)).await?;
        return Ok(model);
    }
    let Some(id) = item_id else {
        return Ok(model);
    };
    let pending = match frame::frame_for(conn_key(db)) {
        Some(frame) => frame.take_pending::<M>(&id),
        None => frame::take_loose::<M>(&id),
    };
    let Some(PendingState::Update(pending)) = pending else {
        return Ok(model);
    };
    let Ok(pending) = pending
        .into_any()
        .downcast::<UpdateBefore<ActiveModelOf<M>>>()
    else {
        return Ok(model);
    };
    if let Some(entry) = pending.confirmed(&model) {
        record(db, entry).await?;
    }
    Ok(model)
}

/// `before_delete`: read the row (locked) so the entry records what was deleted, and so a
/// delete that matches no row logs nothing. Announces the write to
/// [`checked`](crate::checked) mode.
pub async fn before_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let am = prepare_delete(am, db).await?;
    crate::checked::announce::<A::Entity>(crate::checked::Verb::Delete);
    Ok(am)
}

async fn prepare_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
    C: ConnectionTrait,
{
    let Some(item_id) = active_item_id(&am) else {
        return Ok(am);
    };
    let frame = frame::frame_for(conn_key(db));
    // An earlier update of this row that never reached `after_save` (`update_without_returning`)
    // is settled first, from the row as it is now: the delete's state would take its place.
    if let Some(frame) = &frame {
        settle_earlier(&am, db, frame, &item_id).await?;
    }
    if is_muted(<ModelOf<A>>::SCOPE) {
        return Ok(am);
    }
    // `Tracked::delete` supplies the row as loaded and deletes it only if it still is that row
    // (its DELETE names every column's value), so the entry is exact without a read.
    let row = match frame::take_supplied::<ModelOf<A>>(&item_id) {
        Some(original) => original,
        None => match read_row(&am, db, Intent::Delete).await? {
            Some(row) => row,
            None => return Ok(am),
        },
    };
    let complete = is_complete(&am);
    let state = PendingState::Delete(Box::new(row.clone()));
    match frame {
        Some(frame) => frame.put_pending::<ModelOf<A>>(item_id, state),
        None => frame::put_loose::<ModelOf<A>>(item_id, state),
    }
    if complete {
        return Ok(am);
    }
    // Every column `Unchanged`: the DELETE still filters on the primary key only.
    Ok(row.into_active_model())
}

/// `after_delete`: log `deleted`, with the row `before_delete` read.
pub async fn after_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + TryIntoModel<ModelOf<A>> + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + Send + Sync + 'static,
    C: ConnectionTrait,
{
    if is_muted(<ModelOf<A>>::SCOPE) {
        return Ok(am);
    }
    let Some(item_id) = active_item_id(&am) else {
        return Ok(am);
    };
    let pending = match frame::frame_for(conn_key(db)) {
        Some(frame) => frame.take_pending::<ModelOf<A>>(&item_id),
        None => frame::take_loose::<ModelOf<A>>(&item_id),
    };
    let Some(PendingState::Delete(row)) = pending else {
        return Ok(am);
    };
    let Ok(row) = row.downcast::<ModelOf<A>>() else {
        return Ok(am);
    };
    record(
        db,
        lifecycle_entry(&*row, Some(item_id), ChangeAction::Deleted),
    )
    .await?;
    Ok(am)
}

fn is_complete<A: ActiveModelTrait>(am: &A) -> bool {
    <A::Entity as EntityTrait>::Column::iter().all(|c| !matches!(am.get(c), ActiveValue::NotSet))
}

/// Whether a set column maps to a field whose change produces an entry. Columns pair with
/// fields by column name, never by position; a column without a field counts as signalling
/// (the read is made rather than an entry missed).
fn sets_signalling_field<A>(am: &A) -> bool
where
    A: ActiveModelTrait,
    ModelOf<A>: ModelActivity,
{
    <A::Entity as EntityTrait>::Column::iter()
        .enumerate()
        .any(|(i, c)| {
            matches!(am.get(c), ActiveValue::Set(_))
                && <ModelOf<A>>::field_for_column_at(i, IdenStatic::as_str(&c))
                    .is_none_or(FieldSpec::signals)
        })
}
