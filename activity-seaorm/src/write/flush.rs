//! The transaction helper: owns the boundary so entries are written right before COMMIT, in one
//! multi-row INSERT, atomically with the change, and published only once committed.

use activity_core::hooks::prepare_entries;
use activity_core::{ActivityConfig, ActivityContext, ActivityEntry};
use std::future::Future;
use std::pin::Pin;

use scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, TransactionError, TransactionOptions,
    TransactionSession, TransactionTrait,
};

use crate::keys::conn_key;
use crate::write::events;
use crate::write::frame::{self, Frame, PendingState};
use crate::write::sink;

/// Run `f` in a transaction (a savepoint when `db` is itself a transaction) and write its
/// activity entries at commit.
///
/// - Entries from hooks and [`log_activity`](crate::log_activity) on the closure's transaction
///   are buffered and written in one INSERT (chunked by the bind limit) right before COMMIT.
/// - `Err` from the closure, a panic or a dropped future rolls back and discards the entries.
/// - A nested `transaction` is a savepoint: its entries are dropped if it rolls back and kept
///   (with the outer transaction) if it commits. One `correlation_id` per outermost
///   transaction (the context's, or a new UUID v7).
/// - [`FailurePolicy::FailClosed`](crate::FailurePolicy::FailClosed) (default): if the entries cannot be written the transaction
///   rolls back and the error names the activity log.
///
/// ```
/// use activity_seaorm::prelude::*;
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
    run(db, None, f).await
}

/// [`transaction`] begun with SeaORM's [`TransactionOptions`]: an isolation level, an access
/// mode, or SQLite's `IMMEDIATE` mode. Concurrent read-modify-write transactions on one SQLite
/// file need `IMMEDIATE`: a deferred transaction that reads first and then writes cannot take
/// the write lock while another holds it, and fails with `SQLITE_BUSY` at once instead of
/// waiting its turn. (Nested inside another transaction, the options do not apply: a
/// savepoint has none.)
///
/// ```
/// use activity_seaorm::prelude::*;
/// use sea_orm::{SqliteTransactionMode, TransactionOptions};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let immediate = TransactionOptions {
///     sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
///     ..Default::default()
/// };
/// activity_seaorm::transaction_with_options(&db, immediate, |txn| {
///     async move {
///         activity_seaorm::log_activity(txn, ActivityEntry::new("Job", "ran")).await
///     }
///     .scope_boxed()
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn transaction_with_options<'a, C, F, T, E>(
    db: &'a C,
    options: TransactionOptions,
    f: F,
) -> Result<T, E>
where
    C: TransactionTrait + ConnectionTrait,
    F: for<'t> FnOnce(&'t C::Transaction) -> ScopedBoxFuture<'a, 't, Result<T, E>> + Send + 'a,
    T: Send,
    E: From<DbErr> + Send,
{
    run(db, Some(options), f).await
}

/// SeaORM's own `TransactionTrait::transaction`, logged: the same closure shape
/// (`|txn| Box::pin(async move { .. })`), the same `Result<T, TransactionError<E>>`, and the
/// entries written at commit as [`transaction`] writes them. A failed log write is a
/// `TransactionError::Connection`, as a failed COMMIT is. Moving a transaction over is a rename:
///
/// ```
/// use activity_seaorm::prelude::*;
/// use sea_orm::{DbErr, TransactionError};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), TransactionError<DbErr>> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// // was: db.transaction::<_, _, DbErr>(|txn| Box::pin(async move { .. })).await?;
/// db.logged_transaction::<_, _, DbErr>(|txn| {
///     Box::pin(async move {
///         activity_seaorm::log_activity(txn, ActivityEntry::new("Job", "ran")).await?;
///         Ok(())
///     })
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub trait LoggedTransaction {
    /// Run `callback` in a transaction whose activity entries are written at commit.
    fn logged_transaction<'a, F, T, E>(
        &'a self,
        callback: F,
    ) -> impl Future<Output = Result<T, TransactionError<E>>> + Send + 'a
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + 'a,
        T: Send + 'a,
        E: std::fmt::Display + std::fmt::Debug + Send + 'a;
}

impl<C> LoggedTransaction for C
where
    C: TransactionTrait<Transaction = DatabaseTransaction> + ConnectionTrait + Sync,
{
    fn logged_transaction<'a, F, T, E>(
        &'a self,
        callback: F,
    ) -> impl Future<Output = Result<T, TransactionError<E>>> + Send + 'a
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + 'a,
        T: Send + 'a,
        E: std::fmt::Display + std::fmt::Debug + Send + 'a,
    {
        transaction(self, move |txn| {
            let work = callback(txn);
            async move { work.await.map_err(TransactionError::Transaction) }.scope_boxed()
        })
    }
}

