//! `Tracked`: an active model that remembers the model it was loaded from, so its update
//! needs no before-read.

use std::ops::{Deref, DerefMut};

use activity_core::ModelActivity;
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ColumnType, Condition, ConnectionTrait,
    DbBackend, DbErr, DeleteResult, EntityTrait, IntoActiveModel, Iterable, ModelTrait,
    QueryFilter,
};

use crate::keys::model_item_id;
use crate::write::before::ModelOf;
use crate::write::frame;

/// An active model plus the model it came from. Derefs to the active model: set fields on it,
/// then call [`Tracked::update`] or [`Tracked::save`].
///
/// Only the columns you set are compared with the original, so an original that went stale
/// (another writer changed other columns since it was loaded) never attributes that writer's
/// change to this update.
///
/// ```ignore
/// let mut flag = activity_seaorm::track(flag_model);
/// flag.active = Set(true);
/// let flag = flag.update(&txn).await?; // UPDATE only: no SELECT for the before-state
/// ```
#[derive(Debug)]
pub struct Tracked<A: ActiveModelTrait> {
    original: ModelOf<A>,
    active: A,
}

/// Start tracking a loaded model.
pub fn track<M>(model: M) -> Tracked<<M::Entity as EntityTrait>::ActiveModel>
where
    M: ModelTrait + Clone + IntoActiveModel<<M::Entity as EntityTrait>::ActiveModel>,
    M::Entity: EntityTrait<Model = M>,
{
    Tracked {
        active: model.clone().into_active_model(),
        original: model,
    }
}

impl<A: ActiveModelTrait> Deref for Tracked<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.active
    }
}

impl<A: ActiveModelTrait> DerefMut for Tracked<A> {
    fn deref_mut(&mut self) -> &mut A {
        &mut self.active
    }
}

impl<A> Tracked<A>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Send + Sync + 'static,
{
    /// The model as loaded.
    pub fn original(&self) -> &ModelOf<A> {
        &self.original
    }

    /// The active model, forgetting the original.
    pub fn into_inner(self) -> A {
        self.active
    }

    /// `ActiveModel::update`, with the before-state supplied.
    pub async fn update<C: ConnectionTrait>(self, db: &C) -> Result<ModelOf<A>, DbErr> {
        let Self { original, active } = self;
        match supplied_key(&original) {
            Some(id) => frame::with_supplied(id, original, active.update(db)).await,
            None => active.update(db).await,
        }
    }

    /// `ActiveModel::save` (an update, since a tracked model exists), with the before-state
    /// supplied.
    pub async fn save<C: ConnectionTrait>(self, db: &C) -> Result<A, DbErr> {
        let Self { original, active } = self;
        match supplied_key(&original) {
            Some(id) => frame::with_supplied(id, original, active.save(db)).await,
            None => active.save(db).await,
        }
    }
}

impl<A> Tracked<A>
where
    A: ActiveModelTrait + ActiveModelBehavior + Clone + Send + 'static,
    ModelOf<A>: ModelActivity + IntoActiveModel<A> + Clone + Send + Sync + 'static,
{
    /// `ActiveModel::delete` without reading the row first, on PostgreSQL and SQLite. The
    /// model's `before_delete` and `after_delete` run as SeaORM runs them; the `DELETE` names
    /// the loaded value of every column, so it deletes the row only if the row still is the
    /// model as loaded, and the `deleted` entry then records exactly the row deleted. A row
    /// changed since it was loaded is read (locked) and deleted the way the hook path does, so
    /// the entry is the row as deleted either way. On MySQL, whose default collations find
    /// `'A'` equal to `'a'` (a changed row could pass for the loaded one), it is the hook path.
    pub async fn delete<C: ConnectionTrait>(self, db: &C) -> Result<DeleteResult, DbErr> {
        let Self { original, active } = self;
        let backend = db.get_database_backend();
        let item_id = match supplied_key(&original) {
            Some(id) if backend != DbBackend::MySql => id,
            _ => return active.delete(db).await,
        };
        let unchanged = unchanged::<A>(&original, backend);
        let am =
            frame::with_supplied(item_id.clone(), original, A::before_delete(active, db)).await?;
        let after = am.clone();
        let deleted = <A::Entity as EntityTrait>::delete_many()
            .filter(unchanged)
            .exec(db)
            .await?;
        if deleted.rows_affected == 0 {
            crate::write::before::reread_before_delete(&am, db, &item_id).await?;
            crate::checked::announce::<A::Entity>(crate::checked::Verb::Delete);
            let deleted = <A::Entity as EntityTrait>::delete(am).exec(db).await?;
            A::after_delete(after, db).await?;
            return Ok(deleted);
        }
        A::after_delete(after, db).await?;
        Ok(deleted)
    }
}

/// Every column equal to its value in `model` (`IS NULL` for a null): the row is still the
/// model. JSON is compared as `jsonb` on PostgreSQL (`json` has no equality).
fn unchanged<A: ActiveModelTrait>(model: &ModelOf<A>, backend: DbBackend) -> Condition {
    let mut all = Condition::all();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        let value = model.get(column);
        let condition: SimpleExpr = if value == value.as_null() {
            column.is_null()
        } else if backend == DbBackend::Postgres
            && matches!(
                column.def().get_column_type(),
                ColumnType::Json | ColumnType::JsonBinary
            )
        {
            Expr::col(column)
                .cast_as("jsonb")
                .eq(Expr::val(value).cast_as("jsonb"))
        } else {
            column.eq(value)
        };
        all = all.add(condition);
    }
    all
}

/// The item id under which `before_save` finds the original (none when muted: nothing to log).
fn supplied_key<M: ModelActivity + ModelTrait>(original: &M) -> Option<String> {
    if activity_core::is_muted(M::SCOPE) {
        return None;
    }
    model_item_id(original)
}
