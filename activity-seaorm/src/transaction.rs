//! The transaction helper: owns the boundary so entries are written right before COMMIT, in one
//! multi-row INSERT, atomically with the change, and published only once committed.

use activity_core::{ActivityContext, ActivityEntry, hooks::prepare_entries};
use scoped_futures::ScopedBoxFuture;
use sea_orm::{ConnectionTrait, DbErr, TransactionSession, TransactionTrait};

use crate::buffer;
use crate::config::{ActivityConfig, FailurePolicy};
use crate::events;
use crate::keys::conn_key;
use crate::write::{fail, insert_entries, stamp, write_error};

/// Run `f` in a transaction (a savepoint when `db` is itself a transaction) and write its
/// activity entries at commit.
///
/// - Entries from hooks and [`log_activity`](crate::log_activity) on the closure's transaction
///   are buffered and written in one INSERT (chunked by the bind limit) right before COMMIT.
/// - `Err` from the closure, a panic or a dropped future rolls back and discards the entries.
/// - A nested `transaction` is a savepoint: its entries are dropped if it rolls back and kept
///   (with the outer transaction) if it commits. One `correlation_id` per outermost
///   transaction (the context's, or a new UUID v7).
/// - [`FailurePolicy::FailClosed`] (default): if the entries cannot be written the transaction
///   rolls back and the error names the activity log.
///
/// ```
/// use activity_seaorm::prelude::*;
/// use scoped_futures::ScopedFutureExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let label = String::from("nightly");
/// let n = activity_seaorm::transaction(&db, |txn| {
///     async move {
///         let entry = ActivityEntry::new("Job", "ran").with_name(label.as_str());
///         activity_seaorm::log_activity(txn, entry).await?;
///         Ok::<_, sea_orm::DbErr>(1)
///     }
///     .scope_boxed()
/// })
/// .await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
pub async fn transaction<'a, C, F, T, E>(db: &'a C, f: F) -> Result<T, E>
where
    C: TransactionTrait + ConnectionTrait,
    F: for<'t> FnOnce(&'t C::Transaction) -> ScopedBoxFuture<'a, 't, Result<T, E>> + Send + 'a,
    T: Send,
    E: From<DbErr> + Send,
{
    let parent = conn_key(db);
    let parent_correlation = buffer::correlation_id(parent);
    let nested = parent_correlation.is_some();
    let correlation_id = parent_correlation.unwrap_or_else(new_correlation_id);

    let txn = db.begin().await?;
    let key = conn_key(&txn);
    let frame = buffer::open(key, correlation_id.clone());

    let value = match f(&txn).await {
        Ok(value) => value,
        Err(e) => {
            drop(frame);
            buffer::discard_unclaimed(key);
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "rollback after an error failed");
            }
            return Err(e);
        }
    };

    let mut entries = frame.take();
    entries.extend(unclaimed_entries(key, &correlation_id));
    if nested {
        txn.commit().await?;
        if let Err(orphans) = buffer::merge_into(parent, entries) {
            tracing::error!(
                lost = orphans.len(),
                "outer transaction closed before its savepoint"
            );
        }
        return Ok(value);
    }
    let written = match flush(&txn, entries).await {
        Ok(written) => written,
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "rollback after a failed activity flush failed");
            }
            return Err(e.into());
        }
    };
    txn.commit().await?;
    events::publish(written);
    Ok(value)
}

fn new_correlation_id() -> String {
    ActivityContext::current()
        .and_then(|c| c.correlation_id().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Entries for updates that never reached `after_save` (`update_without_returning`).
fn unclaimed_entries(key: usize, correlation_id: &str) -> Vec<ActivityEntry> {
    buffer::take_unclaimed(key)
        .into_iter()
        .filter_map(|p| (p.predict)(p.before))
        .map(|mut entry| {
            stamp(&mut entry);
            entry.correlation_id = Some(correlation_id.to_owned());
            entry
        })
        .collect()
}

/// Prepare and insert the buffered entries inside `txn`. Returns the entries written.
async fn flush<T>(txn: &T, mut entries: Vec<ActivityEntry>) -> Result<Vec<ActivityEntry>, DbErr>
where
    T: TransactionTrait + ConnectionTrait,
{
    ActivityConfig::with_current(|c| prepare_entries(c.hooks(), &mut entries));
    if entries.is_empty() {
        return Ok(entries);
    }
    match ActivityConfig::with_current(|c| c.failure_policy()) {
        FailurePolicy::FailClosed => match insert_entries(txn, &entries).await {
            Ok(()) => Ok(entries),
            Err(e) => Err(write_error(&e)),
        },
        FailurePolicy::FailOpen => {
            // A savepoint, so a failed INSERT cannot abort the caller's transaction.
            let savepoint = txn.begin().await?;
            match insert_entries(&savepoint, &entries).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    Ok(entries)
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    fail(e, entries.len())?;
                    Ok(Vec::new())
                }
            }
        }
    }
}
