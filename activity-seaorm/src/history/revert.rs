//! Undoing one entry: the entry read, its entity found by scope, its item's change applied in
//! one transaction.

use activity_core::ActivityEntry;
use scoped_futures::ScopedFutureExt;
use sea_orm::{
    ColumnTrait, DatabaseConnection, QueryFilter, SqliteTransactionMode, TransactionOptions,
};
use uuid::Uuid;

use crate::history::item::{ItemChange, Mode, Reverted};
use crate::history::{HistoryError, registry};
use crate::schema::activity_log;

/// SQLite: the revert reads and then writes; `IMMEDIATE` takes the write lock first, so a
/// concurrent writer waits instead of failing the upgrade.
pub(crate) const IMMEDIATE: TransactionOptions = TransactionOptions {
    isolation_level: None,
    access_mode: None,
    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
};

/// Undo entry `entry_id`: a compare-and-set of the fields it changed under the row's lock (see
/// the [module docs](crate::history)), logged as a `reverted` entry linking it.
///
/// - `updated`: every field it changed must still hold its `after`; they go back to `before`.
/// - `created`: the row is deleted (a clear error if rows still refer to it).
/// - `deleted`: the row is inserted again with its key (undelete); a row that took the key is
///   a conflict.
/// - `reverted`: undoing a revert is a redo.
///
/// ```ignore
/// match history::revert(&db, entry_id, history::Mode::Strict).await {
///     Ok(done) => println!("undone: {:?}", done.entries),
///     Err(e) if e.conflicts().is_some() => println!("changed since: {:?}", e.conflicts()),
///     Err(e) => return Err(e.into()),
/// }
/// ```
pub async fn revert(
    db: &DatabaseConnection,
    entry_id: Uuid,
    mode: Mode,
) -> Result<Reverted, HistoryError> {
    let entry: ActivityEntry = crate::schema::table::find_entries()
        .filter(activity_log::Column::Id.eq(entry_id))
        .one(db)
        .await?
        .ok_or(HistoryError::EntryNotFound(entry_id))?
        .into();
    let Some(change) = ItemChange::undoing(&[&entry])? else {
        return Ok(Reverted::default());
    };
    let registration = registry::find(&change.scope)?;
    crate::transaction_with_options(db, IMMEDIATE, |txn| {
        async move { (registration.apply)(txn, change, mode).await }.scope_boxed()
    })
    .await
}
