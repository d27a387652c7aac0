//! `Tracked`: an active model that remembers the model it was loaded from, so its update
//! needs no before-read.

use std::ops::{Deref, DerefMut};

use activity_core::ModelActivity;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    ModelTrait,
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

/// The item id under which `before_save` finds the original (none when muted: nothing to log).
fn supplied_key<M: ModelActivity + ModelTrait>(original: &M) -> Option<String> {
    if activity_core::is_muted(M::SCOPE) {
        return None;
    }
    model_item_id(original)
}
