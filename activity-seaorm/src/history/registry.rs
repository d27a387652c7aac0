//! Entities by scope: `#[derive(ModelActivity)]` on a SeaORM model submits a [`Registration`]
//! for its `Entity` at link time (through `inventory`, as it registers its table for checked
//! mode), so a revert needs only an entry's id to find the code that writes its item.

use std::future::Future;
use std::pin::Pin;

use activity_core::ModelActivity;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    TryIntoModel,
};

use crate::history::HistoryError;
use crate::history::item::{ItemChange, ItemPlan, Mode, Reverted, apply, plan_item};

/// The future of one item's revert.
pub(crate) type ApplyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Reverted, HistoryError>> + Send + 'a>>;
/// The future of one item's plan.
pub(crate) type PlanFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ItemPlan, HistoryError>> + Send + 'a>>;

/// One entity, findable by its scope. Emitted by the derive; not for hand use.
#[derive(Debug)]
pub struct Registration {
    pub(crate) scope: &'static str,
    pub(crate) apply: for<'a> fn(&'a DatabaseTransaction, ItemChange, Mode) -> ApplyFuture<'a>,
    pub(crate) plan: for<'a> fn(&'a DatabaseTransaction, ItemChange) -> PlanFuture<'a>,
}

impl Registration {
    /// The registration of entity `E` under `scope` (the model's `SCOPE`).
    pub const fn new<E>(scope: &'static str) -> Self
    where
        E: EntityTrait,
        E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone + Send + Sync,
        E::ActiveModel:
            ActiveModelTrait<Entity = E> + ActiveModelBehavior + TryIntoModel<E::Model> + Send,
    {
        Registration {
            scope,
            apply: apply_boxed::<E>,
            plan: plan_boxed::<E>,
        }
    }
}

fn apply_boxed<'a, E>(
    txn: &'a DatabaseTransaction,
    change: ItemChange,
    mode: Mode,
) -> ApplyFuture<'a>
where
    E: EntityTrait,
    E::Model: ModelActivity + IntoActiveModel<E::ActiveModel> + Clone + Send + Sync,
    E::ActiveModel:
        ActiveModelTrait<Entity = E> + ActiveModelBehavior + TryIntoModel<E::Model> + Send,
{
    Box::pin(apply::<E>(txn, change, mode))
}

fn plan_boxed<'a, E>(txn: &'a DatabaseTransaction, change: ItemChange) -> PlanFuture<'a>
where
    E: EntityTrait,
    E::Model: ModelActivity + Send + Sync,
{
    Box::pin(plan_item::<E>(txn, change))
}

activity_core::__private::inventory::collect!(Registration);

/// The entity registered for `scope`.
pub(crate) fn find(scope: &str) -> Result<&'static Registration, HistoryError> {
    activity_core::__private::inventory::iter::<Registration>
        .into_iter()
        .find(|r| r.scope == scope)
        .ok_or_else(|| HistoryError::UnknownScope(scope.to_owned()))
}
