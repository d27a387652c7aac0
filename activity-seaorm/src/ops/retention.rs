//! Retention: delete old entries in short batches, through the append-only guard.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionSession,
    TransactionTrait,
};

use crate::errors::Error;
use crate::schema::table::activity_log::{Column, Entity};

/// Rows deleted per statement by [`prune`]: short statements, short locks.
pub const PRUNE_BATCH: u64 = 5_000;

/// Delete entries older than `older_than` (only of `scopes`; an empty slice means every
/// scope), in batches of
/// [`PRUNE_BATCH`] so no statement holds locks for long. Each batch runs in its own short
/// transaction (a savepoint when `db` is a transaction) that enters
/// [`guard::enter_maintenance`](crate::schema::guard::enter_maintenance), so retention works with the
/// append-only guard installed, and that ends maintenance again before it commits: given the
/// caller's transaction, the rest of that transaction is still refused by the guard (see
/// [`guard`](crate::schema::guard)). Returns how many were deleted.
pub async fn prune<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    older_than: DateTime<Utc>,
    scopes: &[&str],
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        let batch =
            crate::schema::guard::maintenance(&txn, delete_batch(&txn, older_than, scopes)).await;
        let deleted = match batch {
            Ok(Some(deleted)) => deleted,
            Ok(None) => {
                txn.commit().await?;
                return Ok(total);
            }
            Err(e) => {
                // Undo the batch and its maintenance setting before reporting.
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(%rollback, "prune: rolling back a failed batch failed");
                }
                return Err(e);
            }
        };
        txn.commit().await?;
        // 0 deleted is not the end: another prune may have taken this batch's rows first (it
        // held their locks); the next select finds what is left.
        total += deleted;
        tracing::debug!(deleted, total, "pruned activity log batch");
    }
}

/// Delete up to [`PRUNE_BATCH`] old entries: how many went, or `None` when none is left.
async fn delete_batch<C: ConnectionTrait>(
    txn: &C,
    older_than: DateTime<Utc>,
    scopes: &[&str],
) -> Result<Option<u64>, Error> {
    let mut select = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::CreatedAt.lt(older_than))
        // No ORDER BY: any old rows will do, and no index leads with `created_at`.
        .limit(PRUNE_BATCH);
    if !scopes.is_empty() {
        select = select.filter(Column::Scope.is_in(scopes.iter().copied()));
    }
    let ids: Vec<uuid::Uuid> = select.into_tuple().all(txn).await?;
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        Entity::delete_many()
            .filter(Column::Id.is_in(ids))
            .exec(txn)
            .await?
            .rows_affected,
    ))
}