async fn run<'a, C, F, T, E>(db: &'a C, options: Option<TransactionOptions>, f: F) -> Result<T, E>
where
    C: TransactionTrait + ConnectionTrait,
    F: for<'t> FnOnce(&'t C::Transaction) -> ScopedBoxFuture<'a, 't, Result<T, E>> + Send + 'a,
    T: Send,
    E: From<DbErr> + Send,
{
    let savepoint_of = frame::frame_for(conn_key(db));
    let correlation_id = match &savepoint_of {
        Some(parent) => parent.correlation_id().to_owned(),
        None => new_correlation_id(),
    };
    // Inside a transaction `begin` makes a savepoint, which takes no options.
    let nested = sink::change_state::<C>() == crate::write::failure::ChangeState::InOpenTransaction;
    let txn = match options {
        Some(options) if !nested => db.begin_with_options(options).await?,
        _ => db.begin().await?,
    };
    // The frame lives in this future: however it ends (return, `?`, panic, or dropped at any
    // `.await`), the frame and what it holds end with it.
    let frame = Frame::new(conn_key(&txn), savepoint_of.clone(), correlation_id);

    let value = match frame.run(f(&txn)).await {
        Ok(value) => value,
        Err(e) => return Err(rollback(txn, e, "an error").await),
    };
    if let Some(e) = frame.failure() {
        // The closure went on after an early write of its entries failed: fail-closed, the
        // change does not commit without them.
        return Err(rollback(txn, e.into(), "a failed early activity write").await);
    }
    let mut entries = frame.take_entries();
    match settle_unconfirmed(&txn, &frame).await {
        Ok(settled) => entries.extend(settled),
        Err(e) => return Err(rollback(txn, e.into(), "a failed settle read").await),
    }
    if let Some(parent) = savepoint_of {
        txn.commit().await?;
        parent.extend(entries);
        parent.keep_written(frame.take_written());
        return Ok(value);
    }
    ActivityConfig::with_current(|c| prepare_entries(c.hooks(), &mut entries));
    crate::cap::cap_entries(&mut entries);
    let written = entries.is_empty()
        || match sink::flush(&txn, &entries).await {
            Ok(written) => written,
            Err(e) => return Err(rollback(txn, e.into(), "a failed activity flush").await),
        };
    txn.commit().await?;
    let mut committed = frame.take_written();
    if written {
        committed.extend(entries);
    }
    events::publish(committed);
    Ok(value)
}

/// Write the entries `frame` buffered, inside its transaction through `db`, now that there are
/// [`EARLY_FLUSH_ENTRIES`](frame::EARLY_FLUSH_ENTRIES) of them: a long job in one transaction
/// keeps its memory flat, and its entries still commit or roll back with it (a savepoint's
/// rolled-back rows go with the savepoint). `db` must be the connection `frame` records for.
/// A failed write fails the statement that triggered it and the transaction as a whole.
pub(crate) async fn flush_early<C: ConnectionTrait>(db: &C, frame: &Frame) -> Result<(), DbErr> {
    let mut entries = frame.take_entries();
    ActivityConfig::with_current(|c| prepare_entries(c.hooks(), &mut entries));
    crate::cap::cap_entries(&mut entries);
    if entries.is_empty() {
        return Ok(());
    }
    match sink::flush(db, &entries).await {
        Ok(written) => {
            if written && events::listening() {
                frame.keep_written(entries);
            }
            Ok(())
        }
        Err(e) => {
            frame.fail(e.clone());
            Err(e)
        }
    }
}

async fn rollback<T: TransactionSession, E>(txn: T, error: E, after: &str) -> E {
    if let Err(rollback) = txn.rollback().await {
        tracing::warn!(error = %rollback, "rollback after {after} failed");
    }
    error
}

fn new_correlation_id() -> String {
    ActivityContext::current()
        .and_then(|c| c.correlation_id().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Settle now, from the rows as they are, the updates of model `M` in `db`'s transaction (and
/// the ones it is a savepoint of) that SeaORM never confirmed: before a bulk statement on `M`
/// changes those rows, or the flush would take the bulk's change for theirs.
pub(crate) async fn settle_updates_of<M: std::any::Any, C: ConnectionTrait>(
    db: &C,
) -> Result<(), DbErr> {
    let mut frame = frame::frame_for(conn_key(db));
    while let Some(f) = frame {
        for entry in settle(db, f.take_unconfirmed_updates_of::<M>()).await? {
            f.push(entry);
        }
        frame = f.savepoint_of().cloned();
    }
    Ok(())
}

/// Entries of updates SeaORM never confirmed through `after_save` (`update_without_returning`,
/// or a statement that failed and was handled), settled from the rows as they are now, in this
/// transaction.
async fn settle_unconfirmed<T: ConnectionTrait>(
    txn: &T,
    frame: &Frame,
) -> Result<Vec<ActivityEntry>, DbErr> {
    let mut settled = settle(txn, frame.take_unconfirmed()).await?;
    for entry in &mut settled {
        entry.correlation_id = Some(frame.correlation_id().to_owned());
    }
    Ok(settled)
}

/// The entries of unconfirmed `states`, read from their rows through `db`: what the database
/// shows each update changed. A delete that never reached `after_delete` failed: nothing to log.
async fn settle<C: ConnectionTrait>(
    db: &C,
    states: Vec<PendingState>,
) -> Result<Vec<ActivityEntry>, DbErr> {
    let backend = db.get_database_backend();
    let mut settled = Vec::new();
    for state in states {
        let PendingState::Update(update) = state else {
            continue;
        };
        let Some(read) = update.settle_read(backend) else {
            continue;
        };
        let row = db.query_one_raw(read).await?;
        settled.extend(update.settle(row));
    }
    Ok(settled)
}

/// Record `entry` for the statement just run on `db`: buffered in `db`'s frame, written at its
/// commit; outside any frame, written now through `db`.
pub(crate) async fn record<C: sea_orm::ConnectionTrait>(
    db: &C,
    mut entry: ActivityEntry,
) -> Result<(), sea_orm::DbErr> {
    frame::stamp(&mut entry, None);
    match frame::frame_for(conn_key(db)) {
        Some(frame) => {
            if frame.push(entry) {
                flush_early(db, &frame).await?;
            }
            Ok(())
        }
        None => crate::write::sink::write_now(db, vec![entry]).await,
    }
}
